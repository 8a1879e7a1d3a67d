"""Test-time ensembles (`--tta flip4|x8`, vsrdata.evaluation.ensemble) against a plain reference
written from the description: the window as is, flipped in W, in H, in both (x8: and the same on
the transposed window), each output undone, the mean."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.test_export import _lr_clip, tiny  # noqa: F401 (module fixture: tiny checkpoint + ONNX export)
from vsrdata.cli import main
from vsrdata.edvr.arch import build_edvr
from vsrdata.evaluation.engines import OnnxEngine, TorchEngine, load_engine
from vsrdata.evaluation.ensemble import TTAEngine
from vsrdata.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The ensemble batches the variants (4N or 8N samples in one call) where the reference runs each
# alone; a convolution's float32 result may change with the batch's blocking by a few ulp of
# its O(1) activations, and the mean of k outputs in [~-1, 2] adds at most k ulp: 1e-5 bounds
# both with room (seen ~1e-7).
TOL = 1e-5


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    model = build_edvr("edvr-tiny", dcn_backend="torch").eval()
    for dcn in model.dcn_modules().values():  # off-grid sampling, so flips really change the result
        torch.nn.init.normal_(dcn.conv_offset.weight, std=0.05)
    return model


def _reference(model, x: torch.Tensor, mode: str) -> torch.Tensor:
    """The description, one variant per call."""
    with torch.inference_mode():
        outs = [model(x),
                model(torch.flip(x, [4])).flip([3]),
                model(torch.flip(x, [3])).flip([2]),
                model(torch.flip(x, [3, 4])).flip([2, 3])]
        if mode == "x8":
            xt = x.permute(0, 1, 2, 4, 3)
            back = lambda y: y.permute(0, 1, 3, 2)  # noqa: E731
            outs += [back(model(xt)),
                     back(model(torch.flip(xt, [4])).flip([3])),
                     back(model(torch.flip(xt, [3])).flip([2])),
                     back(model(torch.flip(xt, [3, 4])).flip([2, 3]))]
        return torch.stack(outs).mean(0)


@pytest.mark.parametrize("mode", ["flip4", "x8"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 12, 20), (1, 5, 3, 16, 16)])  # x8: two batches / one batch
def test_ensemble_equals_the_plain_reference(mode, shape):
    model = _model()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    engine = load_engine(model=model, device="cpu", tta=mode)
    assert isinstance(engine, TTAEngine) and engine.mode == mode
    got = engine(x)
    ref = _reference(model, x, mode)
    assert got.shape == ref.shape == (shape[0], 3, 4 * shape[3], 4 * shape[4])
    assert (got - ref).abs().max().item() <= TOL
    with torch.inference_mode():
        one = model(x)
    assert (got - one).abs().max().item() > 100 * TOL  # the ensemble is not the single pass


def test_none_is_the_engine_itself_and_unknown_modes_fail():
    model = _model()
    assert isinstance(load_engine(model=model, device="cpu", tta="none"), TorchEngine)
    with pytest.raises(ConfigError, match="--tta 'flip8'"):
        load_engine(model=model, device="cpu", tta="flip8")


def test_onnxruntime_ensemble_equals_torch_and_fixed_batch_is_refused(tiny, tmp_path):  # noqa: F811
    onnx = pytest.importorskip("onnx")
    _, path, model = tiny
    x = torch.rand(1, 5, 3, 12, 16, generator=torch.Generator().manual_seed(2))
    a = TTAEngine(TorchEngine(model, "cpu"), "flip4")(x)
    b = TTAEngine(OnnxEngine(path), "flip4")(x)
    assert (a - b).abs().max().item() <= 1e-4  # the export's own float32 bound (test_export.TOL)
    # the same graph with its batch dimension fixed to 1: it cannot take the 4 variants at once
    proto = onnx.load(str(path))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(proto, str(fixed))
    assert OnnxEngine(fixed).batchable is False
    clip = _lr_clip(tmp_path / "in")
    res = CliRunner().invoke(main, ["infer", str(clip), str(tmp_path / "o"), "-c", str(fixed), "--tta", "flip4",
                                    "--device", "cpu", "-q"])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert res.output.startswith("Error: --tta flip4") and "fixed batch size" in res.output


def test_evaluate_and_infer_record_the_ensemble(tiny, tmp_path):  # noqa: F811
    from tests.test_evaluate import make_split

    ckpt, _, _ = tiny
    split = make_split(tmp_path / "ds", clips=("000",), n=3)
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(ckpt), str(split), "--tta", "x8", "--device", "cpu", "--no-strips",
                               "--out", str(tmp_path / "r"), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["protocol"]["tta"] == "x8" and report["protocol"]["engine"] == "TorchEngine"
    assert "| tta x8 |" in (tmp_path / "r" / "report.txt").read_text()
    res = runner.invoke(main, ["evaluate", "--bicubic", str(split), "--tta", "flip4", "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "applies to models" in res.output
    clip = _lr_clip(tmp_path / "in")
    res = runner.invoke(main, ["infer", str(clip), str(tmp_path / "f"), "-c", str(ckpt), "--tta", "flip4",
                               "--device", "cpu", "-q"])
    assert res.exit_code == 0 and "--tta flip4" in res.output, res.output
    assert len(list((tmp_path / "f").glob("*.png"))) == len(list(clip.iterdir()))
    assert np.isfinite(report["average"]["psnr"])
