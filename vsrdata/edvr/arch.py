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

from vsrdata.edvr.config import EDVRConfig, get_preset
from vsrdata.edvr.dcn import BACKENDS, DCNv2Pack
from vsrdata.errors import ConfigError

__all__ = ["EDVR", "EDVRInputError", "PCDAlignment", "TSAFusion", "PredeblurModule",
           "ResidualBlockNoBN", "build_edvr"]

_SLOPE = 0.1  # every LeakyReLU in EDVR has slope 0.1


class EDVRInputError(ConfigError, ValueError):
    """The input tensor does not fit the model (frames, channels, size multiple)."""


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.1) in place (as BasicSR's EDVR): every call gets a fresh tensor that nothing else
    holds (a conv, DCN or pixel-shuffle output; autograd needs none of them), so no activation
    allocates a second feature map."""
    return F.leaky_relu(x, _SLOPE, inplace=True)


def _add_to_fresh(fresh: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """fresh + other, in place when that keeps the result's dtype (fresh is a conv output nothing
    else holds). Under autocast a bf16 conv output plus a float32 tensor stays a new float32 sum,
    as `other + fresh` gives; addition commutes, so values are the same either way."""
    if fresh.dtype == torch.result_type(fresh, other):
        return fresh.add_(other)
    return fresh + other


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResidualBlockNoBN(nn.Module):
    """x + conv2(relu(conv1(x))), no batch norm (BasicSR `ResidualBlockNoBN`, res_scale 1).

    Init as BasicSR/EDVR-old: Kaiming-normal weights scaled by 0.1, zero biases, so a fresh block
    is close to the identity.
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(0.1)
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _add_to_fresh(self.conv2(F.relu(self.conv1(x), inplace=True)), x)


def _blocks(n: int, num_feat: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(n)))


