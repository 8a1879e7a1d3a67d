"""EDVR (Wang et al., CVPR-W 2019): PCD alignment, TSA fusion, predeblur, reconstruction.

Our own code following docs/CONVENTIONS.md#architecture (a description of BasicSR's `basicsr/archs/edvr_arch.py`).
Module and parameter names are BasicSR's, so `state_dict()` keys, their order and shapes equal the
official checkpoints' (tested against fixtures/edvr/statedict_*.json); the original EDVR and
mmagic names are mapped in `vsrdata.edvr.checkpoint`.

Details that are easy to get wrong (docs/CONVENTIONS.md#architecture): upconv2 always has 256 outputs, so the tail
(conv_hr, conv_last) works on 64 channels whatever num_feat is; upsampled offsets are multiplied
by 2; there is no activation after the L1 feat_conv, after the woTSA 1x1 fusion, or after
predeblur / conv_1x1; TSA's output is feat * sigmoid(attn) * 2 + attn_add.

One deliberate difference from BasicSR: the PCD module aligns all t frames in one batched call
(frames folded into the batch) instead of a Python loop over frames. Convolutions are per-sample,
so the result is the same; it is faster on CPU and GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrdata.edvr.blocks import (PCDAlignment, PredeblurModule, ResidualBlockNoBN, TSAFusion, add_to_fresh, lrelu,
                                 make_blocks, up2)
from vsrdata.edvr.config import EDVRConfig, get_preset
from vsrdata.edvr.dcn import BACKENDS, DCNv2Pack
from vsrdata.errors import ConfigError

__all__ = ["EDVR", "EDVRInputError", "PCDAlignment", "TSAFusion", "PredeblurModule",
           "ResidualBlockNoBN", "build_edvr"]

class EDVRInputError(ConfigError, ValueError):
    """The input tensor does not fit the model (frames, channels, size multiple)."""


class EDVR(nn.Module):
    """EDVR network with BasicSR parameter names.

    Constructor arguments are the `EDVRConfig` fields (see there), plus `dcn_backend`
    ('torch', 'torchvision' or None = automatic, see `vsrdata.edvr.dcn.resolve_backend`).

    forward(x): x is (b, t, C, h, w), RGB float in [0, 1], t = num_frame, h and w multiples of
    4 (16 with hr_in). Returns (b, C, s*h, s*w) with s = config.scale (4, 3 or 2; 1 with hr_in).
    The output is the network's residual plus the bilinearly x s-upsampled centre frame (the
    centre frame itself with hr_in); it is not clamped. hr_in without predeblur is the original
    EDVR's stage-2 front (docs/CONVENTIONS.md#stage-2): conv_first then two stride-2 convs.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_frame: int = 5,
                 deformable_groups: int = 8, num_extract_block: int = 5, num_reconstruct_block: int = 10,
                 center_frame_idx: int | None = None, hr_in: bool = False, with_predeblur: bool = False,
                 with_tsa: bool = True, scale: int | None = None, *, dcn_backend: str | None = None) -> None:
        super().__init__()
        cfg = EDVRConfig(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                         num_frame=num_frame, deformable_groups=deformable_groups,
                         num_extract_block=num_extract_block, num_reconstruct_block=num_reconstruct_block,
                         center_frame_idx=center_frame_idx, hr_in=hr_in, with_predeblur=with_predeblur,
                         with_tsa=with_tsa, scale=scale)
        if dcn_backend is not None and dcn_backend != "auto" and dcn_backend not in BACKENDS:
            raise ConfigError(f"unknown DCN backend {dcn_backend!r} (choose from: {', '.join(BACKENDS)}, auto)")
        self.config = cfg
        self.center_frame_idx = cfg.center
        self.hr_in = hr_in
        self.with_predeblur = with_predeblur
        self.with_tsa = with_tsa

        # Attribute creation order = state_dict order (matches the official checkpoints).
        if with_predeblur:
            self.predeblur = PredeblurModule(num_in_ch, num_feat, hr_in=hr_in)
            self.conv_1x1 = nn.Conv2d(num_feat, num_feat, 1, 1)
        else:
            self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
            if hr_in:  # stage-2 style (original EDVR conv_first_2/3): two stride-2 convs, 1/4 size
                self.stride_conv_hr1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
                self.stride_conv_hr2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.feature_extraction = make_blocks(num_extract_block, num_feat)
        self.conv_l2_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.pcd_align = PCDAlignment(num_feat, deformable_groups, dcn_backend=dcn_backend)
        if with_tsa:
            self.fusion = TSAFusion(num_feat, num_frame, self.center_frame_idx)
        else:
            self.fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        self.reconstruction = make_blocks(num_reconstruct_block, num_feat)
        # x4 and hr_in (features at 1/4): two pixel-shuffles x2; x2 / x3: one pixel-shuffle x2 / x3
        # straight to the 64-channel tail (docs/CONVENTIONS.md#scales).
        shuffle = 2 if cfg.scale in (1, 4) else cfg.scale
        if shuffle == 2 and cfg.scale != 2:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)  # fixed 256: the tail has 64 channels
        else:
            self.upconv1 = nn.Conv2d(num_feat, 64 * shuffle * shuffle, 3, 1, 1)
            self.upconv2 = None
        self.pixel_shuffle = nn.PixelShuffle(shuffle)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, num_out_ch, 3, 1, 1)

    # -- DCN helpers used by the trainer ---------------------------------------------------
    def dcn_modules(self) -> dict[str, DCNv2Pack]:
        """{qualified name: DCNv2Pack} for every DCN in the model."""
        return {name: m for name, m in self.named_modules() if isinstance(m, DCNv2Pack)}

    def set_dcn_backend(self, backend: str | None) -> None:
        """Switch every DCN to `backend` ('torch', 'torchvision', None/'auto')."""
        if backend is not None and backend != "auto" and backend not in BACKENDS:
            raise ConfigError(f"unknown DCN backend {backend!r} (choose from: {', '.join(BACKENDS)}, auto)")
        for m in self.dcn_modules().values():
            m.backend = backend

    def set_offset_monitor(self, on: bool) -> None:
        """Turn mean |offset| recording on or off in every DCN (off by default)."""
        for m in self.dcn_modules().values():
            m.monitor_offsets = bool(on)
            if not on:
                m.last_offset_mean = None

    def offset_stats(self) -> dict[str, torch.Tensor]:
        """{DCN name: mean |offset|} from the last forward (detached 0-dim tensors on the model's
        device); empty when monitoring is off or no forward has run since it was turned on."""
        return {name: m.last_offset_mean for name, m in self.dcn_modules().items()
                if m.last_offset_mean is not None}

    # -- forward ---------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise EDVRInputError (a ConfigError and ValueError) naming the constraint x violates."""
        cfg = self.config
        if x.dim() != 5:
            raise EDVRInputError(f"EDVR input must be (batch, frames, channels, height, width), "
                                 f"got shape {tuple(x.shape)}")
        _, t, c, h, w = x.shape
        if t != cfg.num_frame:
            raise EDVRInputError(f"EDVR input has {t} frames but the model takes num_frame={cfg.num_frame}")
        if c != cfg.num_in_ch:
            raise EDVRInputError(f"EDVR input has {c} channels but the model takes num_in_ch={cfg.num_in_ch}")
        m = cfg.size_multiple
        if h % m or w % m:
            why = " (hr_in)" if cfg.hr_in else ""
            raise EDVRInputError(f"EDVR input height and width must be multiples of {m}{why}, got "
                                 f"{h}x{w}; pad to {-(-h // m) * m}x{-(-w // m) * m}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, t, c, h, w = x.shape
        center = self.center_frame_idx
        x_center = x[:, center]

        # Per-frame features, three pyramid levels.
        if self.with_predeblur:
            feat_l1 = self.conv_1x1(self.predeblur(x.reshape(b * t, c, h, w)))
        else:
            feat_l1 = lrelu(self.conv_first(x.reshape(b * t, c, h, w)))
            if self.hr_in:
                feat_l1 = lrelu(self.stride_conv_hr2(lrelu(self.stride_conv_hr1(feat_l1))))
        if self.hr_in:
            h, w = h // 4, w // 4
        feat_l1 = self.feature_extraction(feat_l1)
        feat_l2 = lrelu(self.conv_l2_2(lrelu(self.conv_l2_1(feat_l1))))
        feat_l3 = lrelu(self.conv_l3_2(lrelu(self.conv_l3_1(feat_l2))))

        # PCD: align every frame (the reference included) to the reference, all frames at once.
        feats = [f.view(b, t, *f.shape[1:]) for f in (feat_l1, feat_l2, feat_l3)]
        nbr = [f.reshape(b * t, *f.shape[2:]) for f in feats]
        ref = [f[:, center:center + 1].expand_as(f).reshape(b * t, *f.shape[2:]) for f in feats]
        aligned = self.pcd_align(nbr, ref).view(b, t, -1, h, w)

        if self.with_tsa:
            feat = self.fusion(aligned)
        else:
            feat = self.fusion(aligned.reshape(b, -1, h, w))  # 1x1 conv, no activation

        out = self.reconstruction(feat)
        out = lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = lrelu(self.conv_hr(out))
        out = self.conv_last(out)
        if self.hr_in:
            base = x_center
        else:
            base = F.interpolate(x_center, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        return add_to_fresh(out, base)


def build_edvr(preset_or_cfg: str | EDVRConfig | dict = "edvr-m", dcn_backend: str | None = None,
               **overrides) -> EDVR:
    """Build an EDVR from a preset name, an EDVRConfig or a dict of its fields, with overrides.

    Example::

        >>> from vsrdata import build_edvr
        >>> model = build_edvr("edvr-tiny", num_frame=3)  # (b, 3, 3, h, w) in -> (b, 3, 4h, 4w) out
    """
    if isinstance(preset_or_cfg, str):
        cfg = get_preset(preset_or_cfg, **overrides)
    elif isinstance(preset_or_cfg, EDVRConfig):
        cfg = EDVRConfig.from_dict({**preset_or_cfg.to_dict(), **overrides})
    elif isinstance(preset_or_cfg, dict):
        cfg = EDVRConfig.from_dict({**preset_or_cfg, **overrides})
    else:
        raise ConfigError(f"expected a preset name, EDVRConfig or dict, got {type(preset_or_cfg).__name__}")
    return EDVR(**cfg.to_dict(), dcn_backend=dcn_backend)
