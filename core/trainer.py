"""The single-task training loop: warm-up, collect, update, evaluate, log, checkpoint, resume.

Units: a *step* is one agent decision (one env.step of the wrapper); a *frame* is one simulator step of the
underlying task, frames = steps * action_repeat. Budgets and schedules count steps; logs carry both.

The loop in `train` only sequences small methods (evaluate, collect, update, end_episode, log_window, checkpoint),
so a trainer for a sequence of tasks (core.continual) reuses them as they are.
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
from core.checkpoint import (
    first_nonfinite,
    load_checkpoint,
    load_replay,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from core.config import TrainConfig
from core.envs import Env
from core.logger import Logger

COUNTERS = ("step", "updates", "update_credit", "episodes", "episode_return", "train_s", "train_steps", "wall_s")


class Diverged(Exception):
    """A non-finite value appeared: the run stops at once and its last checkpoint stays as it was (never overwritten
    with non-finite weights). Checked on every action (already on the CPU for the env: free), on the losses of every
    train.csv row (synced there anyway) and on the whole agent state before every checkpoint."""

    def __init__(self, step: int, quantity: str) -> None:
        super().__init__(f"non-finite {quantity} at step {step}")
        self.step, self.quantity = step, quantity


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

    def __init__(self, cfg: TrainConfig, env: Env, eval_env: Env, agent: Agent, buffer: ReplayBuffer,
                 logger: Logger, run_dir: Path, device: torch.device) -> None:
        self.cfg, self.env, self.eval_env, self.agent, self.buffer = cfg, env, eval_env, agent, buffer
        self.logger, self.run_dir, self.device = logger, run_dir, device
        self.random_actions = np.random.default_rng(cfg.seed)  # warm-up actions
        # counters (COUNTERS): everything here goes into the checkpoint
        self.step = 0
        self.updates = 0
        self.update_credit = 0.0  # fractional updates owed (updates_per_step may be < 1 or non-integer)
        self.episodes = 0
        self.episode_return = 0.0
        self.train_s = 0.0  # wall time spent collecting + updating after warm-up (excludes eval and checkpoints)
        self.train_steps = 0  # steps taken after warm-up, the numerator of env_steps_per_s
        self.wall_s = 0.0  # all wall time of this run, over every resume
        self.last_checkpoint = 0
        self.replay_saved = 0  # transitions (by arrival number) already in replay chunks
        self.obs: np.ndarray | None = None  # None right after an episode ended (the reset comes after a checkpoint)
        self.metrics: dict[str, torch.Tensor] = {}  # the latest update's metrics, synced once per train.csv row
        self._process_start = time.perf_counter()
        self._window = (time.perf_counter(), 0, 0)  # (start, steps, updates) of the current train.csv row

    # ----------------------------------------------------------------- the loop
    def run(self) -> dict:
        """train(), with how it ended in summary.json; returns the summary. Divergence is a finding about the arm (the
        sweep goes on, the report counts it); any other exception, KeyboardInterrupt and SIGTERM too, marks the run
        failed and propagates."""
        try:
            return self.train()
        except Diverged as err:
            self.logger.write_summary(status="diverged", diverged_at_step=err.step, nonfinite=err.quantity)
            print(f"{self.run_dir}: diverged: {err}", file=sys.stderr)
            return self.logger.summary
        except BaseException as err:
            self.logger.write_summary(status="failed", error=f"{type(err).__name__}: {err}")
            raise
        finally:
            self.logger.close()

    def finished(self) -> bool:
        """Whether this run directory already holds a finished run: complete, or diverged (resuming would replay the
        same blow-up: say so instead)."""
        summary = self.logger.summary
        if summary.get("status") == "diverged":
            print(f"{self.run_dir}: this run diverged (non-finite {summary.get('nonfinite')} at step "
                  f"{summary.get('diverged_at_step')}); not resumed. Remove the directory to run it again.",
                  file=sys.stderr)
            return True
        return summary.get("status") == "complete" and summary.get("step", -1) >= self.cfg.steps

    def train(self) -> dict:
        """Train to cfg.steps (or return at once if the run already finished); returns the summary."""
        cfg = self.cfg
        if self.finished():
            return self.logger.summary
        resumed = self.resume()
        if not resumed:
            self.start_episode()
        # the machine of this leg; a finished run relaunched to be skipped keeps the record of the one it ran on
        self.logger.write_summary(status="running", step=self.step, steps=cfg.steps, resumed=resumed,
                                  device=str(self.device), torch_threads=torch.get_num_threads())
        bar = self._progress_bar()
        evaluated_at = int(float(self.logger.eval_rows[-1]["step"])) if self.logger.eval_rows else -1
        while True:
            if (self.step % cfg.eval_every == 0 or self.step == cfg.steps) and evaluated_at != self.step:
                self.untimed(lambda: self.logger.log_eval(self.evaluate()))
                evaluated_at = self.step
            if self.step >= cfg.steps:
                break
            t0 = time.perf_counter()
            terminated, truncated = self.collect()
            self.update()
            if self.step > cfg.warmup_steps:
                self.train_steps += 1
                self.train_s += time.perf_counter() - t0
            if terminated or truncated:
                self.end_episode()
            if self.step % cfg.log_every == 0:
                self.log_window()
            if bar:
                bar.update(1)
        self.finish()
        if bar:
            bar.close()
        return self.logger.summary

    # ----------------------------------------------------------------- the steps it is made of
    def start_episode(self) -> None:
        """Reset the training env and tell the agent a training episode began."""
        self.obs = self.env.reset()
        self.agent.reset(explore=True)

    def collect(self) -> tuple[bool, bool]:
        """One env step (uniform-random during warm-up), stored in the buffer; returns (terminated, truncated)."""
        if self.step < self.cfg.warmup_steps:
            action = self.random_actions.uniform(-1.0, 1.0, self.env.act_dim).astype(np.float32)
        else:
            action = self.act(self.obs, explore=True)
            if not np.isfinite(action).all():
                raise Diverged(self.step, f"action ({self.nonfinite_in_agent() or 'agent state finite'})")
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(self.obs, action, reward, next_obs, terminated, truncated)
        self.obs = next_obs
        self.episode_return += reward
        self.step += 1
        start, steps, updates = self._window
        self._window = (start, steps + 1, updates)
        return terminated, truncated

    def update(self) -> None:
        """The update-to-data ratio's share of gradient updates for the step just taken (none during warm-up)."""
        if self.step <= self.cfg.warmup_steps:
            return
        self.update_credit += self.cfg.updates_per_step
        while self.update_credit >= 1.0:
            self.metrics.update(self.agent.update(self.agent.sample(self.buffer)))
            self.updates += 1
            self.update_credit -= 1.0
            start, steps, updates = self._window
            self._window = (start, steps, updates + 1)

    def end_episode(self) -> None:
        """Count the episode, checkpoint if one is due (before the reset: the env's RNG then reproduces the next
        episode), and start the next one."""
        self.episodes += 1
        self.episode_return, self.obs = 0.0, None
        if self.step - self.last_checkpoint >= self.cfg.checkpoint_every:
            self.untimed(self.checkpoint)
        self.start_episode()

    def log_window(self) -> None:
        """One train.csv row: counters, the latest update metrics (one sync per row) and the window's speed."""
        start, steps, updates = self._window
        elapsed = max(time.perf_counter() - start, 1e-9)
        row = dict(step=self.step, frame=self.step * self.cfg.action_repeat, episodes=self.episodes,
                   updates=self.updates)
        row.update({k: float(v) for k, v in self.metrics.items()})
        blown = next((k for k, v in row.items() if k.startswith("train/") and not np.isfinite(v)), None)
        if blown:
            raise Diverged(self.step, blown)
        row["time/env_steps_per_s"] = steps / elapsed
        row["time/updates_per_s"] = updates / elapsed
        self.logger.log_train(row)
        self._window = (time.perf_counter(), 0, 0)

    def untimed(self, work) -> None:
        """Run `work` (an evaluation, a checkpoint) without counting its time in the window's training speed."""
        t0 = time.perf_counter()
        work()
        start, steps, updates = self._window
        self._window = (start + time.perf_counter() - t0, steps, updates)

    def finish(self) -> None:
        """Final checkpoint and summary.json (status complete, speed, the agent's own summary keys)."""
        final = self.logger.eval_rows[-1]
        summary = dict(status="complete", step=self.step, final_return=float(final["return"]),
                       env_steps_per_s=self.train_steps / self.train_s if self.train_s else None,
                       updates_per_s=self.updates / self.train_s if self.train_s else None,
                       wall_s=round(self.elapsed_wall(), 3), episodes=self.episodes, updates=self.updates)
        summary |= self.agent.summary()
        self.checkpoint()
        self.logger.write_summary(**summary)

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """cfg.eval_episodes episodes of the agent's evaluation mode (explore=False) on the evaluation env."""
        self.eval_env.reseed(eval_seed(self.cfg.seed, self.step))
        returns = [self.run_episode(self.eval_env)[0] for _ in range(self.cfg.eval_episodes)]
        return dict(step=self.step, frame=self.step * self.cfg.action_repeat, **{"return": float(np.mean(returns))},
                    return_std=float(np.std(returns)), episodes=len(returns), wall_s=round(self.elapsed_wall(), 3))

    def run_episode(self, env: Env) -> tuple[float, dict]:
        """One evaluation episode on `env`; returns its return and the last step's info."""
        obs, done, total, info = env.reset(), False, 0.0, {}
        self.agent.reset(explore=False)
        while not done:
            obs, reward, terminated, truncated, info = env.step(self.act(obs, explore=False))
            total += reward
            done = terminated or truncated
        return total, info

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The agent's action for one observation, as a numpy array for the env."""
        obs_t = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        return self.agent.act(obs_t, explore=explore)[0].cpu().numpy()

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        """Everything a resumed run needs: counters, agent, buffer, env and RNG states."""
        counters = {k: getattr(self, k) for k in COUNTERS} | {"wall_s": self.elapsed_wall()}
        return dict(counters=counters, agent=self.agent.state_dict(), buffer=self.buffer.state_dict(),
                    env=self.env.get_state(), random_actions=self.random_actions.bit_generator.state,
                    rng=rng_states())

    def load_state(self, state: dict) -> None:
        """Restore state() (the env then needs a reset: checkpoints are taken at episode ends)."""
        for k, v in state["counters"].items():
            setattr(self, k, v)
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        if "arrays" in state["buffer"]:  # a checkpoint from before replay chunks: none of it is in chunks yet
            self.replay_saved = self.buffer.added - self.buffer.size
        else:
            self.replay_saved = load_replay(self.run_dir, self.buffer)
        self.env.set_state(state["env"])
        self.random_actions.bit_generator.state = state["random_actions"]
        set_rng_states(state["rng"])

    def checkpoint(self) -> None:
        """Write the run's state atomically (never a state holding NaN or inf)."""
        state = self.state()
        blown = first_nonfinite(state["agent"])
        if blown:
            raise Diverged(self.step, f"agent state {blown}")
        self.replay_saved = save_checkpoint(self.run_dir, state, self.buffer, self.replay_saved)
        self.last_checkpoint = self.step

    def nonfinite_in_agent(self) -> str | None:
        """The first non-finite tensor of the agent's state, by name."""
        return first_nonfinite(self.agent.state_dict())

    def resume(self) -> bool:
        """Continue from the run directory's checkpoint, if there is one."""
        state = load_checkpoint(self.run_dir)
        if state is None:  # a fresh start, or an attempt killed before its first checkpoint: redo its rows, not append
            self.logger.rewind(0)
            return False
        self.load_state(state)
        self.obs = self.env.reset()  # the reset the checkpointed run was about to do
        self.agent.reset(explore=True)  # in the same order as the uninterrupted run: checkpoint, reset, agent.reset
        self.last_checkpoint = self.step
        self.logger.rewind(self.step)  # rows at the checkpoint's step and later were logged after it: redo them
        return True

    def elapsed_wall(self) -> float:
        """Wall time of this run over every resume."""
        return self.wall_s + time.perf_counter() - self._process_start

    def _progress_bar(self):
        """tqdm on an interactive terminal only: quiet in CI and when output goes to a file."""
        if not self.cfg.progress or os.environ.get("CI") or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=self.cfg.steps, initial=self.step, unit="step", dynamic_ncols=True)
