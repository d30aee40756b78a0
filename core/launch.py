"""Build, inject, train: the composition every entry point shares (DESIGN.md's data flow).

An idea's run.py registers its config schema, then calls `launch` with a function that builds its agent. Everything
else (validation, run directory, envs, replay, logger, trainer, failure status) is the same for every idea.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "disable")  # state-based training needs no GL; silences glfw's display warning

import torch  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from core.buffers import ReplayBuffer  # noqa: E402
from core.checkpoint import seed_everything  # noqa: E402
from core.config import check_same_run, exit_on_bad_config, freeze, identity, save_resolved_config, validate_common  # noqa: E402
from core.envs import make_env  # noqa: E402
from core.logger import Logger  # noqa: E402
from core.trainer import Trainer, pick_device  # noqa: E402

EVAL_SEED_OFFSET = 10_000  # the evaluation env's seed is seed + this: separate from the training env's stream


def launch(hydra_cfg: DictConfig, schema: type, make_agent: Callable[[Any, int, int, torch.device], Any],
           validate_idea: Callable[[Any], None] | None = None) -> dict:
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
    env = make_env(cfg.task, cfg.seed, cfg.action_repeat)
    eval_env = make_env(cfg.task, cfg.seed + EVAL_SEED_OFFSET, cfg.action_repeat)
    agent = make_agent(cfg, env.obs_dim, env.act_dim, device)
    buffer = ReplayBuffer(env.obs_dim, env.act_dim, min(cfg.buffer_size, cfg.steps + 1), device,
                          cfg.recent_fraction, cfg.recent_window)
    group = cfg.wandb.group or f"{cfg.idea}-{cfg.task}-{cfg.experiment}"
    logger = Logger(run_dir, OmegaConf.to_container(OmegaConf.structured(cfg)), cfg.wandb.mode, cfg.wandb.project,
                    cfg.wandb.entity, group, f"seed{cfg.seed}")
    logger.write_summary(device=str(device), torch_threads=torch.get_num_threads(), config=identity(cfg))
    trainer = Trainer(cfg, env, eval_env, agent, buffer, logger, run_dir, device)
    try:
        return trainer.train()
    except BaseException as err:  # KeyboardInterrupt and SIGTERM too: the run dir must say it did not finish
        logger.write_summary(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        logger.close()
