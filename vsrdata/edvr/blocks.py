"""EDVR's building blocks: residual block, predeblur pyramid, PCD alignment, TSA fusion.

Our own code following docs/CONVENTIONS.md#architecture (a description of BasicSR's
`basicsr/archs/edvr_arch.py`); module and parameter names are BasicSR's. The network that
assembles them is `vsrdata.edvr.arch.EDVR`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrdata.edvr.dcn import DCNv2Pack

__all__ = ["PCDAlignment", "PredeblurModule", "ResidualBlockNoBN", "TSAFusion", "lrelu", "add_to_fresh", "up2",
           "make_blocks"]

_SLOPE = 0.1  # every LeakyReLU in EDVR has slope 0.1


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.1) in place (as BasicSR's EDVR): every call gets a fresh tensor that nothing else
    holds (a conv, DCN or pixel-shuffle output; autograd needs none of them), so no activation
    allocates a second feature map."""
    return F.leaky_relu(x, _SLOPE, inplace=True)


def add_to_fresh(fresh: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """fresh + other, in place when that keeps the result's dtype (fresh is a conv output nothing
    else holds). Under autocast a bf16 conv output plus a float32 tensor stays a new float32 sum,
    as `other + fresh` gives; addition commutes, so values are the same either way."""
    if fresh.dtype == torch.result_type(fresh, other):
        return fresh.add_(other)
    return fresh + other


def up2(x: torch.Tensor) -> torch.Tensor:
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
        return add_to_fresh(self.conv2(F.relu(self.conv1(x), inplace=True)), x)


def make_blocks(n: int, num_feat: int) -> nn.Sequential:
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
        feat_l1 = lrelu(self.conv_first(x))
        if self.hr_in:
            feat_l1 = lrelu(self.stride_conv_hr1(feat_l1))
            feat_l1 = lrelu(self.stride_conv_hr2(feat_l1))
        feat_l2 = lrelu(self.stride_conv_l2(feat_l1))
        feat_l3 = lrelu(self.stride_conv_l3(feat_l2))
        feat_l3 = up2(self.resblock_l3(feat_l3))
        feat_l2 = self.resblock_l2_1(feat_l2) + feat_l3
        feat_l2 = up2(self.resblock_l2_2(feat_l2))
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
            offset = lrelu(self.offset_conv1[level](torch.cat((nbr_feat_l[i - 1], ref_feat_l[i - 1]), 1)))
            if i == 3:
                offset = lrelu(self.offset_conv2[level](offset))
            else:
                offset = lrelu(self.offset_conv2[level](torch.cat((offset, up_offset), 1)))
                offset = lrelu(self.offset_conv3[level](offset))
            feat = self.dcn_pack[level](nbr_feat_l[i - 1], offset)
            if i < 3:
                feat = self.feat_conv[level](torch.cat((feat, up_feat), 1))
            if i > 1:  # no activation after the L1 feat_conv
                feat = lrelu(feat)
                # Offsets are in pixels: doubling the resolution doubles them.
                up_offset = up2(offset) * 2
                up_feat = up2(feat)
        offset = torch.cat((feat, ref_feat_l[0]), 1)
        offset = lrelu(self.cas_offset_conv2(lrelu(self.cas_offset_conv1(offset))))
        return lrelu(self.cas_dcnpack(feat, offset))


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

        feat = lrelu(self.feat_fusion(aligned_feat))

        # Spatial attention on two pyramid levels.
        attn = lrelu(self.spatial_attn1(aligned_feat))
        attn = lrelu(self.spatial_attn2(self._pool(attn)))
        attn_level = lrelu(self.spatial_attn_l1(attn))
        attn_level = lrelu(self.spatial_attn_l2(self._pool(attn_level)))
        attn_level = up2(lrelu(self.spatial_attn_l3(attn_level)))
        attn = lrelu(self.spatial_attn3(attn)) + attn_level
        attn = lrelu(self.spatial_attn4(attn))
        attn = self.spatial_attn5(up2(attn))
        attn_add = self.spatial_attn_add2(lrelu(self.spatial_attn_add1(attn)))
        # The factor 2 makes the attention about 1 at init (sigmoid(0) = 0.5).
        return feat * torch.sigmoid(attn) * 2 + attn_add
