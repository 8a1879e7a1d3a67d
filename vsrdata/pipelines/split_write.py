"""`split_test`'s writing: the frame job, OUT's marker and the record files.

Step 4 of `vsrdata.pipelines.split_test` (one job per frame, atomic writes, copies and hard
links) and its resume/safety rules (the marker, refusing a foreign or differently-made OUT,
`overwrite`). `write_records` writes meta_info.txt, mapping.txt and split.json; they depend only
on the plan, so every shard that finds the tree complete writes the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from vsrdata.core import splits
from vsrdata.core.image_io import (PNG_IEND, content_problem, frame_shape, read_image, temp_path_for, write_bytes_atomic,
                                   write_image)
from vsrdata.core.locks import LOCK_NAME
from vsrdata.errors import InputError, OutputError
from vsrdata.pipelines.summary import SKIPPED, WRITTEN

__all__ = ["frame_job", "frame_done", "prepare_out", "write_marker", "write_records", "same_file"]


# ------------------------------------------------------------------------------ frame job
def frame_done(path: str, shape: tuple[int, int]) -> bool:
    """An existing output of the expected size (writes are atomic, so it is complete)."""
    try:
        h, w = frame_shape(Path(path))[:2]
    except (InputError, OSError):
        return False
    return (h, w) == tuple(shape)


def _check_complete_png(src: str) -> None:
    """The check `read_image` makes, for files passed on without decoding: a PNG must end with
    its IEND chunk (a truncated file would otherwise be copied or linked as it is)."""
    try:
        with open(src, "rb") as fh:
            problem = content_problem(src, fh.read(8))  # the rule `read_image` applies first
            if problem:
                raise InputError(problem)
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64))
            tail = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
    if not tail.rstrip(b"\0").endswith(PNG_IEND):
        raise InputError(f"truncated PNG (no IEND chunk): {src}")


def _link_or_copy(src: str, dst: str, link: bool) -> None:
    """`dst` becomes a hard link to `src` (with `link`, when the filesystem allows) or a copy."""
    _check_complete_png(src)
    if link:
        tmp = temp_path_for(dst)
        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            os.link(src, tmp)
            os.replace(tmp, dst)  # replaces, never writes through an existing link
            return
        except OSError:  # cross-device, no link support, ...: fall back to a copy
            try:
                tmp.unlink()
            except OSError:
                pass
    try:
        data = Path(src).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
    write_bytes_atomic(dst, data)


def _fit(img, geom: dict, which: str):
    """Mod-crop (GT), then pad or crop one frame per the clip's geometry."""
    h, w = geom[f"{which}_hw"]
    img = img[:h, :w]
    crop = geom[f"{which}_crop"]
    if crop is not None:
        return img[: crop[0], : crop[1]]
    pb, pr = geom[f"{which}_pad"]
    return splits.pad_bottom_right(img, pb, pr, geom["pad_mode"])


def _write_lr(item: dict, gt) -> None:
    """The LR output of one frame: generated from GT (`gt`, when already read) or from the LR tree."""
    geom = item["geom"]
    if item["lr_src"] is None:
        from vsrdata.core.degrade import degrade  # needs cv2/scipy: imported in the worker

        if gt is None:
            gt = read_image(item["gt_src"])
        h, w = geom["gt_hw"]
        try:
            lr = degrade(gt[:h, :w], geom["scale"], geom["degradation"])
        except InputError as exc:  # degrade leaves naming the file to its caller
            raise InputError(f"{exc}: {item['gt_src']}") from None
        if tuple(lr.shape[:2]) != tuple(geom["lr_hw"]):  # pragma: no cover - degrade contract
            raise InputError(f"degrade gave {lr.shape[:2]} for {item['gt_src']}, expected {geom['lr_hw']}")
        write_image(item["lr_dst"], _fit(lr, geom, "lr"))
    elif geom["lr_unchanged"] and item["lr_src"].lower().endswith(".png"):
        _link_or_copy(item["lr_src"], item["lr_dst"], item["link"])
    else:
        lr = read_image(item["lr_src"])
        if tuple(lr.shape[:2]) != tuple(geom["lr_hw"]):
            raise InputError(f"LR frame {item['lr_src']} is {lr.shape[0]}x{lr.shape[1]}, "
                             f"expected {geom['lr_hw'][0]}x{geom['lr_hw'][1]}")
        write_image(item["lr_dst"], _fit(lr, geom, "lr"))


