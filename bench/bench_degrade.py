"""Time per 5-frame 256x256 window of the `realesrgan` and `realbasicvsr` recipes: vsrdata's engine
against BasicSR's functions doing the same operations, with the same drawn values, in one run.

    python bench/bench_degrade.py [--windows 20] [--basicsr /work/bsrvenv/bin/python]

vsrdata side: `sample` (untimed) then `apply` for `--windows` different seeds. BasicSR side (run
by `--basicsr`, a Python with basicsr==1.4.2 + torch, in a subprocess of this run, on the same
frames and the same concrete parameters): kernels from `basicsr.data.degradations`
(`bivariate_*`, `circular_lowpass_kernel`), blur by BasicSR's torch `filter2D`, Gaussian/Poisson
noise by `add_gaussian_noise` / `add_poisson_noise`, JPEG by `add_jpg_compression`; resize by
cv2 (as mmagic's RealBasicVSR pipeline) and video compression by PyAV into an MP4 (as mmagic's
`RandomVideoCompression`), since BasicSR has no numpy function for those. Without `--basicsr` the
comparison is skipped with a message. Reported: median ms per window, and the ratio
vsrdata / BasicSR (target from issue 18: <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMES = ROOT / "fixtures" / "vimeo_septuplet" / "sequences" / "00001" / "0001"


def _window():
    import cv2
    import numpy as np

    return np.stack([cv2.imread(str(FRAMES / f"im{i}.png"))[:, 96:352] for i in range(1, 6)])


def _ours(recipe_name: str, windows: int, frames) -> tuple[list, list[float]]:
    sys.path.insert(0, str(ROOT))
    from vsrdata.core.degradations import apply, builtin_recipe, sample

    recipe = builtin_recipe(recipe_name, 4)
    entries, times = [], []
    for seed in range(windows):
        entry = sample(recipe, seed, "window", len(frames), frames.shape[1:3])
        t = time.perf_counter()
        apply(list(frames), entry)
        times.append(time.perf_counter() - t)
        entries.append(entry)
    return entries, times


# ----------------------------------------------------------------- BasicSR side (other interpreter)
def _bsr_kernel(dg, a):
    if a["kernel"] == "sinc":
        return dg.circular_lowpass_kernel(a["omega"], a["size"], pad_to=0)
    iso = a["kernel"].endswith("iso") and not a["kernel"].endswith("aniso")
    sx, sy, th = a["sigma_x"], a.get("sigma_y", a["sigma_x"]), a.get("theta", 0.0)
    if a["kernel"] in ("iso", "aniso"):
        return dg.bivariate_Gaussian(a["size"], sx, sy, th, isotropic=iso)
    fn = dg.bivariate_generalized_Gaussian if a["kernel"].startswith("generalized") else dg.bivariate_plateau
    return fn(a["size"], sx, sy, th, a["beta"], isotropic=iso)


def _bsr_codec(clip, step):
    import io

    import av
    import numpy as np

    clip = [np.clip(np.round(x * 255), 0, 255).astype(np.uint8) for x in clip]
    h, w = clip[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    buf = io.BytesIO()
    with av.open(buf, "w", "mp4") as container:
        stream = container.add_stream(step["codec"], rate=1)
        stream.height, stream.width, stream.pix_fmt = ph, pw, "yuv420p"
        stream.bit_rate = step["bitrate"]
        for img in clip:
            img = np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img[:, :, ::-1].copy(), format="rgb24")))
        container.mux(stream.encode())
    with av.open(io.BytesIO(buf.getvalue()), "r", "mp4") as container:
        return [f.to_ndarray(format="bgr24")[:h, :w].astype(np.float32) / 255 for f in container.decode(video=0)]


def _bsr_step(clip, step, dg, filter2D, torch, cv2, np):
    def args(t):
        return dict({k: v for k, v in step.items() if k != "frames"}, **(step["frames"][t] if "frames" in step else {}))

    op = step["op"]
    if op == "crop":
        return [x[: step["size"][0], : step["size"][1]] for x in clip]
    if op == "blur":
        out = []
        for t, x in enumerate(clip):
            k = torch.from_numpy(_bsr_kernel(dg, args(t)).astype(np.float32))[None]
            out.append(filter2D(torch.from_numpy(x).permute(2, 0, 1)[None].contiguous(), k)[0].permute(1, 2, 0).numpy())
        return out
    if op == "resize":
        modes = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
        return [cv2.resize(x, tuple(args(t)["size"][::-1]), interpolation=modes[step["method"]]) for t, x in enumerate(clip)]
    if op == "gaussian_noise":
        return [dg.add_gaussian_noise(x, args(t)["sigma"], clip=step["clip"], gray_noise=step["gray"])
                for t, x in enumerate(clip)]
    if op == "poisson_noise":
        return [dg.add_poisson_noise(x, args(t)["scale"], clip=step["clip"], gray_noise=step["gray"])
                for t, x in enumerate(clip)]
    if op == "jpeg":
        return [dg.add_jpg_compression(x, int(args(t)["quality"])) for t, x in enumerate(clip)]
    if op == "codec":
        return _bsr_codec(clip, step)
    raise ValueError(op)


def basicsr_worker(params_path: str) -> None:
    """Runs under the BasicSR interpreter: replay the same steps with BasicSR's functions."""
    import cv2
    import numpy as np
    import torch
    from basicsr.data import degradations as dg
    from basicsr.utils.img_process_util import filter2D

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    data = json.loads(Path(params_path).read_text())
    frames = np.load(data["frames"])
    times = {}
    for name, entries in data["entries"].items():
        times[name] = []
        for entry in entries:
            t = time.perf_counter()
            clip = [x.astype(np.float32) / 255 for x in frames]
            for step in entry["steps"]:
                clip = _bsr_step(clip, step, dg, filter2D, torch, cv2, np)
            [np.clip(np.round(x * 255), 0, 255).astype(np.uint8) for x in clip]
            times[name].append(time.perf_counter() - t)
    print(json.dumps(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--basicsr", default=None, help="Python interpreter with basicsr 1.4.2 + torch")
    ap.add_argument("--basicsr-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.basicsr_worker:
        return basicsr_worker(args.basicsr_worker)
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    frames = _window()
    ours = {name: _ours(name, args.windows, frames) for name in ("realesrgan", "realbasicvsr")}
    theirs = None
    if args.basicsr is None or not Path(args.basicsr).exists():
        print("BasicSR comparison skipped: pass --basicsr PYTHON (an interpreter with basicsr 1.4.2 + torch)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/frames.npy", frames)
            Path(f"{tmp}/p.json").write_text(json.dumps({"frames": f"{tmp}/frames.npy",
                                                          "entries": {k: v[0] for k, v in ours.items()}}))
            out = subprocess.run([args.basicsr, __file__, "--basicsr-worker", f"{tmp}/p.json"],
                                 capture_output=True, text=True, check=True)
            theirs = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"5-frame 256x256 windows, {args.windows} seeds each, single thread; median ms per window")
    for name, (_, times) in ours.items():
        line = f"{name:13s} vsrdata {1000 * statistics.median(times):7.1f}"
        if theirs is not None:
            ref = statistics.median(theirs[name])
            line += f"   BasicSR {1000 * ref:7.1f}   ratio {statistics.median(times) / ref:.2f}"
        print(line)


if __name__ == "__main__":
    main()
