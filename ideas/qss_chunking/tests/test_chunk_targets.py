"""Targets of the horizon agents (n = 3) against hand-computed values on a replay holding a truncated episode, a
terminated one and a running one: what each sampled row bootstraps from, with which discount, and which rows the
chunk agents leave out of their losses."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from core.buffers import ReplayBuffer
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.qss import QSS
from ideas.qss_chunking.td3 import NStepTD3
from ideas.qss_chunking.td3_chunk import ChunkTD3
from ideas.qss_chunking.tests.hand import dense, layers_of, masked_mse, move_targets, twin_min

N, GAMMA, ACT = 3, 0.9, 1
CPU = torch.device("cpu")
# transitions 0-3: episode A, truncated at 3; 4-6: episode B, terminated at 6; 7-9: episode C, still running
ENDS = {3: "truncated", 6: "terminated"}
# start t -> (k steps inside its episode, terminal among them, whole chunk inside the episode, transition of s_{t+k})
TABLE = {0: (3, False, True, 2), 1: (3, False, True, 3), 2: (2, False, False, 3), 3: (1, False, False, 3),
         4: (3, True, True, 6), 5: (2, True, False, 6), 6: (1, True, False, 6), 7: (3, False, True, 9)}


def obs_of(t: int) -> np.ndarray:  # small values: no tanh saturates, so every network's input matters
    return np.array([t / 10, 0.5 - 0.1 * t], np.float32)


def final_obs_of(t: int) -> np.ndarray:  # the state after an episode's last transition (never a next start)
    return np.array([t / 10 + 0.05, -1.0], np.float32)


def reward_of(t: int) -> float:  # small: the bootstrap term, where the networks enter, dominates the target
    return (t + 1) / 100


def hand_buffer() -> ReplayBuffer:
    buffer = ReplayBuffer(2, ACT, 16)
    for t in range(10):
        end = ENDS.get(t)
        buffer.add(obs_of(t), np.array([np.sin(t)], np.float32), reward_of(t),
                   final_obs_of(t) if end else obs_of(t + 1), end == "terminated", end == "truncated")
    return buffer


def hand_rows(starts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(reward sum, discount, s_{t+k}, valid) per start, from TABLE."""
    rows = []
    for t in starts.tolist():
        k, terminal, valid, last = TABLE[t]
        reward = sum(GAMMA**i * reward_of(t + i) for i in range(k))
        reached = final_obs_of(last) if last in ENDS else obs_of(last + 1)
        rows.append((reward, 0.0 if terminal else GAMMA**k, reached, float(valid)))
    columns = zip(*rows, strict=True)
    reward, discount, reached, valid = (torch.tensor(np.array(column), dtype=torch.float64) for column in columns)
    return reward[:, None], discount[:, None], reached, valid[:, None]


@pytest.mark.parametrize("kind", [NStepTD3, ChunkTD3, QSS])
def test_targets_and_masks_across_truncations_and_terminals(kind):
    agent_name = {NStepTD3: "td3_nstep", ChunkTD3: "td3_chunk", QSS: "qss"}[kind]
    cfg = ChunkingConfig(agent=agent_name, horizon=N, gamma=GAMMA, hidden=6, batch_size=64, target_noise=0.0)
    torch.manual_seed(0)
    agent = kind(cfg, 2, ACT, CPU)
    move_targets(agent)
    batch = agent.sample(hand_buffer())
    starts = (10 * batch.obs[:, 0]).round().long()
    assert sorted(set(starts.tolist())) == list(TABLE)  # every start, cut or not, is drawn
    reward, discount, reached, valid = hand_rows(starts)
    assert_close(batch.reward, reward.float())
    assert_close(batch.discount, discount.float())
    assert_close(batch.next_obs, reached.float())

    if kind is QSS:  # bootstrap from cycle(s_{t+n}) = s + f(s, I(s, s + M'(s)))
        s = reached
        s_hat = s + dense(s, layers_of(agent.proposal_target))
        chunk = torch.tanh(dense(torch.cat([s, s_hat], -1), layers_of(agent.inverse)))
        cycle = s + dense(torch.cat([s, chunk], -1), layers_of(agent.forward_model))
        bootstrap = twin_min(agent.critic_target, torch.cat([s, cycle], -1))
        critic_input = torch.cat([batch.obs.double(), s], -1)
    else:  # from pi'(s_{t+k}) (no smoothing noise in this test)
        action = torch.tanh(dense(reached, layers_of(agent.actor_target)))
        bootstrap = twin_min(agent.critic_target, torch.cat([reached, action], -1))
        first = batch.action if kind is NStepTD3 else batch.actions.flatten(1)
        critic_input = torch.cat([batch.obs.double(), first.double()], -1)
    target = reward + discount * bootstrap
    assert_close(agent.td_target(batch).double(), target, rtol=1e-5, atol=1e-6)

    # the chunk agents leave the cut rows out; n-step TD3 keeps them (its return is cut at the episode end)
    used = torch.ones_like(valid) if kind is NStepTD3 else valid
    assert 0 < valid.sum() < len(valid)
    if kind is not NStepTD3:
        assert_close(batch.valid.double(), valid)
    critic_loss = sum(masked_mse(dense(critic_input, layers_of(agent.critic, m)), target, used) for m in (0, 1))
    expected = {"train/critic_loss": critic_loss}
    if kind is QSS:
        decoded = torch.tanh(dense(critic_input, layers_of(agent.inverse)))
        expected["train/inverse_loss"] = masked_mse(decoded, batch.actions.flatten(1), valid)
        predicted = dense(torch.cat([batch.obs.double(), batch.actions.flatten(1).double()], -1),
                          layers_of(agent.forward_model))
        expected["train/forward_loss"] = masked_mse(predicted, reached - batch.obs.double(), valid)
    metrics = agent.update(batch)
    for key, value in expected.items():
        assert_close(metrics[key].double(), value, rtol=1e-5, atol=1e-6, msg=key)
