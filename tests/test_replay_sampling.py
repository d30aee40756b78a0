"""ReplayBuffer.sample's FlowRL options: the recent-row count, draws without replacement, hiding the newest rows."""

import numpy as np
import pytest
import torch

from core.buffers import ReplayBuffer


def numbered_buffer(n: int, capacity: int = 1000, window: int = 64) -> ReplayBuffer:
    """Transition i has obs = [i]: a batch's obs column is the stored index in arrival order."""
    buf = ReplayBuffer(1, 1, capacity, recent_fraction=0.2, recent_window=window)
    for i in range(n):
        buf.add(np.array([i], np.float32), np.zeros(1, np.float32), 0.0, np.array([i + 1], np.float32), False, False)
    return buf


def ids(batch) -> np.ndarray:
    return batch.obs[:, 0].long().numpy()


def test_defaults_are_independent_draws_with_the_rounded_recent_share():
    torch.manual_seed(0)
    buf = numbered_buffer(100, window=10)
    rows = ids(buf.sample(256, 0.99))
    assert (rows[-51:] >= 90).all()  # round(256 * 0.2) = 51 rows from the newest 10
    assert len(np.unique(rows[:205])) < 100  # 205 draws from 100 can only repeat: with replacement
    assert rows.max() == 99  # the newest transition is visible


def test_recent_count_sets_the_split():
    torch.manual_seed(0)
    rows = ids(numbered_buffer(1000, window=64).sample(256, 0.99, recent=52))  # FlowRL: int(0.8 * 256) uniform rows
    assert len(rows) == 256 and (rows[-52:] >= 1000 - 64).all()


def test_without_replacement_no_row_twice_within_a_share():
    torch.manual_seed(0)
    buf = numbered_buffer(300, window=60)
    for _ in range(20):
        rows = ids(buf.sample(256, 0.99, recent=52, replace=False))
        uniform, recent = rows[:204], rows[204:]
        assert len(np.unique(uniform)) == 204 and len(np.unique(recent)) == 52
        assert (recent >= 240).all()
    torch.manual_seed(1)
    with_replacement = ids(buf.sample(256, 0.99, recent=52))
    assert len(np.unique(with_replacement[:204])) < 204  # the default does repeat rows at this size


def test_without_replacement_is_uniform():
    """Each index is drawn with probability k/n: counts over many batches match that within 5 sigma."""
    torch.manual_seed(0)
    buf = numbered_buffer(50)
    counts = np.zeros(50)
    trials = 2000
    for _ in range(trials):
        counts += np.bincount(ids(buf.sample(20, 0.99, recent=0, replace=False)), minlength=50)
    p = 20 / 50
    assert np.abs(counts - trials * p).max() < 5 * np.sqrt(trials * p * (1 - p))


def test_without_replacement_cannot_ask_more_rows_than_stored():
    buf = numbered_buffer(30)
    with pytest.raises(ValueError, match="distinct"):
        buf.sample(40, 0.99, recent=0, replace=False)


def test_hide_newest_samples_as_before_the_newest_was_stored():
    """FlowRL updates before storing the step's transition: with hide_newest=1 the newest row never appears and the
    recent window ends one row earlier."""
    torch.manual_seed(0)
    buf = numbered_buffer(200, window=8)
    seen = np.concatenate([ids(buf.sample(64, 0.99, recent=16, hide_newest=1)) for _ in range(50)])
    assert seen.max() == 198
    recent = np.concatenate([ids(buf.sample(64, 0.99, recent=16, hide_newest=1))[-16:] for _ in range(50)])
    assert set(recent) == set(range(191, 199))  # the newest 8 of the 199 visible
    with pytest.raises(ValueError, match="hidden"):
        numbered_buffer(1).sample(4, 0.99, hide_newest=1)


def test_hide_newest_across_the_ring_wrap():
    buf = numbered_buffer(130, capacity=100, window=32)  # indices 30..129 stored, 129 newest, written at slot 29
    torch.manual_seed(0)
    batches = [ids(buf.sample(64, 0.99, recent=16, replace=False, hide_newest=1)) for _ in range(50)]
    seen = np.concatenate(batches)
    assert seen.min() == 30 and seen.max() == 128
    assert all((b[-16:] >= 97).all() for b in batches)  # the newest 32 visible: 97..128
