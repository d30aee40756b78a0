"""The generalisations reduce to their base at horizon 1: qss with the MLP decoder is d3g, td3_nstep and td3_chunk
are td3, update for update from identical weights and identical replay draws (each agent samples its own batch kind
from the same buffer with the same RNG state)."""

import copy

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from core.buffers import ReplayBuffer
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.d3g import D3G
from ideas.qss_chunking.qss import QSS
from ideas.qss_chunking.td3 import TD3, NStepTD3
from ideas.qss_chunking.td3_chunk import ChunkTD3

OBS, ACT, UPDATES = 4, 2, 6
CPU = torch.device("cpu")


def filled_buffer() -> ReplayBuffer:
    """60 transitions: episodes of 7 steps, every third ending in a terminal, the others truncated."""
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(OBS, ACT, 100)
    obs = rng.normal(size=OBS).astype(np.float32)
    for t in range(60):
        next_obs = rng.normal(size=OBS).astype(np.float32)
        end = t % 7 == 6
        terminated = end and (t // 7) % 3 == 0
        buffer.add(obs, rng.uniform(-1, 1, ACT).astype(np.float32), rng.normal(), next_obs, terminated,
                   end and not terminated)
        obs = rng.normal(size=OBS).astype(np.float32) if end else next_obs
    return buffer


def assert_same_state(a, b) -> None:
    for name, net in vars(a).items():
        if isinstance(net, torch.nn.Module):
            for (key, p), q in zip(net.state_dict().items(), getattr(b, name).state_dict().values(), strict=True):
                assert_close(q, p, msg=f"{name}.{key}")


def as_transitions(batch) -> tuple[torch.Tensor, ...]:
    """(obs, first action, reward, next_obs, discount) of a Batch or a Chunk."""
    action = batch.actions[:, 0] if hasattr(batch, "actions") else batch.action
    return batch.obs, action, batch.reward, batch.next_obs, batch.discount


@pytest.mark.parametrize("base, general, overrides", [
    (D3G, QSS, dict(agent="qss", decoder="mlp")),
    (TD3, NStepTD3, dict(agent="td3_nstep")),
    (TD3, ChunkTD3, dict(agent="td3_chunk")),
])
def test_horizon_one_is_the_base_agent_update_for_update(base, general, overrides):
    common = dict(horizon=1, hidden=8, batch_size=16)
    buffer = filled_buffer()
    torch.manual_seed(0)
    one = base(ChunkingConfig(agent=base.__name__.lower(), **common), OBS, ACT, CPU)
    torch.manual_seed(1)  # other weights at first: the copy below is what makes them equal
    other = general(ChunkingConfig(**common, **overrides), OBS, ACT, CPU)
    other.load_state_dict(copy.deepcopy(one.state_dict()))
    assert_same_state(one, other)
    for k in range(UPDATES):  # 3 delayed (actor / proposal + target) updates among them
        torch.manual_seed(10 + k)
        batch_one = one.sample(buffer)
        metrics_one = one.update(batch_one)
        torch.manual_seed(10 + k)
        batch_other = other.sample(buffer)
        assert getattr(batch_other, "valid", torch.ones(1)).all()
        for x, y in zip(as_transitions(batch_one), as_transitions(batch_other), strict=True):
            assert torch.equal(x, y)
        metrics_other = other.update(batch_other)
        shared = sorted(set(metrics_one) & set(metrics_other))
        assert "train/critic_loss" in shared and ("train/proposal_loss" in shared or "train/actor_loss" in shared
                                                  or k % 2 == 0)
        for key in shared:
            assert_close(metrics_other[key], metrics_one[key], msg=key)
        assert_same_state(one, other)

    obs = torch.randn(3, OBS)
    one.reset(explore=False)
    other.reset(explore=False)
    assert_close(other.act(obs, explore=False), one.act(obs, explore=False))


@pytest.mark.parametrize("agent, horizon, decoder", [("td3", 1, "mlp"), ("td3_nstep", 3, "mlp"),
                                                     ("td3_chunk", 3, "mlp"), ("d3g", 1, "mlp"), ("qss", 3, "gru")])
def test_a_restored_agent_continues_exactly(agent, horizon, decoder):
    cfg = ChunkingConfig(agent=agent, horizon=horizon, decoder=decoder, hidden=8, latent=8, batch_size=16)
    kind = {"td3": TD3, "td3_nstep": NStepTD3, "td3_chunk": ChunkTD3, "d3g": D3G, "qss": QSS}[agent]
    buffer = filled_buffer()
    torch.manual_seed(0)
    original = kind(cfg, OBS, ACT, CPU)
    original.reset(explore=True)
    for _ in range(3):  # an odd count: the restored agent's next update must be a delayed one
        original.act(torch.randn(1, OBS), explore=True)
        original.update(original.sample(buffer))
    torch.manual_seed(1)
    restored = kind(cfg, OBS, ACT, CPU)
    # a copy, as a checkpoint file holds (Optimizer.load_state_dict keeps the very tensors it is given)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    for agent_ in (original, restored):
        torch.manual_seed(5)
        agent_.reset(explore=True)
        metrics = agent_.update(agent_.sample(buffer))
    assert "train/actor_loss" in metrics or "train/proposal_loss" in metrics
    assert_same_state(original, restored)
    assert original.summary() == restored.summary()
