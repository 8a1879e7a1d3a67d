"""Training checkpoints of a run directory: their names, which one to resume from, RNG state.

A run keeps `RUN/checkpoints/iter_XXXXXXXX.pth` (8-digit iteration) and `RUN/best.pth`, each a
dict with `format` 'vsrdata-train/2', the model weights (`params`, BasicSR-loadable; `params_ema`
when EMA is on), the model config under `config` (as in the vsrdata weights format), the
TrainConfig under `train_config`, optimiser / scheduler / AMP scaler / RNG states and the loop's
counters. Files of the first format ('vsrdata-train/1': model config under `model_config`,
TrainConfig under `config`) still resume and load.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vsrdata.edvr.checkpoint.io import load_dict
from vsrdata.edvr.checkpoint.weights import TRAIN_FORMATS
from vsrdata.errors import CheckpointError

_CKPT_RE = re.compile(r"^iter_(\d{8})\.pth$")


def checkpoint_path(run_dir: str | os.PathLike, iteration: int) -> Path:
    """RUN/checkpoints/iter_XXXXXXXX.pth of `iteration`."""
    return Path(run_dir) / "checkpoints" / f"iter_{iteration:08d}.pth"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(iteration, path) of the run's iteration checkpoints, newest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / name) for name in os.listdir(d) if (m := _CKPT_RE.match(name))]
    return sorted(found, reverse=True)


def remove_checkpoints(run_dir: str | os.PathLike, *, after: int | None = None, keep: int | None = None) -> None:
    """Delete the run's iteration checkpoints newer than iteration `after` (an abandoned timeline)
    or all but the `keep` newest. Files that cannot be removed are left."""
    found = list_checkpoints(run_dir)
    doomed = [p for it, p in found if it > after] if after is not None else [p for _, p in found[max(keep, 1):]]
    for path in doomed:
        with contextlib.suppress(OSError):
            path.unlink()


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """A vsrdata training checkpoint's content (CheckpointError for anything else)."""
    state = load_dict(path)
    if state.get("format") not in TRAIN_FORMATS or "iter" not in state:
        raise CheckpointError(f"{path} is not a vsrdata training checkpoint (use --init for weights)")
    return state


def find_resume_checkpoint(run_dir: str | os.PathLike, before: int | None = None,
                           skipped: list | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint of the run (older than iteration `before` if given) that loads and is
    ours, with its content. Newer ones that do not load are appended to `skipped` as (path, why)."""
    for iteration, path in list_checkpoints(run_dir):
        if before is not None and iteration >= before:
            continue
        try:
            state = load_dict(path)
        except CheckpointError as exc:
            why = str(exc)
        else:
            if state.get("format") in TRAIN_FORMATS and "iter" in state:
                return path, state
            why = f"{path} is not a vsrdata training checkpoint"
        if skipped is not None:
            skipped.append((path, why))
    return None


def auto_resume(run_dir: Path, note: Callable[[str], None]) -> tuple[Path, dict] | None:
    """`--resume auto`: the newest loadable checkpoint, naming each one skipped; None when the run
    has no checkpoint; CheckpointError when it has some and none loads (never a silent restart)."""
    skipped: list[tuple[Path, str]] = []
    found = find_resume_checkpoint(run_dir, skipped=skipped)
    if found is None and skipped:
        raise CheckpointError(f"--resume auto: none of the {len(skipped)} checkpoint(s) of {run_dir} loads ("
                              + "; ".join(why for _, why in skipped)
                              + "); move them away to start again from iteration 0")
    for path, why in skipped:
        note(f"skipped checkpoint {path.name}: {why}")
    if found is None:
        note(f"--resume auto: no checkpoint in {run_dir}, starting at iteration 0")
    return found


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global RNG states (python, numpy, torch, cuda) as tensors and plain data (weights_only-safe)."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (cuda states only where CUDA is present)."""
    random.setstate(_to_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(i) for i in x) if isinstance(x, (list, tuple)) else x
