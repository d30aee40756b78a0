"""D3G (Edwards et al., ICML 2020, "Estimating Q(s, s') with Deep Deterministic Dynamics Gradients"), as published in
github.com/uber-research/D3G (D3G/D3G.py and main.py).

Networks: twin critics Q(s, s'); a proposal tau(s) = s + M(s); inverse dynamics I(s, s') = tanh(net(s, s')); a
forward model f(s, a) predicting s' - s. Only the critic and M have targets. Every update (in this order):
  critic to y = r + gamma (1 - d) min_j Q'_j(s', s' + f(s', I(s', s' + M'(s')))) (the online I and f, before their
  steps); I to mse(I(s, s'), a); f to mse(f(s, a), s' - s);
every policy_delay-th update: s_hat = s + M(s), s_cyc = s + f(s, I(s, s_hat)),
  M to -Q_1(s, s_cyc).mean() + mse(s_cyc, s_hat), then the Polyak update of the critic and M targets.
Acting: a = I(s, s + M(s)), plus N(0, exploration_noise) when exploring. It assumes deterministic dynamics and a
reward of (s, s') alone (config.CONTROL_REWARD_TASKS are refused).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from core.buffers import Batch, ReplayBuffer
from core.networks import EnsembleMLP, mlp, soft_update
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.execution import OpenLoop


class D3G:
    """One-step D3G; its plans are chunks of one action, so the reach error is ||s_{t+1} - (s_t + M(s_t))||."""

    def __init__(self, cfg: ChunkingConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.critic = EnsembleMLP(2, 2 * obs_dim, cfg.hidden, 1, cfg.depth).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.proposal = mlp(obs_dim, cfg.hidden, obs_dim, cfg.depth).to(device)  # M(s) = tau(s) - s
        self.proposal_target = copy.deepcopy(self.proposal).requires_grad_(False)
        self.inverse = mlp(2 * obs_dim, cfg.hidden, act_dim, cfg.depth).to(device)  # I(s, s') before its tanh
        self.forward_model = mlp(obs_dim + act_dim, cfg.hidden, obs_dim, cfg.depth).to(device)  # f(s, a) = s' - s
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.proposal_opt = torch.optim.Adam(self.proposal.parameters(), lr=cfg.lr, fused=True)
        self.inverse_opt = torch.optim.Adam(self.inverse.parameters(), lr=cfg.lr, fused=True)
        self.forward_opt = torch.optim.Adam(self.forward_model.parameters(), lr=cfg.lr, fused=True)
        self.updates = 0
        self.open_loop = OpenLoop(cfg.exploration_noise, cfg.horizon, device)
        self.diagnostics: dict[str, torch.Tensor] = {}  # the latest update's model errors, for summary()

    def invert(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """I(s, s'): the action that leads from s to s'."""
        return torch.tanh(self.inverse(torch.cat([obs, next_obs], -1)))

    def plan(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A one-action chunk I(s, tau(s)) (B, 1, act_dim) and the proposed next state tau(s) = s + M(s)."""
        proposed = obs + self.proposal(obs)
        return self.invert(obs, proposed)[:, None], proposed

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """I(s, s + M(s)), noised when exploring."""
        return self.open_loop.act(obs, explore, self.plan)

    def reset(self, explore: bool) -> None:
        """Flush the stream's (one-action) plan."""
        self.open_loop.reset(explore)

    def sample(self, buffer: ReplayBuffer) -> Batch:
        """One-step transitions."""
        return buffer.sample(self.cfg.batch_size, self.cfg.gamma)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """r + discount * min_j Q'_j(s', s' + f(s', I(s', s' + M'(s')))), (B, 1)."""
        next_obs = batch.next_obs
        next_proposed = next_obs + self.proposal_target(next_obs)
        next_action = self.invert(next_obs, next_proposed)
        next_cycle = next_obs + self.forward_model(torch.cat([next_obs, next_action], -1))
        return batch.reward + batch.discount * self.critic_target(torch.cat([next_obs, next_cycle], -1)).min(0).values

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Critic, inverse and forward steps; every policy_delay-th update the proposal step and the target update."""
        cfg = self.cfg
        self.updates += 1
        obs, action, next_obs = batch.obs, batch.action, batch.next_obs
        target = self.td_target(batch)
        q = self.critic(torch.cat([obs, next_obs], -1))
        critic_loss = F.mse_loss(q[0], target) + F.mse_loss(q[1], target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        inverse_loss = F.mse_loss(self.invert(obs, next_obs), action)
        self.inverse_opt.zero_grad(set_to_none=True)
        inverse_loss.backward()
        self.inverse_opt.step()

        forward_loss = F.mse_loss(self.forward_model(torch.cat([obs, action], -1)), next_obs - obs)
        self.forward_opt.zero_grad(set_to_none=True)
        forward_loss.backward()
        self.forward_opt.step()

        self.diagnostics = {"train/inverse_loss": inverse_loss.detach(), "train/forward_loss": forward_loss.detach(),
                            "train/decoder_error_step1": inverse_loss.detach()}  # one step: the inverse loss
        metrics = {"train/critic_loss": critic_loss.detach(), "train/q": q.detach().mean(), **self.diagnostics,
                   **self.open_loop.metrics()}
        if self.updates % cfg.policy_delay == 0:
            # the backward pass also fills the critic's, I's and f's .grad: each is cleared before its own next step
            proposed = obs + self.proposal(obs)
            cycle = obs + self.forward_model(torch.cat([obs, self.invert(obs, proposed)], -1))
            value_loss = -self.critic(torch.cat([obs, cycle], -1))[0].mean()
            cycle_loss = F.mse_loss(cycle, proposed)
            proposal_loss = value_loss + cycle_loss
            self.proposal_opt.zero_grad(set_to_none=True)
            proposal_loss.backward()
            self.proposal_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.proposal_target, self.proposal, cfg.tau)
            metrics |= {"train/proposal_loss": proposal_loss.detach(), "train/cycle_loss": cycle_loss.detach()}
        return metrics

    def summary(self) -> dict[str, Any]:
        """The latest model errors and the reach errors (training stream; final evaluation)."""
        latest = {k.removeprefix("train/"): float(v) for k, v in self.diagnostics.items()}
        return latest | self.open_loop.summary()

    def state_dict(self) -> dict:
        """Networks, targets, optimisers, the update counter and the reach statistics."""
        return {name: getattr(self, name).state_dict() for name in STATE} | {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        for name in STATE:
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]


STATE = ("critic", "critic_target", "proposal", "proposal_target", "inverse", "forward_model", "critic_opt",
         "proposal_opt", "inverse_opt", "forward_opt", "open_loop")
