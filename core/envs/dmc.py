"""DeepMind Control Suite tasks by hyphenated name ("cartpole-swingup"): flat float32 observations, actions in [-1, 1].

Units: a *step* is one agent decision (one `DMCEnv.step`); a *frame* is one dm_control control step (one
`control.Environment.step`, itself `n_sub_steps` physics steps). frames = steps * action_repeat.

Time limit: the wrapper counts frames itself (dm_control's own limit is switched off) and ends an episode after
`episode_frames // action_repeat` steps with truncated=True, terminated=False: a time limit is not a terminal state,
the trainer bootstraps through it. terminated=True only for a real terminal (discount 0; only the lqr domain has one).

Checkpoints are taken at episode boundaries, so `get_state` holds the task's RandomState and counters, not physics:
`set_state` then `reset()` continues exactly as the saved env would have.

Chosen by core.envs for task names without a family prefix.
"""

from __future__ import annotations

import difflib
import os
from collections import OrderedDict

import numpy as np

os.environ.setdefault("MUJOCO_GL", "disable")  # state-based only: no GL, and no glfw warning without a display

from dm_control import _render, suite  # noqa: E402
from dm_control._render.constants import NO_RENDERER  # noqa: E402
from dm_control.suite import base  # noqa: E402

_TASKS: dict[str, tuple[str, str]] = {f"{domain}-{task}": (domain, task) for domain, task in suite.ALL_TASKS}
_UNBOUNDED = 1e6  # action bounds at least this large (lqr: +-1e10) are treated as unbounded: no rescaling


def tasks() -> list[str]:
    """Every suite task as "domain-task" (one hyphen; underscores stay inside names: "ball_in_cup-catch")."""
    return list(_TASKS)


def close_tasks(task: str) -> list[str]:
    """Suite tasks whose name is close to `task`, then the other tasks of its domain."""
    names = list(_TASKS)
    matches = difflib.get_close_matches(str(task), names, n=5, cutoff=0.6)
    domain = str(task).split("-", 1)[0]
    return matches + [name for name in names if _TASKS[name][0] == domain and name not in matches]


