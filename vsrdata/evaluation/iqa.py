"""LPIPS (learned perceptual distance, Zhang et al. 2018), version 0.1, AlexNet trunk, from local files.

docs/CONVENTIONS.md#lpips. Nothing is downloaded: two weight files must already be on disk, in the
formats their publishers distribute them:

- the trunk: torchvision's ImageNet AlexNet, `alexnet-owt-7be5be79.pth` (a state dict whose
  `features.{0,3,6,8,10}.{weight,bias}` are the five convolutions);
- the calibrated linear layers: the `lpips` package's `weights/v0.1/alex.pth` (state dict
  `lin{0..4}.model.1.weight`, shapes 1 x C x 1 x 1).

They are looked for in the folder given (`--iqa-weights`), then the trunk in torch hub's
checkpoint folder (`torch.hub.get_dir()/checkpoints`, where torchvision caches it) and the linear
layers inside an installed `lpips` package (`pip install 'vsrdata[iqa]'`). A missing file is one
ConfigError line naming the file and where to put it.

The network (our code; the structure is the published one): input RGB in [-1, 1], shifted by
(-0.030, -0.088, -0.188) and divided by (0.458, 0.448, 0.450) per channel; AlexNet convolutions
11x11/4 pad 2 (64), max-pool 3/2, 5x5 pad 2 (192), max-pool 3/2, 3x3 pad 1 (384, 256, 256), each
followed by ReLU; the five ReLU outputs are normalised to unit length over channels (eps 1e-10),
their squared difference weighted per channel by the linear layers, averaged over space and summed.
The torch package is needed, torchvision and lpips are not.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

import numpy as np

from vsrdata.errors import ConfigError

__all__ = ["LIN_FILE", "TRUNK_FILE", "find_weights", "load_lpips", "locate", "read_state", "take"]

TRUNK_FILE = "alexnet-owt-7be5be79.pth"
LIN_FILE = "alex.pth"
CHANNELS = (64, 192, 384, 256, 256)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# (features index, in, out, kernel, stride, padding, max-pool before it)
_CONVS = ((0, 3, 64, 11, 4, 2, False), (3, 64, 192, 5, 1, 2, True), (6, 192, 384, 3, 1, 1, True),
          (8, 384, 256, 3, 1, 1, False), (10, 256, 256, 3, 1, 1, False))


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _lpips_package_file() -> Path | None:
    spec = importlib.util.find_spec("lpips")  # located, not imported (lpips imports torchvision)
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "weights" / "v0.1" / LIN_FILE


def locate(name: str, folder: Path | None, fallbacks: list[Path], metric: str, what: str,
           where_else: str = "") -> Path:
    """The weight file `name` in `folder`, else the first of `fallbacks` (full paths) that exists;
    ConfigError (one line: the file, what it is, where to put it) when none does."""
    places = ([folder / name] if folder else []) + fallbacks
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        target = places[0].parent if places else "the --iqa-weights folder"
        raise ConfigError(f"{metric} needs {name} ({what}); put it in {target}{where_else} (nothing is downloaded)")
    return found


def find_weights(folder: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(trunk file, linear-layer file) of LPIPS; ConfigError naming the first one missing."""
    folder = Path(folder) if folder else None
    trunk = locate(TRUNK_FILE, folder, [_hub_checkpoints() / TRUNK_FILE], "LPIPS", "torchvision's ImageNet AlexNet")
    lin = locate(LIN_FILE, folder, [p for p in [_lpips_package_file()] if p], "LPIPS",
                 "its linear layers, lpips package weights/v0.1/alex.pth", " or pip install 'vsrdata[iqa]'")
    return trunk, lin


def read_state(path: Path) -> dict:
    """A weight file's state dict (torch.load, weights only); ConfigError for an unreadable file."""
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from None
    return sd.get("state_dict", sd) if isinstance(sd, dict) else {}


def take(sd: dict, key: str, shape: tuple, source: str, device):
    """sd[key] as float32 on `device`; ConfigError unless it exists with `shape`."""
    t = sd.get(key)
    if t is None or tuple(t.shape) != tuple(shape):
        got = None if t is None else tuple(t.shape)
        raise ConfigError(f"{source}: expected {key} of shape {tuple(shape)}, found {got}")
    return t.float().to(device)


def _build(trunk_sd: dict, lin_sd: dict, device):
    import torch
    import torch.nn.functional as F

    convs = [(take(trunk_sd, f"features.{i}.weight", (o, c, k, k), TRUNK_FILE, device),
              take(trunk_sd, f"features.{i}.bias", (o,), TRUNK_FILE, device), s, p, pool)
             for i, c, o, k, s, p, pool in _CONVS]
    lins = [take(lin_sd, f"lin{n}.model.1.weight", (1, ch, 1, 1), LIN_FILE, device) for n, ch in enumerate(CHANNELS)]
    shift = torch.tensor(_SHIFT, device=device).view(1, 3, 1, 1)
    scale = torch.tensor(_SCALE, device=device).view(1, 3, 1, 1)

    def features(x):
        h, out = (x - shift) / scale, []
        for w, b, s, p, pool in convs:
            if pool:
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, w, b, stride=s, padding=p))
            out.append(h / (torch.sqrt((h * h).sum(1, keepdim=True)) + 1e-10))
        return out

    def distance(a, b):
        with torch.inference_mode():
            fa, fb = features(a), features(b)
            return sum(F.conv2d((x - y) ** 2, lin).mean((2, 3)) for x, y, lin in zip(fa, fb, lins))

    return distance


def load_lpips(folder: str | os.PathLike | None = None, device: str = "cpu"
               ) -> Callable[[np.ndarray, np.ndarray], float]:
    """LPIPS-Alex v0.1 as a function of two HxWx3 uint8 RGB frames -> float (0 for identical),
    computed on `device` in float32."""
    import torch

    dev = torch.device(device)
    distance = _build(*(read_state(p) for p in find_weights(folder)), dev)

    def lpips(a: np.ndarray, b: np.ndarray) -> float:
        ta, tb = (torch.from_numpy(np.ascontiguousarray(x)).to(dev).permute(2, 0, 1)[None].float() / 127.5 - 1
                  for x in (a, b))
        return float(distance(ta, tb).item())

    return lpips
