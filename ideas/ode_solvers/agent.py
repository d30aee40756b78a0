"""FlowRL-style flow-policy agent (Lv et al. 2025, bytedance/FlowRL) with pluggable ODE/SDE samplers and paths.

By default it behaves like the reference: a velocity network sampled with one midpoint step on the linear (CondOT)
path, twin critics, IQL-style buffer critics with an expectile V, and the policy loss
    L_pi = -mean(Q(s, pi(s))) + mean(w) * L_cfm,   w = clamp(lambda * exp(d - mean d), 1e-3, 1),
    d = relu(Q_buf(s, a) - Q(s, pi(s))),  L_cfm = mse(v(s, x_t, t), u_t) reduced to a scalar first.
Every deviation from the reference is a named field of FlowRLConfig whose default is the reference's value.

Networks that read the same input in an update are evaluated together (the numbers are the reference's; only the
calls are fewer): Q1, Q2 and Q_buf1, Q_buf2 are one ensemble of four members on (s, a), and their targets one call
on the stacked inputs (s', pi(s')) and (s, a).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from core.buffers import Batch, ReplayBuffer
from core.config import TrainConfig
from core.networks import EnsembleLayerNorm, EnsembleLinear, soft_update, xavier_init
from ideas.ode_solvers.paths import ProbabilityPath
from ideas.ode_solvers.samplers import FlowSampler


@dataclass
class FlowRLConfig(TrainConfig):
    RESUMABLE: ClassVar[tuple[str, ...]] = TrainConfig.RESUMABLE + ("compile", "compile_mode", "timing_every")

    idea: str = "ode_solvers"
    # --- the study's knobs
    solver: str = "midpoint"  # ODE solver (samplers.ODE_SOLVERS); FlowRL hard-codes midpoint
    flow_steps: int = 1  # solver steps per action (FlowRL: 1 midpoint step = 2 velocity evaluations)
    path: str = "linear"  # probability path (paths.PATHS); FlowRL: linear (CondOT)
    polynomial_n: float = 2.0  # exponent of the polynomial path
    use_ode_solver: bool = False  # explicit RK methods through flow_matching's ODESolver instead of the unrolled loop
    sde_noise: float = 0.0  # Flow-GRPO noise level a of the exploration SDE sampler (0 = ODE, the reference)
    sde_window_start: int = 0  # first solver step that is stochastic when sde_noise > 0
    sde_window_end: int = -1  # one past the last stochastic step (-1 = flow_steps)
    # --- networks and optimisation (FlowRL's defaults)
    hidden: int = 512  # width of every network
    lr: float = 3e-4  # Adam learning rate of all six networks
    gamma: float = 0.99  # discount
    reg_lambda: float = 0.1  # lambda of the flow-matching weight w
    expectile: float = 0.9  # expectile of V (0.8 suggested for HumanoidBench)
    target_tau: float = 0.95  # target <- (1 - tau) target + tau online; FlowRL's 0.95 is nearly a hard copy
    target_update_interval: int = 2  # updates between target updates (a standard soft update: tau 0.005, 1)
    policy_delay: int = 2  # critic updates per policy update
    # --- reference quirks, each a flag whose default is the reference's behaviour
    per_sample_weight: bool = False  # True: mean(w * per-sample mse) instead of mean(w) * scalar mse
    x0_clip: float = 1.0  # x0 = clamp(N(0, I), -x0_clip, x0_clip); 0 = unclamped Gaussian noise
    exploration_noise: float = 0.0  # Gaussian noise added to exploration actions ("we set the noise to 0")
    # --- FlowRL's replay, schedule and speed settings
    steps: int = 2_000_000  # FlowRL's budget (agent steps = frames at action repeat 1)
    bf16: bool = True  # FlowRL autocasts to bf16 on CUDA (no effect on CPU)
    recent_fraction: float = 0.2  # int(0.8 B) uniform rows + the rest from the newest transitions (FlowRL: 204 + 52)
    recent_window: int = 2048
    # --- FlowRL's data path (utilis/Replaybuffer.py, main.py), each a flag whose default is the reference's behaviour
    replay_with_replacement: bool = False  # False: random.sample, no transition twice within the uniform/recent share
    update_sees_newest: bool = False  # False: FlowRL updates before storing the step's transition, so never sees it
    warmup_steps: int = 5_000
    timing_every: int = 1_000  # updates between timings of the target sampler (perf/sampler_ms)
    compile: bool = False  # torch.compile the critic and policy steps (eager when False)
    compile_mode: str | None = None  # torch.compile mode on CUDA ("reduce-overhead" = CUDA graphs; None = default)


class VelocityField(nn.Module):
    """FlowRL's Policy_flow: cat(state, x, t) -> 512 -> LN -> ELU -> 512 -> LN -> ELU -> act (t a raw scalar)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim + act_dim + 1, hidden), nn.LayerNorm(hidden), nn.ELU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ELU(),
            nn.Linear(hidden, act_dim))
        xavier_init(self)
        self.obs_dim = obs_dim

    def forward(self, obs: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, x, t], -1))

    def bind(self, obs: torch.Tensor):
        """v(x, t) for fixed states: the state's share of the first layer is computed once per action batch, so
        each solver stage pays only for (x, t) (the same sum as cat(state, x, t) @ W, up to rounding)."""
        first, rest = self.net[0], self.net[1:]
        h_obs = F.linear(obs, first.weight[:, : self.obs_dim], first.bias)
        w_xt = first.weight[:, self.obs_dim:]
        return lambda x, t: rest(h_obs + F.linear(torch.cat([x, t], -1), w_xt))


