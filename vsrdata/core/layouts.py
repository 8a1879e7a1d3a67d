"""Dataset layouts -> clips and frames.

A *clip* is a directory that directly contains image frames; its name is its path relative to
the clip root, with '/' separators (`000` for REDS, `00001/0001` for Vimeo90K, `calendar` for
Vid4). Frames inside a clip are ordered by natural sort (`im2` before `im10`, `00000009` before
`00000010`).

Layouts recognised by `find_clips`:
- Vimeo90K septuplet: ROOT/sequences/<5 digits>/<4 digits>/im1.png..im7.png (the clip root is
  ROOT/sequences; ROOT may also be the `sequences` folder itself).
- REDS: ROOT/<clip>/00000000.png.. (e.g. ROOT = train_sharp).
- Vid4 / any folder of clips: ROOT/<clip>/<frames>, at any depth.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vsrdata.core.image_io import is_image_file
from vsrdata.errors import InputError

_DIGITS = re.compile(r"(\d+)")
_VIMEO_ID = re.compile(r"^\d{5}/\d{4}$")


def natural_key(name: str):
    """Sort key that orders embedded integers numerically: im2 < im10."""
    return [int(tok) if tok.isdigit() else tok for tok in _DIGITS.split(name)]


@dataclass(frozen=True)
class Clip:
    """One clip: `name` relative to the clip root ('/'-separated), `root` the clip root,
    `frames` the image file names in temporal order."""

    name: str
    root: Path
    frames: tuple[str, ...] = field(default_factory=tuple)

    @property
    def path(self) -> Path:
        return self.root / self.name

    def frame_paths(self) -> list[Path]:
        return [self.path / f for f in self.frames]


def clip_root(root: str | os.PathLike) -> Path:
    """The directory clip names are relative to: ROOT/sequences for a Vimeo90K tree, else ROOT."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"not a directory: {root}")
    seq = root / "sequences"
    return seq if seq.is_dir() else root


def detect_layout(root: str | os.PathLike) -> str:
    """'vimeo' (a sequences/ tree of 5-digit/4-digit clips), 'reds' (ROOT/<3 digits>/<8 digits>.png),
    or 'clips' (anything else)."""
    root = Path(root)
    if (root / "sequences").is_dir() or root.name == "sequences":
        return "vimeo"
    subdirs = [d for d in root.iterdir() if d.is_dir()] if root.is_dir() else []
    if subdirs and all(re.fullmatch(r"\d{3}", d.name) for d in subdirs):
        return "reds"
    return "clips"


def _list_frames(directory: Path) -> tuple[str, ...]:
    names = [e.name for e in os.scandir(directory) if e.is_file() and is_image_file(e.name)
             and not e.name.startswith(".")]
    return tuple(sorted(names, key=natural_key))


def find_clips(root: str | os.PathLike) -> list[Clip]:
    """All clips under `root` (see module docstring), sorted by natural order of their names.

    Hidden entries (starting with '.') are ignored, so temporary files of an interrupted job
    never count as frames.
    """
    base = clip_root(root)
    clips: list[Clip] = []
    for dirpath, dirnames, _ in os.walk(base):
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=natural_key)
        directory = Path(dirpath)
        frames = _list_frames(directory)
        if frames:
            rel = directory.relative_to(base).as_posix()
            clips.append(Clip(name="" if rel == "." else rel, root=base, frames=frames))
    clips.sort(key=lambda c: natural_key(c.name))
    return clips


def validate_clip_id(clip_id: str, source: str = "list") -> str:
    """Refuse ids that could escape the root: absolute paths, '..', backslashes, empty parts."""
    cid = clip_id.strip()
    p = PurePosixPath(cid)
    if (not cid or "\\" in cid or p.is_absolute() or cid.startswith("~")
            or any(part in ("", ".", "..") for part in cid.split("/"))):
        raise InputError(f"refusing unsafe clip id {clip_id!r} in {source}")
    return cid


def read_clip_list(path: str | os.PathLike) -> list[str]:
    """Read a clip list such as Vimeo90K's `sep_testlist.txt` (`00001/0266` per line).

    Blank lines are skipped; a BasicSR meta-info line (`00001/0266 7 (256,448,3)`) is accepted
    and reduced to its first field. Every id is checked by `validate_clip_id`.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read clip list {path}: {exc.strerror or exc}") from None
    ids = []
    for line in text.splitlines():
        if line.strip():
            ids.append(validate_clip_id(line.split()[0], str(path)))
    return ids


def clips_from_list(root: str | os.PathLike, ids: list[str]) -> list[Clip]:
    """Clips named by `ids` (list order kept). Missing ids raise one InputError that lists the
    first 10 and the count."""
    base = clip_root(root)
    clips, missing = [], []
    for cid in ids:
        directory = base / cid
        frames = _list_frames(directory) if directory.is_dir() else ()
        if not frames:
            missing.append(cid)
        else:
            clips.append(Clip(name=cid, root=base, frames=frames))
    if missing:
        shown = ", ".join(missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        raise InputError(f"{len(missing)} clip(s) of the list not found under {base}: {shown}{more}")
    return clips


def is_vimeo_id(clip_id: str) -> bool:
    return bool(_VIMEO_ID.match(clip_id))
