"""Test helper: a tiny single-frame EDVR at x2 / x3 trained on the REDS fixtures, made once per
test session (`tiny_sr` in conftest.py) and shared by tests/test_scales.py (it beats bicubic on the
held-out clip) and tests/test_stage2.py (the stage 1 of the two-stage recipe)."""

from __future__ import annotations

from pathlib import Path

REDS_GT = Path(__file__).resolve().parents[1] / "fixtures" / "reds" / "train_sharp"
TRAIN_CLIPS = ("001", "002")  # clip 000 (a REDS4 member) is held out


def train_tiny(scale: int, gt_root: Path, lq_root: Path, clips, iters: int = 200, batch: int = 16):
    """A tiny single-frame EDVR at `scale`, trained on (make-lr LQ, GT) crops of `clips`: LQ 16x16
    patches, Charbonnier loss (eps 1e-6, mean), Adam lr 2e-3, betas (0.9, 0.99), fixed seeds."""
    import numpy as np
    import torch

    from vsrdata.core.image_io import read_image
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.evaluation.inference import frame_to_tensor

    pairs = [(frame_to_tensor(read_image(p)), frame_to_tensor(read_image(lq_root / c / p.name)))
             for c in clips for p in sorted((gt_root / c).glob("*.png"))]
    torch.manual_seed(0)
    model = build_edvr("edvr-tiny", scale=scale, num_frame=1, dcn_backend="torch")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.99))
    rng, p = np.random.default_rng(0), 16
    for _ in range(iters):
        xs, ys = [], []
        for _ in range(batch):
            gt, lq = pairs[rng.integers(len(pairs))]
            y0, x0 = (int(rng.integers(n - p + 1)) for n in lq.shape[1:])
            xs.append(lq[:, y0:y0 + p, x0:x0 + p])
            ys.append(gt[:, y0 * scale:(y0 + p) * scale, x0 * scale:(x0 + p) * scale])
        loss = torch.sqrt((model(torch.stack(xs)[:, None]) - torch.stack(ys)) ** 2 + 1e-6).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def make_tiny_sr(root: Path, scale: int) -> tuple[Path, Path, Path]:
    """(LQ root, held-out split, checkpoint) under `root`: make-lr of the fixtures (mod-crop + MATLAB
    bicubic at 1/scale), split-test of held-out clip 000 at the scale (LR padded to a multiple of 4),
    `train_tiny` on clips 001/002 with one torch thread."""
    import torch

    from vsrdata.edvr.checkpoint import save_atomic
    from vsrdata.pipelines.make_lr import make_lr
    from vsrdata.pipelines.split_test import split_test

    make_lr(REDS_GT, root / "lq", scale=scale, workers=1, progress=False)
    split_test(REDS_GT, root / "held", clips=["000"], lr_root=root / "lq", scale=scale, workers=1, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_tiny(scale, REDS_GT, root / "lq", TRAIN_CLIPS)
    finally:
        torch.set_num_threads(threads)
    save_atomic({"params": model.state_dict()}, root / f"x{scale}.pth")
    return root / "lq", root / "held", root / f"x{scale}.pth"
