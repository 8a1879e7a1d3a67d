"""Inference engines: what turns a window batch into an SR batch, whatever runs it.

An engine is a callable ``engine(x) -> y`` with ``x`` a (N, T, 3, H, W) float32 tensor, RGB in
[0, 1], H and W multiples of ``engine.config.size_multiple``, and ``y`` the (N, 3, s*H, s*W)
float32 output (s = ``engine.config.scale``; not clamped). It also carries ``config`` (the
EDVRConfig), ``device`` (where input tensors must live) and ``name``. `restore` in
`vsrdata.evaluation.inference` pads, windows and tiles around any engine, so every engine gets the same
treatment.

- ``torch`` (`TorchEngine`): the PyTorch model. On CPU the model is put in channels_last memory
  format (faster on CPU; outputs equal to float32 rounding, tested to 1e-5) unless told
  otherwise, and the process keeps freed memory in its heap (`vsrdata.core.heap`: no page
  faults for reused activations; ``VSRDATA_MALLOC=system`` opts out); precision fp32, bf16
  (autocast; CPU or CUDA) or fp16 (autocast; CUDA only).
- ``onnxruntime`` (`OnnxEngine`): a file written by ``vsrdata export`` (checked through the
  metadata it stores), run by ONNX Runtime (CUDA provider when asked for and present, else CPU).
  ``batchable`` is False when the graph's batch dimension is a fixed number (not one of our
  exports): the test-time ensemble (`vsrdata.evaluation.ensemble`) then refuses to run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vsrdata.core.heap import keep_freed_memory
from vsrdata.errors import CheckpointError, ConfigError, InputError
from vsrdata.evaluation.inference import autocast_for, resolve_device

if TYPE_CHECKING:
    from vsrdata.edvr.config import EDVRConfig

__all__ = ["ENGINES", "ONNX_FORMAT", "TorchEngine", "OnnxEngine", "load_engine", "load_model",
           "require_onnxruntime"]

ENGINES = ("torch", "onnxruntime")
ONNX_FORMAT = "vsrdata-edvr-onnx/1"  # metadata_props["vsrdata_format"] of our exports
ONNX_HINT = "pip install 'vsrdata[onnx]'"


# -- torch ----------------------------------------------------------------------------------------

def load_model(checkpoint: str | os.PathLike, preset: str | EDVRConfig | None = None,
               device: str | torch.device | None = None, dcn_backend: str | None = None,
               param_key: str | None = None) -> torch.nn.Module:
    """Build an EDVR and load `checkpoint` strictly (any format `checkpoint.read_checkpoint`
    reads: BasicSR, vsrdata, mmagic, original EDVR). The architecture is `preset` (a name or an
    EDVRConfig) when given, else the config stored in a vsrdata checkpoint, else the one the
    weights' shapes imply (`checkpoint.infer_config`). `param_key`: a BasicSR `param_key_g`
    (`checkpoint.basicsr_param_key`); None: our preference order. Returns the model in eval mode on `device`."""
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    from vsrdata.edvr import checkpoint as ckpt
    from vsrdata.edvr.arch import build_edvr

    loaded = ckpt.read_checkpoint(path, param_key=param_key, basicsr=param_key is not None)
    if preset is not None:
        _check_scale(path, loaded, preset)
    cfg = preset or loaded.config or ckpt.infer_config(loaded.state_dict, str(path))
    model = build_edvr(cfg, dcn_backend=dcn_backend)
    ckpt.load_weights(model, loaded, strict=True)
    return model.to(resolve_device(device)).eval()


def _check_scale(path: Path, loaded, preset) -> None:
    """CheckpointError (one line) when the weights are for another scale than `preset`."""
    from vsrdata.edvr import checkpoint as ckpt
    from vsrdata.edvr.config import get_preset

    want = get_preset(preset) if isinstance(preset, str) else preset
    try:
        have = loaded.config or ckpt.infer_config(loaded.state_dict, str(path))
    except CheckpointError:  # not recognisable as EDVR: the strict load says what is wrong
        return
    if have.scale != want.scale:
        name = preset if isinstance(preset, str) else "the given config"
        raise CheckpointError(f"{path} holds an x{have.scale} model but {name} is x{want.scale} "
                              f"(drop --preset, or pick one at x{have.scale})")


class TorchEngine:
    """A PyTorch model as an engine (see the module docstring).

    channels_last: None = on for CPU (measured faster there, same outputs to float32 rounding),
    off elsewhere. The model is moved and converted in place, as `Module.to` does. On CPU the
    engine calls `vsrdata.core.heap.keep_freed_memory()` (process-wide; see there); `heap` says
    what it did ('' on other devices).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None,
                 precision: str = "fp32", channels_last: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.precision = precision
        self._autocast = autocast_for(self.device, precision)
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        self.channels_last = bool(channels_last)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device).to(memory_format=fmt).eval()
        if getattr(model, "config", None) is None:
            raise ConfigError("the model has no .config (an EDVRConfig) to read num_frame/scale from")
        self.config = model.config
        self.name = type(model).__name__
        self.heap = keep_freed_memory() if self.device.type == "cpu" else ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast:
            return self.model(x).float()


