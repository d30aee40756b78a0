"""The Meta-World family (core.envs.metaworld) on real Meta-World v3 tasks; the ten CW10 envs are built once
(tests/mw_envs.py) and every test reuses them."""

import warnings

import numpy as np
import pytest

from core.envs import check_task, make_env
from core.envs.metaworld import CW10, EPISODE_STEPS, MetaWorldEnv
from tests.mw_envs import ACTIONS, built, rollout

SEED = 0


@pytest.fixture(scope="module")
def actions():
    return ACTIONS


@pytest.fixture(scope="module")
def cw10():
    """The ten CW10 envs, seed SEED, each with the rollout of its first episode under ACTIONS."""
    return {task: built(task, SEED) for task in CW10}


def test_all_cw10_tasks_build_step_and_truncate_at_200_with_float32_observations(cw10, actions):
    assert len(cw10) == 10
    for task, (env, (obs, rewards, infos)) in cw10.items():
        assert isinstance(env, MetaWorldEnv) and (env.obs_dim, env.act_dim) == (39, 4)
        assert obs.dtype == np.float32 and obs.shape == (EPISODE_STEPS + 1, 39), task
        assert len(rewards) == EPISODE_STEPS and np.isfinite(rewards).all(), task  # truncated exactly at 200
        assert all(isinstance(i["success"], bool) for i in infos)
        with pytest.raises(RuntimeError, match="reset"):  # the episode is over: no 201st step
            env.step(actions[0])


def test_actions_are_clipped_to_the_unit_box(cw10, actions):
    env = cw10["mw-faucet-close"][0]
    env.reseed(1)
    inside = rollout(env, np.clip(actions * 5, -1, 1))[0]
    env.reseed(1)
    outside = rollout(env, actions * 5)[0]  # far outside [-1, 1]: the same as the clipped actions
    assert np.array_equal(inside, outside)


def test_each_reset_draws_a_goal_and_reseeding_repeats_the_draws(cw10):
    env = cw10["mw-push"][0]  # the goal is the last 3 observation entries
    env.reseed(7)
    goals = [env.reset()[36:] for _ in range(4)]
    env.reseed(7)
    again = [env.reset()[36:] for _ in range(4)]
    assert len({tuple(g) for g in goals}) > 1, "the goal must be resampled at each reset"
    assert np.array_equal(np.stack(goals), np.stack(again))


def test_same_seed_same_rollout_then_a_restored_state_replays_the_next_episode(cw10, actions):
    task = "mw-hammer"
    original, first_episode = cw10[task]
    fresh = make_env(task, SEED)
    assert all(np.array_equal(a, b) for a, b in zip(rollout(fresh, actions), first_episode[:2], strict=False))

    for _ in range(2):  # the original env has its own physics history; its state is taken at an episode end
        rollout(original, actions[::-1])
    state = original.get_state()
    expected = rollout(original, actions)
    fresh.set_state(state)
    obs, rewards, infos = rollout(fresh, actions)
    assert np.array_equal(obs, expected[0]) and np.array_equal(rewards, expected[1])
    assert [i["success"] for i in infos] == [i["success"] for i in expected[2]]

    # taken inside an episode, the state restarts that episode
    start = original.reset()
    original.step(actions[0])
    fresh.set_state(original.get_state())
    assert np.array_equal(fresh.reset(), start)


def test_state_from_another_seed_is_refused(cw10):
    env = cw10["mw-push-wall"][0]
    state = env.get_state() | {"seed": SEED + 1}
    with pytest.raises(ValueError, match="50 goals differ"):
        env.set_state(state)


def test_success_latches_for_the_rest_of_the_episode(cw10):
    """Push: the scripted policy brings the puck to the goal, then the hand pushes it on past the goal."""
    from metaworld.policies import SawyerPushV3Policy

    env, policy = cw10["mw-push"][0], SawyerPushV3Policy()
    env.reseed(1)
    obs, success, episode_success, reached = env.reset(), [], [], None
    direction = obs[36:39] - obs[4:7]  # goal - puck
    direction = np.r_[direction[:2] / np.linalg.norm(direction[:2]), 0.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scripted policy warns that its gains exceed [-1, 1]
        for t in range(EPISODE_STEPS):
            obs, _, _, _, info = env.step(policy.get_action(obs.astype(np.float64)) if reached is None else direction)
            success.append(info["success"])
            episode_success.append(info["episode_success"])
            reached = t if info["success"] and reached is None else reached
    assert reached is not None and not success[-1], "the puck must reach the goal, then leave it"
    assert episode_success == list(np.maximum.accumulate(success)) and episode_success[-1]
    env.reset()
    assert env.step(np.zeros(4))[4]["episode_success"] is False  # a new episode starts unlatched


@pytest.mark.parametrize("name, close", [("mw-hamer", "mw-hammer"), ("mw-pushwall", "mw-push-wall"),
                                         ("hammer-v3", "mw-hammer")])
def test_unknown_task_fails_in_one_line_with_close_matches(name, close):
    with pytest.raises(ValueError) as err:
        check_task(name)
    assert close in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match=close):
        make_env(name, 0)


def test_action_repeat_is_refused():
    with pytest.raises(ValueError, match="action_repeat=2"):
        make_env("mw-hammer", 0, action_repeat=2)
