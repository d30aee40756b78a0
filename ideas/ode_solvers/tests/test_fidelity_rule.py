"""The flowrl-cartpole fidelity rule (benchmarks/learning.py) on constructed run directories: the reference's own
curves pass, a non-learning agent and a half-as-good agent fail, fewer than 6 seeds never pass."""

import json
from pathlib import Path

import numpy as np
import pytest

import benchmarks.learning as learning

CASE = learning.CASES["flowrl-cartpole"]
REFERENCE = learning.read_reference(learning.RESULTS / CASE.reference)


def fake_runs(root: Path, curves: dict) -> list[Path]:
    """Run directories holding only what the judge reads: eval.csv and summary.json."""
    dirs = []
    for seed, (frames, returns) in curves.items():
        d = root / f"seed{seed}"
        d.mkdir(parents=True)
        rows = "\n".join(f"{int(f)},{int(f) // 4},{r}" for f, r in zip(frames, returns, strict=True))
        (d / "eval.csv").write_text("frame,step,return\n" + rows + "\n")
        (d / "summary.json").write_text(json.dumps({"status": "complete", "env_steps_per_s": 20.0}))
        dirs.append(d)
    return dirs


@pytest.fixture
def results(tmp_path, monkeypatch):
    (tmp_path / CASE.reference).write_bytes((learning.RESULTS / CASE.reference).read_bytes())
    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    return tmp_path


def judge(results: Path, curves: dict) -> dict:
    return learning.judge("flowrl-cartpole", CASE, fake_runs(results / "runs", curves))


def test_reference_against_itself_passes(results):
    shifted = {s + 10: c for s, c in REFERENCE.items()}
    verdict = judge(results, shifted)
    assert verdict["passed"] and verdict["p_worse"] > 0.4 and verdict["auc_ratio"] == pytest.approx(1.0)
    assert (results / "learning_flowrl-cartpole.png").stat().st_size > 10_000
    assert verdict["operating_characteristics"]["p_pass_faithful"] > 0.9
    assert verdict["operating_characteristics"]["p_pass_non-learning"] < 0.01


def test_non_learning_agent_fails_both_parts(results):
    flat = {s: (f, np.full_like(r, r[0])) for s, (f, r) in REFERENCE.items()}  # stays at its step-0 return
    verdict = judge(results, flat)
    assert not verdict["passed"] and verdict["p_worse"] < 0.01 and verdict["mean_auc"] < verdict["floor"]


def test_half_as_good_agent_fails(results):
    half = {s: (f, 0.5 * r) for s, (f, r) in REFERENCE.items()}
    verdict = judge(results, half)
    assert not verdict["passed"] and verdict["p_worse"] < learning.ALPHA


def test_fewer_than_six_seeds_never_pass(results):
    verdict = judge(results, dict(list(REFERENCE.items())[:5]))
    assert not verdict["enough_seeds"] and not verdict["passed"]


def test_auc_is_the_mean_height():
    assert learning.auc(np.array([0.0, 10.0, 20.0]), np.array([0.0, 100.0, 100.0])) == pytest.approx(75.0)
