"""Capture -> pre-process -> inference -> post-process -> sink, overlapped in threads.

Each stage is one thread joined to the next by a bounded queue, so the backend is busy while
the next frame is decoded and the previous one written. File sources are lossless: the capture
thread blocks when the queues are full, and every frame comes out, in order. Live sources keep
only the newest frame: when inference is slower than the camera the stale frame is replaced
(and counted as dropped), so latency stays about one inference long instead of growing.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.frames import frames_to_tensor, resize_shorter_side, tensor_to_frame
from cyclegan_edge.runtime.backends import Backend
from cyclegan_edge.runtime.sinks import Sink
from cyclegan_edge.runtime.sources import Source

STAGES = ("capture", "pre", "infer", "post", "write")
_END = object()


@dataclass(frozen=True)
class PipelineOptions:
    size: int = 0  # shorter side for inference, rounded to a multiple of 4 (0: full resolution)
    side_by_side: bool = False
    queue_depth: int = 4  # file sources; live sources use 1 to keep latency low
    max_frames: int = 0


@dataclass
class PipelineStats:
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    interrupted: bool = False
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "frames_in": self.frames_in, "frames_out": self.frames_out, "dropped": self.dropped,
            "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
            "latency_ms_p50": round(statistics.median(lat), 2) if lat else None,
            "latency_ms_max": round(lat[-1], 2) if lat else None,
            "stage_ms_mean": {k: round(statistics.fmean(v), 2) for k, v in self.stage_ms.items() if v},
            "interrupted": self.interrupted, "error": self.error,
        }  # fmt: skip


def output_size(source_size: tuple[int, int], opts: PipelineOptions) -> tuple[int, int]:
    h, w = source_size
    return (h, 2 * w) if opts.side_by_side else (h, w)


def inference_size(source_size: tuple[int, int], opts: PipelineOptions) -> tuple[int, int]:
    return resize_shorter_side(*source_size, opts.size) if opts.size else source_size


class LatestSlot:
    """A one-item mailbox: put() replaces an unread item (counted as dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self.dropped = 0

    def put(self, item: Any, stop: threading.Event | None = None) -> bool:
        with self._cond:
            if self._has and self._item is not _END:
                self.dropped += 1
            self._item, self._has = item, True
            self._cond.notify()
        return True

    def get(self, timeout: float) -> Any:
        with self._cond:
            if not self._has and not self._cond.wait(timeout):
                raise queue.Empty
            item, self._item, self._has = self._item, None, False
            return item


class BoundedQueue:
    def __init__(self, depth: int) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def put(self, item: Any, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float) -> Any:
        return self.q.get(timeout=timeout)


@dataclass
class _Frame:
    seq: int
    t_capture: float
    source: np.ndarray
    tensor: np.ndarray | None = None
    result: np.ndarray | None = None


class Pipeline:
    def __init__(self, source: Source, backend: Backend, sink: Sink, opts: PipelineOptions | None = None,
                 on_frame: Callable[[PipelineStats], None] | None = None) -> None:  # fmt: skip
        self.source, self.backend, self.sink = source, backend, sink
        self.opts = opts or PipelineOptions()
        self.on_frame = on_frame
        self.stats = PipelineStats()
        self.stop = threading.Event()
        self.infer_hw = inference_size(source.size, self.opts)
        depth = 1 if source.live else self.opts.queue_depth
        self.q_capture: LatestSlot | BoundedQueue = LatestSlot() if source.live else BoundedQueue(depth)
        self.q_pre, self.q_infer, self.q_post = BoundedQueue(depth), BoundedQueue(depth), BoundedQueue(depth)
        self.errors: list[BaseException] = []

    # ---- stages (each runs in its own thread) ------------------------------------------------------
    def _capture(self) -> None:
        seq = 0
        while not self.stop.is_set():
            if self.opts.max_frames and seq >= self.opts.max_frames:
                break
            t = time.perf_counter()
            frame = self.source.read()
            if frame is None:
                break
            now = time.perf_counter()
            self.stats.stage_ms["capture"].append((now - t) * 1e3)
            self.stats.frames_in += 1
            if not self.q_capture.put(_Frame(seq, now, frame), self.stop):
                return
            seq += 1
        self.q_capture.put(_END, self.stop)

    def _stage(self, name: str, src: Any, dst: BoundedQueue, work: Callable[[_Frame], None]) -> None:
        while not self.stop.is_set():
            try:
                item = src.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END:
                dst.put(_END, self.stop)
                return
            t = time.perf_counter()
            work(item)
            self.stats.stage_ms[name].append((time.perf_counter() - t) * 1e3)
            if not dst.put(item, self.stop):
                return

    def _pre(self, f: _Frame) -> None:
        frame = f.source
        if frame.shape[:2] != self.infer_hw:
            frame = cv2().resize(frame, (self.infer_hw[1], self.infer_hw[0]), interpolation=cv2().INTER_AREA)
        f.tensor = frames_to_tensor([frame])

    def _infer(self, f: _Frame) -> None:
        assert f.tensor is not None
        f.tensor = self.backend.infer(f.tensor)

    def _post(self, f: _Frame) -> None:
        assert f.tensor is not None
        out = tensor_to_frame(f.tensor, self.infer_hw)
        if out.shape[:2] != f.source.shape[:2]:
            out = cv2().resize(out, (f.source.shape[1], f.source.shape[0]), interpolation=cv2().INTER_LINEAR)
        f.result = np.hstack([f.source, out]) if self.opts.side_by_side else out
        f.tensor = None

    def _guard(self, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                fn(*args)
            except BaseException as e:  # surfaced by run() in the main thread
                self.errors.append(e)
                self.stop.set()

        return run

    def _status(self, elapsed: float, latency: float) -> str:
        fps = self.stats.frames_out / elapsed if elapsed > 0 else 0.0
        dropped = self.q_capture.dropped if isinstance(self.q_capture, LatestSlot) else 0
        return f"{fps:.1f} FPS  latency {latency * 1e3:.0f} ms" + (f"  dropped {dropped}" if dropped else "")

    # ---- the main thread: writes, shows, and owns Ctrl-C ---------------------------------------------
    def run(self) -> PipelineStats:
        threads = [
            threading.Thread(target=self._guard(self._capture), name="capture", daemon=True),
            threading.Thread(target=self._guard(self._stage, "pre", self.q_capture, self.q_pre, self._pre), name="pre", daemon=True),
            threading.Thread(target=self._guard(self._stage, "infer", self.q_pre, self.q_infer, self._infer), name="infer", daemon=True),
            threading.Thread(target=self._guard(self._stage, "post", self.q_infer, self.q_post, self._post), name="post", daemon=True),
        ]  # fmt: skip
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        try:
            while not self.stop.is_set():
                try:
                    item = self.q_post.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                t = time.perf_counter()
                self.sink.write(item.result, self._status(t - t0, t - item.t_capture))
                done = time.perf_counter()
                self.stats.stage_ms["write"].append((done - t) * 1e3)
                self.stats.latencies_ms.append((done - item.t_capture) * 1e3)
                self.stats.frames_out += 1
                self.stats.seconds = done - t0
                if self.on_frame is not None:
                    self.on_frame(self.stats)
                if self.sink.quit_requested:
                    self.stats.interrupted = True
                    break
        except KeyboardInterrupt:
            self.stats.interrupted = True
        finally:
            self.stop.set()
            for th in threads:
                th.join(timeout=5)
            self.stats.seconds = time.perf_counter() - t0
            if isinstance(self.q_capture, LatestSlot):
                self.stats.dropped = self.q_capture.dropped
            self.sink.close()  # finalize what was written, whatever happened
        if self.errors:
            err = self.errors[0]
            self.stats.error = f"{type(err).__name__}: {err}".splitlines()[0]
        return self.stats