# -- onnxruntime ----------------------------------------------------------------------------------

def require_onnxruntime():
    """The onnxruntime module, or ConfigError with the install hint."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"the onnxruntime engine needs onnxruntime: {ONNX_HINT}") from None
    return onnxruntime


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """metadata_props of an ONNX file written by `vsrdata export`; InputError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX model not found: {path}")
    try:
        import onnx
    except ImportError:
        raise ConfigError(f"reading ONNX models needs onnx: {ONNX_HINT}") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not a protobuf at all
        raise InputError(f"cannot read ONNX model {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("vsrdata_format") != ONNX_FORMAT or "edvr_config" not in meta:
        raise InputError(f"{path} is not an EDVR exported by `vsrdata export` (no {ONNX_FORMAT} metadata)")
    return meta


class OnnxEngine:
    """An ONNX file from `vsrdata export`, run by ONNX Runtime (see the module docstring).

    device: None or 'cpu' = CPUExecutionProvider; 'cuda'/'cuda:N' = CUDAExecutionProvider
    (ConfigError when this onnxruntime has none). Input tensors are taken on the CPU (the
    session moves them); `preset`, when given, must equal the exported architecture.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = None,
                 preset: str | None = None, threads: int | None = None) -> None:
        from vsrdata.edvr.config import EDVRConfig, get_preset

        self.path = Path(path)
        meta = read_onnx_metadata(self.path)
        ort = require_onnxruntime()
        try:
            self.config = EDVRConfig.from_dict(json.loads(meta["edvr_config"]))
        except (ValueError, ConfigError) as exc:
            raise InputError(f"{self.path}: unreadable edvr_config metadata ({exc})") from None
        if preset is not None and get_preset(preset).to_dict() != self.config.to_dict():
            raise ConfigError(f"--preset {preset} does not match {self.path} "
                              f"(exported as {meta.get('preset', 'custom')})")
        self.input_dtype = np.float16 if meta.get("input_dtype") == "float16" else np.float32
        providers = ["CPUExecutionProvider"]
        name = str(device) if device is not None else "cpu"
        if name.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(f"device {name!r} requested but this onnxruntime has no CUDA provider "
                                  "(install onnxruntime-gpu, or use --device cpu)")
            index = int(name.split(":")[1]) if ":" in name else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        elif name != "cpu":
            raise ConfigError(f"unknown device {name!r} for onnxruntime (use cpu, cuda or cuda:N)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:
            raise InputError(f"onnxruntime cannot load {self.path}: {str(exc).splitlines()[0]}") from None
        self.device = torch.device("cpu")
        self.name = self.path.name
        self.metadata = meta
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.batchable = not isinstance(batch_dim, int)  # a symbolic (dynamic) batch dimension

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy(), dtype=self.input_dtype)
        out = self.session.run(None, {"lq": arr})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


# -- choosing one ---------------------------------------------------------------------------------

def engine_for(checkpoint: str | os.PathLike | None, engine: str | None) -> str:
    """`engine`, or when None: 'onnxruntime' for a .onnx checkpoint, else 'torch'."""
    if engine is None or engine == "auto":
        return "onnxruntime" if checkpoint is not None and str(checkpoint).lower().endswith(".onnx") else "torch"
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return engine


def load_engine(checkpoint: str | os.PathLike | None = None, model: torch.nn.Module | None = None, *,
                engine: str | None = None, preset: str | EDVRConfig | None = None,
                device: str | torch.device | None = None,
                precision: str = "fp32", dcn_backend: str | None = None, param_key: str | None = None,
                tta: str | None = None):
    """The engine for a checkpoint (or an ONNX file) or an already built `model` (`param_key`: see
    `load_model`), wrapped in the test-time ensemble `tta` ('none', 'flip4', 'x8';
    `vsrdata.evaluation.ensemble`)."""
    from vsrdata.evaluation.ensemble import variants, with_tta

    variants(tta or "none")  # an unknown mode fails before anything loads
    return with_tta(_load_engine(checkpoint, model, engine, preset, device, precision, dcn_backend, param_key), tta)


def _load_engine(checkpoint, model, engine, preset, device, precision, dcn_backend, param_key=None):
    kind = "torch" if model is not None else engine_for(checkpoint, engine)
    if kind == "onnxruntime":
        if precision != "fp32":
            raise ConfigError(f"--precision {precision} applies to the torch engine; for half precision "
                              "with onnxruntime export with --fp16")
        return OnnxEngine(checkpoint, device=device, preset=preset)
    if model is None:
        if checkpoint is not None and str(checkpoint).lower().endswith(".onnx"):
            raise ConfigError(f"{checkpoint} is an ONNX file: use --engine onnxruntime")
        model = load_model(checkpoint, preset, device, dcn_backend, param_key)
    return TorchEngine(model, device, precision)
