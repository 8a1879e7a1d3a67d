"""One walk and one clip rule for every command (issue 10, items 3 and 6).

Symlinked clip folders and frames are followed by make-lr, split-test, to-lmdb and the training
folder store; a link cycle ends the walk with one warning. A clip that mixes frame sizes, bit
depths or channel counts is refused by every command, naming the first odd frame, before
anything of it is written. The trees are real files and real symlinks in tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.layouts import clip_shape, find_clips, walk_folders
from vsrdata.errors import InputError, VsrDataWarning

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def frame(path: Path, h: int = 16, w: int = 24, channels: int = 3, dtype=np.uint8, seed: int = 0) -> Path:
    """Write a random PNG frame (h x w x channels, gray when channels == 1)."""
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    shape = (h, w) if channels == 1 else (h, w, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, peak, shape, endpoint=True).astype(dtype))
    return path


def clip(folder: Path, n: int = 3, **kw) -> Path:
    for i in range(n):
        frame(folder / f"{i:08d}.png", seed=i, **kw)
    return folder


def linked_tree(tmp_path: Path) -> Path:
    """src/000 (real), src/001 -> elsewhere/001 (linked folder), src/000/00000003.png -> a frame
    elsewhere (linked file). Frames are 16x24 so x4 gives 4x6."""
    src = tmp_path / "src"
    clip(src / "000")
    clip(tmp_path / "elsewhere" / "001")
    os.symlink(tmp_path / "elsewhere" / "001", src / "001")
    frame(tmp_path / "elsewhere" / "extra.png", seed=9)
    os.symlink(tmp_path / "elsewhere" / "extra.png", src / "000" / "00000003.png")
    return src


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# ------------------------------------------------------------------------------ links followed
def test_walk_follows_folder_and_frame_links(tmp_path):
    src = linked_tree(tmp_path)
    clips = find_clips(src)
    assert [(c.name, c.frames) for c in clips] == [
        ("000", ("00000000.png", "00000001.png", "00000002.png", "00000003.png")),
        ("001", ("00000000.png", "00000001.png", "00000002.png"))]
    assert clips[1].path == src / "001"  # named through the link, never resolved


def test_link_cycle_is_skipped_with_one_warning(tmp_path):
    src = tmp_path / "src"
    clip(src / "a" / "000")
    os.symlink(src, src / "a" / "000" / "loop")      # back to the root
    os.symlink(src / "a", src / "a" / "again")       # back to a parent
    with pytest.warns(VsrDataWarning, match="symlink loop") as record:
        folders = [f for f, _ in walk_folders(src)]
    assert folders == [src, src / "a", src / "a" / "000"]
    assert len(record) == 2 and {str(w.message).split(" leads")[0] for w in record} == {
        f"symlink loop: {src / 'a' / '000' / 'loop'}", f"symlink loop: {src / 'a' / 'again'}"}


def test_make_lr_follows_links_and_warns_on_a_loop(tmp_path):
    src = linked_tree(tmp_path)
    os.symlink(src, src / "001" / "loop")
    result = cli("make-lr", src, tmp_path / "lr", "-j", "1", "-q")
    assert result.exit_code == 0, result.output
    assert f"Warning: symlink loop: {src / '001' / 'loop'}" in result.output
    made = sorted(p.relative_to(tmp_path / "lr").as_posix() for p in (tmp_path / "lr").rglob("*.png"))
    assert made == ["000/00000000.png", "000/00000001.png", "000/00000002.png", "000/00000003.png",
                    "001/00000000.png", "001/00000001.png", "001/00000002.png"]
    assert not (tmp_path / "lr" / "001").is_symlink()  # outputs are real folders, not links into SRC


def test_split_test_follows_links(tmp_path):
    src = linked_tree(tmp_path)
    result = cli("split-test", src, tmp_path / "out", "-j", "1", "-q", "--multiple", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out" / "GT").iterdir()) == ["000", "001"]
    assert len(list((tmp_path / "out" / "GT" / "000").glob("*.png"))) == 4


def test_to_lmdb_follows_links(tmp_path):
    from vsrdata.core.lmdb.reader import LmdbReader

    src = linked_tree(tmp_path)
    result = cli("to-lmdb", src, tmp_path / "x.lmdb", "-j", "1")
    assert result.exit_code == 0, result.output
    assert len(list(LmdbReader(tmp_path / "x.lmdb").keys())) == 7


def test_training_folder_store_follows_links(tmp_path):
    from vsrdata.training.data import FrameStore

    store = FrameStore(linked_tree(tmp_path))
    assert {c: len(f) for c, f in store.clips.items()} == {"000": 4, "001": 3}
    np.testing.assert_array_equal(store.get("000", "00000003"),
                                  cv2.imread(str(tmp_path / "elsewhere" / "extra.png")))


# ------------------------------------------------------------------------------ uniform clips
MIXES = {  # odd frame 00000002 vs the first frame (16x24x3 uint8)
    "size": ({"h": 20}, "20x24x3 uint8"),
    "16-bit": ({"dtype": np.uint16}, "16x24x3 uint16"),
    "gray": ({"channels": 1}, "16x24x1 uint8"),
}


def mixed_tree(tmp_path: Path, mix: str) -> tuple[Path, str]:
    """src/000 uniform, src/001 with frame 00000002 odd; returns (src, expected message part)."""
    src = tmp_path / "src"
    clip(src / "000")
    clip(src / "001")
    kw, shape = MIXES[mix]
    odd = frame(src / "001" / "00000002.png", seed=5, **kw)
    return src, f"clip {src / '001'} mixes frame formats: {odd} is {shape}, its first frame 00000000.png is 16x24x3 uint8"


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_clip_shape_names_the_first_odd_frame(tmp_path, mix):
    src, message = mixed_tree(tmp_path, mix)
    clips = find_clips(src)
    assert clip_shape(clips[0]) == (16, 24, 3, "uint8")
    with pytest.raises(InputError) as info:
        clip_shape(clips[1])
    assert str(info.value) == message


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_make_lr_refuses_a_mixed_clip_before_writing(tmp_path, mix):
    src, message = mixed_tree(tmp_path, mix)
    line = error_line(cli("make-lr", src, tmp_path / "lr", "-j", "1", "-q"))
    assert line == f"Error: {message}"
    assert not (tmp_path / "lr").exists()  # refused while planning: not even the manifest


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_split_test_refuses_a_mixed_clip(tmp_path, mix):
    src, message = mixed_tree(tmp_path, mix)
    line = error_line(cli("split-test", src, tmp_path / "out", "-j", "1", "-q"))
    assert line == f"Error: GT {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_to_lmdb_refuses_a_mixed_clip(tmp_path, mix):
    src, message = mixed_tree(tmp_path, mix)
    line = error_line(cli("to-lmdb", src, tmp_path / "x.lmdb", "-j", "1"))
    assert line == f"Error: {message}"
    assert not (tmp_path / "x.lmdb").exists()


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_training_store_refuses_a_mixed_clip(tmp_path, mix):
    from vsrdata.training.data import FrameStore

    src, message = mixed_tree(tmp_path, mix)
    with pytest.raises(InputError) as info:
        FrameStore(src, "GT")
    assert str(info.value) == message
