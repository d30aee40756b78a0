"""The report end to end on constructed run directories: arms, primary family, design warnings, both time axes."""

import csv
import json
import os
import subprocess
import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.analysis import ReportSpec, load_run, stats, study
from core.analysis.runs import assign_groups, find_reference

REPO = Path(__file__).resolve().parents[1]
STEPS = [0, 2500, 5000, 7500, 10000]
REPEAT = 2
# arm -> (return per frame, seconds per agent step): rk4 learns faster per step but costs 2.5x per step
ARMS = {"midpoint": (0.02, 0.01), "rk4": (0.03, 0.025), "euler": (0.008, 0.005)}
SPEC = ReportSpec(title="Constructed study", group_keys=("solver", "path", "flow_steps"),
                  reference={"solver": "midpoint", "path": "linear", "flow_steps": 1})


def write_run(run_dir, config, evals=None, summary=None, train=None):
    """One run directory in the engine's file format; evals: list of dicts (extra columns allowed)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    for name, rows in (("eval.csv", evals), ("train.csv", train)):
        if rows:
            with (run_dir / name).open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))


def config(task, solver, seed, **over):
    return {"idea": "ode_solvers", "task": task, "seed": seed, "steps": STEPS[-1], "action_repeat": REPEAT,
            "warmup_steps": 0, "solver": solver, "path": "linear", "flow_steps": 1, "hidden": 64, "device": "cpu",
            "torch_threads": 1, "wandb": {"mode": "disabled", "project": "x"}} | over


def add_run(root, name, task, solver, seed, status="complete", evaluated=STEPS, **over):
    slope, cost = ARMS[solver]
    noise = 3.0 * seed + (1.5 if task == "dog-run" else 0.0)
    evals = [{"step": s, "frame": s * REPEAT, "return": slope * s * REPEAT + noise * (s > 0), "return_std": 1.0,
              "episodes": 2, "wall_s": round(cost * s + 0.5, 4), "eval/extra_metric": 7.0, "note": "text"}
             for s in evaluated]
    train = [{"step": s, "frame": s * REPEAT, "updates": s, "time/env_steps_per_s": 1 / cost,
              "time/updates_per_s": 1 / cost, "perf/nfe_per_action": 2.0} for s in evaluated if s > 0]
    summary = {"status": status, "step": evaluated[-1], "steps": STEPS[-1], "updates": evaluated[-1],
               "final_return": evals[-1]["return"] if status == "complete" else None,
               "env_steps_per_s": 1 / cost, "updates_per_s": 1 / cost, "wall_s": evals[-1]["wall_s"]}
    if status == "failed":
        summary["error"] = "RuntimeError: CUDA out of memory"
    write_run(root / name, config(task, solver, seed, **over), evals, summary, train)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 tasks x 3 arms x 5 seeds; rk4 has a failed 6th run on dog-run; midpoint a never-started 6th run;
    one euler run on cartpole has another `steps` (and so another experiment)."""
    root = tmp_path_factory.mktemp("sweep")
    i = 0
    for task in ("cartpole-swingup", "dog-run"):
        for solver in ARMS:
            for seed in range(5):
                steps_over = {"steps": 20000} if (task, solver, seed) == ("cartpole-swingup", "euler", 4) else {}
                add_run(root, str(i), task, solver, seed, **steps_over)
                i += 1
    add_run(root, "failed", "dog-run", "rk4", 5, status="failed", evaluated=STEPS[:2])
    write_run(root / "missing", config("dog-run", "midpoint", 5))
    return root


