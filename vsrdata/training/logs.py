"""What a training run writes for people and tools, rank 0 only.

- `RUN/log.jsonl`: one JSON record per line (scalars every print_freq, validation, events).
- `RUN/train.log`: the lines `vsrdata train` prints, each prefixed with a local timestamp.
- `RUN/tb/`: TensorBoard scalars (train/loss, train/loss_per_pixel, train/lr,
  train/offset_mean_max when the offset guard measures it, val/psnr, val/ssim), x = iteration.
- `RUN/curves.png`: loss (log axis, raw and smoothed), validation PSNR (markers, best point
  marked, the axis naming channel and protocol, e.g. "PSNR-RGB (reds4)") and learning rate (every
  iteration) against the iteration, drawn with matplotlib's Agg canvas.
- `RUN/report.html`: the latest validation as a page with these curves
  (`vsrdata.training.validate.write_run_report`).
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

from vsrdata.core.image_io import write_bytes_atomic
from vsrdata.errors import OutputError

TB_TAGS = {"loss": "train/loss", "loss_per_pixel": "train/loss_per_pixel", "lr": "train/lr",
           "offset_mean_max": "train/offset_mean_max", "psnr": "val/psnr", "ssim": "val/ssim",
           "niqe": "val/niqe", "vmaf": "val/vmaf", "tof": "val/tof", "lpips": "val/lpips", "tlp": "val/tlp",
           "dists": "val/dists"}


_VAL_EXTRA = (("niqe", "NIQE"), ("vmaf", "VMAF"), ("tof", "tOF"), ("lpips", "LPIPS"), ("tlp", "tLPx100"), ("dists", "DISTS"))


def format_event(event: dict) -> str | None:
    """The human line for a training event or log record (None for per-step events)."""
    kind = event.get("kind")
    if kind == "start":
        return _start_lines(event)
    if kind == "val":
        metric = event.get("metric") or "PSNR"
        ssim = f", SSIM {event['ssim']:.4f}" if event.get("ssim") is not None else ""
        more = "".join(f", {name} {event[key]:.4g}" for key, name in _VAL_EXTRA if event.get(key) is not None)
        more += "".join(f", {k} {v:.4g}" for k, v in event.items() if k.startswith("pyiqa:") and v is not None)
        took = f" ({event['seconds']:.0f} s)" if event.get("seconds", 0) >= 10 else ""  # says when validation is slow
        return (f"iter {event['iter']}: val {metric} {event['psnr']:.3f} dB{ssim}{more}"
                + (" (best)" if event["best"] else "") + took)
    if kind == "rollback":
        return (f"iter {event['iter']}: {event['reason']} -> rolled back to iteration {event['to_iter']}, "
                f"DCN lr x{event['dcn_lr_scale']:g} ({event['rollbacks']} rollback(s))")
    if kind in ("info", "done"):
        return event["message"]
    if kind is None and "loss" in event:  # a scalar record of log.jsonl
        parts = [f"iter {event['iter']}: loss {event['loss']:.6g}", f"per pixel {event['loss_per_pixel']:.4g}",
                 f"lr {event['lr']:.3e}"]
        if event.get("offset_mean_max") is not None:
            parts.append(f"offset {event['offset_mean_max']:.3g}")
        if event.get("iter_time"):
            parts.append(f"{event['iter_time']:.3f} s/it (data {event['data_time']:.3f})")
        return ", ".join(parts)
    if kind is None and event.get("event") in ("tsa_only", "unfreeze_all", "init"):
        rest = {k: v for k, v in event.items() if k not in ("iter", "event")}
        return f"iter {event['iter']}: {event['event']}" + (f" {json.dumps(rest)}" if rest else "")
    return None


def _start_lines(event: dict) -> str:
    """The start line, then (indented) held-out clips, lr schedule and validation plan."""
    k = event.get("accum_steps", 1)
    lines = [f"training {event.get('preset', 'EDVR')} on {event['samples']} samples, device {event['device']}, "
             f"{event['world_size']} process(es), global batch {event['global_batch']}"
             + (f" ({k} accumulation steps)" if k > 1 else "")]
    if event.get("data"):
        lines.append(event["data"])
    held = event.get("held_out")
    if held and held["clips"]:
        lines.append(f"left out of training (--val-partition {held['partition']}): {len(held['clips'])} clip(s) "
                     f"{', '.join(held['clips'])}; --val-partition none trains on them")
    elif held:
        lines.append(f"no clip left out of training (--val-partition {held['partition']})")
    if event.get("schedule"):
        lines.append(f"schedule: {event['schedule']}")
    val = event.get("val")
    if val:
        line = (f"validation: {val['metric']} on {val['clips']} clip(s), {val['frames']} frame(s), every "
                f"{val['every']} iterations ({val['runs']} time(s) in this run)")
        if val.get("long"):
            line += (f"; about {_duration(val['seconds'])} per validation on {event['device']} (estimated from "
                     f"one timed frame); --val-max-frames N scores only the first N frames of each clip")
        lines.append(line)
    return "\n  ".join(lines)


def _duration(seconds: float) -> str:
    """'45 s', '3 min', '1.5 h': a rough duration for a human."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def done_message(iterations: int, m: dict) -> str:
    """The closing line: iterations, last loss, validation (last and best), rollbacks."""
    metric = m.get("metric") or "PSNR"
    return (f"done: {iterations} iterations, last loss {m['loss']:.6g}"
            + (f", val {metric} {m['psnr']:.3f} dB (best {m['best_psnr']:.3f} at {m['best_iter']})"
               if m.get("psnr") is not None else "")
            + (f", {m['rollbacks']} rollback(s)" if m.get("rollbacks") else ""))


