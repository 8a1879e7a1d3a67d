"""Read EDVR weights from any of the field's checkpoint formats; write them atomically.

A checkpoint is data, never code: every file is read with ``torch.load(weights_only=True)``
(a pickle that would import or call anything else is refused with CheckpointError). The only
extra types let through are numpy's array/scalar/dtype constructors, which some training
frameworks leave in a checkpoint's metadata.

Formats understood (docs/CONVENTIONS.md#checkpoints), all normalised to BasicSR parameter names:

- BasicSR: ``{'params': sd}`` and/or ``{'params_ema': sd}`` (official ``*_official-*.pth`` files,
  BasicSR training outputs). Order of preference, as docs/CONVENTIONS.md#checkpoints gives it:
  'params_ema' -> 'params' -> 'state_dict' -> 'model' -> the raw dict. EMA weights are preferred
  because they are the ones BasicSR evaluates when EMA was on; pass ``param_key='params'`` to
  take the raw weights instead.
- vsrdata: ``{'params': sd, 'config': EDVRConfig fields, 'format': 'vsrdata-weights/1'}``.
- original EDVR (xinntao/EDVR ``old_version``): a raw state dict with old names, renamed by
  `rename_original_key` (including the tAtt_1/tAtt_2 swap).
- mmagic: ``{'meta': ..., 'state_dict': {'generator.<name>': ...}}``, renamed by `rename_mmagic_key`.
- a plain state dict; ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile)
  prefixes are stripped.

Both the zip and the legacy (``_use_new_zipfile_serialization=False``) torch.save formats load.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from vsrdata.core.image_io import remove_stale_temps, temp_path_for
from vsrdata.edvr.config import PRESETS, EDVRConfig, get_preset
from vsrdata.errors import CheckpointError, ConfigError, OutputError

VSRDATA_FORMAT = "vsrdata-weights/1"
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")

# numpy constructors that rebuild plain data (arrays, scalars, dtypes) and nothing else.
_NUMPY_DATA_GLOBALS = {
    "numpy.ndarray", "numpy.dtype",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
}


# ---------------------------------------------------------------------------------------------
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


_ORIGINAL_MARKERS = re.compile(r"^(tsa_fusion\.|recon_trunk\.|pre_deblur\.|HRconv\.|fea_L[23]_conv)"
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


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadedCheckpoint:
    """What `read_checkpoint` found: weights under BasicSR names plus where they came from."""

    state_dict: dict[str, torch.Tensor]
    source_format: str  # 'basicsr', 'vsrdata', 'edvr-original', 'mmagic', 'plain'
    param_key: str | None  # wrapper entry used ('params_ema', 'params', 'state_dict/generator', ...)
    config: EDVRConfig | None = None  # stored in vsrdata files
    source: str = "<state dict>"


def load_object(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` on CPU; every failure is one CheckpointError line
    naming the file (PyTorch's multi-line advice to pass weights_only=False is never relayed)."""
    return _torch_load(Path(path))


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        allowed = _numpy_globals_if_only_numpy(path)
        if allowed is not None:
            try:
                with torch.serialization.safe_globals(allowed):
                    return torch.load(path, map_location="cpu", weights_only=True)
            except Exception:
                pass
        raise CheckpointError(f"refusing to load {path}: it holds pickled objects other than tensors "
                              f"and plain data ({_unpickling_reason(exc)}); a checkpoint must be "
                              "data, never code") from None
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint path is a directory: {path}") from None
    except PermissionError:
        raise CheckpointError(f"cannot read checkpoint {path}: permission denied") from None
    except Exception as exc:  # truncated zip, random bytes, EOF, wrong magic number ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: not a torch.save file or truncated "
                              f"({type(exc).__name__}: {detail[:200]})") from None


def _unpickling_reason(exc: Exception) -> str:
    """The refused global's name only: PyTorch's text around it advises weights_only=False."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if match:
        return f"unsupported global {match.group(1)}"
    return "torch.load(weights_only=True) refused it"


def _numpy_globals_if_only_numpy(path: Path) -> list | None:
    """The numpy data constructors a zip checkpoint needs, or None if it needs anything else."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        import numpy as np
    except Exception:
        return None
    objs = []
    for name in names:
        module, _, attr = name.rpartition(".")
        if name in _NUMPY_DATA_GLOBALS:
            pass
        elif module == "numpy.dtypes" and attr.endswith("DType"):
            pass
        else:
            return None
        obj = np
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        objs.append(obj)
    if objs:  # arrays and scalars also name their dtype's class (numpy >= 1.25: numpy.dtypes.*)
        for name in ("bool_", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                     "float16", "float32", "float64", "complex64", "complex128"):
            objs.append(type(np.dtype(getattr(np, name))))
    return objs


