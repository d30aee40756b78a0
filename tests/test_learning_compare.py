"""benchmarks.learning's comparison of two cases: AUC only over the frames both ran, never a longer run's tail."""

import subprocess

import numpy as np
import pytest

from benchmarks import learning


def test_comparison_uses_only_the_frames_both_cases_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    # the `against` case ran 100 frames at a flat 10; ours ran 200: 10 for the first 100, then 1000
    (tmp_path / "learning_base.csv").write_text("seed,frame,return\n" + "".join(
        f"{s},{f},10\n" for s in (0, 1) for f in (0, 50, 100)))
    frames = np.array([0, 50, 100, 150, 200])
    ours = {s: (frames, np.array([10.0, 10, 10, 1000, 1000])) for s in (0, 1)}
    case = learning.Case("m", (), rule="measured", note="", against="base")
    result = learning.compare(case, ours)
    assert result["compared_over_frames"] == 100
    assert result["auc_common"] == result["against_mean_auc"] == 10.0 and result["auc_ratio"] == 1.0
    assert learning.compare(learning.Case("m", (), rule="measured", note=""), ours) == {}  # no against: nothing


def test_a_diverged_run_stops_the_judgement_instead_of_passing_as_a_short_curve(tmp_path):
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "eval.csv").write_text("frame,return\n0,10\n1000,500\n")
    (run / "summary.json").write_text('{"status": "complete"}')
    frames, returns = learning.read_curve(run)
    assert frames.tolist() == [0, 1000] and returns.tolist() == [10, 500]
    (run / "summary.json").write_text('{"status": "diverged", "diverged_at_step": 1000}')
    with pytest.raises(SystemExit, match="seed0 did not finish .status diverged"):
        learning.read_curve(run)


def test_an_evaluation_diagnostic_is_drawn_at_the_evaluation_it_describes(tmp_path):
    # train.csv rows are written before their step's evaluation: the row at frame 20 holds the evaluation at 10 (the
    # warm-up row at 10 has no update metrics yet); the last evaluation's value is only in summary.json
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "eval.csv").write_text("frame,return\n0,1\n10,2\n20,3\n30,4\n")
    (run / "train.csv").write_text("frame,train/reach_error_eval\n10,\n20,0.5\n30,0.7\n")
    (run / "summary.json").write_text('{"status": "complete", "reach_error_eval": 0.9}')
    case = learning.Case("m", (), rule="measured", note="", diagnostic="train/reach_error_eval",
                         diagnostic_of_evaluation=True)
    frames, values = learning.read_diagnostic(run, case)
    assert frames.tolist() == [10, 20, 30] and values.tolist() == [0.5, 0.7, 0.9]
    plain = learning.Case("m", (), rule="measured", note="", diagnostic="train/reach_error_eval")
    frames, values = learning.read_diagnostic(run, plain)  # any other column stays at its row's frame
    assert frames.tolist() == [20, 30] and values.tolist() == [0.5, 0.7]


RECORD = ("summary.json", "eval.csv", "train.csv", ".hydra/config.yaml", "dropout_rates.npz")
NOT_RECORD = ("checkpoint.pt", "replay/0-5000.pt", "wandb/run.wandb")


def test_a_benchmark_runs_record_is_committed_and_its_checkpoint_is_not():
    """.gitignore keeps each run's record (a clean clone skips and re-judges finished runs) and drops the rest."""
    root = learning.ROOT
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    run_dir = "benchmarks/results/runs/some-case/seed0"
    paths = [f"{run_dir}/{name}" for name in RECORD + NOT_RECORD] + [f"{run_dir}.log"]
    out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=root, capture_output=True, text=True)
    ignored = set(out.stdout.split())
    assert ignored == {f"{run_dir}/{name}" for name in NOT_RECORD} | {f"{run_dir}.log"}, out.stderr
