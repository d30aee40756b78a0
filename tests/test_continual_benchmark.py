"""benchmarks.continual's plan, checked before hours of runs depend on it: every arm and method it names exists, the
dropout part shares the forgetting part's baseline runs, and a bad part fails in one line before any run."""

import json
from pathlib import Path

import pytest

from benchmarks import continual
from ideas.learnable_dropout.methods import METHODS

ARM_CONFIGS = Path(continual.ROOT, "ideas", "learnable_dropout", "conf", "arm")


def test_every_arm_and_method_named_exists():
    assert all((ARM_CONFIGS / f"{arm}.yaml").is_file() for arm in continual.DROPOUT_ARMS)
    assert set(continual.METHODS) <= set(METHODS)
    assert "learned_prior_gpm_replay" in continual.DROPOUT_ARMS  # the researcher's full arm ...
    assert {"gpm_replay", "heterogeneous_gpm_replay"} <= set(continual.DROPOUT_ARMS)  # ... and its dropout controls


def test_run_directories_are_distinct_and_the_dropout_part_reuses_the_baselines():
    jobs = continual.single_jobs() + continual.forgetting_jobs() + continual.dropout_jobs()
    assert len({d for d, _ in jobs}) == len(jobs) == 9 + 9 + 12
    baselines = continual.baseline_arms()  # the dropout part's fine-tuning, EWC and PackNet: the forgetting runs
    assert list(baselines) == ["finetune", "ewc", "packnet"]
    assert sorted(d for dirs in baselines.values() for d in dirs) == sorted(d for d, _ in continual.forgetting_jobs())
    assert all(len(dirs) == len(continual.SEEDS) and all(m in str(d) for d in dirs) for m, dirs in baselines.items())


def test_a_bad_part_fails_in_one_line_before_any_run(capsys, monkeypatch):
    monkeypatch.setattr(continual, "run", lambda *a: (_ for _ in ()).throw(AssertionError("a run started")))
    assert continual.main(["single", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'bogus'" in err and "single, forgetting, dropout" in err


def test_a_run_that_did_not_finish_stops_the_judgement_naming_it(tmp_path):
    run = tmp_path / "seed0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("task: mw-faucet-close@100\nsequence: mw-faucet-close\n"
                                                 "steps_per_task: 100\nseed: 0\n")
    (run / "eval.csv").write_text("step,task_index,task,success,return\n50,0,mw-faucet-close,1.0,10\n")
    (run / "summary.json").write_text(json.dumps({"status": "diverged"}))
    with pytest.raises(SystemExit, match="seed0 did not finish its budget .status diverged"):
        continual.finished(run)
    (run / "summary.json").write_text(json.dumps({"status": "complete"}))  # says so, but evaluated to 50 of 100
    with pytest.raises(SystemExit, match="seed0 did not finish"):
        continual.finished(run)
    with open(run / "eval.csv", "a") as f:
        f.write("100,0,mw-faucet-close,1.0,10\n")
    assert continual.finished(run).steps.tolist() == [50, 100]
