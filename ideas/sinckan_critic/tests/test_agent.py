"""The agent: its observation normaliser (statistics, where it applies, its checkpoint) and each arm's critic."""

import numpy as np
import pytest
import torch

from core.buffers import Batch
from ideas.sinckan_critic.agent import ObsNormalizer, SincKANConfig, SincKANSAC
from ideas.sinckan_critic.layers import FIRST_LAYERS, FourierLayer, PykanLayer, SincLayer, WideFirstLayer

OBS, ACT = 5, 2


def batch(rng: np.random.Generator, n: int = 32, scale: float = 10.0) -> Batch:
    def t(*shape, s=1.0):
        return torch.as_tensor(rng.normal(3.0, s, shape), dtype=torch.float32)

    return Batch(t(n, OBS, s=scale), t(n, ACT).clamp(-1, 1), t(n, 1), t(n, OBS, s=scale), torch.full((n, 1), 0.99))


def agent(first_layer: str, seed: int = 0) -> SincKANSAC:
    torch.manual_seed(seed)
    cfg = SincKANConfig(first_layer=first_layer, hidden=16, batch_size=32)
    return SincKANSAC(cfg, OBS, ACT, torch.device("cpu"))


def test_normaliser_statistics_equal_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    norm = ObsNormalizer(3, clip=100.0)
    data = [rng.normal([1.0, -50.0, 0.0], [0.1, 20.0, 3.0], (n, 3)) for n in (7, 64, 1, 30)]
    for chunk in data:
        norm.update(torch.as_tensor(chunk, dtype=torch.float32))
    everything = np.concatenate(data).astype(np.float32).astype(np.float64)
    assert norm.count.item() == len(everything)
    np.testing.assert_allclose(norm.mean.numpy(), everything.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.m2.numpy() / len(everything), everything.var(0), rtol=1e-9)
    z = norm(torch.as_tensor(everything, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)
    assert ObsNormalizer(2, clip=3.0)(torch.tensor([[0.5, 9.0]])).tolist() == [[0.5, 3.0]]  # identity, then clipped


@pytest.mark.parametrize("first_layer", FIRST_LAYERS)
def test_every_arm_feeds_normalised_observations_to_actor_and_critic(first_layer):
    a = agent(first_layer)
    expected = {"linear": torch.nn.Module, "linear_matched": WideFirstLayer, "fourier": FourierLayer,
                "sinc": SincLayer, "pykan": PykanLayer}[first_layer]
    assert isinstance(a.critic.net[0], expected)
    rng = np.random.default_rng(1)
    b = batch(rng)
    metrics = a.update(b)
    assert a.obs_norm.count.item() == 32
    assert {"train/critic_loss", "train/outside_sinc", "train/outside_fourier", "train/outside_pykan"} <= set(metrics)
    assert all(not v.requires_grad for v in metrics.values())
    # act sees the normalised observation: the same as the actor's deterministic action on obs_norm(obs)
    obs = b.obs[:4]
    with torch.no_grad():
        assert torch.equal(a.act(obs, explore=False), a.actor(a.obs_norm(obs))[2])
        assert not torch.equal(a.act(obs, explore=False), a.actor(obs)[2])


def test_outside_fraction_counts_normalised_inputs_beyond_each_range():
    a = agent("sinc")
    # statistics of the batches' own distribution, N(3, 4), so their normalised values are standard normal
    a.obs_norm.update(torch.randn(100_000, OBS, generator=torch.Generator().manual_seed(0)) * 4 + 3)
    metrics = a.update(batch(np.random.default_rng(2), n=4096, scale=4.0))
    # a standard normal exceeds 2 (sinc with tanh), pi (fourier) and 2.2 (pykan) with these probabilities
    assert metrics["train/outside_sinc"].item() == pytest.approx(0.0455, abs=0.01)
    assert metrics["train/outside_fourier"].item() == pytest.approx(0.0017, abs=0.002)
    assert metrics["train/outside_pykan"].item() == pytest.approx(0.0278, abs=0.008)


def test_state_dict_restores_the_normaliser_and_networks():
    a, b = agent("sinc", seed=0), agent("sinc", seed=1)
    rng = np.random.default_rng(3)
    for _ in range(3):
        a.update(batch(rng))
    b.load_state_dict(a.state_dict())
    for name in ("count", "mean", "m2", "loc", "inv_scale"):
        assert torch.equal(getattr(a.obs_norm, name), getattr(b.obs_norm, name))
    obs = batch(rng).obs
    assert torch.equal(a.act(obs, explore=False), b.act(obs, explore=False))
    x = torch.cat([obs, torch.zeros(32, ACT)], -1)
    assert torch.equal(a.critic(x), b.critic(x))


def test_summary_counts_parameters():
    summaries = {name: agent(name).summary() for name in ("linear", "linear_matched", "sinc")}
    sinc_first = 2 * ((OBS + ACT) * 16 * 10 + 16)
    assert summaries["sinc"]["first_layer_params"] == sinc_first
    assert summaries["sinc"]["critic_params"] == sinc_first + 2 * (16 * 16 + 16 + 16 + 1)
    matched, sinc = summaries["linear_matched"]["critic_params"], summaries["sinc"]["critic_params"]
    assert abs(matched - sinc) / sinc < 0.02
    assert summaries["linear"]["critic_params"] < sinc
    assert summaries["sinc"]["actor_params"] == summaries["linear"]["actor_params"]
