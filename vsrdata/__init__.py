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

Data: make_lr, degrade_tree (real-world degradations, replayable), split_test, build_lmdb, verify_lmdb. Model (torch): build_edvr, load_weights,
train (takes a `vsrdata.training.config.TrainConfig`), evaluate, infer.
"""

from __future__ import annotations

__version__ = "0.1.0"

# public name -> module that defines a function of that name
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
