"""Pluggable samplers for the flow policy: x0 (noise, t = 0) -> x1 (pre-tanh action, t = 1).

Two back ends integrate dx/dt = velocity(x, clip_time(t)) on the uniform grid linspace(0, 1, flow_steps + 1):
- unrolled explicit Runge-Kutta (euler, midpoint, heun2, heun3, rk4): plain tensor code with the same Butcher
  tableaus as torchdiffeq 0.2.5's fixed-grid solvers, no branch on tensor values and no host sync, so
  torch.compile and CUDA graphs can capture it;
- flow_matching's ODESolver (torchdiffeq) for the Adams methods, dopri5, or any method with use_ode_solver=True.
The default (midpoint, flow_steps = 1, linear path) is FlowRL's hand-written midpoint step.

Exploration can use a stochastic sampler instead: Euler-Maruyama steps of the marginal-preserving Flow-GRPO SDE on
a window of steps and the chosen RK method elsewhere (MixGRPO / Flow-GRPO-Fast mixed schedules).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from flow_matching.solver import ODESolver
from torch import Tensor

from ideas.ode_solvers.paths import SCORE_T_EPS, ProbabilityPath

ODE_SOLVERS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "dopri5")
UNROLLED = frozenset({"euler", "midpoint", "heun2", "heun3", "rk4"})

# torchdiffeq 0.2.5 fixed_adams.py: a step uses rk4 while the derivative history holds fewer than 3 entries, i.e.
# only the FIRST TWO steps; from step 3 on it is Adams-Bashforth (1 evaluation), and implicit_adams adds up to
# _MAX_ITERS = 4 Adams-Moulton corrector evaluations, stopping early once converged (a host sync per iteration).
ADAMS_RK4_STEPS = 2
ADAMS_MAX_CORRECTOR_ITERS = 4

Velocity = Callable[[Tensor, Tensor], Tensor]


class Tableau(NamedTuple):
    """An explicit Runge-Kutta Butcher tableau: stage times c, stage weights a (lower triangle), weights b."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]


