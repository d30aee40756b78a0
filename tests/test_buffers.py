"""Replay buffer: sampling ranges, the recent-biased mix, n-step returns, windows and chunks at episode ends."""

import numpy as np
import pytest
import torch

from core.buffers import ReplayBuffer


def fill(buffer: ReplayBuffer, rewards, ends) -> None:
    """Transition i has obs = i, reward = rewards[i]; ends[i] is None, 'term' or 'trunc'."""
    for i, (r, end) in enumerate(zip(rewards, ends, strict=True)):
        buffer.add(np.full(2, i, np.float32), np.full(1, i, np.float32), r, np.full(2, i + 1, np.float32),
                   end == "term", end == "trunc")


def test_uniform_sample_covers_stored_transitions_only():
    torch.manual_seed(0)
    buf = ReplayBuffer(2, 1, capacity=10)
    fill(buf, [0.0] * 6, [None] * 6)
    batch = buf.sample(2000, 0.9)
    seen = set(batch.obs[:, 0].long().tolist())
    assert seen == set(range(6))
    assert batch.obs.dtype == torch.float32 and batch.reward.shape == (2000, 1) and batch.discount.shape == (2000, 1)
    assert torch.equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)


def test_ring_wraps_and_keeps_newest():
    torch.manual_seed(0)
    buf = ReplayBuffer(2, 1, capacity=5)
    fill(buf, [0.0] * 12, [None] * 12)
    assert len(buf) == 5
    assert set(buf.sample(500, 0.9).obs[:, 0].long().tolist()) == {7, 8, 9, 10, 11}


def test_recent_fraction_draws_from_newest_window():
    torch.manual_seed(0)
    buf = ReplayBuffer(2, 1, capacity=100, recent_fraction=0.25, recent_window=4)
    fill(buf, [0.0] * 100, [None] * 100)
    obs = buf.sample(400, 0.9).obs[:, 0]
    recent = obs[300:]  # the recent share comes last
    assert set(recent.long().tolist()) == {96, 97, 98, 99}
    assert obs[:300].min() < 50  # the uniform share spans the whole buffer


def test_terminal_zeroes_the_discount_but_truncation_does_not():
    buf = ReplayBuffer(2, 1, capacity=10)
    fill(buf, [1.0, 2.0, 3.0], [None, "term", "trunc"])
    torch.manual_seed(1)
    batch = buf.sample(300, 0.9)
    discounts = {int(o): float(d) for o, d in zip(batch.obs[:, 0], batch.discount[:, 0], strict=True)}
    assert discounts == pytest.approx({0: 0.9, 1: 0.0, 2: 0.9})


@pytest.mark.parametrize("n", [1, 3])
def test_nstep_against_hand_computation(n):
    gamma = 0.5
    # episode A: 0 1 2(trunc) | episode B: 3 4(term) | episode C: 5 6 7 8 9 (running)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    ends = [None, None, "trunc", None, "term", None, None, None, None, None]
    buf = ReplayBuffer(2, 1, capacity=20)
    fill(buf, rewards, ends)
    expected = {}
    for i in range(len(rewards) - n + 1):
        total, k = 0.0, 0
        while k < n:
            total += gamma**k * rewards[i + k]
            if ends[i + k] is not None:
                break
            k += 1
        k = min(k, n - 1)  # index of the last step used
        last = i + k
        discount = gamma ** (k + 1) * (0.0 if ends[last] == "term" else 1.0)
        expected[i] = (total, last + 1, discount)
    torch.manual_seed(0)
    batch = buf.sample_nstep(3000, n, gamma)
    got = {}
    for o, r, nxt, m in zip(batch.obs[:, 0], batch.reward[:, 0], batch.next_obs[:, 0], batch.discount[:, 0],
                             strict=True):
        got[int(o)] = (float(r), int(nxt), float(m))
    assert got.keys() == expected.keys()
    for i in expected:
        assert got[i] == pytest.approx(expected[i]), i
    # by hand for n = 3: from 1 the truncation at 2 cuts the sum; from 3 the terminal at 4 zeroes the bootstrap
    if n == 3:
        assert got[1] == pytest.approx((2.0 + 0.5 * 4.0, 3, 0.25))
        assert got[3] == pytest.approx((8.0 + 0.5 * 16.0, 5, 0.0))
        assert got[5] == pytest.approx((1.75, 8, 0.125))


