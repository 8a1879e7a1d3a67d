"""`vsrdata infer`: super-resolve any folder of frames or video file with an EDVR checkpoint."""

from __future__ import annotations

import click

from vsrdata.cli._common import (CODECS, PIX_FMTS, PRECISIONS, TEMPORAL_PADDINGS, device_option,
                                 preset_option, scene_options, stage2_option, tta_option)


def _fps(value: str | None):
    if value is None:
        return None
    from fractions import Fraction

    try:
        fps = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{value!r} is not a number or a fraction like 24000/1001") from None
    if fps <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return fps


@click.command("infer")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option("--checkpoint", "-c", required=True, type=click.Path(), help="EDVR weights (BasicSR, mmagic, "
              "original EDVR or vsrdata format), or a `vsrdata export` .onnx file.")
@preset_option("EDVR preset of the checkpoint (default: the config stored in "
              "the checkpoint, else the one its weight shapes imply).")
@click.option("--tile", type=click.IntRange(min=4), default=None,
              help="Restore in tiles of this many input pixels (rounded up to a multiple of 4).")
@click.option("--tile-overlap", type=click.IntRange(min=0), default=16, show_default=True,
              help="Input pixels each tile extends into its neighbours (only the tile's own part is kept).")
@click.option("--padding", type=click.Choice(TEMPORAL_PADDINGS), default=None,
              help="Temporal padding at clip and shot ends (default reflection_circle; replicate for "
              "deblur presets).")
@scene_options("auto", "Shot boundaries that no temporal window crosses: detected (PySceneDetect content "
              "detector), none, or a FILE of cut frame indices (first frame of each new shot). Recorded "
              "in OUTPUT/.scenes.json (OUTPUT_STEM.scenes.json next to a video).")
@click.option("--fps", default=None, help="Frame rate of a video OUTPUT, e.g. 25 or 24000/1001 (default: "
              "the input video's, exactly; else 25).")
@click.option("--codec", type=click.Choice(CODECS), default=None,
              help="Video OUTPUT codec (default libx264; libvpx-vp9 for .webm; ffv1 is lossless).")
@click.option("--crf", type=click.IntRange(min=0, max=63), default=None,
              help="Constant-rate factor (default 17 for libx264, 18 libx265, 20 VP9: visually lossless).")
@click.option("--pix-fmt", type=click.Choice(PIX_FMTS), default=None,
              help="Chroma and depth of a video OUTPUT (default yuv420p: plays everywhere; yuv420p10le for a "
              "10-bit input; yuv444p keeps full colour).")
@device_option()
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Autocast precision: bf16 on CPU or CUDA (faster, less exact), fp16 on CUDA only.")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
              help="onnxruntime runs a `vsrdata export` .onnx file given as the checkpoint; auto: by its suffix.")
@tta_option
@stage2_option
@click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto",
              show_default=True, help="Deformable-convolution implementation.")
@click.option("--overwrite", is_flag=True, help="Redo frames that already exist in OUTPUT.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(input_path, output, checkpoint, preset, tile, tile_overlap, padding, scene_cuts, scene_threshold,
            scene_min_len, fps, codec, crf, pix_fmt, device, precision, engine, dcn_backend, tta, stage2, overwrite,
            quiet):
    """Super-resolve a folder of frames or a video with EDVR (no ground truth needed).

    INPUT is a folder of frames (natural order) or a video file; OUTPUT is a video file when it
    ends in .mp4/.mkv/.mov/.m4v/.avi/.webm, a folder of PNG frames when it has no extension or is
    an existing folder (any other name is refused). A video OUTPUT keeps every frame, the exact
    frame rate, the audio (stream-copied), subtitles and language tags where the container takes
    them, the pixel aspect and a 10-bit depth; a rotated input comes out upright; what must
    change is printed as a warning (decided before the work starts). Memory stays constant
    however long the video. Any frame size works (padded to a multiple of 4 and cut back).
    Frame folders are resumable: frames already in OUTPUT are skipped.

    \b
    Examples:
      vsrdata infer my_clip/ my_clip_x4/ -c EDVR_M_x4_SR_REDS.pth --preset edvr-m
      vsrdata infer video.mp4 video_x4.mp4 -c net_g.pth --tile 128 --tile-overlap 32
      vsrdata infer film.mkv film_x4.mkv -c net_g.pth --codec libx265 --crf 16 --scene-cuts cuts.txt
      vsrdata infer my_clip/ my_clip_x4/ -c net_g.pth --tta flip4
      vsrdata infer clip/ clip_x4/ -c EDVR_REDS_SR_L.pth --tta flip4 --stage2 EDVR_REDS_SR_Stage2.pth
    """
    from vsrdata.evaluation.infer import infer

    result = infer(input_path, output, checkpoint=checkpoint, preset=preset, device=device,
                   padding=padding, tile=tile, tile_overlap=tile_overlap, precision=precision,
                   fps=_fps(fps), codec=codec, crf=crf, pix_fmt=pix_fmt, scene_cuts=scene_cuts,
                   scene_threshold=scene_threshold, scene_min_len=scene_min_len, overwrite=overwrite,
                   dcn_backend=None if dcn_backend == "auto" else dcn_backend, progress=not quiet,
                   engine=None if engine == "auto" else engine, tta=tta, stage2=stage2)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    size = ""
    if result.in_size and result.out_size:
        size = f", {result.in_size[1]}x{result.in_size[0]} -> {result.out_size[1]}x{result.out_size[0]}"
    if result.to_video:
        kind = f"video at {result.fps} fps" + (f" (streams: {'; '.join(result.audio)})" if result.audio else "")
    else:
        kind = "PNG frames"
    cuts = f"; {len(result.cuts)} scene cut(s)" if result.cuts else ""
    cuts += f"; --tta {result.tta}" if result.tta != "none" else ""
    cuts += f"; stage 2 {result.stage2}" if result.stage2 else ""
    click.echo(f"infer: {result.written} frame(s) written, {result.skipped} already present{size}{cuts}; "
               f"{kind} in {result.output} ({result.seconds:.1f} s)")
