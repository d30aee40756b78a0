"""The study's one config schema (every agent reads it), its start-up validation, and the tasks a state-to-state
critic may run on."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import ConfigError, TrainConfig, at_least, choose

AGENTS = ("td3", "td3_nstep", "td3_chunk", "d3g", "qss")
ONE_STEP_AGENTS = ("td3", "d3g")  # act on every state: their horizon is 1
DECODERS = ("mlp", "gru")
# DMC tasks whose get_reward reads physics.control() (dm_control 1.0 suite sources): Q(s, s') cannot represent a
# reward that depends on the action taken between s and s', so d3g and qss refuse them. The sparse cartpole tasks and
# hopper-hop score states only.
CONTROL_REWARD_TASKS = frozenset({
    "cartpole-balance", "cartpole-swingup", "cartpole-two_poles", "cartpole-three_poles", "hopper-stand",
    "humanoid-stand", "humanoid-walk", "humanoid-run", "humanoid-run_pure_state", "humanoid_CMU-stand",
    "humanoid_CMU-walk", "humanoid_CMU-run", "point_mass-easy", "point_mass-hard", "lqr-lqr_2_1", "lqr-lqr_6_2"})
STATE_REWARD_EXAMPLES = ("cheetah-run", "walker-walk", "reacher-easy", "finger-spin", "fish-swim",
                         "pendulum-swingup", "quadruped-walk", "dog-run", "acrobot-swingup", "hopper-hop")


@dataclass
class ChunkingConfig(TrainConfig):
    idea: str = "qss_chunking"
    task: str = "cheetah-run"
    # --- the study's knobs
    agent: str = "td3"  # td3 | td3_nstep | td3_chunk (Q(s, a_{t:t+n}), TD3 chunk actor) | d3g | qss (Q(s_t, s_{t+n}))
    horizon: int = 1  # n: n-step return (td3_nstep), actions per executed chunk (td3_chunk, qss); td3 and d3g: 1
    decoder: str = "mlp"  # qss inverse decoder: mlp (n x act_dim outputs) | gru (a latent unrolled for n steps)
    # --- networks (TD3 / D3G: 2 x 256 ReLU)
    hidden: int = 256  # width of every hidden layer
    depth: int = 2  # hidden layers per network
    latent: int = 256  # gru decoder: size of the latent z and of the GRU state
    # --- optimisation (TD3 / D3G defaults)
    lr: float = 3e-4  # Adam learning rate of every network
    gamma: float = 0.99  # discount per agent step
    tau: float = 0.005  # Polyak rate of the target networks, applied on every delayed update
    policy_delay: int = 2  # actor (td3 family) / proposal (d3g, qss) and target updates every this many updates
    target_noise: float = 0.2  # td3 family: std of the target policy smoothing noise (D3G has none)
    target_noise_clip: float = 0.5  # td3 family: the smoothing noise is clipped to +-this
    exploration_noise: float = 0.1  # std of the Gaussian noise added to every executed training action
    # --- loop (the D3G reference: 10k random steps, evaluation every 5k steps over 10 episodes)
    warmup_steps: int = 10_000
    eval_every: int = 5_000
    eval_episodes: int = 10


def validate(cfg: ChunkingConfig) -> None:
    """The study's own knobs; raises core.config.ConfigError with one line."""
    choose("agent", cfg.agent, AGENTS)
    choose("decoder", cfg.decoder, DECODERS)
    at_least("horizon", cfg.horizon, 1)
    if cfg.agent in ONE_STEP_AGENTS and cfg.horizon != 1:
        raise ConfigError(f"agent={cfg.agent} acts on every state, so horizon must be 1, got {cfg.horizon} "
                          "(td3_nstep, td3_chunk and qss take a horizon)")
    if cfg.decoder != "mlp" and cfg.agent != "qss":
        raise ConfigError(f"decoder={cfg.decoder} applies to agent=qss only; agent={cfg.agent} takes decoder=mlp")
    if cfg.agent in ("d3g", "qss") and cfg.task in CONTROL_REWARD_TASKS:
        raise ConfigError(f"agent={cfg.agent} learns Q(s, s') and needs a reward of the states alone, but {cfg.task} "
                          f"rewards small controls; suitable tasks: {', '.join(STATE_REWARD_EXAMPLES)}, ...")
    for name in ("hidden", "depth", "latent", "policy_delay"):
        at_least(name, getattr(cfg, name), 1)
    for name in ("target_noise", "target_noise_clip", "exploration_noise"):
        at_least(name, getattr(cfg, name), 0.0)
    for name in ("lr", "gamma", "tau"):
        value = getattr(cfg, name)
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{name} must be in (0, 1], got {value}")
