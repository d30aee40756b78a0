"""Samplers: FlowRL's midpoint step, unrolled == torchdiffeq, gradients, NFE, and the SDE's marginals."""

import functools
import math

import pytest
import torch
from torch import nn

from ideas.ode_solvers.paths import ProbabilityPath
from ideas.ode_solvers.samplers import (
    ODE_SOLVERS,
    UNROLLED,
    FlowSampler,
    degenerate_comparison,
    nfe_per_action,
)

OBS, ACT, BATCH = 5, 3, 16
FIXED_GRID = [s for s in ODE_SOLVERS if s != "dopri5"]


class VelocityNet(nn.Module):
    """A small FlowRL Policy_flow: cat(state, x, t) -> Linear -> LayerNorm -> ELU -> Linear."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS + ACT + 1, hidden), nn.LayerNorm(hidden), nn.ELU(),
                                 nn.Linear(hidden, ACT))
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=0.1)  # non-zero so the bias gradients are compared too

    def forward(self, state: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, x, t], dim=-1))


def _setup(dtype: torch.dtype = torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    net = VelocityNet().to(dtype)
    state = torch.randn(BATCH, OBS, dtype=dtype)
    x0 = torch.randn(BATCH, ACT, dtype=dtype).clamp(-1, 1)
    return net, state, x0


def flowrl_midpoint(v, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """FlowRL's hand-written sampler, transcribed."""
    dt = 1.0 / steps
    x = x0
    for i in range(steps):
        t = i * dt
        x_mid = x + v(x, torch.full((x.shape[0], 1), t)) * dt / 2
        x = x + v(x_mid, torch.full((x.shape[0], 1), t + dt / 2)) * dt
    return x


@pytest.mark.parametrize("steps", [1, 3])
def test_default_sampler_is_flowrl_midpoint(steps: int) -> None:
    net, state, x0 = _setup()
    v = lambda x, t: net(state, x, t)  # noqa: E731
    x1 = FlowSampler("midpoint", steps, ProbabilityPath("linear"))(v, x0)
    torch.testing.assert_close(x1, flowrl_midpoint(v, x0, steps), rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", sorted(UNROLLED))
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_unrolled_equals_ode_solver(solver: str, steps: int) -> None:
    for dtype, atol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        net, state, x0 = _setup(dtype)
        v = functools.partial(net, state)
        path = ProbabilityPath("plv")  # a diverging path, so clip_time matters where a method queries t = 1
        with torch.no_grad():
            unrolled = FlowSampler(solver, steps, path)(v, x0)
            reference = FlowSampler(solver, steps, path, use_ode_solver=True)(v, x0)
        torch.testing.assert_close(unrolled, reference, rtol=0, atol=atol)


@pytest.mark.parametrize("solver", ["midpoint", "rk4"])
def test_gradients_flow_and_agree(solver: str) -> None:
    net, state, x0 = _setup()
    grads = []
    for use_ode_solver in (False, True):
        net.zero_grad()
        x1 = FlowSampler(solver, 3, ProbabilityPath("linear"), use_ode_solver=use_ode_solver)(
            lambda x, t: net(state, x, t), x0)
        (x1.tanh() ** 2).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for unrolled, reference in zip(*grads, strict=True):
        assert unrolled.abs().sum() > 0
        torch.testing.assert_close(unrolled, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Functional iteration did not converge")
def test_nfe_and_degenerate_adams() -> None:
    net, state, x0 = _setup()
    calls = 0
    t_seen = []

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        assert t.shape == (x.shape[0], 1)
        t_seen.append(float(t.max()))
        return net(state, x, t)

    path = ProbabilityPath("plv")
    with torch.no_grad():
        for solver in FIXED_GRID:
            for steps in (1, 4, 8):
                calls = 0
                sampler = FlowSampler(solver, steps, path)
                sampler(v, x0)
                assert sampler.nfe == calls, (solver, steps)
                if solver == "implicit_adams":  # corrector stops early once converged: the table is the maximum
                    assert 4 * min(steps, 2) + max(steps - 2, 0) <= calls <= nfe_per_action(solver, steps)
                else:
                    assert calls == nfe_per_action(solver, steps), (solver, steps)
        t_max = torch.tensor(path.t_max).item()  # t_max as the float32 the network sees
        assert max(t_seen) <= t_max  # rk4 and the Adams correctors evaluate at t = 1: clipped
        for solver in ("explicit_adams", "implicit_adams"):
            rk4 = {k: FlowSampler("rk4", k, path, use_ode_solver=True)(v, x0) for k in (1, 2, 3)}
            for steps in (1, 2):
                assert torch.equal(FlowSampler(solver, steps, path)(v, x0), rk4[steps])
                assert "identical to rk4" in degenerate_comparison(solver, steps)
            # torchdiffeq 0.2.5 uses rk4 for two start-up steps, not three: at 3 steps Adams is already different.
            assert not torch.equal(FlowSampler(solver, 3, path)(v, x0), rk4[3])
            assert degenerate_comparison(solver, 3) is None
        calls, t_seen = 0, []
        sampler = FlowSampler("dopri5", 4, path)
        x1 = sampler(v, x0)
        assert torch.isfinite(x1).all() and sampler.nfe == calls > 0 and max(t_seen) <= t_max
    assert math.isnan(nfe_per_action("dopri5", 4))
    assert degenerate_comparison("rk4", 1) is None


def _gaussian_velocity(path: ProbabilityPath, mu: torch.Tensor, s: torch.Tensor):
    """Exact marginal velocity for data N(mu, diag(s^2)) and noise N(0, I): dalpha E[x1|x] + dsigma E[x0|x]."""
    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = path.coefficients(t)
        var = c.sigma_t**2 + c.alpha_t**2 * s**2
        r = x - c.alpha_t * mu
        return c.d_alpha_t * (mu + c.alpha_t * s**2 / var * r) + c.d_sigma_t * (c.sigma_t / var * r)
    return v


@pytest.mark.parametrize("name,solver,window", [
    ("linear", "euler", None), ("linear", "midpoint", (0, 100)), ("plv", "euler", None), ("plv", "rk4", (120, 200)),
])
def test_sde_preserves_marginals(name: str, solver: str, window) -> None:
    mu, s = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5])
    path = ProbabilityPath(name)
    v = _gaussian_velocity(path, mu, s)
    torch.manual_seed(0)
    x0 = torch.randn(20_000, 2)
    sampler = FlowSampler(solver, 200, path, sde_noise=0.7, sde_window=window)
    sde = sampler(v, x0, stochastic=True)
    ode = sampler(v, x0)
    for x in (sde, ode):
        torch.testing.assert_close(x.mean(0), mu, rtol=0, atol=0.05)
        torch.testing.assert_close(x.std(0), s, rtol=0.03, atol=0)
    assert not torch.equal(sde, ode)


