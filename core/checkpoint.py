"""Checkpoints: everything a run needs to continue exactly, written atomically, at a cost that grows with new data.

checkpoint.pt holds networks, optimisers, counters, RNG states and the replay ring's position; the transitions go to
append-only replay chunks, replay/<first>-<end>.pt holding those with arrival numbers [first, end). A checkpoint
writes one chunk of the transitions added since the previous one, then replaces checkpoint.pt, which refers to them
by the buffer's `added` count: a kill at any instant leaves the previous checkpoint and the chunks it needs (a chunk
written by a killed run is past its `added` and ignored, then removed). Chunks older than the ring are pruned.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from core.buffers import ReplayBuffer

CHECKPOINT = "checkpoint.pt"
REPLAY = "replay"


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, fsync, then rename over `path` (readers never see half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def replay_chunks(run_dir: Path) -> list[tuple[int, int, Path]]:
    """(first, end, path) of every complete replay chunk, in arrival order."""
    chunks = []
    for path in (run_dir / REPLAY).glob("*-*.pt"):
        first, end = path.stem.split("-")
        chunks.append((int(first), int(end), path))
    return sorted(chunks)


def save_checkpoint(run_dir: Path, state: dict, buffer: ReplayBuffer | None = None, saved_until: int = 0) -> int:
    """Append the transitions added since `saved_until` as one replay chunk, then replace checkpoint.pt; returns the
    new `saved_until` (the buffer's `added`)."""
    if buffer is None:
        atomic_save(state, run_dir / CHECKPOINT)
        return saved_until
    first, end = max(saved_until, buffer.added - buffer.size), buffer.added
    if end > first:
        (run_dir / REPLAY).mkdir(exist_ok=True)
        atomic_save(buffer.transitions(first, end), run_dir / REPLAY / f"{first:012d}-{end:012d}.pt")
    atomic_save(state, run_dir / CHECKPOINT)
    for _, chunk_end, path in replay_chunks(run_dir):
        if chunk_end <= buffer.added - buffer.capacity:  # fully overwritten in the ring: no checkpoint needs it
            path.unlink()
    return end


def load_replay(run_dir: Path, buffer: ReplayBuffer) -> int:
    """Refill the ring (its position already restored by load_state_dict) from the replay chunks; returns the
    `saved_until` to continue from."""
    first, added = buffer.added - buffer.size, buffer.added
    covered = first
    for chunk_first, chunk_end, path in replay_chunks(run_dir):
        if chunk_first >= added:  # written by a run killed before its checkpoint referred to it
            path.unlink()
            continue
        if chunk_end <= covered:
            continue
        if chunk_first > covered:
            break
        arrays = torch.load(path, map_location="cpu", weights_only=True)
        upto = min(chunk_end, added)
        buffer.restore(covered, {k: v[covered - chunk_first:upto - chunk_first] for k, v in arrays.items()})
        covered = upto
    if covered != added:
        raise RuntimeError(f"{run_dir / REPLAY}: transitions [{covered}, {added}) are missing; cannot resume")
    return added


def load_checkpoint(run_dir: Path) -> dict | None:
    """The latest checkpoint of a run directory, or None."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def first_nonfinite(tree, name: str = "") -> str | None:
    """The dotted name of the first tensor or float holding NaN or inf in a nested dict/list/tuple, or None."""
    if isinstance(tree, torch.Tensor):
        finite = not tree.is_floating_point() or bool(torch.isfinite(tree).all())
        return None if finite else name
    if isinstance(tree, float):
        return None if np.isfinite(tree) else name
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list | tuple) else ()
    for key, value in items:
        found = first_nonfinite(value, f"{name}.{key}" if name else str(key))
        if found:
            return found
    return None


def rng_states() -> dict:
    """Python, numpy, torch CPU and CUDA generator states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict) -> None:
    """Restore what rng_states() returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
