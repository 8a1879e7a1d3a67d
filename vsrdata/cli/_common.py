"""Options and helpers shared by several commands (defined once, as sqlite-utils does)."""

from __future__ import annotations

import os

import click

# Every list of choices the commands offer, imported from the module that owns it (none of these
# imports torch, cv2 or lmdb, so `--help` stays fast; tests/test_choices.py checks the CLI uses them).
from vsrdata.core.degrade import DEGRADATIONS
from vsrdata.core.layouts import LAYOUTS, VIMEO_MODES
from vsrdata.core.lmdb.keys import KEY_STYLES
from vsrdata.core.scenes import DEFAULT_MIN_SCENE_LEN, DEFAULT_THRESHOLD
from vsrdata.core.splits import PARTITIONS, SPATIAL_PADDINGS
from vsrdata.core.video import CODECS, PIX_FMTS
from vsrdata.evaluation.ensemble import TTA_MODES
from vsrdata.evaluation.windows import TEMPORAL_PADDINGS
from vsrdata.training.config import (AMP_MODES, DATASETS, INIT_KEYS, LOSS_REDUCTIONS, LOSS_TYPES, SCHEDULERS,
                                     VAL_PARTITIONS)
from vsrdata.edvr.config import PRESETS
from vsrdata.errors import ConfigError

PARTITION_NAMES = tuple(PARTITIONS)
PRESET_NAMES = (*PRESETS, "custom")
PRECISIONS = ("fp32", "bf16", "fp16")  # evaluate/infer: autocast; train: --amp none/bf16/fp16
__all__ = ["AMP_MODES", "DATASETS", "DEGRADATIONS", "KEY_STYLES", "LAYOUTS", "LOSS_REDUCTIONS", "LOSS_TYPES",
           "PARTITION_NAMES", "SCHEDULERS", "SPATIAL_PADDINGS", "TEMPORAL_PADDINGS", "TTA_MODES", "VAL_PARTITIONS", "VIMEO_MODES",
           "PRECISIONS", "PRESET_NAMES", "DeviceType", "device_option", "preset_option",
           "overwrite_option", "parse_shard", "scene_options", "shard_option", "stage2_option", "tta_option",
           "workers_option"]


workers_option = click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=None,
    help="Parallel worker processes (default: all cores).",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace existing outputs instead of skipping/refusing them.",
)


class DeviceType(click.ParamType):
    """--device of every command: auto (None: CUDA when available), cpu, cuda or cuda:N."""

    name = "device"

    def convert(self, value, param, ctx):
        if value is None:
            return None
        v = str(value).strip().lower()
        if v == "auto":
            return None
        if v in ("cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        self.fail(f"expected auto, cpu, cuda or cuda:N, got {value!r}", param, ctx)


def device_option(help_text: str = "Device: auto (CUDA when available), cpu, cuda or cuda:N."):
    return click.option("--device", type=DeviceType(), default="auto", show_default=True,
                        metavar="auto|cpu|cuda[:N]", help=help_text)


def preset_option(help_text: str):
    """--preset NAME, one of the EDVR presets (listed in --help by click.Choice)."""
    return click.option("--preset", type=click.Choice(PRESET_NAMES), default=None, help=help_text)


def deprecated_alias(name: str, dest: str, **kw):
    """A hidden old spelling of an option (kept for users' scripts); `dest` must be merged by the command."""
    return click.option(name, dest, hidden=True, default=None, **kw)


def parse_shard(value: str | None, environ: dict | None = None) -> tuple[int, int] | None:
    """`I/N` (0 <= I < N) as a tuple; `auto` from the Slurm job array; None stays None.

    auto: I = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP and
    N = SLURM_ARRAY_TASK_COUNT, so `sbatch --array=0-7` (or 1-8, or 0-14:2) runs shards 0/8..7/8.
    A malformed value is a usage error (click.BadParameter, exit 2); `auto` outside an array, or
    in an array whose indices are not evenly spaced (e.g. `--array=1,4,5`), is a one-line
    ConfigError (exit 1).
    """
    if value is None:
        return None
    if value.strip().lower() == "auto":
        return _slurm_shard(os.environ if environ is None else environ)
    try:
        i_str, n_str = value.split("/")
        i, n = int(i_str), int(n_str)
    except ValueError:
        raise click.BadParameter(f"expected I/N such as 0/4, or auto, got {value!r}") from None
    if n < 1 or not 0 <= i < n:
        raise click.BadParameter(f"need 0 <= I < N, got {value!r}")
    return i, n


def _slurm_shard(env) -> tuple[int, int]:
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise ConfigError(f"--shard auto needs a Slurm job array (sbatch --array=0-N), but "
                          f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                          f"outside an array pass --shard I/N")
    try:
        task, count, low = (int(env[n]) for n in names)
        step = int(env.get("SLURM_ARRAY_TASK_STEP") or 1)
    except ValueError:
        raise ConfigError(f"--shard auto: non-integer Slurm array variables "
                          f"{', '.join(f'{n}={env[n]}' for n in names)}") from None
    index, rest = divmod(task - low, max(step, 1))
    if rest or not 0 <= index < count:
        raise ConfigError(f"--shard auto: array task {task} is not one of {count} evenly spaced tasks "
                          f"from {low} (step {step}); use --array=0-{count - 1} or pass --shard I/N")
    return index, count


tta_option = click.option(
    "--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
    help="Test-time ensemble: flip4 = mean over the window as is and flipped in W, H, both (the original "
    "EDVR's flip test, ~4x the time); x8 adds the four transposed.",
)

stage2_option = click.option(
    "--stage2", type=click.Path(dir_okay=False), default=None, metavar="CKPT",
    help="Two-stage EDVR: a stage-2 checkpoint (hr_in, e.g. EDVR_REDS_SR_Stage2.pth) that refines the "
    "restored frames in its own windows (--padding/--tta apply to stage 1).",
)


def scene_options(default: str, cuts_help: str):
    """`--scene-cuts` (default `default`; `cuts_help` says what FILE is for the command),
    `--scene-threshold` and `--scene-min-len` (PySceneDetect's content detector, vsrdata.core.scenes),
    shared by infer, evaluate and extract."""
    def decorate(func):
        func = click.option("--scene-min-len", type=click.IntRange(min=1), default=DEFAULT_MIN_SCENE_LEN,
                            show_default=True,
                            help="Shortest shot in frames for --scene-cuts auto (closer cuts are merged).")(func)
        func = click.option("--scene-threshold", type=click.FloatRange(min=0, min_open=True),
                            default=DEFAULT_THRESHOLD, show_default=True,
                            help="Content-detector threshold for --scene-cuts auto (lower finds more cuts).")(func)
        return click.option("--scene-cuts", default=default, show_default=True,
                            metavar="auto|off|FILE" if default == "auto" else "off|auto|FILE",
                            help=cuts_help)(func)
    return decorate


def shard_option(help_text: str):
    """The shared `--shard I/N|auto` option (parsed by `parse_shard`)."""
    return click.option("--shard", metavar="I/N|auto", callback=lambda ctx, param, value: parse_shard(value),
                        help=help_text)

