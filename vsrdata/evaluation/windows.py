"""Test-time frame windows: temporal padding at clip ends and lazy, bounded frame reading.

EDVR restores the centre frame of a window of `num_frame` (odd) LR frames. At the ends of a clip
the window reaches past the first/last frame and indices are padded. Modes (window n,
half = n // 2, last index M = length - 1, window centre `crt`), following BasicSR's
`generate_frame_indices` / EDVR-old `index_generation` (our own code, same results):

- ``replicate``: clamp to [0, M].                       crt 0, n 5 -> [0, 0, 0, 1, 2]
- ``reflection``: mirror around the end frame (i -> -i, i -> 2M - i).   -> [2, 1, 0, 1, 2]
- ``reflection_circle`` (= EDVR-old ``new_info``): i < 0 -> crt + half - i;
  i > M -> (crt - half) - (i - M).                                     -> [4, 3, 0, 1, 2]
- ``circle``: i < 0 -> n + i; i > M -> i - n.                           -> [3, 4, 0, 1, 2]

`reflection_circle` is what EDVR/BasicSR use for the SR models on Vid4 and REDS4; `replicate`
for the SRblur/deblur models (docs/CONVENTIONS.md#temporal-padding). For clips shorter than the formulas assume
(length < n), an index that still falls outside [0, M] is clamped (our choice; the references
would fail or index out of range there).

`SlidingWindow` yields, for each centre frame, the list of frames of its window while holding
at most ~2n decoded frames: memory is bounded by the window, not by the clip length. It works
on any iterable of frames (a folder read one file at a time, or a video decoder), with the clip
length known up front or discovered when the iterable ends.

Scene cuts: with `cuts` (first frame of each new shot), a window never takes frames from another
shot; inside a shot it is padded exactly as if the shot were a clip of its own
(`shot_temporal_indices`), so each restored frame equals what the shot alone would give.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import bisect

__all__ = ["TEMPORAL_PADDINGS", "SlidingWindow", "shot_temporal_indices", "temporal_indices"]

#: Temporal padding modes (the one list; the CLI and TrainConfig import it). No torch here, so
#: `vsrdata --help` can import it.
TEMPORAL_PADDINGS = ("reflection_circle", "replicate", "reflection", "circle")


def _check(num_frame: int, mode: str) -> None:
    if num_frame < 1 or num_frame % 2 == 0:
        raise ValueError(f"num_frame must be a positive odd number, got {num_frame}")
    if mode not in TEMPORAL_PADDINGS:
        raise ValueError(f"unknown temporal padding {mode!r}; choose one of {', '.join(TEMPORAL_PADDINGS)}")


def temporal_indices(crt: int, length: int, num_frame: int, mode: str = "reflection_circle") -> list[int]:
    """Frame indices of the window centred on frame `crt` of a clip of `length` frames.

    Args:
        crt: centre index, 0 <= crt < length.
        length: number of frames in the clip.
        num_frame: window size n (odd).
        mode: one of TEMPORAL_PADDINGS (see the module docstring).

    Returns:
        n indices in [0, length - 1]; position n // 2 is `crt`.
    """
    _check(num_frame, mode)
    if not 0 <= crt < length:
        raise ValueError(f"centre index {crt} outside a clip of {length} frames")
    last = length - 1
    half = num_frame // 2
    out = []
    for i in range(crt - half, crt + half + 1):
        if i < 0:
            j = {"replicate": 0, "reflection": -i, "reflection_circle": crt + half - i,
                 "circle": num_frame + i}[mode]
        elif i > last:
            j = {"replicate": last, "reflection": 2 * last - i,
                 "reflection_circle": (crt - half) - (i - last), "circle": i - num_frame}[mode]
        else:
            j = i
        out.append(min(max(j, 0), last))  # only matters for clips shorter than the window
    return out


def shot_temporal_indices(crt: int, length: int, num_frame: int, mode: str = "reflection_circle",
                          cuts: Sequence[int] = ()) -> list[int]:
    """`temporal_indices` inside the shot holding `crt`: the shot [s, e) (bounded by the sorted
    `cuts`, each the first frame of a shot, and by 0 / `length`) is treated as a clip of its own.

    Returns n indices in [s, e - 1]; position n // 2 is `crt`. With no cuts this is
    `temporal_indices(crt, length, num_frame, mode)`.
    """
    k = bisect.bisect_right(cuts, crt)
    start = cuts[k - 1] if k > 0 else 0
    end = min(cuts[k], length) if k < len(cuts) else length
    return [start + i for i in temporal_indices(crt - start, end - start, num_frame, mode)]


class SlidingWindow:
    """Iterate over (centre index, window frames) of a clip, reading frames lazily.

    Args:
        frames: iterable of frames in temporal order (anything: arrays, tensors). It is consumed
            once, front to back; a frame is read only when a window first needs it.
        num_frame: window size n (odd).
        mode: temporal padding, one of TEMPORAL_PADDINGS.
        length: number of frames if known; otherwise it is found when `frames` runs out
            (e.g. a video whose frame count the container does not state reliably).
        centers: optional ascending subset of centre indices to yield (e.g. only the middle
            frame for Vimeo90K-T); default: every frame.
        cuts: scene cuts (first frame index of each new shot); windows stay inside their shot
            (`shot_temporal_indices`).

    Yields:
        (t, window) with `window` a list of n frames (the same object repeated where indices
        repeat). At most the frames in [t - 2*half, t + 2*half] are held, where
        half = n // 2: the padding formulas never reach further.
    """

    def __init__(self, frames: Iterable[Any], num_frame: int, mode: str = "reflection_circle",
                 length: int | None = None, centers: Sequence[int] | None = None,
                 cuts: Sequence[int] = ()):
        _check(num_frame, mode)
        self.cuts = sorted(set(int(c) for c in cuts if int(c) > 0))
        self._it: Iterator[Any] = iter(frames)
        self.num_frame = num_frame
        self.mode = mode
        self.length = length
        self._centers = None if centers is None else sorted(set(int(c) for c in centers))
        self._cache: dict[int, Any] = {}
        self._next = 0  # index of the next frame the iterator will give
        self.max_held = 0  # largest number of frames held at once (for tests / diagnostics)

    def _read_until(self, idx: int) -> None:
        """Read frames until `idx` is cached or the iterable ends (which fixes `length`)."""
        while self._next <= idx and (self.length is None or self._next < self.length):
            try:
                frame = next(self._it)
            except StopIteration:
                if self.length is not None and self._next < self.length:
                    raise ValueError(f"clip ended after {self._next} frames, expected {self.length}") from None
                self.length = self._next
                return
            self._cache[self._next] = frame
            self._next += 1
            self.max_held = max(self.max_held, len(self._cache))

    def __iter__(self) -> Iterator[tuple[int, list[Any]]]:
        half = self.num_frame // 2
        t = 0
        centers = self._centers
        ci = 0
        while True:
            if centers is not None:
                if ci >= len(centers):
                    return
                t = centers[ci]
                ci += 1
            self._read_until(t + 2 * half)
            if self.length is not None and t >= self.length:
                if centers is not None:
                    raise ValueError(f"centre index {t} outside a clip of {self.length} frames")
                return
            for k in [k for k in self._cache if k < t - 2 * half]:
                del self._cache[k]
            # Length still unknown: frames up to t + 2*half exist, so no end padding is needed
            # yet and the frames read so far stand in for the clip.
            length = self.length if self.length is not None else self._next
            idx = shot_temporal_indices(t, length, self.num_frame, self.mode, self.cuts)
            yield t, [self._cache[i] for i in idx]
            if centers is None:
                t += 1

