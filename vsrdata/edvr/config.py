"""EDVR model configuration: one dataclass and the official presets.

Field names and defaults are BasicSR's `EDVR(...)` constructor arguments (docs/CONVENTIONS.md#architecture), so a
BasicSR `network_g` block maps onto `EDVRConfig(**kwargs)` directly. The presets reproduce the
six official checkpoints (docs/CONVENTIONS.md#architecture; key lists and parameter counts in
fixtures/edvr/statedict_index.json) plus a tiny non-official model for tests and demos.

This module imports only the standard library and `vsrdata.errors` (no torch), so it is cheap to
import from the CLI.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, Iterable

from vsrdata.errors import ConfigError

#: Upscaling factors of the non-hr_in models (docs/CONVENTIONS.md#scales).
SCALES = (2, 3, 4)


@dataclass
class EDVRConfig:
    """EDVR hyper-parameters (BasicSR names; docs/CONVENTIONS.md#architecture).

    - num_in_ch / num_out_ch: image channels (3). The output adds the (upsampled) centre input
      frame, so both must be equal. BasicSR ignores num_out_ch and always outputs 3 channels;
      with the default 3 the two agree.
    - num_feat: feature channels C (64 for M, 128 for L).
    - num_frame: input frames t (5; 7 for the Vimeo90K model).
    - deformable_groups: DCN offset groups (8); must divide num_feat.
    - num_extract_block / num_reconstruct_block: residual blocks before PCD / after fusion.
    - center_frame_idx: reference frame; None means num_frame // 2.
    - hr_in: input already at output resolution (deblur and stage-2 models): output size =
      input size, input sides must be multiples of 16. With predeblur the predeblur module
      downsamples (BasicSR); without it conv_first and two stride-2 convs do (the original EDVR's
      stage-2 front, docs/CONVENTIONS.md#stage-2).
    - with_predeblur: PredeblurModule + 1x1 conv instead of conv_first.
    - with_tsa: TSA fusion; False gives the 1x1 fusion conv of the woTSA models.
    - scale: output / input size, 2, 3 or 4 (default 4; docs/CONVENTIONS.md#scales); 1 with
      hr_in (None means that default). x4 keeps the official layout (two pixel-shuffles x2);
      x2 and x3 use one pixel-shuffle x2 / x3 (no upconv2).
    """

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_frame: int = 5
    deformable_groups: int = 8
    num_extract_block: int = 5
    num_reconstruct_block: int = 10
    center_frame_idx: int | None = None
    hr_in: bool = False
    with_predeblur: bool = False
    with_tsa: bool = True
    scale: int | None = None

    def __post_init__(self) -> None:
        if self.scale is None:
            self.scale = 1 if self.hr_in is True else 4
        self.validate()

    # -- derived values -------------------------------------------------------------------

    @property
    def center(self) -> int:
        """The reference frame index actually used (center_frame_idx or num_frame // 2)."""
        return self.num_frame // 2 if self.center_frame_idx is None else self.center_frame_idx

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (4, or 16 with hr_in)."""
        return 16 if self.hr_in else 4

    # -- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EDVRConfig":
        """Inverse of `to_dict`; unknown keys raise ConfigError naming them."""
        if not isinstance(data, dict):
            raise ConfigError(f"EDVR config must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown EDVR config field(s): {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(names))})")
        return cls(**data)

    # -- validation -----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError naming the first violated constraint."""
        for name in ("num_in_ch", "num_out_ch", "num_feat", "num_frame", "deformable_groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("num_extract_block", "num_reconstruct_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("hr_in", "with_predeblur", "with_tsa"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.num_feat % self.deformable_groups:
            raise ConfigError(f"deformable_groups ({self.deformable_groups}) must divide "
                              f"num_feat ({self.num_feat})")
        if self.num_out_ch != self.num_in_ch:
            raise ConfigError(f"num_out_ch ({self.num_out_ch}) must equal num_in_ch "
                              f"({self.num_in_ch}): EDVR adds the centre input frame to its output")
        want = (1,) if self.hr_in else SCALES
        if isinstance(self.scale, bool) or self.scale not in want:
            raise ConfigError(f"scale must be {' or '.join(map(str, want))}"
                              f"{' with hr_in=true' if self.hr_in else ''}, got {self.scale!r}")
        if self.center_frame_idx is not None:
            idx = self.center_frame_idx
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < self.num_frame:
                raise ConfigError(f"center_frame_idx must be in [0, {self.num_frame - 1}] "
                                  f"(num_frame={self.num_frame}), got {idx!r}")


# Official configurations (docs/CONVENTIONS.md#architecture, BasicSR options/test/EDVR/*.yml, docs/ModelZoo.md):
# M = 64 channels, 10 reconstruction blocks; L = 128 channels, 40 blocks; all N_e = 5, dg = 8.
_M = dict(num_feat=64, num_reconstruct_block=10)
_L = dict(num_feat=128, num_reconstruct_block=40)

PRESETS: dict[str, EDVRConfig] = {
    # EDVR_M_woTSA_x4_SR_REDS_official-1edf645c.pth / EDVR_REDS_SR_M_woTSA.pth
    "edvr-m-wotsa": EDVRConfig(**_M, with_tsa=False),
    # EDVR_M_x4_SR_REDS_official-32075921.pth / EDVR_REDS_SR_M.pth
    "edvr-m": EDVRConfig(**_M),
    # the woTSA stage of the L recipe (BasicSR train_EDVR_L_x4_SR_REDS_woTSA.yml; no released weights)
    "edvr-l-wotsa": EDVRConfig(**_L, with_tsa=False),
    # EDVR_L_x4_SR_REDS_official-9f5f5039.pth / EDVR_REDS_SR_L.pth
    "edvr-l": EDVRConfig(**_L),
    # EDVR_L_x4_SR_Vimeo90K_official-162b54e4.pth / EDVR_Vimeo90K_SR_L.pth (7 frames, centre 3)
    "edvr-l-vimeo": EDVRConfig(**_L, num_frame=7),
    # EDVR_L_x4_SRblur_REDS_official-983d7b8e.pth / EDVR_REDS_SRblur_L.pth
    "edvr-l-srblur": EDVRConfig(**_L, with_predeblur=True),
    # EDVR_L_deblur_REDS_official-ca46bd8c.pth and EDVR_L_deblurcomp_REDS_official-0e988e5c.pth
    # (same architecture): input at output size, scale 1.
    "edvr-l-deblur": EDVRConfig(**_L, with_predeblur=True, hr_in=True),
    # Stage 2 of the original EDVR's competition setup (docs/CONVENTIONS.md#stage-2): 128 channels,
    # 5 frames, 20 reconstruction blocks, input = the stage-1 output (hr_in), predeblur as the
    # track's stage 1. EDVR_REDS_{SR,SRblur,deblur,deblurcomp}_Stage2.pth (original format).
    "edvr-stage2-sr": EDVRConfig(num_feat=128, num_reconstruct_block=20, hr_in=True),
    "edvr-stage2-srblur": EDVRConfig(num_feat=128, num_reconstruct_block=20, hr_in=True, with_predeblur=True),
    "edvr-stage2-deblur": EDVRConfig(num_feat=128, num_reconstruct_block=20, hr_in=True, with_predeblur=True),
    "edvr-stage2-deblurcomp": EDVRConfig(num_feat=128, num_reconstruct_block=20, hr_in=True,
                                         with_predeblur=True),
    # Not official: a small model for tests and demos (runs in well under a second on CPU).
    "edvr-tiny": EDVRConfig(num_feat=16, deformable_groups=4, num_extract_block=1,
                            num_reconstruct_block=2, with_tsa=True),
}

OFFICIAL_PRESETS = ("edvr-m-wotsa", "edvr-m", "edvr-l", "edvr-l-vimeo", "edvr-l-srblur", "edvr-l-deblur")
#: The stage-2 presets (original EDVR weights only) and the stage-1 preset of each REDS track.
STAGE2_PRESETS = {"edvr-stage2-sr": "edvr-l", "edvr-stage2-srblur": "edvr-l-srblur",
                  "edvr-stage2-deblur": "edvr-l-deblur", "edvr-stage2-deblurcomp": "edvr-l-deblur"}


def preset_for(fields: dict[str, Any]) -> str:
    """The name of the preset that a set of EDVR fields (e.g. a BasicSR `network_g`) describes,
    or "custom" when none matches (then `get_preset("custom", **fields)` builds it)."""
    try:
        config = EDVRConfig(**fields)
    except TypeError as exc:
        raise ConfigError(f"invalid EDVR fields: {exc}") from None
    for name, preset in PRESETS.items():
        if dataclasses.replace(preset, center_frame_idx=preset.center) == \
                dataclasses.replace(config, center_frame_idx=config.center):
            return name
    return "custom"


def get_preset(name: str, **overrides: Any) -> EDVRConfig:
    """A fresh copy of preset `name`, with `overrides` applied (each checked by EDVRConfig).
    "custom" starts from the EDVRConfig defaults (BasicSR's), so the overrides say it all.

    Raises ConfigError for an unknown preset or field name.
    """
    try:
        base = EDVRConfig() if name == "custom" else PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown EDVR preset {name!r} (choose from: {', '.join(PRESETS)})") from None
    names = {f.name for f in dataclasses.fields(EDVRConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown EDVR config field(s): {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(names))})")
    if "hr_in" in overrides and "scale" not in overrides:
        overrides = {**overrides, "scale": None}  # the default scale of the new hr_in value
    return dataclasses.replace(base, **overrides)


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """EDVRConfig overrides from `KEY=VALUE` strings, each VALUE converted to the field's type.

    int fields take integers, bool fields `true`/`false`, `center_frame_idx` also `none`.
    Raises ConfigError naming the pair for an unknown field or a value of the wrong type.

    Example::

        >>> parse_overrides(["num_reconstruct_block=40", "with_tsa=false"])
        {'num_reconstruct_block': 40, 'with_tsa': False}
    """
    hints = typing.get_type_hints(EDVRConfig)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = (part.strip() for part in pair.partition("="))
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {pair!r}")
        if key not in hints:
            raise ConfigError(f"unknown EDVR config field {key!r} (known: {', '.join(sorted(hints))})")
        hint, low = hints[key], raw.lower()
        if hint is bool and low in ("true", "false"):
            out[key] = low == "true"
        elif low in ("none", "null") and type(None) in typing.get_args(hint):
            out[key] = None
        elif hint is not bool and re.fullmatch(r"[+-]?\d+", raw):
            out[key] = int(raw)
        else:
            kind = "true or false" if hint is bool else "an integer" + (" or none" if typing.get_args(hint) else "")
            raise ConfigError(f"{key}: expected {kind}, got {raw!r}")
    return out
