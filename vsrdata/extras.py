"""Optional dependencies (the pyproject extras) and the one-line hint when one is missing.

    torchvision  -> pip install 'vsrdata[torchvision]'   (DCN backend 'torchvision')
    tensorboard  -> pip install 'vsrdata[tensorboard]'   (train: RUN/tb/ scalars)
    onnx, onnxruntime, onnxscript -> pip install 'vsrdata[onnx]'

Use `require(...)` at the point of use (never at import time, so `vsrdata --help` stays light).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vsrdata.errors import ConfigError

EXTRA_OF = {"torchvision": "torchvision", "tensorboard": "tensorboard", "onnx": "onnx",
            "onnxruntime": "onnx", "onnxscript": "onnx"}


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
