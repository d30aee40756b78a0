"""A Q-chunking-style critic with a TD3 chunk actor (after Li, Zhou, Levine 2025, without their behaviour prior):
Q(s_t, a_{t:t+n}) on the flattened chunk, a deterministic actor emitting n actions executed open-loop, TD3's target
smoothing, delay and exploration.

Target: y = sum_{i<n} gamma^i r_{t+i} + gamma^n (1 - d) min_j Q'_j(s_{t+n}, pi'(s_{t+n}) + clipped noise). A chunk cut
by an episode end before its last action (Chunk.valid = 0) is left out of the critic loss: its actions past the end
were never executed. At n = 1 every chunk is valid and this is TD3.

Windows start at any stored step (as Q-chunking samples them), not only where an executed chunk began, so a window can
join the tail of one plan to the head of the next, or warm-up actions: the open-loop-consistency bias that Decoupled
Q-chunking (shared/reference/qss_chunking.md) describes, kept here as in the method it follows.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from core.buffers import Chunk, ReplayBuffer
from core.networks import EnsembleMLP, mlp, soft_update
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.execution import OpenLoop


class ChunkTD3:
    """Actor s_t -> a_{t:t+n} (tanh), twin critics Q(s_t, a_{t:t+n}) as one ensemble, open-loop execution."""

    def __init__(self, cfg: ChunkingConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.cfg, self.device, self.act_dim = cfg, device, act_dim
        chunk_dim = cfg.horizon * act_dim
        self.actor = mlp(obs_dim, cfg.hidden, chunk_dim, cfg.depth).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleMLP(2, obs_dim + chunk_dim, cfg.hidden, 1, cfg.depth).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.updates = 0
        self.open_loop = OpenLoop(cfg.exploration_noise, cfg.horizon, device)

    def plan(self, obs: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The actor's chunk (B, n, act_dim) from s_t; no proposed state."""
        return torch.tanh(self.actor(obs)).unflatten(-1, (self.cfg.horizon, self.act_dim)), None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """The next action of the stream's chunk (a new chunk when it is used up), noised per action if exploring."""
        return self.open_loop.act(obs, explore, self.plan)

    def reset(self, explore: bool) -> None:
        """Flush the stream's chunk."""
        self.open_loop.reset(explore)

    def sample(self, buffer: ReplayBuffer) -> Chunk:
        """Windows of n executed actions."""
        return buffer.sample_chunk(self.cfg.batch_size, self.cfg.horizon, self.cfg.gamma)

    @torch.no_grad()
    def td_target(self, batch: Chunk) -> torch.Tensor:
        """sum_{i<n} gamma^i r_{t+i} + gamma^n (1 - d) min_j Q'_j(s_{t+n}, pi'(s_{t+n}) + clipped noise), (B, 1)."""
        cfg = self.cfg
        noise = torch.randn_like(batch.actions.flatten(1)) * cfg.target_noise
        noise = noise.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
        next_chunk = (torch.tanh(self.actor_target(batch.next_obs)) + noise).clamp(-1.0, 1.0)
        next_q = self.critic_target(torch.cat([batch.next_obs, next_chunk], -1)).min(0).values
        return batch.reward + batch.discount * next_q

    def update(self, batch: Chunk) -> dict[str, torch.Tensor]:
        """Critic step to td_target on valid chunks; every policy_delay-th update an actor step on -Q1(s, pi(s))
        (every row: s_t is always a real state) and the Polyak update of both targets."""
        cfg = self.cfg
        self.updates += 1
        actions = batch.actions.flatten(1)
        target = self.td_target(batch)
        weight = batch.valid / batch.valid.sum().clamp_min(1.0)  # a mean over the valid rows
        q = self.critic(torch.cat([batch.obs, actions], -1))
        critic_loss = (weight * (q - target) ** 2).sum()  # both critics' masked MSEs, summed
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        metrics = {"train/critic_loss": critic_loss.detach(), "train/q": q.detach().mean(),
                   "train/valid_chunks": batch.valid.mean()}

        if self.updates % cfg.policy_delay == 0:
            chunk = torch.tanh(self.actor(batch.obs))
            actor_loss = -self.critic(torch.cat([batch.obs, chunk], -1))[0].mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            metrics["train/actor_loss"] = actor_loss.detach()
        return metrics

    def summary(self) -> dict[str, Any]:
        """No keys beyond the trainer's (this agent proposes no states: no reach error)."""
        return {}

    def state_dict(self) -> dict:
        """Networks, targets, optimisers and the update counter (queues are flushed at every resume's reset)."""
        return dict(actor=self.actor.state_dict(), actor_target=self.actor_target.state_dict(),
                    critic=self.critic.state_dict(), critic_target=self.critic_target.state_dict(),
                    actor_opt=self.actor_opt.state_dict(), critic_opt=self.critic_opt.state_dict(),
                    updates=self.updates)

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        for name in ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]
