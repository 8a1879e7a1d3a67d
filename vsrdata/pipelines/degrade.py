"""`degrade_tree`: write a real-world (or fixed) degraded LR copy of every clip of a dataset tree.

Plan: `find_clips(SRC)` (any layout `make-lr` takes), clips in natural order; frame `SRC/<rel>`
goes to `DST/<rel>` as PNG (`make_lr`'s mapping). A clip's identity is its folder relative to
SRC ('/'-separated; '.' when SRC itself is the clip); its draws depend only on (seed, identity)
(`core.degradations.sampler`), so the tree does not depend on `workers`, on `shard` or on
interruptions. Each clip is one job (video compression needs the whole clip): read its frames,
`sample` (or take the replayed entry), `apply`, write every frame through a temporary hidden
name and a rename, then write the clip's entry `DST/.vsrdata-degrade/<identity>.json` last: a
clip with its entry and all its frames is done, and a re-run (after `kill -9`, say) skips it and
redoes the others with the same draws, so the result is byte-identical.

Files in DST besides the frames are dot-files (hidden), so BasicSR's readers, which list an LQ
root with `glob('*')` / `scandir` skipping hidden names, see only clip folders:

* `DST/.vsrdata-degrade.json` -- the MANIFEST: format, recipe (all its values), seed and, when a
  run ends, every clip's entry found in DST (a `--shard` run lists what is there when it ends;
  the last shard to finish, or a run without `--shard` (which then only skips), lists every clip);
* `DST/.vsrdata-degrade/` -- one entry per clip (every drawn value; walked values per frame).

A DST made with another recipe or seed is refused unless `overwrite`. `replay=MANIFEST` rebuilds
the frames from the manifest's entries without drawing anything (a clip of SRC that the manifest
lacks, or the reverse, is an error before anything is written).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vsrdata.core.degradations import apply, load_recipe, sample
from vsrdata.core.degradations.sampler import FORMAT
from vsrdata.core.image_io import read_image, write_bytes_atomic, write_image
from vsrdata.core.layouts import clip_shape, find_clips
from vsrdata.core.locks import OutputLock
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.pipelines.make_lr import _check_folders, _remove_stale_temps
from vsrdata.pipelines.runner import available_cores, check_shard, run_jobs
from vsrdata.pipelines.summary import SKIPPED, WRITTEN, JobsFailed, Summary
from vsrdata.progress import Progress, check_progress

__all__ = ["ENTRIES", "MANIFEST", "degrade_tree", "plan_degrade", "read_manifest"]

MANIFEST = ".vsrdata-degrade.json"
ENTRIES = ".vsrdata-degrade"


def _dump(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def entry_path(dst: str | os.PathLike, identity: str) -> Path:
    """Where the manifest entry of clip `identity` lives under DST."""
    return Path(dst) / ENTRIES / (("_root_" if identity == "." else identity) + ".json")


def plan_degrade(src, dst, shard=None) -> list[tuple]:
    """[(identity, source frames, output PNGs, H, W, channels, dtype)] of every clip (this shard:
    clip k of N). Refuses, before anything is written, what `make-lr` refuses when planning."""
    check_shard(shard)
    src, dst = Path(src), Path(dst)
    _check_folders(src, dst)
    plan = []
    for clip in find_clips(src):
        h, w, c, dtype = clip_shape(clip)
        rel = clip.path.relative_to(src)
        outs = [str(dst / rel / (os.path.splitext(f)[0] + ".png")) for f in clip.frames]
        if len(set(outs)) != len(outs):
            raise InputError(f"two frames of {clip.path} would be written to one PNG (same name, other extension)")
        plan.append((rel.as_posix(), [str(p) for p in clip.frame_paths()], outs, h, w, c, str(dtype)))
    if not plan:
        raise InputError(f"no image frames found under {src}")
    return plan if shard is None else plan[shard[0]::shard[1]]


def read_manifest(path: str | os.PathLike) -> dict:
    """A manifest written by `degrade_tree` (format checked); one-line ConfigError otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"replay: cannot read manifest {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("clips"), dict):
        raise ConfigError(f"replay: {path} is not a {FORMAT} manifest")
    return data


def _check_dst(dst: Path, recipe: dict, seed: int, overwrite: bool, write: bool) -> None:
    path = dst / MANIFEST
    if path.is_file() and not overwrite:
        try:
            old = json.loads(path.read_text())
            same = old["recipe"] == recipe and old["seed"] == seed
        except (ValueError, KeyError, TypeError, OSError):
            raise OutputError(f"unreadable {path}: remove it or overwrite", option="overwrite") from None
        if not same:
            raise OutputError(f"{dst} already holds frames degraded with recipe '{old['recipe'].get('name')}' seed "
                              f"{old['seed']} ({MANIFEST}); refusing to mix in recipe '{recipe['name']}' seed {seed} "
                              f"(choose another DST or overwrite)", option="overwrite")
    elif write:
        write_bytes_atomic(path, _dump({"format": FORMAT, "recipe": recipe, "seed": seed, "clips": {}}))


