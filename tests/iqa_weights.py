"""Deterministic stand-in LPIPS / DISTS weights in the published file formats (tests and fixtures).

`trunk_state()` has the keys and shapes of torchvision's AlexNet `features` convolutions
(`alexnet-owt-7be5be79.pth`), `lin_state()` those of the lpips package's `weights/v0.1/alex.pth`;
values come from numpy's default_rng(SEED) (He-scaled normals; non-negative linear weights, as
LPIPS keeps them), so any environment can rebuild them byte for byte. `vgg_arrays()` / `dists_arrays()` do the same for
torchvision's VGG16 `features` (`vgg16-397923af.pth`) and DISTS_pytorch's `weights.pt` (alpha, beta).
"""

from __future__ import annotations

import numpy as np

SEED = 20180111
CONVS = ((0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3), (8, 384, 256, 3), (10, 256, 256, 3))
CHANNELS = (64, 192, 384, 256, 256)


def trunk_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    out = {}
    for i, c, o, k in CONVS:
        out[f"features.{i}.weight"] = (rng.standard_normal((o, c, k, k)) * np.sqrt(2.0 / (c * k * k))).astype(np.float32)
        out[f"features.{i}.bias"] = (rng.standard_normal(o) * 0.01).astype(np.float32)
    return out


def lin_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED + 1)
    return {f"lin{n}.model.1.weight": np.abs(rng.standard_normal((1, ch, 1, 1)) * 0.1).astype(np.float32)
            for n, ch in enumerate(CHANNELS)}


VGG = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
       (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512))


def vgg_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED + 2)
    out = {}
    for i, c, o in VGG:
        w = rng.standard_normal((o, c, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2.0 / (c * 9)))
        out[f"features.{i}.weight"] = w
        out[f"features.{i}.bias"] = rng.standard_normal(o, dtype=np.float32) * np.float32(0.01)
    return out


def dists_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED + 3)
    return {k: np.abs(rng.normal(0.1, 0.03, (1, 1475, 1, 1))).astype(np.float32) for k in ("alpha", "beta")}


def save_dists(folder) -> None:
    """Write vgg16-397923af.pth and weights.pt (torch state dicts) into `folder`."""
    from collections import OrderedDict
    from pathlib import Path

    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in vgg_arrays().items()), folder / "vgg16-397923af.pth")
    torch.save({k: torch.from_numpy(v) for k, v in dists_arrays().items()}, folder / "weights.pt")


def save(folder) -> None:
    """Write alexnet-owt-7be5be79.pth and alex.pth (torch state dicts) into `folder`."""
    from collections import OrderedDict
    from pathlib import Path

    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in trunk_arrays().items()),
               folder / "alexnet-owt-7be5be79.pth")
    torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in lin_arrays().items()), folder / "alex.pth")


def save_pyiqa_lpips(hub_dir) -> None:
    """pyiqa's LPIPS (alex, v0.1) files in a torch hub folder laid out as pyiqa and torchvision
    look for them: `checkpoints/alexnet-owt-7be5be79.pth`, the whole torchvision AlexNet state dict
    (features from `trunk_arrays()`; the classifier, which LPIPS never runs, zeros stored as one
    broadcast element each so the file stays small) and `pyiqa/LPIPS_v0.1_alex-df73285e.pth`
    (`lin_arrays()`, the lpips package's key names, which pyiqa's LPIPS module shares)."""
    from collections import OrderedDict
    from pathlib import Path

    import torch

    hub = Path(hub_dir)
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "pyiqa").mkdir(parents=True, exist_ok=True)
    sd = OrderedDict((k, torch.from_numpy(v)) for k, v in trunk_arrays().items())
    for i, (n_in, n_out) in ((1, (9216, 4096)), (4, (4096, 4096)), (6, (4096, 1000))):
        sd[f"classifier.{i}.weight"] = torch.zeros(1).expand(n_out, n_in)
        sd[f"classifier.{i}.bias"] = torch.zeros(1).expand(n_out)
    torch.save(sd, hub / "checkpoints" / "alexnet-owt-7be5be79.pth")
    torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in lin_arrays().items()),
               hub / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
