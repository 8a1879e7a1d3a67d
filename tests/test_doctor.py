"""`vsrdata doctor`: the DCN self-check passes here and catches a kernel that ignores offsets."""

from __future__ import annotations

from click.testing import CliRunner

from vsrdata.cli import main
from vsrdata.edvr import dcn, doctor


def test_doctor_passes_on_this_installation():
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "[ok] torch on cpu: zero offsets == conv2d" in result.output
    assert "[ok] torch on cpu: +1 px offsets == shifted conv2d" in result.output
    assert "all checks passed" in result.output


def test_doctor_fails_a_kernel_that_ignores_offsets(monkeypatch):
    def broken(x, offset, mask, weight, bias=None, stride=1, padding=1, dilation=1, backend=None):
        return dcn.modulated_deform_conv2d(x, offset * 0, mask, weight, bias, stride, padding, dilation,
                                           backend=backend)

    monkeypatch.setattr(doctor, "modulated_deform_conv2d", broken)
    report = doctor.doctor("cpu")
    failed = [c.name for c in report.checks if not c.ok]
    assert not report.ok and "torch on cpu: +1 px offsets == shifted conv2d" in failed
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu"])
    assert result.exit_code == 1 and "[FAIL]" in result.output
