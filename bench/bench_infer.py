"""EDVR inference speed on CPU: our torch paths, ONNX Runtime, and BasicSR's EDVR, in one run.

    python bench/bench_infer.py                       # EDVR-M, 1x5x3x180x320 (a REDS LR frame), 2 frames each
    python bench/bench_infer.py --size 92x160 --frames 3 --threads 2
    python bench/bench_infer.py --device cuda         # the CUDA section of `make gpu-check`
    python bench/bench_infer.py --quick               # edvr-tiny, 32x32, 1 frame: a smoke run

Each path restores --frames output frames (one forward of a 5-frame window each, batch 1) after
one warm-up forward, the paths taking turns frame by frame; s/frame is the median per path.
Paths (same random weights, same input):

- torch fp32, contiguous memory format (PyTorch's default);
- torch fp32, channels_last, heap kept (vsrdata's CPU default: `vsrdata.evaluation.engines.TorchEngine`,
  which also calls `vsrdata.core.heap.keep_freed_memory`);
- torch bf16 autocast + channels_last (`--precision bf16`; lower precision);
- onnxruntime on a `vsrdata export` of the same weights (CPUExecutionProvider);
- in a second process whose malloc is left as it is (as a user runs BasicSR): our default path
  with the system malloc (what the heap setting is worth), and BasicSR's EDVR with torchvision's
  DCN when `basicsr` imports, else our EDVR with the torchvision DCN backend when torchvision
  imports, else no baseline (printed as such). The two processes take turns, never both busy.

Ratios are time per frame relative to the BasicSR/torchvision baseline when it ran, else to
torch fp32 contiguous. The target of the issue: fp32 (our default) <= 0.6x BasicSR's time.
With --device cuda the paths are torch fp32 (contiguous and channels_last), bf16 and fp16 autocast,
and onnxruntime's CUDA provider when that onnxruntime has one, all in one process. Threads:
--threads for torch and onnxruntime alike. Max |diff| of each path against torch fp32
contiguous is printed too.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vsrdata.edvr.arch import build_edvr  # noqa: E402
from vsrdata.edvr.dcn import torchvision_available  # noqa: E402
from vsrdata.evaluation.engines import OnnxEngine, TorchEngine  # noqa: E402


def interleaved_times(paths, x: torch.Tensor, frames: int, other=None) -> dict[str, tuple[list[float], torch.Tensor]]:
    """Warm every path up once, then time one forward of each path per round, `frames` rounds:
    a burst of load from other processes hits all paths alike instead of the one running then.
    `other` (a SystemMallocProcess or None) times its own paths once per round, after ours."""
    outs = {label: fn(x) for label, fn in paths}  # warm-up (allocator, oneDNN caches, ORT arenas)
    times: dict[str, list[float]] = {label: [] for label, _ in paths}
    for _ in range(frames):
        for label, fn in paths:
            t0 = time.perf_counter()
            fn(x)
            times[label].append(time.perf_counter() - t0)
        if other is not None:
            for label, t in other.timed_round().items():
                times.setdefault(label, []).append(t)
    if other is not None:
        outs.update(other.outputs())
    return {label: (times[label], outs[label]) for label in times}


def plain(model):
    def run(x):
        with torch.inference_mode():
            out = model(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        return out
    return run


def synced(engine):
    """An engine call that waits for the GPU, so its time is the forward's."""
    def run(x):
        out = engine(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        return out
    return run


def torch_paths(ref_model, device: str) -> list:
    """(label, callable) of our PyTorch paths on `device` (CPU: in this process, heap kept)."""
    if device == "cpu":
        return [("torch fp32 contiguous", plain(ref_model)),
                (DEFAULT, synced(TorchEngine(copy.deepcopy(ref_model), "cpu"))),
                ("torch bf16 + channels_last", synced(TorchEngine(copy.deepcopy(ref_model), "cpu", precision="bf16")))]
    return [("torch fp32 contiguous", plain(ref_model.to(device))),
            ("torch fp32 channels_last", synced(TorchEngine(copy.deepcopy(ref_model), device, channels_last=True))),
            ("torch bf16 autocast", synced(TorchEngine(copy.deepcopy(ref_model), device, precision="bf16"))),
            ("torch fp16 autocast", synced(TorchEngine(copy.deepcopy(ref_model), device, precision="fp16")))]


DEFAULT = "torch fp32 channels_last, heap kept (default)"
SYSTEM = "torch fp32 channels_last, system malloc"


def baseline(weights: dict, preset: str):
    """(label, callable) for BasicSR's EDVR + torchvision DCN, or our EDVR + torchvision DCN,
    or (reason, None)."""
    try:
        from basicsr.archs.edvr_arch import EDVR as BasicsrEDVR  # noqa: N811

        cfg = build_edvr(preset).config
        model = BasicsrEDVR(num_feat=cfg.num_feat, num_frame=cfg.num_frame,
                            num_reconstruct_block=cfg.num_reconstruct_block, with_tsa=cfg.with_tsa).eval()
        model.load_state_dict(weights)
        return "BasicSR EDVR + torchvision DCN", plain(model)
    except Exception as exc:  # ImportError, or BasicSR's compiled-op import failing
        print(f"BasicSR EDVR: skipped: basicsr does not import ({type(exc).__name__}: {str(exc)[:80]})")
    if not torchvision_available():
        print("ours + torchvision DCN: skipped: torchvision does not import")
        return "no baseline", None
    model = build_edvr(preset, dcn_backend="torchvision").eval()
    model.load_state_dict(weights)
    return "ours + torchvision DCN (BasicSR stand-in)", plain(model)


def system_malloc_worker(conn, weights: dict, preset: str, x: torch.Tensor, threads: int) -> None:
    """The second process: malloc untouched. Sends its path labels, then per "round" message one
    time per path, then on "done" the outputs."""
    os.environ["VSRDATA_MALLOC"] = "system"  # our engine leaves malloc alone here
    torch.set_num_threads(threads)
    model = build_edvr(preset, dcn_backend="torch").eval()
    model.load_state_dict(weights)
    paths = [(SYSTEM, synced(TorchEngine(model, "cpu")))]
    base_label, base_fn = baseline(weights, preset)
    if base_fn is not None:
        paths.append((base_label, base_fn))
    outs = {label: fn(x) for label, fn in paths}  # warm-up
    conn.send([label for label, _ in paths])
    while conn.recv() == "round":
        times = []
        for _, fn in paths:
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
        conn.send(times)
    conn.send({label: out.numpy() for label, out in outs.items()})


class SystemMallocProcess:
    """`system_malloc_worker` in a spawned process: a fresh interpreter, so its malloc has never
    seen our heap setting."""

    def __init__(self, weights: dict, preset: str, x: torch.Tensor, threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=system_malloc_worker, args=(child, weights, preset, x, threads),
                                daemon=True)
        self.proc.start()
        self.labels = self.conn.recv()

    def timed_round(self) -> dict[str, float]:
        self.conn.send("round")
        return dict(zip(self.labels, self.conn.recv()))

    def outputs(self) -> dict[str, torch.Tensor]:
        self.conn.send("done")
        outs = {label: torch.from_numpy(a) for label, a in self.conn.recv().items()}
        self.proc.join(timeout=30)
        return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="edvr-m")
    ap.add_argument("--size", default="180x320", help="LR HxW (multiples of 4)")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    ap.add_argument("--quick", action="store_true", help="edvr-tiny, 32x32, 1 frame (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.preset, args.size, args.frames = "edvr-tiny", "32x32", 1
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref_model = build_edvr(args.preset, dcn_backend="torch").eval()
    for dcn in ref_model.dcn_modules().values():  # off-grid sampling, as trained models do
        torch.nn.init.normal_(dcn.conv_offset.weight, std=0.02)
    weights = ref_model.state_dict()
    x = torch.rand(1, ref_model.config.num_frame, 3, h, w, generator=torch.Generator().manual_seed(1))
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        (platform.processor() or platform.machine())
    print(f"{args.preset}, input {tuple(x.shape)}, {args.frames} frame(s) per path, {args.threads} thread(s), "
          f"torch {torch.__version__}, {args.device}: {where}")
    x = x.to(args.device)

    other = SystemMallocProcess(weights, args.preset, x, args.threads) if args.device == "cpu" else None
    paths: list[tuple[str, object]] = torch_paths(ref_model, args.device)
    tmp = tempfile.TemporaryDirectory()
    try:
        from vsrdata.edvr.checkpoint import save_atomic
        from vsrdata.evaluation.export import export_onnx

        save_atomic({"params": weights}, Path(tmp.name) / "m.pth")
        export_onnx(Path(tmp.name) / "m.pth", Path(tmp.name) / "m.onnx", preset=args.preset)
        onnx = OnnxEngine(Path(tmp.name) / "m.onnx", device=args.device, threads=args.threads)
        paths.append(("onnxruntime fp32", synced(onnx)))
    except Exception as exc:  # vsrdata ConfigError without the onnx extra
        print(f"onnxruntime: skipped: {exc}")

    measured = interleaved_times(paths, x, args.frames, other)
    ref_out = measured["torch fp32 contiguous"][1].float().cpu()
    results = {label: (statistics.median(t), (out.float().cpu() - ref_out).abs().max().item())
               for label, (t, out) in measured.items()}
    tmp.cleanup()
    report(results, args.device)


def report(results: dict[str, tuple[float, float]], device: str) -> None:
    """The table, ratios against the baseline when one ran, and the target line."""
    bases = [label for label in results if "torchvision DCN" in label]
    denom_label = bases[0] if bases else "torch fp32 contiguous"
    denom = results[denom_label][0]
    print(f"\n{'path':48s} {'s/frame':>8s} {'frames/s':>9s} {'vs ' + denom_label[:28]:>32s} {'max|diff|':>10s}")
    for label, (spf, diff) in results.items():
        print(f"{label:48s} {spf:8.3f} {1 / spf:9.3f} {spf / denom:31.2f}x {diff:10.2e}")
    if device != "cpu":
        return
    if bases:
        ratio = results[DEFAULT][0] / denom
        print(f"\ntarget fp32 (default) <= 0.6x {denom_label}: {ratio:.2f}x -> {'met' if ratio <= 0.6 else 'NOT met'}")
        print(f"heap kept vs system malloc (same path): {results[DEFAULT][0] / results[SYSTEM][0]:.2f}x")
    else:
        print("\ntarget fp32 <= 0.6x BasicSR: not measurable here (neither basicsr nor torchvision imports)")


if __name__ == "__main__":
    main()
