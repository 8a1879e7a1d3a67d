"""Read EDVR weights from any of the field's checkpoint formats and match them to a model.

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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from vsrdata.edvr.checkpoint.io import load_object
from vsrdata.edvr.checkpoint.keys import (bare_model, detect_key_style, rename_mmagic_key, rename_original_key,
                                          strip_prefixes)
from vsrdata.edvr.config import EDVRConfig
from vsrdata.errors import CheckpointError, ConfigError

VSRDATA_FORMAT = "vsrdata-weights/1"
TRAIN_FORMAT = "vsrdata-train/2"  # training checkpoint: model config under 'config' like the weights
LEGACY_TRAIN_FORMAT = "vsrdata-train/1"  # model config under 'model_config', TrainConfig under 'config'
TRAIN_FORMATS = (TRAIN_FORMAT, LEGACY_TRAIN_FORMAT)
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


def model_config_dict(obj: Mapping) -> Mapping | None:
    """The EDVRConfig fields a vsrdata file stores: 'config' in the weights format and in training
    checkpoints; 'model_config' in training checkpoints written before the key was unified."""
    if obj.get("format") == LEGACY_TRAIN_FORMAT or ("model_config" in obj and obj.get("format") not in
                                                     (VSRDATA_FORMAT, TRAIN_FORMAT)):
        found = obj.get("model_config")
    elif obj.get("format") in (VSRDATA_FORMAT, TRAIN_FORMAT):
        found = obj.get("config")
    else:
        found = None
    return found if isinstance(found, Mapping) else None


@dataclass
class LoadedCheckpoint:
    """What `read_checkpoint` found: weights under BasicSR names plus where they came from."""

    state_dict: dict[str, torch.Tensor]
    source_format: str  # 'basicsr', 'vsrdata', 'edvr-original', 'mmagic', 'plain'
    param_key: str | None  # wrapper entry used ('params_ema', 'params', 'state_dict/generator', ...)
    config: EDVRConfig | None = None  # stored in vsrdata files
    source: str = "<state dict>"



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
    config, ours = _stored_config(obj, source)
    if ours:
        fmt = "vsrdata"
    out, fmt = _renamed(sd, fmt, source)
    if fmt is None:
        fmt = "basicsr" if used in ("params", "params_ema") else "plain"
    return LoadedCheckpoint(out, fmt, used, config, source)


def _stored_config(obj: Mapping, source: str) -> tuple[EDVRConfig | None, bool]:
    """(the EDVR config stored in the checkpoint or None, whether it is a vsrdata export)."""
    if obj.get("format") == VSRDATA_FORMAT:
        try:
            return EDVRConfig.from_dict(dict(obj["config"])), True
        except (KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"{source}: invalid vsrdata config ({exc})") from None
    if (stored := model_config_dict(obj)) is not None:  # vsrdata training checkpoints
        try:
            return EDVRConfig.from_dict(dict(stored)), False
        except (TypeError, ConfigError):
            pass  # not ours to judge: fall back to the weights' shapes
    return None, False


def _renamed(sd: Mapping, fmt: str | None, source: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict `sd` with wrapper prefixes stripped and keys renamed to BasicSR names, and
    the format (`fmt`, or the detected key style when `fmt` is None and the keys are not BasicSR's)."""
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
    return out, fmt


def _list_keys(obj: Mapping, limit: int = 8) -> str:
    keys = [repr(k) for k in list(obj)[:limit]]
    more = f", ... ({len(obj)} in all)" if len(obj) > limit else ""
    return ", ".join(keys) + more if keys else "none"


def basicsr_param_key(obj: Any, wanted: str | None) -> str | None:
    """The entry BasicSR's `load_network` reads when asked for `wanted` (its `param_key_g`):
    `wanted` when the file has it, else 'params' when it has that, else None (our own choice,
    `WRAPPER_KEYS` order, where BasicSR would stop on a KeyError). docs/CONVENTIONS.md#checkpoints"""
    if not isinstance(obj, Mapping) or wanted is None:
        return None
    for key in (wanted, "params"):
        if isinstance(obj.get(key), Mapping):
            return key
    return None


def read_checkpoint(path: str | os.PathLike, *, param_key: str | None = None,
                    basicsr: bool = False) -> LoadedCheckpoint:
    """Load a checkpoint file (weights_only) and return its weights under BasicSR names.
    `basicsr`: `param_key` is a BasicSR `param_key_g`, read as `basicsr_param_key` says."""
    path = Path(path)
    obj = load_object(path)
    if basicsr:
        param_key = basicsr_param_key(obj, param_key)
    return unwrap_checkpoint(obj, param_key=param_key, source=str(path))


def read_state_dict(path: str | os.PathLike, *, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """The weights of any supported checkpoint file, normalised to BasicSR names (see module doc)."""
    return read_checkpoint(path, param_key=param_key).state_dict


# ---------------------------------------------------------------------------------------------
# Matching weights to a model
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """How a checkpoint's tensors matched a model's state dict (`source`: the checkpoint file, None
    for an in-memory state dict)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, ckpt, model)
    source: Path | None = None
    source_format: str = "plain"
    param_key: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def _where(self) -> str:
        return str(self.source) if self.source is not None else "<state dict>"

    def summary(self, limit: int = 4) -> str:
        """One line: counts and the first few names per problem."""
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        parts = [f"{len(self.loaded)}/{total} model tensors loaded from {self._where} "
                 f"({self.source_format}{', ' + repr(self.param_key) if self.param_key else ''})"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("shape mismatch", [f"{k} {tuple(c)} vs model {tuple(m)}"
                                                 for k, c, m in self.mismatched])):
            if items:
                shown = ", ".join(items[:limit]) + (f", ... (+{len(items) - limit})" if len(items) > limit else "")
                parts.append(f"{len(items)} {label}: {shown}")
        return "; ".join(parts)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from {self._where} (format {self.source_format}"
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
    target = bare_model(model)
    own = target.state_dict()
    report = compare_state_dicts(ckpt.state_dict, own)
    report.source = Path(ckpt.source) if ckpt.source != "<state dict>" else None
    report.source_format, report.param_key = ckpt.source_format, ckpt.param_key
    if strict and not report.ok:
        err = CheckpointError(f"checkpoint does not match the model (strict): {report.summary()}")
        err.report = report
        raise err
    target.load_state_dict({k: ckpt.state_dict[k] for k in report.loaded}, strict=False)
    return report

