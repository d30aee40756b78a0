"""Checkpoint cost against the replay buffer's size, at dog-run sizes (obs 223, action 38).

    python -m benchmarks.checkpoint [--sizes 100000 1000000] [--new 10000]

For each number of stored transitions, a checkpoint taken after `--new` more transitions (the default
checkpoint_every is 10k steps, one transition each): time (with fsync) and bytes written, for core.checkpoint's
incremental replay chunks and, side by side, for the whole buffer in one file (what every checkpoint wrote before).
The claim under test: the incremental checkpoint's cost follows the new data, so 1M stored costs about what 100k
does, while the whole-buffer file grows 10x. Writes benchmarks/results/checkpoint.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from core.buffers import FIELDS, ReplayBuffer
from core.checkpoint import atomic_save, save_checkpoint

RESULTS = Path(__file__).resolve().parent / "results"
OBS, ACT = 223, 38  # dog-run


def filled(stored: int) -> ReplayBuffer:
    """A buffer holding `stored` random transitions (filled in bulk through the restore path a resume uses)."""
    buffer = ReplayBuffer(OBS, ACT, stored + 1)
    buffer.load_state_dict(dict(ptr=0, size=stored, added=stored))
    for start in range(0, stored, 100_000):
        n = min(100_000, stored - start)
        buffer.restore(start, dict(obs=torch.randn(n, OBS), action=torch.rand(n, ACT), reward=torch.randn(n),
                                   next_obs=torch.randn(n, OBS), terminated=torch.zeros(n),
                                   episode_end=torch.zeros(n)))
    return buffer


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(stored: int, new: int, workdir: Path) -> dict:
    """One checkpoint after `new` transitions on top of `stored - new` already checkpointed ones."""
    buffer = filled(stored)
    run_dir = workdir / f"run{stored}"
    (run_dir / "replay").mkdir(parents=True)
    saved = stored - new  # the earlier checkpoints' chunk; the last `new` transitions arrived after it
    atomic_save(buffer.transitions(0, saved), run_dir / "replay" / f"{0:012d}-{saved:012d}.pt")
    before = dir_bytes(run_dir)
    t0 = time.perf_counter()
    save_checkpoint(run_dir, {"position": buffer.state_dict()}, buffer, saved)
    incremental_s = time.perf_counter() - t0
    incremental_bytes = dir_bytes(run_dir) - before

    whole = {k: getattr(buffer, k)[: buffer.size] for k in FIELDS}
    t0 = time.perf_counter()
    atomic_save(whole, workdir / f"whole{stored}.pt")
    whole_s = time.perf_counter() - t0
    whole_bytes = (workdir / f"whole{stored}.pt").stat().st_size
    shutil.rmtree(run_dir)
    (workdir / f"whole{stored}.pt").unlink()
    return dict(stored=stored, new=new, incremental_s=round(incremental_s, 4), incremental_bytes=incremental_bytes,
                whole_buffer_s=round(whole_s, 4), whole_buffer_bytes=whole_bytes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--new", type=int, default=10_000, help="transitions added since the previous checkpoint")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=RESULTS.parent) as tmp:  # on the project's disk, not a RAM-backed /tmp
        rows = [measure(n, args.new, Path(tmp)) for n in args.sizes]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "checkpoint.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| stored transitions | new since last | incremental: time, bytes | whole buffer: time, bytes |",
             "|---|---|---|---|"]
    lines += [f"| {r['stored']:,} | {r['new']:,} | {r['incremental_s']:.3f} s, {r['incremental_bytes'] / 1e6:.1f} MB "
              f"| {r['whole_buffer_s']:.3f} s, {r['whole_buffer_bytes'] / 1e6:.1f} MB |" for r in rows]
    (RESULTS / "checkpoint.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