class DMCEnv:
    """One suite task: flat float32 observations, actions in [-1, 1], action repeat and a frame time limit."""

    def __init__(self, task: str, seed: int, action_repeat: int = 1, episode_frames: int = 1000) -> None:
        if task not in _TASKS:
            raise ValueError(f"unknown DMC task {task!r}; close matches: {', '.join(close_tasks(task)[:8])}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if episode_frames < action_repeat:
            raise ValueError(f"episode_frames must be >= action_repeat ({action_repeat}), got {episode_frames}")
        domain, name = _TASKS[task]
        self.task, self.seed = task, seed
        self.action_repeat = action_repeat
        self.episode_frames = episode_frames
        self.max_episode_steps = episode_frames // action_repeat  # agent steps per episode
        # time_limit=inf: the wrapper counts frames itself (reset() still goes through control.Environment)
        self._env = suite.load(domain, name, task_kwargs={"random": seed, "time_limit": float("inf")})
        self._task, self._physics = self._env.task, self._env.physics
        self._n_sub_steps = self._env._n_sub_steps  # physics steps per frame (the suite's control timestep)
        self._random: np.random.RandomState = self._task.random
        if type(self._task).before_step is not base.Task.before_step:
            raise NotImplementedError(f"{task}: step() assumes suite's Task.before_step (actions go to data.ctrl)")
        if _render.BACKEND in (None, *NO_RENDERER):
            # quadruped-escape's reset asks for a GL context only to upload its terrain for rendering; without a GL
            # backend that raises, so this physics reports "no contexts" instead (nothing here ever renders)
            self._physics._make_rendering_contexts = lambda: None

        obs_spec: OrderedDict = self._env.observation_spec()
        sizes = [int(np.prod(spec.shape)) for spec in obs_spec.values()]
        self.obs_dim = sum(sizes)
        ends = np.cumsum(sizes).tolist()
        # (key, slice of the flat vector, ravel first?) in the spec's order, which is get_observation's order;
        # 2-D entries (manipulator's arm_pos) flatten in C order, as dm_control's flatten_observation does
        layout = zip(obs_spec.items(), ends, sizes, strict=True)
        self._obs_layout = tuple((key, slice(end - n, end), len(spec.shape) > 1) for (key, spec), end, n in layout)

        spec = self._env.action_spec()
        self.act_dim = int(np.prod(spec.shape))
        self._act_shape = (self.act_dim,)
        low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64).ravel()
        high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64).ravel()
        bounded = (np.abs(low) < _UNBOUNDED) & (np.abs(high) < _UNBOUNDED)
        self._scale = np.where(bounded, (high - low) / 2.0, 1.0)
        self._offset = np.where(bounded, (high + low) / 2.0, 0.0)
        self._rescale = not (np.all(self._scale == 1.0) and np.all(self._offset == 0.0))  # most tasks: [-1, 1]
        self._ones = np.ones(self.act_dim, np.float64)  # clip bounds as arrays: faster than Python floats
        self._minus_ones = -self._ones

        self._episode_step = 0
        self._in_episode = False  # reset() was called and the episode has not ended
        self._rng_at_reset: tuple | None = None  # RandomState.get_state() before the current episode's draws
        self._frames_at_reset = 0
        self.episodes = 0  # episodes started with reset()
        self.total_frames = 0  # frames stepped over all episodes

    # ----------------------------------------------------------------- stepping
    def _flatten(self, observation: OrderedDict) -> np.ndarray:
        out = np.empty(self.obs_dim, np.float32)  # fresh each step: callers keep obs and next_obs side by side
        for key, sl, ravel in self._obs_layout:
            out[sl] = observation[key].ravel() if ravel else observation[key]
        return out

    def reset(self) -> np.ndarray:
        """Start an episode (initial state drawn from the task's RandomState); returns the first observation."""
        self._rng_at_reset, self._frames_at_reset = self._random.get_state(), self.total_frames
        time_step = self._env.reset()
        self._episode_step = 0
        self._in_episode = True
        self.episodes += 1
        return self._flatten(time_step.observation)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Clip to [-1, 1], rescale to the action spec, repeat; returns obs, summed reward, terminated, truncated, info
        (DMC has no extra info: always an empty dict)."""
        if not self._in_episode:
            raise RuntimeError("step() before reset(): call reset() to start an episode (also after one ends)")
        if type(action) is not np.ndarray:
            action = np.asarray(action)
        if action.shape != self._act_shape:
            raise ValueError(f"action shape {action.shape} != ({self.act_dim},) for {self.task}")
        task, physics = self._task, self._physics
        # clipped (and rescaled) straight into the actuators' controls: all suite's Task.before_step does (checked in
        # __init__); MuJoCo never writes ctrl, so it holds over the repeats. One clip call: numpy's per-call cost
        # (~7k instructions) is what this wrapper's overhead is made of
        ctrl = physics.data.ctrl
        action.clip(self._minus_ones, self._ones, out=ctrl)
        if self._rescale:
            ctrl *= self._scale
            ctrl += self._offset
        # the rest of control.Environment.step, less its TimeStep and time-limit bookkeeping (the wrapper keeps its
        # own); observations have no side effects, so only the last repeat's is computed
        n_sub_steps = self._n_sub_steps
        reward = 0.0
        for _ in range(self.action_repeat):
            physics.step(n_sub_steps)
            task.after_step(physics)
            reward += task.get_reward(physics)
            self.total_frames += 1
            discount = task.get_termination(physics)
            if discount is not None:  # the task ended the episode itself (lqr at its goal: discount 0)
                self._in_episode = False
                terminated = bool(discount == 0.0)
                return self._flatten(task.get_observation(physics)), float(reward), terminated, not terminated, {}
        self._episode_step += 1
        truncated = self._episode_step >= self.max_episode_steps
        if truncated:
            self._in_episode = False
        observation = task.get_observation(physics)
        obs = np.empty(self.obs_dim, np.float32)  # _flatten inlined: this is the hot path
        for key, sl, ravel in self._obs_layout:
            obs[sl] = observation[key].ravel() if ravel else observation[key]
        return obs, float(reward), False, truncated, {}

    # ----------------------------------------------------------------- seeding and checkpoints
    def reseed(self, seed: int) -> None:
        """Reseed the task's RandomState (the next reset() draws from it): makes e.g. each evaluation reproducible."""
        self._random.seed(seed)

    def get_state(self) -> dict:
        """Plain-Python state (RandomState, counters) to continue identically after set_state() and reset().

        Meant for an episode boundary (physics is not saved). Taken inside an episode, it holds the RandomState from
        before that episode's reset, so the restored env replays that episode from its start.
        """
        if self._in_episode:
            rng, episodes, frames = self._rng_at_reset, self.episodes - 1, self._frames_at_reset
        else:
            rng, episodes, frames = self._random.get_state(), self.episodes, self.total_frames
        _, key, pos, has_gauss, gauss = rng  # as plain Python: fine for json and torch.load(weights_only=True)
        return dict(task=self.task, rng=dict(key=key.tolist(), pos=int(pos), has_gauss=int(has_gauss),
                                             gauss=float(gauss)), episodes=episodes, total_frames=frames)

    def set_state(self, state: dict) -> None:
        """Restore get_state()'s result; call reset() next."""
        if state["task"] != self.task:
            raise ValueError(f"state is for task {state['task']!r}, this env runs {self.task!r}")
        rng = state["rng"]
        self._random.set_state(("MT19937", np.asarray(rng["key"], np.uint32), rng["pos"], rng["has_gauss"],
                                rng["gauss"]))
        self.episodes, self.total_frames = state["episodes"], state["total_frames"]
        self._episode_step, self._in_episode, self._rng_at_reset, self._frames_at_reset = 0, False, None, 0


def make(task: str, seed: int, action_repeat: int = 1) -> DMCEnv:
    """The family's factory (core.envs.make_env): a DMCEnv with the suite's 1000-frame episodes."""
    return DMCEnv(task, seed, action_repeat)
