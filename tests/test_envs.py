"""core.envs against real dm_control physics: specs, time limits, action repeat, seeding, checkpoints, bad names."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("MUJOCO_GL", "disable")  # no GL needed; silences glfw without a display

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from dm_control import suite  # noqa: E402
from dm_control.rl.control import flatten_observation  # noqa: E402

from core.envs import all_tasks, check_task, make_env  # noqa: E402
from core.envs.dmc import DMCEnv  # noqa: E402
from core.envs.dmc import tasks as dmc_tasks  # noqa: E402


def _raw(task: str, seed: int):
    """The plain dm_control env the wrapper must reproduce (same seed, the suite's own 1000-frame limit)."""
    domain, name = task.split("-")
    env = suite.load(domain, name, task_kwargs={"random": seed})
    env.physics._make_rendering_contexts = lambda: None  # quadruped-escape without GL, as the wrapper does
    return env


def _flat(time_step) -> np.ndarray:
    return flatten_observation(time_step.observation)["observations"].astype(np.float32)


def _rollout(env: DMCEnv, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs, rewards = [env.reset()], []
    for action in actions:
        o, r, terminated, truncated, _ = env.step(action)
        obs.append(o)
        rewards.append(r)
        if terminated or truncated:
            break
    return np.stack(obs), np.array(rewards)


def _actions(n: int, act_dim: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, (n, act_dim)).astype(np.float32)


# ----------------------------------------------------------------- names
def test_task_names():
    tasks = dmc_tasks()
    assert len(tasks) == len(suite.ALL_TASKS) == len(set(tasks))
    assert {"ball_in_cup-catch", "cartpole-swingup", "dog-run", "quadruped-walk", "humanoid_CMU-run"} <= set(tasks)
    assert all(t.count("-") == 1 for t in tasks)
    for task in tasks:
        check_task(task)


def test_unknown_task_one_line_with_close_matches(monkeypatch):
    with pytest.raises(ValueError) as err:
        check_task("dog-flyy")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("unknown task 'dog-flyy'; close matches: ")
    for name in ("dog-fetch", "dog-run", "dog-trot", "dog-walk", "dog-stand"):
        assert name in msg
    assert f"(python -m core.envs lists all {len(all_tasks())} tasks)" in msg  # every family's
    assert "cartpole-swingup" in str(pytest.raises(ValueError, check_task, "cartpole_swingup").value)
    assert "no close matches" in str(pytest.raises(ValueError, check_task, "zzz").value)

    def no_build(*args, **kwargs):
        raise AssertionError("an environment was built for an unknown task")

    monkeypatch.setattr(suite, "load", no_build)
    with pytest.raises(ValueError, match="unknown task 'dog-flyy'"):
        make_env("dog-flyy", 0)


def test_module_lists_tasks():
    out = subprocess.run([sys.executable, "-m", "core.envs"], capture_output=True, text=True, check=True,
                         env={**os.environ, "MUJOCO_GL": "disable"})
    assert out.stdout.split() == all_tasks() and set(dmc_tasks()) < set(all_tasks())


# ----------------------------------------------------------------- specs, actions
def test_specs_dtypes_and_clipping():
    env = make_env("cartpole-swingup", 0)
    assert (env.obs_dim, env.act_dim, env.action_repeat, env.max_episode_steps) == (5, 1, 1, 1000)
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (5,)
    obs, reward, terminated, truncated, info = env.step(np.array([5.0], np.float32))
    assert obs.dtype == np.float32 and obs.shape == (5,)
    assert type(reward) is float and terminated is False and truncated is False
    assert env._physics.data.ctrl[0] == 1.0  # clipped to the bound
    env.step(np.array([-7.0]))
    assert env._physics.data.ctrl[0] == -1.0
    env.step([0.25])  # array-likes are fine
    assert env._physics.data.ctrl[0] == 0.25
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(2))


def test_dog_run_dims():
    env = make_env("dog-run", 0)
    assert (env.obs_dim, env.act_dim) == (223, 38)
    assert env.reset().shape == (223,)
    obs, *_ = env.step(np.zeros(38, np.float32))
    assert obs.shape == (223,) and obs.dtype == np.float32


def test_actions_rescaled_to_spec_bounds():
    env = make_env("quadruped-walk", 0)  # bounds +-1, [-1, 1.1] and +-0.8
    spec = env._env.action_spec()
    assert not np.all(spec.maximum == 1.0)
    env.reset()
    for action, expected in ((1.0, spec.maximum), (-1.0, spec.minimum), (3.0, spec.maximum)):
        env.step(np.full(env.act_dim, action, np.float32))
        np.testing.assert_allclose(env._physics.data.ctrl, expected, rtol=0, atol=1e-12)
    env.step(np.zeros(env.act_dim, np.float32))
    np.testing.assert_allclose(env._physics.data.ctrl, (spec.maximum + spec.minimum) / 2, atol=1e-12)


def test_every_observation_kind_flattens():
    """Scalar (walker height) and 2-D (manipulator arm_pos) entries; quadruped-escape resets without GL."""
    for task, dim in (("walker-walk", 24), ("manipulator-bring_ball", 44), ("quadruped-escape", 101)):
        env = make_env(task, 0)
        assert env.obs_dim == dim and env.reset().shape == (dim,)
        assert env.step(np.zeros(env.act_dim))[0].shape == (dim,)


# ----------------------------------------------------------------- time limit and action repeat
@pytest.mark.parametrize("action_repeat", [1, 2])
def test_truncation_at_1000_frames(action_repeat):
    env = make_env("cartpole-swingup", 0, action_repeat=action_repeat)
    assert env.max_episode_steps == 1000 // action_repeat
    env.reset()
    zero = np.zeros(1, np.float32)
    for _ in range(env.max_episode_steps - 1):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated and not truncated
    _, _, terminated, truncated, _ = env.step(zero)
    assert truncated is True and terminated is False
    assert env.total_frames == 1000
    with pytest.raises(RuntimeError, match="reset"):
        env.step(zero)
    env.reset()
    env.step(zero)  # a new episode runs


def test_task_terminal_vs_time_limit(monkeypatch):
    """A task's own end with discount 0 is terminated; a non-zero discount (a task time limit) is truncated."""
    env = make_env("cartpole-swingup", 0, action_repeat=3)
    env.reset()
    monkeypatch.setattr(env._task, "get_termination", lambda physics: 0.0)
    before = env.total_frames
    assert env.step(np.zeros(1))[2:] == (True, False, {})
    assert env.total_frames == before + 1  # the repeat stopped at the terminal frame
    env.reset()
    monkeypatch.setattr(env._task, "get_termination", lambda physics: 1.0)
    assert env.step(np.zeros(1))[2:] == (False, True, {})


@pytest.mark.parametrize("task, action_repeat, steps", [("cartpole-swingup", 1, 1000), ("cartpole-swingup", 2, 500),
                                                       ("dog-run", 2, 60), ("quadruped-walk", 1, 100),
                                                       ("manipulator-bring_ball", 3, 30)])
def test_matches_raw_dm_control(task, action_repeat, steps):
    """Same seed and actions: identical observations, rewards summed over repeats, the same episode end."""
    env, raw = make_env(task, 7, action_repeat=action_repeat), _raw(task, 7)
    spec = raw.action_spec()
    np.testing.assert_array_equal(env.reset(), _flat(raw.reset()))
    for action in _actions(steps, env.act_dim, scale=1.3):  # some out of range: both sides see the clipped value
        raw_action = np.clip(action.astype(np.float64), -1.0, 1.0)
        raw_action = raw_action * (spec.maximum - spec.minimum) / 2 + (spec.maximum + spec.minimum) / 2
        obs, reward, terminated, truncated, info = env.step(action)
        raw_reward = 0.0
        for _ in range(action_repeat):
            time_step = raw.step(raw_action)
            raw_reward += time_step.reward
        np.testing.assert_array_equal(obs, _flat(time_step))
        assert reward == raw_reward and not terminated
        assert truncated == time_step.last()  # the wrapper's frame limit is dm_control's time limit
    if steps * action_repeat == 1000:
        assert truncated


# ----------------------------------------------------------------- seeding and checkpoints
def test_seeding():
    actions = _actions(50, 1)
    a = _rollout(DMCEnv("cartpole-swingup", 1, episode_frames=50), actions)
    b = _rollout(DMCEnv("cartpole-swingup", 1, episode_frames=50), actions)
    c = _rollout(DMCEnv("cartpole-swingup", 2, episode_frames=50), actions)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0][0], c[0][0])


