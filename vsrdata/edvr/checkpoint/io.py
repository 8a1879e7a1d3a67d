"""Checkpoint file I/O: `load_object` (torch.load, weights only, one-line errors) and `save_atomic`.

A checkpoint is data, never code: every file is read with ``torch.load(weights_only=True)``
(a pickle that would import or call anything else is refused with CheckpointError). The only
extra types let through are numpy's array/scalar/dtype constructors, which some training
frameworks leave in a checkpoint's metadata. Both the zip and the legacy
(``_use_new_zipfile_serialization=False``) torch.save formats load.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from vsrdata.core.image_io import remove_stale_temps, temp_path_for
from vsrdata.errors import CheckpointError, OutputError

# numpy constructors that rebuild plain data (arrays, scalars, dtypes) and nothing else.
_NUMPY_DATA_GLOBALS = {
    "numpy.ndarray", "numpy.dtype",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
}


def load_object(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` on CPU; every failure is one CheckpointError line
    naming the file (PyTorch's multi-line advice to pass weights_only=False is never relayed)."""
    path = Path(path)
    try:
        return _torch_load(path)
    except pickle.UnpicklingError as exc:
        allowed = _numpy_globals_if_only_numpy(path)
        if allowed is not None:
            try:
                with torch.serialization.safe_globals(allowed):
                    return _torch_load(path)
            except Exception:
                pass
        _refuse_other_formats(path)
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
        _refuse_other_formats(path)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: not a torch.save file or truncated "
                              f"({type(exc).__name__}: {detail[:200]})") from None


def _torch_load(path: Path):
    """torch.load, weights only, on CPU; torch's two-line UserWarning about the pickle protocol
    of a file it then refuses is not shown (our one-line error says what the file is)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


# The start of a legacy (pre-zip) torch.save file: a pickled protocol-2 long, torch's magic number.
_LEGACY_TORCH = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _refuse_other_formats(path: Path) -> None:
    """CheckpointError saying what `path` is when it is an ONNX file or a plain pickle (not a
    torch.save file), instead of a misleading 'pickled objects' or 'truncated' message."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return
    if path.suffix.lower() == ".onnx" or (head[:1] == b"\x08" and b"pytorch" in head[:64]):
        raise CheckpointError(f"{path} is an ONNX file (a `vsrdata export` output), not a PyTorch checkpoint: "
                              f"run it with `vsrdata infer -c {path}`; export and convert-checkpoint need "
                              f"the .pth it came from")
    if (head[:1] == b"\x80" and not head.startswith(_LEGACY_TORCH) and not zipfile.is_zipfile(path)
            and not _imports_anything(path)):
        raise CheckpointError(f"cannot read checkpoint {path}: it is a plain pickle, not a torch.save file "
                              f"(save the weights with torch.save)")


def _imports_anything(path: Path) -> bool:
    """True when the pickle in `path` names any global (class or function; read with
    pickletools, nothing is run), or cannot be parsed: then it is refused as code."""
    import pickletools

    try:
        with open(path, "rb") as fh:
            return any(op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE")
                       for op, _, _ in pickletools.genops(fh))
    except Exception:
        return True


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



def load_dict(path: str | os.PathLike) -> dict:
    """`load_object`, and the object must be a dict (CheckpointError otherwise)."""
    obj = load_object(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    return obj


def save_atomic(obj: Any, path: str | os.PathLike, *, legacy_format: bool = False) -> None:
    """torch.save to a temporary sibling, fsync, then os.replace: readers never see half a file.
    A failing write (disk full, no permission) is one OutputError line naming the file and leaves
    no temporary behind.

    legacy_format=True writes the pre-1.6 non-zip format (what old tools expect).
    """
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save(obj, fh, _use_new_zipfile_serialization=not legacy_format)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
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

