"""`vsrdata export` (EDVR -> ONNX, verified), the onnxruntime engine in infer/evaluate, and the
CPU engine defaults (channels_last, bf16)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.edvr.arch import build_edvr
from vsrdata.edvr.checkpoint import save_atomic
from vsrdata.evaluation.engines import ONNX_FORMAT, OnnxEngine, TorchEngine, load_engine
from vsrdata.evaluation.inference import restore
from vsrdata.errors import ConfigError, InputError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# float32 graph vs PyTorch float32: the same ops in another order; seen ~2e-7, bound 1e-4 (the
# export's own acceptance threshold).
TOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint, exported ONNX file, the float32 model) for an edvr-tiny with random weights."""
    from vsrdata.evaluation.export import export_onnx

    root = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = build_edvr("edvr-tiny", dcn_backend="torch").eval()
    # non-zero offsets, so the DCN really samples off-grid
    for dcn in model.dcn_modules().values():
        torch.nn.init.normal_(dcn.conv_offset.weight, std=0.05)
    save_atomic({"params": model.state_dict()}, root / "tiny.pth")
    res = export_onnx(root / "tiny.pth", root / "tiny.onnx")
    assert res.max_abs_diff <= TOL and res.opset == 16
    return root / "tiny.pth", root / "tiny.onnx", model


@pytest.mark.parametrize("shape", [(1, 5, 3, 4, 4), (3, 5, 3, 12, 20), (2, 5, 3, 28, 8), (1, 5, 3, 44, 60)])
def test_onnx_matches_pytorch_at_several_shapes(tiny, shape):
    _, path, model = tiny
    x = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.inference_mode():
        ref = model(x)
    out = OnnxEngine(path)(x)
    assert out.shape == ref.shape == (shape[0], 3, 4 * shape[3], 4 * shape[4])
    assert (out - ref).abs().max().item() <= TOL


def test_metadata_names_and_dynamic_axes(tiny):
    _, path, model = tiny
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vsrdata_format"] == ONNX_FORMAT and meta["preset"] == "edvr-tiny"
    assert json.loads(meta["edvr_config"]) == model.config.to_dict()
    assert "multiples of 4" in meta["input"] and meta["input_dtype"] == "float32"
    assert float(meta["max_abs_diff"]) <= TOL and meta["opset"] == "16"
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("lq", "sr")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:3] == [5, 3] and all(isinstance(d, str) for d in dims[3:])


