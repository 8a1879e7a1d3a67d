"""Any metric of the pyiqa toolbox by name (`--metrics pyiqa:NAME`), from weight files already on disk.

docs/CONVENTIONS.md#pyiqa. pyiqa (Chen et al., "TOPIQ"/IQA-PyTorch) is an optional extra
(`pip install 'vsrdata[pyiqa]'`); `import vsrdata` never imports it. `pyiqa.list_models()` lists
the names; pyiqa's own configuration says whether a metric is full-reference (output against the
GT frame) or no-reference (the output alone, and the bicubic baseline when there is no GT) and
whether lower is better. Frames reach pyiqa as it expects them: RGB float32 in [0, 1], NCHW, one
frame at a time, full frame, pyiqa's default settings for the name.

Nothing is downloaded. While a metric is built (`offline`):

- pyiqa's `load_file_from_url` is replaced by a local lookup: the file in the `--iqa-weights`
  folder, else in pyiqa's cache (`torch.hub.get_dir()/pyiqa`, i.e. `$TORCH_HOME/hub/pyiqa`);
- torch hub's `load_state_dict_from_url` (torchvision / timm backbones) first looks in the
  `--iqa-weights` folder, then in torch hub's `checkpoints/` folder as usual;
- torch hub's `download_url_to_file` raises a one-line ConfigError naming the missing file, the
  folder to put it in and where it comes from;
- Hugging Face hub (timm backbones, transformers models) is switched to offline mode: files come
  from its cache only, a missing one is one line naming the file, the model and the cache folder;
- an audit hook refuses every socket connection, name lookup or urllib request with the same kind
  of one-line error (the backstop for any other way out).

The functions are swapped wherever a loaded module holds them (pyiqa binds them by name) and put
back afterwards; the replacements act only while a build is under way, so one kept by a module
imported meanwhile (timm wraps `hf_hub_download` in a partial) behaves as the original later. pyiqa's weight loader uses `torch.load(weights_only=False)`: use weight files
from sources you trust.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from vsrdata.errors import ConfigError
from vsrdata.extras import install_hint

__all__ = ["INSTALL_HINT", "PREFIX", "PyiqaMetric", "canonical", "is_pyiqa", "load_pyiqa", "offline",
           "properties"]

PREFIX = "pyiqa:"
INSTALL_HINT = "pip install 'vsrdata[pyiqa]'"
# scores of a whole image set (distributions), not of one frame or frame pair
SET_LEVEL = ("fid", "sfid", "fid_dinov2", "inception_score")
_NET_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request")
_ACTIVE: list[tuple[str, list, list]] = []  # (label, errors raised, weights folders) of each build
_HOOKED: list[bool] = []


def is_pyiqa(name: str) -> bool:
    return name.startswith(PREFIX)


def _pyiqa():
    """The pyiqa module; ConfigError (one line, the install hint) when it cannot be imported."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import pyiqa
    except ImportError as exc:
        missing = (exc.name or "pyiqa").split(".")[0]
        if missing == "pyiqa":
            raise ConfigError(install_hint("pyiqa")) from None
        raise ConfigError(f"pyiqa cannot be imported (module {missing!r} not found): {INSTALL_HINT}") from None
    except Exception as exc:  # installed but broken, e.g. a torchvision built for another torch
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"pyiqa cannot be imported ({type(exc).__name__}: {first}); install a torchvision "
                          f"matching torch, then {INSTALL_HINT}") from None
    return pyiqa


def canonical(name: str) -> str:
    """'pyiqa:MUSIQ' -> 'pyiqa:musiq' (pyiqa's spelling of the name); ConfigError for pyiqa
    missing, an unknown name or a set-level metric."""
    bare = name[len(PREFIX):].strip()
    known = {n.lower(): n for n in _pyiqa().list_models()}
    if bare.lower() not in known:
        raise ConfigError(f"unknown pyiqa metric {bare!r} in --metrics (python -c \"import pyiqa; "
                          "print(pyiqa.list_models())\" lists the names)")
    found = known[bare.lower()]
    if found in SET_LEVEL:
        raise ConfigError(f"pyiqa metric {found!r} scores a set of images, not a frame; choose a per-image metric")
    return PREFIX + found


def properties(key: str) -> dict:
    """pyiqa's configuration of `key` ('pyiqa:NAME'): {'mode': 'FR' or 'NR', 'lower_better': bool,
    'score_range': str or None}."""
    _pyiqa()
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    cfg = DEFAULT_CONFIGS[key[len(PREFIX):]]
    return {"mode": cfg.get("metric_mode"), "lower_better": bool(cfg.get("lower_better", False)),
            "score_range": cfg.get("score_range")}


