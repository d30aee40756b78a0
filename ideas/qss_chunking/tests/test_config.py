"""Bad input fails in one line naming the valid choices, and the refused tasks are the ones whose reward reads the
control (checked against dm_control's physics, not just listed)."""

import numpy as np
import pytest

from core.config import ConfigError
from core.envs import check_task, make_env
from ideas.qss_chunking.config import AGENTS, CONTROL_REWARD_TASKS, STATE_REWARD_EXAMPLES, ChunkingConfig, validate
from ideas.qss_chunking.run import AGENTS as BUILT_AGENTS


@pytest.mark.parametrize("overrides, expected", [
    (dict(agent="qc"), "unknown agent 'qc'; valid choices: td3, td3_nstep, td3_chunk, d3g, qss"),
    (dict(agent="qss", decoder="lstm"), "unknown decoder 'lstm'; valid choices: mlp, gru"),
    (dict(agent="qss", horizon=0), "horizon must be >= 1, got 0"),
    (dict(agent="td3_chunk", horizon=-2), "horizon must be >= 1, got -2"),
    (dict(agent="td3", horizon=3), "agent=td3 acts on every state, so horizon must be 1, got 3"),
    (dict(agent="td3_nstep", horizon=3, decoder="gru"), "decoder=gru applies to agent=qss only"),
    (dict(agent="d3g", task="cartpole-swingup"), "cartpole-swingup rewards small controls; suitable tasks: cheetah"),
    (dict(agent="qss", horizon=3, task="humanoid-walk"), "agent=qss learns Q(s, s') and needs a reward of the states"),
    (dict(agent="qss", horizon=3, task="point_mass-easy"), "suitable tasks: cheetah-run, walker-walk"),
    (dict(agent="qss", latent=0), "latent must be >= 1"),
    (dict(agent="td3", tau=0.0), "tau must be in (0, 1], got 0.0"),
])
def test_bad_config_fails_in_one_line(overrides, expected):
    with pytest.raises(ConfigError) as err:
        validate(ChunkingConfig(**overrides))
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides", [
    dict(agent="td3", task="cartpole-swingup"),  # action-scoring rewards are fine for action critics
    dict(agent="td3_chunk", horizon=5, task="hopper-stand"),
    dict(agent="qss", horizon=5, decoder="gru", task="finger-spin"),
    dict(agent="d3g", task="cartpole-swingup_sparse"),  # the sparse cartpole rewards score states only
])
def test_good_configs_pass(overrides):
    validate(ChunkingConfig(**overrides))


def test_every_agent_name_builds_an_agent_and_every_listed_task_exists():
    assert tuple(BUILT_AGENTS) == AGENTS
    for task in (*CONTROL_REWARD_TASKS, *STATE_REWARD_EXAMPLES):
        check_task(task)
    assert not CONTROL_REWARD_TASKS & set(STATE_REWARD_EXAMPLES)


@pytest.mark.parametrize("task, reads_control", [("cartpole-swingup", True), ("hopper-stand", True),
                                                 ("cheetah-run", False), ("walker-walk", False),
                                                 ("finger-spin", False)])
def test_refused_tasks_are_those_whose_reward_reads_the_control(task, reads_control):
    env = make_env(task, 0)
    env.reset()
    for _ in range(5):
        env.step(np.full(env.act_dim, 0.3, np.float32))
    physics, rewards = env._physics, []
    for ctrl in (0.0, 0.9):  # the same physics state, another control in the actuators
        physics.data.ctrl[:] = ctrl
        rewards.append(env._task.get_reward(physics))
    assert (rewards[0] != rewards[1]) == reads_control
    assert (task in CONTROL_REWARD_TASKS) == reads_control
