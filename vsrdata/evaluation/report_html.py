"""report.html: one self-contained page for an `EvalReport` (no network, no server).

What the page holds, fed from the report data only (`vsrdata.evaluation.report`):

- the protocol line and the per-clip table (every column named with its channel and protocol,
  e.g. "PSNR-RGB (reds4)"), sortable by clicking a header (a few lines of inline JavaScript;
  the Average row stays at the bottom);
- model vs bicubic per clip (bars; clip means with ``--with-bicubic``, else the strip frame's);
- per clip: the per-frame PSNR plot (model, and bicubic where scored; the strip frame marked) and
  the comparison strip (bicubic | model | GT at the crop where the model gains most over
  bicubic, `report.gain_crop_origin`) labelled with clip, frame, crop and PSNR;
- for a training run, its training curves (curves.png).

Plots are drawn with matplotlib's Agg canvas and embedded, like the strips, as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

from vsrdata.core.image_io import write_bytes_atomic
from vsrdata.evaluation.report import ClipScores, EvalReport

__all__ = ["render_html", "write_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em;margin:1.2em 0 .3em}
.proto{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.9em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}
th{cursor:pointer;background:#f3f3f3;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tfoot td{font-weight:bold;border-top:2px solid #999}
figure{margin:.4em 0}figcaption{font-size:.85em;color:#444}
img{max-width:100%;image-rendering:pixelated}
.clip{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
"""

# Sort the tbody rows of a table.sortable by the clicked column (numbers as numbers, blanks last).
_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y);
        if (isNaN(nx) || isNaN(ny)) {
          if (isNaN(nx) !== isNaN(ny) && x !== "" && y !== "") { return isNaN(nx) ? 1 : -1; }
          return asc ? x.localeCompare(y, undefined, {numeric: true}) : y.localeCompare(x, undefined, {numeric: true});
        }
        return asc ? nx - ny : ny - nx;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def write_html(report: EvalReport, path: str | Path, *, title: str | None = None,
               curves_png: str | Path | None = None) -> Path:
    """Write `render_html(report, ...)` to `path` atomically (`curves_png`: a run's curves.png,
    embedded when the file exists). Returns the path and records it as ``report.paths['html']``."""
    path = Path(path)
    curves = Path(curves_png).read_bytes() if curves_png is not None and Path(curves_png).is_file() else None
    write_bytes_atomic(path, render_html(report, title=title, curves=curves).encode("utf-8"))
    report.paths["html"] = path
    return path


def render_html(report: EvalReport, *, title: str | None = None, curves: bytes | None = None) -> str:
    """The page as a string (see the module docstring); `curves`: PNG bytes of training curves."""
    p = report.protocol
    title = title or f"vsrdata evaluate: {p.get('model')} on {Path(str(p.get('split') or p.get('gt'))).name}"
    parts = [f"<h1>{_e(title)}</h1>", f"<p class='proto'>{_e(report.protocol_line())}</p>",
             "<h2>Per clip</h2>", _table(report), "<p class='proto'>Click a column header to sort.</p>"]
    gains = _gain_chart(report)
    if gains:
        parts += ["<h2>Model vs bicubic per clip</h2>", gains]
    if curves:
        parts += ["<h2>Training curves</h2>", f"<figure><img alt='training curves' src='{_data_uri(curves)}'>"
                  "</figure>"]
    parts.append("<h2>Clips</h2>")
    parts += [_clip_section(report, c) for c in report.clips]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<link rel='icon' href='data:,'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(parts) + f"\n<script>{_JS}</script>\n</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(v) -> str:
    """data-v attribute of a cell: the number (repr) or '' for missing / NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v))


def _cell(v, key: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        shown = "-"
    elif isinstance(v, float) and math.isinf(v):
        shown = "inf"
    else:
        shown = f"{v:.4f}" if key == "ssim" else f"{v:.3f}"
    return f"<td data-v='{_num(v)}'>{shown}</td>"


def _headers(report: EvalReport) -> list[tuple[str, str]]:
    """(key, header naming channel and protocol) of the table's score columns."""
    ch = str(report.protocol.get("channel"))
    names = {"psnr": report.score_label("PSNR"), "psnr_center": report.score_label("PSNR") + " center",
             "psnr_border": report.score_label("PSNR") + " border", "ssim": report.score_label("SSIM"),
             "psnr_rgb": report.score_label("PSNR", "rgb"), "psnr_y": report.score_label("PSNR", "y"),
             "bicubic_psnr": "bicubic " + report.score_label("PSNR", ch)}
    return [(k, names.get(k, h)) for k, h in report.columns()]