def frame_job(item: dict) -> str:
    """One frame (runs in a worker): GT output, then LR output; each skipped when present."""
    geom = item["geom"]
    need_gt = item["overwrite"] or not frame_done(item["gt_dst"], geom["gt_out_hw"])
    need_lr = item["overwrite"] or not frame_done(item["lr_dst"], geom["lr_out_hw"])
    if not (need_gt or need_lr):
        return SKIPPED
    gt = None
    if need_gt:
        if geom["gt_unchanged"] and item["gt_src"].lower().endswith(".png"):
            _link_or_copy(item["gt_src"], item["gt_dst"], item["link"])
        else:
            gt = read_image(item["gt_src"])
            write_image(item["gt_dst"], _fit(gt, geom, "gt"))
    if need_lr:
        _write_lr(item, gt)
    return WRITTEN


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ------------------------------------------------------------------------------------ OUT
def _read_marker(out: Path) -> dict | None:
    path = out / splits.MARKER_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _refuse_other(out: Path, marker: dict, existing: dict | None) -> None:
    """Refuse an OUT that is not ours or was made with other options."""
    # Shards share OUT: their lock files and a marker being renamed into place are not "content".
    ours = (LOCK_NAME, f".{splits.MARKER_FILE}.")
    non_empty = out.is_dir() and any(not p.name.startswith(ours) for p in out.iterdir())
    if existing is None and non_empty:
        raise OutputError(f"OUT {out} is not empty and was not made by split-test "
                          "(overwrite to write into it anyway, or choose another OUT)", option="overwrite")
    if existing is not None and existing != marker:
        diff = sorted({"clip selection" if k.startswith("clips") else k
                       for k in set(existing) | set(marker) if existing.get(k) != marker.get(k)})
        raise OutputError(f"OUT {out} holds a split-test output made with different "
                          f"{', '.join(diff) or 'options'} (overwrite to redo it, or choose another OUT)",
                          option="overwrite")


def prepare_out(out: Path, marker: dict, overwrite: bool, lr_dir: str, check_only: bool = False) -> None:
    """Refuse a foreign or differently-made OUT (unless overwrite); on overwrite clear our
    folders and record files (unless `check_only`)."""
    for name in ("GT", lr_dir):
        if (out / name).is_symlink():
            raise OutputError(f"{out / name} is a symbolic link; split-test writes real folders there")
    existing = _read_marker(out) if out.is_dir() else None
    if not overwrite:
        _refuse_other(out, marker, existing)
        return
    if check_only:
        return
    old_lr = existing.get("lr_dir") if existing else None
    for name in {"GT", lr_dir, old_lr} - {None}:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
    for name in (splits.SPLIT_FILE, splits.META_FILE, splits.MAPPING_FILE, splits.MARKER_FILE):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass


_FLAT_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?)\s+\]")


def _json_text(obj) -> bytes:
    """Indented JSON with number lists on one line (`"gt_size": [148, 268, 3]`)."""
    text = json.dumps(obj, indent=2)
    text = _FLAT_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    return (text + "\n").encode()


def write_marker(out: Path, marker: dict) -> None:
    """OUT/.vsrdata-split-test, written first: OUT is ours now (same bytes from every shard)."""
    write_bytes_atomic(out / splits.MARKER_FILE, _json_text(marker))


def write_records(out: Path, records: dict[str, dict], record: dict) -> None:
    """meta_info.txt, mapping.txt, then split.json last (its presence means: complete)."""
    meta = "".join(f"{folder} {rec['num_frames']} ({rec['gt_size'][0]},{rec['gt_size'][1]},{rec['gt_size'][2]})\n"
                   for folder, rec in records.items())
    mapping = "".join(f"{rec['source'] + '/' if rec['source'] else ''}{old} {folder}/{new}\n"
                      for folder, rec in records.items() for new, old in rec["frames"].items())
    write_bytes_atomic(out / splits.META_FILE, meta.encode())
    write_bytes_atomic(out / splits.MAPPING_FILE, mapping.encode())
    write_bytes_atomic(out / splits.SPLIT_FILE, _json_text(dict(record, clips=records)))
