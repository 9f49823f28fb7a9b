"""Frame sinks named by one string each, in the spirit of jetson-inference's videoOutput.

    out.mp4 / .m4v / .mov / .mkv   a video file: PyAV (H.264 by default, audio kept, crash-safe and
                                   resumable; see av_video.py) when installed, else OpenCV (mp4v)
    out.avi                        a video file through OpenCV (MJPEG)
    frames/                        an image folder (frame_000000.png, ...)
    display://0                    a window (also what the runtime opens when it writes nothing else)
    udp://HOST:PORT                a live stream: H.264 in MPEG-TS over UDP (PyAV; see av_stream.py)
    rtp://HOST:PORT                a live stream: H.264 in MPEG-TS over RTP (PyAV's rtp_mpegts; no SDP needed)
    rtsp://SERVER:PORT/PATH        a live stream published to an RTSP server (mediamtx, ...) over TCP

``open_sink(uri, ...)`` opens any of them, as ``sources.open_source(uri)`` opens any source.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from cyclegan_edge.errors import UsageError
from cyclegan_edge.atomic import OutputBusy, check_writable, leftover_temporaries, lock_output, unlock_output
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.io import JOB_KEYWORD, png_text, read_image, write_image
from cyclegan_edge.imaging.resize import fit_frame

if TYPE_CHECKING:
    from cyclegan_edge.runtime.sources import Source

log = logging.getLogger("cyclegan_edge.runtime")

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
CODEC_NAMES = ("h264", "hevc", "av1", "mjpeg")
ENCODERS = ("auto", "cpu", "nvenc")
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")  # fmt: skip
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "default", "slow", "medium", "fast")
# --preset by codec: x264/x265 by name, SVT-AV1 by number (-2 slowest .. 13 fastest), NVENC p1 (fastest) .. p7
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "cpu": {"h264": X26X_PRESETS, "hevc": X26X_PRESETS, "av1": tuple(str(n) for n in range(-2, 14))},
    "nvenc": {"h264": NVENC_PRESETS, "hevc": NVENC_PRESETS, "av1": NVENC_PRESETS},
}


class SinkError(RuntimeError):
    pass


class SinkUriError(SinkError, UsageError):
    """An output URI that no sink takes as written (a stream without HOST:PORT, an unknown scheme): exit 2."""


class WriteFailed(SinkError):
    """The output could not be written (a full disk, a read-only folder): a batch stops there."""


class OutputLocked(SinkError):
    """Another process is writing this output now (atomic.lock_output): refused, never written around."""


class OutputExists(SinkError):
    """The output file exists and holds no work of this conversion: replaced only with --overwrite."""


@dataclass(frozen=True)
class EncodeSettings:
    """How video files are encoded (PyAV writer; the OpenCV fallback only knows mp4v/MJPEG)."""

    codec: str = "h264"  # h264 | hevc | av1 | mjpeg
    crf: int | None = None  # quality (lower is better); None: the codec's visually lossless default
    bitrate: str | None = None  # e.g. "4M": constant-ish bitrate instead of crf
    preset: str | None = None  # encoder speed/size trade-off; None: the codec's default
    encoder: str = "auto"  # auto (NVENC when it opens, else CPU) | cpu | nvenc
    audio: bool = True  # copy the source's audio


def preset_choices(codec: str, encoder: str = "auto") -> tuple[str, ...]:
    """The presets ``codec`` takes on ``encoder`` (auto: on either; NVENC when it opens, else the CPU)."""
    kinds = ("cpu", "nvenc") if encoder == "auto" else (encoder,)
    return tuple(dict.fromkeys(p for kind in kinds for p in PRESETS[kind].get(codec, ())))


def parse_bitrate(text: str) -> int:
    """'4M', '800k', '2500000' -> bits per second."""
    t = text.strip().lower()
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        raise SinkError(f"--bitrate {text}: give bits per second, e.g. 4M or 800k") from None
    if not 1000 <= value <= 10**12:  # also nan and inf
        raise SinkError(f"--bitrate {text}: out of range (give bits per second, 1k..1000G, e.g. 4M or 800k)")
    return int(value)


def encoded_size(size: tuple[int, int], codec: str = "h264") -> tuple[int, int]:
    """(h, w) the encoder gets: 4:2:0 formats (H.264, HEVC, AV1, mp4v) need even sizes; MJPEG takes any."""
    h, w = size
    return (h, w) if codec == "mjpeg" else (h + h % 2, w + w % 2)


def pad_to(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pad at the bottom/right to ``size`` by repeating the last row/column."""
    h, w = frame.shape[:2]
    if (h, w) == size:
        return frame
    return np.pad(frame, ((0, size[0] - h), (0, size[1] - w), (0, 0)), mode="edge")