def test_reseed_reproduces_an_episode():
    actions = _actions(40, 1)
    env, other = DMCEnv("cartpole-swingup", 0, episode_frames=40), DMCEnv("cartpole-swingup", 5, episode_frames=40)
    env.reseed(123)
    first = _rollout(env, actions)
    second = _rollout(env, actions)  # the stream moved on: a different start
    assert not np.array_equal(first[0][0], second[0][0])
    env.reseed(123)
    other.reseed(123)
    for again in (_rollout(env, actions), _rollout(other, actions)):
        np.testing.assert_array_equal(first[0], again[0])
        np.testing.assert_array_equal(first[1], again[1])


def test_state_continues_identically_across_episode_boundary():
    actions = _actions(30, 1)
    env = DMCEnv("cartpole-swingup", 3, episode_frames=30)
    _rollout(env, actions)  # episode 1 ends with truncation: a boundary
    state = json.loads(json.dumps(env.get_state()))  # plain Python: survives json (and torch weights_only)
    expected = [_rollout(env, actions) for _ in range(2)]

    restored = DMCEnv("cartpole-swingup", 99, episode_frames=30)  # its own seed is overridden by the state
    _rollout(restored, actions[::-1])
    restored.set_state(state)
    assert (restored.episodes, restored.total_frames) == (1, 30)
    for want in expected:
        got = _rollout(restored, actions)
        np.testing.assert_array_equal(want[0], got[0])
        np.testing.assert_array_equal(want[1], got[1])
    assert restored.get_state() == env.get_state()


def test_state_inside_an_episode_replays_it_from_its_start():
    actions = _actions(30, 1)
    env = DMCEnv("cartpole-swingup", 4, episode_frames=30)
    first_obs = env.reset()
    env.step(actions[0])
    state = env.get_state()
    assert (state["episodes"], state["total_frames"]) == (0, 0)
    restored = DMCEnv("cartpole-swingup", 4, episode_frames=30)
    restored.set_state(state)
    np.testing.assert_array_equal(restored.reset(), first_obs)
    with pytest.raises(ValueError, match="task"):
        make_env("cartpole-balance", 4).set_state(state)
