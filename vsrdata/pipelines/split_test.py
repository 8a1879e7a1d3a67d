"""`split_test`: extract a test split in the layout the field's test scripts expect.

Output (schema ``vsrdata-split-test/1``, see `vsrdata.core.splits`)::

    OUT/.vsrdata-split-test      marker, written FIRST (options of the run)
    OUT/GT/<clip>/00000000.png   GT frames, renamed to integers in natural order
    OUT/BIx4/<clip>/00000000.png LR frames (BDx4 with degradation 'bd'; x<scale>)
    OUT/meta_info.txt            `<clip> <nframes> (h,w,c)` per clip (BasicSR style; GT size)
    OUT/mapping.txt              `<source clip>/<old name> <clip>/<new name>` per frame
    OUT/split.json               the machine-readable record, written LAST

What happens, in order:

1. **Select clips.** Layouts: Vimeo90K septuplet (`SRC/sequences/00001/0266/im1..im7.png`),
   REDS (`SRC/000/00000000.png`), a Vid4-style GT tree (`SRC/GT/<clip>/`, with its LR taken
   from `SRC/BIx4/` (or `BDx4`) when present), or any folder of clips. Clips come from a list
   file, a named partition (`core/splits.py`), `clips=[...]`, or by default from
   `SRC/sep_testlist.txt` (Vimeo) / every clip (other layouts); `limit` keeps the first N in list
   order. Ids are checked against path tricks (`..`, absolute paths); all missing ids are
   reported in one error (first 10 and the count) before anything is written. Clip `00001/0266`
   is written to folder `00001_0266`.
2. **Check sizes** (PNG headers only, so it is quick): every clip must be uniform (same size,
   channel count and bit depth as its first frame: `layouts.clip_shape`, the rule of every
   command); a given LR clip must have the same frame names and the size `GT // scale`. Any
   disagreement is one error naming the clip and the odd frame, before anything is written.
3. **Sizes and padding.** GT sides that are not a multiple of the scale are first cut at the
   bottom/right to the nearest multiple (mod-crop), because that is what the field's LR is made
   from (MATLAB `generate_LR_Vimeo90K.m`, BasicSR `mod_crop`); the recorded `gt_size` is that
   mod-cropped size, and `source_size` keeps the size of the source file. The LR size is
   `gt_size / scale`. Then, with `multiple` K, each LR frame is padded at the **bottom and
   right only** to the next multiple of K and its GT by the same amount times the scale
   (`pad`: replicate = repeat the edge, reflect = mirror without repeating the edge like
   np.pad 'reflect', zero), or with `crop=True` cut down to the previous multiple of K (GT by
   the same region times the scale; recorded as `lr_crop` / `gt_crop`). Since padding is only at
   the bottom/right, `splits.unpad` recovers the original exactly by taking the top-left corner.
4. **Write.** One job per frame (`runner.run_jobs`: spawn process pool, or in-process with one
   worker). LR frames are made with `vsrdata.core.degrade.degrade` (MATLAB-exact bicubic 'bi',
   or 'bd') from the mod-cropped GT, or read from the given LR tree. A frame that needs no
   change (PNG source, no mod-crop, no pad, no crop) is copied byte for byte, or with
   `link=True` hard-linked (falling back to a copy when linking fails, e.g. across devices).
   Every write goes to a hidden temporary name and is renamed into place, so a hard-linked
   output is *replaced*, never written through (the source frame is never modified).

Resume and safety: OUT must be empty, absent, or an earlier split-test output; anything else is
refused unless `overwrite`. The marker holds the options that decide the bytes written (scale,
degradation, padding, clip list...); re-running with the same options resumes (frames already
present are skipped, stale temporary files of a killed run are removed) and gives files
byte-identical to an uninterrupted run; different options are refused unless `overwrite`, which
first deletes OUT/GT, the LR folder and the record files (nothing else in OUT). OUT may not be,
contain, or lie inside the source or LR tree.

Shards (`shard=(I, N)`): clip k of the plan (in selection order) is written by shard k mod N,
so N processes or machines can share one OUT (each holds its own lock, `core.locks`). The plan,
the marker and the record files depend only on the options, never on the shard: every shard
writes the same marker, and the shard that finishes last (it finds every planned frame present)
writes meta_info.txt, mapping.txt and split.json, byte-identical to an unsharded run.
`overwrite` is refused with a shard (it would delete the other shards' frames).

Modules: `split_plan` (steps 1-3, nothing written), `split_write` (step 4, OUT and records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vsrdata.core import splits
from vsrdata.core.degrade import DEGRADATIONS
from vsrdata.core.image_io import remove_stale_temps
from vsrdata.core.locks import OutputLock
from vsrdata.errors import ConfigError
from vsrdata.pipelines.runner import available_cores, check_shard, run_jobs
from vsrdata.pipelines.summary import JobsFailed, Summary
from vsrdata.pipelines.split_plan import SplitPlan, plan_split
from vsrdata.pipelines.split_write import (frame_done, frame_job, prepare_out, same_file, write_marker,
                                           write_records)
from vsrdata.progress import Progress, check_progress

__all__ = ["split_test", "SplitResult", "JobsFailed"]


@dataclass
class SplitResult:
    """What `split_test` did (or, with `dry_run`, would do). `clips` and `frames` count the
    whole split; with a shard, `summary` counts this shard's frames and `complete` says whether
    the tree is whole (the record files were written). `gt_dir` and `lr_dir` are the GT and LR
    folders under `out`; `lr_root` the LR clip root that was read (None: LR generated)."""

    out: Path
    layout: str
    gt_dir: Path
    lr_dir: Path
    lr_root: Path | None
    clips: int
    frames: int
    padded_clips: int
    summary: Summary
    linked: int = 0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    shard: tuple[int, int] | None = None
    complete: bool = True

    def line(self) -> str:
        lr = "generated" if self.lr_root is None else f"from {self.lr_root}"
        head = (f"{self.clips} clips, {self.frames} frames -> {self.out} "
                f"({self.gt_dir.name}, {self.lr_dir.name} {lr}; {self.padded_clips} clips padded/cropped)")
        tail = self.summary.line()
        if self.shard is not None:
            tail = f"shard {self.shard[0]}/{self.shard[1]}: {tail}"
            if not self.dry_run and not self.complete:
                tail += f"; other shards not finished yet ({splits.SPLIT_FILE} is written by the last)"
        if self.linked:
            tail += f"; {self.linked} GT/LR files hard-linked"
        return f"{head}; {tail}"


def _check_options(degradation, scale, multiple, pad, crop, workers, shard, overwrite) -> tuple[str | None, int]:
    """(pad mode or None with crop, workers) after checking every option."""
    if degradation not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {degradation!r} (choose from {', '.join(DEGRADATIONS)})",
                          option="degradation")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}", option="scale")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"multiple must be a positive integer, got {multiple!r}", option="multiple")
    pad_mode = None if crop else (pad or "replicate")
    if pad_mode is not None and pad_mode not in splits.SPATIAL_PADDINGS:
        raise ConfigError(f"unknown pad mode {pad!r} (choose from {', '.join(splits.SPATIAL_PADDINGS)})",
                          option="pad")
    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", option="workers")
    check_shard(shard)
    if shard is not None and overwrite:
        raise ConfigError("overwrite deletes every shard's frames; clear OUT once before starting the shards",
                          option="overwrite")
    return pad_mode, workers


def _marker(plan: SplitPlan, scale, degradation, multiple, pad_mode, crop) -> dict:
    """The options that decide the bytes written (the same for every shard)."""
    return {
        "format": splits.SPLIT_FORMAT, "scale": scale, "degradation": degradation, "lr_dir": plan.lr_dir,
        "multiple": multiple, "pad_mode": pad_mode, "crop": bool(crop),
        "lr_source": "generated" if plan.lr_base is None else "given",
        "clips": plan.selection["count"], "clips_sha256": plan.selection["sha256"],
    }


def _record(plan: SplitPlan, marker: dict) -> dict:
    """split.json without its `clips` (see `split_write.write_records`)."""
    return {
        "format": splits.SPLIT_FORMAT, "scale": marker["scale"], "degradation": marker["degradation"],
        "gt_dir": "GT", "lr_dir": plan.lr_dir, "multiple": marker["multiple"], "pad_mode": marker["pad_mode"],
        "crop": marker["crop"], "layout": plan.layout, "lr_source": marker["lr_source"],
        "selection": plan.selection,
    }


def _all_written(items: list[dict]) -> bool:
    """Every planned output exists (outputs appear by rename only, so existing = complete)."""
    return all(os.path.exists(it["gt_dst"]) and os.path.exists(it["lr_dst"]) for it in items)


def _write(out: Path, plan: SplitPlan, mine: list[dict], marker: dict, result: SplitResult, *,
           shard, overwrite: bool, link: bool, workers: int, progress) -> None:
    """Step 4 under OUT's lock: marker, this shard's frames, then the records once all are there."""
    # One writer per OUT (per shard): a second run (overwrite) would delete or mix the first one's frames.
    with OutputLock(out, "OUT", shard=shard):
        prepare_out(out, marker, overwrite, plan.lr_dir)
        write_marker(out, marker)
        folders = {Path(it["gt_dst"]).parent.name for it in mine}  # this shard's clips only
        for directory in (out / sub / folder for sub in ("GT", plan.lr_dir) for folder in sorted(folders)):
            remove_stale_temps(directory)
        summary = run_jobs(frame_job, mine, workers=workers,
                           progress=progress, desc="split-test", unit="frame")
        result.summary = summary
        if summary.failed:
            raise JobsFailed(summary)
        if link:
            result.linked = sum(1 for it in mine for s, d in (("gt_src", "gt_dst"), ("lr_src", "lr_dst"))
                                if it[s] and same_file(it[s], it[d]))
        result.complete = shard is None or _all_written(plan.items)
        if result.complete:
            write_records(out, plan.records, _record(plan, marker))


def split_test(src: str | os.PathLike, out: str | os.PathLike, *, layout: str = "auto",
               list_file: str | os.PathLike | None = None, partition: str | None = None,
               clips: list[str] | str | None = None, limit: int | None = None,
               lr_root: str | os.PathLike | None = None, scale: int = 4, degradation: str = "bi",
               multiple: int = 4, pad: str | None = "replicate", crop: bool = False,
               link: bool = False, overwrite: bool = False, workers: int | None = None,
               shard: tuple[int, int] | None = None, dry_run: bool = False,
               progress: Progress = False) -> SplitResult:
    """Extract a test split from `src` into `out` (see the module docstring for every step).

    Selection: at most one of `list_file`, `partition` (a name of `splits.PARTITIONS`), `clips`
    (ids or a comma-separated string); `limit` keeps the first N. `lr_root`: read LR frames from
    this tree (same clip/frame names) instead of generating them with `degrade`. `pad` is
    ignored (recorded as null) when `crop` is set. `workers=None` uses every core. `shard=(I, N)`
    writes only clips k with k mod N == I (module docstring).

    Raises ConfigError (bad options), InputError (missing/unsafe clips, size mismatches, bad
    frames: `JobsFailed` after the other frames were written), OutputError (unusable OUT).
    `progress`: `vsrdata.progress` (False: silent; True: a bar on stderr; or a callback).

    Example::

        from vsrdata import split_test
        result = split_test("REDS/train_sharp", "datasets/REDS4", partition="reds4")
        print(result.line())  # datasets/REDS4/GT/<clip>/00000000.png and BIx4/...
    """
    check_progress(progress)
    src, out = Path(src), Path(out)
    pad_mode, workers = _check_options(degradation, scale, multiple, pad, crop, workers, shard, overwrite)
    plan = plan_split(src, out, layout=layout, list_file=list_file, partition=partition, clips=clips,
                      limit=limit, lr_root=lr_root, scale=scale, degradation=degradation, multiple=multiple,
                      pad_mode=pad_mode, crop=crop, link=link, overwrite=overwrite)
    mine = plan.items if shard is None else [it for it in plan.items if it["clip"] % shard[1] == shard[0]]
    marker = _marker(plan, scale, degradation, multiple, pad_mode, crop)
    result = SplitResult(out=out, layout=plan.layout, gt_dir=out / "GT", lr_dir=out / plan.lr_dir,
                         lr_root=None if plan.lr_base is None else Path(plan.lr_base),
                         clips=len(plan.records), frames=len(plan.items), padded_clips=plan.padded,
                         summary=Summary(total=len(mine)), warnings=plan.warnings, dry_run=dry_run,
                         shard=tuple(shard) if shard is not None else None)
    if dry_run:
        prepare_out(out, marker, overwrite, plan.lr_dir, check_only=True)
        existing = 0 if overwrite else sum(
            1 for it in mine if frame_done(it["gt_dst"], it["geom"]["gt_out_hw"])
            and frame_done(it["lr_dst"], it["geom"]["lr_out_hw"]))
        result.summary = Summary(total=len(mine), written=len(mine) - existing, skipped=existing, dry_run=True)
        return result
    _write(out, plan, mine, marker, result, shard=shard, overwrite=overwrite, link=link, workers=workers,
           progress=progress)
    return result
