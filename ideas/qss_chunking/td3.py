"""TD3 (Fujimoto et al. 2018) and TD3 on n-step returns, as in the D3G code base's TD3: twin critics, clipped target
policy smoothing, an actor and Polyak target updates every `policy_delay` critic updates, Gaussian exploration."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from core.buffers import Batch, ReplayBuffer
from core.networks import EnsembleMLP, mlp, soft_update
from ideas.qss_chunking.config import ChunkingConfig


class TD3:
    """Deterministic actor pi(s) = tanh(net(s)), twin critics Q(s, a) as one ensemble."""

    def __init__(self, cfg: ChunkingConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.actor = mlp(obs_dim, cfg.hidden, act_dim, cfg.depth).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleMLP(2, obs_dim + act_dim, cfg.hidden, 1, cfg.depth).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.updates = 0  # counts critic updates: the actor and the targets move on every policy_delay-th

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """pi(s), plus N(0, exploration_noise) clipped to [-1, 1] when exploring."""
        action = torch.tanh(self.actor(obs))
        if explore:
            action = (action + self.cfg.exploration_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action

    def reset(self, explore: bool) -> None:
        """TD3 acts on each state alone: nothing to do when an episode begins."""

    def sample(self, buffer: ReplayBuffer) -> Batch:
        """One-step transitions."""
        return buffer.sample(self.cfg.batch_size, self.cfg.gamma)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """r + discount * min_j Q'_j(s', pi'(s') + clipped Gaussian noise), (B, 1)."""
        cfg = self.cfg
        noise = (torch.randn_like(batch.action) * cfg.target_noise).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
        next_action = (torch.tanh(self.actor_target(batch.next_obs)) + noise).clamp(-1.0, 1.0)
        next_q = self.critic_target(torch.cat([batch.next_obs, next_action], -1)).min(0).values
        return batch.reward + batch.discount * next_q

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Critic step to td_target; every policy_delay-th update an actor step on -Q1(s, pi(s)) and the Polyak
        update of both targets."""
        cfg = self.cfg
        self.updates += 1
        target = self.td_target(batch)
        q = self.critic(torch.cat([batch.obs, batch.action], -1))
        critic_loss = F.mse_loss(q[0], target) + F.mse_loss(q[1], target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        metrics = {"train/critic_loss": critic_loss.detach(), "train/q": q.detach().mean()}

        if self.updates % cfg.policy_delay == 0:
            action = torch.tanh(self.actor(batch.obs))
            actor_loss = -self.critic(torch.cat([batch.obs, action], -1))[0].mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            metrics["train/actor_loss"] = actor_loss.detach()
        return metrics

    def summary(self) -> dict[str, Any]:
        """No keys beyond the trainer's."""
        return {}

    def state_dict(self) -> dict:
        """Networks, targets, optimisers and the update counter."""
        return dict(actor=self.actor.state_dict(), actor_target=self.actor_target.state_dict(),
                    critic=self.critic.state_dict(), critic_target=self.critic_target.state_dict(),
                    actor_opt=self.actor_opt.state_dict(), critic_opt=self.critic_opt.state_dict(),
                    updates=self.updates)

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        for name in ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]


class NStepTD3(TD3):
    """TD3 whose critic learns from n-step returns: target sum_{i<k} gamma^i r_{t+i} + gamma^k (1 - d) min Q'(s_{t+k},
    pi'(s_{t+k}) + noise), k = n or fewer where the episode ends (core.buffers.sample_nstep). At n = 1 it is TD3."""

    def sample(self, buffer: ReplayBuffer) -> Batch:
        """n-step transitions (the reward and discount already hold the n steps)."""
        return buffer.sample_nstep(self.cfg.batch_size, self.cfg.horizon, self.cfg.gamma)
