"""Read a BasicSR option file (train or test YAML) and account for every key in it.

Each key of the file is one of (see docs/CONVENTIONS.md, "BasicSR option files"):
- honoured: mapped onto a TrainConfig field (or, for test files, onto the evaluation), listed in
  `_HONOURED`;
- irrelevant: deliberately not needed by vsrdata, listed in `_IRRELEVANT` with the reason;
- reported: anything else is named in `BasicSROptions.ignored`, which the CLI prints as one
  warning block before anything runs.
Keys whose meaning changes the result and that vsrdata cannot honour (another scheduler, loss,
optimiser, network or dataset type, a perceptual loss) raise ConfigError naming the file and key,
as do the keys BasicSR itself fails on (`network_g.ema_decay`, a `datasets.*.num_frame` other
than the network's, `val.save_img` during training). The irrelevant keys present are named once
in `BasicSROptions.notes` (docs/CONVENTIONS.md#basicsr-option-files).

Older BasicSR key names (`pretrain_model_g`, `strict_load`, `use_flip`) are read as aliases.
One key is ours, not BasicSR's: `datasets.train.degradation` (a recipe name, YAML file or mapping of
recipe keys; optional `degradation_seed`) makes the LQ on the fly from the GT (no `dataroot_lq`; then
`datasets.val` may leave out `dataroot_lq` too), docs/CONVENTIONS.md#on-the-fly-degradation.
No torch import; PyYAML is needed only to read the YAML text (load_config does that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vsrdata.errors import ConfigError
from vsrdata.training.basicsr_train import as_int as _int, train_section as _train

EDVR_FIELDS = ("num_in_ch", "num_out_ch", "num_feat", "num_frame", "deformable_groups", "num_extract_block",
               "num_reconstruct_block", "center_frame_idx", "hr_in", "with_predeblur", "with_tsa")

#: dotted keys mapped onto vsrdata options ('*' = any name at that level)
_HONOURED = {
    "name", "manual_seed", "num_gpu", "scale", "model_type", "network_g.type",
    *(f"network_g.{k}" for k in EDVR_FIELDS),
    *(f"datasets.train.{k}" for k in (
        "type", "dataroot_gt", "dataroot_lq", "meta_info_file", "val_partition", "num_frame", "gt_size",
        "interval_list", "random_reverse", "use_hflip", "use_flip", "use_rot", "batch_size_per_gpu",
        "num_worker_per_gpu", "degradation", "degradation_seed")),
    *(f"{s}.{k}" for s in ("datasets.val", "datasets.test_*") for k in (
        "type", "dataroot_gt", "dataroot_lq", "meta_info_file", "padding", "num_frame")),
    "datasets.test_*.name",  # the folder of its restored frames (val.save_img)
    "path.pretrain_network_g", "path.pretrain_model_g", "path.strict_load_g", "path.strict_load",
    "path.param_key_g", "path.resume_state",
    "train.ema_decay", "train.total_iter", "train.warmup_iter", "train.tsa_iter", "train.dcn_lr_mul",
    *(f"train.optim_g.{k}" for k in ("type", "lr", "betas", "weight_decay")),
    *(f"train.scheduler.{k}" for k in ("type", "periods", "restart_weights", "eta_min", "milestones", "gamma",
                                         "restarts")),
    *(f"train.pixel_opt.{k}" for k in ("type", "loss_weight", "reduction", "eps")),
    "val.val_freq", "val.save_img", "val.suffix",  # test files: BasicSR's frame folder; train: named only
    "val.metrics.*.type", "val.metrics.*.crop_border", "val.metrics.*.test_y_channel",
    "logger.print_freq", "logger.save_checkpoint_freq", "logger.use_tb_logger", "logger.wandb",
}

#: dotted keys vsrdata does not need, with the reason
_IRRELEVANT = {
    "dist_params": "torchrun sets up the process group",
    "find_unused_parameters": "frozen parameters are left out of DDP at the TSA phase change",
    "gpu_ids": "devices come from --device / torchrun",
    "set_CUDA_VISIBLE_DEVICES": "devices come from --device / torchrun",
    "datasets.*.name": "a label",
    "datasets.*.io_backend": "the store type (LMDB or folder) is detected from the path",
    "datasets.*.cache_data": "loading speed only",
    "datasets.train.dataroot_flow": "EDVR uses no optical flow",
    "datasets.train.use_shuffle": "the sampler always shuffles",
    "datasets.train.dataset_enlarge_ratio": "irrelevant to our sampler, which draws by iteration, not epoch",
    "datasets.train.prefetch_mode": "loader speed only",
    "datasets.train.num_prefetch_queue": "loader speed only",
    "datasets.train.pin_memory": "loader speed only (pinned on CUDA)",
    "datasets.train.persistent_workers": "loader speed only",
    "val.pbar": "display only",
}

_MODEL_TYPES = ("EDVRModel", "VideoBaseModel")


@dataclass
class BasicSROptions:
    """What a BasicSR option file means to vsrdata."""

    kind: str  # 'train' | 'test'
    fields: dict[str, Any]  # TrainConfig fields (train) / model and path settings (test)
    ignored: list[str] = field(default_factory=list)  # dotted keys reported to the user
    notes: list[str] = field(default_factory=list)  # one-line remarks printed before the run
    test_sets: list[dict] = field(default_factory=list)  # test files: {name, gt, lq, meta_info, padding}
    metrics: dict = field(default_factory=dict)  # test files: {'channel': 'y'|'rgb', 'crop_border': int}
    save_img: dict | None = None  # test files with val.save_img: {'name', 'suffix'} (see _save_img)
    global_batch: int | None = None

    def warning(self) -> str | None:
        """The one warning block naming every reported key (None when there is none)."""
        if not self.ignored:
            return None
        return "BasicSR option file: ignored: " + ", ".join(self.ignored)


def _pattern(path: str) -> str:
    path = re.sub(r"^datasets\.test_?\w*", "datasets.test_*", path)
    return re.sub(r"^val\.metrics\.[^.]+", "val.metrics.*", path)


def _accounted(path: str) -> str | None:
    """'honoured', 'irrelevant' or None (to report) for a dotted key."""
    pat = _pattern(path)
    if pat in _HONOURED:
        return "honoured"
    parts = pat.split(".")
    if path in _IRRELEVANT or pat in _IRRELEVANT or (
            len(parts) >= 3 and parts[0] == "datasets" and f"datasets.*.{parts[2]}" in _IRRELEVANT):
        return "irrelevant"
    return None


def _walk(node: dict, prefix: str, ignored: list[str], irrelevant: list[str]) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        kind = _accounted(path)
        if kind is not None:
            if kind == "irrelevant":
                irrelevant.append(path)
            continue
        if isinstance(value, dict) and any(p.startswith(_pattern(path) + ".") for p in _HONOURED | set(_IRRELEVANT)):
            _walk(value, path + ".", ignored, irrelevant)
        elif isinstance(value, dict) and path.startswith("datasets.") and path.count(".") == 1:
            _walk(value, path + ".", ignored, irrelevant)
        else:
            ignored.append(path)


def is_basicsr(data: dict) -> bool:
    return isinstance(data, dict) and ("network_g" in data or "datasets" in data)


def read_options(opt: dict[str, Any], source: str = "option file") -> BasicSROptions:
    """Map a BasicSR option mapping (train or test file) onto vsrdata; see the module docstring."""
    datasets = opt.get("datasets") or {}
    tests = {k: v for k, v in datasets.items() if str(k).startswith("test")}
    kind = "test" if tests and "train" not in datasets else "train"
    ignored: list[str] = []
    irrelevant: list[str] = []
    _walk(opt, "", ignored, irrelevant)
    notes: list[str] = []
    out: dict[str, Any] = {}
    model_type = opt.get("model_type")
    if model_type is not None and model_type not in _MODEL_TYPES:
        raise ConfigError(f"{source}: model_type {model_type!r} is not supported (EDVRModel)")
    out.update(_network(opt.get("network_g") or {}, source))
    scale = opt.get("scale")
    want = 1 if out["model"].get("hr_in") else 4
    if scale is not None and int(scale) != want:
        raise ConfigError(f"{source}: scale {scale} does not fit the network (x{want})")
    out.update(_path(opt.get("path") or {}))
    wandb = (opt.get("logger") or {}).get("wandb") or {}
    if isinstance(wandb, dict) and wandb.get("project"):
        notes.append("logger.wandb: Weights & Biases is not supported; vsrdata logs to TensorBoard (RUN/tb/)")
    result = BasicSROptions(kind, out, ignored, notes)
    net_frames = int(out["model"].get("num_frame") or 5)  # BasicSR's EDVR default: 5
    for key, ds in datasets.items():
        _check_num_frame(ds or {}, f"datasets.{key}", net_frames, source)
    val = opt.get("val") or {}
    if kind == "test":
        result.test_sets = [_test_set(name, ds, source) for name, ds in tests.items()]
        result.metrics = _metrics(val, source)
        result.save_img = _save_img(opt, val)
    else:
        if val.get("save_img") and datasets.get("val"):
            raise ConfigError(f"{source}: val.save_img: true: restored frames are not written during training "
                              "(BasicSR's video models raise on it too); set it to false, or write them with "
                              "vsrdata evaluate --config TEST.yml")
        irrelevant += [f"val.{k}" for k in ("save_img", "suffix") if k in val]
        _train_fields(opt, out, result, source)
    if irrelevant:
        notes.append("BasicSR option file: no effect here: "
                     + ", ".join(irrelevant))
    return result


def _train_fields(opt: dict, out: dict, result: BasicSROptions, source: str) -> None:
    """The TrainConfig fields of a training file (into `out`) and its global-batch note."""
    datasets = opt.get("datasets") or {}
    if opt.get("name"):
        out["run_dir"] = f"experiments/{opt['name']}"
    if opt.get("manual_seed") is not None:
        out["seed"] = int(opt["manual_seed"])
    out.update(_train_dataset(datasets.get("train") or {}, source))
    if datasets.get("val"):
        out.update(_val_dataset(datasets["val"], source, gt_only="degradation" in out))
    out.update(_train(opt.get("train") or {}, source))
    out.update(_logging(opt, source))
    _metrics(opt.get("val") or {}, source, training=True)
    gpus = opt.get("num_gpu")
    if isinstance(gpus, int) and gpus > 0 and out.get("batch_size"):
        result.global_batch = int(out["batch_size"]) * gpus
        result.notes.append(f"batch_size_per_gpu {out['batch_size']} x num_gpu {gpus} = global batch "
                            f"{result.global_batch} in BasicSR; here the global batch is batch_size x processes "
                            f"(torchrun --nproc_per_node={gpus} reproduces it)")


def _check_num_frame(ds: dict, key: str, net_frames: int, source: str) -> None:
    """A dataset's window must be the network's: BasicSR's EDVR fails on any other at its first
    forward pass (the fusion convolution gets num_frame x num_feat channels it was not built for)."""
    if not isinstance(ds, dict) or ds.get("num_frame") is None:
        return
    frames = _int(ds["num_frame"], f"{key}.num_frame", source)
    if frames != net_frames:
        raise ConfigError(f"{source}: {key}.num_frame {frames} does not match network_g.num_frame {net_frames} "
                          f"(the network takes {net_frames}-frame windows; BasicSR fails on it too)")


def _save_img(opt: dict, val: dict) -> dict | None:
    """Test files: where BasicSR writes the restored frames (val.save_img), else None:
    {'name': the option file's name, 'suffix': val.suffix or None}."""
    if not val.get("save_img"):
        return None
    return {"name": str(opt.get("name") or "test"), "suffix": str(val["suffix"]) if val.get("suffix") else None}


def _network(net: dict, source: str) -> dict:
    from vsrdata.edvr.config import preset_for

    ntype = net.get("type", "EDVR")
    if ntype != "EDVR":
        raise ConfigError(f"{source}: network_g.type {ntype!r} is not supported (EDVR)")
    out: dict[str, Any] = {}
    if "ema_decay" in net:  # BasicSR passes network_g to EDVR(), which has no such argument
        raise ConfigError(f"{source}: network_g.ema_decay is not an EDVR option (BasicSR raises on it); "
                          "move it to train.ema_decay for an EMA of the weights")
    model = {k: net[k] for k in EDVR_FIELDS if k in net}
    out["model"] = model
    out["preset"] = preset_for(model)
    return out


def _path(path: dict) -> dict:
    out: dict[str, Any] = {}
    init = path.get("pretrain_network_g", path.get("pretrain_model_g"))
    if init:
        out["init"] = str(init)
    strict = path.get("strict_load_g", path.get("strict_load"))
    if strict is not None:
        out["init_strict"] = bool(strict)
    if path.get("param_key_g"):
        out["init_key"] = str(path["param_key_g"])
    if path.get("resume_state"):
        out["resume"] = str(path["resume_state"])
    return out


def _train_dataset(ds: dict, source: str) -> dict:
    out: dict[str, Any] = {}
    kind = str(ds.get("type", "REDSDataset"))
    if kind not in ("REDSDataset", "Vimeo90KDataset"):
        raise ConfigError(f"{source}: datasets.train.type {kind!r} is not supported "
                          "(REDSDataset, Vimeo90KDataset)")
    out["dataset"] = "vimeo" if kind == "Vimeo90KDataset" else "reds"
    for src, dst in (("dataroot_gt", "gt_path"), ("dataroot_lq", "lq_path"), ("gt_size", "gt_size"),
                     ("interval_list", "interval_list"), ("random_reverse", "random_reverse"),
                     ("use_rot", "use_rot"), ("batch_size_per_gpu", "batch_size"),
                     ("num_worker_per_gpu", "num_workers"), ("num_frame", "num_frame")):
        if ds.get(src) is not None:
            out[dst] = ds[src]
    flip = ds.get("use_hflip", ds.get("use_flip"))
    if flip is not None:
        out["use_hflip"] = bool(flip)
    if ds.get("val_partition") is not None:
        part = str(ds["val_partition"])
        if part not in ("REDS4", "official"):
            raise ConfigError(f"{source}: datasets.train.val_partition {part!r} (REDS4 or official)")
        out["val_partition"] = part
    if ds.get("meta_info_file"):  # the clips to train on, as REDSDataset / Vimeo90KDataset read them
        out["train_list"] = str(ds["meta_info_file"])
    if ds.get("degradation") is not None:  # ours: on-the-fly LQ (a recipe name, YAML file or mapping of keys)
        out["degradation"] = ds["degradation"] if isinstance(ds["degradation"], dict) else str(ds["degradation"])
        if ds.get("degradation_seed") is not None:
            out["degradation_seed"] = _int(ds["degradation_seed"], "datasets.train.degradation_seed", source)
    return out


def _check_test_type(ds: dict, key: str, source: str, gt_only: bool = False) -> None:
    kind = ds.get("type", "VideoTestDataset")
    if kind not in ("VideoTestDataset", "VideoTestVimeo90KDataset"):
        raise ConfigError(f"{source}: {key}.type {kind!r} is not supported (VideoTestDataset)")
    if not ds.get("dataroot_gt") or not (ds.get("dataroot_lq") or gt_only):
        raise ConfigError(f"{source}: {key} needs dataroot_gt and dataroot_lq")


def _val_dataset(ds: dict, source: str, gt_only: bool = False) -> dict:
    """datasets.val; with on-the-fly degradation dataroot_lq may be left out (made from the GT)."""
    _check_test_type(ds, "datasets.val", source, gt_only)
    out = {"val_gt": str(ds["dataroot_gt"])}
    if ds.get("dataroot_lq"):
        out["val_lq"] = str(ds["dataroot_lq"])
    if ds.get("meta_info_file"):
        out["val_meta_info"] = str(ds["meta_info_file"])
    if ds.get("padding"):
        out["val_pad"] = str(ds["padding"])
    return out


def _test_set(name: str, ds: dict, source: str) -> dict:
    _check_test_type(ds, f"datasets.{name}", source)
    if ds.get("type") == "VideoTestVimeo90KDataset" and not ds.get("meta_info_file"):
        raise ConfigError(f"{source}: datasets.{name}.meta_info_file is needed by a VideoTestVimeo90KDataset "
                          "(it lists the septuplets, e.g. meta_info_Vimeo90K_test_GT.txt)")
    return {"key": name, "name": ds.get("name", name), "type": ds.get("type", "VideoTestDataset"),
            "gt": str(ds["dataroot_gt"]), "lq": str(ds["dataroot_lq"]),
            "meta_info": ds.get("meta_info_file"), "padding": ds.get("padding"), "num_frame": ds.get("num_frame")}


def _metrics(val: dict, source: str, training: bool = False) -> dict:
    """{'channel', 'crop_border'} of the PSNR metric (SSIM is always reported alongside)."""
    metrics = val.get("metrics") or {}
    out = {"channel": "rgb", "crop_border": 0}
    for name, m in metrics.items():
        mtype = (m or {}).get("type", "")
        if mtype not in ("calculate_psnr", "calculate_ssim"):
            raise ConfigError(f"{source}: val.metrics.{name}.type {mtype!r} is not supported "
                              "(calculate_psnr, calculate_ssim)")
        channel = "y" if m.get("test_y_channel") else "rgb"
        crop = int(m.get("crop_border", 0))
        if training and (channel, crop) != ("rgb", 0):
            raise ConfigError(f"{source}: val.metrics.{name}: training validation scores RGB PSNR with "
                              "crop_border 0; score other settings with `vsrdata evaluate`")
        out = {"channel": channel, "crop_border": crop}
    return out


def _logging(opt: dict, source: str) -> dict:
    out: dict[str, Any] = {}
    val = opt.get("val") or {}
    if val.get("val_freq") is not None:
        out["val_freq"] = _int(val["val_freq"], "val.val_freq", source)
    logger = opt.get("logger") or {}
    if logger.get("print_freq") is not None:
        out["print_freq"] = _int(logger["print_freq"], "logger.print_freq", source)
    if logger.get("save_checkpoint_freq") is not None:
        out["save_freq"] = _int(logger["save_checkpoint_freq"], "logger.save_checkpoint_freq", source)
    if logger.get("use_tb_logger") is not None:
        # true: TensorBoard when it is installed (our default; a missing package is noted in
        # train.log, not an error); false: off
        out["tensorboard"] = None if logger["use_tb_logger"] else False
    return out
