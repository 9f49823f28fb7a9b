"""Frame sources named by one string each, in the spirit of jetson-inference's videoSource.

    0, /dev/video0           a V4L2/USB camera (live)
    csi://0                  a Jetson CSI camera through GStreamer's nvarguscamerasrc (live)
    rtsp://host/stream       a network stream (live)
    test://?fps=60&size=320x240   a synthetic live camera (moving pattern), for trying things out
    clip.mp4                 a video file (lossless: every frame, in order; PyAV when installed, else OpenCV)

Three more kinds name files rather than a frame stream; ``parse_source`` tells them apart and the runtime
hands them to the batch converter (batch.py) instead of ``open_source``:

    photo.jpg                one image file
    photos/                  a folder: every video and image in it, recursively
    'photos/**/*.jpg'        a glob (quoted, so that Python expands it: ``**`` descends into folders)
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from cyclegan_edge.errors import UsageError, call_interruptibly
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.files import IMAGE_EXTENSIONS
from cyclegan_edge.imaging.io import c_stderr_lines
from cyclegan_edge.imaging.resize import fit_frame

log = logging.getLogger("cyclegan_edge.runtime")


class SourceError(RuntimeError):
    """A source that cannot be opened or was lost; one line naming it."""


class SourceUriError(SourceError, UsageError):
    """An input URI that no source takes as written (a receiver without its port, test:// parameters): the command
    line is wrong (exit 2)."""


FILE_KINDS = ("image", "folder", "glob")  # not frame streams: converted file by file (batch.py)
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # camera | csi | stream | test | file (a video) | image | folder | glob
    target: str
    live: bool

    @property
    def is_stream(self) -> bool:
        """Frames that open_source reads, as opposed to files that the batch converter translates one by one."""
        return self.kind not in FILE_KINDS


# network sources OpenCV's FFmpeg opens (udp/rtp/srt: what the runtime's own stream output sends)
STREAM_SOURCE_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "rtp://", "srt://")


def parse_source(uri: str) -> SourceSpec:
    u = uri.strip()
    scheme, sep, rest = u.partition("://")
    if sep and scheme.isalpha():  # schemes are case-insensitive (RTSP://cam was read as a file name)
        u = f"{scheme.lower()}://{rest}"
    if u.isdigit():
        return SourceSpec("camera", u, True)
    if u.startswith("/dev/video"):
        return SourceSpec("camera", u, True)
    if u.startswith("csi://"):
        return SourceSpec("csi", u[len("csi://") :] or "0", True)
    if u.startswith(STREAM_SOURCE_PREFIXES):
        return SourceSpec("stream", u, True)
    if u.startswith("test://"):
        return SourceSpec("test", u, True)
    return SourceSpec(file_kind(u), u, False)


def file_kind(path: str) -> str:
    """folder (an existing one, or any path ending in a slash), glob, image or file (a video), by the name and
    what is on disk: a file whose name holds ``*``, ``?`` or ``[`` is still that file."""
    p = Path(path)
    if p.is_dir() or path.endswith(("/", os.sep)):
        return "folder"
    if any(c in path for c in GLOB_CHARS) and not p.exists():
        return "glob"
    return "image" if p.suffix.lower() in IMAGE_EXTENSIONS else "file"


def glob_root(pattern: str) -> Path:
    """The folder a glob's matches are named relative to: its leading parts without wildcards."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARS)), len(parts) - 1)
    return Path(*parts[:fixed]) if fixed else Path(".")


def csi_pipeline(sensor: str, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
        f"framerate={fps}/1 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
        "appsink drop=true max-buffers=1"
    )


class Source:
    """read() -> BGR frame or None at the end. Live sources may skip frames; files never do."""

    name: str
    live: bool
    fps: float
    size: tuple[int, int]  # (height, width)
    frame_count: int  # 0 when unknown (live)
    frames_indexed: bool = False  # frame_count is the container's own count, not an estimate from the duration
    finished: bool = False  # no frame left (read() returned None, or a resume found the output complete)
    has_audio: bool = False  # sound a video writer could copy
    before: np.ndarray | None = None  # a resumed file's frame before the first one read (seeds --stabilize)
    stopping: threading.Event | None = None  # set when its reader stops (stop_on): a read that retries gives up

    def stop_on(self, event: threading.Event) -> None:
        self.stopping = event

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def resume_key(self, job: tuple[object, ...]) -> str:
        """What names this source's frames converted by ``job``, kept in each frame of a folder so that a rerun
        continues only its own work (``skip``); '' where this source cannot pass over frames (a camera, OpenCV)."""
        return ""

    def skip(self, frames: int) -> None:
        """Pass over the first ``frames`` frames: an output holds them from a stopped run (see ``resume_key``)."""
        raise NotImplementedError

    def captured_at(self, now: float) -> float:
        """When the frame read last was captured (``time.perf_counter()``), given when read() returned it."""
        return now

    def close(self) -> None:
        pass


FFMPEG_LOG = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")  # "[tcp @ 0x55e2...] Connection to ... refused"


def ffmpeg_reason(line: str) -> str:
    """An FFmpeg log line less its ``[component @ 0x...]`` prefix, a URL's query (``?timeout=0``) and its
    credentials (``user:password@``)."""
    text = FFMPEG_LOG.sub("", line.strip())
    text = re.sub(r"(\w+://)[^/\s@]+@", r"\1", text)
    return re.sub(r"(\w+://[^\s?]+)\?\S*", r"\1", text)


STREAM_OPEN_TIMEOUT_S = 15.0  # longer than the 10 s between keyframes of x264 at 25 fps (a stream opens on one)
STREAM_READ_TIMEOUT_S = 5.0  # a stream that has sent nothing for this long has ended
LISTENING_SCHEMES = ("udp://", "rtp://")  # the receiver binds a port and waits: its sender may start later


def ran_out(started: float, timeout_s: float) -> bool:
    """Whether a wait begun at ``started`` (``time.monotonic()``) ended on its timeout rather than on an answer or an
    error: FFmpeg says only "Invalid data" or "Immediate exit requested" then."""
    return time.monotonic() - started >= 0.9 * timeout_s


def ffmpeg_with_timeouts(url: str) -> Callable[[], Any] | None:
    """An opener through OpenCV's FFmpeg with our timeouts (its own default waits 30 s), or None where this OpenCV
    has no FFmpeg or predates the timeouts (4.5.4; JetPack 5 has 4.5.4, its GStreamer keeps its own timeouts)."""
    c = cv2()
    registry = getattr(c, "videoio_registry", None)
    props = [getattr(c, name, None) for name in ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC")]
    if registry is None or None in props or not registry.hasBackend(c.CAP_FFMPEG):
        return None
    ms = [props[0], int(STREAM_OPEN_TIMEOUT_S * 1000), props[1], int(STREAM_READ_TIMEOUT_S * 1000)]
    return functools.partial(c.VideoCapture, url, c.CAP_FFMPEG, ms)


def check_receiver_port(url: str, name: str) -> None:
    """SourceError for a receiver (udp://, rtp://) without a port it can listen on: FFmpeg would bind a random
    port (none given) or the port modulo 65536 (over 65535), and wait there for a sender that never comes."""
    if not url.startswith(LISTENING_SCHEMES):
        return
    scheme = url.split(":", 1)[0]
    try:
        port = urlparse(url).port
    except ValueError:
        port = None
    if not port:
        raise SourceUriError(f"{name}: give {scheme}://HOST:PORT (the port this receiver listens on, 1..65535)")
    if scheme == "rtp" and port == 65535:
        raise SourceUriError(f"{name}: RTP takes PORT+1 for RTCP: give a PORT below 65535")


def open_network_input(url: str, name: str) -> tuple[Any, bool]:
    """OpenCV's VideoCapture of a network stream, and whether our timeouts hold (``ffmpeg_with_timeouts``). A
    receiver (udp://, rtp://) waits for its sender as long as it takes, saying so once; a server that does not
    answer is one line. Ctrl-C acts at once, not when FFmpeg gives up. FFmpeg prints why it failed (to the C
    stderr), which becomes part of the line. What FFmpeg refuses at once, any other backend may still open."""
    check_receiver_port(url, name)
    opener, plain = ffmpeg_with_timeouts(url), functools.partial(cv2().VideoCapture, url)
    if opener is None:
        return call_interruptibly(plain), False
    waiting = False
    while True:
        t = time.monotonic()
        with c_stderr_lines() as said:
            cap = call_interruptibly(opener)
        if cap.isOpened():
            if said:
                print("\n".join(said), file=sys.stderr)
            return cap, True
        silent = ran_out(t, STREAM_OPEN_TIMEOUT_S)
        if silent and url.startswith(LISTENING_SCHEMES):
            if not waiting:
                log.warning("%s: nothing decodable received yet; waiting for the sender (Ctrl-C stops)", name)
                waiting = True
            continue
        if silent:
            raise SourceError(f"{name}: no answer in {STREAM_OPEN_TIMEOUT_S:.0f} s (is the server serving it?)")
        with c_stderr_lines() as also:  # GStreamer, say, for a protocol this FFmpeg lacks
            other = call_interruptibly(plain)
        if other.isOpened():
            return other, False
        ffmpeg = [ln for ln in said if FFMPEG_LOG.match(ln.strip())]
        if ffmpeg:
            raise SourceError(f"{name}: cannot open this stream ({ffmpeg_reason(ffmpeg[-1])})")
        if said or also:
            print("\n".join(said + also), file=sys.stderr)
        return other, False


class CaptureSource(Source):
    """Anything OpenCV's VideoCapture opens: files, cameras, streams, GStreamer pipelines."""

    MAX_FAILED_READS = 30  # a live source that fails this many reads in a row is gone

    def __init__(self, spec: SourceSpec, name: str) -> None:
        c = cv2()
        self.name, self.live, self.kind = name, spec.live, spec.kind
        self.timed = False  # a stream read under our timeouts (open_network_input)
        self._flushing = False  # a read waited out the timeout: the frames left are the decoder's (captured_at)
        self._last_captured: float | None = None
        if spec.kind == "file":
            if not Path(spec.target).is_file():
                raise SourceError(f"{name}: no such file")
            cap = c.VideoCapture(spec.target)
        elif spec.kind == "camera":
            target: int | str = int(spec.target) if spec.target.isdigit() else spec.target
            cap = c.VideoCapture(target)
        elif spec.kind == "csi":
            if "GStreamer:                   YES" not in c.getBuildInformation():
                raise SourceError(f"{name}: this OpenCV has no GStreamer (on Jetson use JetPack's python3-opencv)")
            cap = c.VideoCapture(csi_pipeline(spec.target), c.CAP_GSTREAMER)
        else:
            cap, self.timed = open_network_input(spec.target, name)
        if not cap.isOpened():
            what = {"camera": "camera", "csi": "CSI camera"}.get(spec.kind, "source")
            raise SourceError(f"{name}: cannot open this {what}" + (" (not connected, or in use by another program?)"
                                                                   if what != "source" else ""))  # fmt: skip
        self.cap = cap
        self.fps = float(cap.get(c.CAP_PROP_FPS)) or 30.0
        self.frame_count = int(cap.get(c.CAP_PROP_FRAME_COUNT)) if not spec.live else 0
        self.frames_read = 0
        first = self._read_raw()
        if first is None:
            raise SourceError(f"{name}: opened but no frame could be decoded")
        self._pending: np.ndarray | None = first
        self.size = (int(first.shape[0]), int(first.shape[1]))

    def _read_raw(self) -> np.ndarray | None:
        failures = 0
        while True:
            t = time.monotonic()
            ok, frame = self.cap.read()
            if self.timed and ran_out(t, STREAM_READ_TIMEOUT_S):
                self._flushing = True  # the stream has gone quiet: what comes now is the decoder's last frames
            if ok and frame is not None:
                return frame
            if not self.live:
                return None
            if self.kind == "stream":
                if self.frames_read:  # else it never delivered: "opened but no frame could be decoded"
                    self._stream_ended()
                return None
            failures += 1
            if self.stopping is not None and self.stopping.is_set():  # its reader has stopped: no more retries
                return None
            if failures >= self.MAX_FAILED_READS:
                raise SourceError(f"{self.name}: the source stopped delivering frames (disconnected?)")
            time.sleep(0.01)

    def captured_at(self, now: float) -> float:
        """A stream's last frames come out of the decoder only when the read that waits for more times out: they
        were received a frame interval apart, not seconds later (a recording ended on a 5 s frozen frame)."""
        if self._flushing and self._last_captured is not None:
            now = self._last_captured + 1 / self.fps
        self._last_captured = now
        return now

    def _stream_ended(self) -> None:
        """A receiver's sender that stops ends its stream: the run finishes with its summary. A stream from a
        server (a camera's RTSP) that stops is lost: an error, so that a service manager restarts the run."""
        why = f"no frame for {STREAM_READ_TIMEOUT_S:.0f} s, or " if self.timed else ""
        if self.name.startswith(LISTENING_SCHEMES):
            log.warning("%s: the stream has ended (%sthe sender stopped)", self.name, why)
            return None
        raise SourceError(f"{self.name}: the stream stopped ({why}the server ended it)")

    def read(self) -> np.ndarray | None:
        frame: np.ndarray | None
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            frame = self._read_raw()
        if frame is None:
            if self.frame_count and self.frames_read < self.frame_count:
                log.warning("%s: decoded %d of %d frames (truncated or corrupt); converted what decoded",
                            self.name, self.frames_read, self.frame_count)  # fmt: skip
            return None
        frame = fit_frame(frame, self.size)
        self.frames_read += 1
        return frame

    def close(self) -> None:
        self.cap.release()


TEST_PARAMS = "test://?fps=1..1000&size=WxH (8..7680 each)&frames=N (0: endless)"


def parse_test_uri(uri: str) -> tuple[float, tuple[int, int], int]:
    """(fps, (width, height), frames) of a ``test://`` URI; SourceError naming the value and the allowed ones."""
    parts = urlparse(uri)
    q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(q) - {"fps", "size", "frames"})
    if parts.netloc or parts.path.strip("/"):  # test://frames=10: no '?', so no parameters, and it ran on endlessly
        raise SourceUriError(f"{uri}: bad test source (its parameters go after '?'); use {TEST_PARAMS}")
    fps, size, frames = q.get("fps", "30"), q.get("size", "320x240").lower(), q.get("frames", "0")
    w, _, h = size.partition("x")
    if unknown:
        why = f"unknown parameter {unknown[0]!r}"
    elif not re.fullmatch(r"[0-9]+(\.[0-9]*)?", fps) or not 1 <= float(fps) <= 1000:
        why = f"fps={fps}"
    elif not re.fullmatch(r"[0-9]+x[0-9]+", size) or not (8 <= min(int(w), int(h)) and max(int(w), int(h)) <= 7680):
        why = f"size={size}"
    elif not re.fullmatch(r"[0-9]+", frames):
        why = f"frames={frames}"
    else:
        return float(fps), (int(w), int(h)), int(frames)
    raise SourceUriError(f"{uri}: bad test source ({why}); use {TEST_PARAMS}")


class TestPatternSource(Source):
    """A live camera stand-in: a moving gradient at a fixed frame rate, produced in real time.

    ``test://?fps=60&size=320x240&frames=0`` (frames=0: endless). Each frame carries its
    sequence number in the first pixel row (little-endian, 4 bytes) so drops are measurable.
    """

    def __init__(self, uri: str) -> None:
        self.name, self.live = uri, True
        self.fps, (w, h), self.limit = parse_test_uri(uri)
        self.size = (h, w)
        self.frame_count = 0
        self.seq = 0
        self.t0: float | None = None  # its clock starts at the first read, as a camera's does once streaming
        yy, xx = np.mgrid[0:h, 0:w]
        self._yy, self._xx = (yy % 256).astype(np.uint8), (xx % 256).astype(np.uint8)  # uint8 wraps: 7x quicker at 720p

    def read(self) -> np.ndarray | None:
        if self.limit and self.seq >= self.limit:
            return None
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + self.seq / self.fps
        late = int((now - due) * self.fps)
        if late > 0:  # read a whole frame interval late or more: a camera's clock ran on, its frames meanwhile unread
            self.t0 += late / self.fps
            due += late / self.fps
        if due > now:
            time.sleep(due - now)
        shift = self.seq * 4
        frame = np.empty((*self.size, 3), np.uint8)
        np.add(self._xx, np.uint8(shift % 256), out=frame[..., 0])
        np.add(self._yy, np.uint8(shift // 2 % 256), out=frame[..., 1])
        frame[..., 2] = 128
        frame[0, :4, 0] = np.frombuffer(np.uint32(self.seq).tobytes(), np.uint8)
        self.seq += 1
        return frame

    def captured_at(self, now: float) -> float:
        """When the frame read last was due: a camera stamps a frame when it is exposed, not when it is read (a
        read that came late, on a busy machine, would stamp two frames a few milliseconds apart). Never over a
        frame interval before ``now``: a reader that cannot keep up skips the frames it missed (see read)."""
        return now if self.t0 is None else self.t0 + (self.seq - 1) / self.fps


def frame_sequence_number(frame: np.ndarray) -> int:
    return int(np.frombuffer(frame[0, :4, 0].tobytes(), np.uint32)[0])


@functools.lru_cache(maxsize=None)
def pyav() -> ModuleType | None:
    """cyclegan_edge.runtime.av_video when PyAV is installed; else None, after one warning."""
    try:
        from cyclegan_edge.runtime import av_video
    except ImportError as e:
        log.warning("PyAV is not importable (%s): video files go through OpenCV, which drops the audio, writes "
                    "MPEG-4 Part 2 (mp4v, which browsers do not play) instead of H.264, and cannot resume after a "
                    "crash; pip install av", e)  # fmt: skip
        return None
    return av_video


def open_source(uri: str) -> Source:
    """The frames ``uri`` names; an image file is read as a one-frame video (the runtime's INPUT translates
    an image through batch.convert_image instead, keeping it an image)."""
    spec = parse_source(uri)
    if spec.kind in ("folder", "glob"):
        raise SourceError(f"{uri}: a {spec.kind} is converted file by file (batch), not read as one stream")
    if spec.kind == "image":
        spec = SourceSpec("file", spec.target, False)
    if spec.kind == "test":
        return TestPatternSource(uri)
    if spec.kind == "file" and not Path(spec.target).is_file():
        raise SourceError(f"{uri}: no such file")
    av_video = pyav() if spec.kind == "file" else None
    if av_video is not None:
        return av_video.AvSource(spec.target, uri)  # type: ignore[no-any-return]
    return CaptureSource(spec, uri)
