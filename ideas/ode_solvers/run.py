"""FlowRL-style agent with pluggable samplers and paths:
`python -m ideas.ode_solvers.run solver=rk4 path=plv flow_steps=2 task=dog-run seed=0`."""

from pathlib import Path

from hydra.core.config_store import ConfigStore

from core.config import ConfigError, at_least, choose
from core.launch import entry_point, launch
from ideas.ode_solvers.agent import FlowRLAgent, FlowRLConfig
from ideas.ode_solvers.paths import PATHS
from ideas.ode_solvers.samplers import ODE_SOLVERS, UNROLLED, degenerate_comparison

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ConfigStore.instance().store(name="ode_solvers_schema", node=FlowRLConfig)


def validate(cfg: FlowRLConfig) -> None:
    """The study's own knobs; raises core.config.ConfigError with one line."""
    choose("solver", cfg.solver, ODE_SOLVERS)
    choose("path", cfg.path, PATHS)
    at_least("flow_steps", cfg.flow_steps, 1)
    at_least("hidden", cfg.hidden, 1)
    at_least("policy_delay", cfg.policy_delay, 1)
    at_least("target_update_interval", cfg.target_update_interval, 1)
    at_least("sde_noise", cfg.sde_noise, 0.0)
    at_least("polynomial_n", cfg.polynomial_n, 1.0)
    at_least("timing_every", cfg.timing_every, 1)
    for name, value, low, high in [("expectile", cfg.expectile, 0.0, 1.0), ("target_tau", cfg.target_tau, 0.0, 1.0),
                                   ("gamma", cfg.gamma, 0.0, 1.0), ("reg_lambda", cfg.reg_lambda, 0.0, float("inf"))]:
        if not low < value <= high:
            raise ConfigError(f"{name} must be in ({low}, {high}], got {value}")
    end = cfg.flow_steps if cfg.sde_window_end < 0 else cfg.sde_window_end
    if not 0 <= cfg.sde_window_start < end <= cfg.flow_steps:
        raise ConfigError(f"sde window must satisfy 0 <= sde_window_start < sde_window_end <= flow_steps "
                          f"({cfg.flow_steps}), got [{cfg.sde_window_start}, {cfg.sde_window_end})")
    recent = cfg.batch_size - int(cfg.batch_size * (1.0 - cfg.recent_fraction))  # the agent's recent rows
    if not cfg.replay_with_replacement and (cfg.warmup_steps < cfg.batch_size or cfg.recent_window < recent):
        raise ConfigError(f"replay_with_replacement=false draws each batch share without replacement: it needs "
                          f"warmup_steps >= batch_size ({cfg.batch_size}) and recent_window >= {recent} recent rows, "
                          f"got warmup_steps={cfg.warmup_steps}, recent_window={cfg.recent_window}")
    if not cfg.update_sees_newest:
        at_least("warmup_steps (the first update must see a transition stored before its step)", cfg.warmup_steps, 1)
    if cfg.compile_mode is not None:
        choose("compile_mode", cfg.compile_mode, COMPILE_MODES)
    if cfg.sde_noise > 0:
        choose("solver (the SDE sampler mixes with explicit Runge-Kutta steps only)", cfg.solver, sorted(UNROLLED))
    warning = degenerate_comparison(cfg.solver, cfg.flow_steps)
    if warning:
        print(f"warning: {warning}")


@entry_point(FlowRLConfig, Path(__file__).resolve().parent / "conf")
def main(cfg) -> None:
    launch(cfg, FlowRLConfig, FlowRLAgent, validate)


if __name__ == "__main__":
    main()
