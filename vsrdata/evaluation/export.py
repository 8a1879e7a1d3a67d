"""`vsrdata export`: EDVR to ONNX, verified by ONNX Runtime before the file is written.

The graph: input ``lq`` (N, T, 3, H, W) RGB in [0, 1] (float32, or float16 with ``fp16``), output
``sr`` (N, 3, s*H, s*W) with s the model's scale (4, 3 or 2; 1 for hr_in models); N, H and W are
dynamic, H and W must be multiples of the model's size multiple (4; 16 for hr_in models): the
graph does not check this, callers pad (``vsrdata infer`` does).

The deformable convolution is exported through the pure-PyTorch DCN (`vsrdata.edvr.dcn`, built
on ``grid_sample``, the ONNX GridSample op, opset >= 16); torchvision's kernel has no ONNX form.
The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used: it is exact
at opset 16, where the dynamo exporter emits a Split form that needs opset 18.

Verification: ONNX Runtime (CPU) runs the written graph at two sizes and two batch sizes, none
of them the traced size, and compares with the PyTorch float32 model. Tolerance: 1e-4 for a
float32 export (seen: ~2e-7, float32 rounding); 1/255 (one 8-bit output level) for ``fp16``,
whose weights and activations carry 11-bit mantissas. Over the tolerance: nothing is written.
The file is written to a temporary sibling and renamed, so OUT is complete or absent.

Metadata (ONNX ``metadata_props``): ``vsrdata_format`` (= `engines.ONNX_FORMAT`),
``edvr_config`` (JSON of the EDVRConfig), ``preset``, ``num_frame``, ``scale``,
``size_multiple``, ``input`` / ``output`` (shapes and ranges in words), ``input_dtype``,
``opset``, ``max_abs_diff``, ``source_checkpoint`` (file name only).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsrdata.core.image_io import temp_path_for
from vsrdata.core.paths import check_writable
from vsrdata.evaluation.engines import ONNX_FORMAT, ONNX_HINT, load_model
from vsrdata.errors import ConfigError, OutputError

__all__ = ["MIN_OPSET", "MAX_OPSET", "ExportResult", "export_onnx", "verify_shapes"]

MIN_OPSET = 16  # GridSample
MAX_OPSET = 20
TOL_FP32 = 1e-4
TOL_FP16 = 1.0 / 255.0


@dataclass(frozen=True)
class ExportResult:
    """What `export` wrote: the ONNX file `path`, its `opset`, precision (`fp16`) and preset; the
    largest |ONNX Runtime - PyTorch| over the verification `checks` ((input shape, max |diff|))
    and the `tolerance` it was held to."""

    path: Path
    opset: int
    fp16: bool
    preset: str
    max_abs_diff: float
    checks: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # (input shape, max |diff|)
    tolerance: float = TOL_FP32


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError(f"the ONNX export needs onnx and onnxruntime: {ONNX_HINT}") from None
    return onnx, onnxruntime


def verify_shapes(num_frame: int, multiple: int) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """(traced input shape, the input shapes checked): two batch sizes, three frame sizes, all
    in units of the size multiple and all different from each other."""
    t, m = num_frame, multiple
    return (1, t, 3, 8 * m, 12 * m), [(1, t, 3, 5 * m, 9 * m), (2, t, 3, 9 * m, 16 * m)]


def _torch_export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    dyn = {"lq": {0: "n", 3: "h", 4: "w"}, "sr": {0: "n", 2: "sh", 3: "sw"}}
    with warnings.catch_warnings():  # TracerWarnings of the Python shape checks; deprecation notes
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), opset_version=opset, input_names=["lq"],
                          output_names=["sr"], dynamic_axes=dyn, dynamo=False, do_constant_folding=True)


def _add_metadata(onnx, path: Path, meta: dict[str, str]) -> None:
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    proto.doc_string = "EDVR video super-resolution exported by vsrdata: " + meta["input"]
    onnx.save(proto, str(path))


def _check(ort, path: Path, reference: torch.nn.Module, shapes, dtype) -> list[tuple[tuple[int, ...], float]]:
    """Run the file at each shape with ONNX Runtime (CPU); max |ORT - PyTorch fp32| per shape."""
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConfigError(f"onnxruntime cannot load the exported graph: {str(exc).splitlines()[0]}") from None
    gen = torch.Generator().manual_seed(0)
    checks = []
    for shape in shapes:
        x = torch.rand(shape, generator=gen)
        with torch.inference_mode():
            ref = reference(x).numpy()
        out = session.run(None, {"lq": x.numpy().astype(dtype)})[0].astype(np.float32)
        if out.shape != ref.shape:
            checks.append((shape, float("inf")))
        else:
            checks.append((shape, float(np.abs(out - ref).max())))
    return checks


def _check_destination(out: Path, overwrite: bool, opset: int | None):
    """Every check that can fail before an export runs (name, extras, existing file, writable
    folder, opset) -> (onnx, onnxruntime) modules."""
    if out.suffix.lower() != ".onnx":  # infer picks the onnxruntime engine by this suffix
        raise ConfigError(f"export output must end in .onnx (what `infer` runs with onnxruntime): {out}")
    onnx, ort = _require_onnx()
    if out.is_dir():
        raise OutputError(f"{out} is a directory")
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists (use --overwrite to replace it)")
    check_writable(out.parent, "export destination")  # before two full exports, not after
    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset must be in {MIN_OPSET}..{MAX_OPSET} (GridSample needs {MIN_OPSET}), got {opset}")
    return onnx, ort


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, preset: str | None = None,
                opset: int | None = None, fp16: bool = False, overwrite: bool = False,
                tolerance: float | None = None) -> ExportResult:
    """Export the EDVR in `checkpoint` to the ONNX file `out` (see the module docstring).

    opset: None = the lowest in MIN_OPSET..MAX_OPSET that exports. tolerance: None = 1e-4
    (float32) / 1/255 (fp16). Raises ConfigError (missing onnx/onnxruntime, bad opset, no opset
    exports, verification over the tolerance, `out` not ending in .onnx), CheckpointError (unreadable or mismatching
    weights), OutputError (OUT exists without `overwrite`, or is a directory).

    Example::

        from vsrdata import export   # this function, at the package root
        result = export("experiments/edvr_m/best.pth", "edvr_m.onnx", preset="edvr-m")
    """
    out = Path(out)
    onnx, ort = _check_destination(out, overwrite, opset)
    from vsrdata.edvr.checkpoint import preset_name

    reference = load_model(checkpoint, preset, "cpu", dcn_backend="torch")  # fp32, exported DCN
    cfg = reference.config
    example_shape, shapes = verify_shapes(cfg.num_frame, cfg.size_multiple)
    dtype = np.float16 if fp16 else np.float32
    tol = tolerance if tolerance is not None else (TOL_FP16 if fp16 else TOL_FP32)
    model = load_model(checkpoint, preset, "cpu", dcn_backend="torch")
    if fp16:
        model = model.half()
    example = torch.rand(example_shape, generator=torch.Generator().manual_seed(1)).to(
        torch.float16 if fp16 else torch.float32)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    try:
        used, errors = None, []
        for candidate in ([opset] if opset is not None else range(MIN_OPSET, MAX_OPSET + 1)):
            try:
                _torch_export(model, example, tmp, candidate)
                used = candidate
                break
            except Exception as exc:  # the exporter raises many types; try the next opset
                errors.append(f"opset {candidate}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        if used is None:
            raise ConfigError(f"cannot export {checkpoint} to ONNX ({'; '.join(errors[:2])})")
        name = preset_name(cfg) or "custom"
        m, s = cfg.size_multiple, cfg.scale
        meta = {
            "vsrdata_format": ONNX_FORMAT, "edvr_config": json.dumps(cfg.to_dict(), sort_keys=True),
            "preset": name, "num_frame": cfg.num_frame, "scale": s, "size_multiple": m,
            "input": f"lq: (N, {cfg.num_frame}, 3, H, W) RGB in [0, 1], {np.dtype(dtype).name}; N, H, W dynamic; "
                     f"H and W must be multiples of {m} (pad, e.g. by edge replication, and crop the output)",
            "output": f"sr: (N, 3, {s}H, {s}W) RGB, about [0, 1], not clamped",
            "input_dtype": np.dtype(dtype).name, "opset": used,
            "source_checkpoint": Path(checkpoint).name,
        }
        _add_metadata(onnx, tmp, meta)
        checks = _check(ort, tmp, reference, shapes, dtype)
        worst = max(d for _, d in checks)
        if not worst <= tol:
            detail = ", ".join(f"{'x'.join(map(str, sh))}: {d:.3g}" for sh, d in checks)
            raise ConfigError(f"ONNX Runtime output differs from PyTorch by {worst:.3g} > {tol:.3g} "
                              f"({detail}); {out} not written")
        # record the measured difference in the file itself, then publish it
        _add_metadata(onnx, tmp, {**meta, "max_abs_diff": f"{worst:.3g}"})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, used, fp16, name, worst, checks, tol)
