"""EDVR / DCN speed: pure-PyTorch DCN vs torchvision's kernel, CPU training step, GPU variants.

    python bench/bench_edvr.py                 # CPU sections (+ GPU section when CUDA is present)
    python bench/bench_edvr.py --quick         # smaller sizes, fewer repeats (a smoke run)
    python bench/bench_edvr.py --gpu-only      # only the CUDA section

Sections (every figure is a median over --repeat timed runs after a warm-up, measured in this run):

1. DCN op, CPU: modulated deformable conv forward + backward, N=10, C=64, 64x64, 8 groups, for each
   available backend, against a plain conv2d of the same shape (the baseline).
1b. DCN forward without autograd, CPU (the inference path): N=5, C=64, 180x320, 8 groups (the L1
   DCN of a 5-frame REDS LR window), whole columns vs row chunks (contiguous and channels_last x),
   torchvision when present.
2. EDVR-M training step, CPU: forward + Charbonnier (sum) + backward + Adam step, batch 2, 5 frames
   of 3x64x64 -> 256x256, for each backend; the ratio pure / torchvision is the issue's target
   (<= 2x). Both backends start from the same weights; their outputs' max difference is printed.
3. CUDA (only when available): EDVR-L, batch 8, 5x3x64x64, fp32 / bf16 autocast, each with and
   without channels_last, for each backend; ms per step and peak memory.

torchvision is optional: without it only the pure backend is measured (ratios print as n/a).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vsrdata.edvr.arch import build_edvr  # noqa: E402
from vsrdata.edvr.dcn import modulated_deform_conv2d, torchvision_available  # noqa: E402


def backends() -> list[str]:
    return ["torch", "torchvision"] if torchvision_available() else ["torch"]


def charbonnier_sum(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    # BasicSR CharbonnierLoss, reduction 'sum', eps 1e-12 (EDVR_SPEC §3)
    return torch.sqrt((pred - target) ** 2 + eps).sum()


def timed(fn, repeat: int, warmup: int = 1, sync=None) -> list[float]:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def fmt_ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


# -- 1. DCN op -------------------------------------------------------------------------------------
def bench_dcn_op(n: int, c: int, size: int, groups: int, repeat: int, device: str = "cpu") -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, size, size, generator=gen).to(device)
    offset = (torch.randn(n, 2 * groups * 9, size, size, generator=gen) * 2).to(device)
    mask = torch.rand(n, groups * 9, size, size, generator=gen).to(device)
    weight = (torch.randn(c, c, 3, 3, generator=gen) * 0.05).to(device)
    bias = torch.zeros(c, device=device)
    leaves = [t.requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    sync = torch.cuda.synchronize if device == "cuda" else None

    def run(backend):
        def step():
            for t in leaves:
                t.grad = None
            if backend == "conv2d":
                out = F.conv2d(leaves[0], leaves[3], leaves[4], padding=1)
            else:
                out = modulated_deform_conv2d(*leaves, backend=backend)
            out.sum().backward()
        return step

    names = ["conv2d"] + backends()
    samples = {name: [] for name in names}
    for name in names:  # warm-up
        timed(run(name), 0, warmup=1, sync=sync)
    for _ in range(repeat):  # round-robin, so changing machine load hits every backend alike
        for name in names:
            samples[name] += timed(run(name), 1, warmup=0, sync=sync)
    results = {name: statistics.median(samples[name]) for name in names}
    rows = [[name, f"{t * 1000:.1f}", fmt_ratio(t, results["conv2d"]),
             fmt_ratio(t, results.get("torchvision")) if name != "conv2d" else ""]
            for name, t in results.items()]
    print_table(f"DCN forward+backward on {device}: N={n}, C={c}, {size}x{size}, {groups} groups "
                f"(median of {repeat})", ["backend", "ms", "vs conv2d", "vs torchvision"], rows)


def bench_dcn_inference(n: int, c: int, h: int, w: int, groups: int, repeat: int) -> None:
    """Forward without autograd on CPU, as inference runs it: the pure DCN's whole-columns path
    (what autograd uses) vs its row-chunk path (what inference uses; a channels_last input too),
    torchvision's kernel when present; max |diff| against the whole-columns output."""
    from vsrdata.edvr import dcn

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen)
    offset = torch.randn(n, 2 * groups * 9, h, w, generator=gen) * 2
    mask = torch.rand(n, groups * 9, h, w, generator=gen)
    weight = torch.randn(c, c, 3, 3, generator=gen) * 0.05
    bias = torch.randn(c, generator=gen)
    geometry = ((1, 1), (1, 1), (1, 1), groups, (h, w))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    paths = {"whole columns (autograd path)": lambda: dcn._deform_conv2d_torch(x, offset, mask, weight, bias, *geometry),
             "row chunks (inference path)": lambda: dcn._deform_conv2d_rows(x, offset, mask, weight, bias, *geometry),
             "row chunks, channels_last x": lambda: dcn._deform_conv2d_rows(x_cl, offset, mask, weight, bias, *geometry)}
    if "torchvision" in backends():
        paths["torchvision"] = lambda: modulated_deform_conv2d(x, offset, mask, weight, bias, backend="torchvision")
    samples: dict[str, list[float]] = {name: [] for name in paths}
    with torch.inference_mode():
        outs = {name: fn() for name, fn in paths.items()}  # warm-up
        for _ in range(repeat):
            for name, fn in paths.items():
                samples[name] += timed(fn, 1, warmup=0)
    base = statistics.median(samples["whole columns (autograd path)"])
    ref = outs["whole columns (autograd path)"]
    rows = [[name, f"{statistics.median(t) * 1000:.0f}", fmt_ratio(statistics.median(t), base),
             f"{(outs[name] - ref).abs().max().item():.1e}"] for name, t in samples.items()]
    print_table(f"DCN forward, no autograd, cpu: N={n}, C={c}, {h}x{w}, {groups} groups (median of {repeat})",
                ["path", "ms", "vs whole columns", "max|diff|"], rows)