@pytest.fixture(scope="module")
def report(sweep):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "ideas.ode_solvers.report", str(sweep)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return sweep


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_report_writes_markdown_csvs_and_pngs(report):
    from matplotlib import image

    text = (report / "report.md").read_text()
    assert text.startswith("# ODE solvers and probability paths")
    assert "Read 32 run directories" in text and "30 complete runs" in text
    for name in ("runs.csv", "groups.csv", "stats.csv", "aggregate.csv"):
        assert read_csv(report / name), name
    for name in ("curves_cartpole-swingup.png", "curves_dog-run.png", "speed.png", "scores.png", "auc_vs_nfe.png"):
        assert f"]({name})" in text
        pixels = image.imread(report / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500 and pixels[..., :3].std() > 0.05, name
    runs = {r["dir"]: r for r in read_csv(report / "runs.csv")}
    assert runs["0"]["nfe"] == "2.0"  # the idea's extra column, read from train.csv (summary.json lacks it)


def test_failed_and_missing_runs_counted_in_their_arm_rows(report):
    rows = {(r["task"], r["group"]): r for r in read_csv(report / "groups.csv")}
    rk4 = rows[("dog-run", "rk4")]
    assert (rk4["complete"], rk4["failed"], rk4["n"]) == ("5", "1", "5")
    assert rows[("dog-run", "midpoint")]["missing"] == "1"
    text = (report / "report.md").read_text()
    assert "| `rk4` | 5/6 complete; 1 failed |" in text
    primary = text.split("## Primary question", 1)[1].split("\n## ", 1)[0]
    assert "⚠ arm: 1 failed; reference: 1 missing" in primary  # flagged next to the dog-run rk4 test
    missing = text.split("## Missing, failed or unfinished runs", 1)[1].split("\n## ", 1)[0]
    assert "`failed`" in missing and "CUDA out of memory" in missing and "`missing`" in missing


def test_group_with_differing_steps_is_split_and_named(report):
    groups = {r["group"] for r in read_csv(report / "groups.csv")}
    assert {"euler [steps=10000]", "euler [steps=20000]", "midpoint", "rk4"} == groups
    text = (report / "report.md").read_text()
    assert "**Split:** runs of `euler` on one task differ in `steps`" in text


def test_primary_family_is_one_holm_over_all_tasks(report, sweep):
    rows = read_csv(report / "stats.csv")
    primary = [r for r in rows if r["family"] == "primary"]
    assert {(r["task"], r["group_a"], r["metric"]) for r in primary} == {
        (t, g, "auc") for t in ("cartpole-swingup", "dog-run")
        for g in ("rk4", "euler [steps=10000]", "euler [steps=20000]") if (t, g) != ("dog-run", "euler [steps=20000]")}
    assert {r["group_b"] for r in primary} == {"midpoint"}
    # p by hand: rk4 beats the reference at every seed on dog-run (5 vs 5, fully separated): 2/252
    rk4 = next(r for r in primary if r["task"] == "dog-run" and r["group_a"] == "rk4")
    assert float(rk4["p"]) == pytest.approx(2 / 252) and float(rk4["U"]) == 25 and rk4["p_method"] == "exact"
    np.testing.assert_allclose([float(r["p_holm"]) for r in primary], stats.holm([float(r["p"]) for r in primary]))
    assert all(r["family"] == "exploratory" for r in rows if r["metric"] != "auc" or r["group_b"] != "midpoint")


def test_groups_csv_auc_by_hand(report):
    slope, cost = ARMS["rk4"]
    frames = np.array(STEPS, float) * REPEAT
    aucs = [np.trapezoid(slope * frames + 3.0 * s * (frames > 0) + 1.5 * (frames > 0), frames) / frames[-1]
            for s in range(5)]
    row = next(r for r in read_csv(report / "groups.csv") if r["task"] == "dog-run" and r["group"] == "rk4")
    assert float(row["auc"]) == pytest.approx(np.mean(aucs))
    # wall axis: the common horizon is the fastest complete run's end, euler's 0.005 * 10000 + 0.5 = 50.5 s
    seed0 = next(r for r in read_csv(report / "runs.csv") if r["dir"] == "20")  # dog-run, rk4, seed 0
    wall = cost * np.array(STEPS) + 0.5
    returns = slope * frames + 1.5 * (frames > 0)
    assert float(seed0["auc_wall"]) == pytest.approx(stats.auc_until(wall, returns, 50.5))
    assert float(seed0["s_per_update"]) == pytest.approx(cost)


def test_wall_clock_verdict_disagrees_with_per_step(report):
    text = (report / "report.md").read_text()
    section = text.split("## dog-run", 1)[1].split("\n## ", 1)[0]
    assert "Per env step (AUC against frames): `rk4` leads" in section
    assert ("Per second of wall-clock (AUC against elapsed time) over the first 50 s: `midpoint` (the reference) "
            "leads") in section
    assert "Per step and per second disagree: `rk4` learns most per env step, `midpoint` most per second" in section


def test_ignored_and_absent_fields_do_not_split(tmp_path):
    add_run(tmp_path, "a", "dog-run", "rk4", 0, device="cuda", torch_threads=4, wandb={"mode": "offline"})
    add_run(tmp_path, "b", "dog-run", "rk4", 1)
    add_run(tmp_path, "c", "dog-run", "rk4", 2)
    config_c = yaml.safe_load((tmp_path / "c" / ".hydra" / "config.yaml").read_text())
    del config_c["hidden"]  # a run written before the field existed
    (tmp_path / "c" / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config_c))
    runs = [load_run(tmp_path / d, SPEC) for d in "abc"]
    grouping = assign_groups(runs, SPEC)
    assert {r.group for r in runs} == {"rk4/linear/1"} and grouping.splits == {}
    assert grouping.absent == {"hidden": 1}
    custom = ReportSpec(title="t", group_keys=SPEC.group_keys, ignored_fields=("seed",))
    assign_groups(runs, custom)  # with device no longer ignored, the cuda run is another experiment
    assert {r.group for r in runs} == {"rk4/linear/1 [device=cuda, torch_threads=4, wandb.mode=offline]",
                                       "rk4/linear/1 [device=cpu, torch_threads=1, wandb.mode=disabled]"}


