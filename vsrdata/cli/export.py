"""`vsrdata export`: an EDVR checkpoint to an ONNX file, verified with ONNX Runtime."""

from __future__ import annotations

import click

from vsrdata.cli._common import overwrite_option, preset_option


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("output", metavar="OUT.onnx", type=click.Path(dir_okay=False))
@preset_option("EDVR preset of the checkpoint (default: the "
              "config stored in the checkpoint, else the one its weight shapes imply).")
@click.option("--opset", type=int, default=None, help="ONNX opset (>= 16, GridSample). Default: the lowest "
              "that exports.")
@click.option("--fp16", is_flag=True, help="Half-precision weights and input (checked to 1/255 instead of "
              "1e-4 against PyTorch float32).")
@overwrite_option
def command(checkpoint, output, preset, opset, fp16, overwrite):
    """Export an EDVR checkpoint to ONNX (input `lq`, output `sr`), verified before it is written.

    Input `lq`: (N, T, 3, H, W) RGB in [0, 1]; output `sr`: (N, 3, 4H, 4W). N, H and W are
    dynamic, but H and W must be multiples of 4 (16 for the deblur models): pad, then crop the
    output (`vsrdata infer --engine onnxruntime` does this, with the same windows and tiles as
    the PyTorch path). The file records its EDVR config in its metadata. Before OUT is written,
    ONNX Runtime runs it at two sizes and two batch sizes against PyTorch; the max |diff| is
    printed and over 1e-4 (1/255 with --fp16) nothing is written. Needs `pip install 'vsrdata[onnx]'`.

    \b
    Example:
      vsrdata export EDVR_M_x4_SR_REDS.pth edvr_m.onnx --preset edvr-m
      vsrdata infer clip/ clip_x4/ -c edvr_m.onnx --engine onnxruntime
    """
    from vsrdata.evaluation.export import export_onnx

    res = export_onnx(checkpoint, output, preset=preset, opset=opset, fp16=fp16, overwrite=overwrite)
    for shape, diff in res.checks:
        click.echo(f"checked {'x'.join(map(str, shape))}: max |onnxruntime - pytorch| = {diff:.3g}")
    click.echo(f"Wrote {res.path} ({res.preset}, opset {res.opset}, {'float16' if res.fp16 else 'float32'}; "
               f"max |diff| {res.max_abs_diff:.3g} <= {res.tolerance:.3g}).")