def _as_state_dict(obj: Any, where: str) -> dict[str, torch.Tensor] | None:
    """obj as {str: Tensor}, None if it is not a mapping of tensors at all."""
    if not isinstance(obj, Mapping) or not obj:
        return None
    if not all(isinstance(k, str) for k in obj):
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        return None
    if len(tensors) != len(obj):
        bad = next(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise CheckpointError(f"{where}: entry {bad!r} is a {type(obj[bad]).__name__}, not a tensor")
    return dict(obj)


def unwrap_checkpoint(obj: Any, *, param_key: str | None = None, source: str = "<state dict>") -> LoadedCheckpoint:
    """Find the weights inside a loaded checkpoint object and rename them to BasicSR names."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a dict of weights, found a {type(obj).__name__}")
    config = None
    fmt = None
    if param_key is not None:
        if param_key not in obj:
            raise CheckpointError(f"{source}: no {param_key!r} entry (entries: {_list_keys(obj)})")
        key = param_key
    else:
        key = next((k for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
    if key is None:
        sd = _as_state_dict(obj, source)
        if sd is None:
            raise CheckpointError(f"{source}: no weights found (expected 'params', 'params_ema', "
                                  f"'state_dict' or a plain state dict; entries: {_list_keys(obj)})")
        used = None
    else:
        inner = obj[key]
        used = key
        if key == "state_dict" and isinstance(inner, Mapping) and any(
                isinstance(k, str) and k.startswith(("generator.", "generator_ema.")) for k in inner):
            # mmagic: the generator's weights (EMA copy preferred, as with params_ema)
            prefix = "generator_ema." if any(str(k).startswith("generator_ema.") for k in inner) else "generator."
            inner = {k: v for k, v in inner.items() if k.startswith(prefix)}
            used = f"state_dict/{prefix[:-1]}"
            fmt = "mmagic"
        sd = _as_state_dict(inner, f"{source} [{key}]")
        if sd is None:
            raise CheckpointError(f"{source}: entry {key!r} holds no tensors")
    if obj.get("format") == VSRDATA_FORMAT:
        fmt = "vsrdata"
        try:
            config = EDVRConfig.from_dict(dict(obj["config"]))
        except (KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"{source}: invalid vsrdata config ({exc})") from None
    elif isinstance(obj.get("model_config"), Mapping):  # vsrdata training checkpoints
        try:
            config = EDVRConfig.from_dict(dict(obj["model_config"]))
        except (TypeError, ConfigError):
            config = None  # not ours to judge: fall back to the weights' shapes

    stripped: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        k = strip_prefixes(k)
        if fmt == "mmagic":
            k = rename_mmagic_key(k)
        stripped[k] = v
    style = detect_key_style(stripped)
    if style != "basicsr":
        rename = rename_original_key if style == "edvr-original" else rename_mmagic_key
        fmt = fmt or style
    else:
        rename = None
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for k, v in stripped.items():
        new = rename(k) if rename else k
        if new in out:
            raise CheckpointError(f"{source}: both {origin[new]!r} and {k!r} map to {new!r}")
        out[new], origin[new] = v, k
    if fmt is None:
        fmt = "basicsr" if used in ("params", "params_ema") else "plain"
    return LoadedCheckpoint(out, fmt, used, config, source)


def _list_keys(obj: Mapping, limit: int = 8) -> str:
    keys = [repr(k) for k in list(obj)[:limit]]
    more = f", ... ({len(obj)} in all)" if len(obj) > limit else ""
    return ", ".join(keys) + more if keys else "none"


def read_checkpoint(path: str | os.PathLike, *, param_key: str | None = None) -> LoadedCheckpoint:
    """Load a checkpoint file (weights_only) and return its weights under BasicSR names."""
    path = Path(path)
    obj = _torch_load(path)
    return unwrap_checkpoint(obj, param_key=param_key, source=str(path))


def read_state_dict(path: str | os.PathLike, *, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """The weights of any supported checkpoint file, normalised to BasicSR names (see module doc)."""
    return read_checkpoint(path, param_key=param_key).state_dict


# ---------------------------------------------------------------------------------------------
# Matching weights to a model
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """How a checkpoint's tensors matched a model's state dict."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, ckpt, model)
    source: str = "<state dict>"
    source_format: str = "plain"
    param_key: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 4) -> str:
        """One line: counts and the first few names per problem."""
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        parts = [f"{len(self.loaded)}/{total} model tensors loaded from {self.source} "
                 f"({self.source_format}{', ' + repr(self.param_key) if self.param_key else ''})"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("shape mismatch", [f"{k} {tuple(c)} vs model {tuple(m)}"
                                                 for k, c, m in self.mismatched])):
            if items:
                shown = ", ".join(items[:limit]) + (f", ... (+{len(items) - limit})" if len(items) > limit else "")
                parts.append(f"{len(items)} {label}: {shown}")
        return "; ".join(parts)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from {self.source} (format {self.source_format}"
                 f"{', key ' + repr(self.param_key) if self.param_key else ''})"]
        if self.missing:
            lines.append(f"missing from the checkpoint ({len(self.missing)}, left as initialised):")
            lines += [f"  {k}" for k in self.missing]
        if self.unexpected:
            lines.append(f"unexpected in the checkpoint ({len(self.unexpected)}, ignored):")
            lines += [f"  {k}" for k in self.unexpected]
        if self.mismatched:
            lines.append(f"shape mismatch ({len(self.mismatched)}, not loaded):")
            lines += [f"  {k}: checkpoint {tuple(c)} vs model {tuple(m)}" for k, c, m in self.mismatched]
        return "\n".join(lines)