# -- 2./3. EDVR training step -------------------------------------------------------------------------
def make_step(model, x, gt, opt, amp_dtype=None, device="cpu"):
    def step():
        opt.zero_grad(set_to_none=True)
        if amp_dtype is not None:
            with torch.autocast(device_type=device, dtype=amp_dtype):
                out = model(x)
        else:
            out = model(x)
        loss = charbonnier_sum(out.float(), gt)
        loss.backward()
        opt.step()
    return step


def bench_edvr_step(preset: str, batch: int, size: int, repeat: int, device: str, variants: list[str],
                    warmup: int = 1) -> None:
    torch.manual_seed(0)
    base = build_edvr(preset)
    cfg = base.config
    with torch.no_grad():  # non-zero offsets, as in a trained model
        for m in base.dcn_modules().values():
            m.conv_offset.weight.normal_(0, 1e-3)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(batch, cfg.num_frame, 3, size, size, generator=gen).to(device)
    out_size = size * cfg.scale
    gt = torch.rand(batch, 3, out_size, out_size, generator=gen).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else None

    # Build every (backend, variant) first, then interleave the timed runs (round-robin), so a
    # machine whose load changes during the run (shared CI cores) affects all of them alike.
    runs, outputs, failed = {}, {}, {}
    for backend in backends():
        for variant in variants:
            model = copy.deepcopy(base).to(device)
            model.set_dcn_backend(backend)
            if "channels_last" in variant:
                model = model.to(memory_format=torch.channels_last)
            if variant == variants[0]:
                with torch.no_grad():
                    outputs[backend] = model(x).float().cpu()
            opt = torch.optim.Adam(model.parameters(), lr=4e-4, betas=(0.9, 0.99))
            amp = torch.bfloat16 if "bf16" in variant else None
            runs[(backend, variant)] = make_step(model, x, gt, opt, amp, device)
    samples = {key: [] for key in runs}
    peaks = {key: 0.0 for key in runs}
    for i in range(warmup + repeat):
        for key, step in runs.items():
            if key in failed:
                continue
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            try:
                t0 = time.perf_counter()
                step()
                if sync:
                    sync()
                elapsed = time.perf_counter() - t0
            except RuntimeError as exc:  # e.g. out of memory: report and go on
                failed[key] = str(exc).splitlines()[0][:60]
                if device == "cuda":
                    torch.cuda.empty_cache()
                continue
            if i >= warmup:
                samples[key].append(elapsed)
            if device == "cuda":
                peaks[key] = max(peaks[key], torch.cuda.max_memory_allocated() / 2**30)
    rows, times = [], {}
    for (backend, variant) in runs:
        if (backend, variant) in failed:
            rows.append([backend, variant, "failed", failed[(backend, variant)], "", ""])
            continue
        t = statistics.median(samples[(backend, variant)])
        times[(backend, variant)] = t
        peak = f"{peaks[(backend, variant)]:.1f}" if device == "cuda" else "-"
        rows.append([backend, variant, f"{t * 1000:.0f}", f"{batch / t:.2f}", peak, ""])
    for r in rows:
        if r[2] != "failed" and r[0] == "torch":
            r[5] = fmt_ratio(times.get(("torch", r[1])), times.get(("torchvision", r[1])))
    print_table(f"{preset} training step on {device} (fwd + Charbonnier + bwd + Adam): batch {batch}, "
                f"{cfg.num_frame}x3x{size}x{size} -> {out_size}x{out_size} (median of {repeat})",
                ["dcn backend", "variant", "ms/step", "samples/s", "peak GiB", "pure/torchvision"], rows)
    if len(outputs) == 2:
        diff = (outputs["torch"] - outputs["torchvision"]).abs().max().item()
        print(f"check: max |pure - torchvision| on the {variants[0]} forward output: {diff:.2e}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per CPU measurement (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: a smoke run")
    ap.add_argument("--gpu-only", action="store_true", help="skip the CPU sections")
    ap.add_argument("--cpu-only", action="store_true", help="skip the CUDA section")
    ap.add_argument("--gpu-preset", default="edvr-l")
    ap.add_argument("--gpu-batch", type=int, default=8)
    ap.add_argument("--gpu-repeat", type=int, default=10)
    ap.add_argument("--device", default=None,
                    help="run the 'GPU' section on this device instead (e.g. cpu, to smoke-test it)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        import torchvision
        tv = torchvision.__version__
    except Exception:
        tv = "not installed"
    print(f"torch {torch.__version__}, torchvision {tv}, python {platform.python_version()}, "
          f"{torch.get_num_threads()} CPU threads, VSRDATA_DCN={os.environ.get('VSRDATA_DCN', '(unset)')}")
    print(f"DCN backends measured: {', '.join(backends())}")

    if not args.gpu_only:
        if args.quick:
            bench_dcn_op(2, 32, 32, 8, 1)
            bench_dcn_inference(1, 32, 24, 40, 8, 1)
            bench_edvr_step("edvr-tiny", 1, 32, 1, "cpu", ["fp32"])
        else:
            bench_dcn_op(10, 64, 64, 8, args.repeat)
            bench_dcn_inference(5, 64, 180, 320, 8, args.repeat)  # PCD L1 of a 5-frame REDS LR window
            bench_edvr_step("edvr-m", 2, 64, args.repeat, "cpu", ["fp32"])

    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    if device and not args.cpu_only:
        if device == "cuda":
            print(f"\nGPU: {torch.cuda.get_device_name()}, TF32 conv={torch.backends.cudnn.allow_tf32} "
                  f"matmul={torch.backends.cuda.matmul.allow_tf32}")
            bench_dcn_op(40, 128, 64, 8, args.gpu_repeat, device="cuda")
        variants = ["fp32", "fp32+channels_last", "bf16", "bf16+channels_last"]
        preset, batch, repeat = args.gpu_preset, args.gpu_batch, args.gpu_repeat
        if args.quick:
            preset, batch, repeat = "edvr-tiny", 1, 1
        bench_edvr_step(preset, batch, 64 if not args.quick else 16, repeat, device, variants,
                        warmup=3 if device == "cuda" else 1)
    elif not args.cpu_only:
        print("\nCUDA section skipped: no CUDA device.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
