"""Typed run configuration shared by every idea, and the start-up validation that guards it.

Hydra composes YAML; `freeze` turns the result into the idea's dataclass (typed, documented fields), and `validate`
rejects bad values with ONE line naming the valid choices, before any environment is built or any file written.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")


class ConfigError(ValueError):
    """A bad configuration value; its message is the one line the user sees."""


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline (real run files, `wandb sync` later) | online | disabled
    project: str = "flowbench"  # wandb project
    entity: str | None = None  # wandb entity (team or user); None = wandb's default
    group: str | None = None  # None = "<idea>-<task>-<experiment>"; the run name is always "seed<seed>"


@dataclass
class TrainConfig:
    """Fields every idea shares: the loop, evaluation protocol, logging and checkpointing belong to core."""

    # fields a resumed run may change (budget, hardware, logging); any other change is another experiment. A schema
    # extends it with its own: RESUMABLE = TrainConfig.RESUMABLE + ("my_field",)
    RESUMABLE: ClassVar[tuple[str, ...]] = ("steps", "device", "torch_threads", "progress", "wandb", "log_every",
                                            "checkpoint_every")

    # --- what to run
    idea: str = "sac"  # idea name, used in group names and reports
    experiment: str = "default"  # free label grouping runs of one study
    task: str = "cartpole-swingup"  # DMC task, domain-task with hyphens (python -m core.envs lists them)
    seed: int = 0  # seeds torch, numpy, python and the environments
    # --- budget, in agent steps (env frames = steps * action_repeat)
    steps: int = 1_000_000  # agent steps to train for
    action_repeat: int = 1  # frames per agent step (FlowRL uses 1)
    warmup_steps: int = 5_000  # uniform-random actions before the first update
    updates_per_step: float = 1.0  # update-to-data ratio (fractional ratios accumulate)
    # --- replay
    batch_size: int = 256  # transitions per update
    buffer_size: int = 1_000_000  # replay capacity in transitions
    recent_fraction: float = 0.0  # share of each batch drawn from the newest transitions (FlowRL: 0.2)
    recent_window: int = 2048  # how many newest transitions count as recent
    # --- evaluation and logging
    eval_every: int = 10_000  # agent steps between evaluations (also evaluated at step 0 and at the end)
    eval_episodes: int = 5  # episodes per evaluation, in the agent's evaluation mode (act(explore=False))
    log_every: int = 1_000  # agent steps between train.csv rows
    checkpoint_every: int = 10_000  # agent steps between checkpoints (taken at the next episode end)
    progress: bool = True  # progress bar on a terminal (never in CI or when output is redirected)
    # --- hardware
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    torch_threads: int = 0  # intra-op threads; 0 keeps torch's default (set 1 per job in parallel sweeps)
    wandb: WandbConfig = field(default_factory=WandbConfig)


def freeze(cfg: DictConfig, schema: type) -> Any:
    """Hydra's DictConfig -> an instance of the idea's dataclass (typed, attribute access, no YAML surprises)."""
    merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    return OmegaConf.to_object(merged)


def choose(name: str, value: str, choices: Iterable[str]) -> None:
    """Raise ConfigError naming the valid choices (and the closest ones) unless value is one of them."""
    choices = list(choices)
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), choices, n=5, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown {name} '{value}'{hint}; valid choices: {', '.join(choices)}")


def at_least(name: str, value: float, low: float) -> None:
    """Raise ConfigError unless value >= low."""
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")


def validate_common(cfg: TrainConfig) -> None:
    """Check the fields every idea shares; raises ConfigError with one line."""
    from core.envs import check_task  # imported here: dm_control loads in ~1 s, only needed once validating

    try:
        check_task(cfg.task)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed must be in [0, 2**32 - 1], got {cfg.seed}")
    at_least("steps", cfg.steps, 0)
    at_least("action_repeat", cfg.action_repeat, 1)
    at_least("warmup_steps", cfg.warmup_steps, 0)
    at_least("updates_per_step", cfg.updates_per_step, 0)
    at_least("batch_size", cfg.batch_size, 1)
    at_least("buffer_size", cfg.buffer_size, 1)
    at_least("eval_every", cfg.eval_every, 1)
    at_least("eval_episodes", cfg.eval_episodes, 1)
    at_least("log_every", cfg.log_every, 1)
    at_least("checkpoint_every", cfg.checkpoint_every, 1)
    at_least("torch_threads", cfg.torch_threads, 0)
    at_least("recent_window", cfg.recent_window, 1)
    if not 0.0 <= cfg.recent_fraction <= 1.0:
        raise ConfigError(f"recent_fraction must be in [0, 1], got {cfg.recent_fraction}")
    choose("device", cfg.device, DEVICES)
    choose("wandb.mode", cfg.wandb.mode, WANDB_MODES)
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for but no CUDA device is visible; valid choices here: auto, cpu")


def exit_on_bad_config(run_dir: Path | None, check) -> None:
    """Run check(); on ConfigError print one line, remove the run dir if Hydra just created it empty, exit 2."""
    try:
        check()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        try:
            if run_dir is not None:
                run_dir.rmdir()  # only succeeds when empty: an existing run is never touched
        except OSError:
            pass
        sys.exit(2)


def check_overrides(argv: list[str], schema: type, groups: dict[str, list[str]]) -> None:
    """The command line's `key=value` overrides against the schema, before Hydra composes anything (Hydra's own
    message for an unknown key or a value of the wrong type is a multi-line traceback). `groups` maps each config
    group (sweep, preset, hydra/launcher) to its options. Raises ConfigError with one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue  # -m, --multirun, --cfg job ...: Hydra's own flags
        try:
            override = parser.parse_override(arg)
        except HydraException:
            continue  # a syntax error: Hydra's message for it is already one line
        key = override.key_or_group
        if override.is_delete() or (key.startswith(("hydra.", "hydra/")) and key not in groups):
            continue  # Hydra's own settings: Hydra checks them
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
        if key in groups:
            for value in values:
                choose(key, value, groups[key])
            continue
        field_type = _field_type(schema, key)
        if isinstance(override.value(), list) and field_type is str:  # Hydra would say "Cannot convert 'list'"
            text = override.get_value_element_as_str()
            raise ConfigError(f"{key} takes one string, not a list: quote it ({key}='\"{text}\"' in a shell)")
        for value in values:
            _check_type(key, value, field_type)


