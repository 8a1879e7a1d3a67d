"""Parameter names: small pure functions mapping every checkpoint family to BasicSR names, and
`bare_model` (the one model unwrapper: DataParallel/DDP `.module`, torch.compile `._orig_mod`).

Rules follow docs/CONVENTIONS.md#checkpoints; tested against fixtures/edvr/keymap_*.json.
"""

from __future__ import annotations

import re
from typing import Any

import torch

_PREFIXES = ("module.", "_orig_mod.")

# Key renaming: small pure functions (docs/CONVENTIONS.md#checkpoints; tested against fixtures/edvr/keymap_*.json)
# ---------------------------------------------------------------------------------------------
_ORIGINAL_RULES: list[tuple[re.Pattern, Any]] = [
    # predeblur module
    (re.compile(r"^pre_deblur\."), "predeblur."),
    (re.compile(r"^predeblur\.conv_first_1\."), "predeblur.conv_first."),
    (re.compile(r"^predeblur\.conv_first_2\."), "predeblur.stride_conv_hr1."),
    (re.compile(r"^predeblur\.conv_first_3\."), "predeblur.stride_conv_hr2."),
    (re.compile(r"^predeblur\.deblur_L([23])_conv\."), r"predeblur.stride_conv_l\1."),
    (re.compile(r"^predeblur\.RB_L3_1\."), "predeblur.resblock_l3."),
    (re.compile(r"^predeblur\.RB_L2_([12])\."), r"predeblur.resblock_l2_\1."),
    (re.compile(r"^predeblur\.RB_L1_(\d+)\."), lambda m: f"predeblur.resblock_l1.{int(m.group(1)) - 1}."),
    # stage-2 front without predeblur (hr_in): conv_first_1/2/3 (docs/CONVENTIONS.md#stage-2)
    (re.compile(r"^conv_first_1\."), "conv_first."),
    (re.compile(r"^conv_first_([23])\."), lambda m: f"stride_conv_hr{int(m.group(1)) - 1}."),
    # feature pyramid
    (re.compile(r"^fea_L([23])_conv([12])\."), r"conv_l\1_\2."),
    # PCD alignment
    (re.compile(r"^pcd_align\.L([123])_offset_conv([123])\."), r"pcd_align.offset_conv\2.l\1."),
    (re.compile(r"^pcd_align\.L([123])_dcnpack\."), r"pcd_align.dcn_pack.l\1."),
    (re.compile(r"^pcd_align\.L([123])_fea_conv\."), r"pcd_align.feat_conv.l\1."),
    (re.compile(r"\.conv_offset_mask\."), ".conv_offset."),
    # TSA fusion (or the woTSA 1x1 fusion conv, tsa_fusion.weight/bias)
    (re.compile(r"^tsa_fusion\."), "fusion."),
    (re.compile(r"^fusion\.fea_fusion\."), "fusion.feat_fusion."),
    (re.compile(r"^fusion\.sAtt_L(\d)\."), r"fusion.spatial_attn_l\1."),
    (re.compile(r"^fusion\.sAtt_add_(\d)\."), r"fusion.spatial_attn_add\1."),
    (re.compile(r"^fusion\.sAtt_(\d)\."), r"fusion.spatial_attn\1."),
    # The silent trap: in EDVR-old tAtt_2 embeds the reference frame and tAtt_1 every frame;
    # BasicSR calls them temporal_attn1 (reference) and temporal_attn2. Same shapes, swapped names.
    (re.compile(r"^fusion\.tAtt_([12])\."), lambda m: f"fusion.temporal_attn{3 - int(m.group(1))}."),
    # reconstruction and upsampling tail
    (re.compile(r"^recon_trunk\."), "reconstruction."),
    (re.compile(r"^HRconv\."), "conv_hr."),
]

_MMAGIC_RULES: list[tuple[re.Pattern, Any]] = [
    (re.compile(r"^generator(_ema)?\."), ""),
    (re.compile(r"\.conv\."), "."),  # ConvModule wrappers
    (re.compile(r"^pcd_alignment\."), "pcd_align."),
    (re.compile(r"^feat_l([23])_conv([12])\."), r"conv_l\1_\2."),
    (re.compile(r"^upsample([12])\.upsample_conv\."), r"upconv\1."),
]


def _apply(rules, key: str) -> str:
    for pattern, repl in rules:
        key = pattern.sub(repl, key)
    return key


def rename_original_key(key: str) -> str:
    """Original EDVR (xinntao/EDVR old_version) parameter name -> BasicSR name."""
    return _apply(_ORIGINAL_RULES, key)


def rename_mmagic_key(key: str) -> str:
    """mmagic EDVRNet name (with or without 'generator.') -> BasicSR name."""
    return _apply(_MMAGIC_RULES, key)


def strip_prefixes(key: str) -> str:
    """Remove leading 'module.' (DataParallel/DDP) and '_orig_mod.' (torch.compile) prefixes."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


_ORIGINAL_MARKERS = re.compile(r"^(tsa_fusion\.|recon_trunk\.|pre_deblur\.|HRconv\.|fea_L[23]_conv|conv_first_[123]\.)"
                               r"|^pcd_align\.L[123]_|\.conv_offset_mask\.")
_MMAGIC_MARKERS = re.compile(r"^pcd_alignment\.|^upsample[12]\.upsample_conv\.|^feat_l[23]_conv|\.conv\.(weight|bias)$")


def detect_key_style(keys) -> str:
    """'edvr-original', 'mmagic' or 'basicsr' from parameter names (prefixes already stripped)."""
    keys = list(keys)
    if any(_ORIGINAL_MARKERS.search(k) for k in keys):
        return "edvr-original"
    if any(_MMAGIC_MARKERS.search(k) for k in keys):
        return "mmagic"
    return "basicsr"



def bare_model(model: torch.nn.Module) -> torch.nn.Module:
    """Unwrap DataParallel/DDP (.module) and torch.compile (._orig_mod)."""
    while True:
        if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model