def warn_padded(path: Path, size: tuple[int, int], padded: tuple[int, int]) -> None:
    if padded != size:
        log.warning("%s: %dx%d: 4:2:0 video needs even sizes, padded to %dx%d by repeating the last row/column "
                    "(--codec mjpeg keeps the exact size)", path.name, size[1], size[0], padded[1], padded[0])  # fmt: skip


class Sink:
    """write() takes a frame, a one-line status (FPS, latency; only a window shows it) and when the frame was
    captured (``time.perf_counter()``: a live recording is stamped by it, not by when the frame got through)."""

    name: str
    resumed: int = 0  # frames an earlier, interrupted run of the same job already wrote (kept)
    resumable: bool = False  # a stopped conversion into it continues where it stopped (PyAV's writer)
    stopped: bool = False  # set by the pipeline (mark_stopped) before close() when a stop or an error cut it short
    held_back: str = ""  # where a stopped conversion's frames went instead of replacing an earlier output
    interrupted: threading.Event | None = None  # set at Ctrl-C (interrupt_on): a write that waits may stop early

    def interrupt_on(self, event: threading.Event) -> None:
        self.interrupted = event

    def mark_stopped(self) -> None:
        self.stopped = True

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        raise NotImplementedError

    def last_resumed(self) -> np.ndarray | None:
        """The last of the ``resumed`` frames as the output holds it (None where it cannot say)."""
        return None

    def close(self) -> None:
        pass

    @property
    def quit_requested(self) -> bool:
        return False


