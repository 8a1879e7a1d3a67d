"""Optional dependencies (the pyproject extras) and the one-line hint when one is missing.

    torchvision  -> pip install 'vsrdata[torchvision]'   (DCN backend 'torchvision')
    tensorboard  -> pip install 'vsrdata[tensorboard]'   (train: RUN/tb/ scalars)
    onnx, onnxruntime, onnxscript -> pip install 'vsrdata[onnx]'
    pyiqa        -> pip install 'vsrdata[pyiqa]'         (evaluate --metrics pyiqa:NAME)

Use `require(...)` at the point of use (never at import time, so `vsrdata --help` stays light).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vsrdata.errors import ConfigError

EXTRA_OF = {"torchvision": "torchvision", "tensorboard": "tensorboard", "onnx": "onnx",
            "onnxruntime": "onnx", "onnxscript": "onnx", "pyiqa": "pyiqa"}


def install_hint(package: str) -> str:
    """'<package> is not installed: pip install 'vsrdata[<extra>]'' (one line)."""
    return f"{package} is not installed: pip install 'vsrdata[{EXTRA_OF.get(package, package)}]'"


def is_missing(exc: BaseException, package: str) -> bool:
    """True when `exc` says that `package` itself is absent (not a broken install or a missing
    dependency of it)."""
    return isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == package


def require(module: str, package: str | None = None) -> ModuleType:
    """Import `module` (e.g. 'torch.utils.tensorboard'); when the distribution `package` (default:
    the module's top-level name) is not installed, raise ConfigError with `install_hint`."""
    package = package or module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if is_missing(exc, package):
            raise ConfigError(install_hint(package)) from None
        raise


# What `vsrdata doctor` lists: (name shown, distribution, what it is for).
REPORTED = [("onnxruntime", "onnxruntime", "evaluate/infer --engine onnxruntime"),
            ("onnx", "onnx", "vsrdata export"),
            ("PyAV", "av", "video input and output"),
            ("PySceneDetect", "scenedetect", "--scene-cuts auto"),
            ("TensorBoard", "tensorboard", "train: RUN/tb/ scalars"),
            ("pyiqa", "pyiqa", "perceptual metrics"),
            ("lpips", "lpips", "LPIPS metric")]


def extra_versions() -> dict[str, str]:
    """{shown name: 'VERSION (what for)' or 'not installed (what for; pip install ...)'}, read from
    the installed distributions' metadata (nothing is imported)."""
    from importlib import metadata

    out = {}
    for shown, dist, purpose in REPORTED:
        try:
            out[shown] = f"{metadata.version(dist)} ({purpose})"
        except metadata.PackageNotFoundError:
            hint = f"pip install 'vsrdata[{EXTRA_OF[dist]}]'" if dist in EXTRA_OF else f"pip install {dist}"
            out[shown] = f"not installed ({purpose}; {hint})"
    return out