def test_extra_eval_columns_are_loaded(sweep):
    run = load_run(sweep / "0", SPEC)
    assert run.state == "complete"
    np.testing.assert_allclose(run.eval_columns["eval/extra_metric"], 7.0)
    assert np.isnan(run.eval_columns["note"]).all()  # a text column is kept as nan, not an error


def analyse(root, spec=SPEC):
    """Load, group and test runs under root without drawing: (primary test rows, design-check lines)."""
    from core.analysis.runs import find_run_dirs

    runs = [load_run(d, spec) for d in find_run_dirs(root)]
    assign_groups(runs, spec)
    reference, _ = find_reference(runs, spec)
    usable = [r for r in runs if r.state == "complete"]
    tasks = sorted({r.task for r in usable})
    groups = sorted({r.group for r in usable})
    study.score_time_axes(usable, tasks)
    tests, _ = study.run_tests(usable, runs, tasks, groups, reference, spec)
    primary = [t for t in tests if t["family"] == "primary"]
    return primary, study.design_check(primary, spec)


def small_study(root, arms, seeds, tasks=("cartpole-swingup",)):
    """Runs with flat, distinct curves: arm k, seed s returns 10 * k + s (arm 0 is the reference, midpoint)."""
    for task in tasks:
        for k, solver in enumerate(arms):
            for seed in range(seeds if isinstance(seeds, int) else seeds[k]):
                value = 10.0 * k + seed
                evals = [{"step": s, "frame": s, "return": value, "wall_s": s / 100} for s in (0, 100)]
                summary = {"status": "complete", "final_return": value, "updates_per_s": 10.0, "wall_s": 1.0}
                write_run(root / f"{task}-{solver}-{seed}", config(task, solver, seed), evals, summary)


