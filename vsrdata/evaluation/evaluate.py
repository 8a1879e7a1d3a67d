"""`evaluate`: score EDVR (or the bicubic baseline) on a split-test output, in one process or
split across the processes of a `torchrun` launch.

Protocol (docs/CONVENTIONS.md#metrics; EDVR-old `test_Vid4_REDS4_with_GT.py`, BasicSR
`video_test_dataset.py` / `video_base_model.py`; our own code):

- Each frame of a clip is restored from the window of `num_frame` LR frames centred on it; at
  the clip ends the window is padded in time (`windows.temporal_indices`). Default padding:
  ``reflection_circle`` (EDVR-old ``new_info``, what the SR models were scored with) and
  ``replicate`` for the predeblur models (SRblur / deblur / deblurcomp), as the official scripts.
- Outputs are clamped, x255, rounded to uint8 (`metrics.tensor_to_uint8`) and cut back to the
  original region recorded by split-test (`splits.unpad`): padding added to reach a multiple of 4
  is never scored. LR frames whose sides are not a multiple of the model's `size_multiple` (a
  split made with another --multiple) are padded here by edge replication and cut back as well.
- Protocols (channel, crop_border, which frames): `vsrdata.evaluation.protocols` (for
  ``vimeo-t`` the window of the centre frame im4 is im1-7 for 7-frame models, im2-6 for 5-frame
  ones).
  PSNR on both RGB and Y is always recorded; Center/Border/SSIM use the protocol's channel.
- Border frames are the first and last num_frame // 2 frames of a clip (EDVR-old); Center PSNR
  is over the others. Averages: mean of per-clip means (default) or over all frames.
- Bicubic baseline: MATLAB-style `imresize` (x scale, bicubic, antialiasing) of the original
  (unpadded) LR centre frame, via `vsrdata.core.resize`.

Memory is bounded by the window (2 * num_frame LR frames are held), not by the clip length.
The model runs through an engine (`vsrdata.evaluation.engines`: PyTorch, channels_last on CPU,
fp32 / bf16 / fp16 autocast; or ONNX Runtime on a `vsrdata export` file) under
`torch.inference_mode()`; each clip is scored by `vsrdata.evaluation.scoring.score_clip`.

Several processes (``torchrun --nproc_per_node=N -m vsrdata evaluate ...``): clip i is scored by
rank i % N (on ``cuda:LOCAL_RANK`` with CUDA), the per-frame scores are gathered
(`vsrdata.evaluation.distributed`), and rank 0 writes the report, identical to one process's
(same clip order and numbers; ``protocol.processes`` records N). Each rank writes the strips and
frames of its own clips (the output folder must be shared by the processes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from vsrdata.core import splits
from vsrdata.core.image_io import read_image, write_bytes_atomic
from vsrdata.core.paths import refuse_inside
from vsrdata.evaluation import distributed
from vsrdata.evaluation.metrics import AVERAGE_MODES
from vsrdata.evaluation.engines import load_engine
from vsrdata.evaluation.lq_only import has_ground_truth, lq_only_record, set_scale
from vsrdata.evaluation.metric_suite import MetricSuite, parse_metrics
from vsrdata.evaluation.inference import autocast_for, model_meta, resolve_device, resolve_padding
from vsrdata.evaluation.protocols import Protocol, choose_protocol
from vsrdata.evaluation.report import EvalReport, report_files
from vsrdata.evaluation.scoring import ClipJob, Runner, ScoreOptions, clip_jobs, score_clip
from vsrdata.errors import ConfigError, InputError
from vsrdata.progress import Progress, Reporter, check_progress

if TYPE_CHECKING:
    from vsrdata.edvr.config import EDVRConfig

__all__ = ["default_out_dir", "evaluate"]

@dataclass
class _Cuts:
    """--scene-cuts: the mode given, the detector settings, and the cuts of a file (None for auto)."""

    mode: str
    threshold: float
    min_len: int
    given: dict | None = None


def evaluate(split_dir: str | os.PathLike | None, checkpoint: str | os.PathLike | None = None, *,
             bicubic: bool = False, model: torch.nn.Module | None = None, preset: str | EDVRConfig | None = None,
             protocol: str = "auto", channel: str | None = None, crop_border: int | None = None,
             frames: str | None = None, padding: str | None = None, average: str = "clip",
             device: str | None = None, precision: str = "fp32", out_dir: str | os.PathLike | None = None,
             save_frames: bool = False, strips: bool = True, strip_crop: int = 192,
             with_bicubic: bool = False, dcn_backend: str | None = None, scene_cuts: str = "off",
             scene_threshold: float = 27.0, scene_min_len: int = 15,
             progress: Progress = False, engine: str | None = None, gt: str | os.PathLike | None = None,
             lq: str | os.PathLike | None = None, meta_info: str | os.PathLike | None = None,
             metrics: str | None = None, no_gt: bool = False,
             iqa_weights: str | os.PathLike | None = None, param_key: str | None = None,
             save_as: Callable[[str, str], Path] | None = None, tta: str = "none",
             stage2: str | os.PathLike | None = None) -> EvalReport:
    """Score a model (a `checkpoint`, or an already built `model`) or the bicubic baseline
    (`bicubic=True`) on the split-test output `split_dir`; see the module docstring.
    `engine`: 'torch', 'onnxruntime' (`checkpoint` is a `vsrdata export` file) or None (by the
    checkpoint's suffix); see `vsrdata.evaluation.engines`. `tta`: test-time ensemble 'none',
    'flip4' or 'x8' (`vsrdata.evaluation.ensemble`), recorded in the report's protocol.
    `stage2`: a stage-2 checkpoint (hr_in, scale 1) that refines the model's restored frames in its
    own windows (`vsrdata.evaluation.two_stage`; `padding` and `tta` apply to stage 1).

    `channel` ('y'/'rgb'), `crop_border` and `frames` ('all'/'center') override the protocol's.
    Writes report.json / report.csv / report.txt / report.html, comparison strips (compare/<clip>.png) and,
    with `save_frames`, the restored frames (frames/<clip>/<name>.png) into `out_dir`; with
    `out_dir` None nothing is written (the CLI's default folder is `default_out_dir`). Returns
    the EvalReport. Arguments given in the CLI's order (a checkpoint file, then a dataset
    folder) are refused with a ConfigError saying so.

    Instead of `split_dir`, `gt` and `lq` (and optionally `meta_info`) name a BasicSR-style test
    set read in place (`vsrdata.evaluation.basicsr_testset`: REDS4 train_sharp + train_sharp_bicubic/X4
    + meta_info_REDS4_test_GT.txt, Vid4 GT/ + BIx4/); the scores equal those of split-test's
    output of the same clips. The report's protocol records which checkpoint entry was loaded
    (`weights_key`: params, params_ema, ...): `param_key` reads the entry as BasicSR's
    `param_key_g` (`vsrdata.edvr.checkpoint.basicsr_param_key`), None our own preference order.
    `save_as(clip, GT frame name)`: also write each restored frame to that path (BasicSR test files'
    `val.save_img`, `vsrdata.evaluation.basicsr_testset.visualization_path`).

    `scene_cuts` ('off' by default, the papers' protocol): 'auto' detects shot boundaries in each
    clip's LR frames (`vsrdata.core.scenes`), or a JSON FILE maps clip names to cut lists; windows
    then stay inside their shot (`windows.shot_temporal_indices`) and the cuts used are
    recorded in `out_dir`/scenes.json.

    `metrics` ('psnr,ssim' by default; also niqe, vmaf, tof, lpips, tlp: `metric_suite`) adds
    columns. Without ground truth (`no_gt`, `lq` given alone, or a split-test output without its
    GT folder) only no-reference metrics (NIQE) are scored, on the model's output and on the
    bicubic baseline. `iqa_weights`: folder holding the LPIPS / DISTS weight files (`iqa`, `dists`).

    Under torchrun the clips are split across the processes and rank 0 writes the report (all
    ranks return it); `progress` counts the frames of this process's clips (task 'evaluate'):
    `vsrdata.progress` (False: silent; True: a bar on stderr; or a callback).

    Raises InputError (not a split-test output, unreadable frames), CheckpointError (missing or
    mismatching weights), ConfigError (bad options, model scale that does not fit the split).

    Example::

        from vsrdata import evaluate
        report = evaluate("datasets/REDS4", "EDVR_M_x4_SR_REDS_official-32075921.pth")  # RGB PSNR/SSIM
    """
    check_progress(progress)
    _check_order(split_dir, checkpoint)
    record, split_dir, out = _check_args(split_dir, gt, lq, meta_info, out_dir, save_frames, average)
    proto_name, proto = choose_protocol(protocol, record, channel, crop_border, frames)
    env = distributed.dist_env()
    runner = _runner(record, checkpoint, bicubic, model, preset, padding, distributed.device_for(env, device),
                     precision, dcn_backend, engine, param_key, tta, stage2)
    if record["scale"] is None:  # LQ only: the output size follows the model
        set_scale(record, runner.scale)
    reference = not no_gt and has_ground_truth(record, split_dir)
    suite = MetricSuite(parse_metrics(metrics), proto.crop_border, reference, iqa_weights, str(runner.device))
    jobs = clip_jobs(record, split_dir, centre_only=proto.frames == "center", reference=reference)
    cuts = _Cuts(scene_cuts, scene_threshold, scene_min_len, _cut_file(scene_cuts, jobs, runner.model is None))
    opts = ScoreOptions(proto, with_bicubic=with_bicubic, strips=strips and out is not None, strip_crop=strip_crop,
                        save_frames=save_frames, out=out, suite=suite, save_as=save_as)
    with distributed.process_group(env, runner.device), Reporter(progress, "evaluate", "frame") as bar:
        results = _score_all(runner, jobs, opts, cuts, env, bar)
    report = EvalReport(protocol=_protocol_record(
        record, split_dir, gt, meta_info, (checkpoint, param_key), runner, proto_name, proto, average, precision,
        scene_cuts, env.world, suite), clips=[clip for clip, _, _ in results])
    return _finish(report, results, out, env.main, save_frames, cuts, jobs)


def _check_args(split_dir, gt, lq, meta_info, out_dir, save_frames: bool, average: str
                ) -> tuple[dict, Path, Path | None]:
    """(split record, the folder it describes, the output folder or None) once the options that
    need no model are checked."""
    if out_dir is None and save_frames:
        raise ConfigError("save_frames needs out_dir (where the frames go)", option="out_dir")
    if average not in AVERAGE_MODES:
        raise ConfigError(f"unknown average {average!r} (choose from {', '.join(AVERAGE_MODES)})")
    record, split_dir = _load_record(split_dir, gt, lq, meta_info)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:  # reports, strips and frames never go into the frames being scored
        refuse_inside(out, [p for p in (split_dir, gt, lq) if p is not None], choose="an --out folder",
                      source="dataset folder")
    return record, split_dir, out


def _finish(report: EvalReport, results: list[tuple], out: Path | None, main: bool, save_frames: bool,
            cuts: _Cuts, jobs: list[ClipJob]) -> EvalReport:
    """The report's `paths`, and its files written into `out` (by rank 0; nothing when `out` is None)."""
    if any(strip for _, strip, _ in results):
        report.paths["strips"] = out / "compare"
    if save_frames:
        report.paths["frames"] = out / "frames"
    if out is None:  # nothing asked to be written
        return report
    if main:
        report.write(out)
        from vsrdata.evaluation.report_html import write_html

        report.paths["html"] = write_html(report, out / "report.html")
        if cuts.mode != "off":
            _write_clip_cuts(out, cuts, {job.name: c for job, (_, _, c) in zip(jobs, results) if c is not None})
    else:  # the files rank 0 wrote
        report.paths.update(report_files(out))
    return report


def default_out_dir(dataset: str | os.PathLike, checkpoint: str | os.PathLike | None) -> Path:
    """The CLI's report folder: results/<dataset name>/<tag>, the tag naming the run when the
    checkpoint is one of a training run's (RUN/best.pth, RUN/checkpoints/iter_N.pth -> RUN_iter_N),
    else the checkpoint's stem, or 'bicubic'."""
    tag = "bicubic"
    if checkpoint is not None:
        ck = Path(checkpoint)
        run = ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent
        is_run = (run / "config.json").is_file() and (run / "log.jsonl").is_file()
        tag = f"{run.resolve().name}_{ck.stem}" if is_run else ck.stem
    return Path("results") / Path(dataset).resolve().name / tag


def _check_order(split_dir, checkpoint) -> None:
    """evaluate(DATASET, CHECKPOINT): the CLI's order is the other way round; say so clearly."""
    if split_dir is None or checkpoint is None:
        return
    first, second = Path(split_dir), Path(checkpoint)
    if first.is_file() and second.is_dir():
        raise ConfigError(f"evaluate(dataset, checkpoint, ...) takes the dataset first (the CLI's "
                          f"`vsrdata evaluate CHECKPOINT DATASET` is the other way round): got checkpoint {first} "
                          f"first; call evaluate(dataset={str(second)!r}, checkpoint={str(first)!r})")


def _load_record(split_dir, gt, lq, meta_info) -> tuple[dict, Path]:
    """(split record, folder it describes) of a split-test output, a BasicSR test set (gt/lq) or
    LQ clips alone (lq without gt: no ground truth)."""
    if lq is not None and gt is None and split_dir is None:
        return lq_only_record(lq), Path(lq)
    if (gt is None) != (lq is None) or (gt is not None and split_dir is not None):
        raise ConfigError("give either a split-test DATASET or both --gt and --lq")
    if gt is not None:
        from vsrdata.evaluation.basicsr_testset import testset_record

        return testset_record(gt, lq, meta_info), Path(gt)
    if split_dir is None:
        raise ConfigError("give a split-test DATASET or --gt and --lq")
    return splits.load_split(split_dir), Path(split_dir)


def _runner(record, checkpoint, bicubic, model, preset, padding, device, precision, dcn_backend,
            engine=None, param_key=None, tta="none", stage2=None) -> Runner:
    """The Runner of a checkpoint, a built model, or the bicubic baseline (exactly one)."""
    sources = sum(x is not None and x is not False for x in (checkpoint, model)) + bool(bicubic)
    if sources != 1:
        raise ConfigError("give exactly one of a checkpoint, a model or --bicubic")
    if bicubic and (tta not in (None, "none") or stage2 is not None):
        raise ConfigError(f"{'--tta' if stage2 is None else '--stage2'} applies to models, not to --bicubic")
    if bicubic:
        dev = resolve_device(device)
        ac = autocast_for(dev, precision)
        from vsrdata.edvr.config import get_preset

        cfg = get_preset(preset or "edvr-m")
        resolve_padding(padding, cfg.with_predeblur)
        # No temporal window for bicubic; num_frame only decides which frames count as border,
        # so its Center/Border columns line up with the model's.
        return Runner(None, cfg.num_frame, int(record.get("scale") or cfg.scale), 1, "n/a", dev, ac, "bicubic",
                      preset or "-")
    model = load_engine(checkpoint, model, engine=engine, preset=preset, device=device, precision=precision,
                        dcn_backend=dcn_backend, param_key=param_key, tta=tta)
    second = _stage2(model, checkpoint, stage2, device, precision, dcn_backend) if stage2 is not None else None
    num_frame, scale, multiple, predeblur = model_meta(model)
    if record.get("scale") is not None and scale != int(record["scale"]):
        raise ConfigError(f"the model upscales x{scale} but the split was made for x{record.get('scale')} "
                          f"(wrong --preset?)")
    if not isinstance(preset, str):  # None, or an EDVRConfig: report the preset it is (or "custom")
        try:
            from vsrdata.edvr.checkpoint import preset_name

            preset = preset_name(model.config) or "custom"
        except Exception:  # a stand-in model without a real EDVRConfig
            preset = "custom"
    name = Path(checkpoint).name if checkpoint else model.name
    # the engine applies its own precision: no autocast around it
    return Runner(model, num_frame, scale, multiple, resolve_padding(padding, predeblur), model.device, None,
                  name, preset, second)


def _stage2(first, checkpoint, stage2, device, precision, dcn_backend):
    """The Stage of a --stage2 checkpoint, checked against stage 1 (`two_stage.check_stages`)."""
    from vsrdata.evaluation.two_stage import check_stages, stage_of

    second = load_engine(stage2, engine=None, device=device, precision=precision, dcn_backend=dcn_backend)
    check_stages(first, second, Path(checkpoint).name if checkpoint else first.name, Path(stage2).name)
    return stage_of(second, None, Path(stage2).name)


def _score_all(runner: Runner, jobs: list[ClipJob], opts: ScoreOptions, cuts: _Cuts, env: distributed.DistEnv,
               bar: Reporter) -> list[tuple]:
    """[(ClipScores, strip path or None, cuts used or None)] per job, in job order; with several
    processes each scores its share of the clips and all get every result."""
    mine = range(env.rank, len(jobs), env.world)
    bar.to(0, sum(len(jobs[i].centers) for i in mine))
    tick = (lambda n, _total: bar.add(n)) if bar else None

    def one(job: ClipJob) -> tuple:
        job.cuts = _cuts_for(job, cuts, runner.model is None)
        clip, strip = score_clip(runner, job, opts, tick)
        return clip, strip, (list(job.cuts) if cuts.mode != "off" and runner.model is not None else None)

    return distributed.map_sharded(one, jobs, env)


def _protocol_record(record, split_dir, gt, meta_info, weights, r: Runner, proto_name, proto: Protocol,
                     average, precision, scene_cuts, processes: int, suite: MetricSuite) -> dict:
    """The report's `protocol` block: what was scored, how, with what (`weights`: (checkpoint, param_key))."""
    (checkpoint, param_key), weights_key = weights, None
    if checkpoint is not None and r.model is not None and Path(checkpoint).suffix != ".onnx":
        from vsrdata.edvr.checkpoint import read_checkpoint

        weights_key = read_checkpoint(checkpoint, param_key=param_key, basicsr=param_key is not None).param_key
    config = getattr(r.model, "config", None)
    return {
        "split": str(split_dir) if gt is None else None,
        "gt": str(gt) if gt is not None else None, "lq": str(record["lr_dir"]) if gt is not None else None,
        "meta_info": str(meta_info) if meta_info else None, "weights_key": weights_key, "protocol": proto_name,
        "model": r.model_name, "preset": r.preset, "checkpoint": str(checkpoint) if checkpoint else None,
        "channel": proto.channel, "crop_border": proto.crop_border, "frames": proto.frames,
        "padding": r.padding, "num_frame": r.num_frame, "scale": r.scale, "average": average,
        "device": str(r.device), "precision": precision, "processes": processes,
        "engine": None if r.model is None else type(getattr(r.model, "inner", r.model)).__name__,
        "tta": getattr(r.model, "mode", "none") if r.model is not None else None, "degradation": record.get("degradation"),
        "selection": record.get("selection"),
        "scene_cuts": "file" if scene_cuts not in ("off", "auto") else scene_cuts,
        "model_config": config.to_dict() if hasattr(config, "to_dict") else None,
        "reference": "gt" if suite.reference else "none", "metrics": suite.describe(),
        "stage2": None if r.stage2 is None else r.stage2.name,
        "stage2_padding": None if r.stage2 is None else r.stage2.padding,
    }


# -- scene cuts -------------------------------------------------------------------------------------

def _cut_file(mode: str, jobs: list[ClipJob], bicubic: bool) -> dict | None:
    """{clip: cuts} of a --scene-cuts JSON file (checked against the clips), None for off/auto."""
    if mode in ("off", "auto") or bicubic:  # bicubic has no temporal window
        return None
    from vsrdata.core import scenes

    try:
        given = json.loads(Path(mode).read_text(encoding="utf-8"))
        if not isinstance(given, dict):
            raise ValueError("expected an object {clip: [cut, ...]}")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--scene-cuts must be off, auto or a JSON file {{clip: [cuts]}}: {mode} ({exc})") from None
    known = {job.name: len(job.lq_paths) for job in jobs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"{mode}: clip {unknown[0]!r} is not in the dataset")
    return {k: scenes.check_cuts(v, known[k], source=f"{mode} [{k}]") for k, v in given.items()}


def _cuts_for(job: ClipJob, cuts: _Cuts, bicubic: bool) -> list[int]:
    """The cuts of one clip: none (off, bicubic), detected on its LR frames (auto), or the file's."""
    if cuts.mode == "off" or bicubic:
        return []
    if cuts.mode == "auto":
        from vsrdata.core import scenes

        return scenes.detect_cuts((read_image(p) for p in job.lq_paths), cuts.threshold, cuts.min_len)
    return list(cuts.given.get(job.name, ()))


def _write_clip_cuts(out: Path, cuts: _Cuts, detected: dict) -> None:
    """out/scenes.json: the cuts used per clip (a file's as given, else those detected)."""
    mode = cuts.mode
    record = {"mode": mode if mode in ("auto", "off") else "file",
              "clips": cuts.given if cuts.given is not None else detected}
    if mode == "auto":
        record["detector"] = {"name": "scenedetect.ContentDetector", "threshold": cuts.threshold,
                              "min_scene_len": cuts.min_len}
    elif mode != "off":
        record["source"] = mode
    write_bytes_atomic(out / "scenes.json", (json.dumps(record, indent=1) + "\n").encode())
