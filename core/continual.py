"""The task-sequence loop (Continual World's protocol, Wolczyk et al. 2021) on Meta-World v3 tasks.

A sequence (CW10, CW20 = CW10 twice, or any list of mw- tasks) trains one task after another for `steps_per_task`
steps each. At each switch the running episode is truncated (never terminal), the agent's `task_end(index, buffer)`
hook runs while the buffer still holds the finished task's data, the buffer is emptied and the optimisers' moments
reset (both optional, both on as in CW), and `task_start(index)` runs before the first step of the next task. Each
task starts with `warmup_steps` uniform-random steps; updates come `update_every` at a time every `update_every` steps
from `update_after` steps into each task. Every `eval_every` steps the agent is evaluated on ALL tasks of the sequence
(stochastic and deterministic episodes): eval.csv gets one row per task per evaluation, with its success rate.

The agent sees each observation with a one-hot task id appended (CW's OneHotAdder); a multi-head agent selects its
head with it, the shared trunk should not see it. The task hooks are optional methods of the agent.

Units and names: a budget of D steps per task over N tasks is N*D steps; task i's window is steps (i*D, (i+1)*D], so
the evaluation at step (i+1)*D (after task i's end hook, before the switch) is task i's last. A run is named after
its sequence and budget: "CW10" only at CW's 1M steps per task, otherwise e.g. "CW10@100k" (never a reduced run called
CW10). Metrics (core.analysis.continual) follow CW's definitions on these rows.

`python -m core.continual sequence=<CW10|CW20|mw-a+mw-b|...> steps_per_task=<int> seed=<int>` runs core's SAC (one
head, the task id as an input) on a sequence: the engine's own smoke entry point; ideas bring their own agents.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from core.agent import Agent
from core.buffers import ReplayBuffer
from core.checkpoint import replay_chunks, seed_everything
from core.config import (
    ConfigError,
    TrainConfig,
    at_least,
    check_same_run,
    exit_on_bad_config,
    freeze,
    identity,
    save_resolved_config,
    validate_common,
)
from core.envs import Env, check_task, make_env
from core.envs.metaworld import CW10
from core.logger import Logger
from core.sac import SAC, SACConfig
from core.trainer import Diverged, Trainer, pick_device

SEQUENCES: dict[str, tuple[str, ...]] = {
    "CW10": CW10,
    "CW20": CW10 + CW10,
    # two of CW10's fastest-stepping tasks (about 2k steps/s here): tests and smoke runs
    "pair": ("mw-handle-press-side", "mw-faucet-close"),
    # three of CW10's easiest tasks: a sequence whose forgetting a CPU can measure (e.g. easy3@100k)
    "easy3": ("mw-faucet-close", "mw-window-close", "mw-handle-press-side"),
}
CW_STEPS_PER_TASK = 1_000_000  # a run of CW10 or CW20 is called that only at this budget
TASK_SEPARATOR = "+"  # sequence=mw-hammer+mw-push: passes Hydra's override grammar unquoted, safe in directory names


# ---------------------------------------------------------------------------------------------- sequences
def sequence_tasks(sequence: str) -> list[str]:
    """The tasks of a sequence: a name in SEQUENCES, tasks joined by "+", or "[mw-a,mw-b]"; ConfigError otherwise."""
    text = str(sequence).strip()
    if text in SEQUENCES:
        return list(SEQUENCES[text])
    parts = [p.strip() for p in text.strip("[]").replace(",", TASK_SEPARATOR).split(TASK_SEPARATOR)]
    if not text or any(not p.startswith("mw-") for p in parts):
        close = difflib.get_close_matches(text, list(SEQUENCES), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown sequence {text!r}{hint}; valid: {', '.join(SEQUENCES)}, or Meta-World tasks joined "
                          f"by '+' (mw-hammer+mw-push; python -m core.envs lists them)")
    for part in parts:
        try:
            check_task(part)
        except ValueError as err:
            raise ConfigError(f"sequence {text!r}: {err}") from None
    return parts


def budget_text(steps: int) -> str:
    """1000000 -> "1M", 100000 -> "100k", 400 -> "400"."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if steps >= size and steps % size == 0:
            return f"{steps // size}{unit}"
    return str(steps)


