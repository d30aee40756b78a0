"""Environment families chosen by task name, and the Env protocol the trainer relies on.

A family is a module with `tasks() -> list[str]`, `close_tasks(name) -> list[str]` (its suggestions for a misspelt
name) and `make(task, seed, action_repeat) -> Env`. FAMILIES maps a task-name prefix to that module; a name without
a known prefix is a DeepMind Control task ("dog-run"). A new family is one module and one line in FAMILIES.

`python -m core.envs` prints every task name, one per line.
"""

from __future__ import annotations

import difflib
from importlib import import_module
from types import ModuleType
from typing import Any, Protocol

import numpy as np

FAMILIES: dict[str, str] = {"": "core.envs.dmc", "mw-": "core.envs.metaworld"}  # task-name prefix -> module ("": DMC)


class Env(Protocol):
    """One task: flat float32 observations, actions in [-1, 1], episodes that end terminated or truncated."""

    task: str
    obs_dim: int
    act_dim: int

    def reset(self) -> np.ndarray:
        """Start an episode; returns its first observation."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """obs, reward, terminated (no bootstrapping), truncated (time limit), info (e.g. Meta-World's success)."""
        ...

    def reseed(self, seed: int) -> None:
        """Reseed the initial-state draws of the next reset()."""
        ...

    def get_state(self) -> dict:
        """Plain-Python state to continue identically after set_state() and reset() (taken at episode ends)."""
        ...

    def set_state(self, state: dict) -> None:
        """Restore get_state()'s result; call reset() next."""
        ...


def family(task: str) -> ModuleType:
    """The family module a task name belongs to (by prefix)."""
    prefix = next((p for p in FAMILIES if p and str(task).startswith(p)), "")
    return import_module(FAMILIES[prefix])


def all_tasks() -> list[str]:
    """Every task of every family."""
    return [name for module in FAMILIES.values() for name in import_module(module).tasks()]


def check_task(task: str) -> None:
    """Raise ValueError (one line, close matches from every family) unless `task` names a task; builds nothing."""
    if task in family(task).tasks():
        return
    names = all_tasks()
    matches = difflib.get_close_matches(str(task), names, n=5, cutoff=0.6)
    matches += [m for m in family(task).close_tasks(task) if m not in matches]
    hint = f"close matches: {', '.join(matches[:8])}" if matches else "no close matches"
    raise ValueError(f"unknown task {task!r}; {hint} (python -m core.envs lists all {len(names)} tasks)")


def make_env(task: str, seed: int, action_repeat: int = 1) -> Env:
    """The environment for `task` seeded with `seed` (check_task's ValueError first for an unknown name)."""
    check_task(task)
    return family(task).make(task, seed, action_repeat)