class VideoFileSink(Sink):
    """OpenCV's VideoWriter (the fallback without PyAV; .avi). Writes to a hidden temporary file beside
    the target and renames it on close, so the target path only ever holds a finalized, playable file
    (also after Ctrl-C or an error). An earlier file there (--overwrite) is replaced by a whole conversion only: a
    stopped one stays in the partial file (``held_back``), which the next run starts again."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int],
                 gstreamer: bool = False, live: bool = False) -> None:  # fmt: skip
        self.path = Path(path)
        self.name = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ext = self.path.suffix.lower()
        if ext not in FOURCC:
            raise SinkError(f"{self.path}: unsupported video extension (use one of {', '.join(FOURCC)})")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{ext}")
        self._lock = lock_video_output(self.path)  # a second writer would write into this one's partial file
        self.live, self.earlier = live, self.path.exists()
        if live and self.tmp.exists():  # a recording a killed run left: nothing records it again
            keep_interrupted(self.tmp, self.path)
        try:
            self._open(fps, size, gstreamer)
        except BaseException:
            unlock_output(self.path, self._lock)
            raise

    def _open(self, fps: float, size: tuple[int, int], gstreamer: bool) -> None:
        ext = self.path.suffix.lower()
        self.frame_size = encoded_size(size)  # OpenCV's mp4v would crop an odd size by one
        warn_padded(self.path, size, self.frame_size)
        h, w = self.frame_size
        if gstreamer:  # Jetson: the hardware H.264 encoder through JetPack's GStreamer-enabled OpenCV
            pipeline = jetson_h264_pipeline(self.tmp)
            self.writer = cv2().VideoWriter(pipeline, cv2().CAP_GSTREAMER, 0, fps, (w, h))
        else:
            self.writer = cv2().VideoWriter(str(self.tmp), cv2().VideoWriter_fourcc(*FOURCC[ext]), fps, (w, h))
        if not self.writer.isOpened():
            try:  # the writer says only that it failed: a folder it cannot write is the likelier reason
                check_writable(self.tmp)
            except OSError as e:
                raise SinkError(f"{self.path}: cannot write ({e.strerror or e})") from None
            raise SinkError(f"{self.path}: OpenCV cannot write this video format here")
        self.size, self.frames = size, 0

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        frame = fit_frame(frame, self.size)
        self.writer.write(pad_to(frame, self.frame_size))
        self.frames += 1

    def close(self) -> None:
        try:
            self._close()
        finally:
            unlock_output(self.path, self._lock)
            self._lock = -1

    def _close(self) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return
        cap = cv2().VideoCapture(str(self.tmp))  # the writer reports nothing: check what it wrote
        found = int(cap.get(cv2().CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if found != self.frames:
            raise SinkError(f"{self.path}: the written file holds {found} of {self.frames} frames (disk full?)")
        if self.stopped and self.earlier and not self.live:
            self.held_back = str(self.tmp)
            return
        os.replace(self.tmp, self.path)


def lock_video_output(path: Path, shown: Path | None = None) -> int:
    """``lock_output`` for a video writer (or a folder of frames, ``shown``, locked by a ``path`` inside it): another
    process on it is OutputLocked, a folder where the lock cannot be made is WriteFailed naming the output."""
    try:
        fd = lock_output(path, shown=shown)
    except OutputBusy as e:
        raise OutputLocked(str(e)) from None
    except OSError as e:
        raise WriteFailed(f"{shown or path}: cannot write ({e.strerror or e})") from None
    if shown is None and fd >= 0:  # the lock's holder owns them: a kill -9 in the final remux left a video's worth
        for stale in leftover_temporaries(path):
            with contextlib.suppress(OSError):
                stale.unlink()
    return fd


def holds_video(path: Path) -> bool:
    """Whether ``path`` may hold a frame (a recording killed before its first keyframe's fragment was written holds
    none: an empty file, or an MP4's headers alone). A file PyAV cannot open is kept when it may hold frames (an MP4
    with media data but no index, which repair tools recover); without PyAV, any file but an empty one is kept."""
    if path.stat().st_size == 0:
        return False
    try:
        import av
    except ImportError:
        return True
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.video) and any(p.size for p in c.demux(c.streams.video[0]))
    except (av.FFmpegError, OSError):
        return path.suffix.lower() not in (".mp4", ".m4v", ".mov") or mp4_has_media_data(path)


def mp4_boxes(path: Path) -> Iterator[tuple[bytes, int, int, int]]:
    """An MP4/MOV file's top-level boxes as (type, offset, declared size, header size), box headers alone read. The
    declared size may run past the file's end (a box a kill cut short), or be 0 (to the end: the last box). Stops
    at a header that is not whole, or declares less than itself."""
    size, pos = path.stat().st_size, 0
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            n, kind, header = int.from_bytes(head[:4], "big"), head[4:8], 8
            if n == 1:  # a 64-bit size follows
                if len(head) < 16:
                    return
                n, header = int.from_bytes(head[8:16], "big"), 16
            if n and n < header:
                return
            yield kind, pos, n, header
            if not n:
                return
            pos += n


def mp4_has_media_data(path: Path) -> bool:
    """Whether an MP4/MOV file has a top-level ``mdat`` box with something in it."""
    size = path.stat().st_size
    boxes = mp4_boxes(path)
    return any(kind == b"mdat" and min(n or size - pos, size - pos) > header for kind, pos, n, header in boxes)


def keep_interrupted(partial: Path, path: Path) -> Path | None:
    """A live recording a killed run left in ``partial``, kept beside ``path`` as NAME.interrupted[-N].EXT (never
    over an earlier one): a camera's frames cannot be recorded again. One that holds no frame is removed (None)."""
    if not holds_video(partial):
        partial.unlink()
        log.warning("%s: removed %s, which a killed run left before writing a frame into it", path.name, partial.name)
        return None
    ext = partial.suffix
    kept = path.with_name(f"{path.stem}.interrupted{ext}")
    for n in range(2, 1000):
        if not kept.exists():
            break
        kept = path.with_name(f"{path.stem}.interrupted-{n}{ext}")
    os.replace(partial, kept)
    log.warning("%s: kept the recording a killed run left as %s", path.name, kept.name)
    return kept


