"""SAC with a KAN (or control) critic first layer:
`python -m ideas.sinckan_critic.run first_layer=sinc task=pendulum-swingup seed=0`."""

from pathlib import Path

from hydra.core.config_store import ConfigStore

from core.config import ConfigError, at_least, choose
from core.launch import entry_point, launch
from ideas.sinckan_critic.agent import SincKANConfig, SincKANSAC
from ideas.sinckan_critic.layers import FIRST_LAYERS

ConfigStore.instance().store(name="sinckan_critic_schema", node=SincKANConfig)


def validate(cfg: SincKANConfig) -> None:
    """The study's own knobs; raises core.config.ConfigError with one line."""
    choose("first_layer", cfg.first_layer, FIRST_LAYERS)
    at_least("hidden", cfg.hidden, 1)
    at_least("depth", cfg.depth, 1)
    at_least("sinc_degree", cfg.sinc_degree, 0)
    at_least("sinc_len_h", cfg.sinc_len_h, 1)
    at_least("fourier_frequencies", cfg.fourier_frequencies, 1)
    at_least("pykan_grid", cfg.pykan_grid, 1)
    at_least("pykan_k", cfg.pykan_k, 1)
    for name, value in [("sinc_init_h", cfg.sinc_init_h), ("obs_clip", cfg.obs_clip), ("lr", cfg.lr)]:
        if not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")
    for name, value in [("gamma", cfg.gamma), ("tau", cfg.tau)]:
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{name} must be in (0.0, 1.0], got {value}")


@entry_point(SincKANConfig, Path(__file__).resolve().parent / "conf")
def main(cfg) -> None:
    launch(cfg, SincKANConfig, SincKANSAC, validate)


if __name__ == "__main__":
    main()
