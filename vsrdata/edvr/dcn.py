"""Modulated deformable convolution (DCNv2) as EDVR uses it, with no compiled extension needed.

Two backends with the same semantics:

- ``'torch'``: pure PyTorch. For every deformable group the kernel taps are bilinearly sampled
  with ``F.grid_sample`` (zeros outside the image), multiplied by the mask, and contracted with
  the weight in one matmul. Runs on any device, autograd gives all gradients. On CPU without
  autograd (inference) the same ops run in chunks of output rows, so the columns tensor (9x a
  feature map) never exists whole (`_deform_conv2d_rows`; 2x faster at 5x64x180x320,
  bench/bench_edvr.py).
- ``'torchvision'``: ``torchvision.ops.deform_conv2d`` (CPU and CUDA kernels), imported lazily.

Selection (`resolve_backend`): the explicit argument, else the environment variable
``VSRDATA_DCN=torch|torchvision``, else automatic: ``'torch'`` on CPU (measured faster there, see
docs/CONVENTIONS.md#dcn) and ``'torchvision'`` on CUDA when it
imports, otherwise ``'torch'``.

Conventions (they match torchvision's op and the BasicSR/mmcv CUDA kernel; docs/CONVENTIONS.md#dcn):

- offset: (N, 2*G*kh*kw, Ho, Wo); for group g and tap k (row-major over the kernel), channel
  2*(g*kh*kw + k) is dy and channel 2*(g*kh*kw + k) + 1 is dx (interleaved, not a y-half and an
  x-half).
- mask: (N, G*kh*kw, Ho, Wo), channel g*kh*kw + k, already passed through a sigmoid.
- output pixel (oy, ox), tap (i, j) samples the input at
  y = oy*stride - padding + i*dilation + dy,  x = ox*stride - padding + j*dilation + dx
  (for 3x3, stride 1, padding 1: y = oy + ky + dy with ky in {-1, 0, 1}), bilinear, with
  every corner outside the image contributing zero.
- group g reads input channels [g*Cin/G, (g+1)*Cin/G).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from vsrdata.errors import ConfigError

BACKENDS = ("torch", "torchvision")
ENV_VAR = "VSRDATA_DCN"

_tv_deform_conv2d = None
_tv_checked = False
_tv_error: BaseException | None = None


def _torchvision_op():
    """torchvision.ops.deform_conv2d, or None when torchvision does not import."""
    global _tv_deform_conv2d, _tv_checked, _tv_error
    if not _tv_checked:
        _tv_checked = True
        try:
            from torchvision.ops import deform_conv2d
        except Exception as exc:  # ImportError, or a torch/torchvision version mismatch at import
            deform_conv2d, _tv_error = None, exc
        _tv_deform_conv2d = deform_conv2d
    return _tv_deform_conv2d


def torchvision_available() -> bool:
    """True when `torchvision.ops.deform_conv2d` can be imported."""
    return _torchvision_op() is not None


def resolve_backend(backend: str | None = None, device: torch.device | str | None = None) -> str:
    """Pick the DCN backend: argument > $VSRDATA_DCN > auto (CPU: torch; CUDA: torchvision if present).

    Raises ConfigError for an unknown name, or when 'torchvision' is asked for but does not import.
    """
    source = "backend"
    if backend is None:
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env and env != "auto":
            backend, source = env, f"${ENV_VAR}"
    if backend is None or backend == "auto":
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if dev.type == "cuda" and torchvision_available():
            return "torchvision"
        return "torch"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown DCN {source} {backend!r} (choose from: {', '.join(BACKENDS)}, auto)")
    if backend == "torchvision" and not torchvision_available():
        from vsrdata.extras import install_hint, is_missing

        if is_missing(_tv_error, "torchvision"):
            raise ConfigError(install_hint("torchvision"))
        raise ConfigError(f"DCN {source} 'torchvision' requested but torchvision.ops.deform_conv2d "
                          "does not import; install torchvision matching torch, or use 'torch'")
    return backend


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (a, b)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return a, b


def _check_args(x, offset, mask, weight, bias, stride, padding, dilation):
    """Validate shapes; return (G, (sh, sw), (ph, pw), (dh, dw), (Ho, Wo))."""
    if x.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be (Cout, Cin, kh, kw), got shape {tuple(weight.shape)}")
    n, cin, h, w = x.shape
    cout, wcin, kh, kw = weight.shape
    if wcin != cin:
        raise ValueError(f"weight expects {wcin} input channels but input has {cin} "
                         "(grouped convolution is not supported)")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if dh < 1 or dw < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation!r}")
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{w} is too small for a {kh}x{kw} kernel with padding {padding!r}, "
                         f"dilation {dilation!r}")
    k = kh * kw
    if offset.dim() != 4 or offset.shape[1] % (2 * k) or offset.shape[1] == 0:
        raise ValueError(f"offset must be (N, 2*groups*{k}, Ho, Wo), got shape {tuple(offset.shape)}")
    groups = offset.shape[1] // (2 * k)
    if tuple(offset.shape) != (n, 2 * groups * k, ho, wo):
        raise ValueError(f"offset shape {tuple(offset.shape)} does not match the output "
                         f"(N={n}, Ho={ho}, Wo={wo})")
    if cin % groups:
        raise ValueError(f"deformable groups ({groups}, from the offset channels) must divide "
                         f"input channels ({cin})")
    if mask is not None and tuple(mask.shape) != (n, groups * k, ho, wo):
        raise ValueError(f"mask must have shape {(n, groups * k, ho, wo)}, got {tuple(mask.shape)}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"bias must have shape ({cout},), got {tuple(bias.shape)}")
    return groups, (sh, sw), (ph, pw), (dh, dw), (ho, wo)


def _sampling_dtype(x: torch.Tensor) -> torch.dtype:
    """Sample in float32 at least: bf16/fp16 coordinates would be off by a large fraction of a pixel."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _tap_origins(kernel, out_hw, stride, padding, dilation, device, dtype):
    """Where each tap of each output pixel samples before its offset, in input pixels:
    base_y (K, Ho, 1) and base_x (K, 1, Wo), taps row-major over the kernel."""
    (kh, kw), (ho, wo) = kernel, out_hw
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oy = torch.arange(ho, device=device, dtype=dtype) * sh - ph
    ox = torch.arange(wo, device=device, dtype=dtype) * sw - pw
    ty = (torch.arange(kh, device=device, dtype=dtype) * dh).repeat_interleave(kw)
    tx = (torch.arange(kw, device=device, dtype=dtype) * dw).repeat(kh)
    return (ty[:, None] + oy[None, :])[:, :, None], (tx[:, None] + ox[None, :])[:, None, :]


