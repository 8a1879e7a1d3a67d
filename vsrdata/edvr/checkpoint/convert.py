"""Model configuration from weights (`infer_config`, `preset_name`) and `convert_checkpoint`:
any supported checkpoint -> BasicSR (`{'params'}`) or vsrdata (`{'params', 'config', 'format'}`)."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from vsrdata.edvr.checkpoint.io import save_atomic
from vsrdata.edvr.checkpoint.weights import VSRDATA_FORMAT, compare_state_dicts, read_checkpoint
from vsrdata.edvr.config import PRESETS, EDVRConfig, get_preset
from vsrdata.errors import CheckpointError, ConfigError, OutputError


def infer_config(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> EDVRConfig:
    """The EDVRConfig whose state dict has these keys and shapes (center_frame_idx stays None).

    Raises CheckpointError when the weights are not an EDVR's.
    """
    def shape(key: str) -> tuple:
        try:
            return tuple(state_dict[key].shape)
        except KeyError:
            raise CheckpointError(f"cannot infer the EDVR configuration of {source}: no {key!r} "
                                  "(is it an EDVR checkpoint? pass a preset)") from None

    with_predeblur = "predeblur.conv_first.weight" in state_dict
    hr_in = "predeblur.stride_conv_hr1.weight" in state_dict or "stride_conv_hr1.weight" in state_dict
    if hr_in:
        scale = 1
    elif "upconv2.weight" in state_dict:
        scale = 4
    else:  # x2 / x3: one pixel-shuffle straight to the 64-channel tail (docs/CONVENTIONS.md#scales)
        scale = round((shape("upconv1.weight")[0] / shape("conv_hr.weight")[1]) ** 0.5)
    with_tsa = "fusion.feat_fusion.weight" in state_dict
    first = shape("predeblur.conv_first.weight" if with_predeblur else "conv_first.weight")
    num_feat = shape("conv_l2_1.weight")[0]
    fusion_in = shape("fusion.feat_fusion.weight" if with_tsa else "fusion.weight")[1]
    offset = shape("pcd_align.dcn_pack.l1.conv_offset.weight")
    kernel = offset[2] * offset[3]

    def count(prefix: str) -> int:
        pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
        return len({m.group(1) for k in state_dict if (m := pat.match(k))})

    try:
        return EDVRConfig(num_in_ch=first[1], num_out_ch=shape("conv_last.weight")[0], num_feat=num_feat,
                          num_frame=fusion_in // num_feat, deformable_groups=offset[0] // (3 * kernel),
                          num_extract_block=count("feature_extraction"),
                          num_reconstruct_block=count("reconstruction"), hr_in=hr_in,
                          with_predeblur=with_predeblur, with_tsa=with_tsa, scale=scale)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: weights give an invalid EDVR configuration ({exc})") from None


def preset_name(config: EDVRConfig) -> str | None:
    """The preset equal to `config` (center index resolved), or None."""
    for name, preset in PRESETS.items():
        if dataclasses.replace(preset, center_frame_idx=preset.center) == \
                dataclasses.replace(config, center_frame_idx=config.center):
            return name
    return None


def expected_shapes(config: EDVRConfig) -> dict[str, tuple]:
    """{key: shape} of an EDVR with `config`, computed on the meta device (no memory)."""
    from vsrdata.edvr.arch import EDVR

    with torch.device("meta"):
        model = EDVR(**config.to_dict())
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}



def weights_object(state_dict: Mapping[str, torch.Tensor], to: str = "basicsr",
                   config: EDVRConfig | None = None) -> dict:
    """The object to torch.save: 'basicsr' -> {'params': sd}; 'vsrdata' -> {'params': sd,
    'config': fields, 'format': 'vsrdata-weights/1'} (config required)."""
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if to == "basicsr":
        return {"params": sd}
    if to == "vsrdata":
        if config is None:
            raise ConfigError("the vsrdata weights format needs the model config")
        return {"params": sd, "config": config.to_dict(), "format": VSRDATA_FORMAT}
    raise ConfigError(f"unknown checkpoint format {to!r} (choose from: basicsr, vsrdata)")


@dataclass(frozen=True)
class ConvertResult:
    """What `convert_checkpoint` wrote: `path` (the new file) from `source`, `num_tensors` tensors of
    `num_params` parameters; the source's format and entry, the EDVR config and where it came from."""

    path: Path
    source: Path
    source_format: str
    param_key: str | None
    num_tensors: int
    num_params: int
    config: EDVRConfig
    preset: str | None  # preset name matching the weights, if any
    config_origin: str  # 'preset', 'checkpoint' or 'inferred'


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, to: str = "basicsr",
                       preset: str | None = None, param_key: str | None = None,
                       overwrite: bool = False) -> ConvertResult:
    """Read any supported EDVR checkpoint, check it is a complete EDVR, write it as `to`.

    The configuration comes from `preset`, else the file's own (vsrdata format), else it is
    inferred from the tensor shapes; the weights must then match it exactly (strict).

    Example::

        from vsrdata import convert_checkpoint
        convert_checkpoint("experiments/edvr_m/best.pth", "edvr_m_basicsr.pth", to="basicsr")
    """
    if to not in ("basicsr", "vsrdata"):
        raise ConfigError(f"unknown target format {to!r} (choose from: basicsr, vsrdata)")
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} exists (use --overwrite to replace it)")
    if dst.is_dir():
        raise OutputError(f"{dst} is a directory")
    ckpt = read_checkpoint(src, param_key=param_key)
    if preset is not None:
        config, origin = get_preset(preset), "preset"
    elif ckpt.config is not None:
        config, origin = ckpt.config, "checkpoint"
    else:
        config, origin = infer_config(ckpt.state_dict, str(src)), "inferred"
    report = compare_state_dicts(ckpt.state_dict, expected_shapes(config))
    if not report.ok:
        report.source, report.source_format, report.param_key = src, ckpt.source_format, ckpt.param_key
        which = f"preset {preset!r}" if preset else "its EDVR configuration"
        raise CheckpointError(f"{src} does not match {which}: {report.summary()}")
    # keep the model's key order (the official files' order)
    sd = {k: ckpt.state_dict[k] for k in report.loaded}
    save_atomic(weights_object(sd, to, config), dst)
    return ConvertResult(dst, src, ckpt.source_format, ckpt.param_key, len(sd), sum(v.numel() for v in sd.values()),
                         config, preset or preset_name(config), origin)