def _table(report: EvalReport) -> str:
    cols = _headers(report)
    head = "<th>clip</th><th>frames</th>" + "".join(f"<th>{_e(h)}</th>" for _, h in cols)
    rows = []
    for c in report.clips:
        rows.append(f"<tr><td data-v='{_e(c.name)}'>{_e(c.name)}</td><td data-v='{len(c.frames)}'>{len(c.frames)}"
                    "</td>" + "".join(_cell(c.value(k), k) for k, _ in cols) + "</tr>")
    avg = report.mean
    foot = (f"<tr><td>Average</td><td>{sum(len(c.frames) for c in report.clips)}</td>"
            + "".join(_cell(avg[k], k) for k, _ in cols) + "</tr>")
    return (f"<table class='sortable' id='clips'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"<tfoot>{foot}</tfoot></table>")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _gain_chart(report: EvalReport) -> str | None:
    """Grouped bars model vs bicubic per clip (None for a bicubic report or without bicubic numbers)."""
    if report.protocol.get("model") == "bicubic":
        return None
    clip_means = all(c.bicubic_psnr is not None for c in report.clips)
    pairs = []
    for c in report.clips:
        if clip_means:
            pairs.append((c.name, c.psnr, c.bicubic_psnr))
        elif c.strip is not None and c.strip.get("bicubic_psnr") is not None:
            pairs.append((f"{c.name} [{c.strip['frame']}]", c.strip["psnr"], c.strip["bicubic_psnr"]))
    pairs = [q for q in pairs if all(math.isfinite(v) for v in q[1:])]
    if not pairs:
        return None
    fig = _figure(max(4.0, 0.5 * len(pairs) + 2), 3.0)
    ax = fig.subplots()
    xs = range(len(pairs))
    ax.bar([x - 0.2 for x in xs], [q[2] for q in pairs], 0.4, label="bicubic", color="tab:gray")
    ax.bar([x + 0.2 for x in xs], [q[1] for q in pairs], 0.4, label=str(report.protocol.get("model")),
           color="tab:blue")
    ax.set_xticks(list(xs), [q[0] for q in pairs], rotation=45 if len(pairs) > 6 else 0, fontsize=8)
    lo = min(min(q[1], q[2]) for q in pairs)
    ax.set_ylim(lo - 1.0, max(max(q[1], q[2]) for q in pairs) + 0.5)
    ax.set_ylabel(report.score_label("PSNR") + " dB")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    what = "clip means" if clip_means else "the strip frame of each clip (run with --with-bicubic for clip means)"
    return (f"<figure><img alt='model vs bicubic per clip' src='{_data_uri(_png(fig))}'>"
            f"<figcaption>{_e(report.score_label('PSNR'))} of {_e(what)}.</figcaption></figure>")


def _frame_plot(report: EvalReport, clip: ClipScores) -> bytes:
    """Per-frame PSNR of one clip: the model, bicubic where scored, the strip frame marked."""
    fig = _figure(5.0, 2.4)
    ax = fig.subplots()
    frames = sorted(clip.frames, key=lambda f: f.index)
    x = [f.index for f in frames]
    ax.plot(x, [f.psnr for f in frames], "o-", ms=3, lw=1.2, color="tab:blue",
            label=str(report.protocol.get("model")))
    bic = [(f.index, f.bicubic_psnr) for f in frames if f.bicubic_psnr is not None]
    if bic:
        ax.plot(*zip(*bic), "s--", ms=3, lw=1, color="tab:gray", label="bicubic")
    if clip.strip is not None:
        ax.axvline(clip.strip["index"], color="tab:red", lw=0.8, ls=":", label="strip frame")
    ax.set_xlabel("frame index")
    ax.set_ylabel(report.score_label("PSNR") + " dB", fontsize=8)
    ax.set_title(f"clip {clip.name}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _clip_section(report: EvalReport, clip: ClipScores) -> str:
    parts = [f"<figure><img alt='per-frame PSNR of clip {_e(clip.name)}' "
             f"src='{_data_uri(_frame_plot(report, clip))}'></figure>"]
    s = clip.strip
    if s is not None and Path(s["path"]).is_file():
        label = report.score_label("PSNR")
        bic = f"bicubic {s['bicubic_psnr']:.2f} dB, " if s.get("bicubic_psnr") is not None else ""
        caption = (f"clip {clip.name}, frame {s['frame']} (index {s['index']}), crop {s['w']}x{s['h']} at "
                   f"x={s['x']}, y={s['y']}: {bic}{report.protocol.get('model')} {s['psnr']:.2f} dB "
                   f"({label}, whole frame)")
        parts.append(f"<figure><img alt='comparison strip of clip {_e(clip.name)}' "
                     f"src='{_data_uri(Path(s['path']).read_bytes())}'><figcaption>{_e(caption)}"
                     "</figcaption></figure>")
    return f"<h3 id='clip-{_e(clip.name)}'>{_e(clip.name)}</h3><div class='clip'>{''.join(parts)}</div>"
