"""Which metrics `evaluate` (and training validation) computes beside PSNR/SSIM, and how.

docs/CONVENTIONS.md#metrics. Names (`--metrics`, comma-separated; default ``psnr,ssim``):

- ``psnr``, ``ssim``: always computed when there is a ground truth (`vsrdata.evaluation.metrics`).
- ``niqe`` (no reference, `vsrdata.evaluation.niqe`): Y channel, the protocol's crop_border.
- ``vmaf`` (full reference, `vsrdata.evaluation.vmaf`): per frame, each clip one sequence.
- ``tof`` (`vsrdata.evaluation.temporal`): TecoGAN's tOF between consecutive scored frames.
- ``lpips`` and ``tlp`` (`vsrdata.evaluation.iqa`): LPIPS-Alex v0.1 from weight files already on
  disk; tLP x 100 as TecoGAN. ``dists`` (`vsrdata.evaluation.dists`): DISTS, likewise.
- ``pyiqa:NAME`` (`vsrdata.evaluation.metrics_pyiqa`): any per-image metric of the pyiqa package by
  its name there, full- or no-reference as pyiqa says, from weight files already on disk.

Without a ground truth only ``niqe`` (and no-reference pyiqa metrics) can be scored, on the
model's output and on the bicubic baseline (`bicubic_niqe`, `bicubic_pyiqa:NAME`). A metric whose tool is missing (an ffmpeg without
libvmaf) is dropped with one warning line and the others still run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from vsrdata.errors import ConfigError, VsrDataWarning

__all__ = ["FULL_REFERENCE", "METRICS", "NO_REFERENCE", "ClipState", "MetricSuite", "parse_metrics"]

NO_REFERENCE = ("niqe",)
FULL_REFERENCE = ("psnr", "ssim", "vmaf", "tof", "lpips", "tlp", "dists")
METRICS = FULL_REFERENCE + NO_REFERENCE
HEADERS = {"niqe": "NIQE", "bicubic_niqe": "NIQE-Bic", "vmaf": "VMAF", "tof": "tOF", "tlp": "tLPx100",
           "lpips": "LPIPS", "dists": "DISTS"}


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """'psnr,ssim,niqe' -> ('psnr', 'ssim', 'niqe'); 'pyiqa:NAME' in pyiqa's spelling (which
    needs pyiqa installed); ConfigError naming an unknown one."""
    from vsrdata.evaluation import metrics_pyiqa

    names = [n.strip().lower() for n in (text or "psnr,ssim").split(",") if n.strip()]
    for i, n in enumerate(names):
        if metrics_pyiqa.is_pyiqa(n):
            names[i] = metrics_pyiqa.canonical(n)
        elif n not in METRICS:
            raise ConfigError(f"unknown metric {n!r} in --metrics (choose from {', '.join(METRICS)}, "
                              "or pyiqa:NAME)")
    return tuple(dict.fromkeys(names))


def _no_reference(name: str) -> bool:
    from vsrdata.evaluation import metrics_pyiqa

    if metrics_pyiqa.is_pyiqa(name):
        return metrics_pyiqa.properties(name)["mode"] == "NR"
    return name in NO_REFERENCE


@dataclass
class ClipState:
    """Per-clip state of the sequence metrics (VMAF spool, previous frames for tOF/tLP)."""

    vmaf: object = None
    temporal: object = None
    vmaf_frames: list = field(default_factory=list)


@dataclass
class MetricSuite:
    """The extra metrics of one run. `reference` False: no GT (no-reference metrics only)."""

    names: tuple[str, ...] = ("psnr", "ssim")
    crop_border: int = 0
    reference: bool = True
    iqa_weights: str | None = None
    device: str = "cpu"
    notes: dict = field(default_factory=dict)
    _lpips: object = None
    _dists: object = None
    _pyiqa: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.reference:
            dropped = [n for n in self.names if not _no_reference(n) and n not in ("psnr", "ssim")]
            if dropped:
                raise ConfigError(f"--metrics {','.join(dropped)} need a ground truth; without GT only "
                                  f"{', '.join(NO_REFERENCE)} and no-reference pyiqa metrics can be scored")
            self.names = tuple(n for n in self.names if _no_reference(n)) or NO_REFERENCE
        if "vmaf" in self.names:
            from vsrdata.evaluation import vmaf

            try:
                vmaf.ffmpeg_with_libvmaf()
            except ConfigError as exc:  # one line; the other metrics still run
                warnings.warn(str(exc), VsrDataWarning, stacklevel=2)
                self.names = tuple(n for n in self.names if n != "vmaf")
                self.notes["vmaf"] = "unavailable"
        if {"lpips", "tlp"} & set(self.names):
            from vsrdata.evaluation.iqa import load_lpips

            self._lpips = load_lpips(self.iqa_weights, device=self.device)
        if "dists" in self.names:
            from vsrdata.evaluation.dists import load_dists

            self._dists = load_dists(self.iqa_weights, device=self.device)
        from vsrdata.evaluation.metrics_pyiqa import is_pyiqa, load_pyiqa

        self._pyiqa = {n: load_pyiqa(n, self.iqa_weights, self.device) for n in self.names if is_pyiqa(n)}

    @property
    def extra(self) -> tuple[str, ...]:
        """The metrics beyond PSNR/SSIM, in the order given."""
        return tuple(n for n in self.names if n not in ("psnr", "ssim"))

    def start_clip(self, name: str) -> ClipState:
        state = ClipState()
        if "vmaf" in self.names:
            from vsrdata.evaluation.vmaf import VmafClip

            state.vmaf = VmafClip(name)
        if "tof" in self.names or "tlp" in self.names:
            from vsrdata.evaluation.temporal import TemporalScorer

            state.temporal = TemporalScorer(tof="tof" in self.names,
                                            lpips=self._lpips if "tlp" in self.names else None)
        return state

    def frame(self, state: ClipState, out: np.ndarray, gt: np.ndarray | None,
              bicubic: np.ndarray | None = None) -> dict:
        """Per-frame values {name: float or None} of one restored frame (HxWx3 uint8 RGB)."""
        vals: dict = {}
        if "niqe" in self.names:
            from vsrdata.evaluation.niqe import calculate_niqe

            vals["niqe"] = calculate_niqe(out, self.crop_border)
            if not self.reference and bicubic is not None:
                vals["bicubic_niqe"] = calculate_niqe(bicubic, self.crop_border)
        for key, metric in self._pyiqa.items():
            if not metric.full_reference:
                vals[key] = metric(out)
                if not self.reference and bicubic is not None:
                    vals[f"bicubic_{key}"] = metric(bicubic)
            elif gt is not None:
                vals[key] = metric(out, gt)
        if gt is None:
            return vals
        if "lpips" in self.names:
            vals["lpips"] = self._lpips(out, gt)
        if "dists" in self.names:
            vals["dists"] = self._dists(out, gt)
        if state.temporal is not None:
            tof, tlp = state.temporal.feed(out, gt)
            vals.update({k: v for k, v in (("tof", tof), ("tlp", tlp)) if k in self.names})
        if state.vmaf is not None:
            state.vmaf.add(out, gt)
            vals["vmaf"] = None  # filled in by finish_clip
        return vals

    def finish_clip(self, state: ClipState, frames: list) -> None:
        """Fill each frame's VMAF (frames: FrameScore in the order they were fed)."""
        if state.vmaf is None:
            return
        result = state.vmaf.finish()
        self.notes["vmaf"] = f"model {result.model}, libvmaf {result.libvmaf_version}"
        for f, v in zip(frames, result.per_frame):
            f.extra["vmaf"] = v

    def abort_clip(self, state: ClipState) -> None:
        if state.vmaf is not None:
            state.vmaf.close()

    def describe(self) -> dict[str, str]:
        """{metric: channel and settings} for the report's protocol block and line."""
        d = {}
        if "niqe" in self.names:
            d["niqe"] = (f"Y (BT.601, rounded), crop_border {self.crop_border}, 96x96 blocks, 2 scales, "
                         "MATLAB pristine model (BasicSR calculate_niqe)" + ("; model and bicubic" if not
                                                                              self.reference else ""))
        if self.notes.get("vmaf") == "unavailable":
            d["vmaf"] = "not scored (this ffmpeg has no libvmaf filter)"
        elif "vmaf" in self.names:
            d["vmaf"] = (f"ffmpeg libvmaf, {self.notes.get('vmaf', 'model vmaf_v0.6.1')}, yuv444p "
                         "(BT.601 limited), each clip one sequence")
        if "tof" in self.names:
            d["tof"] = "grey (RGB2GRAY), Farneback(0.5, 3, 15, 3, 5, 1.2, 0), TecoGAN centre crop, mean |dflow|"
        if "lpips" in self.names or "tlp" in self.names:
            d["lpips"] = "RGB in [-1, 1], LPIPS-Alex v0.1 (lin layers), full frame; tLP x100 on TecoGAN crop"
        if "dists" in self.names:
            d["dists"] = "RGB in [0, 1], DISTS (VGG16, L2 pooling, DISTS_pytorch alpha/beta), full frame"
        d.update({key: m.describe() + ("; model and bicubic" if not self.reference else "")
                  for key, m in self._pyiqa.items()})
        return d
