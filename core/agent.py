"""The interface every idea's agent implements; the trainer knows agents only through it."""

from __future__ import annotations

from typing import Protocol

import torch

from core.buffers import Batch, ReplayBuffer


class Agent(Protocol):
    """act / sample / update / state: all an agent must offer the core trainer."""

    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Actions in [-1, 1] for a (B, obs_dim) batch; explore=False is the evaluation policy."""
        ...

    def sample(self, buffer: ReplayBuffer) -> Batch:
        """Draw this agent's training batch (plain transitions, n-step, windows...)."""
        ...

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient update; returns detached scalar tensors (no .item(): the loop must not sync)."""
        ...

    def state_dict(self) -> dict:
        """Networks, targets, optimisers and counters, for checkpoints."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        ...
