"""Meta-World envs built at most once per test process (building one takes about 1.4 s of CPU: MT1 draws its 50 goals
by resetting the scene 50 times), each with the rollout of its first episode recorded before any other use."""

from functools import cache

import numpy as np

from core.envs import make_env
from core.envs.metaworld import EPISODE_STEPS, MetaWorldEnv

ACTIONS = np.random.default_rng(0).uniform(-1, 1, (EPISODE_STEPS, 4)).astype(np.float32)


def rollout(env, actions: np.ndarray = ACTIONS) -> tuple[np.ndarray, np.ndarray, list]:
    """Observations (reset included), rewards and infos of one episode under fixed actions (never terminated)."""
    obs, rewards, infos = [env.reset()], [], []
    for action in actions:
        o, r, terminated, truncated, info = env.step(action)
        obs.append(o)
        rewards.append(r)
        infos.append(info)
        assert not terminated
        if truncated:
            break
    return np.stack(obs), np.array(rewards), infos


@cache
def built(task: str, seed: int) -> tuple[MetaWorldEnv, tuple[np.ndarray, np.ndarray, list]]:
    """The shared env for (task, seed) and its first episode under ACTIONS. Users reseed it before relying on it."""
    env = make_env(task, seed)
    return env, rollout(env)
