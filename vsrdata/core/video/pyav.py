"""PyAV, imported through one function that also makes forking safe after FFmpeg was used.

FFmpeg objects that PyAV frees (a `VideoFrame`'s swscale context, for instance) own thread pools.
A fork copies only the forking thread; if such an object is still waiting in a reference cycle,
the child's first garbage collection frees it and blocks for ever in `pthread_cond_destroy` on a
pool whose threads do not exist there (seen: a DataLoader worker forked after video tests hung
in threading's after-fork handler). So the first import registers `gc.collect` to run in the
parent before every fork: cyclic garbage is freed where its threads live, and children start
with none.
"""

from __future__ import annotations

import gc
import os

_HOOKED = False


def load_av():
    """The `av` module (imported lazily: PyAV loads FFmpeg), with the fork rule above in place."""
    global _HOOKED
    import av

    if not _HOOKED and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=gc.collect)
        _HOOKED = True
    return av
