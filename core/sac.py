"""Soft Actor-Critic: the shared baseline (tanh-Gaussian actor, twin critics as one batched network, learned
temperature). Haarnoja et al. 2018, with the usual continuous-control defaults."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.buffers import Batch, ReplayBuffer
from core.config import TrainConfig
from core.networks import EnsembleMLP, Temperature, mlp, soft_update

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass
class SACConfig(TrainConfig):
    idea: str = "sac"
    hidden: int = 256  # width of actor and critic hidden layers
    depth: int = 2  # hidden layers per network
    lr: float = 3e-4  # Adam learning rate (actor, critics, temperature)
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics, every update
    init_temperature: float = 0.1  # initial entropy temperature alpha
    target_entropy_scale: float = 1.0  # target entropy = -scale * act_dim
    warmup_steps: int = 5_000


class Actor(nn.Module):
    """obs -> tanh-squashed Gaussian over actions in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim, depth)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (sampled action, its log-prob (B, 1), deterministic action)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        std = log_std.exp()
        pre_tanh = mean + std * torch.randn_like(mean)
        action = torch.tanh(pre_tanh)
        gauss_logp = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, True)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form
        squash = (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1, True)
        return action, gauss_logp - squash, torch.tanh(mean)


class SAC:
    """The agent: act / reset / sample / update / summary / state_dict, as core.agent.Agent asks.

    Networks are built by `make_actor` and `make_critic`: a subclass overrides one of them (e.g. a critic whose first
    layer is a KAN layer) and keeps the targets, optimisers and update as they are.
    """

    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.actor = self.make_actor(obs_dim, act_dim).to(device)
        self.critic = self.make_critic(obs_dim, act_dim).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.temperature = Temperature(cfg.init_temperature, -cfg.target_entropy_scale * act_dim, cfg.lr, device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)

    def make_actor(self, obs_dim: int, act_dim: int) -> nn.Module:
        """obs -> (sampled action, log-prob, deterministic action)."""
        return Actor(obs_dim, act_dim, self.cfg.hidden, self.cfg.depth)

    def make_critic(self, obs_dim: int, act_dim: int) -> nn.Module:
        """Twin Q-networks as one ensemble: (B, obs_dim + act_dim) -> (2, B, 1)."""
        return EnsembleMLP(2, obs_dim + act_dim, self.cfg.hidden, 1, self.cfg.depth)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Sampled action when exploring, tanh(mean) for evaluation."""
        sample, _, mean = self.actor(obs)
        return sample if explore else mean

    def reset(self, explore: bool) -> None:
        """SAC acts on each state alone: nothing to do when an episode begins."""

    def sample(self, buffer: ReplayBuffer) -> Batch:
        """Uniform (or recent-biased, per config) one-step transitions."""
        return buffer.sample(self.cfg.batch_size, self.cfg.gamma)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One critic, actor and temperature step, then the Polyak target update."""
        alpha = self.temperature.alpha()
        with torch.no_grad():
            next_action, next_logp, _ = self.actor(batch.next_obs)
            next_q = self.critic_target(torch.cat([batch.next_obs, next_action], -1)).min(0).values
            target = batch.reward + batch.discount * (next_q - alpha * next_logp)
        q = self.critic(torch.cat([batch.obs, batch.action], -1))
        critic_loss = F.mse_loss(q, target.expand_as(q)) * 2  # sum over the two critics of their MSE
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        action, logp, _ = self.actor(batch.obs)
        q_pi = self.critic(torch.cat([batch.obs, action], -1)).min(0).values
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        self.temperature.update(logp)
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": actor_loss.detach(),
                "train/alpha": alpha, "train/entropy": -logp.detach().mean(), "train/q": q.detach().mean()}

    def summary(self) -> dict[str, Any]:
        """No keys beyond the trainer's."""
        return {}

    def state_dict(self) -> dict:
        """Networks, target, optimisers and temperature."""
        return dict(actor=self.actor.state_dict(), critic=self.critic.state_dict(),
                    critic_target=self.critic_target.state_dict(),
                    log_alpha=self.temperature.log_alpha.detach().clone(), actor_opt=self.actor_opt.state_dict(),
                    critic_opt=self.critic_opt.state_dict(), alpha_opt=self.temperature.opt.state_dict())

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.temperature.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.temperature.opt.load_state_dict(state["alpha_opt"])
