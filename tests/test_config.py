"""Start-up validation in-process: one-line errors naming the valid choices, command-line overrides checked against
the schema before Hydra composes anything, and which config changes a resumed run may make."""

import json
from pathlib import Path

import pytest

from core.config import ConfigError, TrainConfig, check_overrides, check_same_run, identity, validate_common
from core.launch import config_groups
from core.sac import SACConfig
from ideas.ode_solvers.agent import FlowRLConfig
from ideas.ode_solvers.run import validate as validate_flowrl

ROOT = Path(__file__).resolve().parents[1]
SAC_GROUPS = config_groups(ROOT / "configs")
FLOWRL_GROUPS = config_groups(ROOT / "ideas" / "ode_solvers" / "conf")


def one_line_error(check) -> str:
    with pytest.raises(ConfigError) as err:
        check()
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("argv, expected", [
    (["steps=abc"], "steps must be int, got 'abc'"),
    (["lr=fast"], "lr must be float, got 'fast'"),
    (["progress=maybe"], "progress must be bool, got 'maybe'"),
    (["nonexistent_field=3"], "unknown field 'nonexistent_field'; valid choices: idea, experiment, task"),
    (["stesp=10"], "did you mean steps"),
    (["wandb.mod=offline"], "unknown field of wandb 'mod'"),
    (["compile=true"], "unknown field 'compile'"),  # FlowRL's alone: SAC would ignore it silently
    (["bf16=true"], "unknown field 'bf16'"),
    (["-m", "seed=0,1,x"], "seed must be int, got 'x'"),
    (["+preset=quik"], "unknown preset 'quik' (did you mean quick?)"),
    (["hydra/launcher=lokal"], "valid choices: basic, joblib, local, slurm, submitit_local, submitit_slurm"),
    (["task=[dog-run,dog-walk]"], "task takes one string, not a list: quote it (task='\"[dog-run,dog-walk]\"'"),
])
def test_bad_overrides_are_one_line(argv, expected):
    assert expected in one_line_error(lambda: check_overrides(argv, SACConfig, SAC_GROUPS))


def test_good_overrides_pass():
    check_overrides(["-m", "seed=0,1,2", "steps=100", "lr=1e-3", "wandb.entity=null", "wandb.mode=disabled",
                     "hydra/launcher=local", "+preset=quick", "hydra.run.dir=/tmp/x", "task=dog-run"],
                    SACConfig, SAC_GROUPS)
    check_overrides(["+sweep=grid", "solver=rk4", "flow_steps=4", "sde_noise=0.1"], FlowRLConfig, FLOWRL_GROUPS)
    with pytest.raises(ConfigError, match="unknown sweep"):
        check_overrides(["+sweep=gird"], FlowRLConfig, FLOWRL_GROUPS)


@pytest.mark.parametrize("change, expected", [
    (dict(task="dog-flyy"), "close matches: dog-walk, dog-stand, dog-trot, dog-run, dog-fetch"),
    (dict(task="cartpole_swingup"), "cartpole-swingup"),
    (dict(steps=-5), "steps must be >= 0"),
    (dict(seed=-1), "seed must be in [0, 2**32 - 1], got -1"),
    (dict(seed=2**32), "seed must be in [0, 2**32 - 1]"),
    (dict(device="tpu"), "valid choices: auto, cpu, cuda"),
    (dict(recent_fraction=1.5), "recent_fraction must be in [0, 1]"),
])
def test_shared_fields(change, expected):
    assert expected in one_line_error(lambda: validate_common(SACConfig(**change)))


@pytest.mark.parametrize("change, expected", [
    (dict(solver="rk5"), "euler, midpoint, heun2, heun3, rk4"),
    (dict(path="plvv"), "linear, plv, cosine, polynomial, vp"),
    (dict(expectile=1.5), "expectile must be in (0.0, 1.0]"),
    (dict(flow_steps=0), "flow_steps must be >= 1"),
])
def test_flowrl_fields(change, expected):
    assert expected in one_line_error(lambda: validate_flowrl(FlowRLConfig(**change)))


def write_summary(run_dir: Path, config: dict) -> None:
    (run_dir / "summary.json").write_text(json.dumps({"status": "running", "config": config}))


def test_resume_may_change_only_resumable_fields(tmp_path):
    write_summary(tmp_path, identity(SACConfig()))
    check_same_run(SACConfig(steps=5, device="cpu", torch_threads=1, log_every=7), tmp_path)  # all resumable
    assert "gamma differ" in one_line_error(lambda: check_same_run(SACConfig(gamma=0.9), tmp_path))
    assert set(TrainConfig.RESUMABLE) <= set(FlowRLConfig.RESUMABLE)


def test_field_missing_from_an_old_config_counts_as_its_default(tmp_path):
    old = identity(SACConfig())
    del old["target_entropy_scale"]  # the schema gained this field after the run was written
    write_summary(tmp_path, old)
    check_same_run(SACConfig(), tmp_path)  # the default: the same run
    message = one_line_error(lambda: check_same_run(SACConfig(target_entropy_scale=0.5), tmp_path))
    assert "target_entropy_scale differ" in message
