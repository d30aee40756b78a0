"""Shared by every test directory (tests/ and each idea's tests/)."""

import torch


def pytest_configure(config) -> None:
    """One intra-op thread for in-process tests: their tensors are tiny, two threads spin-wait on a shared 2-core box
    (up to 10x slower), and pytest-xdist already runs one worker per core. Subprocess runs set torch_threads
    themselves."""
    torch.set_num_threads(1)
