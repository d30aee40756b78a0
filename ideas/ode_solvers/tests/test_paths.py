"""Probability paths: agreement with flow_matching, FlowRL's linear path, and finiteness at t -> 1."""

import pytest
import torch
from flow_matching.path import AffineProbPath

from ideas.ode_solvers.paths import PATHS, ProbabilityPath

# Times a caller might pass at the data end: exactly 1, the float32 just below 1, and torch.rand's largest float32
# (24 random bits scaled by 2^-24, so 1 - 2^-24: the same number, spelled the way a training loop meets it).
EDGE_TIMES = (1.0, torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item(), 1.0 - 2.0**-24)


def _pair(batch: int = 64, dim: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g), 2.0 * torch.randn(batch, dim, generator=g) + 0.5


@pytest.mark.parametrize("name", PATHS)
def test_interpolate_matches_affine_prob_path(name: str) -> None:
    path = ProbabilityPath(name)
    x0, x1 = _pair()
    t = torch.linspace(0.01, 0.98, x0.shape[0])
    ref = AffineProbPath(path.scheduler).sample(x_0=x0, x_1=x1, t=t)
    x_t, target = path.interpolate(x0, x1, t.unsqueeze(1))
    torch.testing.assert_close(x_t, ref.x_t, rtol=0, atol=0)
    torch.testing.assert_close(target, ref.dx_t, rtol=0, atol=0)
    # 1-D t is accepted too.
    torch.testing.assert_close(path.interpolate(x0, x1, t)[1], ref.dx_t, rtol=0, atol=0)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t_edge", EDGE_TIMES)
def test_finite_at_data_end(name: str, t_edge: float) -> None:
    path = ProbabilityPath(name)
    x0, x1 = _pair(batch=8)
    t = torch.full((8, 1), t_edge, dtype=torch.float32)
    x_t, target = path.interpolate(x0, x1, t)
    score = path.score_from_velocity(x_t, target, t)
    for value in (x_t, target, score):
        assert torch.isfinite(value).all(), (name, t_edge)
    assert bool((path.clip_time(t) <= path.t_max).all())


def test_edge_times_are_what_they_claim() -> None:
    assert EDGE_TIMES[1] < 1.0 and EDGE_TIMES[1] == EDGE_TIMES[2]
    # The library's own plv derivative really is divergent there: the clamp is what keeps us finite.
    raw = ProbabilityPath("plv").scheduler(torch.tensor([1.0, EDGE_TIMES[1]]))
    assert torch.isinf(raw.d_sigma_t[0]) and raw.d_sigma_t[1].abs() > 2e3


def test_linear_equals_flowrl_exactly() -> None:
    path = ProbabilityPath("linear")
    a0, a = _pair(batch=256, dim=6, seed=1)
    t = torch.rand(256, 1, generator=torch.Generator().manual_seed(2))
    x_t, u = path.interpolate(a0, a, t)
    assert torch.equal(x_t, t * a + (1 - t) * a0)
    assert torch.equal(u, a - a0)


@pytest.mark.parametrize("name", PATHS)
def test_score_matches_gaussian_score(name: str) -> None:
    # Data N(mu, s^2) per dimension: p_t = N(alpha mu, sigma^2 + alpha^2 s^2), so both the marginal velocity and
    # the score are analytic; the score implied by the velocity must equal the direct one.
    path = ProbabilityPath(name)
    mu, s = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 1.5], dtype=torch.float64)
    t = torch.linspace(0.05, 0.95, 32, dtype=torch.float64).unsqueeze(1)
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    c = path.coefficients(t)
    var = c.sigma_t**2 + c.alpha_t**2 * s**2
    r = x - c.alpha_t * mu
    v = c.d_alpha_t * (mu + c.alpha_t * s**2 / var * r) + c.d_sigma_t * (c.sigma_t / var * r)
    torch.testing.assert_close(path.score_from_velocity(x, v, t), -r / var, rtol=1e-9, atol=1e-9)
    if name == "linear":
        torch.testing.assert_close(path.score_from_velocity(x, v, t), -(x - t * v) / (1 - t))


def test_t_max_and_sample_t() -> None:
    for name in PATHS:
        path = ProbabilityPath(name)
        assert path.diverges_at_one == (name in ("plv", "vp"))
        assert path.t_max == (1.0 - 1e-3 if path.diverges_at_one else 1.0)
        t = path.sample_t(4096, "cpu", generator=torch.Generator().manual_seed(0))
        assert t.shape == (4096, 1) and t.dtype == torch.float32
        assert float(t.min()) >= 0.0 and float(t.max()) <= path.t_max
    plv = ProbabilityPath("plv")
    assert plv.clip_time(1.0) == plv.t_max and plv.clip_time(0.5) == 0.5
    assert torch.equal(plv.clip_time(torch.tensor([0.2, 1.0])), torch.tensor([0.2, plv.t_max]))


def test_bad_values_raise_with_choices() -> None:
    with pytest.raises(ValueError, match="valid choices: linear, plv, cosine, polynomial, vp"):
        ProbabilityPath("ot")
    with pytest.raises(ValueError, match="polynomial_n"):
        ProbabilityPath("polynomial", polynomial_n=0.5)
    with pytest.raises(ValueError, match="t_max"):
        ProbabilityPath("plv", t_max=1.0)