def test_export_cli_prints_the_check_and_refuses_to_overwrite(tiny, tmp_path):
    ckpt, _, _ = tiny
    res = CliRunner().invoke(main, ["export", str(ckpt), str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    assert res.output.count("max |onnxruntime - pytorch|") == 2 and "opset 16" in res.output
    res = CliRunner().invoke(main, ["export", str(ckpt), str(tmp_path / "m.onnx")])
    assert res.exit_code == 1 and "exists" in res.output and len(res.output.strip().splitlines()) == 1
    assert "multiples of 4" in CliRunner().invoke(main, ["export", "--help"]).output


@pytest.mark.slow  # two fp16 exports: tracing a half model on CPU takes seconds
def test_fp16_export_within_one_output_level_and_failed_checks_write_nothing(tiny, tmp_path):
    from vsrdata.evaluation.export import export_onnx

    ckpt, _, model = tiny
    # fp16 against float32 differs by ~7e-4 (11-bit mantissas): over a 1e-4 bound it must fail
    with pytest.raises(ConfigError, match="differs from PyTorch"):
        export_onnx(ckpt, tmp_path / "h.onnx", fp16=True, tolerance=1e-4)
    assert list(tmp_path.iterdir()) == []  # neither OUT nor its temporary file
    res = export_onnx(ckpt, tmp_path / "h.onnx", fp16=True)
    assert res.max_abs_diff <= 1 / 255
    x = torch.rand(2, 5, 3, 8, 12, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = model(x)
    assert (OnnxEngine(tmp_path / "h.onnx")(x) - ref).abs().max().item() <= 1 / 255


# -- the engine in infer / evaluate -------------------------------------------------------------

def _lr_clip(dst: Path, n=5, h=30, w=42) -> Path:
    """Odd-sized (not multiples of 4) crops of a REDS fixture clip as an LR frame folder."""
    dst.mkdir(parents=True)
    for i in range(n):
        bgr = cv2.imread(str(FIXTURES / "reds" / "train_sharp" / "000" / f"{i % 4:08d}.png"))
        cv2.imwrite(str(dst / f"{i:08d}.png"), bgr[60 + i:60 + i + h, 100:100 + w])
    return dst


def test_restore_with_onnxruntime_equals_torch_with_tiles(tiny):
    _, path, model = tiny
    x = torch.rand(5, 3, 30, 42, generator=torch.Generator().manual_seed(5))
    torch_engine, ort_engine = TorchEngine(model, "cpu"), OnnxEngine(path)
    for tile in (None, 16):
        a = restore(torch_engine, x, scale=4, multiple=4, tile=tile, tile_overlap=8)
        b = restore(ort_engine, x, scale=4, multiple=4, tile=tile, tile_overlap=8)
        assert a.shape == b.shape == (3, 120, 168)
        assert (a - b).abs().max().item() <= TOL


def test_infer_onnxruntime_equals_torch_on_a_fixture_clip(tiny, tmp_path):
    ckpt, path, _ = tiny
    clip = _lr_clip(tmp_path / "in")
    runner = CliRunner()
    for engine, c, out in (("torch", ckpt, "t"), ("onnxruntime", path, "o"), ("auto", path, "a")):
        res = runner.invoke(main, ["infer", str(clip), str(tmp_path / out), "-c", str(c), "--engine", engine,
                                   "--device", "cpu", "--tile", "24", "-q"])
        assert res.exit_code == 0, res.output
    for name in sorted(p.name for p in clip.iterdir()):
        t = cv2.imread(str(tmp_path / "t" / name)).astype(int)
        for other in ("o", "a"):
            o = cv2.imread(str(tmp_path / other / name)).astype(int)
            assert t.shape == o.shape == (120, 168, 3)
            # float outputs agree to 1e-4 (test above): a uint8 value can only flip by one level
            # where the float sits within 1e-4 of a rounding edge
            assert np.abs(t - o).max() <= 1 and (t != o).mean() < 1e-3


def test_evaluate_onnxruntime_matches_torch(tiny, tmp_path):
    from tests.test_evaluate import make_split
    from vsrdata.evaluation.evaluate import evaluate

    ckpt, path, _ = tiny
    split = make_split(tmp_path / "ds", clips=("000",), n=5)
    kw = dict(device="cpu", strips=False, protocol="reds4")
    a = evaluate(split, ckpt, out_dir=tmp_path / "t", **kw)
    b = evaluate(split, path, engine="onnxruntime", out_dir=tmp_path / "o", **kw)
    assert b.protocol["engine"] == "OnnxEngine" and b.protocol["preset"] == "edvr-tiny"
    assert abs(a.mean["psnr"] - b.mean["psnr"]) < 1e-3


def _one_line_error(args) -> str:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


def test_onnx_files_that_are_not_ours(tmp_path):
    from onnx import TensorProto, helper

    clip = _lr_clip(tmp_path / "in", n=1)
    x = helper.make_tensor_value_info("lq", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("sr", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", ["lq"], ["sr"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    msg = _one_line_error(["infer", str(clip), str(tmp_path / "o"), "-c", str(tmp_path / "other.onnx"), "-q"])
    assert "other.onnx is not an EDVR exported by `vsrdata export`" in msg
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 10)
    msg = _one_line_error(["infer", str(clip), str(tmp_path / "o"), "-c", str(tmp_path / "junk.onnx"),
                           "--engine", "onnxruntime", "-q"])
    assert "junk.onnx" in msg
    assert not (tmp_path / "o").exists()


def test_preset_and_precision_that_do_not_fit_the_onnx_file(tiny, tmp_path):
    _, path, _ = tiny
    clip = _lr_clip(tmp_path / "in", n=1)
    msg = _one_line_error(["infer", str(clip), str(tmp_path / "o"), "-c", str(path), "--preset", "edvr-m", "-q"])
    assert "--preset edvr-m does not match" in msg and "edvr-tiny" in msg
    msg = _one_line_error(["infer", str(clip), str(tmp_path / "o"), "-c", str(path), "--precision", "bf16", "-q"])
    assert "--fp16" in msg
    with pytest.raises(ConfigError, match="use --engine onnxruntime"):
        load_engine(path, engine="torch")


def test_missing_onnxruntime_is_a_one_line_hint(tiny, tmp_path, monkeypatch):
    ckpt, path, _ = tiny
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    clip = _lr_clip(tmp_path / "in", n=1)
    msg = _one_line_error(["infer", str(clip), str(tmp_path / "o"), "-c", str(path), "-q"])
    assert "pip install 'vsrdata[onnx]'" in msg
    msg = _one_line_error(["export", str(ckpt), str(tmp_path / "x.onnx")])
    assert "pip install 'vsrdata[onnx]'" in msg and not (tmp_path / "x.onnx").exists()


def test_not_an_onnx_checkpoint_for_onnxruntime(tiny):
    ckpt, _, _ = tiny
    with pytest.raises(InputError, match="cannot read ONNX model"):
        OnnxEngine(ckpt)


# -- CPU defaults of the torch engine -------------------------------------------------------------

def test_cpu_engine_is_channels_last_and_equal_to_the_plain_model():
    """channels_last only changes the order of float32 sums: bound 1e-5 (seen ~1e-7)."""
    torch.manual_seed(0)
    plain = build_edvr("edvr-tiny").eval()
    fast = build_edvr("edvr-tiny").eval()
    fast.load_state_dict(plain.state_dict())
    engine = TorchEngine(fast, "cpu")
    assert engine.channels_last and fast.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 5, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = plain(x)
    out = engine(x)
    assert out.dtype == torch.float32 and (out - ref).abs().max().item() <= 1e-5


def test_bf16_on_cpu_runs_and_stays_close(tmp_path):
    from tests.test_evaluate import make_split
    from vsrdata.evaluation.evaluate import evaluate

    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    torch.manual_seed(0)
    model = build_edvr("edvr-tiny")
    fp32 = evaluate(split, model=model, out_dir=tmp_path / "a", device="cpu", strips=False)
    bf16 = evaluate(split, model=model, out_dir=tmp_path / "b", device="cpu", precision="bf16", strips=False)
    # bf16 keeps 8 mantissa bits (relative error 2^-9 per op); the same 0.5 dB bound as the CUDA test
    assert bf16.protocol["precision"] == "bf16"
    assert abs(fp32.mean["psnr"] - bf16.mean["psnr"]) < 0.5
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        evaluate(split, model=model, out_dir=tmp_path / "c", device="cpu", precision="fp16")


def test_export_traced_without_autograd_keeps_shapes_dynamic(tiny, tmp_path):
    """A library user may export inside torch.no_grad(): the trace must still take the DCN path
    with no Python loop over batch and rows (the CPU inference path has one), or other batch
    sizes and heights would run the traced counts."""
    from vsrdata.evaluation.export import export_onnx

    ckpt, _, model = tiny
    with torch.no_grad():
        export_onnx(ckpt, tmp_path / "no_grad.onnx")
    x = torch.rand(3, 5, 3, 36, 28, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        ref = model(x)
    assert (OnnxEngine(tmp_path / "no_grad.onnx")(x) - ref).abs().max().item() <= TOL
