"""Blur kernels as pure functions of their parameters (numpy; scipy.special for the sinc).

The kernel families and their formulas follow BasicSR 1.4.2 ``basicsr/data/degradations.py``
(Real-ESRGAN), see ``docs/CONVENTIONS.md#real-world-degradations``:

* grid: integer offsets ``-(k//2) .. k//2`` on both axes (x along columns, y along rows);
* covariance ``R diag(sx^2, sy^2) R^T`` with ``R`` the rotation by ``theta`` (isotropic: sy = sx,
  theta ignored);
* ``q = [x y] C^-1 [x y]^T``; Gaussian ``exp(-q/2)``; generalized Gaussian ``exp(-0.5 q^beta)``;
  plateau ``1 / (q^beta + 1)``; each normalised to sum 1;
* sinc (circular low-pass): ``omega J1(omega r) / (2 pi r)``, centre ``omega^2 / (4 pi)``,
  normalised to sum 1.

Every kernel is float64, ``size x size`` (odd size).
"""

from __future__ import annotations

import math

import numpy as np

from vsrdata.errors import ConfigError

__all__ = ["KERNEL_TYPES", "make_kernel", "gaussian_family_kernel", "sinc_kernel"]

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"kernel size must be odd and positive, got {size}")
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float, isotropic: bool) -> np.ndarray:
    if sigma_x <= 0 or (not isotropic and sigma_y <= 0):
        raise ConfigError(f"kernel sigma must be > 0, got sigma_x={sigma_x}, sigma_y={sigma_y}")
    if isotropic:
        cov = np.array([[sigma_x ** 2, 0.0], [0.0, sigma_x ** 2]])
    else:
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[c, -s], [s, c]])
        cov = rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T
    inv = np.linalg.inv(cov)
    xx, yy = _grid(size)
    grid = np.stack([xx, yy], axis=-1)
    return np.sum((grid @ inv) * grid, axis=-1)


def gaussian_family_kernel(kind: str, size: int, sigma_x: float, sigma_y: float = 0.0, theta: float = 0.0,
                           beta: float = 1.0) -> np.ndarray:
    """Kernel of one Gaussian-family type (``iso``, ``aniso``, ``generalized_*``, ``plateau_*``)."""
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    q = _quadratic_form(size, sigma_x, sigma_y, theta, isotropic)
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    elif kind.startswith("plateau"):
        k = np.reciprocal(np.power(q, beta) + 1)
    else:
        raise ConfigError(f"unknown kernel type {kind!r} (choose from {', '.join(KERNEL_TYPES)})")
    return k / np.sum(k)


def sinc_kernel(size: int, omega: float) -> np.ndarray:
    """Circularly symmetric low-pass (sinc) kernel with cutoff ``omega`` (radians, pi = Nyquist)."""
    from scipy import special

    if not 0 < omega <= math.pi + 1e-9:
        raise ConfigError(f"sinc cutoff omega must be in (0, pi], got {omega}")
    xx, yy = _grid(size)
    r = np.sqrt(xx * xx + yy * yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = omega * special.j1(omega * r) / (2 * math.pi * r)
    k[size // 2, size // 2] = omega ** 2 / (4 * math.pi)
    return k / np.sum(k)


def make_kernel(params: dict) -> np.ndarray:
    """The kernel that a blur step's parameters describe (keys: ``kernel``, ``size`` and
    ``sigma_x``/``sigma_y``/``theta``/``beta`` or ``omega`` as that type needs)."""
    kind, size = params["kernel"], int(params["size"])
    if kind == "sinc":
        return sinc_kernel(size, float(params["omega"]))
    return gaussian_family_kernel(kind, size, float(params["sigma_x"]), float(params.get("sigma_y", 0.0)),
                                  float(params.get("theta", 0.0)), float(params.get("beta", 1.0)))
