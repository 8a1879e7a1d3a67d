"""`TrainConfig`: every number of the EDVR training recipe in one dataclass.

Defaults reproduce the official BasicSR REDS recipe for EDVR-M (docs/CONVENTIONS.md#training, BasicSR
`options/train/EDVR/train_EDVR_M_x4_SR_REDS.yml`, run 102): REDS, gt_size 256, 5 frames,
interval_list [1], hflip + rot, no random reverse; Adam lr 4e-4, betas (0.9, 0.99), wd 0;
Charbonnier loss with reduction 'sum' and eps 1e-12 (so loss values of 1e4-1e7 are normal);
cosine annealing with restarts, eta_min 1e-7, 600k iterations; no EMA; validation and
checkpoints every 5000 iterations. `batch_size` is **per process (GPU)**: the official total is
4 x 8 GPUs = 32.

Three values depend on the model and are resolved by `resolved()` when left at None:
- `periods` / `restart_weights`: 150k x4 (weights 1) for a model without TSA (run 101), else
  50k, 100k, 150k, 150k, 150k (weights 1) (run 102). For the L models BasicSR uses weights
  1, 0.5, 0.5, ... (runs 103/104): set them explicitly.
- `tsa_iter`: 50000 when the model has TSA **and** is initialised from a checkpoint (`init`, the
  woTSA -> TSA stage of the recipe), else 0 (no TSA-only phase when training from scratch: the
  frozen layers would keep their random init).

Loading: `load_config(path)` reads TOML (tomllib; tomli on Python 3.10) or YAML (PyYAML) with
the field names below as keys, either at top level or under a `[train]` table. A BasicSR
training YAML (`options/train/EDVR/*.yml`: `network_g`, `datasets`, `train`, ...) is recognised
and mapped by `vsrdata.training.basicsr_options` (every key honoured, irrelevant or reported).
No torch import here: the CLI imports this module lazily but it stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from vsrdata.core.splits import REDS4, REDS_VAL
from vsrdata.evaluation.windows import TEMPORAL_PADDINGS
from vsrdata.errors import ConfigError
from vsrdata.training.config_types import check_basicsr_numbers, check_types

DATASETS = ("reds", "vimeo", "clips")
AMP_MODES = ("none", "bf16", "fp16")
INIT_KEYS = ("params", "params_ema")  # checkpoint entries `init` can read (BasicSR param_key_g)
LOSS_REDUCTIONS = ("sum", "mean")
LOSS_TYPES = ("charbonnier", "l1", "mse")
SCHEDULERS = ("cosine_restart", "multistep")

#: REDS validation partitions, removed from the training keys (docs/CONVENTIONS.md#partitions).
REDS_VAL_CLIPS = {"REDS4": REDS4, "official": REDS_VAL, "none": ()}
VAL_PARTITIONS = tuple(REDS_VAL_CLIPS)


def _bad(name: str, msg: str) -> None:
    raise ConfigError(f"invalid --{name.replace('_', '-')}: {msg}")


@dataclass
class TrainConfig:
    """All options of `vsrdata train` (see the module docstring for the recipe they encode)."""

    # --- run ------------------------------------------------------------------------------
    run_dir: str = "experiments/edvr"
    preset: str = "edvr-m"
    model: dict = field(default_factory=dict)  # EDVRConfig overrides, e.g. {"num_reconstruct_block": 40}
    num_frame: int | None = None  # None: the preset's num_frame
    device: str = "auto"  # auto | cpu | cuda | cuda:N (one process; under torchrun cuda:LOCAL_RANK)
    seed: int = 10
    # --- data -----------------------------------------------------------------------------
    dataset: str = "reds"  # reds | vimeo | clips
    gt_path: str = ""  # LMDB (a folder holding data.mdb) or a folder of clips
    lq_path: str = ""
    train_list: str | None = None  # clips to train on: vimeo sep_trainlist.txt, BasicSR meta info (default: all)
    val_partition: str = "REDS4"  # reds: clips left out of training
    gt_size: int = 256
    interval_list: list = field(default_factory=lambda: [1])
    random_reverse: bool = False
    use_hflip: bool = True
    use_rot: bool = True
    batch_size: int = 4  # per process
    accum_steps: int = 1  # gradient accumulation: global batch = batch_size x processes x accum_steps
    num_workers: int = 3  # per process
    # on-the-fly LQ (training.onthefly): a recipe name / YAML file / mapping degrades the GT window
    degradation: str | dict | None = None  # instead of lq_path: a recipe name, YAML file or mapping
    degradation_seed: int | None = None  # None: `seed`; sample j of iteration k draws from (seed, "k/j")
    val_degradation_seed: int = 0  # the fixed seed of the validation LQ made from GT-only validation
    # --- model initialisation -------------------------------------------------------------
    init: str | None = None  # non-strict load (woTSA -> TSA)
    init_key: str | None = None  # wrapper entry of --init: params | params_ema (None: params, as BasicSR)
    init_strict: bool = False  # BasicSR path.strict_load_g: every tensor of the model must be in --init
    init_deep_from_shallow: str | None = None  # tile reconstruction blocks of a shallower model
    dcn_backend: str | None = None
    # --- optimisation ---------------------------------------------------------------------
    lr: float = 4e-4
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    dcn_lr_mul: float = 1.0
    total_iter: int = 600_000
    scheduler: str = "cosine_restart"  # cosine_restart (CosineAnnealingRestartLR) | multistep (MultiStepLR)
    periods: list | None = None
    restart_weights: list | None = None
    eta_min: float = 1e-7
    milestones: list | None = None  # multistep: scheduler steps at which lr *= gamma
    gamma: float = 0.1
    restarts: list | None = None  # multistep: restart steps (default [0]); weights in restart_weights
    warmup_iter: int = 0  # linear warm-up iterations (BasicSR warmup_iter; 0 / -1 = none)
    tsa_iter: int | None = None
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    ema_decay: float = 0.0  # 0 = no EMA (BasicSR default; the EDVR recipes use none); opt in: 0.999
    loss_type: str = "charbonnier"  # charbonnier | l1 | mse
    loss_reduction: str = "sum"
    loss_eps: float = 1e-12
    loss_weight: float = 1.0
    # --- precision ------------------------------------------------------------------------
    amp: str = "none"  # none | bf16 | fp16 (CUDA only; CPU always runs fp32)
    channels_last: bool = False  # CUDA only
    # --- validation, logging, checkpoints -------------------------------------------------
    val_path: str | None = None  # a split-test output (OUT with GT/ and BIx4/)
    val_gt: str | None = None  # or a BasicSR-style test set: GT root, LQ root, optional meta info
    val_lq: str | None = None
    val_meta_info: str | None = None
    val_freq: int = 5000
    val_pad: str = "reflection_circle"
    val_max_frames: int = 0  # per clip; 0 = all
    val_metrics: str = "psnr,ssim"  # evaluate's --metrics names; PSNR stays the best criterion
    save_freq: int = 5000
    keep_checkpoints: int = 3  # newest iteration checkpoints kept (best.pth is kept besides)
    print_freq: int = 100
    tensorboard: bool | None = None  # RUN/tb/ scalars: None = when installed, True = required
    resume: str | None = None  # None | "auto" | PATH
    # --- divergence guard -----------------------------------------------------------------
    offset_threshold: float = 100.0  # mean |offset| of any DCN; 0 = no offset check
    max_rollbacks: int = 5
    rollback_dcn_lr_factor: float = 0.5
    # ------------------------------------------------------------------------------------
    def resolved(self, *, with_tsa: bool | None = None) -> "TrainConfig":
        """A copy with the model-dependent defaults filled in (see module docstring)."""
        cfg = dataclasses.replace(self, model=dict(self.model), interval_list=list(self.interval_list),
                                  betas=list(self.betas))
        if with_tsa is None:
            with_tsa = bool(cfg.model.get("with_tsa", not cfg.preset.endswith("wotsa")))
        if cfg.scheduler == "multistep":
            cfg.milestones = [int(m) for m in cfg.milestones or []]
            cfg.restarts = [int(r) for r in cfg.restarts] if cfg.restarts is not None else [0]
            cfg.restart_weights = ([float(w) for w in cfg.restart_weights] if cfg.restart_weights is not None
                                   else [1.0] * len(cfg.restarts))
            cfg.periods = cfg.periods or [cfg.total_iter]  # unused; keeps the record complete
        elif cfg.periods is None:
            cfg.periods = [50_000, 100_000, 150_000, 150_000, 150_000] if with_tsa else [150_000] * 4
            if cfg.total_iter != 600_000:  # scale the recipe's cycles to the requested length
                cfg.periods = _scale_periods(cfg.periods, cfg.total_iter)
        else:
            cfg.periods = [int(p) for p in cfg.periods]
        if cfg.scheduler == "multistep":
            pass
        elif cfg.restart_weights is None:
            cfg.restart_weights = [1.0] * len(cfg.periods)
        else:
            cfg.restart_weights = [float(w) for w in cfg.restart_weights]
        if cfg.tsa_iter is None:
            cfg.tsa_iter = 50_000 if (with_tsa and cfg.init) else 0
        return cfg

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid option (only checks that need no data)."""
        self._check_choices()
        self._check_numbers()
        self._check_schedule_and_init()

    def _check_choices(self) -> None:
        """Options chosen from a list, and the required inputs."""
        for name, choices in (("dataset", DATASETS), ("val_partition", VAL_PARTITIONS), ("amp", AMP_MODES),
                              ("val_pad", TEMPORAL_PADDINGS), ("scheduler", SCHEDULERS),
                              ("loss_type", LOSS_TYPES), ("init_key", INIT_KEYS)):
            value = getattr(self, name)
            if value not in choices and not (name == "init_key" and value is None):
                _bad(name, f"{value!r} (choose from {', '.join(choices)})")
        from vsrdata.evaluation.metric_suite import parse_metrics

        parse_metrics(self.val_metrics)
        if self.val_lq and not self.val_gt or (self.val_gt and not self.val_lq and self.degradation is None):
            _bad("val_gt", "give both the validation GT and LQ roots (GT alone only with --degradation)")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            _bad("loss_reduction", f"{self.loss_reduction!r} (choose from sum, mean)")
        if self.device not in ("auto", "cpu", "cuda") and not (str(self.device).startswith("cuda:")
                                                               and str(self.device)[5:].isdigit()):
            _bad("device", f"{self.device!r} (choose from auto, cpu, cuda, cuda:N)")
        if not self.gt_path:
            _bad("gt", "no training GT given")
        if not self.lq_path and self.degradation is None:
            _bad("lq", "no training LQ given (or make it on the fly with --degradation RECIPE)")
        if self.lq_path and self.degradation is not None:
            _bad("degradation", "the LQ is made from --gt on the fly: give --lq or --degradation, not both")

    def _check_numbers(self) -> None:
        """Counts, rates and sizes in range."""
        for name in ("gt_size", "batch_size", "accum_steps", "total_iter", "save_freq", "print_freq", "val_freq"):
            if int(getattr(self, name)) < 1:
                _bad(name, f"must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            _bad("num_workers", "must be >= 0")
        if self.lr <= 0:
            _bad("lr", f"must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            _bad("betas", f"need two values in [0, 1), got {self.betas}")
        if not self.interval_list or any(int(i) < 1 for i in self.interval_list):
            _bad("interval_list", f"need positive integers, got {self.interval_list}")
        if not 0 <= self.ema_decay < 1:
            _bad("ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if self.loss_eps < 0:
            _bad("loss_eps", "must be >= 0")
        if self.num_frame is not None and (self.num_frame < 1 or self.num_frame % 2 == 0):
            _bad("num_frame", f"must be odd and >= 1, got {self.num_frame}")
        if self.dataset == "vimeo" and self.num_frame is not None and self.num_frame > 7:
            _bad("num_frame", "Vimeo90K septuplets hold 7 frames")

    def _check_schedule_and_init(self) -> None:
        """The learning-rate schedule, rollback, initialisation, resume and model options."""
        if self.scheduler == "multistep":
            if self.restarts is not None and len(self.restart_weights or [1.0] * len(self.restarts)) != len(self.restarts):
                _bad("restart_weights", "one weight per restart")
        elif self.periods is not None:
            if not self.periods or any(int(p) < 1 for p in self.periods):
                _bad("periods", f"need positive integers, got {self.periods}")
            if self.restart_weights is not None and len(self.restart_weights) != len(self.periods):
                _bad("restart_weights", f"{len(self.restart_weights)} weights for {len(self.periods)} periods")
            if sum(int(p) for p in self.periods) < self.total_iter:
                _bad("periods", f"sum {sum(int(p) for p in self.periods)} is shorter than total_iter "
                               f"{self.total_iter}")
        if not 0 < self.rollback_dcn_lr_factor <= 1:
            _bad("rollback_dcn_lr_factor", "must be in (0, 1]")
        if self.max_rollbacks < 0:
            _bad("max_rollbacks", "must be >= 0")
        if self.init and self.init_deep_from_shallow:
            _bad("init", "use either --init or --init-deep-from-shallow, not both")
        if self.resume not in (None, "auto") and not Path(self.resume).is_file():
            _bad("resume", f"no such checkpoint file: {self.resume}")
        unknown = set(self.model) - _EDVR_FIELDS
        if unknown:
            _bad("model", f"unknown EDVR option(s): {', '.join(sorted(unknown))}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_EDVR_FIELDS = {"num_in_ch", "num_out_ch", "num_feat", "num_frame", "deformable_groups",
                "num_extract_block", "num_reconstruct_block", "center_frame_idx", "hr_in",
                "with_predeblur", "with_tsa", "scale"}


# Command-line flags whose field has another name: config files may use either.
FLAG_NAMES = {"gt": "gt_path", "lq": "lq_path", "val": "val_path", "hflip": "use_hflip", "rot": "use_rot",
              "workers": "num_workers", "list": "train_list", "padding": "val_pad", "precision": "amp"}
_RETIRED = {"inject_nan_at"}
MIN_RESTART_PERIOD = 50  # shorter scaled cosine cycles make no sense: such runs get one cycle


def _scale_periods(periods: list[int], total: int) -> list[int]:
    """Scale recipe periods so that they sum to `total` (sum exactly `total`); when a cycle would
    be shorter than MIN_RESTART_PERIOD iterations, one cosine cycle over the whole run."""
    full = sum(periods)
    scaled = [max(1, round(p * total / full)) for p in periods]
    scaled[-1] += total - sum(scaled)
    if min(scaled) < MIN_RESTART_PERIOD:  # short runs: one period, no restarts
        return [total]
    return scaled


def config_fields() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def from_dict(data: dict[str, Any], base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """Build a TrainConfig from a flat mapping (keys = field names; '-' accepted for '_').

    A `train` table, if present, is used as the mapping. A command-line flag's name is accepted
    for its field (`gt` for gt_path, `val` for val_path, ...: FLAG_NAMES). Unknown keys raise
    ConfigError naming them and the closest field ("did you mean"); a value of the wrong type
    names the key and the type wanted (`config_types.check_types`).
    """
    import difflib

    if "train" in data and isinstance(data["train"], dict):
        data = data["train"]
    names = set(config_fields())
    clean = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        if k == "precision":  # the flag's values: fp32 is amp none
            value = "none" if value == "fp32" else value
        k = FLAG_NAMES.get(k, k)
        if k in _RETIRED:  # written into config.json by older versions
            continue
        if k not in names:
            close = difflib.get_close_matches(k, sorted(names | set(FLAG_NAMES)), n=1)
            hint = f" (did you mean {FLAG_NAMES.get(close[0], close[0])!r}?)" if close else ""
            raise ConfigError(f"unknown option {key!r} in {source}{hint}")
        clean[k] = value
    return dataclasses.replace(base or TrainConfig(), **check_types(TrainConfig, clean, source))


def from_basicsr(opt: dict[str, Any], source: str = "option file") -> dict[str, Any]:
    """TrainConfig fields of a BasicSR training option file (see `vsrdata.training.basicsr_options`)."""
    from vsrdata.training.basicsr_options import read_options

    return read_options(opt, source).fields


def _toml_module():
    """tomllib (Python >= 3.11) or its backport tomli (a dependency on 3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading TOML on Python 3.10 needs tomli (pip install tomli)") from None
    return tomllib


def read_config_file(path: str | os.PathLike) -> dict:
    """The mapping held by a TOML / YAML / JSON config file (ConfigError naming the file)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = _toml_module().loads(raw.decode("utf-8"))
        elif suffix in (".yml", ".yaml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"cannot read {path}: YAML configs need PyYAML (pip install pyyaml); "
                                  "or write the config as TOML") from None
            data = yaml.safe_load(raw) or {}
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            raise ConfigError(f"unknown config file type {path.suffix!r} (use .toml, .yaml or .json): {path}")
    except ConfigError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError, JSONDecodeError, UnicodeError
        raise ConfigError(f"cannot parse config file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} does not hold a mapping of options")
    return data


def load_config(path: str | os.PathLike, base: TrainConfig | None = None,
                on_note: Callable[[str], None] | None = None) -> TrainConfig:
    """Read a TOML (`.toml`), YAML (`.yml`/`.yaml`) or JSON (`.json`, e.g. a run's config.json)
    file into a TrainConfig. A BasicSR training option file is mapped by
    `vsrdata.training.basicsr_options`; its notes and the one "ignored: ..." block go to `on_note`.
    A BasicSR *test* option file is refused (it is for `vsrdata evaluate --config`).
    """
    data = read_config_file(path)
    from vsrdata.training.basicsr_options import is_basicsr, read_options

    if is_basicsr(data):
        check_basicsr_numbers(data, str(path))
        opts = read_options(data, str(path))
        if opts.kind == "test":
            raise ConfigError(f"{path} is a BasicSR test option file (datasets.test_*), not a training one: "
                              f"score it with `vsrdata evaluate --config {path}`")
        for line in ([opts.warning()] if opts.warning() else []) + opts.notes:
            if on_note is not None:
                on_note(line)
        data = opts.fields
    return from_dict(data, base, source=str(path))
