"""Live network streams of the translated frames through PyAV (FFmpeg's muxers); no server of our own.

    udp://HOST:PORT   H.264 in MPEG-TS over UDP, 1316-byte datagrams (7 TS packets: they fit a 1500-byte
                      MTU). Play: ``ffplay -fflags nobuffer udp://@:PORT`` or ``vlc udp://@:PORT``.
    rtp://HOST:PORT   H.264 in MPEG-TS over RTP (FFmpeg's ``rtp_mpegts`` muxer, payload type 33). Plain
                      H.264 over RTP (RFC 6184, FFmpeg's ``rtp`` muxer) needs an SDP that only FFmpeg's
                      av_sdp_create writes, and PyAV 18 does not expose it; MPEG-TS over RTP needs none.
                      Play: ``ffplay -fflags nobuffer rtp://0.0.0.0:PORT`` (FFmpeg 8 refuses ``@`` here;
                      FFmpeg's RTP reader drops the first packet, so it starts at the next keyframe) or
                      ``vlc rtp://@:PORT``. The receiver also gets RTCP on PORT+1.
    rtsp://SERVER:PORT/PATH
                      published (ANNOUNCE + RECORD, RTP over TCP) to an RTSP server that takes publishers,
                      e.g. mediamtx, which serves it to any number of players:
                      ``ffplay -rtsp_transport tcp rtsp://SERVER:PORT/PATH``. Tested against FFmpeg's own
                      listening RTSP reader (``-rtsp_flags listen``), not against mediamtx.

For UDP and RTP, HOST is the receiving machine (or a multicast group): the receiver listens, nothing here does.
Encoding: libx264 for latency (``tune=zerolatency``: no B-frames, no lookahead; ``--preset``, default
veryfast), a keyframe every second (what a player that joins late waits at most), ``--crf`` or
``--bitrate`` (which also caps the rate, 1 s buffer) as for files. Video only: a file source's audio is
not sent. A file source is sent at its frame rate (paced, like ``ffmpeg -re``), a camera as frames come.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from cyclegan_edge.errors import holding_ctrl_c
from cyclegan_edge.imaging.resize import fit_frame
from cyclegan_edge.runtime.av_video import (LIVE_TIME_BASE, av_error, encoder_options, parse_bitrate, tag_bt709,
                                            yuv420_bt709)  # fmt: skip
from cyclegan_edge.runtime.sinks import (STREAM_ENCODER, EncodeSettings, Sink, SinkError, check_stream_settings,
                                         encoded_size, pad_to, stream_address, warn_padded)  # fmt: skip
from cyclegan_edge.runtime.sources import Source, ran_out

log = logging.getLogger("cyclegan_edge.runtime")

MUXERS = {"udp": "mpegts", "rtp": "rtp_mpegts", "rtsp": "rtsp"}
# each packet leaves at once (low latency); RTSP sends RTP over the server's TCP connection (no UDP to lose)
# A receiver that leaves a request unanswered or takes no data this long is gone. PyAV holds the GIL while FFmpeg
# waits for an answer, so Ctrl-C acts only when this runs out.
SERVER_TIMEOUT_S = 10.0
SEND_QUEUE = 30  # frames of a file waiting for a slow link: a second at 30 fps (a live source: 2, see __init__)
MUXER_OPTIONS = {"udp": {"flush_packets": "1"}, "rtp": {"flush_packets": "1"}, "rtsp": {"rtsp_transport": "tcp"}}
TS_DATAGRAM = 1316  # 7 MPEG-TS packets of 188 bytes: with IP and UDP headers under a 1500-byte MTU


def stream_url(uri: str, scheme: str) -> str:
    """The URL FFmpeg opens: UDP datagrams of whole TS packets unless the URI sets pkt_size itself."""
    if scheme != "udp" or "pkt_size=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}pkt_size={TS_DATAGRAM}"


def resolve(uri: str, host: str, port: int) -> None:
    """SinkError naming the host when it does not resolve (FFmpeg says only 'Input/output error')."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        reason = e.strerror if isinstance(e, socket.gaierror) else str(e)
        raise SinkError(f"{uri}: cannot resolve host {host} ({reason})") from None


