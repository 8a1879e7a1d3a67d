"""Keep freed memory in the process heap while a model runs on the CPU (glibc only).

Background and sources: docs/CONVENTIONS.md#cpu-heap.

Why. PyTorch's CPU allocator takes every tensor from `malloc`. glibc serves a block larger than its
mmap threshold (which it never raises past 32 MiB) with a fresh `mmap` and unmaps it on `free`, so
each large activation is new memory: the kernel faults every 4 KiB page in and zeroes it. An
EDVR-M forward at 180x320 (5 frames of 64x180x320 float32 features, 74 MiB each) measured 1.3 M
minor page faults and 2.4 s of system time per frame on 2 cores that way. With freed blocks kept in
the heap the same forward made no faults after the first and took 0.67x the time
(`bench/bench_infer.py` prints both paths).

What. `keep_freed_memory()` calls glibc's `mallopt` twice, the documented knobs of mallopt(3):
``M_MMAP_MAX = 0`` (serve every block from the heap, never by its own mmap) and
``M_TRIM_THRESHOLD = -1`` (never give the heap's top back to the kernel). It is what
``MALLOC_MMAP_MAX_=0`` with a huge ``MALLOC_TRIM_THRESHOLD_`` in the environment of a fresh process
does, and what the jemalloc/tcmalloc advice of PyTorch's CPU performance guide buys. Numerics are
unchanged. The price: the process keeps its peak heap until it exits, as CUDA's caching allocator
keeps GPU memory, and that peak is somewhat higher (1.57 vs 1.36 GB for the forward above: a freed
block does not always fit the next request), but it does not grow with a video's length
(`bench/bench_infer_memory.py`: 3,000 vs 30 frames).

When not. It changes nothing, and says why, when the C library is not glibc (macOS, Windows,
musl), when ``VSRDATA_MALLOC=system`` is set, or when the user already tuned the allocator
(``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES`` naming malloc, or an
``LD_PRELOAD`` allocator such as jemalloc or tcmalloc). It applies to the whole process and
cannot be undone: glibc has no call that restores its dynamic thresholds.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ENV_VAR", "keep_freed_memory"]

ENV_VAR = "VSRDATA_MALLOC"  # 'system' leaves malloc as it is
_M_TRIM_THRESHOLD = -1  # mallopt(3) parameter numbers, glibc <malloc.h>
_M_MMAP_MAX = -4
_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc", "malloc")

_state: str | None = None  # what keep_freed_memory() did in this process; None until it runs


def _user_choice() -> str | None:
    """Why the user's environment says to leave malloc alone, or None."""
    if os.environ.get(ENV_VAR, "").strip().lower() == "system":
        return f"unchanged (${ENV_VAR}=system)"
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"):
        if name in os.environ:
            return f"unchanged (${name} is set)"
    if "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "unchanged ($GLIBC_TUNABLES sets malloc)"
    preload = os.environ.get("LD_PRELOAD", "").lower()
    if any(name in preload for name in _ALLOCATORS):
        return "unchanged ($LD_PRELOAD holds an allocator)"
    return None


def _glibc():
    """The running glibc as a ctypes library, or None for any other C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  glibc has it, musl does not
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> str:
    """Make glibc keep freed blocks for reuse (see the module docstring); idempotent.

    Returns what was done, one line: 'kept (glibc: M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1)' or
    'unchanged (<why>)'. Never raises.
    """
    global _state
    if _state is not None:
        return _state
    _state = _user_choice()
    if _state is None:
        libc = _glibc()
        if libc is None:
            _state = "unchanged (the C library is not glibc)"
        elif libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1:
            _state = "kept (glibc: M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1)"
        else:
            _state = "unchanged (glibc refused mallopt)"
    return _state

