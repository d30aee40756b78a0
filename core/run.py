"""SAC, the shared baseline: `python -m core.run task=cartpole-swingup steps=200000 seed=0`."""

import hydra
from hydra.core.config_store import ConfigStore

from core.launch import launch
from core.sac import SAC, SACConfig

ConfigStore.instance().store(name="sac_schema", node=SACConfig)


@hydra.main(version_base=None, config_path="../configs", config_name="sac")
def main(cfg) -> None:
    launch(cfg, SACConfig, SAC)


if __name__ == "__main__":
    main()