SEVEN = ["midpoint", "euler", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams"]


def test_seven_arms_five_seeds_warns(tmp_path):
    small_study(tmp_path / "one", SEVEN, 5)
    primary, design = analyse(tmp_path / "one")
    assert len(primary) == 6  # one task: 6 arms against the reference
    assert len(design) == 1 and "only when every seed of an arm beats every seed of the reference" in design[0]
    assert "6 seeds per arm" in design[0]  # 6 * 4/924 = 0.026 < 0.05
    small_study(tmp_path / "three", SEVEN, 5, tasks=("cartpole-swingup", "dog-run", "walker-walk"))
    primary, design = analyse(tmp_path / "three")
    assert len(primary) == 18  # one family over all three tasks
    assert design[0].startswith("**No primary test can reach p < 0.05")
    assert f"{18 * 2 / 252:.3g}" in design[0] and "6 seeds per arm would make p < 0.05 attainable" in design[0]
    assert not any(t["significant"] for t in primary)


def test_two_arms_ten_seeds_does_not_warn(tmp_path):
    small_study(tmp_path, ["midpoint", "rk4"], 10)
    primary, design = analyse(tmp_path)
    assert design == [] and len(primary) == 1
    assert primary[0]["significant"] and primary[0]["p"] == pytest.approx(2 / comb(20, 10))


def test_unequal_seeds_never_contradict_the_table(tmp_path):
    small_study(tmp_path, ["midpoint", "rk4", "euler", "heun2"], [10, 10, 1, 3])
    primary, design = analyse(tmp_path)
    assert any(t["significant"] for t in primary)
    assert not any("No primary test" in line for line in design)
    for t in primary:  # a significant row always has an attainable Holm p below alpha and at most its own
        assert t["attainable_p_holm"] <= t["p_holm"] + 1e-12
        if t["significant"]:
            assert t["attainable_p_holm"] < 0.05
    cannot = [t for t in primary if t["attainable_p_holm"] >= 0.05]
    assert all(not t["significant"] for t in cannot)
    if cannot:
        assert any(f"{len(cannot)} of 3 primary tests cannot reach" in line for line in design)


def test_minimum_detectable_effect_is_reported(tmp_path):
    small_study(tmp_path, ["midpoint", "rk4"], 10)
    primary, _ = analyse(tmp_path)
    assert 0 < primary[0]["mde"] < np.inf


def test_no_reference_means_no_primary_test(tmp_path):
    small_study(tmp_path, ["euler", "rk4"], 3)
    primary, design = analyse(tmp_path)
    assert primary == [] and design == []
    runs = [load_run(tmp_path / d, SPEC) for d in os.listdir(tmp_path)]
    assign_groups(runs, SPEC)
    assert find_reference(runs, SPEC) == (
        None, "the study's reference arm (solver=midpoint, path=linear, flow_steps=1) has no runs here")
    assert find_reference(runs, SPEC, "rk4")[0] == "rk4"  # --reference picks one by its label


def test_only_failed_runs_still_reported_with_out_and_several_inputs(tmp_path):
    add_run(tmp_path / "a", "0", "dog-run", "rk4", 0, status="failed", evaluated=STEPS[:2])
    add_run(tmp_path / "b", "1", "dog-run", "rk4", 1, status="running", evaluated=STEPS[:3])
    add_run(tmp_path / "b", "2", "dog-run", "rk4", 2, status="diverged", evaluated=STEPS[:2])
    summary = json.loads((tmp_path / "b" / "2" / "summary.json").read_text())
    summary |= {"diverged_at_step": 3000, "nonfinite": "train/critic_loss"}  # as the divergence guard writes it
    (tmp_path / "b" / "2" / "summary.json").write_text(json.dumps(summary))
    result = run_cli(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "report.md").read_text()
    assert "from `../a`, `../b`" in text and "No complete run" in text
    assert "| `../a/0` | dog-run | rk4/linear/1 | 0 | failed | status failed: RuntimeError: CUDA out of memory" in text
    assert "| `rk4/linear/1` | 0/3 complete; 1 failed, 1 diverged, 1 running |" in text  # the arm's row counts all
    assert "status diverged: non-finite train/critic_loss at step 3000" in text
    assert not list((tmp_path / "out").glob("*.png")) and "](curves_" not in text


def run_cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ideas.ode_solvers.report", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("make", ["missing", "empty", "bad-reference"])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, make):
    target = tmp_path / "nope"
    args = [target]
    if make == "empty":
        target.mkdir()
        (target / "notes.txt").write_text("no runs here")
    if make == "bad-reference":
        add_run(target, "0", "dog-run", "rk4", 0)
        args += ["--reference", "nonexistent"]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_entry_point_does_not_import_torch_or_matplotlib():
    code = ("import sys, ideas.ode_solvers.report; "
            "assert not {'torch', 'matplotlib'} & set(sys.modules), 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