def test_window_stops_at_episode_end_and_never_shows_the_next_episode():
    buf = ReplayBuffer(2, 1, capacity=20)
    fill(buf, [1.0] * 6, [None, "trunc", None, None, "term", None])
    torch.manual_seed(0)
    w = buf.sample_window(500, 3)
    rows = {int(o[0, 0]): (m.tolist(), r.tolist(), t.tolist()) for o, m, r, t in
            zip(w.obs, w.inside, w.reward, w.terminated, strict=True)}
    assert rows[0] == ([1, 1, 0], [1, 1, 0], [0, 0, 0])
    assert rows[1] == ([1, 0, 0], [1, 0, 0], [0, 0, 0])
    assert rows[2] == ([1, 1, 1], [1, 1, 1], [0, 0, 1])
    assert rows[3] == ([1, 1, 0], [1, 1, 0], [0, 1, 0])
    assert set(rows) == {0, 1, 2, 3}  # windows never run past the newest transition
    assert w.obs.shape == (500, 3, 2) and w.action.shape == (500, 3, 1)
    # past the end: obs and next_obs repeat the episode's final state (2 for the episode 0-1), actions are 0
    row = next(i for i in range(500) if int(w.obs[i, 0, 0]) == 1)
    assert w.next_obs[row, :, 0].tolist() == [2, 2, 2] and w.obs[row, :, 0].tolist() == [1, 2, 2]
    assert w.action[row, :, 0].tolist() == [1, 0, 0]


def test_state_dict_round_trip_continues_identically():
    a = ReplayBuffer(2, 1, capacity=8, recent_fraction=0.5, recent_window=3)
    fill(a, list(range(11)), [None] * 11)
    b = ReplayBuffer(2, 1, capacity=8, recent_fraction=0.5, recent_window=3)
    b.load_state_dict(a.state_dict())  # the ring's position; the transitions travel as a replay chunk
    b.restore(a.added - a.size, a.transitions(a.added - a.size, a.added))
    torch.manual_seed(3)
    x = a.sample(64, 0.9)
    torch.manual_seed(3)
    y = b.sample(64, 0.9)
    assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))
    assert (a.ptr, a.size) == (b.ptr, b.size)


# episode A: 0 1 2(trunc) | episode B: 3 4(term) | episode C: 5 6 7 8 9 (running)
CHUNK_REWARDS = [1.0, 2.0, 4.0, 8.0, 16.0, 1.0, 2.0, 3.0, 4.0, 5.0]
CHUNK_ENDS = [None, None, "trunc", None, "term", None, None, None, None, None]


def sampled_chunks(n: int, gamma: float) -> dict:
    buf = ReplayBuffer(2, 1, capacity=20)
    fill(buf, CHUNK_REWARDS, CHUNK_ENDS)
    torch.manual_seed(0)
    c = buf.sample_chunk(3000, n, gamma)
    assert c.actions.shape == (3000, n, 1) and c.valid.shape == (3000, 1) and c.discount.shape == (3000, 1)
    return {int(o[0]): (a[:, 0].tolist(), float(r), float(d), int(nxt[0]), bool(v)) for o, a, r, d, nxt, v in
            zip(c.obs, c.actions, c.reward[:, 0], c.discount[:, 0], c.next_obs, c.valid[:, 0], strict=True)}


def test_chunks_against_hand_computation():
    got = sampled_chunks(3, 0.5)
    assert set(got) == set(range(8))  # a chunk starts where 3 stored transitions follow
    # (powers of 0.5 are exact in float32) inside one episode from 5: 1 + 0.5*2 + 0.25*3 = 2.75, bootstrap 0.5^3
    assert got[5] == ([5, 6, 7], 2.75, 0.125, 8, True)
    # ends exactly at its last step with a truncation: complete, bootstraps from the final state 3
    assert got[0] == ([0, 1, 2], 1 + 1 + 1, 0.125, 3, True)
    # cut by the truncation at 2: two rewards, discount 0.5^2, the episode's final state, not valid, actions zeroed
    assert got[1] == ([1, 2, 0], 2 + 2, 0.25, 3, False)
    # cut by the terminal at 4: no bootstrap
    assert got[3] == ([3, 4, 0], 8 + 8, 0.0, 5, False)
    assert got[2] == ([2, 0, 0], 4.0, 0.5, 3, False)


def test_chunks_agree_with_nstep_on_valid_rows():
    n, gamma = 3, 0.9
    chunks = sampled_chunks(n, gamma)
    buf = ReplayBuffer(2, 1, capacity=20)
    fill(buf, CHUNK_REWARDS, CHUNK_ENDS)
    torch.manual_seed(0)
    b = buf.sample_nstep(3000, n, gamma)
    nstep = {int(o[0]): (float(r), float(d), int(nxt[0])) for o, r, d, nxt in
             zip(b.obs, b.reward[:, 0], b.discount[:, 0], b.next_obs, strict=True)}
    for start, (_, reward, discount, end_state, valid) in chunks.items():
        if valid:
            assert nstep[start] == pytest.approx((reward, discount, end_state))
    assert {start for start, (*_, valid) in chunks.items() if valid} == {0, 5, 6, 7}
