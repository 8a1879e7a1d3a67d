"""Modulated deformable convolution: pure-PyTorch path vs an obviously-correct per-pixel reference,
vs plain convolution, and vs torchvision's kernel where torchvision is installed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vsrdata.edvr import dcn
from vsrdata.edvr.dcn import DCNv2Pack, modulated_deform_conv2d, resolve_backend
from vsrdata.errors import ConfigError

D64 = torch.float64


# --------------------------------------------------------------------------------------------
# Reference: explicit loops, explicit bilinear sampling with zero outside the image. Written from
# the convention in EDVR_SPEC §1.3 / MEASUREMENTS.md (offset channel 2*(g*K+k) = dy, +1 = dx;
# tap (i, j) of output (oy, ox) samples (oy*s - p + i*d + dy, ox*s - p + j*d + dx)).
# --------------------------------------------------------------------------------------------
def _bilinear(img: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """img (C, H, W); y, x 0-dim tensors (differentiable). Corners outside count as zero."""
    _, h, w = img.shape
    y0 = math.floor(float(y.detach()))
    x0 = math.floor(float(x.detach()))
    ly, lx = y - y0, x - x0
    total = torch.zeros(img.shape[0], dtype=img.dtype)
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                total = total + img[:, yy, xx] * wy * wx
    return total


def reference_dcn(x, offset, mask, weight, bias, stride=1, padding=1, dilation=1):
    n, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    k_count = kh * kw
    groups = offset.shape[1] // (2 * k_count)
    cg = cin // groups
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    rows = []
    for b in range(n):
        pix = []
        for oy in range(ho):
            for ox in range(wo):
                col_list = []
                for g in range(groups):
                    taps = []
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = offset[b, 2 * (g * k_count + k), oy, ox]
                            dx = offset[b, 2 * (g * k_count + k) + 1, oy, ox]
                            y = oy * stride - padding + i * dilation + dy
                            xq = ox * stride - padding + j * dilation + dx
                            v = _bilinear(x[b, g * cg:(g + 1) * cg], y, xq)
                            if mask is not None:
                                v = v * mask[b, g * k_count + k, oy, ox]
                            taps.append(v)
                    col_list.append(torch.stack(taps, dim=1))  # (cg, K)
                col = torch.cat(col_list, 0).reshape(-1)  # index c*K + k
                val = weight.reshape(cout, -1) @ col
                if bias is not None:
                    val = val + bias
                pix.append(val)
        rows.append(torch.stack(pix, 1).reshape(cout, ho, wo))
    return torch.stack(rows)


def _inputs(n=1, cin=4, cout=3, h=4, w=5, groups=2, k=3, scale=1.5, seed=0, out_hw=None, dtype=D64):
    gen = torch.Generator().manual_seed(seed)
    ho, wo = out_hw or (h, w)
    x = torch.randn(n, cin, h, w, generator=gen, dtype=dtype)
    offset = torch.randn(n, 2 * groups * k * k, ho, wo, generator=gen, dtype=dtype) * scale
    mask = torch.rand(n, groups * k * k, ho, wo, generator=gen, dtype=dtype)
    weight = torch.randn(cout, cin, k, k, generator=gen, dtype=dtype)
    bias = torch.randn(cout, generator=gen, dtype=dtype)
    return x, offset, mask, weight, bias


@pytest.fixture(autouse=True)
def _no_env_backend(monkeypatch):
    monkeypatch.delenv("VSRDATA_DCN", raising=False)


# -- values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.7, 3.0])  # 3.0: many samples fall partly or fully outside
def test_pure_matches_reference_values(scale):
    x, offset, mask, weight, bias = _inputs(n=2, scale=scale, seed=1)
    out = modulated_deform_conv2d(x, offset, mask, weight, bias, backend="torch")
    ref = reference_dcn(x, offset, mask, weight, bias)
    assert out.shape == (2, 3, 4, 5)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride,padding,dilation", [(2, 1, 1), (1, 2, 2), (1, 0, 1)])
def test_pure_matches_reference_other_geometry(stride, padding, dilation):
    h, w = 5, 6
    ho = (h + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (w + 2 * padding - dilation * 2 - 1) // stride + 1
    x, offset, mask, weight, bias = _inputs(h=h, w=w, out_hw=(ho, wo), seed=2)
    out = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, backend="torch")
    ref = reference_dcn(x, offset, mask, weight, bias, stride, padding, dilation)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("h,w", [(1, 5), (4, 1), (1, 1)])
def test_one_pixel_wide_maps(h, w):
    # The align_corners=True normalisation divides by size - 1 = 0 here.
    x, offset, mask, weight, bias = _inputs(h=h, w=w, scale=0.8, seed=3)
    out = modulated_deform_conv2d(x, offset, mask, weight, bias, backend="torch")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference_dcn(x, offset, mask, weight, bias), rtol=1e-10, atol=1e-10)
    # zero offsets and unit mask: a plain convolution
    zero = torch.zeros_like(offset)
    ones = torch.ones_like(mask)
    torch.testing.assert_close(modulated_deform_conv2d(x, zero, ones, weight, bias, backend="torch"),
                               F.conv2d(x, weight, bias, padding=1), rtol=1e-12, atol=1e-12)


def test_zero_offset_unit_mask_is_plain_conv2d():
    x, offset, mask, weight, bias = _inputs(n=2, cin=8, cout=5, h=7, w=6, groups=4, dtype=torch.float32)
    out = modulated_deform_conv2d(x, torch.zeros_like(offset), torch.ones_like(mask), weight, bias,
                                  backend="torch")
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1), rtol=1e-5, atol=1e-5)


def test_offset_layout_is_interleaved_dy_dx():
    # dx = +1 everywhere shifts the sampling one pixel right, dy = -1 one pixel up; compared with
    # plain conv2d of a shifted image (away from the border the shift brings in).
    x, offset, mask, weight, bias = _inputs(h=5, w=6, seed=4)
    ones = torch.ones_like(mask)
    off = torch.zeros_like(offset)
    off[:, 1::2] = 1.0
    shifted = F.pad(x[..., 1:], (0, 1))
    out = modulated_deform_conv2d(x, off, ones, weight, bias, backend="torch")
    torch.testing.assert_close(out[..., 1:], F.conv2d(shifted, weight, bias, padding=1)[..., 1:])
    off = torch.zeros_like(offset)
    off[:, 0::2] = -1.0
    shifted = F.pad(x[..., :-1, :], (0, 0, 1, 0))
    out = modulated_deform_conv2d(x, off, ones, weight, bias, backend="torch")
    torch.testing.assert_close(out[..., :-1, :], F.conv2d(shifted, weight, bias, padding=1)[..., :-1, :])


def test_group_uses_its_own_channels_and_mask():
    # Mask out group 1 entirely: the result equals a conv over group 0's channels only.
    x, offset, mask, weight, bias = _inputs(cin=4, groups=2, seed=5)
    m = torch.ones_like(mask)
    m[:, 9:] = 0
    out = modulated_deform_conv2d(x, torch.zeros_like(offset), m, weight, bias, backend="torch")
    ref = F.conv2d(x[:, :2], weight[:, :2], bias, padding=1)
    torch.testing.assert_close(out, ref)


def test_offsets_entirely_outside_give_bias_only():
    x, offset, mask, weight, bias = _inputs(seed=6)
    far = torch.full_like(offset, 50.0)
    out = modulated_deform_conv2d(x, far, mask, weight, bias, backend="torch")
    torch.testing.assert_close(out, bias.view(1, -1, 1, 1).expand_as(out))


def test_no_mask_means_unit_mask():
    x, offset, mask, weight, bias = _inputs(seed=7)
    a = modulated_deform_conv2d(x, offset, None, weight, bias, backend="torch")
    b = modulated_deform_conv2d(x, offset, torch.ones_like(mask), weight, bias, backend="torch")
    torch.testing.assert_close(a, b)


# -- gradients ---------------------------------------------------------------------------------
def test_pure_gradients_match_reference():
    x, offset, mask, weight, bias = _inputs(n=1, h=3, w=4, scale=2.0, seed=8)
    leaves = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    refs = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    gen = torch.Generator().manual_seed(9)
    gout = torch.randn(1, 3, 3, 4, generator=gen, dtype=D64)
    (modulated_deform_conv2d(*leaves, backend="torch") * gout).sum().backward()
    (reference_dcn(*refs) * gout).sum().backward()
    for name, a, b in zip(("input", "offset", "mask", "weight", "bias"), leaves, refs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9, msg=f"grad wrt {name}")


def test_gradcheck_pure():
    # Offsets = integer + fraction in [0.2, 0.8]: far from the kinks of bilinear sampling.
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(1, 2, 3, 3, generator=gen, dtype=D64, requires_grad=True)
    frac = 0.2 + 0.6 * torch.rand(1, 2 * 2 * 9, 3, 3, generator=gen, dtype=D64)
    whole = torch.randint(-2, 2, (1, 36, 3, 3), generator=gen).to(D64)
    offset = (whole + frac).requires_grad_(True)
    mask = torch.rand(1, 18, 3, 3, generator=gen, dtype=D64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, generator=gen, dtype=D64, requires_grad=True)
    bias = torch.randn(2, generator=gen, dtype=D64, requires_grad=True)

    def fn(*args):
        return modulated_deform_conv2d(*args, backend="torch")

    assert torch.autograd.gradcheck(fn, (x, offset, mask, weight, bias), eps=1e-6, atol=1e-6)


def test_float32_matches_float64():
    x, offset, mask, weight, bias = _inputs(n=2, cin=8, groups=4, h=6, w=7, seed=11)
    out64 = modulated_deform_conv2d(x, offset, mask, weight, bias, backend="torch")
    out32 = modulated_deform_conv2d(*(t.float() for t in (x, offset, mask, weight, bias)), backend="torch")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-4)


# -- the two pure paths: whole columns (autograd) and row chunks (inference) ----------------------
def _both_paths(args, kwargs=None):
    """(whole-columns output, row-chunk output): autograd on for one input selects the first."""
    kwargs = kwargs or {}
    with torch.no_grad():
        chunked = modulated_deform_conv2d(*args, backend="torch", **kwargs)
    grad_args = [args[0].clone().requires_grad_(True), *args[1:]]
    whole = modulated_deform_conv2d(*grad_args, backend="torch", **kwargs).detach()
    return whole, chunked


@pytest.mark.parametrize("chunk_bytes", [1, 700, 10**9])  # 1 row / 2-row chunks + a ragged last / one chunk
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("with_mask,with_bias", [(True, True), (False, False)])
def test_row_chunks_match_reference(monkeypatch, chunk_bytes, channels_last, with_mask, with_bias):
    monkeypatch.setattr(dcn, "_CHUNK_BYTES", chunk_bytes)
    x, offset, mask, weight, bias = _inputs(n=2, cin=8, cout=6, h=5, w=6, groups=4, scale=2.0, seed=21)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    args = (x, offset, mask if with_mask else None, weight, bias if with_bias else None)
    whole, chunked = _both_paths(args)
    ref = reference_dcn(*args)
    torch.testing.assert_close(chunked, ref, rtol=1e-10, atol=1e-10)  # float64: rounding only
    torch.testing.assert_close(whole, ref, rtol=1e-10, atol=1e-10)
    assert chunked.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("stride,padding,dilation", [(2, 1, 1), (1, 2, 2), (1, 0, 1)])
def test_row_chunks_other_geometry(monkeypatch, stride, padding, dilation):
    monkeypatch.setattr(dcn, "_CHUNK_BYTES", 500)
    h, w = 7, 6
    ho = (h + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (w + 2 * padding - dilation * 2 - 1) // stride + 1
    args = _inputs(h=h, w=w, out_hw=(ho, wo), seed=22)
    whole, chunked = _both_paths(args, dict(stride=stride, padding=padding, dilation=dilation))
    ref = reference_dcn(*args, stride, padding, dilation)
    torch.testing.assert_close(chunked, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(whole, ref, rtol=1e-10, atol=1e-10)


def test_row_chunks_float32_agree_with_whole_columns():
    """float32, EDVR's shape (64 channels, 8 groups, 3x3): sampling and modulation are the same ops,
    only the GEMM's summation order of the 576-term dot product (+ bias) may differ. Each path is
    within gamma_577 * sum|terms| of the exact sum (Higham, dot products), and a sampled value is at
    most max|x| (bilinear weights and the mask are in [0, 1]), so the paths differ by at most
    2 * 577 * eps * (max|x| * max_row sum|W| + max|b|)."""
    x, offset, mask, weight, bias = _inputs(n=2, cin=64, cout=64, h=12, w=20, groups=8, scale=2.0,
                                            seed=23, dtype=torch.float32)
    whole, chunked = _both_paths((x, offset, mask, weight, bias))
    terms = x.abs().max() * weight.abs().reshape(64, -1).sum(1).max() + bias.abs().max()
    bound = 2 * 577 * torch.finfo(torch.float32).eps * terms.item()
    assert (whole - chunked).abs().max().item() <= bound


# -- validation and backend selection ------------------------------------------------------------
def test_shape_errors_name_the_argument():
    x, offset, mask, weight, bias = _inputs()
    with pytest.raises(ValueError, match="offset"):
        modulated_deform_conv2d(x, offset[:, :-1], mask, weight, bias, backend="torch")
    with pytest.raises(ValueError, match="mask"):
        modulated_deform_conv2d(x, offset, mask[:, :-1], weight, bias, backend="torch")
    with pytest.raises(ValueError, match="bias"):
        modulated_deform_conv2d(x, offset, mask, weight, bias[:-1], backend="torch")
    with pytest.raises(ValueError, match="input channels"):
        modulated_deform_conv2d(x[:, :3], offset, mask, weight, bias, backend="torch")
    with pytest.raises(ValueError, match="stride"):
        modulated_deform_conv2d(x, offset, mask, weight, bias, stride=0, backend="torch")
    with pytest.raises(ValueError, match="deformable groups"):
        g3 = torch.zeros(1, 2 * 3 * 9, 4, 5, dtype=D64)
        modulated_deform_conv2d(x, g3, None, weight, bias, backend="torch")


def test_backend_selection(monkeypatch):
    assert resolve_backend(None, "cpu") == "torch"  # auto on CPU: the faster pure path
    assert resolve_backend("torch") == "torch"
    monkeypatch.setenv("VSRDATA_DCN", "torch")
    assert resolve_backend(None, "cuda") == "torch"  # env beats auto
    monkeypatch.setenv("VSRDATA_DCN", "bogus")
    with pytest.raises(ConfigError, match="VSRDATA_DCN"):
        resolve_backend(None)
    assert resolve_backend("torch") == "torch"  # argument beats env
    with pytest.raises(ConfigError, match="unknown DCN backend 'cudnn'"):
        resolve_backend("cudnn")


def test_torchvision_requested_but_missing(monkeypatch):
    monkeypatch.setattr(dcn, "_tv_checked", True)
    monkeypatch.setattr(dcn, "_tv_deform_conv2d", None)
    with pytest.raises(ConfigError, match="torchvision"):
        resolve_backend("torchvision")
    assert resolve_backend(None, "cuda") == "torch"  # auto falls back


# -- the module ---------------------------------------------------------------------------------
def test_dcnv2pack_parameters_and_init():
    torch.manual_seed(0)
    m = DCNv2Pack(16, 16, 3, padding=1, deformable_groups=8)
    assert list(m.state_dict()) == ["weight", "bias", "conv_offset.weight", "conv_offset.bias"]
    assert m.conv_offset.weight.shape == (8 * 27, 16, 3, 3)
    assert m.conv_offset.weight.abs().sum() == 0 and m.conv_offset.bias.abs().sum() == 0
    assert m.bias.abs().sum() == 0
    assert m.weight.abs().max() <= 1 / math.sqrt(16 * 9)
    # At init offsets are 0 and the mask is sigmoid(0) = 0.5: half a plain convolution.
    x, feat = torch.randn(2, 16, 5, 6), torch.randn(2, 16, 5, 6)
    torch.testing.assert_close(m(x, feat), 0.5 * F.conv2d(x, m.weight, m.bias, padding=1),
                               rtol=1e-5, atol=1e-6)


def test_dcnv2pack_split_and_offset_monitor():
    torch.manual_seed(1)
    m = DCNv2Pack(8, 6, deformable_groups=2).double()
    with torch.no_grad():
        m.conv_offset.weight.normal_(0, 0.1)
        m.conv_offset.bias.normal_(0, 0.5)
    x, feat = torch.randn(1, 8, 4, 4, dtype=D64), torch.randn(1, 8, 4, 4, dtype=D64)
    raw = m.conv_offset(feat)
    offset, mask = raw[:, :36], torch.sigmoid(raw[:, 36:])  # chunk(3): first two = offsets
    torch.testing.assert_close(m(x, feat), reference_dcn(x, offset, mask, m.weight, m.bias))
    assert m.last_offset_mean is None  # off by default
    m.monitor_offsets = True
    m(x, feat)
    stat = m.last_offset_mean
    assert stat.dim() == 0 and not stat.requires_grad
    torch.testing.assert_close(stat, offset.abs().mean())


def test_dcnv2pack_rejects_bad_groups():
    with pytest.raises(ConfigError, match="deformable_groups"):
        DCNv2Pack(10, 10, deformable_groups=4)


# -- torchvision (runs only where torchvision imports) --------------------------------------------
def test_pure_equals_torchvision():
    pytest.importorskip("torchvision")
    if not dcn.torchvision_available():
        pytest.skip("torchvision.ops.deform_conv2d does not import")
    x, offset, mask, weight, bias = _inputs(n=2, cin=16, cout=8, h=9, w=11, groups=8, scale=2.5, seed=12,
                                            dtype=torch.float32)
    a = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    b = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    out_pure = modulated_deform_conv2d(*a, backend="torch")
    out_tv = modulated_deform_conv2d(*b, backend="torchvision")
    torch.testing.assert_close(out_pure, out_tv, rtol=1e-5, atol=1e-5)
    gout = torch.randn_like(out_pure)
    (out_pure * gout).sum().backward()
    (out_tv * gout).sum().backward()
    for name, ta, tb in zip(("input", "offset", "mask", "weight", "bias"), a, b):
        if name == "offset":
            continue  # float32 offset gradients jump at integer positions (MEASUREMENTS.md)
        torch.testing.assert_close(ta.grad, tb.grad, rtol=1e-4, atol=1e-4, msg=f"grad wrt {name}")
    # offset gradients: compare in float64
    a64 = [t.detach().double().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    b64 = [t.detach().double().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    (modulated_deform_conv2d(*a64, backend="torch") * gout.double()).sum().backward()
    (modulated_deform_conv2d(*b64, backend="torchvision") * gout.double()).sum().backward()
    for name, ta, tb in zip(("input", "offset", "mask", "weight", "bias"), a64, b64):
        torch.testing.assert_close(ta.grad, tb.grad, rtol=1e-7, atol=1e-7, msg=f"float64 grad wrt {name}")


@pytest.mark.parametrize("backend", ["torch", "torchvision"])
def test_bf16_autocast_and_mixed_dtypes(backend):
    if backend == "torchvision" and not dcn.torchvision_available():
        pytest.skip("torchvision.ops.deform_conv2d does not import")
    x, offset, mask, weight, bias = _inputs(n=1, cin=8, groups=4, h=6, w=6, seed=13, dtype=torch.float32)
    ref = modulated_deform_conv2d(x, offset, mask, weight, bias, backend="torch")
    out = modulated_deform_conv2d(x.bfloat16(), offset.bfloat16(), mask, weight, bias, backend=backend)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.25)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = modulated_deform_conv2d(x, offset, mask, weight, bias, backend=backend)
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.25)
