"""The package root: the public functions, loaded lazily (no torch on `import vsrdata`)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import vsrdata

PUBLIC = ("make_lr", "degrade_tree", "split_test", "build_lmdb", "verify_lmdb", "build_edvr", "load_weights", "train",
          "evaluate", "infer", "extract", "export", "lmdb_merge", "convert_checkpoint")


def test_import_loads_no_heavy_module_until_a_torch_function_is_called():
    code = (
        "import sys\n"
        "import vsrdata\n"
        "from vsrdata import make_lr, split_test, build_lmdb, build_edvr, evaluate, infer, train\n"
        "from vsrdata import extract, export, lmdb_merge, convert_checkpoint\n"
        "print('BEFORE=' + ','.join(m for m in ('torch', 'cv2', 'lmdb') if m in sys.modules))\n"
        "build_edvr('edvr-tiny')\n"
        "print('AFTER=' + ','.join(m for m in ('torch',) if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "BEFORE=\n" in out and "AFTER=torch\n" in out, out


def test_bare_import_loads_no_heavy_module():
    code = "import sys, vsrdata; print(sorted(m for m in ('torch', 'cv2', 'lmdb', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_resolve_to_the_library_functions_and_carry_an_example():
    from vsrdata.edvr import arch
    from vsrdata.edvr.checkpoint import weights as checkpoint
    from vsrdata.evaluation import evaluate, infer
    from vsrdata.training import loop as train
    from vsrdata.pipelines import degrade, extract, lmdb_merge, lmdb_verify, make_lr, split_test, to_lmdb
    from vsrdata.evaluation import export
    from vsrdata.edvr.checkpoint import convert

    home = {"make_lr": make_lr, "degrade_tree": degrade, "split_test": split_test, "build_lmdb": to_lmdb, "verify_lmdb": lmdb_verify,
            "build_edvr": arch, "load_weights": checkpoint, "train": train, "evaluate": evaluate,
            "infer": infer, "extract": extract, "export": export, "lmdb_merge": lmdb_merge,
            "convert_checkpoint": convert}
    real_name = {"export": "export_onnx", "lmdb_merge": "merge_lmdb"}
    assert set(vsrdata.__all__) == {"__version__", *PUBLIC}
    assert set(PUBLIC) <= set(dir(vsrdata))
    for name in PUBLIC:
        func = getattr(vsrdata, name)
        real = getattr(home[name], real_name.get(name, name))
        assert func.target() is real, name
        assert func.__doc__ == inspect.getdoc(real), name  # read from the source, without importing
        lazy_sig, real_sig = inspect.signature(func), inspect.signature(real)
        for lazy_p, real_p in zip(lazy_sig.parameters.values(), real_sig.parameters.values(), strict=True):
            assert (lazy_p.name, lazy_p.kind, lazy_p.annotation) == (real_p.name, real_p.kind, real_p.annotation)
            if type(lazy_p.default).__name__ != "_Default":  # non-literal defaults show their source text
                assert lazy_p.default == real_p.default, (name, lazy_p.name)
        assert lazy_sig.return_annotation == real_sig.return_annotation, name
        assert "Example::" in func.__doc__ and f"from vsrdata import {name}" in func.__doc__.replace(
            "build_edvr, load_weights", "load_weights"), name


def test_unknown_name_is_an_attribute_error():
    try:
        vsrdata.no_such_function
    except AttributeError as exc:
        assert "no_such_function" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


# -- results as objects with fields; one kind of `progress` -----------------------------------------
import dataclasses  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import typing  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import pytest  # noqa: E402

from vsrdata.errors import ConfigError  # noqa: E402
from vsrdata.progress import ProgressEvent  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# a function without a per-item loop takes no `progress`: building a model, copying weights into
# it, rewriting one checkpoint file, exporting one ONNX file
NO_PROGRESS = {"build_edvr", "load_weights", "convert_checkpoint", "export"}
# a name that says "this is a place on disk" must hold a Path
PATHY = re.compile(r"(^|_)(path|dir|db|out|output|checkpoint|source|root|log|png|html|scenes|run_dir)$")
# JSON records kept as written to disk (the extract manifest's entries, report.json's protocol block)
RECORDS = {("ExtractResult", "videos"), ("ExtractResult", "clips"), ("EvalReport", "protocol")}


def _hint_mentions(hint, kind) -> bool:
    return hint is kind or any(_hint_mentions(a, kind) for a in typing.get_args(hint))


def _no_str_path(where: str, value, depth: int = 0) -> None:
    """No string naming an existing file or folder, at any depth of lists, tuples and dicts."""
    if isinstance(value, str):
        assert not (os.sep in value and os.path.exists(value)), f"{where} holds a str path {value!r}"
    elif isinstance(value, (list, tuple)) and depth < 4:
        for i, v in enumerate(value):
            _no_str_path(f"{where}[{i}]", v, depth + 1)
    elif isinstance(value, dict) and depth < 4:
        for k, v in value.items():
            _no_str_path(f"{where}[{k!r}]", v, depth + 1)


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def check_result(obj, where: str) -> None:
    """A result is a dataclass of plain fields: places on disk as Path, counts as int, scores
    as float; nested results (a Summary, ClipScores) follow the same rules."""
    cls = type(obj)
    assert dataclasses.is_dataclass(obj) and not isinstance(obj, type), f"{where}: {cls.__name__} is no dataclass"
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("), f"{where}: {cls.__name__} has no docstring"
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(obj):
        value, hint, at = getattr(obj, f.name), hints[f.name], f"{where}.{f.name}"
        if PATHY.search(f.name) or set(typing.get_args(hint) or [hint]) <= {Path, type(None)}:
            assert value is None or isinstance(value, Path), f"{at} is {type(value).__name__}, not a Path"
        if PATHY.search(f.name) or _hint_mentions(hint, Path):  # Path, or lists / tuples / dict values of Paths
            dict_of = typing.get_origin(hint) is dict
            assert not _hint_mentions(typing.get_args(hint)[1] if dict_of else hint, str), f"{at} is annotated {hint}"
            leaves = _leaves(list(value.values()) if dict_of else value)
            assert not any(isinstance(v, str) for v in leaves), f"{at} holds a str"
        if hint is int:
            assert isinstance(value, int), f"{at} is {type(value).__name__}, not an int"
        if hint is float:
            assert isinstance(value, float), f"{at} is {type(value).__name__}, not a float"
        if (cls.__name__, f.name) not in RECORDS:
            _no_str_path(at, value)
        for v in value if isinstance(value, list) else [value]:
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                check_result(v, at)


def test_every_public_function_is_annotated_with_a_result_dataclass():
    for name in PUBLIC:
        real = getattr(vsrdata, name).target()
        result = eval(inspect.signature(real).return_annotation, real.__globals__)  # annotations are strings
        if name == "build_edvr":  # the model itself
            continue
        assert dataclasses.is_dataclass(result), (name, result)
        for f in dataclasses.fields(result):
            hint = typing.get_type_hints(result)[f.name]
            if PATHY.search(f.name):
                assert _hint_mentions(hint, Path) and not _hint_mentions(hint, str), (name, f.name, hint)


def test_every_long_running_function_takes_the_same_progress_argument():
    from vsrdata.progress import Progress

    for name in PUBLIC:
        params = inspect.signature(getattr(vsrdata, name).target()).parameters
        if name in NO_PROGRESS:
            assert "progress" not in params, name
            continue
        p = params["progress"]
        assert (p.annotation, p.default) in ((Progress, False), ("Progress", False)), (name, p)


@pytest.mark.parametrize("name", sorted(set(PUBLIC) - NO_PROGRESS))
@pytest.mark.parametrize("bad", ["yes", 1])
def test_a_progress_of_another_kind_is_a_config_error_before_any_work(name, bad, tmp_path):
    func = getattr(vsrdata, name).target()
    args = {"make_lr": (tmp_path / "a", tmp_path / "b"), "degrade_tree": (tmp_path / "a", tmp_path / "b"),
            "split_test": (tmp_path / "a", tmp_path / "b"), "build_lmdb": (tmp_path / "a", tmp_path / "b.lmdb"),
            "verify_lmdb": (tmp_path / "a",), "train": (None,), "evaluate": (tmp_path / "a", tmp_path / "c.pth"),
            "infer": (tmp_path / "a", tmp_path / "b"), "extract": ([tmp_path / "a"], tmp_path / "b"),
            "lmdb_merge": (tmp_path / "b", [tmp_path / "a"])}[name]
    with pytest.raises(ConfigError, match="progress must be True, False, None or a callable"):
        func(*args, progress=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def _tiny_tree(root: Path, clips=("000", "001"), n=5) -> Path:
    for clip in clips:
        (root / clip).mkdir(parents=True)
        for i in range(n):
            img = cv2.imread(str(FIXTURES / "reds" / "train_sharp" / clip / f"{i:08d}.png"))[40:88, 100:164]
            cv2.imwrite(str(root / clip / f"{i:08d}.png"), img)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every public function run once on tiny inputs (one worker, CPU, edvr-tiny) with a recording
    `progress` callback: {name: (result, [ProgressEvent])}."""
    import torch

    from media import make_video
    from vsrdata.training.config import TrainConfig

    tmp = tmp_path_factory.mktemp("api")
    out: dict = {}

    def run(name, *args, **kw):
        events: list = []
        out[name] = (getattr(vsrdata, name)(*args, progress=events.append, **kw), events)
        return out[name][0]

    gt = _tiny_tree(tmp / "gt")
    run("make_lr", gt, tmp / "lr", workers=1)
    run("degrade_tree", gt, tmp / "deg", "bi", workers=1)
    run("split_test", gt, tmp / "split", workers=1)
    run("build_lmdb", gt, tmp / "gt.lmdb", workers=1)
    run("verify_lmdb", tmp / "gt.lmdb", workers=1)
    for i in range(2):
        vsrdata.build_lmdb(gt, tmp / f"s{i}.lmdb", workers=1, shard=(i, 2))
    run("lmdb_merge", tmp / "merged.lmdb", [tmp / "s0.lmdb", tmp / "s1.lmdb"])
    video = make_video(tmp / "v.mp4", [cv2.imread(str(p)) for p in sorted((gt / "000").glob("*.png"))], audio=None)
    run("extract", [video], tmp / "ex", frames_per_clip=5, scene_cuts="off", workers=1)
    torch.manual_seed(0)
    model = vsrdata.build_edvr("edvr-tiny")
    torch.save({"params": model.state_dict()}, tmp / "tiny.pth")
    out["load_weights"] = (vsrdata.load_weights(model, tmp / "tiny.pth"), [])
    out["convert_checkpoint"] = (vsrdata.convert_checkpoint(tmp / "tiny.pth", tmp / "conv.pth", preset="edvr-tiny"), [])
    run("evaluate", tmp / "split", tmp / "tiny.pth", preset="edvr-tiny", device="cpu", out_dir=tmp / "eval")
    run("infer", tmp / "lr" / "000", tmp / "sr", checkpoint=tmp / "tiny.pth", preset="edvr-tiny", device="cpu",
        scene_cuts="off")
    run("train", TrainConfig(run_dir=str(tmp / "run"), preset="edvr-tiny", dataset="clips", gt_path=str(gt),
                             lq_path=str(tmp / "lr"), gt_size=32, batch_size=1, num_workers=0, total_iter=2,
                             val_path=str(tmp / "split"), val_freq=2, save_freq=2, val_max_frames=1, seed=1,
                             tensorboard=False))
    return out