def _degrade_clip(item) -> str:
    """Job for one clip (runs in a worker): read, sample or replay, apply, write frames, entry last."""
    identity, sources, outs, recipe, seed, entry_file, overwrite, replayed = item
    if not overwrite and os.path.exists(entry_file) and all(os.path.exists(p) for p in outs):
        return SKIPPED
    frames = [read_image(path, allow_alpha=False) for path in sources]
    params = replayed if replayed is not None else sample(recipe, seed, identity, len(frames), frames[0].shape[:2])
    try:
        lr = apply(frames, params)
    except InputError as exc:
        raise InputError(f"{exc}: {os.path.dirname(sources[0])}") from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if replayed is None:
            raise
        raise ConfigError(f"replay: manifest entry of clip {identity!r} is malformed ({type(exc).__name__}: "
                          f"{exc})") from None
    for path, img in zip(outs, lr):
        write_image(path, img)
    write_bytes_atomic(entry_file, _dump(params))
    return WRITTEN


def _write_manifest(dst: Path, recipe: dict, seed: int, identities: list[str]) -> None:
    clips = {}
    for identity in identities:
        path = entry_path(dst, identity)
        if path.is_file():
            clips[identity] = json.loads(path.read_text())
    write_bytes_atomic(dst / MANIFEST, _dump({"format": FORMAT, "recipe": recipe, "seed": seed, "clips": clips}))


def _replay_entries(manifest: dict, plan: list, full: list) -> list:
    names = {p[0] for p in full}
    missing = [p[0] for p in full if p[0] not in manifest["clips"]]
    extra = [c for c in manifest["clips"] if c not in names]
    if missing or extra:
        what = f"clip {missing[0]!r} of SRC is not in the manifest" if missing else \
            f"manifest clip {extra[0]!r} is not in SRC"
        raise ConfigError(f"replay: {what} ({len(missing)} missing, {len(extra)} extra)")
    return [manifest["clips"][p[0]] for p in plan]


def degrade_tree(src: str | os.PathLike, dst: str | os.PathLike, recipe: str | dict = "realbasicvsr", seed: int = 0, scale: int | None = None,
                 replay: str | os.PathLike | None = None, workers: int | None = None, overwrite: bool = False,
                 shard: tuple[int, int] | None = None, progress: Progress = False) -> Summary:
    """Degrade every clip under `src` into `dst` (module docstring). `recipe`: a built-in name, a
    YAML file or a recipe dict; `replay`: a manifest path (then `recipe`/`seed` come from it).
    Raises `JobsFailed` after the run if a clip failed; ConfigError/OutputError before writing.
    The Summary's `out` is `dst`. `progress`: `vsrdata.progress` (False: silent; True: a bar on stderr; or a callback).

    Example::

        from vsrdata import degrade_tree
        summary = degrade_tree("REDS/train_sharp", "REDS/train_realbasicvsr_X4", "realbasicvsr", seed=0)
        print(summary.line())
        degrade_tree("REDS/train_sharp", "/tmp/again", replay="REDS/train_realbasicvsr_X4/.vsrdata-degrade.json")
    """
    check_progress(progress)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    manifest = read_manifest(replay) if replay is not None else None
    if manifest is not None:
        recipe, seed = manifest["recipe"], manifest["seed"]
    elif not isinstance(recipe, dict):
        recipe = load_recipe(recipe, scale)
    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    full = plan_degrade(src, dst)
    plan = full if shard is None else plan_degrade(src, dst, shard)
    entries = _replay_entries(manifest, plan, full) if manifest is not None else [None] * len(plan)
    if recipe["kind"] != "fixed":
        for ident, srcs, _, _, _, c, dtype in full:
            if c != 3 or dtype != "uint8":
                raise InputError(f"{os.path.dirname(srcs[0])}: real-world recipes need 8-bit colour frames, "
                                 f"this clip is {c}-channel {dtype}")
    dst = Path(dst)
    with OutputLock(dst, "DST", shard=shard):
        _check_dst(dst, recipe, seed, overwrite, write=True)
        planned = [(s, o) for _, srcs, outs, *_ in plan for s, o in zip(srcs, outs)]
        _remove_stale_temps(planned + [("", str(entry_path(dst, p[0]))) for p in plan] + [("", str(dst / MANIFEST))])
        items = [(ident, srcs, outs, recipe, seed, str(entry_path(dst, ident)), overwrite, entry)
                 for (ident, srcs, outs, *_), entry in zip(plan, entries)]
        summary = run_jobs(_degrade_clip, items, workers=workers, progress=progress, desc="degrade", unit="clip")
        _write_manifest(dst, recipe, seed, [p[0] for p in full])
        summary.examples, summary.out = [(Path(p[1][0]), Path(p[2][0])) for p in plan[:5]], dst
        if summary.failed:
            raise JobsFailed(summary)
        return summary