def _missing(name: str, folders: list[Path], url: str) -> ConfigError:
    """Our one line for a file the metric being built lacks (recorded as that build's cause)."""
    label, raised, _ = _ACTIVE[-1]
    where = " or ".join(dict.fromkeys(str(f) for f in folders))
    raised.append(ConfigError(f"{label} needs {name}; put it in {where} (nothing is downloaded; its source: {url})"))
    return raised[-1]


def _refuse_network(event: str, args: tuple) -> None:
    if _ACTIVE and event in _NET_EVENTS:
        label, raised, _ = _ACTIVE[-1]
        target = args[0] if event != "socket.connect" else (args[1] if len(args) > 1 else "?")
        raised.append(ConfigError(f"{label} needs a file that is not on disk (it tried to reach {target}); put its "
                                  "weights in the --iqa-weights folder or the library's cache (nothing is downloaded)"))
        raise raised[-1]


def _swap(pairs: list[tuple[object, object]]) -> None:
    """Rebind every module attribute that is the first of a pair (by identity) to the second.
    Swapping the reversed pairs afterwards also reaches modules imported in between."""
    table = {id(a): b for a, b in pairs}
    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        for attr, value in list(d.items()):
            if id(value) in table and callable(value):
                setattr(mod, attr, table[id(value)])


def _hf_offline():
    """(set, restore) Hugging Face hub's offline switch when its module is loaded."""
    hf = sys.modules.get("huggingface_hub.constants")
    if hf is None or not hasattr(hf, "HF_HUB_OFFLINE"):
        return lambda: None
    before = hf.HF_HUB_OFFLINE
    hf.HF_HUB_OFFLINE = True
    return lambda: setattr(hf, "HF_HUB_OFFLINE", before)


# The replacements decide when called: inside `offline` they refuse or look on disk, outside it
# they are the originals (a module imported during a build may keep one, e.g. in a partial).
def _hf_cached_only(orig):
    def cached_only(repo_id, *args, **kwargs):
        try:
            return orig(repo_id, *args, **kwargs)
        except Exception as exc:
            if not _ACTIVE or not any(w in type(exc).__name__ for w in ("NotFound", "Offline")):
                raise
            filename = kwargs.get("filename") or (args[0] if args else "its files")
            cache = getattr(sys.modules.get("huggingface_hub.constants"), "HF_HUB_CACHE", "the HF cache")
            label, raised, _ = _ACTIVE[-1]
            raised.append(ConfigError(
                f"{label} needs {filename} of the Hugging Face model {repo_id}; put it in the Hugging Face cache "
                f"{cache} (huggingface-cli download {repo_id} on a machine with network access, then copy the "
                "cache; nothing is downloaded)"))
            raise raised[-1] from None
    return cached_only


def _torch_replacements(no_download_orig, file_orig, hub_orig):
    import torch.hub

    def no_download(url, dst, *args, **kwargs):
        if not _ACTIVE:
            return no_download_orig(url, dst, *args, **kwargs)
        raise _missing(Path(dst).name, _ACTIVE[-1][2] + [Path(dst).parent], url)

    def local_file(url, model_dir=None, progress=True, file_name=None):
        if not _ACTIVE:
            return file_orig(url, model_dir, progress, file_name)
        name, pre = file_name or os.path.basename(urlparse(url).path), _ACTIVE[-1][2]
        cache = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "pyiqa"
        found = next((p for p in (*pre, cache) if (p / name).is_file()), None)
        if found is None:
            raise _missing(name, pre + [cache], url)
        return str((found / name).resolve())

    def hub_file(url, model_dir=None, *args, **kwargs):
        name = kwargs.get("file_name") or (args[3] if len(args) > 3 else None) or os.path.basename(urlparse(url).path)
        pre = _ACTIVE[-1][2] if _ACTIVE else []
        if model_dir is None and pre and (pre[0] / name).is_file():
            model_dir = str(pre[0])
        return hub_orig(url, model_dir, *args, **kwargs)

    return [no_download, local_file, hub_file]


_MADE: dict[int, tuple[object, object]] = {}  # id(original) -> (original, its replacement), made once