class RunLog:
    """log.jsonl + train.log + TensorBoard of one run (all no-ops on ranks other than 0).

    Lines noted before `open` (checkpoint skips, resume) are kept and written on opening.
    """

    def __init__(self, master: bool, summary_writer=None):
        self.master, self._writer_cls = master, summary_writer
        self._pending: list[str] = []
        self._jsonl = self._text = self.tb = None

    def open(self, run_dir: Path, resumed_at: int | None) -> None:
        if not self.master:
            return
        self._jsonl, self._text = _append(run_dir / "log.jsonl"), _append(run_dir / "train.log")
        for line in self._pending:
            _write(self._text, line)
        self._pending = []
        if self._writer_cls is not None:
            # on resume, scalars written after the checkpoint by the interrupted run are dropped
            self.tb = self._writer_cls(str(run_dir / "tb"),
                                       purge_step=None if resumed_at is None else resumed_at + 1)

    def note(self, event: dict) -> None:
        """Add the human line of `event` to train.log."""
        line = format_event(event) if self.master else None
        if line is None:
            return
        now = time.strftime('%Y-%m-%d %H:%M:%S')
        stamped = "".join(f"{now} {part.strip()}\n" for part in line.splitlines())
        if self._text is None:
            self._pending.append(stamped)
        else:
            _write(self._text, stamped)

    def record(self, record: dict) -> None:
        """Append a record to log.jsonl; its scalars to TensorBoard; its line to train.log."""
        if not self.master:
            return
        _write(self._jsonl, json.dumps(record) + "\n")
        if self.tb is not None:
            for key, tag in TB_TAGS.items():
                value = record.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(tag, value, record.get("iter", 0))
        self.note(record)

    def close(self) -> None:
        for f in (self._jsonl, self._text, self.tb):
            if f is not None:
                f.close()
        self._jsonl = self._text = self.tb = None


def _append(path: Path):
    try:
        return open(path, "a", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write(fh, text: str) -> None:
    """Write a line; a full disk or a lost permission is one OutputError naming the file."""
    try:
        fh.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write {fh.name}: {exc.strerror or exc}") from None


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing): s_k = sum_j w^(k-j)(1-w) v_j
    / (1 - w^(k+1)); a constant series stays constant, the first value is kept."""
    out, acc = [], 0.0
    for k, v in enumerate(values):
        acc = weight * acc + (1 - weight) * v
        out.append(acc / (1 - weight ** (k + 1)))
    return out


def current_timeline(records: list[dict]) -> tuple[list[dict], list[int]]:
    """Records of the timeline that continued (a rollback to iteration k drops the records after
    k logged before it) and the iterations rolled back to."""
    kept: list[dict] = []
    rollbacks: list[int] = []
    for r in records:
        if r.get("event") == "rollback":
            kept = [k for k in kept if k.get("iter", 0) <= r["to_iter"]]
            rollbacks.append(r["to_iter"])
        else:
            kept.append(r)
    return kept, rollbacks


def plot_curves(records: list[dict], path: Path, lr_steps: dict[int, float] | None = None) -> None:
    """curves.png: loss (log y; raw and smoothed in log space), val PSNR (markers; best point
    starred and labelled; the axis names channel and protocol) and lr (every iteration of
    `lr_steps`, else the logged ones), sharing the iteration axis; dashed lines mark rollbacks
    (the abandoned records are not drawn). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records, rollbacks = current_timeline(records)

    loss = [(r["iter"], r["loss"]) for r in records if "loss" in r and r["loss"] > 0 and math.isfinite(r["loss"])]
    val = [(r["iter"], r["psnr"]) for r in records if "psnr" in r and math.isfinite(r["psnr"])]
    lr = sorted({**{r["iter"]: r["lr"] for r in records if "lr" in r}, **(lr_steps or {})}.items())
    metric = next((r["metric"] for r in reversed(records) if r.get("metric")), "PSNR")
    fig = Figure(figsize=(8, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_val, ax_lr = fig.subplots(3, 1, sharex=True)
    if loss:
        x, y = zip(*loss)
        ax_loss.plot(x, y, color="tab:blue", alpha=0.35, lw=0.8, label="loss")
        ax_loss.plot(x, [10 ** v for v in smooth([math.log10(v) for v in y])], color="tab:blue", lw=1.6,
                     label="smoothed (EMA 0.9)")
        ax_loss.set_yscale("log")
        ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.set_ylabel("training loss")
    if val:
        x, y = zip(*val)
        ax_val.plot(x, y, "o-", color="tab:green", ms=4, lw=1)
        bx, by = max(val, key=lambda p: p[1])
        ax_val.plot([bx], [by], "*", color="tab:red", ms=14, label=f"best {by:.3f} dB at {bx}")
        ax_val.legend(loc="lower right", fontsize=8)
    else:
        ax_val.text(0.5, 0.5, "no validation (yet)", ha="center", va="center", transform=ax_val.transAxes)
    ax_val.set_ylabel(f"val {metric} (dB)", fontsize=8)
    if lr:
        x, y = zip(*lr)
        ax_lr.plot(x, y, color="tab:orange", lw=1.2, drawstyle="steps-post")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("iteration")
    for ax in (ax_loss, ax_val, ax_lr):
        ax.grid(True, alpha=0.3)
        for k in rollbacks:
            ax.axvline(k, color="tab:red", ls="--", lw=0.8, alpha=0.6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue())