def jetson_h264_pipeline(path: Path, bitrate: int = 8_000_000) -> str:
    """GStreamer: BGR frames from OpenCV -> Jetson's NVENC (nvv4l2h264enc) -> MP4."""
    return (
        "appsrc ! video/x-raw, format=BGR ! videoconvert ! video/x-raw, format=BGRx ! nvvidconv ! "
        f"video/x-raw(memory:NVMM), format=NV12 ! nvv4l2h264enc bitrate={bitrate} insert-sps-pps=true ! "
        f"h264parse ! qtmux ! filesink location={path}"
    )


def has_jetson_encoder() -> bool:
    info = cv2().getBuildInformation()
    return "GStreamer:                   YES" in info and Path("/etc/nv_tegra_release").exists()


def open_video_file(path: Path, fps: float, size: tuple[int, int], settings: EncodeSettings,
                    source: Source | None = None, job: tuple[object, ...] = (), overwrite: bool = False) -> Sink:  # fmt: skip
    """PyAV's writer when installed (and not .avi), else OpenCV's (saying what is lost)."""
    from cyclegan_edge.runtime.sources import pyav

    av_video = pyav() if path.suffix.lower() != ".avi" else None
    if av_video is not None:
        try:
            sink: Sink = av_video.AvVideoWriter(path, size, fps, settings, source, job, overwrite)
            return sink
        except (OutputExists, OutputLocked, WriteFailed):  # not the encoder's fault: another writer would fare no better
            raise
        except SinkError:
            if not (settings.encoder == "nvenc" and has_jetson_encoder()):
                raise
    if settings.encoder == "nvenc" and has_jetson_encoder():
        log.warning("%s: Jetson hardware H.264 through GStreamer: no audio, no resume", path.name)
        return VideoFileSink(path, fps, size, gstreamer=True, live=bool(source and source.live))
    written = ("h264", "mjpeg") if FOURCC.get(path.suffix.lower()) == "MJPG" else ("h264",)  # h264: the default
    if settings.codec not in written or (settings.crf, settings.bitrate, settings.preset) != (None, None, None) or (
            settings.encoder == "nvenc"):  # fmt: skip
        log.warning("%s: OpenCV's writer ignores --codec/--crf/--bitrate/--preset/--encoder", path.name)
    if path.suffix.lower() == ".avi" and settings.audio and source is not None and source.has_audio:
        log.warning("%s: an .avi is written by OpenCV as MJPEG, without the source's sound (.mp4, .mov or .mkv "
                    "keep it)", path.name)  # fmt: skip
    return VideoFileSink(path, fps, size, live=bool(source and source.live))


DISPLAY_SCHEME = "display://"
STREAM_OUTPUT_SCHEMES = ("udp", "rtp", "rtsp")
# what plays each stream on the receiving machine (VLC: vlc udp://@:PORT, vlc rtp://@:PORT, vlc URI for RTSP)
PLAYERS = {"udp": "ffplay -fflags nobuffer udp://@:{port} (on {host})",
           "rtp": "ffplay -fflags nobuffer rtp://0.0.0.0:{port} (on {host})",
           "rtsp": "ffplay -fflags nobuffer -rtsp_transport tcp {uri}"}  # fmt: skip
RTSP_PORT = 554


def is_display(uri: str) -> bool:
    return uri.startswith(DISPLAY_SCHEME)


def is_stream_output(uri: str) -> bool:
    """udp://, rtp:// or rtsp://...: a live network stream (like a window: nothing to resume, no file)."""
    return "://" in uri and uri.split("://")[0].lower() in STREAM_OUTPUT_SCHEMES