def compare_state_dicts(state_dict: Mapping[str, torch.Tensor], model_shapes: Mapping[str, Any]) -> LoadReport:
    """Match checkpoint tensors against {model key: tensor or shape}; nothing is copied."""
    report = LoadReport()
    for key, target in model_shapes.items():
        shape = tuple(target.shape) if hasattr(target, "shape") else tuple(target)
        if key not in state_dict:
            report.missing.append(key)
        elif tuple(state_dict[key].shape) != shape:
            report.mismatched.append((key, tuple(state_dict[key].shape), shape))
        else:
            report.loaded.append(key)
    report.unexpected = [k for k in state_dict if k not in model_shapes]
    return report


def _bare_model(model: torch.nn.Module) -> torch.nn.Module:
    """Unwrap DataParallel/DDP (.module) and torch.compile (._orig_mod)."""
    while True:
        if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def load_weights(model: torch.nn.Module, path_or_state_dict, strict: bool = True, *,
                 param_key: str | None = None) -> LoadReport:
    """Copy a checkpoint's weights into `model` (any supported format, file or in-memory dict).

    strict=True (default): every model tensor must be present with the same shape and nothing
    may be left over, else CheckpointError with a one-line summary (the full `LoadReport` is on
    the exception's `.report`) and the model is left untouched. strict=False: load what matches
    (name and shape), report the rest, as BasicSR does when it initialises an EDVR with TSA from
    its woTSA run.

    Example::

        from vsrdata import build_edvr, load_weights
        model = build_edvr("edvr-m")
        report = load_weights(model, "EDVR_M_x4_SR_REDS_official-32075921.pth")  # BasicSR file
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        ckpt = read_checkpoint(path_or_state_dict, param_key=param_key)
    elif isinstance(path_or_state_dict, LoadedCheckpoint):
        ckpt = path_or_state_dict
    else:
        ckpt = unwrap_checkpoint(path_or_state_dict, param_key=param_key)
    target = _bare_model(model)
    own = target.state_dict()
    report = compare_state_dicts(ckpt.state_dict, own)
    report.source, report.source_format, report.param_key = ckpt.source, ckpt.source_format, ckpt.param_key
    if strict and not report.ok:
        err = CheckpointError(f"checkpoint does not match the model (strict): {report.summary()}")
        err.report = report
        raise err
    target.load_state_dict({k: ckpt.state_dict[k] for k in report.loaded}, strict=False)
    return report


# ---------------------------------------------------------------------------------------------
# Configuration from weights
# ---------------------------------------------------------------------------------------------
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
    hr_in = "predeblur.stride_conv_hr1.weight" in state_dict
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
                          with_predeblur=with_predeblur, with_tsa=with_tsa)
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


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def save_atomic(obj: Any, path: str | os.PathLike, *, legacy_format: bool = False) -> None:
    """torch.save to a temporary sibling, fsync, then os.replace: readers never see half a file.

    legacy_format=True writes the pre-1.6 non-zip format (what old tools expect).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh, _use_new_zipfile_serialization=not legacy_format)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_TEMP_PID = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")  # `temp_path_for` names


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing yet: its own leftovers are stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists under another user
        return True
    return True


def remove_dead_writers_temps(directory: str | os.PathLike) -> int:
    """Remove the temporary files of `save_atomic` left in `directory` by processes that no longer
    run (a kill during a save); a live writer's file is kept. Returns how many were removed."""
    try:
        names = [e.name for e in os.scandir(directory)]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    owners: dict[str, list[int]] = {}
    for name in names:
        if m := _TEMP_PID.match(name):
            owners.setdefault(m.group("name"), []).append(int(m.group("pid")))
    dead = {name for name, pids in owners.items() if not any(_process_alive(p) for p in pids)}
    return remove_stale_temps(directory, dead) if dead else 0


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


@dataclass
class ConvertResult:
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
        report.source, report.source_format, report.param_key = str(src), ckpt.source_format, ckpt.param_key
        which = f"preset {preset!r}" if preset else "its EDVR configuration"
        raise CheckpointError(f"{src} does not match {which}: {report.summary()}")
    # keep the model's key order (the official files' order)
    sd = {k: ckpt.state_dict[k] for k in report.loaded}
    save_atomic(weights_object(sd, to, config), dst)
    return ConvertResult(ckpt.source_format, ckpt.param_key, len(sd), sum(v.numel() for v in sd.values()),
                         config, preset or preset_name(config), origin)
