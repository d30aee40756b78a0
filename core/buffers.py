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
    """A training batch. Every agent writes its target as y = reward + discount * V(next_obs).

    `discount` is the whole bootstrap factor: gamma * (1 - terminated) for one-step samples; for n-step samples the
    reward is the discounted sum of the k <= n rewards up to the episode's end and discount = gamma**k (1 - terminated).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor  # (B, 1)
    next_obs: torch.Tensor
    discount: torch.Tensor  # (B, 1)


class Window(NamedTuple):
    """`length` consecutive transitions per row, cut at the end of the episode of step 0.

    Steps past that end are padding: reward, action and terminated are 0, and obs / next_obs repeat the episode's
    final state (never a state of the next episode).
    """

    obs: torch.Tensor  # (B, L, obs_dim)
    action: torch.Tensor  # (B, L, act_dim)
    reward: torch.Tensor  # (B, L)
    next_obs: torch.Tensor  # (B, L, obs_dim)
    terminated: torch.Tensor  # (B, L)
    inside: torch.Tensor  # (B, L): 1 while step k is inside the episode of step 0


class Chunk(NamedTuple):
    """n executed actions from s_t and where they led: target = reward + discount * V(s_{t+n}).

    `valid` = the whole chunk lies inside one episode (an episode may end at its last step). Rows cut earlier keep the
    n-step values up to the end (k < n rewards, discount gamma**k (1 - terminated), next_obs the episode's final state)
    and zero actions past the end; chunk critics leave them out of the loss.
    """

    obs: torch.Tensor  # (B, obs_dim): s_t
    actions: torch.Tensor  # (B, n, act_dim)
    reward: torch.Tensor  # (B, 1): sum_{i<k} gamma^i r_{t+i}
    discount: torch.Tensor  # (B, 1): gamma^k (1 - terminated)
    next_obs: torch.Tensor  # (B, obs_dim): s_{t+n} (or the episode's final state when cut)
    valid: torch.Tensor  # (B, 1)


FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "episode_end")  # one stored transition


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
        self.added = 0  # transitions ever added = the arrival number of the next one (replay chunks count in it)

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
        self.added += 1

    def _start_indices(self, batch_size: int, length: int = 1, recent: int | None = None, replace: bool = True,
                       hide_newest: int = 0) -> torch.Tensor:
        """Indices whose next `length` stored transitions exist and are in arrival order (never cross the write head).

        A `recent_fraction` share (or `recent` rows) comes from the newest `recent_window` transitions (FlowRL's
        80/20 mix). replace=False never draws an index twice within a share (the two shares may still overlap, as in
        FlowRL's ReplayMemory); hide_newest=k samples as if the newest k transitions were not stored yet.
        """
        valid = self.size - hide_newest - length + 1  # starts counted back from the oldest stored transition
        if valid < 1:
            raise ValueError(f"buffer holds {self.size} transitions ({hide_newest} hidden), fewer than a window of "
                             f"{length}")
        oldest = (self.ptr - self.size) % self.capacity
        n_recent = int(round(batch_size * self.recent_fraction)) if recent is None else recent
        age = self._draw(valid, batch_size - n_recent, replace)  # offset from the oldest
        if n_recent:
            window = min(self.recent_window, valid)
            age = torch.cat([age, valid - 1 - self._draw(window, n_recent, replace)])
        return (oldest + age) % self.capacity

    def _draw(self, n: int, k: int, replace: bool) -> torch.Tensor:
        """k integers in [0, n): independent draws, or k distinct ones (a uniform k-subset) when replace=False."""
        if replace:
            return torch.randint(0, n, (k,), device=self.device)
        if k > n:
            raise ValueError(f"cannot draw {k} distinct transitions from {n} (sampling without replacement)")
        if self.device.type != "cpu":
            return torch.randperm(n, device=self.device)[:k]  # O(n) work, but no host sync on a GPU
        # O(k) on the CPU: redraw the missing count until k distinct values are seen, i.e. the first k distinct
        # values of an i.i.d. uniform stream, which form a uniform k-subset (sorted here; row order does not matter)
        drawn = torch.unique(torch.randint(0, n, (k,)))
        while len(drawn) < k:
            drawn = torch.unique(torch.cat([drawn, torch.randint(0, n, (k - len(drawn),))]))
        return drawn

    def sample(self, batch_size: int, gamma: float, *, recent: int | None = None, replace: bool = True,
               hide_newest: int = 0) -> Batch:
        """One-step transitions: discount = gamma * (1 - terminated). The keywords are _start_indices's (defaults:
        the recent_fraction share, independent draws, every stored transition visible)."""
        i = self._start_indices(batch_size, recent=recent, replace=replace, hide_newest=hide_newest)
        discount = gamma * (1.0 - self.terminated[i, None])
        return Batch(self.obs[i], self.action[i], self.reward[i, None], self.next_obs[i], discount)

    def sample_window(self, batch_size: int, length: int) -> Window:
        """`length` consecutive transitions per row, cut at each row's episode end (see Window)."""
        start = self._start_indices(batch_size, length)
        j = (start[:, None] + torch.arange(length, device=self.device)) % self.capacity  # (B, L)
        ended_before = torch.cumsum(self.episode_end[j], dim=1) - self.episode_end[j]  # ends strictly before step k
        inside = (ended_before == 0).float()
        last = inside.sum(1).long() - 1  # the last step inside the episode
        final_state = self.next_obs[j[torch.arange(batch_size, device=self.device), last]]  # (B, obs_dim)
        keep = inside[..., None] > 0
        obs = torch.where(keep, self.obs[j], final_state[:, None])
        next_obs = torch.where(keep, self.next_obs[j], final_state[:, None])
        return Window(obs, self.action[j] * inside[..., None], self.reward[j] * inside, next_obs,
                      self.terminated[j] * inside, inside)

    def sample_chunk(self, batch_size: int, n: int, gamma: float) -> Chunk:
        """s_t, the n actions a_{t:t+n}, their discounted reward sum, gamma^n (1 - terminated) and s_{t+n}."""
        w = self.sample_window(batch_size, n)
        reward, discount = _discounted(w, gamma)
        return Chunk(w.obs[:, 0], w.action, reward, discount, w.next_obs[:, -1], w.inside[:, -1:])

    def sample_nstep(self, batch_size: int, n: int, gamma: float) -> Batch:
        """n-step returns, cut at episode ends; bootstrap from the last state inside the episode (see Batch)."""
        w = self.sample_window(batch_size, n)
        reward, discount = _discounted(w, gamma)
        return Batch(w.obs[:, 0], w.action[:, 0], reward, w.next_obs[:, -1], discount)

    def transitions(self, start: int, end: int) -> dict[str, torch.Tensor]:
        """The stored transitions with arrival numbers [start, end), as CPU tensors (what a replay chunk holds)."""
        if not self.added - self.size <= start <= end <= self.added:
            raise ValueError(f"transitions [{start}, {end}) are not stored (held: [{self.added - self.size}, "
                             f"{self.added}))")
        slots = (torch.arange(start, end) % self.capacity).to(self.device)
        return {k: getattr(self, k)[slots].cpu() for k in FIELDS}

    def restore(self, start: int, arrays: dict[str, torch.Tensor]) -> None:
        """Put transitions with arrival numbers [start, start + n) back in their ring slots."""
        slots = (torch.arange(start, start + len(arrays["reward"])) % self.capacity).to(self.device)
        for k in FIELDS:
            getattr(self, k)[slots] = arrays[k].to(self.device)

    def state_dict(self) -> dict:
        """The ring's position only: the transitions go to append-only replay chunks (core.checkpoint)."""
        return dict(ptr=self.ptr, size=self.size, added=self.added)

    def load_state_dict(self, state: dict) -> None:
        """Restore the position from state_dict(); restore() then refills the ring. A checkpoint written before
        replay chunks holds the arrays themselves (slots 0..size-1): they are loaded here."""
        if "arrays" in state:
            n = state["size"]
            for k, v in state["arrays"].items():
                getattr(self, k)[:n] = v.to(self.device)
            self.ptr, self.size = state["ptr"], n
            self.added = n if n < self.capacity else n + self.ptr  # any count with added % capacity == ptr
            return
        self.added = state["added"]
        self.size = min(state["size"], self.capacity)  # a resumed run may have another budget, so capacity
        self.ptr = self.added % self.capacity


def _discounted(w: Window, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A window's discounted reward sum (B, 1) and bootstrap discount gamma^k (1 - terminated) (B, 1)."""
    powers = gamma ** torch.arange(w.reward.shape[1] + 1, device=w.reward.device, dtype=torch.float32)
    reward = (w.reward * powers[:-1]).sum(1, keepdim=True)
    k = w.inside.sum(1).long()
    discount = powers[k, None] * (1.0 - w.terminated.sum(1, keepdim=True))  # at most one terminal inside
    return reward, discount
