"""Open-loop execution through core's Trainer on a real DMC task (cheetah-run, action repeat 4: 250-step episodes, so
an n = 3 chunk is cut at every episode end): the executed actions are the decoder's chunk in order, every reset
leaves an empty queue, and an evaluation started mid-chunk leaves the training queue as it was. Then the queue's
own arithmetic: per-action exploration noise and the reach error."""

import pytest
import torch
from torch.testing import assert_close

from core.buffers import ReplayBuffer
from core.envs import make_env
from core.logger import Logger
from core.trainer import Trainer
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.execution import REACH_WINDOW_STEPS, OpenLoop
from ideas.qss_chunking.qss import QSS

N = 3
CPU = torch.device("cpu")


@pytest.mark.parametrize("decoder", ["mlp", "gru"])
def test_chunks_execute_in_order_and_each_stream_keeps_its_own_queue(tmp_path, decoder):
    cfg = ChunkingConfig(agent="qss", horizon=N, decoder=decoder, task="cheetah-run", action_repeat=4, steps=10**6,
                         warmup_steps=20, updates_per_step=0.1, hidden=16, latent=16, batch_size=16,
                         eval_episodes=1, exploration_noise=0.0)  # noiseless training actions: exactly the planned ones
    torch.manual_seed(0)
    env, eval_env = make_env(cfg.task, 0, cfg.action_repeat), make_env(cfg.task, 1, cfg.action_repeat)
    agent = QSS(cfg, env.obs_dim, env.act_dim, CPU)
    resets = []
    reset = agent.reset

    def reset_and_look(explore: bool) -> None:  # the agent's own reset, then what is left in that stream's queue
        reset(explore)
        resets.append((explore, agent.open_loop.pending(explore)))

    agent.reset = reset_and_look
    buffer = ReplayBuffer(env.obs_dim, env.act_dim, 1000)
    logger = Logger(tmp_path, {}, "disabled", "test", None, "test", "seed0")
    trainer = Trainer(cfg, env, eval_env, agent, buffer, logger, tmp_path, CPU)
    trainer.start_episode()

    planned, evaluated = [], False  # planned: (buffer position, chunk) for every chunk the agent planned
    while trainer.episodes < 1 or trainer.step < env.max_episode_steps + 2 * N:  # into the second episode
        if trainer.step >= cfg.warmup_steps and agent.open_loop.pending(True) == 0:
            with torch.no_grad():  # what the decoder proposes from this state, computed apart from the agent's act
                proposed = torch.as_tensor(trainer.obs)[None] + agent.proposal(torch.as_tensor(trainer.obs)[None])
                planned.append((buffer.ptr, agent.inverse(torch.cat([torch.as_tensor(trainer.obs)[None], proposed],
                                                                    -1))[0]))
        if not evaluated and trainer.step > 100 and agent.open_loop.pending(True) == 2:
            queue, position = agent.open_loop.chunk[True].clone(), agent.open_loop.position[True]
            trainer.evaluate()  # a whole evaluation episode between two actions of one training chunk
            evaluated = True
            assert torch.equal(agent.open_loop.chunk[True], queue) and agent.open_loop.position[True] == position
            assert agent.open_loop.reach_eval_count > 0  # the evaluation ran its own chunks
        terminated, truncated = trainer.collect()
        trainer.update()
        if terminated or truncated:
            trainer.end_episode()

    assert evaluated and trainer.updates > 0
    assert resets == [(True, 0), (False, 0), (True, 0)]  # start, the evaluation's episode, the episode end
    episode_end = env.max_episode_steps  # 250 steps
    starts = [start for start, _ in planned]
    cut = max(s for s in starts if s < episode_end)
    assert cut + N > episode_end and episode_end in starts  # a chunk cut by the episode end, a fresh one after it
    assert starts == sorted(set(range(cfg.warmup_steps, episode_end, N)) | set(range(episode_end, buffer.size, N)))
    for start, chunk in planned:  # the stored actions are the chunk, in order (only up to the episode's end)
        steps = [t for t in range(start, start + N) if t < buffer.size and (t < episode_end) == (start < episode_end)]
        assert_close(buffer.action[steps], chunk[:len(steps)])


def test_exploration_noise_is_drawn_per_action_and_the_reach_error_is_measured_on_executed_chunks():
    loop = OpenLoop(exploration_noise=0.1, horizon=N, device=CPU)
    chunk = torch.zeros(1, N, 2)
    target = torch.tensor([[3.0, 4.0]])
    plan_calls = []

    def plan(obs):
        plan_calls.append(obs)
        return chunk, target

    loop.reset(explore=True)
    obs = torch.zeros(1, 2)
    noise = torch.stack([loop.act(obs, True, plan) for _ in range(N)])
    assert len(plan_calls) == 1 and loop.pending(True) == 0
    assert len({tuple(x.flatten().tolist()) for x in noise}) == N and (noise != 0).all()  # fresh noise per action
    loop.act(torch.tensor([[0.0, 0.0]]), True, plan)  # the chunk ended at (0, 0), it aimed at (3, 4)
    assert_close(loop.metrics()["train/reach_error"], torch.tensor(5.0))

    loop.reset(explore=False)  # an evaluation: a chunk cut by the episode end is not measured
    loop.act(obs, False, plan)
    loop.reset(explore=False)
    assert "train/reach_error_eval" not in loop.metrics()
    for _ in range(N):
        loop.act(obs, False, plan)
    loop.act(torch.tensor([[3.0, 1.0]]), False, plan)  # 3 short of the target, with no noise
    assert_close(loop.metrics()["train/reach_error_eval"], torch.tensor(3.0))
    assert loop.pending(False) == N - 1 and loop.pending(True) == N - 1  # the streams never share a queue


@pytest.mark.parametrize("horizon", [1, 3, 5])
def test_the_training_reach_error_averages_the_same_agent_steps_at_every_horizon(horizon):
    loop = OpenLoop(exploration_noise=0.0, horizon=horizon, device=CPU)
    window = REACH_WINDOW_STEPS // horizon  # chunks
    target = torch.zeros(1, 2)
    chunks = window + 7
    for k in range(chunks + 1):  # chunk k starts at (k, 0): the chunk before it ended k away from its target 0
        for _ in range(horizon):
            loop.act(torch.tensor([[float(k), 0.0]]), True, lambda obs: (torch.zeros(1, horizon, 2), target))
    recorded = torch.arange(1, chunks + 1, dtype=torch.float32)
    assert_close(loop.metrics()["train/reach_error"], recorded[-window:].mean())
