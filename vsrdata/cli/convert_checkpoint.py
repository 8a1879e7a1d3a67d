"""`vsrdata convert-checkpoint`: move EDVR weights between BasicSR, original EDVR, mmagic and vsrdata."""

from __future__ import annotations

import click

from vsrdata.cli._common import overwrite_option, preset_option


@click.command("convert-checkpoint")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--to", "to", type=click.Choice(["basicsr", "vsrdata"]), default="basicsr", show_default=True,
              help="Output format: basicsr = {'params': weights} (loads in BasicSR, strict); vsrdata = "
                   "weights plus the model config ({'params', 'config', 'format': 'vsrdata-weights/1'}).")
@preset_option("Check the weights against this preset and store its config. "
               "Default: the file's own config, else inferred from the tensor shapes.")
@click.option("--param-key", default=None, metavar="KEY",
              help="Wrapper entry to read (e.g. params or params_ema). "
                   "Default: params_ema, then params, state_dict, model, else the raw dict.")
@overwrite_option
def command(src: str, dst: str, to: str, preset: str | None, param_key: str | None, overwrite: bool) -> None:
    """Convert an EDVR checkpoint (BasicSR, original EDVR, mmagic, plain) to BasicSR or vsrdata format.

    The input format is detected (old EDVR names, including the tAtt_1/tAtt_2 swap, and mmagic's
    'generator.' names are renamed to BasicSR's); the file is read with torch.load(weights_only=True),
    so a pickle that would run code is refused. The weights must form a complete EDVR (strict
    check of every key and shape) before anything is written; the output is written atomically.

    \b
    Example:
      vsrdata convert-checkpoint EDVR_REDS_SR_M.pth edvr_m_basicsr.pth --to basicsr
      vsrdata convert-checkpoint edvrm_x4_8x4_600k_reds.pth edvr_m.pth --to vsrdata --preset edvr-m
    """
    from vsrdata.edvr.checkpoint import convert_checkpoint

    result = convert_checkpoint(src, dst, to=to, preset=preset, param_key=param_key, overwrite=overwrite)
    key = f" [{result.param_key}]" if result.param_key else ""
    name = result.preset or "custom configuration"
    click.echo(f"Read {src}: {result.source_format} format{key}, {result.num_tensors} tensors, "
               f"{result.num_params:,} parameters ({name}, config from {result.config_origin}).")
    click.echo(f"Wrote {dst} ({to} format).")
