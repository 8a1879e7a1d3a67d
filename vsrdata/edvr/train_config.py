"""`TrainConfig`: every number of the EDVR training recipe in one dataclass.

Defaults reproduce the official BasicSR REDS recipe for EDVR-M (docs/CONVENTIONS.md#training, BasicSR
`options/train/EDVR/train_EDVR_M_x4_SR_REDS.yml`, run 102): REDS, gt_size 256, 5 frames,
interval_list [1], hflip + rot, no random reverse; Adam lr 4e-4, betas (0.9, 0.99), wd 0;
Charbonnier loss with reduction 'sum' and eps 1e-12 (so loss values of 1e4-1e7 are normal);
cosine annealing with restarts, eta_min 1e-7, 600k iterations; EMA 0.999; validation and
checkpoints every 5000 iterations. `batch_size` is **per process (GPU)**: the official total is
4 x 8 GPUs = 32.

Three values depend on the model and are resolved by `resolved()` when left at None:
- `periods` / `restart_weights`: 150k x4 (weights 1) for a model without TSA (run 101), else
  50k, 100k, 150k, 150k, 150k (weights 1) (run 102). For the L models BasicSR uses weights
  1, 0.5, 0.5, ... (runs 103/104): set them explicitly.
- `tsa_iter`: 50000 when the model has TSA **and** is initialised from a checkpoint (`init`, the
  woTSA -> TSA stage of the recipe), else 0 (no TSA-only phase when training from scratch: the
  frozen layers would keep their random init).

Loading: `load_config(path)` reads TOML (tomllib) or YAML (only when PyYAML is installed) with
the field names below as keys, either at top level or under a `[train]` table. A BasicSR
training YAML (`options/train/EDVR/*.yml`: `network_g`, `datasets`, `train`, ...) is recognised
and mapped by `from_basicsr`.
No torch import here: the CLI imports this module lazily but it stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vsrdata.core.splits import REDS4, REDS_VAL
from vsrdata.edvr.test_clips import TEMPORAL_PADDINGS
from vsrdata.errors import ConfigError

DATASETS = ("reds", "vimeo", "clips")
AMP_MODES = ("none", "bf16", "fp16")
LOSS_REDUCTIONS = ("sum", "mean")

#: REDS validation partitions, removed from the training keys (docs/CONVENTIONS.md#partitions).
REDS_VAL_CLIPS = {"REDS4": REDS4, "official": REDS_VAL, "none": ()}
VAL_PARTITIONS = tuple(REDS_VAL_CLIPS)


@dataclass
class TrainConfig:
    """All options of `vsrdata train` (see the module docstring for the recipe they encode)."""

    # --- run ------------------------------------------------------------------------------
    run_dir: str = "experiments/edvr"
    preset: str = "edvr-m"
    model: dict = field(default_factory=dict)  # EDVRConfig overrides, e.g. {"num_reconstruct_block": 40}
    num_frame: int | None = None  # None: the preset's num_frame
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 10
    # --- data -----------------------------------------------------------------------------
    dataset: str = "reds"  # reds | vimeo | clips
    gt_path: str = ""  # LMDB (a folder holding data.mdb) or a folder of clips
    lq_path: str = ""
    train_list: str | None = None  # vimeo: sep_trainlist.txt (default: every GT key/clip)
    val_partition: str = "REDS4"  # reds: clips left out of training
    gt_size: int = 256
    interval_list: list = field(default_factory=lambda: [1])
    random_reverse: bool = False
    use_hflip: bool = True
    use_rot: bool = True
    batch_size: int = 4  # per process
    num_workers: int = 3  # per process
    # --- model initialisation -------------------------------------------------------------
    init: str | None = None  # non-strict load (woTSA -> TSA)
    init_deep_from_shallow: str | None = None  # tile reconstruction blocks of a shallower model
    dcn_backend: str | None = None
    # --- optimisation ---------------------------------------------------------------------
    lr: float = 4e-4
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    dcn_lr_mul: float = 1.0
    total_iter: int = 600_000
    periods: list | None = None
    restart_weights: list | None = None
    eta_min: float = 1e-7
    warmup_iter: int = 0  # linear warm-up iterations (BasicSR warmup_iter; 0 / -1 = none)
    tsa_iter: int | None = None
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    ema_decay: float = 0.999  # 0 = no EMA
    loss_reduction: str = "sum"
    loss_eps: float = 1e-12
    # --- precision ------------------------------------------------------------------------
    amp: str = "none"  # none | bf16 | fp16 (CUDA only; CPU always runs fp32)
    channels_last: bool = False  # CUDA only
    # --- validation, logging, checkpoints -------------------------------------------------
    val_path: str | None = None  # a split-test output (OUT with GT/ and BIx4/)
    val_freq: int = 5000
    val_pad: str = "reflection_circle"
    val_max_frames: int = 0  # per clip; 0 = all
    save_freq: int = 5000
    keep_checkpoints: int = 3  # newest iteration checkpoints kept (best.pth is kept besides)
    print_freq: int = 100
    resume: str | None = None  # None | "auto" | PATH
    # --- divergence guard -----------------------------------------------------------------
    offset_threshold: float = 100.0  # mean |offset| of any DCN; 0 = no offset check
    max_rollbacks: int = 5
    rollback_dcn_lr_factor: float = 0.5
    # --- test hook: iterations at which the loss is replaced by NaN (each fires once) -----
    inject_nan_at: list = field(default_factory=list)

    # ------------------------------------------------------------------------------------
    def resolved(self, *, with_tsa: bool | None = None) -> "TrainConfig":
        """A copy with the model-dependent defaults filled in (see module docstring)."""
        cfg = dataclasses.replace(self, model=dict(self.model), interval_list=list(self.interval_list),
                                  betas=list(self.betas), inject_nan_at=list(self.inject_nan_at))
        if with_tsa is None:
            with_tsa = bool(cfg.model.get("with_tsa", not cfg.preset.endswith("wotsa")))
        if cfg.periods is None:
            cfg.periods = [50_000, 100_000, 150_000, 150_000, 150_000] if with_tsa else [150_000] * 4
            if cfg.total_iter != 600_000:  # scale the recipe's cycles to the requested length
                cfg.periods = _scale_periods(cfg.periods, cfg.total_iter)
        else:
            cfg.periods = [int(p) for p in cfg.periods]
        if cfg.restart_weights is None:
            cfg.restart_weights = [1.0] * len(cfg.periods)
        else:
            cfg.restart_weights = [float(w) for w in cfg.restart_weights]
        if cfg.tsa_iter is None:
            cfg.tsa_iter = 50_000 if (with_tsa and cfg.init) else 0
        return cfg

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid option (only checks that need no data)."""
        def bad(name, msg):
            raise ConfigError(f"invalid --{name.replace('_', '-')}: {msg}")

        if self.dataset not in DATASETS:
            bad("dataset", f"{self.dataset!r} (choose from {', '.join(DATASETS)})")
        if self.val_partition not in VAL_PARTITIONS:
            bad("val_partition", f"{self.val_partition!r} (choose from {', '.join(VAL_PARTITIONS)})")
        if self.amp not in AMP_MODES:
            bad("amp", f"{self.amp!r} (choose from {', '.join(AMP_MODES)})")
        if self.val_pad not in TEMPORAL_PADDINGS:
            bad("val_pad", f"{self.val_pad!r} (choose from {', '.join(TEMPORAL_PADDINGS)})")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            bad("loss_reduction", f"{self.loss_reduction!r} (choose from sum, mean)")
        if self.device not in ("auto", "cpu", "cuda"):
            bad("device", f"{self.device!r} (choose from auto, cpu, cuda)")
        if not self.gt_path:
            bad("gt", "no training GT given")
        if not self.lq_path:
            bad("lq", "no training LQ given")
        for name in ("gt_size", "batch_size", "total_iter", "save_freq", "print_freq", "val_freq"):
            if int(getattr(self, name)) < 1:
                bad(name, f"must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            bad("num_workers", "must be >= 0")
        if self.lr <= 0:
            bad("lr", f"must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            bad("betas", f"need two values in [0, 1), got {self.betas}")
        if not self.interval_list or any(int(i) < 1 for i in self.interval_list):
            bad("interval_list", f"need positive integers, got {self.interval_list}")
        if not 0 <= self.ema_decay < 1:
            bad("ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if self.loss_eps < 0:
            bad("loss_eps", "must be >= 0")
        if self.num_frame is not None and (self.num_frame < 1 or self.num_frame % 2 == 0):
            bad("num_frame", f"must be odd and >= 1, got {self.num_frame}")
        if self.dataset == "vimeo" and self.num_frame is not None and self.num_frame > 7:
            bad("num_frame", "Vimeo90K septuplets hold 7 frames")
        if self.periods is not None:
            if not self.periods or any(int(p) < 1 for p in self.periods):
                bad("periods", f"need positive integers, got {self.periods}")
            if self.restart_weights is not None and len(self.restart_weights) != len(self.periods):
                bad("restart_weights", f"{len(self.restart_weights)} weights for {len(self.periods)} periods")
            if sum(int(p) for p in self.periods) < self.total_iter:
                bad("periods", f"sum {sum(int(p) for p in self.periods)} is shorter than total_iter "
                               f"{self.total_iter}")
        if not 0 < self.rollback_dcn_lr_factor <= 1:
            bad("rollback_dcn_lr_factor", "must be in (0, 1]")
        if self.max_rollbacks < 0:
            bad("max_rollbacks", "must be >= 0")
        if self.init and self.init_deep_from_shallow:
            bad("init", "use either --init or --init-deep-from-shallow, not both")
        if self.resume not in (None, "auto") and not Path(self.resume).is_file():
            bad("resume", f"no such checkpoint file: {self.resume}")
        unknown = set(self.model) - _EDVR_FIELDS
        if unknown:
            bad("model", f"unknown EDVR option(s): {', '.join(sorted(unknown))}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_EDVR_FIELDS = {"num_in_ch", "num_out_ch", "num_feat", "num_frame", "deformable_groups",
                "num_extract_block", "num_reconstruct_block", "center_frame_idx", "hr_in",
                "with_predeblur", "with_tsa"}


def _scale_periods(periods: list[int], total: int) -> list[int]:
    """Scale recipe periods so that they sum to `total` (each at least 1, sum exactly `total`)."""
    full = sum(periods)
    scaled = [max(1, round(p * total / full)) for p in periods]
    scaled[-1] += total - sum(scaled)
    if scaled[-1] < 1:  # very short runs: one period
        return [total]
    return scaled


def config_fields() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def from_dict(data: dict[str, Any], base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """Build a TrainConfig from a flat mapping (keys = field names; '-' accepted for '_').

    A `train` table, if present, is used as the mapping. Unknown keys raise ConfigError naming them.
    """
    if "train" in data and isinstance(data["train"], dict):
        data = data["train"]
    names = set(config_fields())
    clean = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        if k not in names:
            raise ConfigError(f"unknown option {key!r} in {source}")
        clean[k] = value
    return dataclasses.replace(base or TrainConfig(), **clean)


_BASICSR_PRESETS = {  # (num_feat, num_reconstruct_block, with_tsa, num_frame) -> preset
    (64, 10, False, 5): "edvr-m-wotsa", (64, 10, True, 5): "edvr-m", (128, 40, True, 5): "edvr-l",
    (128, 40, True, 7): "edvr-l-vimeo",
}


def from_basicsr(opt: dict[str, Any]) -> dict[str, Any]:
    """Map a BasicSR EDVR training YAML (`options/train/EDVR/*.yml` schema) to TrainConfig fields.

    Read: name, manual_seed, network_g (EDVR fields; `ema_decay` misplaced there in BasicSR's L
    YAMLs is treated as a train option), datasets.train (type, dataroot_gt/lq, meta_info_file,
    val_partition, num_frame, gt_size, interval_list, random_reverse, use_hflip, use_rot,
    batch_size_per_gpu, num_worker_per_gpu), path (pretrain_network_g, resume_state), train
    (ema_decay, optim_g, scheduler, total_iter, warmup_iter, tsa_iter, dcn_lr_mul, pixel_opt),
    val.val_freq, logger (print_freq, save_checkpoint_freq). Everything else is ignored.
    """
    out: dict[str, Any] = {}
    if opt.get("name"):
        out["run_dir"] = f"experiments/{opt['name']}"
    if opt.get("manual_seed") is not None:
        out["seed"] = int(opt["manual_seed"])
    net = dict(opt.get("network_g") or {})
    net.pop("type", None)
    if "ema_decay" in net:
        out["ema_decay"] = float(net.pop("ema_decay"))
    model = {k: v for k, v in net.items() if k in _EDVR_FIELDS}
    key = (model.get("num_feat", 64), model.get("num_reconstruct_block", 10), model.get("with_tsa", True),
           model.get("num_frame", 5))
    out["preset"] = _BASICSR_PRESETS.get(key, "edvr-m")
    out["model"] = model
    train_ds = (opt.get("datasets") or {}).get("train") or {}
    kind = str(train_ds.get("type", "")).lower()
    out["dataset"] = "vimeo" if "vimeo" in kind else "reds"
    for src, dst in (("dataroot_gt", "gt_path"), ("dataroot_lq", "lq_path"), ("gt_size", "gt_size"),
                     ("interval_list", "interval_list"), ("random_reverse", "random_reverse"),
                     ("use_hflip", "use_hflip"), ("use_rot", "use_rot"), ("batch_size_per_gpu", "batch_size"),
                     ("num_worker_per_gpu", "num_workers"), ("num_frame", "num_frame")):
        if train_ds.get(src) is not None:
            out[dst] = train_ds[src]
    if train_ds.get("val_partition") is not None:
        out["val_partition"] = "REDS4" if str(train_ds["val_partition"]).upper() == "REDS4" else "official"
    if out["dataset"] == "vimeo" and train_ds.get("meta_info_file"):
        out["train_list"] = train_ds["meta_info_file"]
    path = opt.get("path") or {}
    if path.get("pretrain_network_g"):
        out["init"] = path["pretrain_network_g"]
    if path.get("resume_state"):
        out["resume"] = path["resume_state"]
    tr = opt.get("train") or {}
    if tr.get("ema_decay") is not None:
        out["ema_decay"] = float(tr["ema_decay"])
    optim = tr.get("optim_g") or {}
    for src, dst in (("lr", "lr"), ("betas", "betas"), ("weight_decay", "weight_decay")):
        if optim.get(src) is not None:
            out[dst] = optim[src]
    sched = tr.get("scheduler") or {}
    for src, dst in (("periods", "periods"), ("restart_weights", "restart_weights"), ("eta_min", "eta_min")):
        if sched.get(src) is not None:
            out[dst] = sched[src]
    for src in ("total_iter", "tsa_iter", "dcn_lr_mul"):
        if tr.get(src) is not None:
            out[src] = tr[src]
    if tr.get("warmup_iter") is not None:
        out["warmup_iter"] = max(0, int(tr["warmup_iter"]))
    pix = tr.get("pixel_opt") or {}
    if pix.get("reduction"):
        out["loss_reduction"] = pix["reduction"]
    if pix.get("eps") is not None:
        out["loss_eps"] = pix["eps"]
    if (opt.get("val") or {}).get("val_freq") is not None:
        out["val_freq"] = int(float(opt["val"]["val_freq"]))
    logger = opt.get("logger") or {}
    if logger.get("print_freq") is not None:
        out["print_freq"] = int(logger["print_freq"])
    if logger.get("save_checkpoint_freq") is not None:
        out["save_freq"] = int(float(logger["save_checkpoint_freq"]))
    for k in ("total_iter", "tsa_iter", "val_freq", "save_freq", "print_freq"):
        if k in out:
            out[k] = int(float(out[k]))
    return out


def load_config(path: str | os.PathLike, base: TrainConfig | None = None) -> TrainConfig:
    """Read a TOML (`.toml`) or YAML (`.yml`/`.yaml`, needs PyYAML) file into a TrainConfig.

    JSON (`.json`, e.g. the `config.json` saved in a run directory) is read too.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
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
    if "network_g" in data or "datasets" in data:  # a BasicSR options file
        data = from_basicsr(data)
    return from_dict(data, base, source=str(path))