def sequence_name(sequence: str, steps_per_task: int) -> str:
    """The run's name for a sequence and budget: "CW10" only at CW's budget, otherwise "<sequence>@<budget>"."""
    text = str(sequence).strip()
    base = text if text in SEQUENCES else TASK_SEPARATOR.join(sequence_tasks(text))
    if base in ("CW10", "CW20") and steps_per_task == CW_STEPS_PER_TASK:
        return base
    return f"{base}@{budget_text(steps_per_task)}"


def stream_seed(*keys: int) -> int:
    """A 32-bit seed drawn from the keys alone (run seed, stream, step, task): reproducible, resume-proof."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------- config
@dataclass
class ContinualConfig(TrainConfig):
    """The sequence protocol's fields (CW's values as defaults); an idea's schema derives from it."""

    sequence: str = "CW10"  # CW10 | CW20 | pair | easy3 | tasks joined by "+" (mw-a+mw-b); one task: a reference run
    steps_per_task: int = CW_STEPS_PER_TASK  # steps on each task (CW: 1M)
    task: str = ""  # set at start-up from sequence and steps_per_task ("CW10", "CW10@100k"): not a knob here
    steps: int = 0  # set at start-up: tasks x steps_per_task (not a knob here)
    warmup_steps: int = 10_000  # uniform-random steps at the start of EACH task
    update_after: int = 1_000  # steps into each task before its first update
    update_every: int = 50  # updates come in bursts: update_every x updates_per_step updates every update_every steps
    reset_buffer: bool = True  # empty the replay buffer at each switch (after the task's end hook)
    reset_optimizer: bool = True  # clear the agent's optimiser moments at each switch
    buffer_size: int = 1_000_000  # replay capacity (FIFO)
    eval_every: int = 20_000  # steps between evaluations on all tasks; must divide steps_per_task
    eval_episodes: int = 10  # stochastic episodes per task per evaluation (CW's metrics use these)
    eval_deterministic_episodes: int = 1  # deterministic episodes per task per evaluation (0: none)


def validate_sequence(cfg: ContinualConfig) -> None:
    """Check the sequence fields, then set the derived task name and total steps; raises ConfigError with one line."""
    tasks = sequence_tasks(cfg.sequence)
    if cfg.steps_per_task < 1:
        raise ConfigError(f"steps_per_task must be >= 1, got {cfg.steps_per_task}")
    name, total = sequence_name(cfg.sequence, cfg.steps_per_task), len(tasks) * cfg.steps_per_task
    if cfg.task not in ("", name):
        raise ConfigError(f"task is set from sequence and steps_per_task here ({name}); pass sequence=, not task=")
    if cfg.steps not in (0, total):
        raise ConfigError(f"steps is set from the sequence here ({len(tasks)} tasks x steps_per_task); pass "
                          f"steps_per_task=, not steps=")
    validate_common(dataclasses.replace(cfg, task=tasks[0], steps=total))
    if cfg.action_repeat != 1:
        raise ConfigError(f"action_repeat must be 1 for Meta-World sequences, got {cfg.action_repeat}")
    at_least("update_after", cfg.update_after, 0)
    at_least("update_every", cfg.update_every, 1)
    at_least("eval_deterministic_episodes", cfg.eval_deterministic_episodes, 0)
    if cfg.steps_per_task % cfg.eval_every:
        raise ConfigError(f"eval_every ({cfg.eval_every}) must divide steps_per_task ({cfg.steps_per_task}): each "
                          f"task's window must end on an evaluation")
    cfg.task, cfg.steps = name, total


