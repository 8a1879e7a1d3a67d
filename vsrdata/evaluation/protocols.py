"""Scoring protocols: which channel, which border crop and which frames a test set is scored on.

docs/CONVENTIONS.md#metrics: ``vid4`` Y, 0, all;  ``reds4`` RGB, 0, all;  ``vimeo-t`` Y, 0,
centre frame only (im4 of the septuplet);  ``generic`` Y, 0, all (most video-SR tables outside
REDS report Y). ``auto`` picks one from the split record (partition vid4 / reds4,
redsofficial4, reds-val / the Vimeo layout), else generic.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsrdata.errors import ConfigError

__all__ = ["CHANNELS", "FRAME_MODES", "PROTOCOLS", "Protocol", "choose_protocol", "resolve_protocol"]

CHANNELS = ("y", "rgb")
FRAME_MODES = ("all", "center")


@dataclass(frozen=True)
class Protocol:
    channel: str  # 'y' | 'rgb'
    crop_border: int
    frames: str  # 'all' | 'center'


PROTOCOLS = {
    "vid4": Protocol("y", 0, "all"),
    "reds4": Protocol("rgb", 0, "all"),
    "vimeo-t": Protocol("y", 0, "center"),
    "generic": Protocol("y", 0, "all"),
}
_REDS_NAMES = ("reds4", "redsofficial4", "reds-val")


def resolve_protocol(name: str, record: dict) -> str:
    """`name`, or for 'auto' the protocol that fits the split record (see module docstring)."""
    if name != "auto":
        if name not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {name!r} (choose from auto, {', '.join(PROTOCOLS)})")
        return name
    sel = record.get("selection") or {}
    part = str(sel.get("name") or "").lower() if sel.get("kind") == "partition" else ""
    if part == "vid4":
        return "vid4"
    if part in _REDS_NAMES:
        return "reds4"
    if part.startswith("vimeo-t") or record.get("layout") == "vimeo":
        return "vimeo-t"
    return "generic"


def choose_protocol(name: str, record: dict, channel: str | None = None, crop_border: int | None = None,
                    frames: str | None = None) -> tuple[str, Protocol]:
    """(protocol name, Protocol) for `name` ('auto' reads `record`), with `channel` ('y'/'rgb'),
    `crop_border` and `frames` ('all'/'center') overriding the protocol's where given."""
    proto_name = resolve_protocol(name, record)
    base = PROTOCOLS[proto_name]
    proto = Protocol(channel=(channel or base.channel).lower(),
                     crop_border=base.crop_border if crop_border is None else int(crop_border),
                     frames=frames or base.frames)
    if proto.channel not in CHANNELS:
        raise ConfigError(f"channel must be 'y' or 'rgb', got {channel!r}")
    if proto.frames not in FRAME_MODES:
        raise ConfigError(f"frames must be 'all' or 'center', got {frames!r}")
    return proto_name, proto