# what each function's progress counts: (task(s), unit), and what `done` ends at
TASKS = {"make_lr": ({"make-lr"}, "frame", 10), "degrade_tree": ({"degrade"}, "clip", 2),
         "split_test": ({"split-test"}, "frame", 10), "build_lmdb": ({"to-lmdb"}, "img", 10),
         "verify_lmdb": ({"lmdb-verify"}, "key", 10), "lmdb_merge": ({"lmdb-merge"}, "key", 10),
         "extract": ({"extract: analyse", "extract"}, "frame", 5), "evaluate": ({"evaluate"}, "frame", 10),
         "infer": ({"infer"}, "frame", 5), "train": ({"train", "validation"}, None, 2)}


@pytest.mark.parametrize("name", sorted(set(PUBLIC) - {"build_edvr", "export"}))
def test_results_are_dataclasses_with_path_fields_and_no_str_paths(runs, name):
    result, _ = runs[name]
    check_result(result, name)


def test_the_results_name_their_outputs(runs):
    assert runs["make_lr"][0].out.name == "lr" and runs["degrade_tree"][0].out.name == "deg"
    assert runs["split_test"][0].gt_dir.name == "GT" and runs["split_test"][0].lr_dir.name == "BIx4"
    assert runs["convert_checkpoint"][0].path.is_file() and runs["load_weights"][0].source.name == "tiny.pth"
    report = runs["evaluate"][0]
    assert report.paths["html"].is_file() and report.paths["json"].is_file()
    # the average row is a field; the deprecated method returns a copy of it
    assert report.mean == report.average() and isinstance(report.mean["psnr"], float)
    assert report.mean["psnr"] == pytest.approx(sum(c.psnr for c in report.clips) / len(report.clips), abs=1e-9)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_progress_callback_gets_events_of_one_kind(runs, name):
    _, events = runs[name]
    tasks, unit, last = TASKS[name]
    assert events and all(isinstance(e, ProgressEvent) for e in events)
    assert {e.task for e in events} == tasks
    for task in tasks:
        mine = [e for e in events if e.task == task]
        assert all(e.done == sum(x.added for x in mine[:k + 1]) for k, e in enumerate(mine))  # done = sum of added
        assert all(e.total is None or 0 <= e.done <= e.total for e in mine)
        if unit is not None:
            assert {e.unit for e in mine} == {unit}
    first = [e for e in events if e.task == sorted(tasks, key=len)[0]]
    assert first[-1].done == last


@pytest.mark.parametrize("progress", [False, None, True])
def test_true_draws_a_bar_on_stderr_and_false_or_none_nothing(progress, tmp_path, capfd):
    gt = _tiny_tree(tmp_path / "gt", clips=("000",), n=2)
    capfd.readouterr()
    vsrdata.make_lr(gt, tmp_path / "lr", workers=1, progress=progress)
    vsrdata.degrade_tree(gt, tmp_path / "deg", "bi", workers=1, progress=progress)
    vsrdata.split_test(gt, tmp_path / "split", workers=1, progress=progress)
    vsrdata.build_lmdb(gt, tmp_path / "db.lmdb", workers=1, progress=progress)
    vsrdata.verify_lmdb(tmp_path / "db.lmdb", workers=1, progress=progress)
    err = capfd.readouterr().err
    if progress:
        for task, count in (("make-lr", "2/2"), ("degrade", "1/1"), ("split-test", "2/2"), ("to-lmdb", "2/2"),
                            ("lmdb-verify", "2/2")):
            assert re.search(rf"{task}: 100%.*{count}", err), (task, err)
    else:
        assert err == ""
