"""Video files through PyAV (FFmpeg's libraries): the reader and the writer behind every video file.

AvSource reads every frame in order with its timestamp, turned upright as players show it (phone
videos store a rotation). AvVideoWriter encodes H.264 (default), HEVC, AV1 or MJPEG with the source's
timestamps and frame durations, and copies the source's audio packet for packet (AAC when MP4 cannot
hold the codec, or, for an .mp4, when it is not one that players take in MP4). Crash safety and resume:

- frames go to ``.NAME.partial.mp4``: fragmented MP4, one fragment per GOP, each handed to the OS as
  soon as it is complete, so after ``kill -9`` the file plays and holds every finished GOP;
- close() remuxes it into NAME (MP4 with ``+faststart``, MOV or MKV) through a temporary file and one
  rename, after checking that the result holds every frame and audio packet;
- rerunning the same job (same source, model, options, encoder and library: a key in the file's
  comment tag) copies the finished GOPs' packets from the partial file, or from an interrupted NAME
  (Ctrl-C finalizes what was converted; an .mkv keeps that MP4 beside it as ``.NAME.mkv.resume.mp4``), and
  encodes from the next frame, which the source seeks to;
- ``--overwrite`` replaces an earlier NAME only with a whole conversion: a run stopped or failed halfway
  leaves it as it was, and its own frames in the partial file, which the same command continues.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.bitstream import BitStreamFilterContext

from cyclegan_edge.atomic import atomic_path, unlock_output
from cyclegan_edge.errors import first_line
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.resize import fit_frame
from cyclegan_edge.runtime.sinks import (EncodeSettings, OutputExists, Sink, SinkError, WriteFailed, encoded_size,
                                         keep_interrupted, lock_video_output, mp4_boxes, pad_to, parse_bitrate,
                                         preset_choices, warn_padded)  # fmt: skip
from cyclegan_edge.runtime.sources import Source, SourceError

if int(av.__version__.split(".")[0]) < 16:  # frame rotation, durations and template streams
    raise ImportError(f"PyAV {av.__version__} is too old (16 or newer needed)")

log = logging.getLogger("cyclegan_edge.runtime")

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Containers a resume copies packets from: Matroska keeps no decode timestamps (B-frames) and millisecond
# presentation ones, so a stopped .mkv conversion resumes from the MP4 it keeps as .NAME.mkv.resume.mp4.
RESUMES_FROM = (".mp4", ".m4v", ".mov")
MKV_TICK = Fraction(1, 1000)  # Matroska's timestamps: whole milliseconds (a 29.97 fps frame at 0.1001 s reads 0.100)
# One fragment per keyframe, written with the moov (delay_moov lets it hold the B-frame edit list),
# and every fragment flushed to the OS when it is complete.
FRAGMENTED = {"movflags": "frag_keyframe+delay_moov+default_base_moof", "flush_packets": "1"}
FINAL = {".mp4": {"movflags": "+faststart"}, ".m4v": {"movflags": "+faststart"}, ".mov": {"movflags": "+faststart"}}
ANNEX_B = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
KEY_TAG = "comment"
KEY_PREFIX = "cyclegan-edge job "
LIVE_TIME_BASE = Fraction(1, 90000)
# Audio an .mp4 keeps as it is: what browsers and phones play in MP4 (PCM, FLAC or Opus in MP4 is legal, but
# often silent or refused there); other audio is re-encoded to AAC. .mov and .mkv copy what both MP4 (the partial
# file) and they can hold (MOV: not FLAC or Opus).
PLAYS_IN_MP4 = ("aac", "mp3", "ac3", "eac3", "alac")
GOP_SECONDS = 2.0  # keyframe interval: seeking, and what a kill -9 loses (+ the frames inside the encoder)


@dataclass(frozen=True)
class Codec:
    cpu: str
    nvenc: str | None
    crf: int  # default quality: visually lossless range
    preset: str | None  # default CPU preset
    pix_fmt: str = "yuv420p"


CODECS = {
    "h264": Codec("libx264", "h264_nvenc", 18, "veryfast"),
    "hevc": Codec("libx265", "hevc_nvenc", 22, "fast"),
    "av1": Codec("libsvtav1", "av1_nvenc", 30, "8"),
    "mjpeg": Codec("mjpeg", None, 3, None, "yuvj420p"),  # crf is the JPEG qscale here (2 best .. 31)
}


# ---- pure helpers ---------------------------------------------------------------------------------
def encoder_names(s: EncodeSettings) -> list[str]:
    """FFmpeg encoders to try, in order."""
    c = CODECS[s.codec]
    if s.encoder == "nvenc":
        if c.nvenc is None:
            raise SinkError(f"--codec {s.codec} has no NVENC encoder (use --encoder cpu)")
        return [c.nvenc]
    return [c.cpu] if s.encoder == "cpu" or c.nvenc is None else [c.nvenc, c.cpu]


def encoder_options(name: str, s: EncodeSettings) -> dict[str, str]:
    c = CODECS[s.codec]
    quality = str(s.crf if s.crf is not None else c.crf)
    if name.endswith("_nvenc"):
        return {"preset": s.preset or "p5", "rc": "vbr", **({} if s.bitrate else {"cq": quality})}
    if name == "mjpeg":  # a fixed JPEG quantizer, like FFmpeg's -q:v
        return {} if s.bitrate else {"qmin": quality, "qmax": quality}
    opts = {"preset": s.preset or str(c.preset), **({} if s.bitrate else {"crf": quality})}
    if name == "libx265":
        opts["x265-params"] = "open-gop=0:log-level=error"  # closed GOPs: each fragment decodes alone
    return opts


def complete_mp4_prefix(path: Path) -> int:
    """Bytes of ``path`` made of whole top-level boxes ending with a whole fragment (moof + mdat):
    what a killed fragmented-MP4 writer left that can be trusted."""
    good, size = 0, path.stat().st_size
    for kind, pos, n, _ in mp4_boxes(path):
        if n < 8 or pos + n > size:  # to the end (0), or cut short: not known whole
            break
        if kind == b"mdat":
            good = pos + n
    return good


def job_key(source: Path, *parts: object) -> str:
    """Identifies a conversion: the source (size, first and last MiB) and everything that shapes the output."""
    h = hashlib.sha256(repr(parts).encode())
    size = source.stat().st_size
    h.update(str(size).encode())
    with open(source, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()[:20]


def own_tags(metadata: dict[str, str]) -> dict[str, str]:
    """Container tags worth carrying over (title, creation time, ...): not the muxer's own."""
    muxers = {"major_brand", "minor_version", "compatible_brands", "encoder"}
    return {k: v for k, v in metadata.items() if k.lower() not in muxers}


