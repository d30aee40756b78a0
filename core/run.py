"""SAC, the shared baseline: `python -m core.run task=cartpole-swingup steps=200000 seed=0`."""

from pathlib import Path

from hydra.core.config_store import ConfigStore

from core.launch import entry_point, launch
from core.sac import SAC, SACConfig

ConfigStore.instance().store(name="sac_schema", node=SACConfig)


@entry_point(SACConfig, Path(__file__).resolve().parents[1] / "configs", config_name="sac")
def main(cfg) -> None:
    launch(cfg, SACConfig, SAC)


if __name__ == "__main__":
    main()
