"""vsrdata: video super-resolution data preparation and an EDVR trainer/evaluator.

The public functions are importable from the package root. `import vsrdata` and
`from vsrdata import evaluate` import neither torch nor cv2 nor lmdb: the name is a thin
function that imports its module on the first call (PEP 562 `__getattr__` builds it, with the
docstring and signature read from the module's source).

Example::

    from vsrdata import make_lr, split_test, build_lmdb, evaluate
    make_lr("vimeo_septuplet/sequences", "vimeo_septuplet_matlabLRx4/sequences")
    split_test("REDS/train_sharp", "datasets/REDS4", partition="reds4")
    build_lmdb("REDS/train_sharp", "REDS/train_sharp_with_val.lmdb")
    evaluate("datasets/REDS4", "EDVR_M_x4_SR_REDS_official-32075921.pth")   # imports torch now

Data: extract, make_lr, degrade_tree (real-world degradations, replayable), split_test, build_lmdb,
lmdb_merge, verify_lmdb. Model (torch): build_edvr, load_weights, train (takes a
`vsrdata.training.config.TrainConfig`), evaluate, infer, export, convert_checkpoint.

Results are dataclasses of plain fields: places on disk are `pathlib.Path` (None where nothing was
written), counts `int`, scores and seconds `float`; a `line()` method only renders the one-line
summary the CLI prints. Each function returns:

- extract -> `ExtractResult` (out, videos, clips, summary, frames, warnings)
- make_lr, degrade_tree -> `Summary` (out, total, written, skipped, failed, seconds, errors, examples)
- split_test -> `SplitResult` (out, gt_dir, lr_dir, lr_root, clips, frames, padded_clips, summary, ...)
- build_lmdb -> `BuildSummary` (db, total, written, skipped, bytes_written, seconds, ...)
- verify_lmdb -> `VerifyReport` (db, keys, checked, problems, ok, ...)
- lmdb_merge -> `MergeSummary` (db, shards, keys, written, kept, bytes_written, seconds)
- build_edvr -> the model; load_weights -> `LoadReport` (loaded, missing, unexpected, mismatched, source)
- train -> `TrainResult` (run_dir, last_checkpoint, best_checkpoint, curve_png, train_log, report_html,
  tb_dir, iterations, metrics)
- evaluate -> `EvalReport` (protocol, clips: per-clip `ClipScores` with per-frame rows, mean: the
  average row {column: float | None}, paths: {'json', 'csv', 'table', 'html', ...: Path})
- infer -> `InferResult` (output, frames, written, skipped, fps, cuts, scenes, seconds, ...)
- export -> `ExportResult` (path, opset, fp16, preset, max_abs_diff, checks, tolerance)
- convert_checkpoint -> `ConvertResult` (path, source, source_format, num_tensors, num_params, ...)

Progress: every function with a long loop (all but build_edvr, load_weights, convert_checkpoint,
export) takes the same keyword `progress` (`vsrdata.progress`): False or None (the default; silent),
True (a tqdm bar per task on stderr), or a callable receiving `vsrdata.progress.ProgressEvent`s
(task, done, total, unit, added).
"""

from __future__ import annotations

__version__ = "0.1.0"

# public name -> module that defines a function of that name ('module:function' when named otherwise)
_API = {
    "make_lr": "vsrdata.pipelines.make_lr",
    "degrade_tree": "vsrdata.pipelines.degrade",
    "split_test": "vsrdata.pipelines.split_test",
    "build_lmdb": "vsrdata.pipelines.to_lmdb",
    "verify_lmdb": "vsrdata.pipelines.lmdb_verify",
    "build_edvr": "vsrdata.edvr.arch",
    "load_weights": "vsrdata.edvr.checkpoint.weights",
    "train": "vsrdata.training.loop",
    "evaluate": "vsrdata.evaluation.evaluate",
    "infer": "vsrdata.evaluation.infer",
    "extract": "vsrdata.pipelines.extract",
    "export": "vsrdata.evaluation.export:export_onnx",
    "lmdb_merge": "vsrdata.pipelines.lmdb_merge:merge_lmdb",
    "convert_checkpoint": "vsrdata.edvr.checkpoint.convert",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'vsrdata' has no attribute {name!r}")
    from vsrdata._lazy import lazy_function

    func = lazy_function(name, _API[name])
    globals()[name] = func  # later look-ups skip __getattr__
    return func


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