def hidden(path: Path, tag: str) -> Path:
    """``.NAME.TAG.mp4`` beside ``path``: out.mp4 -> .out.partial.mp4, out.mkv -> .out.mkv.partial.mp4 (its own)."""
    return path.with_name(f".{path.stem if path.suffix.lower() == '.mp4' else path.name}.{tag}.mp4")


def rotation_steps(degrees: float) -> int:
    """np.rot90 steps (counter-clockwise) that turn a stored frame upright, from FFmpeg's display
    rotation (the angle the frame must be rotated counter-clockwise to be shown)."""
    return int(round(degrees / 90.0)) % 4


def av_error(e: BaseException) -> str:
    """FFmpeg's reason alone: PyAV's message repeats its error number and the file the caller names."""
    reason = getattr(e, "strerror", None) if isinstance(e, av.FFmpegError) else None
    return reason if isinstance(reason, str) and reason else first_line(e, path=False)


def tag_bt709(ctx: Any) -> None:
    """Tag an encoder's output BT.709 (sRGB's primaries), limited range: what ``yuv420_bt709`` frames are."""
    ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1
    ctx.color_range = 1


def yuv420_bt709(frame: Any) -> Any:
    """A BGR frame as the 4:2:0 BT.709 frame an H.264 encoder takes (files and streams alike)."""
    return frame.reformat(format="yuv420p", dst_colorspace="ITU709")


UNSPECIFIED_COLORSPACE = 2  # FFmpeg's AVCOL_SPC_UNSPECIFIED


def bgr(frame: Any) -> np.ndarray:
    """A decoded frame as BGR: by its colour tags, and an untagged HD one (720 lines and more) as BT.709, as players
    show it (swscale's default for untagged video is BT.601: reds and greens shifted by up to 15 levels)."""
    if frame.colorspace == UNSPECIFIED_COLORSPACE and frame.height >= 720:
        return frame.reformat(format="bgr24", src_colorspace="ITU709").to_ndarray()
    return frame.to_ndarray(format="bgr24")


class DamagedPackets:
    """Packets a decoder refused: the first said with its reason, the rest counted, the count said at the end (a
    damaged stretch is dozens of them)."""

    def __init__(self, name: str, what: str = "packet") -> None:
        self.name, self.what, self.count = name, what, 0

    def add(self, e: BaseException) -> None:
        self.count += 1
        if self.count == 1:
            log.warning("%s: skipped a damaged %s (%s)", self.name, self.what, av_error(e))

    def say_count(self) -> None:
        if self.count > 1:
            log.warning("%s: skipped %d damaged %ss in all", self.name, self.count, self.what)