class Critic(nn.Module):
    """`members` FlowRL critics as one batched network: Linear, LN, Linear, LN, GELU, Linear, LN, GELU, Linear, LN,
    then a scalar head. Input (B, in), the same for every member, or (members, B, in) -> (members, B, 1)."""

    def __init__(self, members: int, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.members = members
        def norm() -> EnsembleLayerNorm:
            return EnsembleLayerNorm(members, hidden)  # each twin its own LayerNorm, as the reference

        self.net = nn.Sequential(
            EnsembleLinear(members, in_dim, hidden), norm(),
            EnsembleLinear(members, hidden, hidden), norm(), nn.GELU(),
            EnsembleLinear(members, hidden, hidden), norm(), nn.GELU(),
            EnsembleLinear(members, hidden, hidden), norm(),
            EnsembleLinear(members, hidden, 1))

    def forward(self, x: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """`members` evaluates only those members (their weights as views: the others cost nothing)."""
        if members is None:
            return self.net(x if x.dim() == 3 else x.expand(self.members, *x.shape))
        params = {name: p[members] for name, p in self.net.named_parameters()}  # every parameter is member-first
        count = len(range(self.members)[members])
        return functional_call(self.net, params, (x if x.dim() == 3 else x.expand(count, *x.shape),))


POLICY, BUFFER = slice(0, 2), slice(2, 4)  # the members of FlowRLAgent.critics: Q1, Q2 and Q_buf1, Q_buf2


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric L2: |tau - 1(diff < 0)| * diff^2, diff = target - V."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


class FlowRLAgent:
    """act / reset / sample / update / summary / state_dict, as core.agent.Agent asks."""

    def __init__(self, cfg: FlowRLConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.cfg, self.device, self.act_dim = cfg, device, act_dim
        self.velocity = VelocityField(obs_dim, act_dim, cfg.hidden).to(device)
        # members 0, 1: Q1, Q2 for the policy's actions; 2, 3: the behaviour-optimal Q_buf pair
        self.critics = Critic(4, obs_dim + act_dim, cfg.hidden).to(device)
        with torch.no_grad():
            for p in self.critics.parameters():
                p[BUFFER].copy_(p[POLICY])  # the reference starts the buffer critics as a copy of the critics
        self.value = Critic(1, obs_dim, cfg.hidden).to(device)  # V(s), expectile of Q_buf
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        on_cuda = device.type == "cuda"
        opt = dict(lr=cfg.lr, fused=True)  # one kernel per optimiser step, on CPU and CUDA
        self.bf16 = cfg.bf16 and on_cuda  # CPUs gain nothing from bf16 autocast here
        self.velocity_opt = torch.optim.Adam(self.velocity.parameters(), **opt)
        self.critics_opt = torch.optim.Adam(self.critics.parameters(), **opt)  # elementwise: = one Adam per pair
        self.value_opt = torch.optim.Adam(self.value.parameters(), **opt)

        self.path = ProbabilityPath(cfg.path, polynomial_n=cfg.polynomial_n)
        window_end = cfg.flow_steps if cfg.sde_window_end < 0 else cfg.sde_window_end
        self.sampler = FlowSampler(cfg.solver, cfg.flow_steps, self.path, use_ode_solver=cfg.use_ode_solver,
                                   sde_noise=cfg.sde_noise, sde_window=(cfg.sde_window_start, window_end))
        self.updates = 0
        self.sampler_ms = float("nan")  # last timed target-sampler call (batch_size actions)

        self.critic_step = self._critic_step
        self.policy_step = self._policy_step
        # torchdiffeq's Adams and dopri5 branch on tensor values: compiled they would break graphs and recompile,
        # so only the unrolled explicit solvers are compiled (the others run eager, said once at start-up)
        if cfg.compile and self.sampler.use_ode_solver:
            print(f"warning: compile=true ignored for solver {cfg.solver} (ODESolver back end); running eager")
        elif cfg.compile:  # same functions, compiled; eager remains the fallback (compile=false)
            mode = cfg.compile_mode if on_cuda else None
            self.critic_step = torch.compile(self._critic_step, mode=mode)
            self.policy_step = torch.compile(self._policy_step, mode=mode)

    def autocast(self) -> torch.autocast:
        """bf16 autocast for forward passes when cfg.bf16 on CUDA; a no-op otherwise (losses stay float32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # ----------------------------------------------------------------- sampling actions
    def noise(self, batch: int) -> torch.Tensor:
        """x0 = clamp(N(0, I), -c, c) as FlowRL (c = 0: plain Gaussian)."""
        x0 = torch.randn(batch, self.act_dim, device=self.device)
        return x0.clamp(-self.cfg.x0_clip, self.cfg.x0_clip) if self.cfg.x0_clip > 0 else x0

    def policy(self, obs: torch.Tensor, stochastic: bool = False) -> torch.Tensor:
        """tanh(x1), x1 integrated from x0 along the velocity field; differentiable when grad is enabled."""
        x1 = self.sampler(self.velocity.bind(obs), self.noise(obs.shape[0]), stochastic=stochastic)
        return torch.tanh(x1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Exploration may use the SDE sampler and Gaussian noise; evaluation is always the ODE."""
        with self.autocast():
            action = self.policy(obs, stochastic=explore and self.cfg.sde_noise > 0).float()
        if explore and self.cfg.exploration_noise > 0:
            action = (action + self.cfg.exploration_noise * torch.randn_like(action)).clamp(-1, 1)
        return action

    def reset(self, explore: bool) -> None:
        """Nothing to do at an episode start: the policy keeps no per-episode state."""

    def sample(self, buffer: ReplayBuffer) -> Batch:
        """FlowRL's replay: int((1 - recent_fraction) B) uniform rows, the rest from the newest recent_window
        transitions, each share without replacement, drawn as if the step's own transition were not stored yet
        (the trainer stores it before updating; FlowRL updates first)."""
        cfg = self.cfg
        recent = cfg.batch_size - int(cfg.batch_size * (1.0 - cfg.recent_fraction))  # FlowRL floors the uniform share
        return buffer.sample(cfg.batch_size, cfg.gamma, recent=recent, replace=cfg.replay_with_replacement,
                             hide_newest=0 if cfg.update_sees_newest else 1)

    # ----------------------------------------------------------------- updates
    def _critic_step(self, obs, action, reward, next_obs, discount, next_action) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        sa = torch.cat([obs, action], -1)
        with torch.no_grad(), self.autocast():
            next_sa = torch.cat([next_obs, next_action], -1)
            targets = self.critics_target(torch.stack([next_sa, next_sa, sa, sa])).float()
            q_target = reward + discount * targets[POLICY].min(0)[0]  # Q'(s', pi(s'))
            v_target = targets[BUFFER].min(0)[0]  # Q_buf'(s, a)
            buf_target = reward + discount * self.value(next_obs)[0].float()
        with self.autocast():
            q_both = self.critics(sa).float()
            q, q_buf = q_both[POLICY], q_both[BUFFER]
            v = self.value(obs)[0].float()
        critic_loss = F.mse_loss(q, q_target.expand_as(q)) * 2  # sum of the two critics' MSE
        buffer_critic_loss = F.mse_loss(q_buf, buf_target.expand_as(q_buf)) * 2
        value_loss = expectile_loss(v_target - v, cfg.expectile)
        for opt in (self.critics_opt, self.value_opt):
            opt.zero_grad(set_to_none=True)
        (critic_loss + buffer_critic_loss + value_loss).backward()  # disjoint parameters: one backward for all three
        for opt in (self.critics_opt, self.value_opt):
            opt.step()
        metrics = {"train/critic_loss": critic_loss.detach(), "train/buffer_critic_loss": buffer_critic_loss.detach(),
                   "train/value_loss": value_loss.detach(), "train/q": q.detach().mean()}
        return metrics, q_buf.detach().min(0)[0]  # Q_buf(s, a) before this step: the policy's d uses it

    def _policy_step(self, obs, action, q_buf, x0, t) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        x_t, u_t = self.path.interpolate(x0, action, t)
        with self.autocast():
            pi = self.policy(obs)
            q_pi = self.critics(torch.cat([obs, pi], -1), POLICY).min(0)[0].float()
            v_pred = self.velocity(obs, x_t, t).float()
        with torch.no_grad():
            d = F.relu(q_buf - q_pi)
            w = torch.clamp(cfg.reg_lambda * torch.exp(d - d.mean()), 1e-3, 1.0)
        per_sample = (v_pred - u_t).pow(2).mean(-1, keepdim=True)
        cfm = (w * per_sample).mean() if cfg.per_sample_weight else w.mean() * per_sample.mean()
        policy_loss = -q_pi.mean() + cfm
        self.velocity_opt.zero_grad(set_to_none=True)
        policy_loss.backward(inputs=list(self.velocity.parameters()))  # dQ/da flows through; no critic grads
        self.velocity_opt.step()
        return {"train/policy_loss": policy_loss.detach(), "train/cfm_loss": per_sample.detach().mean(),
                "train/flow_weight": w.mean(), "train/q_pi": q_pi.detach().mean()}

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Critics every update; the policy every policy_delay; targets every target_update_interval."""
        cfg = self.cfg
        timed = self.updates % cfg.timing_every == 0
        with torch.no_grad():
            if timed:
                self._sync()
                t0 = time.perf_counter()
            with self.autocast():
                next_action = self.policy(batch.next_obs).float()
            if timed:
                self._sync()
                self.sampler_ms = 1e3 * (time.perf_counter() - t0)
        metrics, q_buf = self.critic_step(batch.obs, batch.action, batch.reward, batch.next_obs, batch.discount,
                                          next_action)
        if self.updates % cfg.policy_delay == 0:
            x0 = self.noise(batch.obs.shape[0])
            t = self.path.sample_t(batch.obs.shape[0], self.device)
            metrics |= self.policy_step(batch.obs, batch.action, q_buf, x0, t)
        if self.updates % cfg.target_update_interval == 0:
            soft_update(self.critics_target, self.critics, cfg.target_tau)
        self.updates += 1
        metrics = {k: v.clone() for k, v in metrics.items()}  # CUDA-graph outputs are overwritten by the next replay
        metrics["perf/sampler_ms"] = self.sampler_ms  # a float, logged with the rest at the next train.csv row
        metrics["perf/nfe_per_action"] = self.sampler.nfe
        return metrics

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def summary(self) -> dict[str, float]:
        """Idea-specific summary.json keys: measured NFE per action (last sampler call: implicit_adams and dopri5
        adapt theirs) and the sampler's time per batch."""
        return {"nfe_per_action": self.sampler.nfe, "sampler_ms_per_batch": self.sampler_ms,
                "solver": self.cfg.solver, "path": self.cfg.path, "flow_steps": self.cfg.flow_steps}

    # ----------------------------------------------------------------- checkpoints
    def _modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return dict(velocity=self.velocity, critics=self.critics, value=self.value, critics_target=self.critics_target,
                    velocity_opt=self.velocity_opt, critics_opt=self.critics_opt, value_opt=self.value_opt)

    def state_dict(self) -> dict:
        """The velocity field, the four critics, V, their targets, three optimisers and the update counter."""
        return {k: m.state_dict() for k, m in self._modules().items()} | {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        if "critic" in state:
            raise ValueError("this checkpoint holds separate critic and buffer_critic networks (written before the "
                             "critics were fused, up to commit 5a87585): resume it with that code or start anew")
        for k, m in self._modules().items():
            m.load_state_dict(state[k])
        self.updates = state["updates"]