def _field_type(schema: type, key: str) -> Any:
    """The type of a dotted field (wandb.mode) of a dataclass schema; ConfigError naming the valid fields if none."""
    node = schema
    for part in key.split("."):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        names = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
        if part not in names:
            choose("field" if node is schema else f"field of {key.rsplit('.', 1)[0]}", part, names)
        node = hints[part]
    return node


def _check_type(key: str, value: str, field_type: Any) -> None:
    """Raise ConfigError unless the text `value` converts to `field_type` (int, float, bool, str, X | None)."""
    if value.startswith("${"):
        return  # an interpolation: resolved later by OmegaConf
    options = typing.get_args(field_type) if isinstance(field_type, types.UnionType) else (field_type,)
    if value == "null" and type(None) in options:
        return
    for option in options:
        try:
            if option is bool:
                if value.lower() in ("true", "false"):
                    return
            elif option in (int, float):
                option(value)
                return
            elif option is str:
                return
            elif dataclasses.is_dataclass(option):
                return  # a whole group of fields: OmegaConf checks its keys
        except ValueError:
            pass
    names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{key} must be {names}, got {value!r}")


def identity(cfg: Any) -> dict:
    """The config fields that define a run (everything but the schema's RESUMABLE fields), as plain values."""
    values = OmegaConf.to_container(OmegaConf.structured(cfg))
    return {k: v for k, v in values.items() if k not in type(cfg).RESUMABLE}


def check_same_run(cfg: Any, run_dir: Path) -> None:
    """Refuse to resume (or skip as complete) a run directory that holds a run of another configuration.

    A field the old run's config lacks (the schema gained it since) counts as unchanged while it keeps its default,
    so run directories written before a schema change still resume.
    """
    summary = run_dir / "summary.json"
    if not summary.exists():
        return
    previous = json.loads(summary.read_text()).get("config")
    if previous is None:
        return
    current, defaults = identity(cfg), identity(type(cfg)())
    changed = sorted(k for k in current if current[k] != previous.get(k, defaults.get(k)))
    if changed:
        raise ConfigError(f"{run_dir} holds a run with other settings ({', '.join(changed)} differ); "
                          f"choose another hydra.run.dir or restore those values")


def save_resolved_config(cfg: Any, run_dir: Path) -> None:
    """Write the validated config to <run>/.hydra/config.yaml (Hydra writes nothing: bad input leaves no trace)."""
    target = run_dir / ".hydra" / "config.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    os.replace(tmp, target)
