"""Meta-World v3 tasks by prefixed name ("mw-hammer" is Meta-World's "hammer-v3"): flat float32 observations (39),
actions in [-1, 1] (4), 200-step episodes that end truncated, never terminated.

Each env is `gym.make("Meta-World/MT1", env_name=..., seed=seed)`: MT1 draws 50 goals (object and target positions)
from `seed` when it is built, and each reset picks one of them at random from the env's own generator. Continual World
(Wolczyk et al. 2021) ran v1 with a fresh random goal every reset; v3's observations (39-dim, not 12), rewards and some
task classes differ too, so numbers from these envs are never the paper's benchmark.

Episodes: Continual World's 200 steps (`max_episode_steps`; Meta-World's own limit is 500). A time limit is not a
terminal state: the trainer bootstraps through it. `info["success"]` is Meta-World's per-step success as a bool;
`info["episode_success"]` latches it: true from the first successful step to the episode's end (an episode succeeds
when any of its steps does, as Continual World counts it).

Checkpoints are taken at episode ends, so `get_state` holds the generator that picks goals and the counters, not
physics: every reset rebuilds the scene from the chosen goal, so `set_state` then `reset()` continues exactly.

Chosen by core.envs for task names starting with "mw-".
"""

from __future__ import annotations

import difflib
import os

import numpy as np

os.environ.setdefault("MUJOCO_GL", "disable")  # state-based only: no GL, and no glfw warning without a display

import gymnasium as gym  # noqa: E402
import metaworld  # noqa: E402, F401  (registers the "Meta-World/..." gymnasium ids)
from metaworld.env_dict import ALL_V3_ENVIRONMENTS  # noqa: E402

PREFIX = "mw-"
EPISODE_STEPS = 200  # Continual World's episode length
CW10 = ("mw-hammer", "mw-push-wall", "mw-faucet-close", "mw-push-back", "mw-stick-pull", "mw-handle-press-side",
        "mw-push", "mw-shelf-place", "mw-window-close", "mw-peg-unplug-side")  # Continual World's ten, in order
_NAMES = {PREFIX + name.removesuffix("-v3"): name for name in sorted(ALL_V3_ENVIRONMENTS)}  # mw-hammer -> hammer-v3


def tasks() -> list[str]:
    """Every Meta-World v3 task as "mw-<task>" (Meta-World's name without "-v3")."""
    return list(_NAMES)


def close_tasks(task: str) -> list[str]:
    """Meta-World tasks whose name is close to `task` (with or without the "mw-" prefix and "-v3" suffix)."""
    name = PREFIX + str(task).removeprefix(PREFIX).removesuffix("-v3")
    return difflib.get_close_matches(name, list(_NAMES), n=5, cutoff=0.6)


class MetaWorldEnv:
    """One Meta-World task: float32 observations, actions clipped to [-1, 1], truncation after `episode_steps`."""

    def __init__(self, task: str, seed: int, episode_steps: int = EPISODE_STEPS) -> None:
        if task not in _NAMES:
            hint = ", ".join(close_tasks(task)) or "none (python -m core.envs lists them)"
            raise ValueError(f"unknown Meta-World task {task!r}; close matches: {hint}")
        if not 1 <= episode_steps <= 500:
            raise ValueError(f"episode_steps must be in [1, 500] (Meta-World's own limit), got {episode_steps}")
        self.task, self.seed, self.episode_steps = task, seed, episode_steps
        self.max_episode_steps = episode_steps
        # no env checker: it warns on every step that Meta-World's observations leave their declared box
        self._env = gym.make("Meta-World/MT1", env_name=_NAMES[task], seed=seed, max_episode_steps=episode_steps,
                             disable_env_checker=True)
        self._sawyer = self._env.unwrapped  # owns np_random, the generator every reset draws its goal from
        self.obs_dim = int(np.prod(self._env.observation_space.shape))
        self.act_dim = int(np.prod(self._env.action_space.shape))
        self._act_shape = (self.act_dim,)
        self._in_episode = False
        self._success = False  # latched success of the current episode
        self._rng_at_reset: dict | None = None  # generator state before the current episode's draws
        self.episodes = 0  # episodes started with reset()

    def reset(self) -> np.ndarray:
        """Start an episode (a goal drawn from the 50 of this seed); returns the first observation."""
        self._rng_at_reset = self._sawyer.np_random.bit_generator.state
        obs, _ = self._env.reset()
        self._in_episode, self._success = True, False
        self.episodes += 1
        return obs.astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Clip to [-1, 1] and step; returns obs, reward, terminated (always False), truncated, info with `success`
        (this step) and `episode_success` (any step so far)."""
        if not self._in_episode:
            raise RuntimeError("step() before reset(): call reset() to start an episode (also after one ends)")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self._act_shape:
            raise ValueError(f"action shape {action.shape} != ({self.act_dim},) for {self.task}")
        obs, reward, terminated, truncated, info = self._env.step(action.clip(-1.0, 1.0))
        success = bool(info["success"])
        self._success = self._success or success
        info["success"], info["episode_success"] = success, self._success
        if terminated or truncated:
            self._in_episode = False
        return obs.astype(np.float32), float(reward), bool(terminated), bool(truncated), info

    # ----------------------------------------------------------------- seeding and checkpoints
    def reseed(self, seed: int) -> None:
        """Reseed the generator that picks each reset's goal (the 50 goals themselves stay those of the build seed)."""
        self._sawyer.seed(seed)

    def get_state(self) -> dict:
        """Plain-Python state (goal generator, counters) to continue identically after set_state() and reset().

        Meant for an episode boundary (physics is not saved). Taken inside an episode, it holds the generator from
        before that episode's reset, so the restored env replays that episode from its start.
        """
        if self._in_episode:
            rng, episodes = self._rng_at_reset, self.episodes - 1
        else:
            rng, episodes = self._sawyer.np_random.bit_generator.state, self.episodes
        return dict(task=self.task, seed=self.seed, rng=rng, episodes=episodes)

    def set_state(self, state: dict) -> None:
        """Restore get_state()'s result (from an env built with the same task and seed); call reset() next."""
        if (state["task"], state["seed"]) != (self.task, self.seed):
            raise ValueError(f"state is for {state['task']!r} seed {state['seed']}, this env runs {self.task!r} seed "
                             f"{self.seed}: the 50 goals differ")
        self._sawyer.np_random.bit_generator.state = state["rng"]
        self.episodes = state["episodes"]
        self._in_episode, self._success, self._rng_at_reset = False, False, None


def make(task: str, seed: int, action_repeat: int = 1) -> MetaWorldEnv:
    """The family's factory (core.envs.make_env): Continual World's 200-step episodes, no action repeat."""
    if action_repeat != 1:
        raise ValueError(f"Meta-World tasks run without action repeat (Continual World's protocol), got "
                         f"action_repeat={action_repeat}")
    return MetaWorldEnv(task, seed)