# ---- reading ---------------------------------------------------------------------------------------
class AvSource(Source):
    """Every frame of a video file, in order, as BGR; timestamps[i] / durations[i] are those of the
    i-th frame returned (in ``time_base``)."""

    def __init__(self, path: str, name: str | None = None) -> None:
        self.path, self.name, self.live = Path(path), name or path, False
        if not self.path.is_file():
            raise SourceError(f"{self.name}: no such file")
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"{self.name}: cannot open this video ({av_error(e)})") from None
        if not self.container.streams.video:
            raise SourceError(f"{self.name}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(30)
        self.rate = Fraction(rate)
        self.fps = float(self.rate)
        duration = self.stream.duration
        seconds = float(duration * self.time_base) if duration else (self.container.duration or 0) / 1e6
        self.frame_count = self.stream.frames or int(round(seconds * self.fps))
        self.frames_indexed = bool(self.stream.frames)  # Matroska/WebM have no count: an estimate
        self.has_audio = bool(self.container.streams.audio)
        self.timestamps: list[int] = []
        self.durations: list[int] = []
        self.skipped = 0  # frames before start_after(): an earlier run converted them
        self.finished = False
        self.frames_read = 0
        self.damaged = DamagedPackets(self.name)
        self._frames = self._decode()
        first = self._next()
        if first is None:
            raise SourceError(f"{self.name}: opened but no frame could be decoded")
        self._pending: tuple[np.ndarray, int, int] | None = first
        self.size = (int(first[0].shape[0]), int(first[0].shape[1]))

    def _decode(self) -> Iterator[Any]:
        for packet in self.container.demux(self.stream):
            try:
                yield from packet.decode()
            except av.FFmpegError as e:  # a damaged packet: the frames around it still come
                self.damaged.add(e)
        self.damaged.say_count()

    def _next(self) -> tuple[np.ndarray, int, int] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        img = bgr(frame)
        if rotation_steps(frame.rotation):
            img = np.ascontiguousarray(np.rot90(img, rotation_steps(frame.rotation)))
        default = int(round(1 / (self.rate * self.time_base))) if self.rate else 1
        pts = frame.pts if frame.pts is not None else (self.timestamps[-1] + default if self.timestamps else 0)
        return img, pts, frame.duration or default

    def start_after(self, seconds: Fraction, frames: int) -> None:
        """Continue with the first frame later than ``seconds`` (resume; the ``frames`` up to it were
        converted already): seek to the keyframe before it and drop what comes earlier."""
        target = int(seconds / self.time_base)
        self._pending = None
        self.container.seek(target, stream=self.stream, backward=True)
        self._frames = self._decode()
        item = self._next()
        if item is not None and item[1] > target:  # the seek overshot: decode from the start instead
            self.container.seek(0, stream=self.stream, backward=True)
            self._frames = self._decode()
            item = self._next()
        before = None
        while item is not None and item[1] * self.time_base <= seconds:
            before, item = item, self._next()
        self._continue_with(before, item, frames)  # frames: not those dropped above, after the keyframe only

    def resume_key(self, job: tuple[object, ...]) -> str:
        return job_key(self.path, job, "frames")

    def skip(self, frames: int) -> None:
        """Decodes them (a folder of frames holds no timestamp to seek to; decoding is quick beside the model) and
        converts only the last one, ``before``."""
        before, left = self._pending, frames - (self._pending is not None)
        for _ in range(left - 1):
            if next(self._frames, None) is None:  # the video is shorter than the frames held
                return self._continue_with(None, None, frames)
        if left > 0:
            before = self._next()
        self._continue_with(before, self._next() if before is not None else None, frames)

    def _continue_with(self, before: tuple[np.ndarray, int, int] | None, item: tuple[np.ndarray, int, int] | None,
                       frames: int) -> None:  # fmt: skip
        """Resume: ``item`` is the next frame to read, ``before`` the last one converted already."""
        if before is not None:
            self.before = before[0] if before[0].shape[:2] == self.size else cv2().resize(before[0], self.size[::-1])
        self.skipped = frames
        self._pending = item
        if item is None:
            self.finished = True

    def read(self) -> np.ndarray | None:
        item, self._pending = (self._pending, None) if self._pending is not None else (self._next(), None)
        if item is None:
            self.finished = True
            done = self.skipped + self.frames_read
            if self.frames_indexed and done < self.frame_count:
                log.warning("%s: decoded %d of %d frames (truncated or corrupt); converted what decoded",
                            self.name, done, self.frame_count)  # fmt: skip
            return None
        img, pts, duration = item
        img = fit_frame(img, self.size)
        self.timestamps.append(pts)
        self.durations.append(duration)
        self.frames_read += 1
        return img

    def close(self) -> None:
        self.container.close()


# ---- writing ---------------------------------------------------------------------------------------
def can_hold(stream: Any, fmt: str) -> bool:
    """Whether container ``fmt`` can take an audio stream unchanged (probed with FFmpeg's muxer)."""
    probe = av.open(io.BytesIO(), "w", format=fmt)
    try:
        probe.add_stream_from_template(stream)
        probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        try:
            probe.close()
        except av.FFmpegError:
            pass


# FFmpeg's layout for N channels where a source gives none (Matroska's PCM: "2 channels"); AAC takes these
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def unnamed_layout(layout: Any) -> bool:
    """Whether an audio layout is only a channel count ("2 channels"): MP4 cannot be read back with it."""
    return bool(layout.name == f"{layout.nb_channels} channels")


def silence_like(frame: Any, samples: int) -> Any:
    """``samples`` of silence in ``frame``'s format, layout and rate (what the encoder's resampler was set up for)."""
    silence = av.AudioFrame(format=frame.format.name, layout=frame.layout, samples=samples)
    for plane in silence.planes:
        plane.update(bytes(plane.buffer_size))
    silence.sample_rate = frame.sample_rate
    return silence


def why_encode_audio(stream: Any, fmt: str) -> str:
    """Why an audio stream is re-encoded to AAC for an output in container ``fmt`` ('': it is copied as it is).
    Every output is first a fragmented MP4 (the partial file), so MP4 must hold it too."""
    name, layout = stream.codec_context.codec.canonical_name, stream.codec_context.layout
    if unnamed_layout(layout):
        return "its channels come without a layout"
    if not can_hold(stream, "mp4"):
        return "MP4 cannot hold it"
    if fmt == "mp4" and name not in PLAYS_IN_MP4:
        return "many players do not play it in MP4"
    if fmt != "mp4" and not can_hold(stream, fmt):
        return f"{fmt.upper()} cannot hold it"
    return ""


class AudioTracks:
    """The source's audio streams, copied packet for packet into ``out``, or re-encoded to AAC (same channels, same
    start) where ``why_encode_audio`` says for an output of container ``fmt``; interleaved with the video by
    until(). A damaged packet is skipped, with one warning and a count, as the video's are (re-encoded: as much silence
    takes its place)."""

    def __init__(self, source: Path, out: Any, fmt: str = "mp4") -> None:
        self.container = av.open(str(source))
        self.name = source.name
        self.routes: dict[int, tuple[Any, bool]] = {}  # input index -> (output stream, re-encode)
        self.starts: dict[int, Fraction] = {}  # re-encoded streams: where their first sound is in the source
        self.samples: dict[int, int] = {}  # and how many samples each has written since
        self.fed: dict[int, int] = {}  # and how many samples each has given its encoder
        self.damaged = DamagedPackets(self.name, "audio packet")
        for s in self.container.streams.audio:
            why = why_encode_audio(s, fmt)
            if not why:
                self.routes[s.index] = (out.add_stream_from_template(s), False)
                continue
            log.warning("%s: audio %s re-encoded to AAC (%s)", source.name, s.codec_context.codec.canonical_name, why)
            channels = s.codec_context.channels
            layout = s.codec_context.layout.name if not unnamed_layout(s.codec_context.layout) else (
                DEFAULT_LAYOUTS.get(channels, "stereo"))  # fmt: skip
            self.routes[s.index] = (out.add_stream("aac", rate=s.codec_context.sample_rate or 48000,
                                                   **({"layout": layout} if channels else {})), True)  # fmt: skip
        self.out = out
        self.packets = self.container.demux(*self.container.streams.audio) if self.routes else iter(())
        self.pending: Any = None

    def until(self, seconds: Fraction | None) -> None:
        """Write every audio packet that starts before ``seconds`` (None: all that are left)."""
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    return self._flush_encoders() if seconds is None else None
            p = self.pending
            if p.dts is None:  # the demuxer's end-of-stream marker
                self.pending = None
                continue
            if seconds is not None and p.pts is not None and p.pts * p.time_base >= seconds:
                return None
            self.pending = None
            index = p.stream.index
            stream, encode = self.routes[index]
            if not encode:
                p.stream = stream
                self.out.mux(p)
                continue
            for frame in self._decoded(p):
                self._encode(frame, index, stream)

    def _encode(self, frame: Any, index: int, stream: Any) -> None:
        """Encode a decoded frame, after as much silence as the source has no sound before it (a damaged packet, a
        hole in the stream): the encoder's packets are stamped one after the other, so a gap would pull what follows
        it early."""
        at = Fraction(frame.pts) * frame.time_base if frame.pts is not None and frame.time_base else None
        if index not in self.starts:
            self.starts[index] = at or Fraction(0)
        elif at is not None:
            missing = int(round((at - self.starts[index]) * frame.sample_rate)) - self.fed.get(index, 0)
            while missing > frame.samples // 2:  # not timestamp rounding (Matroska's are whole milliseconds)
                gap = silence_like(frame, min(missing, frame.sample_rate))  # a second at a time: a long hole
                missing -= gap.samples
                self._encode(gap, index, stream)
        self.fed[index] = self.fed.get(index, 0) + frame.samples
        frame.pts = None  # the encoder re-chunks the samples: its packets are stamped in _mux_encoded
        for q in stream.encode(frame):
            self._mux_encoded(q, index)

    def _decoded(self, packet: Any) -> list[Any]:
        """The packet's sound; none for a damaged one (said once, counted; the next sound is placed in step)."""
        try:
            return list(packet.decode())
        except av.FFmpegError as e:
            self.damaged.add(e)
            return []

    def _mux_encoded(self, packet: Any, index: int) -> None:
        """Mux a re-encoded packet, stamped one after the other from where the sound starts in the source (an MPEG-PS
        file's 0.5 s, a late track): the encoder, given no timestamps, gives none."""
        rate = self.routes[index][0].codec_context.sample_rate
        start = int(round(self.starts.get(index, Fraction(0)) * rate))
        packet.time_base = Fraction(1, rate)
        packet.pts = packet.dts = start + self.samples.get(index, 0)
        self.samples[index] = self.samples.get(index, 0) + (packet.duration or 1024)
        self.out.mux(packet)

    def _flush_encoders(self) -> None:
        for index, (stream, encode) in self.routes.items():
            if encode:
                for q in stream.encode(None):
                    self._mux_encoded(q, index)
        self.damaged.say_count()

    def close(self) -> None:
        self.container.close()


@dataclass
class PriorWork:
    """Finished GOPs of an earlier run of the same job."""

    path: Path
    frames: int
    end: Fraction  # presentation time of its last frame
    last_duration: Fraction = Fraction(0)  # how long that frame shows (0 where the file does not say)


def probe_prior(path: Path, key: str, fragmented: bool) -> PriorWork | None:
    if not path.is_file():
        return None
    if fragmented:  # drop a fragment that a kill cut short
        good = complete_mp4_prefix(path)
        if good < path.stat().st_size:
            os.truncate(path, good)
    try:
        with av.open(str(path)) as c:
            if job_tag(c) != KEY_PREFIX + key or not c.streams.video:
                return None
            v = c.streams.video[0]
            timing = [(p.pts, p.duration or 0) for p in c.demux(v) if p.size and p.pts is not None]
            time_base = v.time_base or Fraction(1)
    except (av.FFmpegError, OSError):
        return None
    if not timing:
        return None
    last, duration = max(timing)
    slack = MKV_TICK / 2 if path.suffix.lower() == ".mkv" else 0  # its last frame counts as converted
    return PriorWork(path, len(timing), Fraction(last) * time_base + slack, Fraction(duration) * time_base)


def conversion_key(source: AvSource, size: tuple[int, int], settings: EncodeSettings, job: tuple[object, ...]) -> str:
    """The key a conversion of ``source`` to frames of ``size`` keeps in its output's comment tag: it resumes
    only its own work, and a batch tells its own finished outputs from another conversion's."""
    encoder = pick_encoder(settings, encoded_size(size, settings.codec), source.rate)
    return job_key(source.path, job, settings, encoder, av.__version__)


def held_key(path: Path) -> str | None:
    """The conversion key a video file holds (None: not ours, or unreadable)."""
    try:
        with av.open(str(path)) as c:
            tag = job_tag(c)
    except (av.FFmpegError, OSError):
        return None
    return tag[len(KEY_PREFIX) :] if tag.startswith(KEY_PREFIX) else None


def job_tag(container: Any) -> str:
    """The comment tag holding a conversion's job key (Matroska stores it as COMMENT)."""
    return str({k.lower(): v for k, v in container.metadata.items()}.get(KEY_TAG, ""))


def converted_here(path: Path) -> bool:
    """Whether a video file was written by a conversion of this toolkit (its job key in the comment tag)."""
    return held_key(path) is not None


def pick_encoder(s: EncodeSettings, size: tuple[int, int], rate: Fraction) -> str:
    """The first encoder of encoder_names() that takes the preset and opens here (NVENC needs an NVIDIA GPU)."""
    names = encoder_names(s)
    for name in names:
        if not name.endswith("_nvenc"):
            if s.preset in preset_choices(s.codec, "nvenc") and s.preset not in preset_choices(s.codec, "cpu"):
                raise SinkError(f"--preset {s.preset} is an NVENC preset and {name} encodes here: give one of "
                                f"{', '.join(preset_choices(s.codec, 'cpu'))}")  # fmt: skip
            return name
        if s.preset is not None and s.preset not in preset_choices(s.codec, "nvenc"):
            continue  # a CPU encoder's preset (--encoder auto)
        ctx: Any = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = size[1], size[0], "yuv420p", 1 / rate
        try:
            ctx.open()
            return name
        except av.FFmpegError as e:
            if s.encoder == "nvenc":
                raise SinkError(f"{name} cannot encode here ({av_error(e)}): use --encoder cpu (or auto)") from None
            log.info("%s not usable here (%s); encoding on the CPU", name, av_error(e))
    return names[-1]


class AvVideoWriter(Sink):
    """A video file written through PyAV; see the module docstring for crash safety and resume."""

    resumable = True

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int], fps: float, settings: EncodeSettings,
                 source: Source | None = None, job: tuple[object, ...] = (), overwrite: bool = False) -> None:  # fmt: skip
        self.path = Path(path)
        self.name = str(self.path)
        if self.path.suffix.lower() not in CONTAINERS:
            raise SinkError(f"{self.path}: unsupported video extension (use one of {', '.join(CONTAINERS)}; "
                            ".avi is written by OpenCV, without sound)")  # fmt: skip
        self.settings, self.size = settings, size
        self.source = source if isinstance(source, AvSource) else None
        self.live = bool(source is not None and source.live)
        self.frame_size = encoded_size(size, settings.codec)
        warn_padded(self.path, size, self.frame_size)
        if self.source is not None:
            self.time_base, self.rate = self.source.time_base, self.source.rate
        else:
            self.rate = Fraction(fps).limit_denominator(1001)
            self.time_base = LIVE_TIME_BASE if self.live else 1 / self.rate
        self.bitrate = parse_bitrate(settings.bitrate) if settings.bitrate else 0
        self.encoder = pick_encoder(settings, self.frame_size, self.rate)
        self.partial, self.stash = hidden(self.path, "partial"), hidden(self.path, "resume")
        self.key = conversion_key(self.source, size, settings, job) if self.source else ""
        self.frames = 0  # frames written by this run
        self.out: Any = None
        self.earlier = overwrite and self.path.is_file()  # what --overwrite replaces, once the conversion is whole
        self.prior: PriorWork | None = None
        self._others_work: list[Path] = []  # another conversion's partial files, removed once this one writes
        # before looking at partial files: another process's would be resumed or removed
        self._lock = lock_video_output(self.path)
        try:
            at_path = probe_prior(self.path, self.key, False) if self.key and not overwrite else None
            if self.path.exists() and at_path is None and not overwrite:  # resumed or complete otherwise
                waiting = probe_prior(self.partial, self.key, True)  # a stopped --overwrite run of this job
                then = (f"; {self.partial.name} holds the first {waiting.frames} frames of this conversion (a stopped "
                        "--overwrite run): --overwrite continues them" if waiting else ": --overwrite replaces it")
                raise OutputExists(f"{self.path} exists and holds no work of this conversion (another model, other "
                                   f"settings or another file){then}, or give another output")  # fmt: skip
            # an --overwrite run of this job stopped before it could replace the earlier file: continued
            held = probe_prior(self.partial, self.key, True) if self.key and self.earlier and not self.live else None
            if held is not None:
                self.prior = held
            elif overwrite or not self.key:
                self._set_aside_stale()
            else:
                self.prior = self._find_prior(at_path)
            self.resumed = self.prior.frames if self.prior else 0
            if self.prior is not None and self.source is not None:
                self.source.start_after(self.prior.end, self.prior.frames)
                if self.prior.path.suffix.lower() not in RESUMES_FROM and not self.source.finished:
                    raise WriteFailed(f"{self.path}: this stopped conversion resumes from {self.stash.name}, which "
                                      "is gone: --overwrite converts it again from its start (the file stays until "
                                      "then)")  # fmt: skip
        except BaseException:
            self._unlock()
            raise
        self._t0: float | None = None
        self._last_pts = -1
        self._last_key = -1  # pts of a live recording's last forced keyframe (-1: none yet)

    # ---- previous work -----------------------------------------------------------------------------
    def _find_prior(self, at_path: PriorWork | None) -> PriorWork | None:
        """The most frames of this job among the partial file, the resume stash and NAME (``at_path``)."""
        found = [p for p in (probe_prior(self.partial, self.key, True), probe_prior(self.stash, self.key, True),
                             at_path) if p is not None]  # fmt: skip
        best = max(found, key=lambda p: p.frames, default=None)
        for stale in (self.partial, self.stash):
            if not stale.exists() or (best is not None and best.path == stale):
                continue
            ours = next((p for p in found if p.path == stale), None)
            if ours is not None and best is not None:  # e.g. a stopped --overwrite run's, of a job NAME holds whole
                log.warning("%s: removed %s: its %d frames of this conversion are in %s, which holds %d",
                            self.path.name, stale.name, ours.frames, best.path.name, best.frames)  # fmt: skip
                stale.unlink()
            else:  # another conversion's: removed only when this run has frames to write (_open)
                self._others_work.append(stale)
        return best

    def _set_aside_stale(self) -> None:
        """No resume (--overwrite, or a camera): a partial file from a killed run is another run's work. The stash
        stays with the NAME it resumes until this run replaces NAME (a stopped run leaves both as they were)."""
        if self.partial.exists():
            if self.live:
                keep_interrupted(self.partial, self.path)
            else:
                self.partial.unlink()

    # ---- writing -----------------------------------------------------------------------------------
    def _open(self) -> None:
        for stale in self._others_work:  # a complete job that writes nothing leaves it (a rerun that had nothing to do
            # removed another job's stopped --overwrite frames)
            log.warning("%s: removed %s, frames of a conversion with other settings (model, size or encoder) that "
                        "this one cannot resume", self.path.name, stale.name)  # fmt: skip
            stale.unlink(missing_ok=True)
        self._others_work = []
        if self.prior is not None:  # said here, at the first frame left to write: a complete job resumes nothing
            log.warning("%s: resuming after frame %d (from %s)", self.path.name, self.resumed, self.prior.path.name)
            if self.prior.path == self.partial:
                os.replace(self.partial, self.stash)
                self.prior.path = self.stash
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.out = av.open(str(self.partial), "w", format="mp4", options=FRAGMENTED)
        if self.source is not None:
            self.out.metadata.update(own_tags(self.source.container.metadata))
        self.out.metadata[KEY_TAG] = KEY_PREFIX + self.key if self.key else "cyclegan-edge"
        s, codec = self.settings, CODECS[self.settings.codec]
        if self.encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner unless told: errors only
        options = encoder_options(self.encoder, s)
        if self.live:  # B-frames reorder a camera's irregular stamps, and the MP4's durations came out short
            options["bf"] = "0"
            if self.encoder.startswith(("libx265", "hevc_nvenc", "h264_nvenc", "av1_nvenc")):
                options["forced-idr"] = "1"  # a forced keyframe an IDR, where a fragment can end (x264's already is)
        vs = self.out.add_stream(self.encoder, rate=self.rate, options=options)
        vs.width, vs.height = self.frame_size[1], self.frame_size[0]
        vs.pix_fmt = codec.pix_fmt
        vs.time_base = self.time_base
        ctx = vs.codec_context
        ctx.time_base = self.time_base
        ctx.gop_size = max(1, round(GOP_SECONDS * float(self.rate)))
        if codec.pix_fmt == "yuv420p":
            tag_bt709(ctx)
        if self.bitrate:
            ctx.bit_rate = self.bitrate
        if self.encoder.startswith(("libx265", "hevc")):
            ctx.codec_tag = "hvc1"  # what Safari and browsers expect for HEVC in MP4
        self.vs = vs
        fmt = CONTAINERS[self.path.suffix.lower()]
        self.audio = AudioTracks(self.source.path, self.out, fmt) if self.source is not None and s.audio else None
        if self.prior is not None:
            self._copy_prior(self.prior)

    def _copy_prior(self, prior: PriorWork) -> None:
        with av.open(str(prior.path)) as c:
            v = c.streams.video[0]
            # MP4 stores H.264/HEVC length-prefixed; the encoder's stream expects start codes (Annex B)
            name = ANNEX_B.get(v.codec_context.codec.canonical_name)
            bsf = BitStreamFilterContext(name, in_stream=v) if name else None
            for p in c.demux(v):
                if not p.size:
                    continue
                if self.audio is not None and p.pts is not None:
                    self.audio.until(p.pts * p.time_base)
                for q in bsf.filter(p) if bsf is not None else [p]:
                    q.stream = self.vs
                    self._mux(q)

    def _mux(self, packet: Any) -> None:
        try:
            self.out.mux(packet)
        except (av.FFmpegError, OSError) as e:
            raise self._failed(e) from None

    def _failed(self, e: BaseException) -> WriteFailed:
        if not (self.resumed + self.frames and self.partial.exists()):
            return WriteFailed(f"{self.path}: cannot write ({av_error(e)})")
        # not where they are: closing moves them into NAME when it can (a full disk keeps them in the partial file)
        return WriteFailed(f"{self.path}: cannot write ({av_error(e)}); the frames written before it are kept, and a "
                           "rerun resumes them")  # fmt: skip

    def _timestamp(self, index: int, captured: float | None = None) -> tuple[int, int]:
        if self.source is not None:
            return self.source.timestamps[index], self.source.durations[index]
        if self.live:  # cameras drop frames: their timing is the clock's, when each frame was captured
            now = captured if captured is not None else time.perf_counter()
            self._t0 = now if self._t0 is None else self._t0
            pts = max(int((now - self._t0) / self.time_base), self._last_pts + 1)
            self._last_pts = pts
            return pts, max(1, round(1 / (float(self.rate) * self.time_base)))  # the last frame's, in the file
        return index, 1

    def _keyframe_due(self, pts: int) -> bool:
        """A live recording's keyframe every GOP_SECONDS of capture time: the encoder counts frames, and a camera
        that drops most of them (a slow model) got one every 6 s, all that a kill -9 loses (the file's fragments
        end at keyframes)."""
        if not self.live or (self._last_key >= 0 and (pts - self._last_key) * self.time_base < GOP_SECONDS):
            return False
        self._last_key = pts
        return True

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        if self.out is None:
            try:
                self._open()
            except (av.FFmpegError, OSError) as e:
                raise self._failed(e) from None
        frame = fit_frame(frame, self.size)
        pts, duration = self._timestamp(self.frames, captured)
        vf = av.VideoFrame.from_ndarray(pad_to(frame, self.frame_size), format="bgr24")
        if CODECS[self.settings.codec].pix_fmt == "yuv420p":
            vf = yuv420_bt709(vf)
        vf.pts, vf.duration, vf.time_base = pts, duration, self.time_base
        if self._keyframe_due(pts):
            vf.pict_type = av.video.frame.PictureType.I
        try:
            if self.audio is not None:
                self.audio.until(pts * self.time_base)
        except (av.FFmpegError, OSError) as e:
            raise self._failed(e) from None
        try:
            packets = self.vs.encode(vf)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"{self.path}: the encoder failed ({av_error(e)})") from None
        for p in packets:
            self._mux(p)
        self.frames += 1

    def last_resumed(self) -> np.ndarray | None:
        """The last frame the resumed work holds, decoded (what a viewer sees before the first new frame)."""
        if self.prior is None:
            return None
        last = None
        try:
            with av.open(str(self.prior.path)) as c:
                stream = c.streams.video[0]
                c.seek(int(self.prior.end / (stream.time_base or Fraction(1, 90000))), stream=stream, backward=True)
                for frame in c.decode(stream):
                    last = frame
        except (av.FFmpegError, OSError, IndexError) as e:
            log.warning("%s: cannot read the last frame kept (%s): --stabilize restarts at the resume", self.path.name,
                        av_error(e))  # fmt: skip
            return None
        return None if last is None else last.to_ndarray(format="bgr24")[: self.size[0], : self.size[1]]

    # ---- finishing ---------------------------------------------------------------------------------
    def _unlock(self) -> None:
        unlock_output(self.path, self._lock)
        self._lock = -1

    def close(self) -> None:
        try:
            self._close()
        finally:
            self._unlock()

    def _close(self) -> None:
        if self.out is None and (self.prior is None or self.prior.path == self.path):
            return  # nothing written, or the target already holds every frame of this job
        if self.out is None:
            self._open()
        # every frame of the source written (it reads ahead: it may have reached its end with frames in flight)
        complete = self.source is None or (self.source.finished and self.frames == len(self.source.timestamps))
        try:
            for p in self.vs.encode(None):
                self._mux(p)
            if self.audio is not None:
                self.audio.until(None if complete else self._end_time())
                self.audio.close()
            self.out.close()
        except (av.FFmpegError, OSError) as e:
            raise self._failed(e) from None
        finally:
            self.out = None
        if self.stopped and self.earlier and not self.live:  # --overwrite replaces it with a whole conversion only
            self.held_back = str(self.partial)
            return
        self._finalize(keep_for_resume=not complete and self.path.suffix.lower() not in RESUMES_FROM)

    def _end_time(self) -> Fraction:
        """Where the video written so far ends (the source is read ahead of it): a stopped job's audio ends there."""
        if self.source is not None and self.frames:
            pts, duration = self._timestamp(self.frames - 1)
            return (pts + duration) * self.time_base
        return self.prior.end + self.prior.last_duration if self.prior else Fraction(0)

    def _finalize(self, keep_for_resume: bool = False) -> None:
        """Remux the partial file into the target through a temporary file, check it, rename; ``keep_for_resume``:
        the partial file stays as the stash a rerun resumes from (the target's container cannot be resumed)."""
        expected = self.resumed + self.frames
        ext = self.path.suffix.lower()
        try:
            with atomic_path(self.path) as tmp:
                copied = remux(self.partial, tmp, CONTAINERS[ext], FINAL.get(ext, {}))
                found = packet_counts(tmp)
                if found != copied or copied[0] != expected:
                    raise self._failed(OSError(f"the file written holds {found[0]} of {expected} frames"))
        except (av.FFmpegError, OSError) as e:
            raise self._failed(e) from None
        if keep_for_resume:
            os.replace(self.partial, self.stash)
            return
        self.partial.unlink(missing_ok=True)
        self.stash.unlink(missing_ok=True)