# ---------------------------------------------------------------------------------------------- envs and agents
class TaskEnv:
    """Task `index` of a sequence of `count` as the agent sees it: observations with a one-hot task id appended."""

    def __init__(self, env: Env, index: int, count: int) -> None:
        self.env, self.task, self.index = env, env.task, index
        self.obs_dim, self.act_dim = env.obs_dim + count, env.act_dim
        self._one_hot = np.zeros(count, np.float32)
        self._one_hot[index] = 1.0

    def reset(self) -> np.ndarray:
        """Start an episode; returns its first observation with the task id."""
        return np.concatenate([self.env.reset(), self._one_hot])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """The wrapped env's step, the task id appended to the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return np.concatenate([obs, self._one_hot]), reward, terminated, truncated, info

    def reseed(self, seed: int) -> None:
        """Reseed the wrapped env."""
        self.env.reseed(seed)

    def get_state(self) -> dict:
        """The wrapped env's state."""
        return self.env.get_state()

    def set_state(self, state: dict) -> None:
        """Restore the wrapped env's state."""
        self.env.set_state(state)


def evaluation_env(cfg: ContinualConfig, task: str) -> Env:
    """The env a task is evaluated on: built with the run seed (Meta-World: its training env's 50 goals); every
    evaluation reseeds it."""
    return make_env(task, cfg.seed, cfg.action_repeat)


def training_env(cfg: ContinualConfig, tasks: list[str], index: int) -> TaskEnv:
    """Task `index`'s training env: built with the run seed (Meta-World: the same 50 goals as its evaluation env),
    its episodes drawn from a stream of their own per task index (CW20's second hammer is not its first)."""
    env = make_env(tasks[index], cfg.seed, cfg.action_repeat)
    env.reseed(stream_seed(cfg.seed, 0, index))
    return TaskEnv(env, index, len(tasks))


class TaskHooks(Protocol):
    """Optional agent methods the sequence trainer calls (an agent without them is simply fine-tuned)."""

    def task_start(self, task_index: int) -> None:
        """Task `task_index` begins (before its first step; after the buffer and optimisers were reset)."""
        ...

    def task_end(self, task_index: int, buffer: ReplayBuffer) -> None:
        """Task `task_index` ended: `buffer` still holds its data (read it, e.g. for a Fisher or GPM bases)."""
        ...


def reset_optimizers(agent: Any) -> int:
    """Clear the moments and step counts of every torch optimiser the agent holds, as attributes or one level down
    (SAC's temperature keeps its own Adam); Adam starts afresh on its next step. Returns how many were reset."""
    found = []
    for value in vars(agent).values():
        inner = list(vars(value).values()) if hasattr(value, "__dict__") and not torch.is_tensor(value) else []
        found += [v for v in [value, *inner] if isinstance(v, torch.optim.Optimizer)]
    for optimizer in found:
        optimizer.state.clear()
    return len(found)