def _grid(py: torch.Tensor, px: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel positions (..., Ho', Wo) -> grid_sample coordinates (..., Ho', Wo, 2) for
    align_corners=False: p -> (2p + 1) / size - 1, which grid_sample maps back to p exactly. (The
    align_corners=True form 2p / (size - 1) - 1 is the same map but divides by zero for a
    1-pixel-wide input.)"""
    return torch.stack(((2.0 * px + 1.0) / w - 1.0, (2.0 * py + 1.0) / h - 1.0), dim=-1)


def _prepared(x, offset, mask, weight, bias, groups, out_hw):
    """Both pure paths' inputs in the sampling dtype: x, offset (N, G, K, 2, Ho, Wo), mask
    (N, G, K, Ho, Wo) or None, weight as (Cout, Cin*K) (column index c*K + k), bias or None."""
    n, cin = x.shape[:2]
    cout, _, kh, kw = weight.shape
    k = kh * kw
    dtype = _sampling_dtype(x)
    return (x.to(dtype), offset.to(dtype).view(n, groups, k, 2, *out_hw),
            None if mask is None else mask.to(dtype).view(n, groups, k, *out_hw),
            weight.reshape(cout, cin * k).to(dtype), None if bias is None else bias.to(dtype))


def _deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation, groups, out_hw):
    """Pure-PyTorch modulated deformable convolution (see the module docstring)."""
    n, cin, h, w = x.shape
    kernel = weight.shape[2:]
    k, cout = kernel.numel(), weight.shape[0]
    ho, wo = out_hw
    out_dtype = x.dtype
    x, off, mask, w2, bias = _prepared(x, offset, mask, weight, bias, groups, out_hw)

    # Sampling positions (N, G, K, Ho, Wo) in pixel units.
    base_y, base_x = _tap_origins(kernel, out_hw, stride, padding, dilation, x.device, x.dtype)
    grid = _grid(base_y + off[:, :, :, 0], base_x + off[:, :, :, 1], h, w).view(n * groups, k * ho, wo, 2)
    sampled = F.grid_sample(x.reshape(n * groups, cin // groups, h, w), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # (N*G, cg, K*Ho, Wo)
    sampled = sampled.view(n, groups, cin // groups, k, ho, wo)
    if mask is not None:
        sampled = sampled * mask[:, :, None]
    cols = sampled.reshape(n, cin * k, ho * wo)  # row index = c*K + k, as w2's columns
    out = torch.matmul(w2, cols)
    if bias is not None:
        out = out + bias.view(1, cout, 1)
    out = out.view(n, cout, ho, wo)
    return out if out.dtype == out_dtype else out.to(out_dtype)


_CHUNK_BYTES = 16 * 2**20  # sampled columns per chunk of the inference path


def _deform_conv2d_rows(x, offset, mask, weight, bias, stride, padding, dilation, groups, out_hw):
    """The same computation as `_deform_conv2d_torch` for inference (no autograd), in chunks of
    output rows per sample (docs/CONVENTIONS.md#dcn): each chunk samples at most `_CHUNK_BYTES` of
    columns (Cin*K x rows*Wo), modulates them in place and contracts them with the weight, so the
    columns never exist whole (9x a feature map for 3x3 taps) and one buffer size is reused, below
    glibc's 32 MiB mmap cap (docs/CONVENTIONS.md#cpu-heap).

    Coordinates, sampling and the mask product are the same ops on the same values as the whole
    path; only the contraction is split by output pixels (a GEMM per chunk), so results agree to
    float32 rounding of a Cin*K-term dot product. Chunks are computed as cols^T @ weight^T into an
    NHWC buffer, so the output is channels_last, or made contiguous when x is not channels_last.
    """
    n, cin, h, w = x.shape
    kernel = weight.shape[2:]
    k, cout = kernel.numel(), weight.shape[0]
    ho, wo = out_hw
    out_dtype = x.dtype
    keep_nchw = x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last)
    x, offset, mask, w2, bias = _prepared(x, offset, mask, weight, bias, groups, out_hw)
    base_y, base_x = _tap_origins(kernel, out_hw, stride, padding, dilation, x.device, x.dtype)
    out = torch.empty(n, ho, wo, cout, device=x.device, dtype=x.dtype)  # NHWC: a chunk is one block
    rows = max(1, _CHUNK_BYTES // (cin * k * wo * x.element_size()))
    for i in range(n):
        xi = x[i].reshape(groups, cin // groups, h, w)  # a view for channels_last and contiguous x alike
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            grid = _grid(base_y[:, r0:r1] + offset[i, :, :, 0, r0:r1], base_x + offset[i, :, :, 1, r0:r1],
                         h, w).view(groups, k * (r1 - r0), wo, 2)  # (G, K*r, Wo, 2)
            cols = F.grid_sample(xi, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False).view(groups, cin // groups, k, r1 - r0, wo)
            if mask is not None:
                cols.mul_(mask[i, :, None, :, r0:r1])
            dst = out[i, r0:r1].view((r1 - r0) * wo, cout)
            torch.mm(cols.view(cin * k, (r1 - r0) * wo).t(), w2.t(), out=dst)
            if bias is not None:
                dst.add_(bias)
    out = out.permute(0, 3, 1, 2)  # channels_last strides
    if keep_nchw:
        out = out.contiguous()
    return out if out.dtype == out_dtype else out.to(out_dtype)


def _deform_conv2d_torchvision(x, offset, mask, weight, bias, stride, padding, dilation):
    """torchvision's kernel, always run in float32 (float64 stays float64) with autocast off:
    its CPU kernel has no bf16/fp16 and it needs one dtype for all arguments. The result is cast
    back to x's dtype, as the pure path does (and as torchvision's own CUDA autocast rule does)."""
    op = _torchvision_op()
    dtype = _sampling_dtype(x)
    args = [t if t is None or t.dtype == dtype else t.to(dtype) for t in (x, offset, mask, weight, bias)]
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = op(args[0], args[1], args[3], args[4], stride=stride, padding=padding, dilation=dilation,
                 mask=args[2])
    return out if out.dtype == x.dtype else out.to(x.dtype)


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None,
                            weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1,
                            padding=1, dilation=1, backend: str | None = None) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2).

    Args:
        x: (N, Cin, H, W) float input.
        offset: (N, 2*G*kh*kw, Ho, Wo), interleaved (dy, dx) per group and tap, in pixels.
        mask: (N, G*kh*kw, Ho, Wo) modulation (already sigmoid-ed), or None for plain DCNv1.
        weight: (Cout, Cin, kh, kw); bias: (Cout,) or None.
        stride, padding, dilation: int or (h, w) pair, as in `F.conv2d`.
        backend: 'torch', 'torchvision' or None (see `resolve_backend`).

    Returns (N, Cout, Ho, Wo) in x's dtype. Raises ValueError for inconsistent shapes.
    """
    groups, stride, padding, dilation, out_hw = _check_args(x, offset, mask, weight, bias, stride,
                                                            padding, dilation)
    backend = resolve_backend(backend, x.device)
    if backend == "torchvision":
        return _deform_conv2d_torchvision(x, offset, mask, weight, bias, stride, padding, dilation)
    tensors = (x, offset, mask, weight, bias)
    autograd = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    # CUDA keeps one launch per op; a trace (ONNX export) must not bake in the chunk loop's counts.
    if autograd or x.device.type != "cpu" or torch.jit.is_tracing():
        return _deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation, groups, out_hw)
    return _deform_conv2d_rows(x, offset, mask, weight, bias, stride, padding, dilation, groups, out_hw)