def stream_address(uri: str) -> tuple[str, str, int]:
    """(scheme, host, port) of udp://HOST:PORT, rtp://HOST:PORT or rtsp://SERVER[:PORT]/PATH; SinkError else."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (RTSP_PORT if scheme == "rtsp" else None)
    except ValueError:
        port = None
    if scheme == "rtsp" and not (parts.hostname and port and parts.path.strip("/")):
        raise SinkUriError(f"{uri}: give rtsp://SERVER:PORT/PATH (an RTSP server, e.g. mediamtx, that takes "
                           "publishers)")  # fmt: skip
    if not parts.hostname or not port:
        raise SinkUriError(f"{uri}: give {scheme}://HOST:PORT (HOST the receiver, PORT 1..65535)")
    if scheme == "rtp" and port == 65535:  # FFmpeg fails at the first frame, with "Invalid argument"
        raise SinkUriError(f"{uri}: RTP sends RTCP on PORT+1: give a PORT below 65535")
    return scheme, parts.hostname, port


# a multicast group is no machine: any receiver on the network joins it by its address
GROUP_PLAYERS = {"udp": "ffplay -fflags nobuffer udp://@{host}:{port} (on any machine of the network)",
                 "rtp": "ffplay -fflags nobuffer rtp://{host}:{port} (on any machine of the network)"}  # fmt: skip


def play_command(uri: str) -> str:
    """What plays the stream ``uri``, and where."""
    scheme, host, port = stream_address(uri)
    try:
        group = ipaddress.ip_address(host.strip("[]")).is_multicast
    except ValueError:  # a name
        group = False
    players = GROUP_PLAYERS if group and scheme in GROUP_PLAYERS else PLAYERS
    return players[scheme].format(port=port, host=f"[{host}]" if ":" in host else host, uri=uri)  # IPv6 in brackets


def check_sink_uri(uri: str) -> None:
    """SinkError, before anything is opened, for a URI no sink here takes: unknown schemes, display://X,
    a stream without HOST:PORT."""
    if is_display(uri):
        if not uri[len(DISPLAY_SCHEME) :].isdigit():
            raise SinkUriError(f"{uri}: give display://N, N a number (display://0: a window)")
    elif is_stream_output(uri):
        stream_address(uri)
    elif "://" in uri:
        raise SinkUriError(f"{uri}: unknown output: give a video file, a folder, display://N, udp://HOST:PORT, "
                        "rtp://HOST:PORT or rtsp://SERVER:PORT/PATH")  # fmt: skip


def open_sink(uri: str, fps: float, size: tuple[int, int], settings: EncodeSettings | None = None,
              source: Source | None = None, job: tuple[object, ...] = (), overwrite: bool = False) -> Sink:  # fmt: skip
    """The sink a string names: ``display://N`` a window, ``udp://``/``rtp://``/``rtsp://`` a live stream, else a
    video file or image folder (open_output)."""
    check_sink_uri(uri)
    if is_stream_output(uri):
        return open_network_output(uri, fps, size, settings or EncodeSettings(), source)
    if is_display(uri):
        if not display_available():
            raise SinkError(f"{uri}: no window can open here (no display, or an OpenCV without GUI): "
                            "give a video file or a folder instead")  # fmt: skip
        return WindowSink()
    return open_output(uri, fps, size, settings, source, job, overwrite)


def open_output(uri: str, fps: float, size: tuple[int, int], settings: EncodeSettings | None = None,
                source: Source | None = None, job: tuple[object, ...] = (), overwrite: bool = False) -> Sink:  # fmt: skip
    """The file sinks of open_sink: a video file by its extension, else an image folder."""
    if "://" in uri:
        check_sink_uri(uri)
        raise SinkError(f"{uri}: a window or a stream is not a file: open it with open_sink")
    path = Path(uri)
    if not path.suffix:
        return ImageFolderSink(path, overwrite=overwrite, live=bool(source and source.live), source=source, job=job,
                               sound=settings is None or settings.audio)  # fmt: skip
    return open_video_file(path, fps, size, settings or EncodeSettings(), source, job, overwrite)


STREAM_ENCODER = "libx264"


def check_stream_settings(uri: str, settings: EncodeSettings) -> None:
    """SinkError for encoder settings a stream cannot take (said before the model loads and the source opens)."""
    if settings.codec != "h264":
        raise SinkError(f"{uri}: streams are H.264 (what every player takes): drop --codec {settings.codec}")
    if settings.encoder == "nvenc":
        raise SinkError(f"{uri}: streams encode with {STREAM_ENCODER} on the CPU: drop --encoder nvenc")


def open_network_output(uri: str, fps: float, size: tuple[int, int], settings: EncodeSettings,
                source: Source | None = None) -> Sink:  # fmt: skip
    """A udp://, rtp:// or rtsp:// stream; streams go through PyAV only (OpenCV's writer cannot mux to the network)."""
    try:
        from cyclegan_edge.runtime import av_stream
    except ImportError as e:
        raise SinkError(f"{uri}: streaming needs PyAV, which is not importable here ({e}): pip install av") from None
    return av_stream.AvStreamSink(uri, size, fps, settings, source)


