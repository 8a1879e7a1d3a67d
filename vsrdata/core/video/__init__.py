"""Video files as numpy frames: probe, decode, and a streaming encoder that keeps the audio.

Built on PyAV (`import av`, FFmpeg's libraries), imported when first needed so that importing
this package stays cheap. Modules: `reader` (probe, `VideoReader`), `writer` (`VideoWriter`,
audio copy); the names below are the package's API.

Frames are HxWx3 uint8 **BGR** arrays (as cv2 and `image_io` use), decoded with PyAV's
swscale conversion from the stream's pixel format.

Frame rate:
- `VideoInfo.fps` is the stream's average rate as an exact `Fraction` (24000/1001 stays
  24000/1001, never 23.976).
- `VideoInfo.variable_rate` is True when the container's average rate and its base rate (the
  smallest frame step, FFmpeg's ``r_frame_rate``) differ: a declaration of the file, not a
  measurement of every timestamp.
- For a variable-rate input we keep every decoded frame (none dropped, none duplicated) and
  `VideoWriter(..., time_base=...)` writes each one at its source timestamp, so the output has
  the same timing and stays in sync with the copied audio; its declared rate is the average.
  For constant-rate inputs frame i is written at i / fps.

Audio and subtitles (`streams.plan_streams`, decided before any frame is decoded by writing a
trial header with the output's muxer): `VideoWriter(audio_from=SOURCE)` copies every audio stream
of SOURCE packet by packet (no re-encode), interleaved with the video as frames are written, when
the muxer takes the codec; otherwise that stream is re-encoded (AAC; Opus for .webm) and
`VideoWriter.audio` says so; when neither works, ConfigError before any work. Subtitle streams are
copied where the muxer takes them (.mkv takes SRT/ASS; .mp4/.mov only mov_text), else dropped
and the plan's `changes` says so. Language tags are kept. Timestamps are shifted by the same
amount as the video (the source's first video timestamp becomes 0), which keeps them in sync.

Picture (reader): a display matrix (rotation/mirror) is applied to the pixels, as ffmpeg's
autorotate does, so outputs are upright without one. `VideoInfo.sample_aspect` (SAR) and
`bit_depth` describe the source; `VideoWriter(sample_aspect=...)` writes a SAR, and the 10-bit
`PIX_FMTS` take uint16 frames (`VideoReader(deep=True)` decodes >8-bit streams as uint16).

Encoding defaults (`DEFAULT_CRF`): libx264 at CRF 17 with yuv420p. x264's documentation calls
CRF ~17-18 "visually lossless or nearly so"; yuv420p (4:2:0 chroma) is what every player and
browser plays, whereas 4:4:4 H.264 does not play in many (QuickTime, browsers, TVs). Pass
``pix_fmt="yuv444p"`` to keep full chroma resolution, or codec "ffv1" (in .mkv/.avi) for
mathematically lossless output. .webm outputs default to libvpx-vp9 (CRF 20, constant quality).

The writer encodes into a hidden temporary file next to the destination and renames it only
when `close()` succeeds; `abort()` (or an exception inside ``with``) removes it, so a reader
never sees a half-written video.
"""

from vsrdata.core.video.reader import (VIDEO_EXTENSIONS, AudioInfo, Frame, SubtitleInfo, VideoInfo, VideoReader,
                                       is_video_path, probe, read_frames)
from vsrdata.core.video.streams import StreamPlan, plan_streams
from vsrdata.core.video.writer import CODECS, DEFAULT_CRF, OUTPUT_EXTENSIONS, PIX_FMTS, VideoWriter

__all__ = ["VIDEO_EXTENSIONS", "OUTPUT_EXTENSIONS", "CODECS", "PIX_FMTS", "DEFAULT_CRF", "AudioInfo", "SubtitleInfo",
           "VideoInfo", "Frame", "VideoReader", "VideoWriter", "StreamPlan", "plan_streams", "probe", "read_frames",
           "is_video_path"]
