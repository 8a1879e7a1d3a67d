"""Shared pytest fixtures (opt-in: a test module lists the ones it wants in `pytestmark`)."""

from __future__ import annotations

import os

import pytest

# The CPU inference engine makes glibc keep freed memory for the rest of its process
# (vsrdata.core.heap). In the one long pytest process that would pin the largest heap any test
# reached; tests/test_heap.py checks the default in fresh processes instead.
os.environ.setdefault("VSRDATA_MALLOC", "system")

# The long pytest process forks DataLoader and pool workers after tests that opened progress bars;
# tqdm's monitor thread would then be alive at each fork (one full run hung with a forked worker
# stuck in threading's after-fork handler). vsrdata's own bars turn it off too (cli/_common.py).
import tqdm  # noqa: E402

tqdm.tqdm.monitor_interval = 0


@pytest.fixture
def pure_dcn(monkeypatch):
    """Automatic DCN backend selection, whatever VSRDATA_DCN the caller's shell has set."""
    monkeypatch.delenv("VSRDATA_DCN", raising=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: intra-op threads only add overhead (and contention on shared CI cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
