"""The training loop every idea shares: warm-up, collect, update, evaluate, log, checkpoint, resume.

Units: a *step* is one agent decision (one env.step of the wrapper); a *frame* is one simulator step of the
underlying task, frames = steps * action_repeat. Budgets and schedules count steps; logs carry both.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core.agent import Agent
from core.buffers import ReplayBuffer
from core.checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from core.config import TrainConfig
from core.envs import DMCEnv
from core.logger import Logger


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def eval_seed(seed: int, step: int) -> int:
    """Evaluation episodes at a given step are seeded from (run seed, step) alone: reproducible, resume-proof."""
    return int(np.random.SeedSequence([seed, step, 1]).generate_state(1)[0])


class Trainer:
    """Runs one agent on one task until cfg.steps, resuming from the run directory's checkpoint if there is one."""

    def __init__(self, cfg: TrainConfig, env: DMCEnv, eval_env: DMCEnv, agent: Agent, buffer: ReplayBuffer,
                 logger: Logger, run_dir: Path, device: torch.device) -> None:
        self.cfg, self.env, self.eval_env, self.agent, self.buffer = cfg, env, eval_env, agent, buffer
        self.logger, self.run_dir, self.device = logger, run_dir, device
        self.random_actions = np.random.default_rng(cfg.seed)  # warm-up actions
        # counters: everything here goes into the checkpoint
        self.step = 0
        self.updates = 0
        self.update_credit = 0.0  # fractional updates owed (updates_per_step may be < 1 or non-integer)
        self.episodes = 0
        self.episode_return = 0.0
        self.last_checkpoint = 0
        self.train_s = 0.0  # wall time spent collecting + updating after warm-up (excludes eval and checkpoints)
        self.train_steps = 0  # steps taken after warm-up, the numerator of env_steps_per_s
        self.wall_s = 0.0  # all wall time of this run, over every resume
        self.obs: np.ndarray | None = None  # None right after an episode ended (the reset comes after a checkpoint)
        self._process_start = time.perf_counter()

    # ----------------------------------------------------------------- state
    def _state(self) -> dict:
        counters = {k: getattr(self, k) for k in ("step", "updates", "update_credit", "episodes", "episode_return",
                                                   "train_s", "train_steps", "wall_s")}
        return dict(counters=counters, agent=self.agent.state_dict(), buffer=self.buffer.state_dict(),
                    env=self.env.get_state(), random_actions=self.random_actions.bit_generator.state,
                    rng=rng_states())

    def _elapsed_wall(self) -> float:
        return self.wall_s + time.perf_counter() - self._process_start

    def _checkpoint(self) -> None:
        state = self._state()
        state["counters"]["wall_s"] = self._elapsed_wall()
        save_checkpoint(self.run_dir, state)
        self.last_checkpoint = self.step

    def _resume(self) -> bool:
        state = load_checkpoint(self.run_dir)
        if state is None:
            return False
        for k, v in state["counters"].items():
            setattr(self, k, v)
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.env.set_state(state["env"])
        self.obs = self.env.reset()  # checkpoints are taken at episode ends, before the next reset
        self.random_actions.bit_generator.state = state["random_actions"]
        set_rng_states(state["rng"])
        self.last_checkpoint = self.step
        self.logger.rewind(self.step)  # rows at the checkpoint's step and later were logged after it: redo them
        return True

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """cfg.eval_episodes episodes of the agent's evaluation mode (explore=False) on the evaluation env."""
        returns = []
        self.eval_env.reseed(eval_seed(self.cfg.seed, self.step))
        for _ in range(self.cfg.eval_episodes):
            obs, done, total = self.eval_env.reset(), False, 0.0
            while not done:
                action = self._act(obs, explore=False)
                obs, reward, terminated, truncated = self.eval_env.step(action)
                total += reward
                done = terminated or truncated
            returns.append(total)
        return dict(step=self.step, frame=self.step * self.cfg.action_repeat, **{"return": float(np.mean(returns))},
                    return_std=float(np.std(returns)), episodes=len(returns), wall_s=round(self._elapsed_wall(), 3))

    def _act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        obs_t = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        return self.agent.act(obs_t, explore=explore)[0].cpu().numpy()

    # ----------------------------------------------------------------- loop
    def train(self) -> dict:
        """Train to cfg.steps (or return at once if the run is already complete); returns the summary."""
        cfg = self.cfg
        if self.logger.summary.get("status") == "complete" and self.logger.summary.get("step", -1) >= cfg.steps:
            return self.logger.summary
        resumed = self._resume()
        if not resumed:
            self.obs = self.env.reset()
        self.logger.write_summary(status="running", step=self.step, steps=cfg.steps, resumed=resumed)
        bar = self._progress_bar()
        metrics: dict[str, torch.Tensor] = {}
        window_start, window_steps, window_updates = time.perf_counter(), 0, 0
        evaluated_at = int(float(self.logger.eval_rows[-1]["step"])) if self.logger.eval_rows else -1

        while True:
            if (self.step % cfg.eval_every == 0 or self.step == cfg.steps) and evaluated_at != self.step:
                t0 = time.perf_counter()
                row = self.evaluate()
                self.logger.log_eval(row)
                evaluated_at = self.step
                if bar:
                    bar.set_postfix_str(f"eval return {row['return']:.1f}", refresh=False)
                window_start += time.perf_counter() - t0  # evaluation time is not training time
            if self.step >= cfg.steps:
                break

            t0 = time.perf_counter()
            if self.step < cfg.warmup_steps:
                action = self.random_actions.uniform(-1.0, 1.0, self.env.act_dim).astype(np.float32)
            else:
                action = self._act(self.obs, explore=True)
            next_obs, reward, terminated, truncated = self.env.step(action)
            self.buffer.add(self.obs, action, reward, next_obs, terminated, truncated)
            self.obs = next_obs
            self.episode_return += reward
            self.step += 1

            if self.step > cfg.warmup_steps:
                self.update_credit += cfg.updates_per_step
                while self.update_credit >= 1.0:
                    metrics.update(self.agent.update(self.agent.sample(self.buffer)))
                    self.updates += 1
                    window_updates += 1
                    self.update_credit -= 1.0
                self.train_steps += 1
                self.train_s += time.perf_counter() - t0
            window_steps += 1

            if terminated or truncated:
                self.episodes += 1
                last_return, self.episode_return, self.obs = self.episode_return, 0.0, None
                if self.step - self.last_checkpoint >= cfg.checkpoint_every:
                    t_ck = time.perf_counter()
                    self._checkpoint()  # before the reset: the env's RNG state then reproduces the next episode
                    window_start += time.perf_counter() - t_ck
                self.obs = self.env.reset()
                if bar:
                    bar.set_description_str(f"episode return {last_return:.1f}", refresh=False)

            if self.step % cfg.log_every == 0:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                row = dict(step=self.step, frame=self.step * cfg.action_repeat, episodes=self.episodes,
                           updates=self.updates)
                row.update({k: float(v) for k, v in metrics.items()})  # one sync per log row, not per update
                row["time/env_steps_per_s"] = window_steps / elapsed
                row["time/updates_per_s"] = window_updates / elapsed
                self.logger.log_train(row)
                window_start, window_steps, window_updates = time.perf_counter(), 0, 0
            if bar:
                bar.update(1)

        final = self.logger.eval_rows[-1]
        summary = dict(status="complete", step=self.step, final_return=float(final["return"]),
                       env_steps_per_s=self.train_steps / self.train_s if self.train_s else None,
                       updates_per_s=self.updates / self.train_s if self.train_s else None,
                       wall_s=round(self._elapsed_wall(), 3), episodes=self.episodes, updates=self.updates)
        summary |= getattr(self.agent, "summary", dict)()  # idea-specific keys (NFE, sampler time, ...)
        self._checkpoint()
        self.logger.write_summary(**summary)
        if bar:
            bar.close()
        return self.logger.summary

    def _progress_bar(self):
        """tqdm on an interactive terminal only: quiet in CI and when output goes to a file."""
        if not self.cfg.progress or os.environ.get("CI") or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=self.cfg.steps, initial=self.step, unit="step", dynamic_ncols=True)