# ---------------------------------------------------------------------------------------------- the loop
class ContinualTrainer(Trainer):
    """Runs one agent through a task sequence, resuming from the run directory's checkpoint if there is one.

    Reuses Trainer's start_episode, end_episode, log_window, untimed, act, checkpoint, resume and the Diverged guard;
    replaces collect (per-task warm-up, forced truncation at a switch), update (CW's bursts, counted per task) and
    evaluation (evaluate_all: every task, success included).
    """

    def __init__(self, cfg: ContinualConfig, agent: Agent, buffer: ReplayBuffer, logger: Logger, run_dir: Path,
                 device: torch.device, eval_envs: dict[str, Env] | None = None) -> None:
        super().__init__(cfg, None, None, agent, buffer, logger, run_dir, device)  # env: built for the task trained
        self.tasks = sequence_tasks(cfg.sequence)
        self.task_index = 0  # the task being trained (checkpointed)
        self.task_ended = False  # its end hook ran (checkpointed: the final checkpoint is taken after it)
        # one per task name, built with the run seed, reseeded for each evaluation (so any such env will do)
        self.eval_envs: dict[str, Env] = dict(eval_envs or {})

    @property
    def task_start_step(self) -> int:
        """The step at which the task being trained began."""
        return self.task_index * self.cfg.steps_per_task

    @property
    def task_end_step(self) -> int:
        """The step at which the task being trained ends (its window's last evaluation)."""
        return (self.task_index + 1) * self.cfg.steps_per_task

    def train(self) -> dict:
        """Train through the sequence (or return at once if the run already finished); returns the summary."""
        cfg = self.cfg
        if self.finished():
            return self.logger.summary
        resumed = self.resume()
        if not resumed:
            self.start_task(0)
        # the machine of this leg; a finished run relaunched to be skipped keeps the record of the one it ran on
        self.logger.write_summary(status="running", step=self.step, steps=cfg.steps, resumed=resumed,
                                  device=str(self.device), torch_threads=torch.get_num_threads())
        bar = self._progress_bar()
        evaluated_at = int(float(self.logger.eval_rows[-1]["step"])) if self.logger.eval_rows else 0
        while True:
            if self.step == self.task_end_step and not self.task_ended:
                self.end_task()  # before this step's evaluation (CW's order): PackNet's pruning shows in it
            if self.step % cfg.eval_every == 0 and self.step > evaluated_at:
                self.untimed(self.evaluate_all)
                evaluated_at = self.step
            if self.step >= cfg.steps:
                break
            if self.step == self.task_end_step:
                self.start_task(self.task_index + 1)
            t0 = time.perf_counter()
            terminated, truncated = self.collect()
            self.update()
            if self.step - self.task_start_step > cfg.warmup_steps:
                self.train_steps += 1
                self.train_s += time.perf_counter() - t0
            if terminated or truncated:
                self.end_episode()  # at a switch it resets the old task's env once, harmlessly: start_task follows
            if self.step % cfg.log_every == 0:
                self.log_window()
            if bar:
                bar.update(1)
        self.finish()
        if bar:
            bar.close()
        return self.logger.summary

    # ----------------------------------------------------------------- task switches
    def end_task(self) -> None:
        """The finished task's end hook, while the buffer still holds its data."""
        hook = getattr(self.agent, "task_end", None)
        if hook:
            hook(self.task_index, self.buffer)
        self.task_ended = True

    def start_task(self, index: int) -> None:
        """Switch to task `index` (after the first: empty the buffer, reset optimisers), build its env, run the
        agent's start hook, and start the task's first episode."""
        if index != self.task_index:
            if self.cfg.reset_buffer:
                self.buffer.size = 0  # position and arrival count stay, so replay chunks keep their numbering
            if self.cfg.reset_optimizer:
                reset_optimizers(self.agent)
            self.env, self.task_index, self.task_ended = None, index, False
            self.metrics = {}  # the new task's train.csv rows show no losses before its first update
        if self.env is None:
            self.env = training_env(self.cfg, self.tasks, index)
        hook = getattr(self.agent, "task_start", None)
        if hook:
            hook(index)
        self.start_episode()

    # ----------------------------------------------------------------- the steps, counted per task
    def collect(self) -> tuple[bool, bool]:
        """One env step (uniform-random in the task's warm-up), stored; the task's last step ends its episode."""
        if self.step - self.task_start_step < self.cfg.warmup_steps:
            action = self.random_actions.uniform(-1.0, 1.0, self.env.act_dim).astype(np.float32)
        else:
            action = self.act(self.obs, explore=True)
            if not np.isfinite(action).all():
                raise Diverged(self.step, f"action ({self.nonfinite_in_agent() or 'agent state finite'})")
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        truncated = truncated or self.step + 1 == self.task_end_step  # forced truncation at the switch (CW)
        self.buffer.add(self.obs, action, reward, next_obs, terminated, truncated)
        self.obs = next_obs
        self.episode_return += reward
        self.step += 1
        start, steps, updates = self._window
        self._window = (start, steps + 1, updates)
        return terminated, truncated

    def update(self) -> None:
        """CW's schedule: after the task's step t (from 0), if t >= update_after and t % update_every == 0, a burst
        of update_every x updates_per_step updates."""
        t = self.step - self.task_start_step - 1
        if t < self.cfg.update_after or t % self.cfg.update_every:
            return
        self.update_credit += self.cfg.update_every * self.cfg.updates_per_step
        while self.update_credit >= 1.0:
            self.metrics.update(self.agent.update(self.agent.sample(self.buffer)))
            self.updates += 1
            self.update_credit -= 1.0
            start, steps, updates = self._window
            self._window = (start, steps, updates + 1)

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate_all(self) -> None:
        """Evaluate on every task of the sequence; one eval.csv row per task (return and success: stochastic, CW's
        metric; *_deterministic: the mean action). Seeded by (seed, step, task) alone, in a forked torch generator,
        so an evaluation never moves training's random streams."""
        cfg, rows = self.cfg, []
        for index, task in enumerate(self.tasks):
            if task not in self.eval_envs:
                self.eval_envs[task] = evaluation_env(cfg, task)
            env = TaskEnv(self.eval_envs[task], index, len(self.tasks))
            seed = stream_seed(cfg.seed, 1, self.step, index)
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                env.reseed(seed)
                stochastic = [self.task_episode(env, explore=True) for _ in range(cfg.eval_episodes)]
                greedy = [self.task_episode(env, explore=False) for _ in range(cfg.eval_deterministic_episodes)]
            returns, successes = np.array(stochastic).reshape(-1, 2).T
            greedy_returns, greedy_successes = np.array(greedy).reshape(-1, 2).T
            rows.append({"step": self.step, "frame": self.step * cfg.action_repeat, "return": float(returns.mean()),
                         "return_std": float(returns.std()), "episodes": len(returns),
                         "wall_s": round(self.elapsed_wall(), 3), "task_index": index, "task": task,
                         "training_task": self.task_index, "success": float(successes.mean()),
                         "return_deterministic": float(greedy_returns.mean()) if len(greedy) else float("nan"),
                         "success_deterministic": float(greedy_successes.mean()) if len(greedy) else float("nan")})
        for row in rows:
            self.logger.log_eval(row)

    def task_episode(self, env: TaskEnv, explore: bool) -> tuple[float, float]:
        """One evaluation episode; returns its return and its success (1.0 if any step succeeded)."""
        obs, done, total, info = env.reset(), False, 0.0, {}
        self.agent.reset(explore=explore)
        while not done:
            obs, reward, terminated, truncated, info = env.step(self.act(obs, explore=explore))
            total += reward
            done = terminated or truncated
        return total, float(info.get("episode_success", info.get("success", False)))

    # ----------------------------------------------------------------- checkpoints and the end
    def state(self) -> dict:
        """Trainer's state, the task being trained, and the latest update's metrics (the next train.csv row shows
        them when no update comes before it, e.g. early in a task)."""
        metrics = {k: float(v) for k, v in self.metrics.items()}
        return super().state() | {"task_index": self.task_index, "task_ended": self.task_ended, "metrics": metrics}

    def load_state(self, state: dict) -> None:
        """Build the checkpoint's task env, then restore Trainer's state into it."""
        if self.env is None or state["task_index"] != self.task_index:
            self.task_index = state["task_index"]
            self.env = training_env(self.cfg, self.tasks, self.task_index)
        self.task_ended = state["task_ended"]
        self.metrics = {k: torch.tensor(v) for k, v in state["metrics"].items()}
        super().load_state(state)

    def checkpoint(self) -> None:
        """Trainer's checkpoint, then drop replay chunks an emptied buffer no longer holds."""
        super().checkpoint()
        for _, end, path in replay_chunks(self.run_dir):
            if end <= self.buffer.added - self.buffer.size:
                path.unlink()

    def finish(self) -> None:
        """Final checkpoint and summary.json: the last evaluation's mean return and success over all tasks."""
        last = [r for r in self.logger.eval_rows if int(float(r["step"])) == self.step]
        summary = dict(status="complete", step=self.step, tasks=len(self.tasks),
                       final_return=float(np.mean([float(r["return"]) for r in last])),
                       final_success=float(np.mean([float(r["success"]) for r in last])),
                       env_steps_per_s=self.train_steps / self.train_s if self.train_s else None,
                       updates_per_s=self.updates / self.train_s if self.train_s else None,
                       wall_s=round(self.elapsed_wall(), 3), episodes=self.episodes, updates=self.updates)
        summary |= self.agent.summary()
        self.checkpoint()
        self.logger.write_summary(**summary)


