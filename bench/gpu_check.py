"""`make gpu-check`: everything we want to know the first time a CUDA machine is available.

Runs, each as its own subprocess with its own time limit (all together under 8 minutes on one
modern GPU), and prints one table at the end:

  1. cuda-tests      the tests marked `cuda` (pytest -m cuda)
  2. doctor          `vsrdata doctor` (versions, devices, DCN self-check on every backend)
  3. dcn+edvr-step   bench/bench_edvr.py --gpu-only: DCN op and EDVR-L training step,
                     fp32 / bf16 x channels_last x DCN backend, ms per step and peak memory
  4. train-loop      bench/bench_train.py --gpu-only: EDVR-L loop fp32 vs bf16 (+ channels_last)
  5. eval-precision  evaluate on the fixture clips with fp32 / fp16 / bf16 on CUDA against fp32 on
                     the CPU: the PSNR change each precision causes (same weights)
  6. infer-speed     bench/bench_infer.py --device cuda, when that benchmark exists

Without CUDA it says so and exits 0. `--smoke` runs every section in its smallest form on the CPU
instead, to check that this script itself works (the test suite does that).

    python bench/gpu_check.py                 # what `make gpu-check` runs
    python bench/gpu_check.py --smoke         # CPU smoke run of every section
    python bench/gpu_check.py --only doctor   # one section
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 8 * 60


@dataclass
class Section:
    name: str
    argv: list[str]
    timeout_s: int
    ok_codes: tuple[int, ...] = (0,)
    status: str = "not run"
    seconds: float = 0.0
    tail: list[str] = field(default_factory=list)


def sections(smoke: bool, checkpoint: str | None) -> list[Section]:
    py = sys.executable
    dev = "cpu" if smoke else "cuda"
    pytest_args = [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(ROOT / "tests")]
    eval_args = [py, str(Path(__file__).resolve()), "--eval-precision", "--device", dev]
    if checkpoint:
        eval_args += ["--checkpoint", checkpoint]
    out = [
        # exit 5 = no test collected: on a machine without CUDA every cuda test is deselected/skipped
        Section("cuda-tests", pytest_args, 150, ok_codes=(0, 5) if smoke else (0,)),
        Section("doctor", [py, "-m", "vsrdata", "doctor"] + (["--device", "cpu"] if smoke else []), 90),
        Section("dcn+edvr-step", [py, str(ROOT / "bench" / "bench_edvr.py"), "--gpu-only"]
                + (["--quick", "--device", "cpu"] if smoke else ["--gpu-repeat", "5"]), 120),
        Section("train-loop", [py, str(ROOT / "bench" / "bench_train.py"), "--gpu-only"]
                + (["--smoke"] if smoke else []), 150),
        Section("eval-precision", eval_args + (["--smoke"] if smoke else []), 90),
    ]
    infer = ROOT / "bench" / "bench_infer.py"
    if infer.exists():
        out.append(Section("infer-speed", [py, str(infer), "--device", dev] + (["--quick"] if smoke else []), 90))
    return out


def run_section(s: Section, deadline: float, log_dir: Path) -> None:
    left = deadline - time.monotonic()
    if left < 10:
        s.status = "skipped (time budget spent)"
        return
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = log_dir / f"{s.name}.log"
    try:
        proc = subprocess.run(s.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=min(s.timeout_s, left))
        text, code = proc.stdout, proc.returncode
        s.status = "ok" if code in s.ok_codes else f"FAILED (exit {code})"
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        s.status = f"FAILED (over {int(min(s.timeout_s, left))} s)"
    s.seconds = time.monotonic() - t0
    log.write_text(text)
    s.tail = [ln for ln in text.splitlines() if ln.strip()][-12:]
    print(f"\n=== {s.name}: {s.status} in {s.seconds:.0f} s (log: {log})", flush=True)
    print("\n".join(s.tail), flush=True)


def table(secs: list[Section]) -> str:
    w = max(len(s.name) for s in secs)
    lines = [f"{'section':<{w}}  {'status':<28}  seconds", f"{'-' * w}  {'-' * 28}  -------"]
    lines += [f"{s.name:<{w}}  {s.status:<28}  {s.seconds:7.0f}" for s in secs]
    return "\n".join(lines)


def eval_precision(device: str, checkpoint: str | None, smoke: bool) -> int:
    """Section 5: PSNR on the fixture clips per precision, against fp32 on the CPU (same weights)."""
    import tempfile

    import torch

    from vsrdata.edvr.arch import build_edvr
    from vsrdata.evaluation.engines import load_model
    from vsrdata.evaluation.evaluate import evaluate
    from vsrdata.pipelines.split_test import split_test

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        split = Path(tmp) / "split"
        split_test(ROOT / "fixtures" / "reds" / "train_sharp", split, workers=1, progress=False)
        if checkpoint:
            model = load_model(checkpoint)
            what = checkpoint
        else:
            torch.manual_seed(0)
            model = build_edvr("edvr-tiny" if smoke else "edvr-m")
            what = "seeded random weights (pass --checkpoint for trained ones)"
        print(f"weights: {what}")
        ref = evaluate(split, model=model, out_dir=Path(tmp) / "cpu", device="cpu", strips=False,
                       frames="center" if smoke else "all").mean["psnr"]
        print(f"{'precision':<10} {'device':<6} {'PSNR':>9} {'change vs CPU fp32':>20}")
        print(f"{'fp32':<10} {'cpu':<6} {ref:9.4f} {0.0:20.4f}")
        for prec in (["fp32"] if smoke else ["fp32", "fp16", "bf16"]):
            p = evaluate(split, model=model, out_dir=Path(tmp) / prec, device=device, precision=prec,
                         strips=False, frames="center" if smoke else "all").mean["psnr"]
            print(f"{prec:<10} {device:<6} {p:9.4f} {p - ref:20.4f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="run every section in its smallest form on the CPU")
    ap.add_argument("--only", default=None, help="comma-separated section names")
    ap.add_argument("--checkpoint", default=None, help="trained weights for the eval-precision section")
    ap.add_argument("--log-dir", default=str(ROOT / "gpu_check_out"))
    ap.add_argument("--eval-precision", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.eval_precision:
        return eval_precision(args.device, args.checkpoint, args.smoke)

    import torch

    if not args.smoke and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}): nothing to check.")
        return 0
    secs = sections(args.smoke, args.checkpoint)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in secs}
        if unknown:
            print(f"gpu-check: unknown section(s) {', '.join(sorted(unknown))}; "
                  f"known: {', '.join(s.name for s in secs)}", file=sys.stderr)
            return 2
        secs = [s for s in secs if s.name in wanted]
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    where = "CPU smoke run" if args.smoke else torch.cuda.get_device_name(0)
    print(f"gpu-check on {where}: torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"budget {BUDGET_S // 60} min; logs in {log_dir}", flush=True)
    deadline = time.monotonic() + BUDGET_S
    for s in secs:
        run_section(s, deadline, log_dir)
    print("\n" + table(secs))
    return 0 if all(s.status == "ok" for s in secs) else 1


if __name__ == "__main__":
    sys.exit(main())
