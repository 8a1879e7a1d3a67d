"""`vsrdata infer`: super-resolve any folder of frames or video file with an EDVR checkpoint."""

from __future__ import annotations

import click

from vsrdata.cli._common import ProgressBar

_PADDINGS = ("reflection_circle", "replicate", "reflection", "circle")


@click.command("infer")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option("--checkpoint", "-c", required=True, type=click.Path(), help="EDVR weights (BasicSR, mmagic, "
              "original EDVR or vsrdata format), or a `vsrdata export` .onnx file.")
@click.option("--preset", default=None, help="EDVR preset of the checkpoint (default: the config stored in "
              "the checkpoint, else the one its weight shapes imply).")
@click.option("--tile", type=click.IntRange(min=4), default=None,
              help="Restore in tiles of this many input pixels (rounded up to a multiple of 4).")
@click.option("--tile-overlap", type=click.IntRange(min=0), default=16, show_default=True,
              help="Input pixels each tile extends into its neighbours (only the tile's own part is kept).")
@click.option("--padding", type=click.Choice(_PADDINGS), default=None,
              help="Temporal padding at the ends (default reflection_circle; replicate for deblur presets).")
@click.option("--fps", type=float, default=None, help="Frame rate of a video OUTPUT (default: the input "
              "video's, else 25).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Autocast precision: bf16 on CPU or CUDA (faster, less exact), fp16 on CUDA only.")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
              help="onnxruntime runs a `vsrdata export` .onnx file given as the checkpoint; auto: by its suffix.")
@click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto",
              show_default=True, help="Deformable-convolution implementation.")
@click.option("--overwrite", is_flag=True, help="Redo frames that already exist in OUTPUT.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(input_path, output, checkpoint, preset, tile, tile_overlap, padding, fps, device, precision, engine,
            dcn_backend, overwrite, quiet):
    """Super-resolve a folder of frames or a video with EDVR (no ground truth needed).

    INPUT is a folder of frames (natural order) or a video file; OUTPUT is a folder of PNG
    frames, or a video file when it ends in .mp4/.mkv/.avi/.mov/.webm. Any frame size works
    (padded to a multiple of 4 and cut back). Frame folders are resumable: frames already in
    OUTPUT are skipped.

    \b
    Examples:
      vsrdata infer my_clip/ my_clip_x4/ -c EDVR_M_x4_SR_REDS.pth --preset edvr-m
      vsrdata infer video.mp4 video_x4.mp4 -c net_g.pth --tile 128 --tile-overlap 32
    """
    from vsrdata.edvr.evaluate import infer

    with ProgressBar("infer", "frame", quiet=quiet) as progress:
        result = infer(input_path, output, checkpoint=checkpoint, preset=preset, device=device,
                       padding=padding, tile=tile, tile_overlap=tile_overlap, precision=precision, fps=fps,
                       overwrite=overwrite, dcn_backend=None if dcn_backend == "auto" else dcn_backend,
                       progress=progress, engine=None if engine == "auto" else engine)
    size = ""
    if result.in_size and result.out_size:
        size = (f", {result.in_size[1]}x{result.in_size[0]} -> {result.out_size[1]}x{result.out_size[0]}")
    kind = f"video at {result.fps:g} fps" if result.to_video else "PNG frames"
    click.echo(f"infer: {result.written} frame(s) written, {result.skipped} already present{size}; "
               f"{kind} in {result.output} ({result.seconds:.1f} s)")