def x264_options(settings: EncodeSettings) -> dict[str, str]:
    opts = {**encoder_options(STREAM_ENCODER, settings), "tune": "zerolatency"}
    if settings.bitrate:  # a live link has a ceiling: cap the rate over a one-second buffer
        bps = str(parse_bitrate(settings.bitrate))
        opts.update(maxrate=bps, bufsize=bps)
    return opts


class AvStreamSink(Sink):
    """Encodes each frame as it comes and sends it; close() flushes the encoder. Nothing is kept on disk.

    A thread of its own sends: FFmpeg's write to an RTSP server that has stopped reading blocks for good (its
    timeout covers only the requests) and hears no Ctrl-C; waiting in Python instead, the run stops after
    SERVER_TIMEOUT_S, or at a signal."""

    def __init__(self, uri: str, size: tuple[int, int], fps: float, settings: EncodeSettings,
                 source: Source | None = None) -> None:  # fmt: skip
        self.name = uri
        check_stream_settings(uri, settings)
        scheme, host, port = stream_address(uri)
        resolve(uri, host, port)
        if settings.audio and source is not None and source.has_audio:
            log.warning("%s: the source's audio is not sent (video only; --no-audio silences this)", uri)
        self.size, self.frame_size = size, encoded_size(size)
        warn_padded(Path(uri), size, self.frame_size)
        self.rate = Fraction(fps or 30).limit_denominator(1001)
        self.live = bool(source is not None and source.live)
        self.frames = 0
        self._t0: float | None = None  # the clock when the first frame went out
        self._last_pts = -1
        self.out: Any = None
        t = time.monotonic()
        try:
            options = dict(MUXER_OPTIONS[scheme])
            if scheme == "rtsp":  # microseconds; it covers the requests, not the data (see the class)
                options["timeout"] = str(int(SERVER_TIMEOUT_S * 1e6))
            # Ctrl-C held back: it interrupted FFmpeg's wait for an answer, which began again (EINTR), and was then
            # lost; it acts once the server has answered or the timeout has run out
            with holding_ctrl_c():
                self.out = av.open(stream_url(uri, scheme), "w", format=MUXERS[scheme], container_options=options)
                self.vs = self._add_video(settings)
                self.out.start_encoding()  # the header now: an RTSP server that refuses fails here, not mid-run
        except (av.FFmpegError, OSError) as e:
            self._discard()
            silent = ran_out(t, SERVER_TIMEOUT_S)  # FFmpeg says "Invalid data found"
            why = f"the server did not answer in {SERVER_TIMEOUT_S:.0f} s" if silent else av_error(e)
            raise SinkError(f"{uri}: cannot open the stream ({why})") from None
        # a live source's frames wait no longer than a frame or two: the pipeline then drops stale ones instead
        self._queue: queue.Queue[list[Any] | None] = queue.Queue(maxsize=2 if self.live else SEND_QUEUE)
        self._send_error: list[BaseException] = []
        self._stalled = False  # the receiver took nothing for SERVER_TIMEOUT_S (said once)
        self._sender = threading.Thread(target=self._send_queued, args=(self.out,), name="send", daemon=True)
        self._sender.start()

    def _add_video(self, settings: EncodeSettings) -> Any:
        vs = self.out.add_stream(STREAM_ENCODER, rate=self.rate, options=x264_options(settings))
        vs.width, vs.height, vs.pix_fmt = self.frame_size[1], self.frame_size[0], "yuv420p"
        vs.time_base = LIVE_TIME_BASE
        ctx = vs.codec_context
        ctx.time_base = LIVE_TIME_BASE
        ctx.gop_size = max(1, round(float(self.rate)))  # a keyframe a second: how long a late joiner waits
        tag_bt709(ctx)  # as for files
        if settings.bitrate:
            ctx.bit_rate = parse_bitrate(settings.bitrate)
        return vs

    def _timestamp(self, now: float) -> int:
        """pts in LIVE_TIME_BASE: a file's frames at its frame rate, a camera's by the clock (it drops frames)."""
        if self.live:
            pts = max(round((now - (self._t0 or now)) / LIVE_TIME_BASE), self._last_pts + 1)
        else:
            pts = round(self.frames / (self.rate * LIVE_TIME_BASE))
        self._last_pts = pts
        return pts

    def _pace(self, pts: int) -> None:
        """A file converts faster than real time: hold each frame until its time, as a player expects it."""
        if not self.live and self._t0 is not None:
            delay = self._t0 + float(pts * LIVE_TIME_BASE) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def write(self, frame: np.ndarray, status: str = "", captured: float | None = None) -> None:
        frame = fit_frame(frame, self.size)
        now = captured if self.live and captured is not None else time.perf_counter()
        self._t0 = now if self._t0 is None else self._t0
        pts = self._timestamp(now)
        vf = av.VideoFrame.from_ndarray(pad_to(frame, self.frame_size), format="bgr24")
        vf = yuv420_bt709(vf)
        vf.pts, vf.time_base = pts, LIVE_TIME_BASE
        try:
            packets = self.vs.encode(vf)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"{self.name}: the encoder failed ({av_error(e)})") from None
        self._pace(pts)
        self._send(packets)
        self.frames += 1

    def _send_queued(self, out: Any) -> None:
        while (packets := self._queue.get()) is not None:
            try:
                for p in packets:
                    out.mux(p)
            except BaseException as e:  # reported by the next write() or close(), which stop waiting on this thread
                self._send_error.append(e)
                return

    def _hand_over(self, item: list[Any] | None, timeout: float) -> None:
        """Queue ``item`` for the sender, waiting at most ``timeout`` for room; SinkError at once when the sender
        has failed, and after the wait (``_stalled``) when the receiver has taken nothing meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if self._send_error or not self._sender.is_alive():
                raise SinkError(f"{self.name}: sending failed ({self._failure()})")
            if self.interrupted is not None and self.interrupted.is_set() and not self.stopped:
                raise KeyboardInterrupt  # Ctrl-C while the receiver takes nothing: the pipeline stops now
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if time.monotonic() >= deadline:
                    self._stalled = True
                    raise SinkError(f"{self.name}: {self._stall_reason()}") from None

    def _failure(self) -> str:
        return av_error(self._send_error[0]) if self._send_error else "the sending thread ended"

    def _send(self, packets: list[Any]) -> None:
        self._hand_over(packets, SERVER_TIMEOUT_S)

    def _stall_reason(self) -> str:
        return f"the receiver has taken nothing for {SERVER_TIMEOUT_S:.0f} s (stopped, or the link is down)"

    def _discard(self) -> None:
        if self.out is not None:
            try:
                self.out.close()
            except (av.FFmpegError, OSError):
                pass  # already failing: the first error is the one to report
            self.out = None

    def close(self) -> None:
        """Flush the encoder, let what is queued go out, close. A stopped run (Ctrl-C) waits a second at most: a
        stalled receiver must not hold it. A stalled sender is left behind with the container (closing would wait
        on the receiver as well) and ends with the process."""
        if self.out is None:
            return
        patience = 1.0 if self.stopped else SERVER_TIMEOUT_S
        try:
            if not self._stalled:
                if self.frames and not self._send_error:
                    self._hand_over(self.vs.encode(None), patience)
                self._hand_over(None, patience)
                self._sender.join(patience)
                self._stalled = self._sender.is_alive()
                if self._stalled:
                    raise SinkError(f"{self.name}: {self._stall_reason()}")
                if self._send_error:  # the last packets failed after the end was queued
                    raise SinkError(f"{self.name}: sending failed ({self._failure()})")
        except SinkError:
            if not self._stalled:
                self._discard()  # the sender has failed: nothing waits on the receiver
            elif self.stopped:
                return  # stopped by the user: the stall needs no line of its own
            raise
        if self._stalled:
            return  # said by write()
        out, self.out = self.out, None
        try:
            out.close()
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"{self.name}: closing the stream failed ({av_error(e)})") from None