# ---------------------------------------------------------------------------------------------- composition
def make_trainer(cfg: ContinualConfig, make_agent: Callable[[Any, int, int, torch.device], Any], run_dir: Path,
                 eval_envs: dict[str, Env] | None = None) -> ContinualTrainer:
    """Everything after validation: threads, device, seeds, the first task's evaluation env (for the sizes), agent,
    replay, logger and trainer. `eval_envs` (task -> env built with the run seed) may hand over envs already built."""
    from omegaconf import OmegaConf

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    tasks = sequence_tasks(cfg.sequence)
    eval_envs = dict(eval_envs or {})
    eval_envs.setdefault(tasks[0], evaluation_env(cfg, tasks[0]))
    seen = TaskEnv(eval_envs[tasks[0]], 0, len(tasks))  # what the agent sees: observation + one-hot task id
    agent = make_agent(cfg, seen.obs_dim, seen.act_dim, device)
    capacity = min(cfg.buffer_size, (cfg.steps_per_task if cfg.reset_buffer else cfg.steps) + 1)
    buffer = ReplayBuffer(seen.obs_dim, seen.act_dim, capacity, device, cfg.recent_fraction, cfg.recent_window)
    group = cfg.wandb.group or f"{cfg.idea}-{cfg.task}-{cfg.experiment}"
    logger = Logger(run_dir, OmegaConf.to_container(OmegaConf.structured(cfg)), cfg.wandb.mode, cfg.wandb.project,
                    cfg.wandb.entity, group, f"seed{cfg.seed}")
    logger.write_summary(config=identity(cfg))  # device and threads: by the trainer, only if it trains
    return ContinualTrainer(cfg, agent, buffer, logger, run_dir, device, eval_envs)


