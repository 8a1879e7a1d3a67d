"""The source's other streams (audio, subtitles) in a video output: planned first, then muxed.

`plan_streams(source, ext)` decides, before any frame is decoded, what happens to each audio
and subtitle stream of the source in an output of extension `ext`, by asking the muxer itself:
each stream is added to a trial output of that container and its header is written (FFmpeg's
codec table, `supported_codecs`, is not enough: it lists FLAC for .mov, whose muxer then
refuses it). Audio is copied packet by packet when the muxer takes it, else re-encoded (AAC;
Opus for .webm), else refused with one line before any work. Subtitles are copied when the
muxer takes them, else dropped, and the plan says so. Language tags are kept in every case.

`Passthrough` then muxes the planned streams next to the encoded video, interleaved by time.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vsrdata.core.video.reader import first_line, open_input
from vsrdata.errors import ConfigError

__all__ = ["StreamPlan", "plan_streams", "Passthrough"]


@dataclass
class StreamPlan:
    """Per source stream index: ("copy", None) or ("encode", codec); `notes` says what happens
    to each stream in words (one line each; changes say why)."""

    ext: str
    modes: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # the notes that are losses or conversions


def _muxer_takes(ext: str, add) -> str | None:
    """None when a container of `ext` accepts the stream that `add(out)` creates, else the reason."""
    from vsrdata.core.video.pyav import load_av

    av = load_av()

    with tempfile.TemporaryDirectory() as tmp:
        try:
            out = av.open(str(Path(tmp) / f"trial{ext}"), mode="w")
        except Exception as exc:
            return first_line(exc)
        try:
            add(out)
            out.start_encoding()
            return None
        except Exception as exc:
            return first_line(exc)
        finally:
            try:
                out.close()
            except Exception:
                pass


def _encoder_for(ext: str) -> str:
    return "libopus" if ext == ".webm" else "aac"


def _add_encoder(out, target: str, src_stream):
    ctx = src_stream.codec_context
    enc = out.add_stream(target, rate=48000 if target == "libopus" else (ctx.sample_rate or 48000))
    enc.layout = ctx.layout.name if ctx.layout else "stereo"
    return enc


def plan_streams(source: str | Path, ext: str) -> StreamPlan:
    """The plan for the audio and subtitle streams of `source` in a `ext` output (see the module
    docstring). Raises ConfigError when an audio stream can be neither copied nor re-encoded."""
    ext = ext.lower()
    plan = StreamPlan(ext)
    src = open_input(Path(source))
    try:
        for s in src.streams.audio:
            name, lang = s.codec_context.name, _lang(s)
            if _muxer_takes(ext, lambda out: out.add_stream_from_template(s)) is None:
                plan.modes[s.index] = ("copy", None)
                plan.notes.append(f"{name}{lang} copied")
                continue
            target = _encoder_for(ext)
            why = _muxer_takes(ext, lambda out: _add_encoder(out, target, s))
            if why is not None:
                raise ConfigError(f"audio stream {s.index} ({name}) of {source} cannot go into a {ext} file, "
                                  f"copied or re-encoded to {target} ({why}); choose a .mkv output")
            plan.modes[s.index] = ("encode", target)
            note = f"{name}{lang} re-encoded to {target.replace('lib', '')} (not allowed in {ext})"
            plan.notes.append(note)
            plan.changes.append(f"audio stream {s.index}: {note}")
        for s in src.streams.subtitles:
            name = s.codec_context.name if s.codec_context else "subtitle"
            if _muxer_takes(ext, lambda out: out.add_stream_from_template(s)) is None:
                plan.modes[s.index] = ("copy", None)
                plan.notes.append(f"{name} subtitles{_lang(s)} copied")
            else:
                plan.changes.append(f"subtitle stream {s.index} ({name}{_lang(s)}) dropped: a {ext} file cannot "
                                    f"hold it (.mkv can)")
    finally:
        src.close()
    return plan


def _lang(stream) -> str:
    lang = stream.metadata.get("language")
    return f" [{lang}]" if lang and lang != "und" else ""


class Passthrough:
    """Muxes the planned audio/subtitle streams of a source into an output container: copied
    packet by packet, or audio decoded and re-encoded; timestamps shifted by `shift` seconds."""

    def __init__(self, src: Path, out, plan: StreamPlan, shift: float):
        self._in = open_input(src)
        self._map: dict[int, tuple] = {}
        streams = [s for s in list(self._in.streams.audio) + list(self._in.streams.subtitles) if s.index in plan.modes]
        for s in streams:
            mode, target = plan.modes[s.index]
            ostream = out.add_stream_from_template(s) if mode == "copy" else _add_encoder(out, target, s)
            lang = s.metadata.get("language")
            if lang:
                ostream.metadata["language"] = lang
            self._map[s.index] = (mode, ostream, s.codec_context if mode == "encode" else None)
        self._shift = shift
        self._packets = self._in.demux(*streams) if streams else iter(())
        self._pending = None
        self.error: str | None = None

    def _next(self):
        try:
            return next(self._packets)
        except StopIteration:
            return None
        except Exception as exc:  # truncated source: keep what was read
            self.error = first_line(exc)
            return None

    def feed_until(self, out, seconds: float | None) -> None:
        """Mux source packets whose time (after the shift) is <= `seconds` (None: all)."""
        while True:
            pkt = self._pending or self._next()
            self._pending = None
            if pkt is None:
                return
            if pkt.dts is None and pkt.size == 0:
                continue  # demuxer's flush packet
            t = float(pkt.pts * pkt.time_base) - self._shift if pkt.pts is not None else None
            if seconds is not None and t is not None and t > seconds:
                self._pending = pkt
                return
            self._mux(out, pkt)

    def _mux(self, out, pkt) -> None:
        mode, ostream, ctx = self._map[pkt.stream.index]
        offset = round(self._shift / pkt.time_base)
        if mode == "copy":
            if pkt.pts is not None:
                pkt.pts -= offset
            if pkt.dts is not None:
                pkt.dts -= offset
            pkt.stream = ostream
            out.mux(pkt)
            return
        try:
            frames = ctx.decode(pkt)
        except Exception as exc:
            self.error = first_line(exc)
            return
        for frame in frames:
            frame.pts = None  # let the encoder number the samples
            out.mux(ostream.encode(frame))

    def finish(self, out) -> None:
        self.feed_until(out, None)
        for mode, ostream, _ in self._map.values():
            if mode == "encode":
                out.mux(ostream.encode(None))

    def close(self) -> None:
        self._in.close()
