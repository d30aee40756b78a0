"""The interface every idea's agent implements; the trainers know agents only through it."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from core.buffers import ReplayBuffer


class Agent(Protocol):
    """act / reset / sample / update / summary / state: all an agent must offer the core trainers."""

    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Actions in [-1, 1] for a (B, obs_dim) batch; explore=False is the evaluation policy."""
        ...

    def reset(self, explore: bool) -> None:
        """An episode began (called after every env reset: training, evaluation, resume). explore says which stream,
        so an agent that executes action chunks keeps one queue per stream and flushes it here."""
        ...

    def sample(self, buffer: ReplayBuffer) -> Any:
        """Draw this agent's training batch (plain transitions, n-step, windows, chunks...): whatever update takes."""
        ...

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One gradient update; returns detached scalar tensors (no .item(): the loop must not sync)."""
        ...

    def summary(self) -> dict[str, Any]:
        """Extra summary.json keys at the end of a run (e.g. measured NFE); {} if none."""
        ...

    def state_dict(self) -> dict:
        """Networks, targets, optimisers and counters, for checkpoints."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        ...
