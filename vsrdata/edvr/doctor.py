"""`doctor()`: is this installation able to run EDVR? Versions, devices and a DCN self-check.

Users of the field lose days to deformable-convolution builds that import but compute nonsense
("not compiled with GPU support", silent fallbacks, a broken CUDA arch). The check here needs
no weights: on every available device and DCN backend it runs a small modulated deformable
convolution forward + backward and compares it with references nobody here wrote:

- zero offsets and mask 1 must equal `torch.nn.functional.conv2d` (PyTorch's own kernel);
- integer offsets (+1 pixel in x) must equal `conv2d` of the input shifted by one pixel
  (zeros outside the image);
- the backends (pure PyTorch, torchvision when it imports) must agree with each other.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vsrdata.edvr.dcn import BACKENDS, modulated_deform_conv2d, resolve_backend, torchvision_available

_TOL = 1e-4  # float32, sums of 3*3*8 products of O(1) values


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class DoctorReport:
    info: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [f"{k:<18} {v}" for k, v in self.info.items()]
        out += [f"[{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else "")
                for c in self.checks]
        return out


def _case(device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 8, 9, 11, generator=g)
    weight = torch.randn(6, 8, 3, 3, generator=g) / 8
    bias = torch.randn(6, generator=g)
    groups = 2
    return [t.to(device) for t in (x, weight, bias)] + [groups]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def _check_backend(backend: str, device: torch.device) -> list[Check]:
    x, weight, bias, groups = _case(device)
    n, _, h, w = x.shape
    taps = groups * 9
    checks = []
    zero = torch.zeros(n, 2 * taps, h, w, device=device)
    ones = torch.ones(n, taps, h, w, device=device)
    out = modulated_deform_conv2d(x, zero, ones, weight, bias, padding=1, backend=backend)
    ref = F.conv2d(x, weight, bias, padding=1)
    d = _max_diff(out, ref)
    checks.append(Check(f"{backend} on {device}: zero offsets == conv2d", d < _TOL, f"max |diff| {d:.1e}"))

    shift = zero.clone()
    shift[:, 1::2] = 1.0  # dx = +1 for every group and tap
    out = modulated_deform_conv2d(x, shift, ones, weight, bias, padding=1, backend=backend)
    # Tap (ky, kx) of pixel (y, x) now reads x[y + ky, x + kx + 1], zero outside the image:
    # a valid conv2d over the input padded 1 row top/bottom, 0 columns left and 2 right.
    d = _max_diff(out, F.conv2d(F.pad(x, (0, 2, 1, 1)), weight, bias))
    checks.append(Check(f"{backend} on {device}: +1 px offsets == shifted conv2d", d < _TOL,
                        f"max |diff| {d:.1e}"))

    xg = x.clone().requires_grad_(True)
    off = (torch.rand(n, 2 * taps, h, w, device=device) * 3 - 1.5).requires_grad_(True)
    mask = torch.rand(n, taps, h, w, device=device).requires_grad_(True)
    y = modulated_deform_conv2d(xg, off, mask, weight, bias, padding=1, backend=backend)
    y.square().sum().backward()
    finite = all(bool(torch.isfinite(t).all()) for t in (y, xg.grad, off.grad, mask.grad))
    checks.append(Check(f"{backend} on {device}: forward + backward finite", finite))
    return checks


def _compare_backends(device: torch.device) -> Check:
    x, weight, bias, groups = _case(device, seed=1)
    n, _, h, w = x.shape
    g = torch.Generator().manual_seed(2)
    off = (torch.rand(n, 2 * groups * 9, h, w, generator=g) * 5 - 2.5).to(device)
    mask = torch.rand(n, groups * 9, h, w, generator=g).to(device)
    a = modulated_deform_conv2d(x, off, mask, weight, bias, padding=1, backend="torch")
    b = modulated_deform_conv2d(x, off, mask, weight, bias, padding=1, backend="torchvision")
    d = _max_diff(a, b)
    return Check(f"torch == torchvision on {device}", d < _TOL, f"max |diff| {d:.1e}")


def doctor(device: str | None = None) -> DoctorReport:
    """Versions, devices, the DCN backend each device would use, and the DCN self-checks.

    `device`: check only this one ('cpu', 'cuda', 'cuda:1'); default: CPU and, when available,
    the current CUDA device.
    """
    from vsrdata import __version__

    report = DoctorReport()
    report.info["vsrdata"] = __version__
    report.info["python"] = platform.python_version()
    report.info["torch"] = torch.__version__
    try:
        import torchvision

        report.info["torchvision"] = torchvision.__version__
    except Exception:  # noqa: BLE001 - absent or broken next to this torch
        report.info["torchvision"] = "not importable (the pure-PyTorch DCN is used)"
    from vsrdata.extras import extra_versions

    report.info.update(extra_versions())
    cuda = torch.cuda.is_available()
    report.info["cuda"] = (f"{torch.version.cuda}, {torch.cuda.get_device_name()} "
                           f"(sm_{''.join(map(str, torch.cuda.get_device_capability()))})" if cuda else "not available")
    devices = [torch.device(device)] if device else [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])
    backends = [b for b in BACKENDS if b != "torchvision" or torchvision_available()]
    for dev in devices:
        report.info[f"DCN on {dev}"] = f"{resolve_backend(None, dev)} (automatic choice)"
        for backend in backends:
            try:
                report.checks.extend(_check_backend(backend, dev))
            except Exception as exc:  # noqa: BLE001 - a broken kernel is exactly what we report
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                report.checks.append(Check(f"{backend} on {dev}: runs", False, first))
        if len(backends) > 1:
            try:
                report.checks.append(_compare_backends(dev))
            except Exception as exc:  # noqa: BLE001
                report.checks.append(Check(f"torch == torchvision on {dev}", False, str(exc).splitlines()[0]))
    return report
