"""State-to-state critics with action chunks and their baselines:
`python -m ideas.qss_chunking.run agent=qss horizon=3 decoder=gru task=cheetah-run seed=0`
(agent: td3 | td3_nstep | td3_chunk | d3g | qss; horizon: n; decoder: mlp | gru, for qss)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore

from core.launch import entry_point, launch
from ideas.qss_chunking.config import ChunkingConfig, validate
from ideas.qss_chunking.d3g import D3G
from ideas.qss_chunking.qss import QSS
from ideas.qss_chunking.td3 import TD3, NStepTD3
from ideas.qss_chunking.td3_chunk import ChunkTD3

AGENTS = {"td3": TD3, "td3_nstep": NStepTD3, "td3_chunk": ChunkTD3, "d3g": D3G, "qss": QSS}
ConfigStore.instance().store(name="qss_chunking_schema", node=ChunkingConfig)


def make_agent(cfg: ChunkingConfig, obs_dim: int, act_dim: int, device: torch.device) -> Any:
    """The agent cfg.agent names."""
    return AGENTS[cfg.agent](cfg, obs_dim, act_dim, device)


@entry_point(ChunkingConfig, Path(__file__).resolve().parent / "conf")
def main(cfg) -> None:
    launch(cfg, ChunkingConfig, make_agent, validate)


if __name__ == "__main__":
    main()
