import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one intra-op thread: tensors here are tiny, and on a shared 2-core box two threads spin-wait (10x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
