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

Symbolic links are followed, to folders and to frames alike (`walk_folders`): a dataset assembled
from links (`train/clip_a -> /disk2/clip_a`) is read like a real tree. A link that leads back to
a folder above it (a cycle) is skipped with a `VsrDataWarning`, so a walk always ends.

A clip is *uniform*: every frame has the size, channel count and bit depth of its first frame
(`clip_shape`); every command refuses a clip that is not, naming the first odd frame. A folder of
the tree with nothing visible in it is refused by `find_clips`, naming it; GT and LQ frames that
a command pairs must agree in channels and bit depth (`check_pair`). The whole rule:
docs/CONVENTIONS.md#frame-contract.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from typing import Iterator

from vsrdata.core.image_io import check_frame_layout, format_shape, frame_shape, is_image_file
from vsrdata.errors import InputError, VsrDataWarning

# Source layouts a command can be told to expect ('auto' detects; 'gt-tree' is a Vid4-style
# SRC/GT/<clip>/ tree with its LR in SRC/BIx4/); the one list the split-test CLI offers.
LAYOUTS = ("auto", "vimeo", "reds", "gt-tree", "clips")
# Frames kept of each Vimeo90K septuplet: gt4 = im4 only (the GT LMDB), lr7 = im1..im7 (the LQ LMDB).
VIMEO_MODES = ("gt4", "lr7")
_DIGITS = re.compile(r"(\d+)")


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


def _is_frame(entry: os.DirEntry) -> bool:
    """A visible image file; a link to one counts, and so does a dangling link with an image
    name (reading it then fails loudly instead of the frame vanishing from the clip)."""
    if entry.name.startswith(".") or not is_image_file(entry.name):
        return False
    return entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path))


def _list_frames(directory: Path) -> tuple[str, ...]:
    names = [e.name for e in os.scandir(directory) if _is_frame(e)]
    return tuple(sorted(names, key=natural_key))


def walk_folders(root: str | os.PathLike) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """(folder, its frame names in natural order) for `root` and every visible folder below it,
    depth first, sub-folders in natural order; the only directory walk of the package.

    Links to folders are followed (`os.walk` does not by default, which silently dropped linked
    clips). A folder whose real identity (st_dev, st_ino) is already on the path from `root`
    is a link cycle: it is skipped with a `VsrDataWarning` naming the link and its target.
    Paths are yielded as reached (through the link name), never resolved.
    """
    root = Path(root)
    stack = [(root, ())]  # (folder, identities of its ancestors including itself)
    first = True
    while stack:
        folder, seen = stack.pop()
        try:
            st = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: natural_key(e.name))
        except OSError as exc:
            if first:
                raise InputError(f"cannot list {folder}: {exc.strerror or exc}") from None
            warnings.warn(f"cannot list {folder}: {exc.strerror or exc}; skipped", VsrDataWarning, 2)
            continue
        first = False
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            warnings.warn(f"symlink loop: {folder} leads back to {os.path.realpath(folder)}; skipped",
                          VsrDataWarning, 2)
            continue
        seen = seen + (ident,)
        yield folder, tuple(e.name for e in entries if _is_frame(e))
        subdirs = [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]
        stack.extend((d, seen) for d in reversed(subdirs))


def clip_shape(clip: "Clip", label: str = "") -> tuple[int, int, int, str]:
    """(h, w, c, dtype) shared by every frame of `clip` (from PNG headers; see
    `image_io.frame_shape`). Raises InputError naming the first frame that differs from the
    first frame in size, channel count or bit depth, with both shapes. `label` ('GT', 'LR')
    prefixes the clip in the message."""
    paths = clip.frame_paths()
    if not paths:
        raise InputError(f"{label + ' ' if label else ''}clip {clip.path} holds no frames")
    first = frame_shape(paths[0])
    check_frame_layout(first[:3], str(paths[0]))
    for path in paths[1:]:
        shape = frame_shape(path)
        if shape != first:
            raise InputError(f"{label + ' ' if label else ''}clip {clip.path} mixes frame formats: {path} is "
                             f"{format_shape(shape)}, its first frame {paths[0].name} is {format_shape(first)}")
    return first


def check_pair(gt: tuple[int, int, int, str], lq: tuple[int, int, int, str], where: str) -> None:
    """GT and LQ frames paired by a command have the same channel count and bit depth (shapes as
    `clip_shape` gives them); InputError naming `where` (the clip or frame pair) otherwise."""
    if tuple(gt[2:4]) != tuple(lq[2:4]):
        raise InputError(f"{where}: GT frames are {format_shape(gt)} but LQ frames are {format_shape(lq)} "
                         f"(GT and LQ need the same channels and bit depth)")


def check_uniform(clips: list["Clip"]) -> list["Clip"]:
    """`clips`, after `clip_shape` has checked each one (InputError on the first mixed clip)."""
    for clip in clips:
        clip_shape(clip)
    return clips


def find_clips(root: str | os.PathLike) -> list[Clip]:
    """All clips under `root` (see module docstring), sorted by natural order of their names.

    Hidden entries (starting with '.') are ignored, so temporary files of an interrupted job
    never count as frames. Links are followed (`walk_folders`). A folder below `root` with nothing
    visible in it is an InputError naming it (an empty clip is never skipped silently).
    """
    base = clip_root(root)
    clips: list[Clip] = []
    for directory, frames in walk_folders(base):
        if not frames and directory != base and _is_empty(directory):
            raise no_frames_error(directory)
        if frames:
            rel = directory.relative_to(base).as_posix()
            clips.append(Clip(name="" if rel == "." else rel, root=base, frames=frames))
    clips.sort(key=lambda c: natural_key(c.name))
    return clips


def no_frames_error(directory: str | os.PathLike) -> InputError:
    """The one error for a clip folder without frames: 'empty folder ...' when nothing visible is
    in it, else 'no image frames in ...'."""
    if _is_empty(Path(directory)):
        return InputError(f"empty folder {directory}: a clip folder must hold frames (remove it or fill it)")
    return InputError(f"no image frames in {directory}")


def _is_empty(directory: Path) -> bool:
    try:
        return not any(not e.name.startswith(".") for e in os.scandir(directory))
    except OSError:
        return False


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