def packet_counts(path: Path) -> tuple[int, int]:
    """(video, audio) packets in a file."""
    n = [0, 0]
    with av.open(str(path)) as c:
        for p in c.demux(*[s for s in c.streams if s.type in ("video", "audio")]):
            if p.size:
                n[p.stream.type != "video"] += 1
    return n[0], n[1]


def remux(src: Path, dst: Path, fmt: str, options: dict[str, str]) -> tuple[int, int]:
    """Copy every packet of ``src`` into ``dst`` (another container); (video, audio) packets copied."""
    n = [0, 0]
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt, options=options) as out:
        out.metadata.update(own_tags(inp.metadata))
        # opaque: the input's own codec parameters (an AV1 stream's decoder has no encoder of its name)
        kept = [s for s in inp.streams if s.type in ("video", "audio")]
        routes = {s.index: out.add_stream_from_template(s, opaque=True) for s in kept}
        for s in kept:  # the template loses the tag the encoder was given: Apple's players want hvc1 for HEVC
            if s.type == "video" and s.codec_context.codec.canonical_name == "hevc" and fmt in ("mp4", "mov"):
                routes[s.index].codec_tag = "hvc1"
        for p in inp.demux(*kept):
            if not p.size:
                continue
            n[p.stream.type != "video"] += 1
            p.stream = routes[p.stream.index]
            out.mux(p)
    return n[0], n[1]
