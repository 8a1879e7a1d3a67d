"""Shared pytest fixtures (opt-in: a test module lists the ones it wants in `pytestmark`)."""

from __future__ import annotations

import os

import pytest

# The CPU inference engine makes glibc keep freed memory for the rest of its process
# (vsrdata.core.heap). In the one long pytest process that would pin the largest heap any test
# reached; tests/test_heap.py checks the default in fresh processes instead.
os.environ.setdefault("VSRDATA_MALLOC", "system")

# Tests build and read videos with PyAV, then fork DataLoader and pool workers in the same process:
# load PyAV through vsrdata so that its fork rule (collect FFmpeg garbage in the parent) is in place
# from the start (vsrdata.core.video.pyav).
from vsrdata.core.video.pyav import load_av  # noqa: E402

load_av()


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


@pytest.fixture(scope="session")
def tiny_sr(tmp_path_factory):
    """scale -> (LQ root, held-out split, checkpoint) of a tiny single-frame EDVR trained on the REDS
    fixtures (tests/tiny_sr.py), made once per session and shared by the modules that need it."""
    from tests.tiny_sr import make_tiny_sr

    made: dict = {}

    def get(scale: int):
        if scale not in made:
            made[scale] = make_tiny_sr(tmp_path_factory.mktemp(f"tiny_x{scale}"), scale)
        return made[scale]

    return get
