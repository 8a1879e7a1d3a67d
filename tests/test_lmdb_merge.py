"""`to-lmdb --shard I/N` + `vsrdata lmdb-merge`, and `--shard auto` from a Slurm job array.

The reference is always one unsharded `to-lmdb` build of the same source: the merged DB must
hold byte for byte the same key/value set and the same meta_info.txt.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lmdb
import pytest
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.core.lmdb.keys import SHARD_FILE
from vsrdata.pipelines.lmdb_merge import merge_lmdb

from tests.test_to_lmdb import raw_items
from vsrdata.pipelines.to_lmdb import build_lmdb

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REDS = FIXTURES / "reds" / "train_sharp"
VIMEO = FIXTURES / "vimeo_septuplet"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_same_db(a: Path, b: Path) -> None:
    assert raw_items(a) == raw_items(b)
    assert (a / "meta_info.txt").read_bytes() == (b / "meta_info.txt").read_bytes()


def build_shards(tmp_path: Path, src: Path, n: int, **kwargs) -> list[Path]:
    shards = [tmp_path / f"shard_{i}.lmdb" for i in range(n)]
    for i, db in enumerate(shards):
        build_lmdb(src, db, workers=1, shard=(i, n), **kwargs)
    return shards


@pytest.mark.parametrize("n", [1, 2, 4])
def test_shards_merged_equal_one_build(tmp_path, n):
    ref = tmp_path / "ref.lmdb"
    build_lmdb(REDS, ref, workers=1)
    shards = build_shards(tmp_path, REDS, n)
    assert sum(len(raw_items(s)) for s in shards) == 21
    out = tmp_path / "merged.lmdb"
    result = run("lmdb-merge", out, *reversed(shards), "-q")  # any order on the command line
    assert result.exit_code == 0, result.output
    assert f"21 keys from {n} shards" in result.output
    assert_same_db(out, ref)
    assert sorted(p.name for p in out.iterdir()) == ["data.mdb", "lock.mdb", "meta_info.txt"]


def test_vimeo_list_order_mmagic_keys_small_commits(tmp_path):
    """Plan order from --list (not sorted) and mmagic keys survive the round-robin; tiny commits
    and a tiny first map force several commits and map growths in the merge."""
    kwargs = dict(vimeo_mode="lr7", list_path=VIMEO / "sep_trainlist.txt", key_style="mmagic")
    ref = tmp_path / "ref.lmdb"
    build_lmdb(VIMEO, ref, workers=1, **kwargs)
    shards = build_shards(tmp_path, VIMEO, 3, **kwargs)
    out = tmp_path / "merged.lmdb"
    merge_lmdb(out, shards, commit_images=2, commit_bytes=1 << 16)
    assert_same_db(out, ref)


def test_cli_shard_build_then_merge(tmp_path):
    for i in range(2):
        result = run("to-lmdb", REDS, tmp_path / f"s{i}.lmdb", "--shard", f"{i}/2", "-j", "2", "-q")
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s1.lmdb" / SHARD_FILE).read_text())["shard"] == [1, 2]
    assert run("lmdb-merge", tmp_path / "m.lmdb", tmp_path / "s0.lmdb", tmp_path / "s1.lmdb").exit_code == 0
    build_lmdb(REDS, tmp_path / "ref.lmdb", workers=1)
    assert_same_db(tmp_path / "m.lmdb", tmp_path / "ref.lmdb")


def test_missing_repeated_or_foreign_shards_are_refused(tmp_path):
    s0, s1, s2 = build_shards(tmp_path, REDS, 3)
    out = tmp_path / "m.lmdb"
    result = run("lmdb-merge", out, s0, s2)
    assert result.exit_code == 1 and result.output.strip() == "Error: shard(s) 1/3 missing: pass all 3 shard DBs"
    result = run("lmdb-merge", out, s0, s1, s1)
    assert result.exit_code == 1 and "are both shard 1/3" in result.output
    other = build_shards(tmp_path / "two", REDS, 2)
    result = run("lmdb-merge", out, s0, s1, other[1])
    assert result.exit_code == 1 and "not shards of one build" in result.output
    whole = tmp_path / "whole.lmdb"
    build_lmdb(REDS, whole, workers=1)
    result = run("lmdb-merge", out, whole)
    assert result.exit_code == 1 and f"{whole} is not a shard DB" in result.output
    assert not (out / "meta_info.txt").exists()


def test_duplicate_key_is_an_error_naming_it(tmp_path):
    s0, s1 = build_shards(tmp_path, REDS, 2)
    # Make shard 1 claim key 000/00000000 (shard 0's) instead of its own first key 000/00000001.
    meta = s1 / "meta_info.txt"
    meta.write_text(meta.read_text().replace("000/00000001.png", "000/00000000.png", 1))
    env = lmdb.open(str(s1))
    with env.begin(write=True) as txn:
        txn.put(b"000/00000000", txn.pop(b"000/00000001"))
    env.close()
    result = run("lmdb-merge", tmp_path / "m.lmdb", s0, s1, "-q")
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: key '000/00000000' is in both {s0} and {s1}: "
                                     f"duplicate keys, the shards are not of one build")


# ------------------------------------------------------------------------------ --shard auto
def _slurm(task: int, count: int, low: int = 0, step: int | None = None) -> dict:
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
           "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_STEP": None}
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    return env


def test_shard_auto_equals_the_explicit_shard_for_to_lmdb_and_make_lr(tmp_path):
    env = _slurm(task=6, count=3, low=5)  # sbatch --array=5-7, task 6: shard 1/3
    assert run("to-lmdb", REDS, tmp_path / "auto.lmdb", "--shard", "auto", "-j", "1", "-q", env=env).exit_code == 0
    assert run("to-lmdb", REDS, tmp_path / "expl.lmdb", "--shard", "1/3", "-j", "1", "-q").exit_code == 0
    assert raw_items(tmp_path / "auto.lmdb") == raw_items(tmp_path / "expl.lmdb")
    assert (tmp_path / "auto.lmdb" / SHARD_FILE).read_bytes() == (tmp_path / "expl.lmdb" / SHARD_FILE).read_bytes()
    env = _slurm(task=4, count=3, low=0, step=2)  # sbatch --array=0-4:2, task 4: shard 2/3
    assert run("make-lr", REDS, tmp_path / "lr_auto", "--shard", "auto", "-j", "1", "-q", env=env).exit_code == 0
    assert run("make-lr", REDS, tmp_path / "lr_expl", "--shard", "2/3", "-j", "1", "-q").exit_code == 0
    auto = sorted(p.relative_to(tmp_path / "lr_auto") for p in (tmp_path / "lr_auto").rglob("*.png"))
    assert auto == sorted(p.relative_to(tmp_path / "lr_expl") for p in (tmp_path / "lr_expl").rglob("*.png"))
    assert len(auto) == 7


def test_shard_auto_outside_an_array_is_one_line(tmp_path):
    env = {k: None for k in _slurm(0, 1)}
    result = run("to-lmdb", REDS, tmp_path / "x.lmdb", "--shard", "auto", env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --shard auto needs a Slurm job array (sbatch --array=0-N), but SLURM_ARRAY_TASK_ID, "
        "SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN are not set; outside an array pass --shard I/N"]
    result = run("make-lr", REDS, tmp_path / "lr", "--shard", "auto", env={**env, "SLURM_ARRAY_TASK_ID": "3"})
    assert result.exit_code == 1 and "SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN are not set" in result.output
    result = run("make-lr", REDS, tmp_path / "lr", "--shard", "auto", env=_slurm(task=3, count=2, low=0))
    assert result.exit_code == 1 and "is not one of 2 evenly spaced tasks" in result.output
    assert not (tmp_path / "x.lmdb").exists() and not (tmp_path / "lr").exists()


def test_interrupted_merge_resumes_to_the_same_db(tmp_path):
    """A merge stopped half way (Ctrl-C after 11 keys) keeps what it committed; the same command
    then continues after the last committed key and the result equals one build."""
    s0, s1 = build_shards(tmp_path, REDS, 2)
    out = tmp_path / "m.lmdb"

    def stop(event):
        if event.done == 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        merge_lmdb(out, [s0, s1], progress=stop)
    assert not (out / "meta_info.txt").exists() and len(raw_items(out)) == 11
    assert sorted(raw_items(out)) == sorted({**raw_items(s0), **raw_items(s1)})[:11]  # key order
    result = run("lmdb-merge", out, s0, s1, "-q")
    assert result.exit_code == 0, result.output
    assert "10 written, 11 kept from the interrupted run" in result.output
    build_lmdb(REDS, tmp_path / "ref.lmdb", workers=1)
    assert_same_db(out, tmp_path / "ref.lmdb")


def test_meta_file_and_db_of_a_shard_that_disagree_are_named_before_any_value_is_written(tmp_path):
    s0, s1 = build_shards(tmp_path, REDS, 2)
    env = lmdb.open(str(s1))
    with env.begin(write=True) as txn:
        saved = txn.pop(b"001/00000004")
    env.close()
    out = tmp_path / "m.lmdb"
    result = run("lmdb-merge", out, s0, s1, "-q")
    assert result.output.strip() == (f"Error: key '001/00000004' is listed in {s1 / 'meta_info.txt'} "
                                     f"but not stored in the DB")
    assert raw_items(out) == {} and not (out / "meta_info.txt").exists()
    env = lmdb.open(str(s1))
    with env.begin(write=True) as txn:  # all listed keys stored, and one more
        txn.put(b"001/00000004", saved)
        txn.put(b"001/00000009", saved)
    env.close()
    result = run("lmdb-merge", out, s0, s1, "-q")
    assert result.output.strip() == (f"Error: key '001/00000009' is stored in {s1} but not listed in "
                                     f"{s1 / 'meta_info.txt'}")
    meta = s1 / "meta_info.txt"  # a key listed twice, another not listed: the counts agree
    lines = meta.read_text().splitlines(keepends=True)
    meta.write_text("".join(lines[:-1] + [lines[0]]))
    env = lmdb.open(str(s1))
    with env.begin(write=True) as txn:
        txn.pop(lines[-1].split(".")[0].encode())
    env.close()
    result = run("lmdb-merge", out, s0, s1, "-q")
    assert result.output.strip() == f"Error: key '{lines[0].split('.')[0]}' is listed twice in {meta}"