FRAMES_LOCK = "frames"  # FOLDER/.frames.lock: the lock of a folder of frames (lock_output's name)


def frame_file(index: int, ext: str = ".png") -> str:
    """The name of a folder of frames' ``index``-th frame (from 0)."""
    return f"frame_{index:06d}{ext}"


class ImageFolderSink(Sink):
    """Frames as FOLDER/frame_NNNNNN.EXT. Frames there from before (--overwrite) are replaced by a whole
    conversion only, as a video file is: the new ones go to FOLDER/.replacing/ (a camera's: .recording/) and take
    the old ones' place at the end; a stopped file conversion leaves the old ones as they were (its own held back
    in .replacing). A camera's stop is its end. A video's frames name their conversion (``Source.resume_key``, in
    each PNG): a stopped one continues where it stopped (in .replacing too, with --overwrite again), and frames of
    another are OutputExists (--overwrite replaces them).
    ``sound``: say that the source's sound is not kept (False: --no-audio asked for that)."""

    def __init__(self, folder: str | os.PathLike[str], ext: str = ".png", overwrite: bool = False,
                 live: bool = False, source: Source | None = None, job: tuple[object, ...] = (),
                 sound: bool = True) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.ext, self.frames, self.live = ext, 0, live
        self.key = source.resume_key(job) if source is not None and job and ext == ".png" and not live else ""
        self.drops_sound = bool(source and source.has_audio) and sound
        self.resumable = bool(self.key)
        self._made = not self.folder.exists()  # removed again when it ends empty
        # the lock inside the folder: its parent may not be writable, and "." or ".." has no name to put one beside
        self._lock = lock_video_output(self.folder / FRAMES_LOCK, shown=self.folder)
        try:
            held = sorted(self.folder.glob("frame_*"))  # listed once: a long video's folder holds 100,000s
            self.earlier = held if overwrite else []
            if held and not (self.key or overwrite):
                raise OutputExists(f"{self.folder} holds frames already: --overwrite replaces them, or give another "
                                   "folder")  # fmt: skip
            # a camera's frames go to .recording: a killed recording left there is kept (it cannot be had again); a
            # file conversion's to .replacing, which the next --overwrite run continues if they are its own
            self.into = self.folder / (".recording" if live else ".replacing") if self.earlier else self.folder
            replacing = sorted((self.folder / ".replacing").glob("frame_*")) if self.key and self.earlier else []
            if self.key and not overwrite:
                self.resumed = self._held_frames(self.folder, {p.name for p in held})
            elif replacing:  # another conversion's half is started again: only a whole one replaces the frames
                self.resumed = self._held_frames(self.into, {p.name for p in replacing}, strict=False)
            if self.resumed:
                assert source is not None
                log.info("%s: passing over the %d frames it holds from a stopped run", self.into, self.resumed)
                source.skip(self.resumed)
            if not (replacing and self.resumed):
                shutil.rmtree(self.folder / ".replacing", ignore_errors=True)
            if (self.folder / ".recording").is_dir():
                kept = next(self.folder / f"interrupted{n}" for n in ("", *range(2, 10**6))
                            if not (self.folder / f"interrupted{n}").exists())  # fmt: skip
                os.replace(self.folder / ".recording", kept)
                log.warning("%s: kept the recording a killed run left as %s", self.folder, kept)
        except BaseException:
            self._unlock()
            raise

    def _held_frames(self, folder: Path, held: set[str], strict: bool = True) -> int:
        """How many frames of this conversion ``folder`` holds (``held``: their names) from a stopped run (0: none;
        OutputExists where it holds others, or not in one unbroken run from frame 0, unless not ``strict``: 0)."""
        ours = held == {frame_file(i, self.ext) for i in range(len(held))} and all(
            png_text(folder / frame_file(i, self.ext), JOB_KEYWORD) == self.key for i in {0, len(held) - 1})
        if not (ours or strict):
            return 0
        if held and not ours:
            raise OutputExists(f"{self.folder} holds frames of another conversion (another model, other settings or "
                               "another video): --overwrite replaces them, or give another folder")  # fmt: skip
        return len(held)

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        if not self.frames:  # said at the first frame left to write: a complete conversion writes nothing
            if self.drops_sound:
                log.warning("%s: a folder of frames holds no sound: the source's is not kept (.mp4, .mov or .mkv "
                            "keep it)", self.folder.name)  # fmt: skip
            if self.resumed:
                log.warning("%s: resuming after frame %d", self.folder.name, self.resumed)
        write_image(self.into / frame_file(self.resumed + self.frames, self.ext), frame, job=self.key)
        self.frames += 1

    def last_resumed(self) -> np.ndarray | None:
        return read_image(self.into / frame_file(self.resumed - 1, self.ext)) if self.resumed else None

    def close(self) -> None:
        try:
            if self.into == self.folder or not (self.frames or self.resumed):
                return
            if self.stopped and not self.live:
                self.held_back = str(self.into)  # the next --overwrite run continues it where it is resumable
                return
            for old in self.earlier:
                old.unlink(missing_ok=True)
            for new in sorted(self.into.glob("frame_*")):  # not a temporary a kill left there
                os.replace(new, self.folder / new.name)
            shutil.rmtree(self.into)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        unlock_output(self.folder / FRAMES_LOCK, self._lock)
        self._lock = -1
        if self._made:
            with contextlib.suppress(OSError):  # not empty: it holds frames
                self.folder.rmdir()


