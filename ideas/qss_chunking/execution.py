"""Open-loop execution of planned action chunks, and the reach error of the chunks that were executed.

Each stream (training, explore=True; evaluation, explore=False) keeps its own queue, so an evaluation started in the
middle of a training episode never disturbs the training chunk being executed. `reset(explore)` (called after every
env reset) flushes that stream's queue: a chunk never runs across an episode start.

Reach error: when a chunk was planned towards a proposed state s_hat_{t+n} and all its n actions were executed, the
next plan starts at the state actually reached, s_{t+n}; ||s_{t+n} - s_hat_{t+n}|| is recorded then. A chunk cut by
an episode end is dropped, and so is one whose last action ends the episode (no next plan comes to record it). The
training stream's values include its exploration noise; the evaluation stream's do not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# plan(obs (B, obs_dim)) -> (actions (B, n, act_dim), proposed s_{t+n} (B, obs_dim) or None when the agent has none)
Plan = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
# train.csv's training-stream reach error: the mean over the chunks executed in about the latest this many agent
# steps (300 // n chunks), so that every horizon averages the same stretch of experience
REACH_WINDOW_STEPS = 300


class OpenLoop:
    """Action queues per stream, per-action exploration noise, and reach-error bookkeeping (no host syncs)."""

    def __init__(self, exploration_noise: float, horizon: int, device: torch.device) -> None:
        self.exploration_noise = exploration_noise
        self.reach_window = max(1, REACH_WINDOW_STEPS // horizon)  # training-stream chunks averaged
        self.chunk: dict[bool, torch.Tensor | None] = {True: None, False: None}  # (B, n, act_dim) being executed
        self.position = {True: 0, False: 0}  # index of the next action to execute in that chunk
        self.proposed: dict[bool, torch.Tensor | None] = {True: None, False: None}  # where the chunk should lead
        self.reach_recent = torch.zeros(self.reach_window, device=device)  # training stream, a ring
        self.reach_recorded = 0  # training-stream chunks measured so far
        self.reach_eval_sum = torch.zeros((), device=device)  # evaluation stream, since the evaluation began
        self.reach_eval_count = 0
        self.trained_since_eval = True  # a training action came after the last evaluation episode began

    def reset(self, explore: bool) -> None:
        """An episode of this stream began: drop what is left of its chunk. The first evaluation episode after any
        training starts a new evaluation's reach statistics."""
        self.chunk[explore], self.position[explore], self.proposed[explore] = None, 0, None
        if not explore and self.trained_since_eval:
            self.reach_eval_sum.zero_()
            self.reach_eval_count = 0
            self.trained_since_eval = False

    def pending(self, explore: bool) -> int:
        """Actions of the stream's current chunk not executed yet (0 right after a reset)."""
        chunk = self.chunk[explore]
        return 0 if chunk is None else chunk.shape[1] - self.position[explore]

    def act(self, obs: torch.Tensor, explore: bool, plan: Plan) -> torch.Tensor:
        """The stream's next action; plans a new chunk from `obs` when the queue is empty. Training actions get
        independent Gaussian noise each (TD3's exploration), clipped to [-1, 1]."""
        if self.pending(explore) == 0:
            if self.proposed[explore] is not None:  # the previous chunk ran to its end: obs is s_{t+n}
                self._record(explore, (obs - self.proposed[explore]).norm(dim=-1).mean())
            self.chunk[explore], self.proposed[explore] = plan(obs)
            self.position[explore] = 0
        action = self.chunk[explore][:, self.position[explore]]
        self.position[explore] += 1
        if explore:
            self.trained_since_eval = True
            action = (action + self.exploration_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action

    def _record(self, explore: bool, reach: torch.Tensor) -> None:
        if explore:
            self.reach_recent[self.reach_recorded % self.reach_window] = reach
            self.reach_recorded += 1
        else:
            self.reach_eval_sum += reach
            self.reach_eval_count += 1

    def metrics(self) -> dict[str, torch.Tensor]:
        """train.csv columns: mean reach error of the latest training chunks and of the latest evaluation."""
        out = {}
        if self.reach_recorded:
            out["train/reach_error"] = self.reach_recent[:min(self.reach_recorded, self.reach_window)].mean()
        if self.reach_eval_count:
            out["train/reach_error_eval"] = self.reach_eval_sum / self.reach_eval_count
        return out

    def state_dict(self) -> dict:
        """The reach statistics (queues are not saved: checkpoints are taken at episode ends, before a reset)."""
        return dict(reach_recent=self.reach_recent.clone(), reach_recorded=self.reach_recorded,
                    reach_eval_sum=self.reach_eval_sum.clone(), reach_eval_count=self.reach_eval_count,
                    trained_since_eval=self.trained_since_eval)

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        self.reach_recent.copy_(state["reach_recent"])
        self.reach_eval_sum.copy_(state["reach_eval_sum"])
        self.reach_recorded, self.reach_eval_count = state["reach_recorded"], state["reach_eval_count"]
        self.trained_since_eval = state["trained_since_eval"]

    def summary(self) -> dict[str, float]:
        """summary.json keys: the same numbers at the end of the run (the final evaluation's, for the eval one)."""
        return {k.removeprefix("train/"): float(v) for k, v in self.metrics().items()}
