"""Probability paths for the flow policy: the regression target and the sampler's time range.

Convention: t = 0 is noise x0 ~ N(0, I), t = 1 is data x1 (the pre-tanh action), and every path is affine:
x_t = sigma_t * x0 + alpha_t * x1 with target velocity dsigma_t * x0 + dalpha_t * x1 (flow_matching's
AffineProbPath). The coefficients come from flow_matching's schedulers so the formulas are the library's own.

A path change must change both the regression target and the sampler's dynamics, so the clamp on t lives here and
the sampler (samplers.py) evaluates the velocity at `clip_time(t)`: a network trained on t in [0, t_max] is never
queried outside that range.
"""

from __future__ import annotations

import torch
from flow_matching.path.scheduler import (
    CondOTScheduler,
    CosineScheduler,
    LinearVPScheduler,
    PolynomialConvexScheduler,
    Scheduler,
    SchedulerOutput,
    VPScheduler,
)
from torch import Tensor

PATHS = ("linear", "plv", "cosine", "polynomial", "vp")

# plv's dsigma = -t / sqrt(1 - t^2) and vp's dsigma ~ -0.5 sqrt(beta_min / (1 - t)) diverge at t = 1. With
# t_max = 1 - 1e-3 the target stays bounded (|dsigma| <= 22 for plv, <= 5 for vp) and plv's mean squared dsigma over
# U(0, t_max), 0.5 * log(2 / eps) - 1 ~= 2.8, stays close to the untruncated integrand's bulk; the cut tail is 0.1%
# of the time axis, and 1 - 1e-3 is far from float32's spacing near 1 (6e-8), so t_max survives a dtype cast.
DIVERGENT_T_EPS = 1e-3
# Score and SDE noise scale are singular where sigma_t = 0 (t = 1, every path) and where the SNR's derivative
# vanishes (t = 0 for polynomial n > 1); both are evaluated on [eps, 1 - eps] (Flow-GRPO clamps the same way).
SCORE_T_EPS = 1e-3


def _make_scheduler(name: str, polynomial_n: float) -> Scheduler:
    """The flow_matching scheduler behind a path name."""
    if name == "linear":
        return CondOTScheduler()
    if name == "plv":
        return LinearVPScheduler()
    if name == "cosine":
        return CosineScheduler()
    if name == "polynomial":
        # n < 1 makes dalpha = n t^(n-1) infinite at t = 0, where every sample starts: no clamp at t_max helps.
        if polynomial_n < 1:
            raise ValueError(f"polynomial_n must be >= 1 (dalpha diverges at t = 0 otherwise), got {polynomial_n}")
        return PolynomialConvexScheduler(polynomial_n)
    if name == "vp":
        return VPScheduler()
    raise ValueError(f"unknown probability path {name!r}; valid choices: {', '.join(PATHS)}")


class ProbabilityPath:
    """An affine Gaussian probability path with a safe time range."""

    def __init__(self, name: str = "linear", polynomial_n: float = 2.0, t_max: float | None = None) -> None:
        self.name = name
        self.polynomial_n = float(polynomial_n)
        self.scheduler = _make_scheduler(name, self.polynomial_n)
        safe_t_max = 1.0 - DIVERGENT_T_EPS if self.diverges_at_one else 1.0
        t_max = safe_t_max if t_max is None else float(t_max)
        if not 0.0 < t_max <= safe_t_max:
            raise ValueError(f"t_max for path {name!r} must be in (0, {safe_t_max}], got {t_max}")
        self.t_max = t_max

    def __repr__(self) -> str:
        extra = f", polynomial_n={self.polynomial_n}" if self.name == "polynomial" else ""
        return f"ProbabilityPath({self.name!r}{extra}, t_max={self.t_max})"

    @property
    def diverges_at_one(self) -> bool:
        """Whether the path's derivatives are infinite at t = 1 (so training and sampling stop at t_max < 1)."""
        return self.name in ("plv", "vp")

    def clip_time(self, t: Tensor | float) -> Tensor | float:
        """Clamp t to the trained range [0, t_max]; the sampler queries the velocity only at clipped times."""
        if isinstance(t, float):
            return min(max(t, 0.0), self.t_max)
        return t.clamp(0.0, self.t_max)

    def sample_t(
        self, batch: int, device: torch.device | str, generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Training times, (batch, 1), uniform on [0, t_max)."""
        return torch.rand(batch, 1, device=device, dtype=dtype, generator=generator) * self.t_max

    def coefficients(self, t: Tensor) -> SchedulerOutput:
        """alpha_t, sigma_t and their derivatives at the clipped time (finite for every t in [0, 1])."""
        return self.scheduler(self.clip_time(t))

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Return (x_t, target velocity) for noise x0, data x1 and times t of shape (B,) or (B, 1)."""
        t = t.reshape(t.shape[0], *([1] * (x1.dim() - 1)))
        c = self.coefficients(t)
        x_t = c.sigma_t * x0 + c.alpha_t * x1
        target = c.d_sigma_t * x0 + c.d_alpha_t * x1
        return x_t, target

    def score_from_velocity(self, x: Tensor, v: Tensor, t: Tensor) -> Tensor:
        """The score grad log p_t(x) implied by the marginal velocity v, for Gaussian noise x0 ~ N(0, I)."""
        # Tweedie: score = -E[x0 | x_t] / sigma, and v = dalpha E[x1|x] + dsigma E[x0|x] with x = sigma E[x0|x] +
        # alpha E[x1|x] gives E[x0|x] = (dalpha x - alpha v) / (dalpha sigma - alpha dsigma). CondOT: -(x - t v)/(1-t).
        t = t.reshape(t.shape[0], *([1] * (x.dim() - 1))) if t.dim() > 0 else t
        t = t.clamp(SCORE_T_EPS, min(self.t_max, 1.0 - SCORE_T_EPS))
        c = self.scheduler(t)
        denom = c.sigma_t * (c.d_alpha_t * c.sigma_t - c.alpha_t * c.d_sigma_t)
        return -(c.d_alpha_t * x - c.alpha_t * v) / denom