def display_available() -> bool:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2().getBuildInformation()
    return any(f"{gui}:" in info and "NO" not in info.split(f"{gui}:")[1].split("\n")[0]
               for gui in ("GTK", "GTK+", "QT", "Win32 UI", "Cocoa"))  # fmt: skip


class WindowSink(Sink):
    """cv2.imshow; 'q' or Esc in the window asks the pipeline to stop."""

    def __init__(self, title: str = "cyclegan-edge") -> None:
        self.name, self.title, self._quit = "window", title, False
        cv2().namedWindow(title, cv2().WINDOW_NORMAL)

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        if status:
            frame = frame.copy()
            c = cv2()
            (w, h), base = c.getTextSize(status, c.FONT_HERSHEY_SIMPLEX, 0.6, 1)
            c.rectangle(frame, (4, 4), (12 + w, 12 + h + base), (0, 0, 0), -1)  # readable on any image
            c.putText(frame, status, (8, 8 + h), c.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, c.LINE_AA)
        cv2().imshow(self.title, frame)
        if cv2().waitKey(1) & 0xFF in (ord("q"), 27):
            self._quit = True

    @property
    def quit_requested(self) -> bool:
        return self._quit

    def close(self) -> None:
        cv2().destroyWindow(self.title)


class MultiSink(Sink):
    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.name = " + ".join(s.name for s in sinks)

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        for s in self.sinks:
            s.write(frame, status, captured)

    @property
    def quit_requested(self) -> bool:
        return any(s.quit_requested for s in self.sinks)

    @property
    def resumable(self) -> bool:  # type: ignore[override]
        return any(s.resumable for s in self.sinks)

    @property
    def resumed(self) -> int:  # type: ignore[override]
        return max((s.resumed for s in self.sinks), default=0)

    @property
    def held_back(self) -> str:  # type: ignore[override]
        return next((s.held_back for s in self.sinks if s.held_back), "")

    def last_resumed(self) -> np.ndarray | None:
        return next((f for f in (s.last_resumed() for s in self.sinks if s.resumed) if f is not None), None)

    def interrupt_on(self, event: threading.Event) -> None:
        for s in self.sinks:
            s.interrupt_on(event)

    def mark_stopped(self) -> None:
        for s in self.sinks:
            s.mark_stopped()

    def close(self) -> None:
        """Every sink closed, the first failure raised after: a stream that fails to close must not leave the
        recording beside it in its partial file."""
        failures = []
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:
                failures.append(e)
        if failures:
            raise failures[0]


class MemorySink(Sink):
    """Keeps every frame in a list (for the Python API and for checking a run)."""

    def __init__(self) -> None:
        self.name = "memory"
        self.frames_list: list[np.ndarray] = []

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        self.frames_list.append(frame.copy())
