"""Replay buffer: preallocated tensors on the run's device, uniform or recent-biased sampling, n-step returns and
fixed-length windows that respect episode ends.

Transitions are stored in arrival order in a ring. `terminated` marks a true terminal (no bootstrapping);
`truncated` marks a time limit (bootstrap from next_obs). Either one ends the episode, so n-step returns and windows
never run across it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A training batch. Every agent writes its target as y = reward + gamma * mask * V(next_obs).

    For one-step samples mask = 1 - terminated. For n-step samples reward is the discounted sum of the k <= n rewards
    up to the episode end and mask = gamma**(k-1) * (1 - terminated), which folds the extra discount in.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor  # (B, 1)
    next_obs: torch.Tensor
    mask: torch.Tensor  # (B, 1)


class Window(NamedTuple):
    """length consecutive transitions per row; mask[:, k] = 1 while step k is inside the episode of step 0."""

    obs: torch.Tensor  # (B, L, obs_dim)
    action: torch.Tensor  # (B, L, act_dim)
    reward: torch.Tensor  # (B, L)
    next_obs: torch.Tensor  # (B, L, obs_dim)
    terminated: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, L)


class ReplayBuffer:
    """Ring buffer of transitions held as tensors on `device`."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        device: torch.device | str = "cpu",
        recent_fraction: float = 0.0,
        recent_window: int = 2048,
    ) -> None:
        self.capacity, self.device = capacity, torch.device(device)
        self.recent_fraction, self.recent_window = recent_fraction, recent_window
        f32 = dict(dtype=torch.float32, device=self.device)
        self.obs = torch.zeros(capacity, obs_dim, **f32)
        self.action = torch.zeros(capacity, act_dim, **f32)
        self.reward = torch.zeros(capacity, **f32)
        self.next_obs = torch.zeros(capacity, obs_dim, **f32)
        self.terminated = torch.zeros(capacity, **f32)
        self.episode_end = torch.zeros(capacity, **f32)  # terminated or truncated
        self.ptr = 0  # next write position
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool,
            truncated: bool) -> None:
        """Store one transition."""
        i = self.ptr
        self.obs[i] = torch.as_tensor(obs)
        self.action[i] = torch.as_tensor(action)
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.reward[i] = float(reward)
        self.terminated[i] = float(terminated)
        self.episode_end[i] = float(terminated or truncated)
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _start_indices(self, batch_size: int, length: int = 1) -> torch.Tensor:
        """Indices whose next `length` stored transitions exist and are in arrival order (never cross the write head).

        A `recent_fraction` share comes from the newest `recent_window` transitions (FlowRL's 80/20 mix).
        """
        valid = self.size - length + 1  # starts counted back from the oldest stored transition
        if valid < 1:
            raise ValueError(f"buffer holds {self.size} transitions, fewer than a window of {length}")
        oldest = (self.ptr - self.size) % self.capacity
        n_recent = int(round(batch_size * self.recent_fraction))
        age = torch.randint(0, valid, (batch_size - n_recent,), device=self.device)  # offset from the oldest
        if n_recent:
            window = min(self.recent_window, valid)
            recent = valid - 1 - torch.randint(0, window, (n_recent,), device=self.device)
            age = torch.cat([age, recent])
        return (oldest + age) % self.capacity

    def sample(self, batch_size: int) -> Batch:
        """One-step transitions: mask = 1 - terminated."""
        i = self._start_indices(batch_size)
        mask = 1.0 - self.terminated[i, None]
        return Batch(self.obs[i], self.action[i], self.reward[i, None], self.next_obs[i], mask)

    def sample_window(self, batch_size: int, length: int) -> Window:
        """`length` consecutive transitions per row; mask cuts each row at its episode's end."""
        start = self._start_indices(batch_size, length)
        j = (start[:, None] + torch.arange(length, device=self.device)) % self.capacity  # (B, L)
        ended_before = torch.cumsum(self.episode_end[j], dim=1) - self.episode_end[j]  # ends strictly before step k
        mask = (ended_before == 0).float()
        return Window(self.obs[j], self.action[j], self.reward[j] * mask, self.next_obs[j], self.terminated[j] * mask,
                      mask)

    def sample_nstep(self, batch_size: int, n: int, gamma: float) -> Batch:
        """n-step returns, cut at episode ends; bootstrap from the last step inside the episode (see Batch)."""
        w = self.sample_window(batch_size, n)
        discounts = gamma ** torch.arange(n, device=self.device, dtype=torch.float32)
        reward = (w.reward * discounts).sum(1, keepdim=True)
        last = w.mask.sum(1).long() - 1  # index of the last step inside the episode
        rows = torch.arange(batch_size, device=self.device)
        mask = discounts[last, None] * (1.0 - w.terminated[rows, last, None])
        return Batch(w.obs[:, 0], w.action[:, 0], reward, w.next_obs[rows, last], mask)

    def state_dict(self) -> dict:
        """Everything needed to continue: the stored part of each array and the ring position."""
        n = self.size
        # clone: a CPU slice is a view, and torch.save would write the whole preallocated storage behind it
        arrays = {k: getattr(self, k)[:n].cpu().clone() for k in ("obs", "action", "reward", "next_obs",
                                                                  "terminated", "episode_end")}
        return dict(arrays=arrays, ptr=self.ptr, size=n)

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        n = state["size"]
        for k, v in state["arrays"].items():
            getattr(self, k)[:n] = v.to(self.device)
        self.ptr, self.size = state["ptr"], n