def launch_sequence(hydra_cfg: Any, schema: type, make_agent: Callable[[Any, int, int, torch.device], Any],
                    validate_idea: Callable[[Any], None] | None = None) -> dict:
    """core.launch.launch for a sequence: validate (the sequence first; nothing is built or written before this
    passes), build (make_trainer), train (resuming if possible), return the summary."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    cfg = freeze(hydra_cfg, schema)

    def check() -> None:
        validate_sequence(cfg)
        if validate_idea:
            validate_idea(cfg)
        check_same_run(cfg, run_dir)

    exit_on_bad_config(run_dir, check)
    save_resolved_config(cfg, run_dir)
    return make_trainer(cfg, make_agent, run_dir).run()


@dataclass
class ContinualSACConfig(ContinualConfig, SACConfig):
    """core's SAC on a sequence (the entry point below): SAC's fields, the sequence protocol's defaults."""

    idea: str = "continual_sac"


def _main() -> None:
    """`python -m core.continual ...`: core's SAC (fine-tuned, one head) on a sequence."""
    from hydra.core.config_store import ConfigStore

    from core.launch import SHARED_CONFIGS, entry_point

    store = ConfigStore.instance()
    store.store(name="continual_sac_schema", node=ContinualSACConfig)
    store.store(name="continual_sac", node={
        "defaults": ["continual_sac_schema", "base", "_self_"],
        "hydra": {"run": {"dir": "runs/${idea}/${experiment}/${sequence}/${hydra.job.override_dirname}"}}})

    @entry_point(ContinualSACConfig, SHARED_CONFIGS, config_name="continual_sac")
    def main(cfg) -> None:
        launch_sequence(cfg, ContinualSACConfig, SAC)

    main()


if __name__ == "__main__":
    _main()