# Identical to torchdiffeq 0.2.5 fixed_grid.py / rk_common.py; its "rk4" is the 3/8 rule (rk4_alt_step_func).
TABLEAUS = {
    "euler": Tableau((0.0,), ((),), (1.0,)),
    "midpoint": Tableau((0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
    "heun2": Tableau((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    "heun3": Tableau((0.0, 1 / 3, 2 / 3), ((), (1 / 3,), (0.0, 2 / 3)), (0.25, 0.0, 0.75)),
    "rk4": Tableau(
        (0.0, 1 / 3, 2 / 3, 1.0), ((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)), (0.125, 0.375, 0.375, 0.125)
    ),
}


def _check_solver(solver: str) -> None:
    if solver not in ODE_SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; valid choices: {', '.join(ODE_SOLVERS)}")


def nfe_per_action(solver: str, flow_steps: int) -> float:
    """Velocity evaluations per action (implicit_adams: the maximum; dopri5: nan, read FlowSampler.nfe)."""
    _check_solver(solver)
    if solver in UNROLLED:
        return float(len(TABLEAUS[solver].c) * flow_steps)
    if solver == "dopri5":
        return float("nan")
    start = min(flow_steps, ADAMS_RK4_STEPS)
    per_adams_step = 1 + (ADAMS_MAX_CORRECTOR_ITERS if solver == "implicit_adams" else 0)
    return float(4 * start + per_adams_step * (flow_steps - start))


def degenerate_comparison(solver: str, flow_steps: int) -> str | None:
    """A warning line when this solver at this step count is another solver under a new name."""
    _check_solver(solver)
    if solver in ("explicit_adams", "implicit_adams") and flow_steps <= ADAMS_RK4_STEPS:
        return (f"{solver} with flow_steps={flow_steps} is identical to rk4: torchdiffeq 0.2.5 starts Adams with "
                f"rk4 for its first {ADAMS_RK4_STEPS} steps, so a comparison with rk4 measures nothing")
    return None


def rk_step(tableau: Tableau, f: Callable[[Tensor, float], Tensor], x: Tensor, t: float, dt: float) -> Tensor:
    """One explicit Runge-Kutta step of dx/dt = f(x, t) from t to t + dt."""
    ks: list[Tensor] = []
    for c, a in zip(tableau.c, tableau.a, strict=True):
        x_stage = x
        for a_j, k_j in zip(a, ks, strict=False):
            if a_j != 0.0:
                x_stage = x_stage + (dt * a_j) * k_j
        ks.append(f(x_stage, t + c * dt))
    dx = None
    for b_j, k_j in zip(tableau.b, ks, strict=True):
        if b_j != 0.0:
            dx = (dt * b_j) * k_j if dx is None else dx + (dt * b_j) * k_j
    return x + dx


class FlowSampler:
    """Integrates a velocity field from noise (t = 0) to action (t = 1) with a chosen ODE or SDE scheme.

    sde_window = (start, stop) makes steps start <= k < stop stochastic when called with stochastic=True and
    sde_noise > 0 (default: every step); the other steps stay steps of `solver`. nfe counts the last call's
    velocity evaluations (measured for the ODESolver back end, so dopri5 and implicit_adams report what they did).
    """

    def __init__(
        self,
        solver: str,
        flow_steps: int,
        path: ProbabilityPath,
        use_ode_solver: bool = False,
        sde_noise: float = 0.0,
        sde_window: tuple[int, int] | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
    ) -> None:
        _check_solver(solver)
        if flow_steps < 1:
            raise ValueError(f"flow_steps must be >= 1, got {flow_steps}")
        if sde_noise < 0:
            raise ValueError(f"sde_noise must be >= 0, got {sde_noise}")
        if sde_noise > 0 and solver not in UNROLLED:
            raise ValueError(f"the stochastic sampler needs an explicit RK solver; valid choices: "
                             f"{', '.join(s for s in ODE_SOLVERS if s in UNROLLED)} (got {solver!r})")
        window = (0, flow_steps) if sde_window is None else tuple(sde_window)
        if len(window) != 2 or not 0 <= window[0] < window[1] <= flow_steps:
            raise ValueError(f"sde_window must be (start, stop) with 0 <= start < stop <= flow_steps={flow_steps}, "
                             f"got {sde_window}")
        self.solver = solver
        self.flow_steps = int(flow_steps)
        self.path = path
        self.use_ode_solver = use_ode_solver or solver not in UNROLLED
        self.sde_noise = float(sde_noise)
        self.sde_window = window
        self.atol = atol
        self.rtol = rtol
        self.nfe = 0  # velocity evaluations of the last call

    def __call__(self, velocity: Velocity, x0: Tensor, stochastic: bool = False) -> Tensor:
        """Sample x1 from x0; differentiable when grad is enabled. velocity(x, t) takes t of shape (B, 1)."""
        if stochastic and self.sde_noise > 0:
            return self._unrolled(velocity, x0, sde=True)
        if self.use_ode_solver:
            return self._ode_solver(velocity, x0)
        return self._unrolled(velocity, x0, sde=False)

    def _unrolled(self, velocity: Velocity, x0: Tensor, sde: bool) -> Tensor:
        def f(x: Tensor, t: float) -> Tensor:
            return velocity(x, x.new_full((x.shape[0], 1), self.path.clip_time(t)))

        tableau = TABLEAUS[self.solver]
        dt = 1.0 / self.flow_steps
        start, stop = self.sde_window
        x, nfe = x0, 0
        for k in range(self.flow_steps):
            t = k * dt  # k * dt, not a running sum: FlowRL's grid, and no drift over many steps
            if sde and start <= k < stop:
                x = self._sde_step(f, x, t, dt)
                nfe += 1
            else:
                x = rk_step(tableau, f, x, t, dt)
                nfe += len(tableau.c)
        self.nfe = nfe
        return x

    def _sde_step(self, f: Callable[[Tensor, float], Tensor], x: Tensor, t: float, dt: float) -> Tensor:
        # Euler-Maruyama on dx = [v + s^2/2 * score] dt + s dW, which keeps the ODE's marginals for any s(t).
        # s_t = a sqrt((1 - t) / t) is Flow-GRPO's a sqrt(t' / (1 - t')) with t' = 1 - t. At t = 0 it is infinite;
        # like Flow-GRPO (which swaps the noise-end time for the next grid time) the floor is max(dt, eps), not eps:
        # with a 1e-3 floor the first step's s^2 dt = a^2 * 999 * dt blows the sample up on coarse grids.
        v = f(x, t)
        t_s = min(max(t, dt, SCORE_T_EPS), 1.0 - SCORE_T_EPS)
        s = self.sde_noise * math.sqrt((1.0 - t_s) / t_s)
        score = self.path.score_from_velocity(x, v, x.new_full((x.shape[0], 1), t))
        return x + (v + (0.5 * s * s) * score) * dt + (s * math.sqrt(dt)) * torch.randn_like(x)

    def _ode_solver(self, velocity: Velocity, x0: Tensor) -> Tensor:
        nfe = 0

        def model(x: Tensor, t: Tensor) -> Tensor:
            # ODESolver calls model(x=x, t=t) with a 0-d t: clip it and broadcast to the agent's (B, 1).
            nonlocal nfe
            nfe += 1
            return velocity(x, self.path.clip_time(t.to(x.dtype)).reshape(1, 1).expand(x.shape[0], 1))

        # An explicit grid: time_grid [0, 1] with step_size=None silently takes ONE step (flow_matching issue #67).
        # dopri5 picks its own steps; its grid only names the output times.
        n_points = 2 if self.solver == "dopri5" else self.flow_steps + 1
        grid = torch.linspace(0.0, 1.0, n_points, device=x0.device, dtype=x0.dtype)
        x1 = ODESolver(model).sample(
            x0, step_size=None, method=self.solver, atol=self.atol, rtol=self.rtol, time_grid=grid,
            enable_grad=torch.is_grad_enabled(),
        )
        self.nfe = nfe
        return x1