def test_sde_stays_sane_on_coarse_grids() -> None:
    # The noise scale is infinite at t = 0; with a 1e-3 floor a 4-step SDE gave std 58 for a std-1.5 target.
    mu, s = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5])
    path = ProbabilityPath("linear")
    torch.manual_seed(0)
    x = FlowSampler("midpoint", 4, path, sde_noise=0.7)(_gaussian_velocity(path, mu, s), torch.randn(20_000, 2),
                                                        stochastic=True)
    assert (x.std(0) < 1.25 * s).all() and (x.mean(0) - mu).abs().max() < 0.1


def test_sde_is_differentiable_and_seeded() -> None:
    net, state, x0 = _setup()
    sampler = FlowSampler("midpoint", 4, ProbabilityPath("linear"), sde_noise=0.7, sde_window=(1, 3))
    torch.manual_seed(5)
    a = sampler(lambda x, t: net(state, x, t), x0, stochastic=True)
    assert sampler.nfe == 2 + 1 + 1 + 2
    a.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    torch.manual_seed(5)
    b = sampler(lambda x, t: net(state, x, t), x0, stochastic=True)
    assert torch.equal(a, b)


def test_bad_values_raise_with_choices() -> None:
    path = ProbabilityPath("linear")
    choices = ", ".join(ODE_SOLVERS)
    with pytest.raises(ValueError, match=f"valid choices: {choices}"):
        FlowSampler("rk45", 1, path)
    for fn in (nfe_per_action, degenerate_comparison):
        with pytest.raises(ValueError, match=f"valid choices: {choices}"):
            fn("tsit5", 1)
    with pytest.raises(ValueError, match="flow_steps"):
        FlowSampler("midpoint", 0, path)
    with pytest.raises(ValueError, match="valid choices: euler, midpoint, heun2, heun3, rk4"):
        FlowSampler("implicit_adams", 4, path, sde_noise=0.7)
    with pytest.raises(ValueError, match="sde_window"):
        FlowSampler("midpoint", 4, path, sde_noise=0.7, sde_window=(2, 5))
    with pytest.raises(ValueError, match="sde_noise"):
        FlowSampler("midpoint", 4, path, sde_noise=-0.1)
