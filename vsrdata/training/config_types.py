"""The type of every TrainConfig value read from a config file, checked before anything uses it.

A value of the wrong type (`lr: abc`, `betas: 0.9`, `periods: [a]`) is a one-line ConfigError
naming the file, the key and the expected type, instead of a TypeError deep in the optimiser.
Lossless conversions are made: an integer where a number is wanted, a float with an integral
value (`6e5`) where an integer is, and a numeric string (`"4e-4"`: YAML 1.1, which PyYAML reads,
takes `4e-4` without a dot for a string) where a number is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vsrdata.errors import ConfigError

# Element type of the list-valued fields.
LIST_ITEMS = {"betas": float, "interval_list": int, "periods": int, "restart_weights": float,
              "milestones": int, "restarts": int, "inject_nan_at": int}
_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table (mapping)",
          list: "a list"}


def check_types(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
    """`values` (field name -> value) converted to the types of the dataclass `cls`'s fields;
    ConfigError '<source>: <key> must be <type>, got <value>' otherwise."""
    kinds = {f.name: _parse(f.type) for f in dataclasses.fields(cls)}
    return {key: _convert(key, value, kinds[key], source) for key, value in values.items()}


def _parse(annotation) -> tuple[set, bool]:
    """({types}, None allowed) of an annotation such as 'int | None' (strings: postponed annotations)."""
    names = [p.strip() for p in str(annotation).split("|")]
    table = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict, "list": list}
    return {table[n] for n in names if n in table}, "None" in names


def _convert(key: str, value, kind: tuple[set, bool], source: str):
    types, optional = kind
    if value is None and optional:
        return None
    for t in (bool, int, float, str, dict, list):  # bool first: True is an int in Python
        if t in types:
            ok, out = _as(t, value, key)
            if ok:
                return out
    want = " or ".join(_WORDS[t] for t in types if t in _WORDS) or "a value"
    if key in LIST_ITEMS:
        want = f"a list of {'integers' if LIST_ITEMS[key] is int else 'numbers'}"
    raise ConfigError(f"{source}: {key} must be {want}{' (or null)' if optional else ''}, got {value!r}")


def _as(t: type, value, key: str) -> tuple[bool, Any]:
    if t is list:
        if not isinstance(value, (list, tuple)):
            return False, None
        item = LIST_ITEMS.get(key)
        if item is None:
            return True, list(value)
        converted = [_scalar(item, v) for v in value]
        return (all(ok for ok, _ in converted), [v for _, v in converted])
    if t in (int, float):
        return _scalar(t, value)
    if t is bool or t is dict or t is str:
        return isinstance(value, t), value
    return False, None


def _scalar(t: type, value) -> tuple[bool, Any]:
    """An int / float from an int, an integral float, or a numeric string; never from a bool."""
    if isinstance(value, bool):
        return False, None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return False, None
    if isinstance(value, int):
        return True, t(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        if t is float:
            return True, value
        return (value.is_integer(), int(value) if value.is_integer() else None)
    return False, None


# BasicSR option-file keys read as numbers (a list, or a number or a list, where so marked): their
# types are checked here, before `basicsr_options` maps them, so `lr: abc` names its key there too.
_BASICSR_NUMBERS = {"train.optim_g.lr": "n", "train.optim_g.betas": "l", "train.optim_g.weight_decay": "n",
                    "train.ema_decay": "n", "network_g.ema_decay": "n", "train.dcn_lr_mul": "n",
                    "train.pixel_opt.loss_weight": "n", "train.pixel_opt.eps": "n",
                    **{f"train.scheduler.{k}": "nl" for k in ("periods", "restart_weights", "eta_min",
                                                              "milestones", "gamma", "restarts")}}


def check_basicsr_numbers(opt: dict, source: str) -> None:
    """ConfigError '<source>: <dotted key> must be a number (a list of numbers), got ...' for a
    BasicSR option file whose numeric value is not one (`_BASICSR_NUMBERS`)."""
    for dotted, kinds in _BASICSR_NUMBERS.items():
        value: Any = opt
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and "l" in kinds:
            if all(_scalar(float, v)[0] for v in value):
                continue
        elif "n" in kinds and _scalar(float, value)[0]:
            continue
        want = {"n": "a number", "l": "a list of numbers", "nl": "a number or a list of numbers"}[kinds]
        raise ConfigError(f"{source}: {dotted} must be {want}, got {value!r}")
