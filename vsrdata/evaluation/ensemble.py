"""Test-time ensembles (`--tta`): the mean of the model's outputs over flipped / transposed inputs.

Modes (docs/CONVENTIONS.md#flip4-x8):

- ``none``: one pass.
- ``flip4``: the original EDVR's four-way flip test: the whole input window as is, flipped in W,
  flipped in H, flipped in both; each output flipped back; the mean of the four.
- ``x8``: ``flip4`` plus the same four on the window transposed (H and W swapped), each output
  transposed back (EDSR's self-ensemble: the eight symmetries of the square).

`TTAEngine` wraps any engine (`vsrdata.evaluation.engines`): it stacks the variants of a
(N, T, 3, H, W) window batch into one batch (4N for flip4; for x8 one batch of 8N when H == W,
else two of 4N, since a transposed window has another shape), calls the engine once per batch,
undoes each variant on its output and averages (sum in variant order, then / k). When the
batch does not fit in CUDA memory it falls back to one variant at a time (same values up to
float rounding). The transforms are exact permutations of pixels, so the only differences from
running the variants one by one are the batch's float rounding.

No torch at import (the CLI reads `TTA_MODES` for its choices).
"""

from __future__ import annotations

from typing import Sequence

from vsrdata.errors import ConfigError

__all__ = ["TTA_MODES", "TTAEngine", "variants", "with_tta"]

#: --tta choices (one list; the CLI imports it).
TTA_MODES = ("none", "flip4", "x8")

# A variant: (transpose H<->W first, dims to flip afterwards), dims counted from the end
# (-1 = W, -2 = H) so the same variant applies to (N, T, C, H, W) inputs and (N, C, H, W) outputs.
Variant = tuple[bool, tuple[int, ...]]
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def variants(mode: str) -> list[Variant]:
    """The variants of `mode` in order: flip4 = as is, W, H, HW; x8 adds the transposed four."""
    if mode not in TTA_MODES:
        raise ConfigError(f"unknown --tta {mode!r} (choose from {', '.join(TTA_MODES)})")
    if mode == "none":
        return [(False, ())]
    out = [(False, f) for f in _FLIPS]
    if mode == "x8":
        out += [(True, f) for f in _FLIPS]
    return out


def apply_variant(x, variant: Variant):
    """The variant's input: transpose the last two dims (if asked), then flip `dims`."""
    transpose, dims = variant
    if transpose:
        x = x.transpose(-2, -1)
    return x.flip(dims) if dims else x


def undo_variant(y, variant: Variant):
    """Inverse of `apply_variant` on an output: flip back, then transpose back."""
    transpose, dims = variant
    if dims:
        y = y.flip(dims)
    return y.transpose(-2, -1) if transpose else y


class TTAEngine:
    """An engine that returns the ensemble mean of another engine's outputs (module docstring).

    Carries the wrapped engine's `config`, `device` and `name`; `inner` is the wrapped engine and
    `mode` the ensemble. ConfigError when the engine cannot take a batch (`batchable` False).
    """

    def __init__(self, engine, mode: str) -> None:
        self.variants = variants(mode)
        if not getattr(engine, "batchable", True):
            raise ConfigError(f"--tta {mode} runs the variants as one batch, but {engine.name} has a fixed "
                              "batch size; re-export it with `vsrdata export` (dynamic batch) or use --tta none")
        self.inner, self.mode = engine, mode
        self.config, self.device, self.name = engine.config, engine.device, engine.name
        self.batch = True  # turned off after a CUDA out-of-memory error

    def _groups(self, x) -> list[list[Variant]]:
        if not self.batch:
            return [[v] for v in self.variants]
        if x.shape[-1] == x.shape[-2]:
            return [self.variants]
        plain = [v for v in self.variants if not v[0]]
        transposed = [v for v in self.variants if v[0]]
        return [g for g in (plain, transposed) if g]

    def _run(self, x, group: Sequence[Variant]) -> list:
        import torch

        n = x.shape[0]
        y = self.inner(torch.cat([apply_variant(x, v) for v in group]))
        return [undo_variant(y[i * n:(i + 1) * n], v) for i, v in enumerate(group)]

    def __call__(self, x):
        import torch

        if len(self.variants) == 1:
            return self.inner(x)
        try:
            outs = [y for group in self._groups(x) for y in self._run(x, group)]
        except torch.cuda.OutOfMemoryError:
            if not self.batch:
                raise
            self.batch = False
            torch.cuda.empty_cache()
            outs = [y for group in self._groups(x) for y in self._run(x, group)]
        total = outs[0].clone()
        for y in outs[1:]:
            total += y
        return total / len(outs)


def with_tta(engine, mode: str | None):
    """`engine` itself for mode None / 'none' (after checking the name), else a TTAEngine."""
    if mode is None or mode == "none":
        return engine
    return TTAEngine(engine, mode)
