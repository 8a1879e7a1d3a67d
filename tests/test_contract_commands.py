"""One-line errors instead of tracebacks or silent success, output inside input, one writer per
output, and messages that name the path (issue 20, items 10-14). Each bad input is run through
every command that takes it."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import badinputs as bad
from media import make_video, reds_clip
from vsrdata.cli import main
from vsrdata.core.locks import OutputLock
from vsrdata.pipelines.to_lmdb import build_lmdb


def run(*argv) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in argv])
    return result.exit_code, result.output


def one_error_line(code: int, output: str) -> str:
    """The single output line of a failed command (no traceback, no warning before it)."""
    assert code == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    gt = bad.write_tree(tmp_path / "GT")
    lq = bad.write_tree(tmp_path / "LQ", size=bad.GT_SIZE // bad.SCALE)
    return gt, lq


def _train(gt, lq, run_dir, *extra):
    return ("train", "--preset", "edvr-tiny", "--dataset", "clips", "--gt", gt, "--lq", lq, "--run-dir", run_dir,
            "--val-partition", "none", "--total-iter", "1", "--num-workers", "0", "--batch-size", "1",
            "--gt-size", "16", *extra)


def _tiny_checkpoint(path: Path) -> Path:
    import torch

    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint import save_atomic

    torch.manual_seed(0)
    save_atomic({"params": build_edvr("edvr-tiny").state_dict()}, path)
    return path


# ------------------------------------------------------------------------------ item 10: types
TYPED = {"lr": ("abc", "a number"), "betas": ("0.9", "a list of numbers"), "seed": ("abc", "an integer"),
         "interval_list": ("[a]", "a list of integers"), "ema_decay": ("x", "a number"),
         "val_freq": ("1.5", "an integer"), "periods": ("[a, 2]", r"a list of integers \(or null\)"),
         "save_freq": ("abc", "an integer"), "grad_clip": ("[1]", "a number"),
         "total_iter": ("abc", "an integer"), "batch_size": ("two", "an integer"),
         "num_workers": ("1.5", "an integer")}


@pytest.mark.parametrize("key", sorted(TYPED))
def test_train_config_value_of_the_wrong_type_is_one_line_naming_the_key(tmp_path, key):
    value, want = TYPED[key]
    config = tmp_path / "c.yml"
    config.write_text(f"gt_path: g\nlq_path: l\n{key}: {value}\n")
    line = one_error_line(*run("train", "--config", config))
    assert re.fullmatch(rf"Error: {re.escape(str(config))}: {key} must be {want}, got .+", line), line


FIXTURE_OPTIONS = Path(__file__).resolve().parents[1] / "fixtures/basicsr_options/train/train_EDVR_L_x4_SR_REDS.yml"


@pytest.mark.parametrize(("line", "bad", "expected"), [
    ("    lr: !!float 4e-4", "    lr: abc", "train.optim_g.lr must be a number, got 'abc'"),
    ("    betas: [0.9, 0.99]", "    betas: 0.9", "train.optim_g.betas must be a list of numbers, got 0.9"),
    ("    periods: [50000, 100000, 150000, 150000, 150000]", "    periods: [a]",
     "train.scheduler.periods must be a number or a list of numbers, got ['a']")])
def test_basicsr_option_file_value_of_the_wrong_type_names_its_key(tmp_path, line, bad, expected):
    text = FIXTURE_OPTIONS.read_text()
    assert line in text.splitlines()
    config = tmp_path / "o.yml"
    config.write_text(text.replace(line, bad, 1))
    assert one_error_line(*run("train", "--config", config)) == f"Error: {config}: {expected}"


def test_train_config_numbers_convert_losslessly(tmp_path):
    from vsrdata.training.config import load_config

    config = tmp_path / "c.yml"  # PyYAML reads 4e-4 (no dot) as a string; 6e5 as a float
    config.write_text("gt_path: g\nlq_path: l\nlr: 4e-4\ntotal_iter: 6.0e+5\nbetas: [0.9, 1]\n")
    cfg = load_config(config)
    assert (cfg.lr, cfg.total_iter, cfg.betas) == (4e-4, 600000, [0.9, 1.0])
    assert type(cfg.total_iter) is int and all(type(b) is float for b in cfg.betas)


# ------------------------------------------------------------------ items 10, 11: damaged LMDBs
def _lmdb(tmp_path: Path, damage: str) -> tuple[Path, Path]:
    gt, lq = _trees(tmp_path)
    db = tmp_path / "lq.lmdb"
    build_lmdb(lq, db, workers=1)
    data = db / "data.mdb"
    if damage == "zeroed-page":  # the first B-tree page after the two meta pages
        with open(data, "r+b") as fh:
            fh.seek(2 * 4096)
            fh.write(bytes(4096))
    elif damage == "random-bytes":
        data.write_bytes(os.urandom(64 * 1024))
    elif damage == "meta-line-twice":
        meta = db / "meta_info.txt"
        meta.write_text(meta.read_text() + meta.read_text().splitlines(keepends=True)[3])
    return gt, db


@pytest.mark.parametrize("damage", ["zeroed-page", "random-bytes", "meta-line-twice"])
@pytest.mark.parametrize("command", ["lmdb-verify", "train"])
def test_a_damaged_lmdb_is_one_line_naming_it_in_every_reader(tmp_path, command, damage):
    gt, db = _lmdb(tmp_path, damage)
    argv = ("lmdb-verify", db, "-q") if command == "lmdb-verify" else _train(gt, db, tmp_path / "run")
    line = one_error_line(*run(*argv))
    if damage == "meta-line-twice":  # one rule: lmdb-verify no longer passes what train refuses
        assert line == (f"Error: {db / 'meta_info.txt'}: key '000/00000003' is listed twice (entries 4 and "
                        f"{2 * bad.FRAMES + 1}); the meta info and the DB disagree: rebuild the DB")
    else:
        assert re.match(rf"Error: (LMDB {re.escape(str(db))} is damaged|cannot open LMDB {re.escape(str(db))})",
                        line), line


# --------------------------------------------------------------- item 10: infer, a frame of another size
@pytest.mark.parametrize("cuts", ["auto", "off"])
def test_infer_names_the_frame_of_another_size(tmp_path, cuts):
    clip = bad.write_clip(tmp_path / "in")
    odd = bad.damage(clip, "one-frame-of-another-size", bad.GT_SIZE)
    (tmp_path / "w.pth").write_bytes(b"not read: the input is refused first")
    line = one_error_line(*run("infer", clip, tmp_path / "out", "-c", tmp_path / "w.pth", "--scene-cuts", cuts))
    assert line.startswith(f"Error: clip {clip} mixes frame formats: {odd} is 36x32x3 uint8"), line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------- item 11: a video with no frame
@pytest.mark.parametrize("command", ["infer-auto", "infer-off", "extract"])
def test_a_video_with_no_frame_fails_in_every_command(tmp_path, command):
    video = bad.zero_frame_video(tmp_path / "empty.mkv")
    if command == "extract":
        argv = ("extract", video, tmp_path / "out", "-q", "-j", "1")
    else:
        ckpt = _tiny_checkpoint(tmp_path / "tiny.pth")
        argv = ("infer", video, tmp_path / "o.mp4", "-c", ckpt, "--preset", "edvr-tiny", "--device", "cpu", "-q",
                "--scene-cuts", command.split("-")[1])
    # one message for every command: the video reader's, raised before any frame is processed
    assert one_error_line(*run(*argv)) == f"Error: no decodable video frame in {video} (empty or truncated stream)"
    assert not (tmp_path / "o.mp4").exists()


# ---------------------------------------------------------------- item 12: output inside input
def _inside(tmp_path: Path, command: str):
    gt, lq = _trees(tmp_path)
    if command == "make-lr":
        return ("make-lr", gt, gt / "000" / "lr", "-q"), gt / "000" / "lr", gt, "destination", "source folder"
    if command == "to-lmdb":
        return ("to-lmdb", gt, gt / "x.lmdb", "-q"), gt / "x.lmdb", gt, "DB", "source folder"
    if command == "lmdb-merge":
        shards = [tmp_path / f"s{i}.lmdb" for i in range(2)]
        for i, db in enumerate(shards):
            build_lmdb(gt, db, workers=1, shard=(i, 2))
        out = shards[0] / "merged.lmdb"
        return ("lmdb-merge", out, *shards, "-q"), out, shards[0], "OUT", "shard DB"
    if command == "extract":
        folder = tmp_path / "videos"
        folder.mkdir()
        make_video(folder / "v.mp4", reds_clip("000", (0, 0, 32, 32))[:3], audio=None)
        return ("extract", folder, folder / "clips", "-q"), folder / "clips", folder, "output", "input folder"
    if command == "evaluate":
        out = gt / "000" / "report"
        return ("evaluate", "--bicubic", "--gt", gt, "--lq", lq, "--out", out, "-q"), out, gt, "output", \
            "dataset folder"
    (tmp_path / "w.pth").write_bytes(b"x")
    out = gt / "000" / "sr"
    return ("infer", gt / "000", out, "-c", tmp_path / "w.pth", "-q"), out, gt / "000", "output", "input folder"


@pytest.mark.parametrize("command", ["make-lr", "to-lmdb", "lmdb-merge", "extract", "infer", "evaluate"])
def test_every_writer_refuses_an_output_inside_its_input(tmp_path, command):
    argv, out, src, what, source = _inside(tmp_path, command)
    before = sorted(p for p in src.rglob("*"))
    line = one_error_line(*run(*argv))
    assert re.fullmatch(rf"Error: {what} {re.escape(str(out))} is inside the {source} {re.escape(str(src))} "
                        r"\(choose .+ outside it\)", line), line
    assert sorted(p for p in src.rglob("*")) == before  # nothing written into the input


# ------------------------------------------------------------------------ item 13: one writer
@pytest.mark.parametrize("command", ["train", "extract"])
def test_a_second_writer_of_a_run_dir_or_out_is_refused(tmp_path, command):
    out = tmp_path / "out"
    if command == "train":
        gt, lq = _trees(tmp_path)
        argv, what = _train(gt, lq, out), "run directory"
    else:
        video = make_video(tmp_path / "v.mp4", reds_clip("000", (0, 0, 32, 32))[:3], audio=None)
        argv, what = ("extract", video, out, "-q", "-j", "1"), "OUT"
    with OutputLock(out, what):  # the first writer, still running (a flock, as another process holds it)
        line = one_error_line(*run(*argv))
    assert line == (f"Error: {what} {out} is being built by process {os.getpid()}; wait for it to finish "
                    f"(or stop it) and run again")


# --------------------------------------------------------------------------- item 14: messages
def test_export_to_a_read_only_folder_fails_before_exporting(tmp_path):
    pytest.importorskip("onnxruntime")
    readonly = Path("/sys/fs")  # sysfs: no file can be created there, even by root
    if not readonly.is_dir():
        pytest.skip("no sysfs on this system")
    (tmp_path / "w.pth").write_bytes(b"not read: the destination is checked first")
    line = one_error_line(*run("export", tmp_path / "w.pth", readonly / "m.onnx"))
    assert re.fullmatch(rf"Error: export destination {readonly} is not writable \(.+: {readonly}\)", line), line


@pytest.mark.parametrize("command", ["export", "convert-checkpoint"])
@pytest.mark.parametrize("kind", ["onnx", "plain-pickle"])
def test_checkpoint_commands_say_what_the_file_is(tmp_path, command, kind):
    if command == "export":
        pytest.importorskip("onnxruntime")
    if kind == "onnx":
        src = tmp_path / "m.onnx"  # the bytes an ONNX exporter writes first: ir_version, producer "pytorch"
        src.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x052.1.0" + bytes(64))
        expected = (f"Error: {src} is an ONNX file (a `vsrdata export` output), not a PyTorch checkpoint: "
                    f"run it with `vsrdata infer -c {src}`; export and convert-checkpoint need the .pth it came from")
    else:
        src = tmp_path / "raw.pth"
        src.write_bytes(pickle.dumps({"params": {"conv.weight": [1.0, 2.0]}}, protocol=4))
        expected = (f"Error: cannot read checkpoint {src}: it is a plain pickle, not a torch.save file "
                    f"(save the weights with torch.save)")
    out = tmp_path / ("out.onnx" if command == "export" else "out.pth")  # a valid name: the input is at fault
    assert one_error_line(*run(command, src, out)) == expected  # no torch UserWarning before


def test_a_full_disk_names_the_file(tmp_path):
    """ENOSPC from /dev/full: the frame's temporary name is a link to it."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    clip = bad.write_clip(tmp_path / "in", n=1, size=8)
    out = tmp_path / "out"
    out.mkdir()
    (out / f".00000000.png.{os.getpid()}.tmp").symlink_to("/dev/full")
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pth")
    line = one_error_line(*run("infer", clip, out, "-c", ckpt, "--preset", "edvr-tiny", "--device", "cpu", "-q"))
    assert line == f"Error: cannot write {out / '00000000.png'}: No space left on device"


def test_run_log_write_errors_name_the_file(tmp_path):
    from vsrdata.errors import OutputError
    from vsrdata.training.logs import RunLog

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    (tmp_path / "log.jsonl").symlink_to("/dev/full")
    log = RunLog(True)
    log.open(tmp_path, None)
    with pytest.raises(OutputError, match=re.escape(f"cannot write {tmp_path / 'log.jsonl'}: No space left on device")):
        log.record({"iter": 1, "loss": 0.5})
    log._jsonl = None  # its buffer cannot be flushed either
    log.close()
