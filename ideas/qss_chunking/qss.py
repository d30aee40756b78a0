"""QSS-chunking: D3G generalised to a horizon n. The critic scores a jump Q(s_t, s_{t+n}); a proposal predicts
s_{t+n} = s_t + M(s_t); an inverse decoder I(s_t, s_{t+n}) emits the n actions a_{t:t+n} that lead there, executed
open-loop; a chunk forward model f(s_t, a_{t:t+n}) predicts s_{t+n} - s_t.

Every update, on windows of n executed actions (core.buffers.sample_chunk), in D3G's order:
  critic to y = sum_{i<n} gamma^i r_{t+i} + gamma^n (1 - d) min_j Q'_j(s_{t+n}, cycle(s_{t+n})), where
  cycle(s) = s + f(s, I(s, s + M'(s))) (the online I and f, before their steps);
  I to the mse between I(s_t, s_{t+n}) and a_{t:t+n}; f to mse(f(s_t, a_{t:t+n}), s_{t+n} - s_t);
every policy_delay-th update: s_hat = s + M(s), s_cyc = s + f(s, I(s, s_hat)),
  M to -Q_1(s, s_cyc).mean() + mse(s_cyc, s_hat), then the Polyak update of the critic and M targets.
Chunks cut by an episode end before their last action (Chunk.valid = 0) are left out of the critic, I and f losses
(their s_{t+n} does not exist); M's loss needs s_t only and uses every row. With n = 1 and decoder=mlp every chunk is
valid and each loss is D3G's (tests/test_equivalence.py checks it update for update). Windows start at any stored
step, as in ideas/qss_chunking/td3_chunk.py, so one can straddle two executed chunks.

Decoders: `mlp` outputs n x |A| numbers; `gru` maps (s_t, s_{t+n}) to a latent z that a GRU unrolls into n actions, so
the chunk length is a loop count, not an output size.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.buffers import Chunk, ReplayBuffer
from core.networks import EnsembleMLP, mlp, soft_update
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.execution import OpenLoop


class MLPDecoder(nn.Sequential):
    """(s_t, s_{t+n}) -> n actions from one MLP with n x act_dim tanh outputs (D3G's inverse model at n = 1, with
    the same parameter names)."""

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, hidden: int, depth: int) -> None:
        super().__init__(*mlp(2 * obs_dim, hidden, horizon * act_dim, depth))
        self.horizon, self.act_dim = horizon, act_dim

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """(B, 2 obs_dim) -> (B, n, act_dim)."""
        return torch.tanh(super().forward(pair)).unflatten(-1, (self.horizon, self.act_dim))


class GRUDecoder(nn.Module):
    """(s_t, s_{t+n}) -> latent z (an MLP) -> a GRU whose state starts at tanh(z) and whose input at each step is the
    previous action (zeros first) -> one tanh action per step, for n steps (a seq2seq decoder; z is not fed again)."""

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, hidden: int, depth: int, latent: int) -> None:
        super().__init__()
        self.horizon, self.act_dim = horizon, act_dim
        self.encoder = mlp(2 * obs_dim, hidden, latent, depth)
        self.cell = nn.GRUCell(act_dim, latent)
        self.head = nn.Linear(latent, act_dim)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """(B, 2 obs_dim) -> (B, n, act_dim)."""
        z = self.encoder(pair)
        state, action = torch.tanh(z), z.new_zeros(z.shape[0], self.act_dim)
        actions = []
        for _ in range(self.horizon):
            state = self.cell(action, state)
            action = torch.tanh(self.head(state))
            actions.append(action)
        return torch.stack(actions, 1)


def make_decoder(cfg: ChunkingConfig, obs_dim: int, act_dim: int) -> nn.Module:
    """The inverse decoder cfg.decoder names."""
    if cfg.decoder == "gru":
        return GRUDecoder(obs_dim, act_dim, cfg.horizon, cfg.hidden, cfg.depth, cfg.latent)
    return MLPDecoder(obs_dim, act_dim, cfg.horizon, cfg.hidden, cfg.depth)


class QSS:
    """Q(s_t, s_{t+n}) with a proposal, an n-action inverse decoder and a chunk forward model (D3G's names)."""

    def __init__(self, cfg: ChunkingConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        n = cfg.horizon
        self.critic = EnsembleMLP(2, 2 * obs_dim, cfg.hidden, 1, cfg.depth).to(device)  # Q(s_t, s_{t+n})
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.proposal = mlp(obs_dim, cfg.hidden, obs_dim, cfg.depth).to(device)  # M(s_t) = s_{t+n} - s_t
        self.proposal_target = copy.deepcopy(self.proposal).requires_grad_(False)
        self.inverse = make_decoder(cfg, obs_dim, act_dim).to(device)  # I(s_t, s_{t+n}) -> (B, n, act_dim)
        self.forward_model = mlp(obs_dim + n * act_dim, cfg.hidden, obs_dim, cfg.depth).to(device)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.proposal_opt = torch.optim.Adam(self.proposal.parameters(), lr=cfg.lr, fused=True)
        self.inverse_opt = torch.optim.Adam(self.inverse.parameters(), lr=cfg.lr, fused=True)
        self.forward_opt = torch.optim.Adam(self.forward_model.parameters(), lr=cfg.lr, fused=True)
        self.updates = 0
        self.open_loop = OpenLoop(cfg.exploration_noise, cfg.horizon, device)
        self.diagnostics: dict[str, torch.Tensor] = {}  # the latest update's model errors, for summary()

    def decode(self, obs: torch.Tensor, reached: torch.Tensor) -> torch.Tensor:
        """I(s_t, s_{t+n}): the n actions (B, n, act_dim) that lead from s_t to s_{t+n}."""
        return self.inverse(torch.cat([obs, reached], -1))

    def predict_delta(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """f(s_t, a_{t:t+n}): the predicted s_{t+n} - s_t."""
        return self.forward_model(torch.cat([obs, actions.flatten(1)], -1))

    def plan(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The chunk I(s, tau(s)) (B, n, act_dim) and the proposed s_{t+n} = tau(s) = s + M(s)."""
        proposed = obs + self.proposal(obs)
        return self.decode(obs, proposed), proposed

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """The next action of the stream's chunk (a new plan when it is used up), noised per action if exploring."""
        return self.open_loop.act(obs, explore, self.plan)

    def reset(self, explore: bool) -> None:
        """Flush the stream's chunk."""
        self.open_loop.reset(explore)

    def sample(self, buffer: ReplayBuffer) -> Chunk:
        """Windows of n executed actions and the state they reached."""
        return buffer.sample_chunk(self.cfg.batch_size, self.cfg.horizon, self.cfg.gamma)

    @torch.no_grad()
    def td_target(self, batch: Chunk) -> torch.Tensor:
        """sum_{i<n} gamma^i r_{t+i} + gamma^n (1 - d) min_j Q'_j(s_{t+n}, cycle(s_{t+n})), (B, 1)."""
        reached = batch.next_obs
        next_proposed = reached + self.proposal_target(reached)
        next_cycle = reached + self.predict_delta(reached, self.decode(reached, next_proposed))
        return batch.reward + batch.discount * self.critic_target(torch.cat([reached, next_cycle], -1)).min(0).values

    def update(self, batch: Chunk) -> dict[str, torch.Tensor]:
        """Critic, inverse and forward steps on valid chunks; every policy_delay-th update the proposal step and the
        target update."""
        cfg = self.cfg
        self.updates += 1
        obs, actions, reached = batch.obs, batch.actions, batch.next_obs
        target = self.td_target(batch)
        weight = batch.valid / batch.valid.sum().clamp_min(1.0)  # (B, 1): a mean over the valid rows
        q = self.critic(torch.cat([obs, reached], -1))
        critic_loss = (weight * (q - target) ** 2).sum()  # both critics' masked MSEs, summed
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        step_error = (weight * ((self.decode(obs, reached) - actions) ** 2).mean(-1)).sum(0)  # (n,): per chunk step
        inverse_loss = step_error.mean()  # = the masked MSE over all n x act_dim outputs
        self.inverse_opt.zero_grad(set_to_none=True)
        inverse_loss.backward()
        self.inverse_opt.step()

        forward_error = ((self.predict_delta(obs, actions) - (reached - obs)) ** 2).mean(-1, keepdim=True)
        forward_loss = (weight * forward_error).sum()
        self.forward_opt.zero_grad(set_to_none=True)
        forward_loss.backward()
        self.forward_opt.step()

        self.diagnostics = {"train/inverse_loss": inverse_loss.detach(), "train/forward_loss": forward_loss.detach()}
        self.diagnostics |= {f"train/decoder_error_step{i + 1}": e for i, e in enumerate(step_error.detach())}
        metrics = {"train/critic_loss": critic_loss.detach(), "train/q": q.detach().mean(),
                   "train/valid_chunks": batch.valid.mean(), **self.diagnostics, **self.open_loop.metrics()}
        if self.updates % cfg.policy_delay == 0:
            # the backward pass also fills the critic's, I's and f's .grad: each is cleared before its own next step
            proposed = obs + self.proposal(obs)
            cycle = obs + self.predict_delta(obs, self.decode(obs, proposed))
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
        """The latest model errors per chunk step and the reach errors (training stream; final evaluation)."""
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