class PredeblurModule(nn.Module):
    """Pre-deblurring pyramid (docs/CONVENTIONS.md#architecture). Output has num_feat channels at the input
    size, or at 1/4 of it when hr_in (two extra stride-2 convs)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, hr_in: bool = False) -> None:
        super().__init__()
        self.hr_in = hr_in
        # BasicSR builds this with its default num_in_ch=3; we pass the model's (3 for every preset).
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        if hr_in:
            self.stride_conv_hr1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
            self.stride_conv_hr2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.stride_conv_l2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.stride_conv_l3 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.resblock_l3 = ResidualBlockNoBN(num_feat)
        self.resblock_l2_1 = ResidualBlockNoBN(num_feat)
        self.resblock_l2_2 = ResidualBlockNoBN(num_feat)
        self.resblock_l1 = nn.ModuleList(ResidualBlockNoBN(num_feat) for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat_l1 = _lrelu(self.conv_first(x))
        if self.hr_in:
            feat_l1 = _lrelu(self.stride_conv_hr1(feat_l1))
            feat_l1 = _lrelu(self.stride_conv_hr2(feat_l1))
        feat_l2 = _lrelu(self.stride_conv_l2(feat_l1))
        feat_l3 = _lrelu(self.stride_conv_l3(feat_l2))
        feat_l3 = _up2(self.resblock_l3(feat_l3))
        feat_l2 = self.resblock_l2_1(feat_l2) + feat_l3
        feat_l2 = _up2(self.resblock_l2_2(feat_l2))
        for block in self.resblock_l1[:2]:
            feat_l1 = block(feat_l1)
        feat_l1 = feat_l1 + feat_l2
        for block in self.resblock_l1[2:]:
            feat_l1 = block(feat_l1)
        return feat_l1


class PCDAlignment(nn.Module):
    """Pyramid, cascading and deformable alignment (docs/CONVENTIONS.md#architecture).

    forward(nbr_feat_l, ref_feat_l): lists [L1, L2, L3] of (n, C, h, w), (n, C, h/2, w/2),
    (n, C, h/4, w/4) features of the frames to align and of the reference frame. Returns the
    aligned L1 features (n, C, h, w).
    """

    def __init__(self, num_feat: int = 64, deformable_groups: int = 8, dcn_backend: str | None = None) -> None:
        super().__init__()
        # Creation order fixes the state_dict order: offset_conv1.{l3,l2,l1}, offset_conv2.*, ...
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for i in (3, 2, 1):
            level = f"l{i}"
            self.offset_conv1[level] = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
            if i == 3:
                self.offset_conv2[level] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            else:
                self.offset_conv2[level] = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
                self.offset_conv3[level] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.dcn_pack[level] = DCNv2Pack(num_feat, num_feat, 3, padding=1,
                                             deformable_groups=deformable_groups, backend=dcn_backend)
            if i < 3:
                self.feat_conv[level] = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
        self.cas_offset_conv1 = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.cas_dcnpack = DCNv2Pack(num_feat, num_feat, 3, padding=1,
                                     deformable_groups=deformable_groups, backend=dcn_backend)

    def forward(self, nbr_feat_l: list[torch.Tensor], ref_feat_l: list[torch.Tensor]) -> torch.Tensor:
        up_offset = up_feat = None
        feat = None
        for i in (3, 2, 1):
            level = f"l{i}"
            offset = _lrelu(self.offset_conv1[level](torch.cat((nbr_feat_l[i - 1], ref_feat_l[i - 1]), 1)))
            if i == 3:
                offset = _lrelu(self.offset_conv2[level](offset))
            else:
                offset = _lrelu(self.offset_conv2[level](torch.cat((offset, up_offset), 1)))
                offset = _lrelu(self.offset_conv3[level](offset))
            feat = self.dcn_pack[level](nbr_feat_l[i - 1], offset)
            if i < 3:
                feat = self.feat_conv[level](torch.cat((feat, up_feat), 1))
            if i > 1:  # no activation after the L1 feat_conv
                feat = _lrelu(feat)
                # Offsets are in pixels: doubling the resolution doubles them.
                up_offset = _up2(offset) * 2
                up_feat = _up2(feat)
        offset = torch.cat((feat, ref_feat_l[0]), 1)
        offset = _lrelu(self.cas_offset_conv2(_lrelu(self.cas_offset_conv1(offset))))
        return _lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    """Temporal and spatial attention fusion (docs/CONVENTIONS.md#architecture).

    forward(aligned_feat (b, t, C, h, w)) -> (b, C, h, w); h and w must be multiples of 4.
    """

    def __init__(self, num_feat: int = 64, num_frame: int = 5, center_frame_idx: int = 2) -> None:
        super().__init__()
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)  # embeds the reference frame
        self.temporal_attn2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)  # embeds every frame
        self.feat_fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        self.spatial_attn1 = nn.Conv2d(num_frame * num_feat, num_feat, 1)
        self.spatial_attn2 = nn.Conv2d(num_feat * 2, num_feat, 1)
        self.spatial_attn3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(num_feat, num_feat, 1)
        self.spatial_attn5 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(num_feat, num_feat, 1)
        self.spatial_attn_l2 = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(num_feat, num_feat, 1)
        self.spatial_attn_add2 = nn.Conv2d(num_feat, num_feat, 1)

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        # max and average pooling, kernel 3, stride 2, padding 1 (avg counts the padding).
        return torch.cat((F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)), 1)

    def forward(self, aligned_feat: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = aligned_feat.shape
        # Temporal attention: sigmoid of the per-pixel dot product with the reference embedding
        # (no softmax; the reference frame itself is included).
        emb_ref = self.temporal_attn1(aligned_feat[:, self.center_frame_idx])
        emb = self.temporal_attn2(aligned_feat.reshape(b * t, c, h, w)).view(b, t, -1, h, w)
        corr_prob = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(2, keepdim=True))  # (b, t, 1, h, w)
        aligned_feat = (aligned_feat * corr_prob).reshape(b, t * c, h, w)

        feat = _lrelu(self.feat_fusion(aligned_feat))

        # Spatial attention on two pyramid levels.
        attn = _lrelu(self.spatial_attn1(aligned_feat))
        attn = _lrelu(self.spatial_attn2(self._pool(attn)))
        attn_level = _lrelu(self.spatial_attn_l1(attn))
        attn_level = _lrelu(self.spatial_attn_l2(self._pool(attn_level)))
        attn_level = _up2(_lrelu(self.spatial_attn_l3(attn_level)))
        attn = _lrelu(self.spatial_attn3(attn)) + attn_level
        attn = _lrelu(self.spatial_attn4(attn))
        attn = self.spatial_attn5(_up2(attn))
        attn_add = self.spatial_attn_add2(_lrelu(self.spatial_attn_add1(attn)))
        # The factor 2 makes the attention about 1 at init (sigmoid(0) = 0.5).
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVR(nn.Module):
    """EDVR network with BasicSR parameter names.

    Constructor arguments are the `EDVRConfig` fields (see there), plus `dcn_backend`
    ('torch', 'torchvision' or None = automatic, see `vsrdata.edvr.dcn.resolve_backend`).

    forward(x): x is (b, t, C, h, w), RGB float in [0, 1], t = num_frame, h and w multiples of
    4 (16 with hr_in). Returns (b, C, 4h, 4w), or (b, C, h, w) with hr_in. The output is the
    network's residual plus the bilinearly x4-upsampled centre frame (the centre frame itself
    with hr_in); it is not clamped.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_frame: int = 5,
                 deformable_groups: int = 8, num_extract_block: int = 5, num_reconstruct_block: int = 10,
                 center_frame_idx: int | None = None, hr_in: bool = False, with_predeblur: bool = False,
                 with_tsa: bool = True, *, dcn_backend: str | None = None) -> None:
        super().__init__()
        cfg = EDVRConfig(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                         num_frame=num_frame, deformable_groups=deformable_groups,
                         num_extract_block=num_extract_block, num_reconstruct_block=num_reconstruct_block,
                         center_frame_idx=center_frame_idx, hr_in=hr_in, with_predeblur=with_predeblur,
                         with_tsa=with_tsa)
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
        self.feature_extraction = _blocks(num_extract_block, num_feat)
        self.conv_l2_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.pcd_align = PCDAlignment(num_feat, deformable_groups, dcn_backend=dcn_backend)
        if with_tsa:
            self.fusion = TSAFusion(num_feat, num_frame, self.center_frame_idx)
        else:
            self.fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        self.reconstruction = _blocks(num_reconstruct_block, num_feat)
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)  # fixed 256: the tail has 64 channels
        self.pixel_shuffle = nn.PixelShuffle(2)
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
            if self.hr_in:
                h, w = h // 4, w // 4
        else:
            feat_l1 = _lrelu(self.conv_first(x.reshape(b * t, c, h, w)))
        feat_l1 = self.feature_extraction(feat_l1)
        feat_l2 = _lrelu(self.conv_l2_2(_lrelu(self.conv_l2_1(feat_l1))))
        feat_l3 = _lrelu(self.conv_l3_2(_lrelu(self.conv_l3_1(feat_l2))))

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
        out = _lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = _lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = _lrelu(self.conv_hr(out))
        out = self.conv_last(out)
        if self.hr_in:
            base = x_center
        else:
            base = F.interpolate(x_center, scale_factor=4, mode="bilinear", align_corners=False)
        return _add_to_fresh(out, base)


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
