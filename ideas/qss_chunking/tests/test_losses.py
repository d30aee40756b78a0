"""Every loss of TD3 and D3G against a hand computation (explicit float64 matmuls from the weights) on a tiny network
and batch, over two updates, so the delayed schedule (actor / proposal and Polyak targets every 2nd update) is
checked too."""

import torch
from torch.testing import assert_close

from core.buffers import Batch
from ideas.qss_chunking.config import ChunkingConfig
from ideas.qss_chunking.d3g import D3G
from ideas.qss_chunking.td3 import TD3
from ideas.qss_chunking.tests.hand import dense, layers_of, move_targets, mse, polyak, snapshot, twin_min

OBS, ACT, B = 3, 2, 4
CPU = torch.device("cpu")


def tiny_batch(seed: int) -> Batch:
    """Four transitions, the last one terminal (discount 0)."""
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(B, OBS, generator=g), torch.randn(B, OBS, generator=g)
    action = torch.rand(B, ACT, generator=g) * 2 - 1
    reward = torch.randn(B, 1, generator=g)
    discount = 0.99 * torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    return Batch(obs, action, reward, next_obs, discount)


def close(value: torch.Tensor, expected: torch.Tensor) -> None:
    assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)


def test_td3_critic_actor_and_targets_match_hand_computation():
    cfg = ChunkingConfig(agent="td3", hidden=5, batch_size=B)
    torch.manual_seed(0)
    agent = TD3(cfg, OBS, ACT, CPU)
    move_targets(agent)
    names = ("actor", "actor_target", "critic", "critic_target")
    for update in (1, 2):
        batch, before = tiny_batch(update), snapshot(agent, names)
        torch.manual_seed(100 + update)
        noise = (torch.randn(B, ACT) * 0.2).clamp(-0.5, 0.5).double()  # the draw the update makes
        next_action = (torch.tanh(dense(batch.next_obs, layers_of(before["actor_target"]))) + noise).clamp(-1, 1)
        target = batch.reward.double() + batch.discount.double() * twin_min(
            before["critic_target"], torch.cat([batch.next_obs.double(), next_action], -1))
        obs_action = torch.cat([batch.obs, batch.action], -1)
        critic_loss = sum(mse(dense(obs_action, layers_of(before["critic"], m)), target) for m in (0, 1))

        torch.manual_seed(100 + update)
        metrics = agent.update(batch)
        close(metrics["train/critic_loss"], critic_loss)
        if update == 1:  # no actor step, targets untouched
            assert "train/actor_loss" not in metrics
            for name in ("actor", "actor_target", "critic_target"):
                for p, q in zip(getattr(agent, name).parameters(), before[name].parameters(), strict=True):
                    assert torch.equal(p, q), name
            continue
        # actor step after the critic step: the critic it sees is the updated one, the actor the one before
        action = torch.tanh(dense(batch.obs, layers_of(before["actor"])))
        actor_loss = -dense(torch.cat([batch.obs.double(), action], -1), layers_of(agent.critic, 0)).mean()
        close(metrics["train/actor_loss"], actor_loss)
        for target_net, online in (("critic_target", agent.critic), ("actor_target", agent.actor)):
            expected = polyak(before[target_net], online, cfg.tau)
            for p, e in zip(getattr(agent, target_net).parameters(), expected, strict=True):
                close(p, e)


def test_d3g_losses_match_hand_computation_and_the_published_schedule():
    cfg = ChunkingConfig(agent="d3g", hidden=5, batch_size=B)
    torch.manual_seed(0)
    agent = D3G(cfg, OBS, ACT, CPU)
    move_targets(agent)
    names = ("critic", "critic_target", "proposal", "proposal_target", "inverse", "forward_model")

    def invert(net, s, s_next):
        return torch.tanh(dense(torch.cat([s.double(), s_next.double()], -1), layers_of(net)))

    def forward(net, s, a):
        return dense(torch.cat([s.double(), a.double()], -1), layers_of(net))

    for update in (1, 2):
        batch, before = tiny_batch(update), snapshot(agent, names)
        s, a, s2 = batch.obs.double(), batch.action.double(), batch.next_obs.double()
        # critic: y = r + discount * min Q'(s', s' + f(s', I(s', s' + M'(s')))) with the online I and f
        s3_hat = s2 + dense(s2, layers_of(before["proposal_target"]))
        s3_cycle = s2 + forward(before["forward_model"], s2, invert(before["inverse"], s2, s3_hat))
        target = batch.reward.double() + batch.discount.double() * twin_min(before["critic_target"],
                                                                            torch.cat([s2, s3_cycle], -1))
        critic_loss = sum(mse(dense(torch.cat([s, s2], -1), layers_of(before["critic"], m)), target) for m in (0, 1))
        inverse_loss = mse(invert(before["inverse"], s, s2), a)
        forward_loss = mse(forward(before["forward_model"], s, a), s2 - s)

        metrics = agent.update(batch)
        close(metrics["train/critic_loss"], critic_loss)
        close(metrics["train/inverse_loss"], inverse_loss)
        close(metrics["train/decoder_error_step1"], inverse_loss)
        close(metrics["train/forward_loss"], forward_loss)
        if update == 1:
            assert "train/proposal_loss" not in metrics
            for name in ("proposal", "proposal_target", "critic_target"):
                for p, q in zip(getattr(agent, name).parameters(), before[name].parameters(), strict=True):
                    assert torch.equal(p, q), name
            continue
        # proposal step: M before its step; I, f and the critic after theirs (they step first in the update)
        s_hat = s + dense(s, layers_of(before["proposal"]))
        s_cycle = s + forward(agent.forward_model, s, invert(agent.inverse, s, s_hat))
        value = -dense(torch.cat([s, s_cycle], -1), layers_of(agent.critic, 0)).mean()
        close(metrics["train/cycle_loss"], mse(s_cycle, s_hat))
        close(metrics["train/proposal_loss"], value + mse(s_cycle, s_hat))
        for target_net, online in (("critic_target", agent.critic), ("proposal_target", agent.proposal)):
            for p, e in zip(getattr(agent, target_net).parameters(), polyak(before[target_net], online, cfg.tau),
                            strict=True):
                close(p, e)


def test_d3g_acts_through_the_inverse_model_on_its_proposal():
    cfg = ChunkingConfig(agent="d3g", hidden=5, exploration_noise=0.0)
    torch.manual_seed(0)
    agent = D3G(cfg, OBS, ACT, CPU)
    agent.reset(explore=False)
    obs = torch.randn(1, OBS)
    proposed = obs.double() + dense(obs, layers_of(agent.proposal))
    expected = torch.tanh(dense(torch.cat([obs.double(), proposed], -1), layers_of(agent.inverse)))
    close(agent.act(obs, explore=False), expected)