class DCNv2Pack(nn.Module):
    """EDVR's DCN pack: offsets and mask come from `conv_offset` applied to a separate feature map.

    Parameter names and init follow BasicSR's `DCNv2Pack` / `ModulatedDeformConvPack` (so official
    checkpoints load): `weight` (Cout, Cin, k, k) uniform +-1/sqrt(Cin*k*k), `bias` zero,
    `conv_offset` = Conv2d(in_channels -> deformable_groups*3*k*k) zero-initialised (offset 0 and
    mask 0.5 at init). The conv_offset output is chunked into 3 equal parts; the first two
    concatenated are the offsets (interleaved dy, dx; docs/CONVENTIONS.md#dcn), the third goes through a
    sigmoid to give the mask.

    forward(x, feat): x (N, Cin, H, W) is the feature map to align, feat (N, Cin, H, W) the offset
    feature. With `monitor_offsets = True` the module keeps `last_offset_mean`, mean |offset| of
    the last forward as a detached 0-dim tensor on the input's device (no host sync).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, deformable_groups: int = 8,
                 backend: str | None = None) -> None:
        super().__init__()
        if in_channels % deformable_groups:
            raise ConfigError(f"deformable_groups ({deformable_groups}) must divide in_channels "
                              f"({in_channels})")
        if backend is not None and backend != "auto" and backend not in BACKENDS:
            raise ConfigError(f"unknown DCN backend {backend!r} (choose from: {', '.join(BACKENDS)}, auto)")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.deformable_groups = deformable_groups
        self.backend = backend
        self.monitor_offsets = False
        self.last_offset_mean: torch.Tensor | None = None
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.conv_offset = nn.Conv2d(in_channels, deformable_groups * 3 * kh * kw, (kh, kw),
                                     stride=self.stride, padding=self.padding, dilation=self.dilation,
                                     bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # BasicSR ModulatedDeformConv.init_weights: uniform(-1/sqrt(n), 1/sqrt(n)), n = Cin*kh*kw.
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
            self.bias.zero_()
            self.conv_offset.weight.zero_()
            self.conv_offset.bias.zero_()

    def forward(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        out = self.conv_offset(feat)
        o1, o2, m = torch.chunk(out, 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        mask = torch.sigmoid(m)
        if self.monitor_offsets:
            self.last_offset_mean = offset.detach().abs().mean()
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride,
                                       self.padding, self.dilation, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"deformable_groups={self.deformable_groups}, backend={self.backend or 'auto'}")
