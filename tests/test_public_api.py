"""The package root: the public functions, loaded lazily (no torch on `import vsrdata`)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import vsrdata

PUBLIC = ("make_lr", "degrade_tree", "split_test", "build_lmdb", "verify_lmdb", "build_edvr", "load_weights", "train",
          "evaluate", "infer")


def test_import_loads_no_heavy_module_until_a_torch_function_is_called():
    code = (
        "import sys\n"
        "import vsrdata\n"
        "from vsrdata import make_lr, split_test, build_lmdb, build_edvr, evaluate, infer, train\n"
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
    from vsrdata.pipelines import degrade, lmdb_verify, make_lr, split_test, to_lmdb

    home = {"make_lr": make_lr, "degrade_tree": degrade, "split_test": split_test, "build_lmdb": to_lmdb, "verify_lmdb": lmdb_verify,
            "build_edvr": arch, "load_weights": checkpoint, "train": train, "evaluate": evaluate,
            "infer": infer}
    assert set(vsrdata.__all__) == {"__version__", *PUBLIC}
    assert set(PUBLIC) <= set(dir(vsrdata))
    for name in PUBLIC:
        func = getattr(vsrdata, name)
        real = getattr(home[name], name)
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
