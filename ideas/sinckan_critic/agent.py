"""SAC whose critics' first layer is a Kolmogorov-Arnold layer (SincKAN, pykan) or one of its controls (a
parameter-matched MLP, Fourier features), behind one observation normaliser shared by every arm.

The hypothesis (not a known result): a KAN basis extracts better features from states with periodic structure.
KAN bases live on a bounded grid while velocities are unbounded, so every arm, `linear` included, sees observations
normalised by a running mean/std (the comparison stays fair), and the fraction of normalised inputs outside each
basis's useful range is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.buffers import Batch
from core.networks import EnsembleMLP
from core.sac import SAC, SACConfig
from ideas.sinckan_critic.layers import make_first_layer, useful_range

BOUNDED_BASES = ("sinc", "fourier", "pykan")  # bases whose useful input range is logged (for every arm)


@dataclass
class SincKANConfig(SACConfig):
    idea: str = "sinckan_critic"
    # --- the study's knob
    first_layer: str = "sinc"  # critic first layer: linear | linear_matched | fourier | sinc | pykan (layers.py)
    # --- sinc (defaults: SincKAN's PDE settings)
    sinc_degree: int = 8  # d: d + 1 sinc nodes k in [-floor(d/2), ceil(d/2)] per step size
    sinc_len_h: int = 1  # step sizes h_m = 1 / (init_h (1 + m)), m = 0..len_h-1
    sinc_init_h: float = 2.0  # init_h of the step sizes
    sinc_skip: bool = True  # add the linear skip x @ alpha + beta
    sinc_tanh: bool = True  # squash the input with tanh before the sinc basis
    # --- fourier
    fourier_frequencies: int = 4  # K: sin(f x), cos(f x) for f = 1..K per input, plus x itself
    # --- pykan
    pykan_grid: int = 5  # grid intervals (KANLayer's num) on [-1, 1]
    pykan_k: int = 3  # spline order
    # --- observation normaliser (every arm)
    obs_clip: float = 10.0  # normalised observations are clipped to [-obs_clip, obs_clip]


class ObsNormalizer(nn.Module):
    """Running mean/std of observations (Chan et al.'s parallel update, float64); forward standardises and clips.

    Starts as the identity; its buffers travel in state_dict, so a resumed run normalises exactly as before.
    """

    def __init__(self, dim: int, clip: float, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("loc", torch.zeros(dim))  # float32 copies the forward pass uses
        self.register_buffer("inv_scale", torch.ones(dim))

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Fold a (B, dim) batch into the statistics (no host sync)."""
        x = obs.double()
        n = x.shape[0]
        batch_mean = x.mean(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.m2 += ((x - batch_mean) ** 2).sum(0) + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count.copy_(total)
        self.loc.copy_(self.mean)
        self.inv_scale.copy_((self.m2 / self.count + self.eps).rsqrt())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.loc) * self.inv_scale).clamp(-self.clip, self.clip)


def count_params(module: nn.Module) -> int:
    """Trainable parameters (pykan's fixed grid and mask are not)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class SincKANSAC(SAC):
    """core SAC with a chosen critic first layer and normalised observations for actor and critic."""

    cfg: SincKANConfig

    def __init__(self, cfg: SincKANConfig, obs_dim: int, act_dim: int, device: torch.device) -> None:
        super().__init__(cfg, obs_dim, act_dim, device)
        self.obs_norm = ObsNormalizer(obs_dim, cfg.obs_clip).to(device)
        self.ranges = {name: useful_range(name, cfg.sinc_degree, cfg.sinc_init_h, cfg.sinc_tanh, cfg.pykan_grid,
                                          cfg.pykan_k) for name in BOUNDED_BASES}

    def make_critic(self, obs_dim: int, act_dim: int) -> nn.Module:
        """Twin critics as one EnsembleMLP whose first layer is cfg.first_layer; linear_matched's wider first layer
        holds two Linear layers, so its MLP is built one layer shallower (same depth of hidden layers overall)."""
        cfg = self.cfg
        first = make_first_layer(cfg.first_layer, cfg.hidden, cfg.sinc_degree, cfg.sinc_len_h, cfg.sinc_init_h,
                                 cfg.sinc_skip, cfg.sinc_tanh, cfg.fourier_frequencies, cfg.pykan_grid, cfg.pykan_k)
        depth = cfg.depth - 1 if cfg.first_layer == "linear_matched" else cfg.depth
        return EnsembleMLP(2, obs_dim + act_dim, cfg.hidden, 1, depth, first_layer=first)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """SAC's action for the normalised observation."""
        return super().act(self.obs_norm(obs), explore)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Fold the batch's observations into the normaliser, then SAC's update on normalised observations."""
        self.obs_norm.update(batch.obs)
        obs = self.obs_norm(batch.obs)
        metrics = super().update(batch._replace(obs=obs, next_obs=self.obs_norm(batch.next_obs)))
        with torch.no_grad():
            magnitude = obs.abs()
            for name, half_width in self.ranges.items():
                metrics[f"train/outside_{name}"] = (magnitude > half_width).float().mean()
        return metrics

    def summary(self) -> dict[str, Any]:
        """Parameter counts (per run, so the report can show them beside the returns)."""
        return dict(critic_params=count_params(self.critic), first_layer_params=count_params(self.critic.net[0]),
                    actor_params=count_params(self.actor))

    def state_dict(self) -> dict:
        """SAC's state plus the normaliser's statistics."""
        return super().state_dict() | {"obs_norm": self.obs_norm.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        super().load_state_dict(state)
        self.obs_norm.load_state_dict(state["obs_norm"])
