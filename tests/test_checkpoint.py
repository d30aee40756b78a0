"""Incremental replay checkpoints: a checkpoint writes only the transitions added since the previous one, the ring
is restored exactly (also after it wraps), and a kill at any instant leaves a consistent directory."""

import numpy as np
import torch

from core.buffers import FIELDS, ReplayBuffer
from core.checkpoint import CHECKPOINT, REPLAY, load_replay, replay_chunks, save_checkpoint

OBS, ACT = 17, 6


def add(buffer: ReplayBuffer, n: int, rng: np.random.Generator) -> None:
    for _ in range(n):
        buffer.add(rng.normal(size=OBS).astype(np.float32), rng.uniform(-1, 1, ACT).astype(np.float32),
                   float(rng.normal()), rng.normal(size=OBS).astype(np.float32), bool(rng.random() < 0.01),
                   bool(rng.random() < 0.01))


def restored(run_dir, capacity: int, state: dict) -> ReplayBuffer:
    buffer = ReplayBuffer(OBS, ACT, capacity)
    buffer.load_state_dict(state)
    load_replay(run_dir, buffer)
    return buffer


def assert_same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert (a.ptr, a.size, a.added) == (b.ptr, b.size, b.added)
    for k in FIELDS:
        assert torch.equal(getattr(a, k)[: a.size], getattr(b, k)[: b.size]), k


def test_checkpoint_bytes_grow_with_new_transitions_only(tmp_path):
    rng = np.random.default_rng(0)
    buffer, saved = ReplayBuffer(OBS, ACT, 100_000), 0
    add(buffer, 5000, rng)
    saved = save_checkpoint(tmp_path, {"step": 1}, buffer, saved)
    first_chunk = replay_chunks(tmp_path)[0][2].stat().st_size
    add(buffer, 500, rng)
    saved = save_checkpoint(tmp_path, {"step": 2}, buffer, saved)
    chunks = replay_chunks(tmp_path)
    assert [(a, b) for a, b, _ in chunks] == [(0, 5000), (5000, 5500)] and saved == 5500
    # the second write is a tenth of the first: proportional to new data, not to the 5500 transitions held
    assert 0.08 < chunks[1][2].stat().st_size / first_chunk < 0.12
    assert (tmp_path / CHECKPOINT).stat().st_size < 2000  # the ring's position, not its content


def test_ring_restored_exactly_after_it_wraps_and_old_chunks_are_pruned(tmp_path):
    rng = np.random.default_rng(1)
    buffer, saved = ReplayBuffer(OBS, ACT, 50), 0
    for _ in range(7):
        add(buffer, 19, rng)
        saved = save_checkpoint(tmp_path, buffer.state_dict(), buffer, saved)
    assert buffer.added == 133 and buffer.size == 50
    assert all(end > 133 - 50 for _, end, _ in replay_chunks(tmp_path))  # only chunks the ring still needs
    assert_same(restored(tmp_path, 50, torch.load(tmp_path / CHECKPOINT)), buffer)
    torch.manual_seed(0)
    x = buffer.sample(64, 0.9)
    torch.manual_seed(0)
    y = restored(tmp_path, 50, torch.load(tmp_path / CHECKPOINT)).sample(64, 0.9)
    assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def test_a_kill_during_or_after_a_chunk_write_leaves_the_previous_checkpoint_usable(tmp_path):
    rng = np.random.default_rng(2)
    buffer, saved = ReplayBuffer(OBS, ACT, 40), 0
    add(buffer, 70, rng)
    saved = save_checkpoint(tmp_path, buffer.state_dict(), buffer, saved)
    reference = restored(tmp_path, 40, torch.load(tmp_path / CHECKPOINT))
    # the killed run went on: a complete chunk nobody refers to yet, and half a chunk being written
    add(buffer, 15, rng)
    torch.save(buffer.transitions(70, 85), tmp_path / REPLAY / f"{70:012d}-{85:012d}.pt")
    (tmp_path / REPLAY / f"{85:012d}-{90:012d}.pt.tmp").write_bytes(b"\x80\x02half a pickle")
    again = restored(tmp_path, 40, torch.load(tmp_path / CHECKPOINT))
    assert_same(again, reference)
    assert [(a, b) for a, b, _ in replay_chunks(tmp_path)] == [(30, 70)]  # the ring (40) only; the orphan is gone


def test_a_resume_with_a_smaller_ring_keeps_the_newest_transitions(tmp_path):
    rng = np.random.default_rng(3)
    buffer = ReplayBuffer(OBS, ACT, 100)
    add(buffer, 80, rng)
    save_checkpoint(tmp_path, buffer.state_dict(), buffer, 0)
    small = restored(tmp_path, 30, buffer.state_dict())
    assert (small.size, small.added, small.ptr) == (30, 80, 80 % 30)
    newest = buffer.transitions(50, 80)
    assert all(torch.equal(small.transitions(50, 80)[k], newest[k]) for k in FIELDS)
