"""Build, inject, train: the composition every entry point shares (DESIGN.md's data flow).

An idea's run.py wraps its Hydra main in `entry_point` and calls `launch` with the function that builds its agent.
Everything else (validation, run directory, envs, replay, logger, trainer, failure status) is core's; an idea that
needs another env factory, buffer or trainer (a task sequence) passes its own, as TD-MPC2's train.py injects them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "disable")  # state-based training needs no GL; silences glfw's display warning

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from core.buffers import ReplayBuffer  # noqa: E402
from core.checkpoint import seed_everything  # noqa: E402
from core.config import (  # noqa: E402
    TrainConfig,
    check_overrides,
    check_same_run,
    exit_on_bad_config,
    freeze,
    identity,
    save_resolved_config,
    validate_common,
)
from core.envs import make_env  # noqa: E402
from core.logger import Logger  # noqa: E402
from core.trainer import Trainer, pick_device  # noqa: E402

EVAL_SEED_OFFSET = 10_000  # the evaluation env's seed is seed + this: separate from the training env's stream
SHARED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def make_buffer(cfg: TrainConfig, obs_dim: int, act_dim: int, device: torch.device) -> ReplayBuffer:
    """The default replay: capacity min(buffer_size, steps + 1) on the run's device, FlowRL-style recent mix."""
    return ReplayBuffer(obs_dim, act_dim, min(cfg.buffer_size, cfg.steps + 1), device, cfg.recent_fraction,
                        cfg.recent_window)


def launch(hydra_cfg: DictConfig, schema: type, make_agent: Callable[[Any, int, int, torch.device], Any],
           validate_idea: Callable[[Any], None] | None = None, *, env_factory: Callable[..., Any] = make_env,
           buffer_factory: Callable[..., Any] = make_buffer, trainer_class: type = Trainer) -> dict:
    """Validate the config, build env/agent/buffer/logger, train (resuming if possible), return the summary."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    cfg = freeze(hydra_cfg, schema)

    def check() -> None:
        validate_common(cfg)
        if validate_idea:
            validate_idea(cfg)
        check_same_run(cfg, run_dir)

    exit_on_bad_config(run_dir, check)  # nothing is built or written before this passes
    save_resolved_config(cfg, run_dir)

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    env = env_factory(cfg.task, cfg.seed, cfg.action_repeat)
    eval_env = env_factory(cfg.task, cfg.seed + EVAL_SEED_OFFSET, cfg.action_repeat)
    agent = make_agent(cfg, env.obs_dim, env.act_dim, device)
    buffer = buffer_factory(cfg, env.obs_dim, env.act_dim, device)
    group = cfg.wandb.group or f"{cfg.idea}-{cfg.task}-{cfg.experiment}"
    logger = Logger(run_dir, OmegaConf.to_container(OmegaConf.structured(cfg)), cfg.wandb.mode, cfg.wandb.project,
                    cfg.wandb.entity, group, f"seed{cfg.seed}")
    logger.write_summary(config=identity(cfg))  # device and threads: by the trainer, only if it trains
    return trainer_class(cfg, env, eval_env, agent, buffer, logger, run_dir, device).run()


def config_groups(config_dir: Path) -> dict[str, list[str]]:
    """Each config group an entry point can choose (sweep, preset, hydra/launcher) -> its options, read from the
    idea's conf folder and the shared configs/ folder."""
    groups: dict[str, set[str]] = {}
    for root in (config_dir, SHARED_CONFIGS):
        for yaml_file in root.rglob("*.yaml"):
            group = yaml_file.parent.relative_to(root).as_posix()
            if group != ".":
                groups.setdefault(group, set()).add(yaml_file.stem)
    launchers = groups.setdefault("hydra/launcher", set())
    launchers.update({"basic", "joblib", "submitit_local", "submitit_slurm"})  # Hydra's and its plugins' own
    return {group: sorted(options) for group, options in groups.items()}


def entry_point(schema: type, config_dir: str | Path, config_name: str = "config") -> Callable:
    """Decorator for an idea's `main(cfg)`: hydra.main, after checking the command line's overrides against the
    schema and the config groups, so a bad key or value ends in one line (exit 2) before Hydra writes anything."""
    config_dir = Path(config_dir).resolve()

    def wrap(task_function: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        hydra_main = hydra.main(version_base=None, config_path=str(config_dir), config_name=config_name)(task_function)

        def main() -> Any:
            exit_on_bad_config(None, lambda: check_overrides(sys.argv[1:], schema, config_groups(config_dir)))
            return hydra_main()

        return main

    return wrap
