"""The evaluation report: per-clip rows, the average row, and how they are written.

An `EvalReport` holds the protocol (what was scored and how), one `ClipScores` per clip with its
per-frame numbers, and the average row. It renders as a fixed-width text table, a CSV (one row per
clip plus "Average") and a JSON document (schema ``vsrdata-eval/1``; NaN/inf written as null /
"inf"). Comparison strips (bicubic | model | GT crops side by side, at the window where the model
gains most over bicubic, `gain_crop_origin`) are built by `comparison_strip`;
`vsrdata.evaluation.report_html` renders the same report as one self-contained HTML page.

numpy + cv2 only (no torch): reports can be read and re-rendered without the model stack.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsrdata.core.image_io import write_bytes_atomic, write_image
from vsrdata.evaluation.metrics import aggregate

REPORT_FORMAT = "vsrdata-eval/1"


@dataclass
class FrameScore:
    """Scores of one frame. `psnr`/`ssim` are on the protocol's channel; `psnr_rgb` and
    `psnr_y` are always both given (NaN without a ground truth); `bicubic_psnr` (protocol channel)
    when requested; `extra` holds the other metrics of the run (`metric_suite`: niqe, vmaf, tof,
    tlp, lpips, bicubic_niqe), None where a frame has no value (tOF of a clip's first frame)."""

    frame: str
    index: int
    border: bool
    psnr: float
    ssim: float
    psnr_rgb: float
    psnr_y: float
    bicubic_psnr: float | None = None
    extra: dict[str, float | None] = field(default_factory=dict)


@dataclass
class ClipScores:
    """Per-frame scores of one clip; `strip` describes its comparison strip when one was written
    ({'path', 'frame', 'index', 'x', 'y', 'w', 'h', 'psnr', 'bicubic_psnr'}: frame name, crop
    origin and size in GT pixels, the frame's PSNR on the protocol channel for the model and bicubic)."""

    name: str
    frames: list[FrameScore] = field(default_factory=list)
    strip: dict | None = None

    def _mean(self, values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    @property
    def psnr(self) -> float:
        return self._mean([f.psnr for f in self.frames])

    @property
    def psnr_center(self) -> float:
        return self._mean([f.psnr for f in self.frames if not f.border])

    @property
    def psnr_border(self) -> float:
        return self._mean([f.psnr for f in self.frames if f.border])

    @property
    def ssim(self) -> float:
        return self._mean([f.ssim for f in self.frames])

    @property
    def psnr_rgb(self) -> float:
        return self._mean([f.psnr_rgb for f in self.frames])

    @property
    def psnr_y(self) -> float:
        return self._mean([f.psnr_y for f in self.frames])

    @property
    def bicubic_psnr(self) -> float | None:
        vals = [f.bicubic_psnr for f in self.frames if f.bicubic_psnr is not None]
        return self._mean(vals) if vals else None

    def metric(self, key: str) -> float | None:
        """Mean of an extra metric over the frames that have a value (None when none has)."""
        vals = [f.extra[key] for f in self.frames if f.extra.get(key) is not None]
        return self._mean(vals) if vals else None

    def value(self, key: str) -> float | None:
        """A column of the report: a PSNR/SSIM attribute or an extra metric's clip mean."""
        return getattr(self, key) if key in _CORE_KEYS else self.metric(key)


# Columns of the table / CSV: (key, header). Keys are ClipScores attributes.
_COLUMNS = [("psnr", "PSNR"), ("psnr_center", "Center"), ("psnr_border", "Border"), ("ssim", "SSIM")]
_CORE_KEYS = ("psnr", "psnr_center", "psnr_border", "ssim", "psnr_rgb", "psnr_y", "bicubic_psnr")


@dataclass
class EvalReport:
    """Everything `evaluate` measured, as fields:

    - `protocol`: what was scored and how, a flat dict of strings / numbers (report.json's block);
    - `clips`: one `ClipScores` per clip (its means as attributes: `psnr`, `psnr_center`,
      `psnr_border`, `ssim`, `psnr_rgb`, `psnr_y`, `bicubic_psnr`; `frames`: the per-frame rows);
    - `mean`: the average row, {column: float, or None where no frame has a value}: 'psnr',
      'psnr_center', 'psnr_border', 'ssim', 'psnr_rgb', 'psnr_y', 'bicubic_psnr' and each extra
      metric; the mean of per-clip means (average mode 'clip') or over all frames ('frame'),
      computed when the report is made;
    - `paths`: {'json', 'csv', 'table', 'html', 'strips', 'frames'} -> `Path` of what was written.
    """

    protocol: dict[str, Any]
    clips: list[ClipScores]
    paths: dict[str, Path] = field(default_factory=dict)
    mean: dict[str, float | None] = field(init=False)

    def __post_init__(self) -> None:
        self.mean = self._average_row()

    @property
    def average_mode(self) -> str:
        return self.protocol.get("average", "clip")

    @property
    def other_channel(self) -> str:
        return "psnr_rgb" if self.protocol.get("channel") == "y" else "psnr_y"

    @property
    def has_reference(self) -> bool:
        """False for a set scored without ground truth (no-reference metrics only)."""
        return self.protocol.get("reference", "gt") != "none"

    def metric_keys(self) -> list[str]:
        """The extra metrics present (`FrameScore.extra` keys), in first-seen order."""
        keys: dict[str, None] = {}
        for c in self.clips:
            for f in c.frames:
                keys.update(dict.fromkeys(f.extra))
        return list(keys)

    def columns(self) -> list[tuple[str, str]]:
        from vsrdata.evaluation.metric_suite import HEADERS

        cols = []
        if self.has_reference:
            cols = list(_COLUMNS)
            cols.append((self.other_channel, "PSNR-RGB" if self.other_channel == "psnr_rgb" else "PSNR-Y"))
            if any(c.bicubic_psnr is not None for c in self.clips):
                cols.append(("bicubic_psnr", "Bicubic"))
        return cols + [(k, HEADERS.get(k, k)) for k in self.metric_keys()]

    def average(self) -> dict[str, float | None]:
        """Deprecated: the field `mean` (a copy of it)."""
        return dict(self.mean)

    def _average_row(self) -> dict[str, float | None]:
        """The average row: each column averaged over clips (mode 'clip', the papers') or over
        all frames pooled (mode 'frame', mmagic). Center/Border use only their own frames."""
        def per_clip(select, attr):
            return {c.name: [getattr(f, attr) for f in c.frames if select(f) and getattr(f, attr) is not None]
                    for c in self.clips}

        every = lambda f: True  # noqa: E731
        out = {
            "psnr": aggregate(per_clip(every, "psnr"), self.average_mode),
            "psnr_center": aggregate(per_clip(lambda f: not f.border, "psnr"), self.average_mode),
            "psnr_border": aggregate(per_clip(lambda f: f.border, "psnr"), self.average_mode),
            "ssim": aggregate(per_clip(every, "ssim"), self.average_mode),
            "psnr_rgb": aggregate(per_clip(every, "psnr_rgb"), self.average_mode),
            "psnr_y": aggregate(per_clip(every, "psnr_y"), self.average_mode),
        }
        bic = per_clip(every, "bicubic_psnr")
        out["bicubic_psnr"] = aggregate(bic, self.average_mode) if any(bic.values()) else None
        for key in self.metric_keys():
            vals = {c.name: [f.extra[key] for f in c.frames if f.extra.get(key) is not None] for c in self.clips}
            out[key] = aggregate(vals, self.average_mode) if any(vals.values()) else None
        return out

    def score_label(self, metric: str = "PSNR", channel: str | None = None) -> str:
        """A score's name with its channel and protocol, e.g. 'PSNR-RGB (reds4)', 'SSIM-Y (vid4)'."""
        return score_label(metric, channel or self.protocol.get("channel"), self.protocol.get("protocol"))

    # -- renderers ------------------------------------------------------------------------
    def protocol_line(self) -> str:
        p = self.protocol
        avg = "mean of per-clip means" if self.average_mode == "clip" else "mean over all frames"
        tta = f" | tta {p['tta']}" if p.get("tta") not in (None, "none") else ""
        line = (f"model {p.get('model')} | preset {p.get('preset')} | channel {str(p.get('channel')).upper()} "
                f"| crop_border {p.get('crop_border')} | temporal padding {p.get('padding')} "
                f"| frames {p.get('frames')}{tta} | average: {avg} | {len(self.clips)} clip(s), "
                f"{sum(len(c.frames) for c in self.clips)} frame(s)")
        if not self.has_reference:
            line += " | no ground truth: no-reference metrics only"
        for name, how in (p.get("metrics") or {}).items():
            line += f" | {name.upper()}: {how}"
        return line

    def table(self) -> str:
        cols = self.columns()
        name_w = max([len("Average"), len("clip")] + [len(c.name) for c in self.clips])
        head = f"{'clip':<{name_w}}  {'frames':>6}  " + "  ".join(f"{h:>8}" for _, h in cols)
        lines = [self.protocol_line(), head, "-" * len(head)]
        for c in self.clips:
            lines.append(f"{c.name:<{name_w}}  {len(c.frames):>6}  "
                         + "  ".join(_fmt(c.value(k), k) for k, _ in cols))
        avg = self.mean
        lines.append("-" * len(head))
        lines.append(f"{'Average':<{name_w}}  {sum(len(c.frames) for c in self.clips):>6}  "
                     + "  ".join(_fmt(avg[k], k) for k, _ in cols))
        return "\n".join(lines)

    def to_csv(self) -> str:
        cols = self.columns()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["clip", "frames"] + [k for k, _ in cols])
        for c in self.clips:
            w.writerow([c.name, len(c.frames)] + [_csv(c.value(k)) for k, _ in cols])
        avg = self.mean
        w.writerow(["Average", sum(len(c.frames) for c in self.clips)] + [_csv(avg[k]) for k, _ in cols])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        clips = []
        for c in self.clips:
            row = {"clip": c.name, "frames": len(c.frames)}
            row.update({k: _json(getattr(c, k)) for k in _CORE_KEYS})
            row.update({k: _json(c.metric(k)) for k in self.metric_keys()})
            row["per_frame"] = [_frame_dict(f) for f in c.frames]
            if c.strip is not None:  # its file relative to the report folder (compare/<clip>.png)
                row["strip"] = {k: (Path(v).parent.name + "/" + Path(v).name if k == "path" else _json(v))
                                for k, v in c.strip.items()}
            clips.append(row)
        return {"format": REPORT_FORMAT, "protocol": dict(self.protocol),
                "average": {k: _json(v) for k, v in self.mean.items()}, "clips": clips,
                "paths": {k: str(v) for k, v in self.paths.items()}}

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write report.json, report.csv and report.txt (atomically) into `out_dir`; returns
        their paths (also recorded in `paths`)."""
        paths = report_files(out_dir)
        self.paths.update(paths)
        write_bytes_atomic(paths["table"], (self.table() + "\n").encode())
        write_bytes_atomic(paths["csv"], self.to_csv().encode())
        write_bytes_atomic(paths["json"], (json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n").encode())
        return paths


def score_label(metric: str, channel: str | None, protocol: str | None) -> str:
    """'PSNR-RGB (reds4)': every printed, logged or plotted score names its channel and protocol."""
    name = f"{metric}-{str(channel).upper()}" if channel else metric
    return f"{name} ({protocol})" if protocol else name


def report_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    """{'json', 'csv', 'table'} -> the report files `EvalReport.write` puts in `out_dir`."""
    out_dir = Path(out_dir)
    return {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "table": out_dir / "report.txt"}


def _frame_dict(f: FrameScore) -> dict[str, Any]:
    """One per_frame entry of report.json: the fields, with the extra metrics flattened in."""
    d = {k: _json(v) for k, v in vars(f).items() if k != "extra"}
    d.update({k: _json(v) for k, v in f.extra.items()})
    return d


def _fmt(v, key: str) -> str:
    if v is None:
        return f"{'-':>8}"
    if isinstance(v, float) and math.isnan(v):
        return f"{'-':>8}"
    if isinstance(v, float) and math.isinf(v):
        return f"{'inf':>8}"
    return f"{v:>8.4f}" if key in ("ssim", "lpips", "tof") else f"{v:>8.3f}"


def _csv(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, float) else v


def _json(v):
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


# -- comparison strips --------------------------------------------------------------------

def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central size x size region (the whole side where the image is smaller)."""
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return img[y0:y0 + ch, x0:x0 + cw]


def gain_crop_origin(model: np.ndarray, bicubic: np.ndarray, gt: np.ndarray, size: int) -> tuple[int, int]:
    """(y0, x0) of the size x size window where the model gains most over bicubic: the largest
    sum of (bicubic error^2 - model error^2) against GT over the window, searched on a grid of
    size // 4 steps (a flat wall, where both are right, gains nothing and is not chosen)."""
    h, w = gt.shape[:2]
    ch, cw = min(size, h), min(size, w)
    g = gt.astype(np.float64)
    gain = (((bicubic.astype(np.float64) - g) ** 2).sum(-1) - ((model.astype(np.float64) - g) ** 2).sum(-1))
    integral = np.pad(gain.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    ys = sorted(set(range(0, h - ch + 1, step)) | {h - ch})
    xs = sorted(set(range(0, w - cw + 1, step)) | {w - cw})
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    sums = integral[yy + ch, xx + cw] - integral[yy, xx + cw] - integral[yy + ch, xx] + integral[yy, xx]
    k = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(yy[k]), int(xx[k])


def comparison_strip(panels: list[tuple[str, np.ndarray]], crop: int = 192, gap: int = 4,
                     origin: tuple[int, int] | None = None) -> np.ndarray:
    """Side-by-side crops with a label band on top.

    Args:
        panels: (label, HxWx3 uint8 RGB image) pairs, all the same size (e.g. bicubic, model, GT).
        crop: side of the crop taken from each image (in output pixels).
        gap: white pixels between panels.
        origin: (y0, x0) of the crop (`gain_crop_origin`); None = the centre crop.

    Returns:
        A uint8 **BGR** image ready for `write_image`.
    """
    import cv2

    if origin is None:
        crops = [centre_crop(img, crop) for _, img in panels]
    else:
        y0, x0 = origin
        crops = [img[y0:y0 + crop, x0:x0 + crop] for _, img in panels]
    h, w = crops[0].shape[:2]
    band = 16
    strip = np.full((h + band, len(crops) * w + (len(crops) - 1) * gap, 3), 255, np.uint8)
    for k, ((label, _), c) in enumerate(zip(panels, crops)):
        x0 = k * (w + gap)
        strip[band:, x0:x0 + w] = c[..., ::-1]  # RGB -> BGR
        cv2.putText(strip, label[: max(1, w // 8)], (x0 + 2, band - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def write_strip(path: Path, panels: list[tuple[str, np.ndarray]], crop: int = 192,
                origin: tuple[int, int] | None = None) -> Path:
    write_image(path, comparison_strip(panels, crop, origin=origin))
    return Path(path)
