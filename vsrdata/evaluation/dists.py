"""DISTS (Ding et al. 2020, structure and texture similarity) from local weight files.

docs/CONVENTIONS.md#lpips. Lower is more similar (0 for identical frames). Two files, in the formats
their publishers distribute, looked for in the folder given (`--iqa-weights`), then the trunk in
torch hub's checkpoint folder and the DISTS weights inside an installed `DISTS_pytorch` package:

- `vgg16-397923af.pth`: torchvision's ImageNet VGG16 (`features.{0,2,5,7,10,12,14,17,19,21,24,26,28}`);
- `weights.pt` of the DISTS_pytorch package: `alpha`, `beta` (1 x 1475 x 1 x 1).

The network (our code; the published structure): RGB in [0, 1] normalised with the ImageNet mean
(0.485, 0.456, 0.406) and deviation (0.229, 0.224, 0.225); VGG16's 3x3 convolutions with ReLU in five
stages (2, 2, 3, 3, 3 convolutions; 64, 128, 256, 512, 512 channels), each max-pool replaced by an
L2 pool (sqrt of the depthwise 3x3 [.25 .5 .25]-outer-product blur of the square, stride 2, pad 1,
+1e-12); the input and the five stage outputs give, per channel, the similarities of means
S1 = (2 mx my + c) / (mx^2 + my^2 + c) and of covariances S2 = (2 cxy + c) / (vx + vy + c), c = 1e-6;
DISTS = 1 - sum(alpha S1 + beta S2) / sum(alpha + beta).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

import numpy as np

from vsrdata.evaluation.iqa import _hub_checkpoints, locate, read_state, take

__all__ = ["ALPHA_FILE", "VGG_FILE", "load_dists"]

VGG_FILE = "vgg16-397923af.pth"
ALPHA_FILE = "weights.pt"
# stages: (features index, in channels, out channels) of each 3x3 convolution
STAGES = (((0, 3, 64), (2, 64, 64)), ((5, 64, 128), (7, 128, 128)),
          ((10, 128, 256), (12, 256, 256), (14, 256, 256)), ((17, 256, 512), (19, 512, 512), (21, 512, 512)),
          ((24, 512, 512), (26, 512, 512), (28, 512, 512)))
CHANNELS = (3, 64, 128, 256, 512, 512)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _package_file() -> list[Path]:
    spec = importlib.util.find_spec("DISTS_pytorch")  # located, not imported (it imports torchvision)
    return [Path(spec.origin).parent / ALPHA_FILE] if spec is not None and spec.origin else []


def _network(vgg: dict, ab: dict, device):
    import torch
    import torch.nn.functional as F

    convs = [[(take(vgg, f"features.{i}.weight", (o, c, 3, 3), VGG_FILE, device),
               take(vgg, f"features.{i}.bias", (o,), VGG_FILE, device)) for i, c, o in stage] for stage in STAGES]
    n = sum(CHANNELS)
    alpha, beta = (take(ab, k, (1, n, 1, 1), ALPHA_FILE, device) for k in ("alpha", "beta"))
    total = alpha.sum() + beta.sum()
    alpha, beta = torch.split(alpha / total, CHANNELS, dim=1), torch.split(beta / total, CHANNELS, dim=1)
    blur = torch.tensor([0.5, 1.0, 0.5], device=device)
    blur = (blur[:, None] * blur[None, :]) / 4
    mean = torch.tensor(_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=device).view(1, 3, 1, 1)

    def features(x):
        h, out = (x - mean) / std, [x]
        for k, stage in enumerate(convs):
            if k:
                c = h.shape[1]
                h = torch.sqrt(F.conv2d(h * h, blur.expand(c, 1, 3, 3), stride=2, padding=1, groups=c) + 1e-12)
            for w, b in stage:
                h = F.relu(F.conv2d(h, w, b, padding=1))
            out.append(h)
        return out

    def distance(x, y):
        with torch.inference_mode():
            d1 = d2 = 0
            for fx, fy, a, b in zip(features(x), features(y), alpha, beta):
                mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
                vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
                cxy = (fx * fy).mean((2, 3), keepdim=True) - mx * my
                d1 = d1 + (a * (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)).sum(1)
                d2 = d2 + (b * (2 * cxy + 1e-6) / (vx + vy + 1e-6)).sum(1)
            return 1 - (d1 + d2).squeeze()

    return distance


def load_dists(folder: str | os.PathLike | None = None, device: str = "cpu"
               ) -> Callable[[np.ndarray, np.ndarray], float]:
    """DISTS as a function of two HxWx3 uint8 RGB frames -> float, computed on `device` in float32."""
    import torch

    folder = Path(folder) if folder else None
    vgg = locate(VGG_FILE, folder, [_hub_checkpoints() / VGG_FILE], "DISTS", "torchvision's ImageNet VGG16")
    ab = locate(ALPHA_FILE, folder, _package_file(), "DISTS", "alpha/beta of the DISTS_pytorch package")
    dev = torch.device(device)
    distance = _network(read_state(vgg), read_state(ab), dev)

    def dists(a: np.ndarray, b: np.ndarray) -> float:
        ta, tb = (torch.from_numpy(np.ascontiguousarray(x)).to(dev).permute(2, 0, 1)[None].float() / 255.0
                  for x in (a, b))
        return float(distance(ta, tb).item())

    return dists