def _pairs() -> list[tuple[object, object]]:
    """(original, replacement) for torch hub's, pyiqa's and Hugging Face hub's download functions."""
    import torch.hub
    from pyiqa.utils import download_util

    originals = [torch.hub.download_url_to_file, download_util.load_file_from_url, torch.hub.load_state_dict_from_url]
    if any(id(o) not in _MADE for o in originals):
        for o, r in zip(originals, _torch_replacements(*originals)):
            _MADE[id(o)] = (o, r)
    hub = sys.modules.get("huggingface_hub")
    for o in (getattr(hub, n, None) for n in ("hf_hub_download", "snapshot_download")) if hub else ():
        if o is not None and id(o) not in _MADE:
            _MADE[id(o)] = (o, _hf_cached_only(o))
    return list(_MADE.values())


@contextlib.contextmanager
def offline(label: str, folder: str | os.PathLike | None = None):
    """While active, weight files come from `folder` or the caches and nothing is downloaded
    (module docstring); `label` names the metric in the errors. Yields the list of the errors the
    guards raised (the first one is the cause, should pyiqa wrap it in an exception of its own)."""
    raised: list[ConfigError] = []
    pairs = _pairs()
    if not _HOOKED:
        sys.addaudithook(_refuse_network)
        _HOOKED.append(True)
    _swap(pairs)
    restore_hf = _hf_offline()
    _ACTIVE.append((label, raised, [Path(folder)] if folder else []))
    try:
        yield raised
    finally:
        _ACTIVE.pop()
        restore_hf()
        _swap([(new, old) for old, new in pairs])


class PyiqaMetric:
    """One pyiqa metric: `metric(out)` (no reference) or `metric(out, gt)` (full reference) on
    HxWx3 uint8 RGB frames -> float. `key` 'pyiqa:NAME', `mode` 'FR'/'NR', `lower_better`."""

    def __init__(self, key: str, net, device, props: dict, version: str):
        self.key, self.net, self.device, self.version = key, net, device, version
        self.mode, self.lower_better, self.score_range = props["mode"], props["lower_better"], props["score_range"]

    @property
    def full_reference(self) -> bool:
        return self.mode == "FR"

    def _tensor(self, frame: np.ndarray):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        return t.permute(2, 0, 1)[None].float() / 255.0

    def __call__(self, out: np.ndarray, gt: np.ndarray | None = None) -> float:
        import torch

        args = (self._tensor(out),) + ((self._tensor(gt),) if self.full_reference else ())
        try:
            with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()):
                value = self.net(*args)
        except Exception as exc:  # e.g. a frame smaller than the network's input
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{self.key} failed on a {out.shape[1]}x{out.shape[0]} frame: {first}") from None
        return float(torch.as_tensor(value).reshape(-1)[0].item())

    def describe(self) -> str:
        kind = "full reference (output vs GT)" if self.full_reference else "no reference"
        better = "lower" if self.lower_better else "higher"
        rng = f", range {self.score_range}" if self.score_range else ""
        return (f"pyiqa {self.version} '{self.key[len(PREFIX):]}', {kind}, {better} is better{rng}; "
                "RGB float32 in [0, 1] NCHW, full frame, pyiqa's default settings")


def load_pyiqa(key: str, folder: str | os.PathLike | None = None, device: str = "cpu") -> PyiqaMetric:
    """The pyiqa metric `key` ('pyiqa:NAME', any case) built on `device` from weight files in
    `folder` or the caches, never downloaded; ConfigError (one line) for a missing file, pyiqa
    missing, an unknown name, or files that do not fit the network."""
    key = canonical(key)
    pyiqa = _pyiqa()
    import torch

    dev, raised = torch.device(device), []
    try:
        with offline(key, folder) as raised, contextlib.redirect_stdout(io.StringIO()):
            net = pyiqa.create_metric(key[len(PREFIX):], as_loss=False, device=dev)
    except Exception as exc:  # a missing file (our guards), another architecture's file, a broken one
        if raised:  # a guard's error, possibly wrapped by pyiqa or a library under it
            raise raised[0] from None
        if isinstance(exc, ImportError):  # an optional dependency of this metric
            raise ConfigError(f"{key} needs the Python module {exc.name or str(exc)!r}, which is not installed "
                              "(pyiqa imports it for this metric only)") from None
        head = " ".join(ln.strip() for ln in str(exc).strip().splitlines()[:2]) or type(exc).__name__
        raise ConfigError(f"{key} could not be built from its weight files ({type(exc).__name__}: {head})") from None
    net.eval()
    return PyiqaMetric(key, net, dev, properties(key), getattr(pyiqa, "__version__", "?"))
