"""Capture -> pre-process -> inference -> post-process -> sink, overlapped in threads.

Each stage is one thread joined to the next by a bounded queue, so the backend is busy while
the next frame is decoded and the previous one written. File sources are lossless: the capture
thread blocks when the queues are full, and every frame comes out, in order. Live sources keep
only the newest frame: when inference is slower than the camera the stale frame is replaced
(and counted as dropped), and pre-processing takes it only once inference has room for it, so a
frame waits for one inference at most before its own: latency stays about two inferences long
instead of growing.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cyclegan_edge.errors import describe
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.frames import frames_to_tensor, resize_shorter_side, tensor_to_frame
from cyclegan_edge.imaging.resize import resize_area
from cyclegan_edge.runtime.backends import AsyncBackend, Backend, check_finite
from cyclegan_edge.runtime.sinks import Sink, WriteFailed
from cyclegan_edge.runtime.sources import Source
from cyclegan_edge.runtime.stabilize import FlickerMeter, Stabilizer

log = logging.getLogger("cyclegan_edge.runtime")

STAGES = ("capture", "pre", "infer", "stabilize", "post", "flicker", "write")
_END = object()


@dataclass(frozen=True)
class PipelineOptions:
    size: int = 0  # shorter side for inference, rounded to a multiple of 4 (0: full resolution)
    side_by_side: bool = False
    queue_depth: int = 4  # file sources; live sources use 1 to keep latency low
    max_frames: int = 0  # frames written (a live source's dropped frames do not count); 0: all
    batch: int = 1  # frames per backend call for file sources (order and every frame kept); live sources use 1
    stabilize: float = 0.0  # blend weight of the temporal filter (stabilize.py), per stream; 0: off
    flicker: bool = False  # measure the warping error of the output (stabilize.FlickerMeter)


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
    write_failed: bool = False  # the error: the output could not be written (a batch stops there)
    flicker: float | None = None  # warping error, 0-255 levels (PipelineOptions.flicker)
    stuck: list[str] = field(default_factory=list)  # stages still running when the wait for them ended
    exception: BaseException | None = field(default=None, repr=False)  # the error itself (its traceback)

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
            "flicker": None if self.flicker is None else round(self.flicker, 3),
        }  # fmt: skip


def output_size(source_size: tuple[int, int], opts: PipelineOptions) -> tuple[int, int]:
    h, w = source_size
    return (h, 2 * w) if opts.side_by_side else (h, w)


def after_resume(opts: PipelineOptions, resumed: int) -> PipelineOptions | None:
    """The options for what is left when an earlier run already wrote ``resumed`` frames (None: nothing)."""
    if not resumed or not opts.max_frames:
        return opts
    return replace(opts, max_frames=opts.max_frames - resumed) if opts.max_frames > resumed else None


def inference_size(source_size: tuple[int, int], opts: PipelineOptions) -> tuple[int, int]:
    return resize_shorter_side(*source_size, opts.size) if opts.size else source_size


SIZE_RANGE = (8, 4320)  # --size: 8 px is the generator's least (below), 4320 the shorter side of 8K
MIN_SIDE = 5  # padded to 8: the generator halves it twice, then reflect-pads 1 px, which needs 2 px


UPSCALE_NOTED = 2.0  # --size at least this many times the source's shorter side gets a warning


LARGE_PIXELS = 8_000_000  # full-resolution images above this get a hint about --size (24 MP took 5.7 GB on a CPU)


def large_note(source_size: tuple[int, int], opts: PipelineOptions) -> str | None:
    """A hint for an image translated at full resolution that is large enough to take minutes and gigabytes on
    a CPU, or None."""
    h, w = source_size
    if opts.size or h * w <= LARGE_PIXELS:
        return None
    return (f"{w}x{h} ({h * w / 1e6:.0f} MP) at full resolution is slow and takes gigabytes of memory on a CPU; "
            "--size 1024 translates at a 1024 px shorter side and scales the result back to this size")


def upscale_note(source_size: tuple[int, int], opts: PipelineOptions) -> str | None:
    """Why --size is a poor choice for this source (the model would run on a frame upscaled 2x or more: slower,
    and no detail is gained), or None."""
    shorter = min(source_size)
    if not opts.size or opts.size < UPSCALE_NOTED * shorter:
        return None
    fits = shorter // 4 * 4
    avoid = f"--size {fits} or less (or none) avoids it" if fits >= SIZE_RANGE[0] else "leaving --size out avoids it"
    return (f"--size {opts.size} is {opts.size / shorter:.1f}x the source's shorter side ({shorter} px): the model "
            f"runs on an upscaled frame, slower and with no detail gained; {avoid}")  # fmt: skip


LIVE_SIZE_HINT = 256  # px: the shorter side suggested when a live source runs at full resolution and drops most frames


def keep_up_note(stats: PipelineStats, source_size: tuple[int, int], opts: PipelineOptions,
                 backend: str = "") -> str | None:  # fmt: skip
    """Why a live run kept so few frames (under half of those captured: a camera at 30 fps recorded as a slide show
    with seconds of latency), and what keeps more (``backend``: the name of what ran); None when it kept up."""
    if not stats.frames_out or stats.dropped <= stats.frames_out:
        return None
    h, w = inference_size(source_size, opts)
    said = (f"the model kept {stats.frames_out} of {stats.frames_in} frames (the others came while it was busy) at "
            f"{w}x{h}")  # fmt: skip
    if not opts.size and min(source_size) > LIVE_SIZE_HINT:
        sh, sw = resize_shorter_side(*source_size, LIVE_SIZE_HINT)
        return (f"{said}, the source's full resolution: --size {LIVE_SIZE_HINT} runs it at {sw}x{sh}, "
                f"{h * w / (sh * sw):.0f}x fewer pixels")  # fmt: skip
    faster = "a GPU" if "int8" in backend else "an INT8 model or a GPU"
    return f"{said}: a smaller --size or {faster} keeps more"


def too_small(hw: tuple[int, int]) -> str | None:
    """Why the generator cannot take an image of this (inference) size, or None."""
    if min(hw) >= MIN_SIDE:
        return None
    return f"{hw[1]}x{hw[0]} px is too small for the generator (it needs at least {MIN_SIDE} px per side)"


class LatestSlot:
    """A one-item mailbox: put() replaces an unread item (counted as dropped). The end (_END) closes it after the
    item waiting there: a finite live source's last frame is written, not replaced by its end."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = self._ended = False
        self.dropped = 0

    def put(self, item: Any, stop: threading.Event | None = None) -> bool:
        with self._cond:
            if item is _END:
                self._ended = True
            else:
                self.dropped += self._has
                self._item, self._has = item, True
            self._cond.notify()
        return True

    def get(self, timeout: float) -> Any:
        with self._cond:
            if not self._has and not self._ended and not self._cond.wait(timeout):
                raise queue.Empty
            if not self._has:
                return _END if self._ended else self.get(timeout)
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

    def wait_for_room(self, stop: threading.Event) -> None:
        while self.q.full() and not stop.is_set():
            time.sleep(0.002)

    def get(self, timeout: float) -> Any:
        return self.q.get(timeout=timeout)


@dataclass
class _Frame:
    seq: int
    t_capture: float
    source: np.ndarray
    tensor: np.ndarray | None = None
    model_input: np.ndarray | None = None  # the source at inference size (what the stabilizer's flow reads)
    output: np.ndarray | None = None  # the model's frame: inference size, source size after post
    result: np.ndarray | None = None


@contextlib.contextmanager
def deferred_ctrl_c(pressed: threading.Event) -> Iterator[None]:
    """Ctrl-C sets ``pressed`` instead of raising wherever the main thread is: a KeyboardInterrupt inside the
    encoder would lose the packets it was handing back (a frame missing from the middle of the file, which a
    resume cannot see). A second Ctrl-C raises at once. Outside the main thread signals cannot be caught: as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


STAGES_NOTED_AFTER_S = 5.0
# a stage may finish its frame meanwhile (a large frame on a CPU takes seconds; a stream read waits out its 5 s
# timeout); one that has not by then is left (a read that never returns), the output closed all the same
STAGES_LEFT_AFTER_S = 30.0


def wait_for_stages(threads: list[threading.Thread], leave: threading.Event) -> list[str]:
    """Wait for the stage threads to end: the sink is closed, the source released and the backend used again (the
    next file of a batch) only once nothing reads or runs them. A stage still busy after 5 s is named once; it is
    left after STAGES_LEFT_AFTER_S, or at a Ctrl-C (``leave``, main thread). Returns the stages left."""
    start = time.monotonic()
    noted = False
    while not leave.is_set() and any(th.is_alive() for th in threads):
        for th in threads:
            th.join(0.05)
        waited = time.monotonic() - start
        if waited > STAGES_LEFT_AFTER_S:
            break
        if not noted and waited > STAGES_NOTED_AFTER_S:
            busy = ", ".join(th.name for th in threads if th.is_alive())
            how = "Ctrl-C leaves it" if threading.current_thread() is threading.main_thread() else "left"
            log.warning("waiting for the %s stage to stop (%s; at most %.0f s)", busy, how, STAGES_LEFT_AFTER_S)
            noted = True
    return [th.name for th in threads if th.is_alive()]


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
        # optional stages: stabilize between infer and post, flicker after post
        self.stabilizer = Stabilizer(self.opts.stabilize) if self.opts.stabilize else None
        self.meter = FlickerMeter() if self.opts.flicker else None
        self.q_stable = BoundedQueue(depth) if self.stabilizer else self.q_infer
        self.q_out = BoundedQueue(depth) if self.meter else self.q_post
        self.errors: list[BaseException] = []

    # ---- stages (each runs in its own thread) ------------------------------------------------------
    def _capture(self) -> None:
        seq = 0
        while not self.stop.is_set():
            if self.opts.max_frames and seq >= self.opts.max_frames and not self.source.live:
                break  # a live source reads on: the frames it drops do not count (the writer stops it)
            t = time.perf_counter()
            frame = self.source.read()
            if frame is None:
                break
            now = time.perf_counter()
            self.stats.stage_ms["capture"].append((now - t) * 1e3)
            self.stats.frames_in += 1
            if not self.q_capture.put(_Frame(seq, self.source.captured_at(now), frame), self.stop):
                return
            seq += 1
        self.q_capture.put(_END, self.stop)

    def _stage(self, name: str, src: Any, dst: BoundedQueue, work: Callable[[_Frame], None]) -> None:
        # A live source's frame is taken only once the next stage has room for it: taken at once, it waited out
        # a whole inference in this stage and another in the queue (latency 3-4 inferences long, not 2)
        pull = isinstance(src, LatestSlot)
        while not self.stop.is_set():
            if pull:
                dst.wait_for_room(self.stop)
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

    def _infer_batches(self) -> None:
        """The infer stage for file sources with batch > 1: N frames per backend call, in order."""
        pending: list[_Frame] = []
        while not self.stop.is_set():
            try:
                item = self.q_pre.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is not _END:
                pending.append(item)
            if pending and (item is _END or len(pending) == self.opts.batch):
                t = time.perf_counter()
                out = self.backend.infer(np.concatenate([f.tensor for f in pending if f.tensor is not None]))
                ms = (time.perf_counter() - t) * 1e3 / len(pending)
                for i, f in enumerate(pending):
                    f.tensor = out[i : i + 1]
                    self.stats.stage_ms["infer"].append(ms)
                    if not self.q_infer.put(f, self.stop):
                        return
                pending = []
            if item is _END:
                self.q_infer.put(_END, self.stop)
                return

    def _infer_in_flight(self, backend: AsyncBackend) -> None:
        """The infer stage for file sources on an AsyncBackend: up to ``in_flight`` frames submitted at once
        (OpenVINO runs them on parallel streams), passed on in order."""
        waiting: collections.deque[tuple[_Frame, Callable[[], np.ndarray], float]] = collections.deque()
        try:
            while not self.stop.is_set():
                try:
                    item = self.q_pre.get(timeout=0.05)
                except queue.Empty:
                    item = None
                if isinstance(item, _Frame):
                    assert item.tensor is not None
                    waiting.append((item, backend.submit(item.tensor), time.perf_counter()))
                # hand results on when the requests are all busy, at the end, or while no new frame comes
                while waiting and (item is _END or item is None or len(waiting) >= backend.in_flight):
                    f, result, t = waiting.popleft()
                    f.tensor = result()
                    self.stats.stage_ms["infer"].append((time.perf_counter() - t) * 1e3)
                    if not self.q_infer.put(f, self.stop):
                        return
                if item is _END:
                    self.q_infer.put(_END, self.stop)
                    return
        finally:  # a stopped pipeline still collects what it submitted: the backend serves the next file of a batch
            for _, result, _ in waiting:
                try:
                    result()
                except Exception:  # the stage's first error has been recorded; this one adds nothing
                    pass

    def _pre(self, f: _Frame) -> None:
        frame = resize_area(f.source, self.infer_hw)
        f.tensor = frames_to_tensor([frame])
        f.model_input = frame if self.stabilizer is not None else None

    def _infer(self, f: _Frame) -> None:
        assert f.tensor is not None
        f.tensor = self.backend.infer(f.tensor)

    def _stabilize(self, f: _Frame) -> None:
        assert f.tensor is not None and f.model_input is not None and self.stabilizer is not None
        f.output = self.stabilizer(f.model_input, tensor_to_frame(check_finite(f.tensor), self.infer_hw))
        f.tensor = f.model_input = None

    def _flicker(self, f: _Frame) -> None:
        assert f.output is not None and self.meter is not None
        self.meter.update(f.source, f.output)

    def _post(self, f: _Frame) -> None:
        if f.output is None:  # not stabilized
            assert f.tensor is not None
            f.output = tensor_to_frame(check_finite(f.tensor), self.infer_hw)
        if f.output.shape[:2] != f.source.shape[:2]:
            f.output = cv2().resize(f.output, (f.source.shape[1], f.source.shape[0]), interpolation=cv2().INTER_LINEAR)
        f.result = np.hstack([f.source, f.output]) if self.opts.side_by_side else f.output
        f.tensor = None

    def _guard(self, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                fn(*args)
            except BaseException as e:  # surfaced by run() in the main thread
                if not self.stop.is_set():  # after the stop an error is its consequence (a stream read cut short)
                    self.errors.append(e)
                self.stop.set()

        return run

    def _status(self, elapsed: float, latency: float) -> str:
        fps = self.stats.frames_out / elapsed if elapsed > 0 else 0.0
        dropped = self.q_capture.dropped if isinstance(self.q_capture, LatestSlot) else 0
        return f"{fps:.1f} FPS  latency {latency * 1e3:.0f} ms" + (f"  dropped {dropped}" if dropped else "")

    # ---- the main thread: writes, shows, and owns Ctrl-C ---------------------------------------------
    def _write_loop(self, t0: float, ctrl_c: threading.Event) -> float:
        """Write until the end, a stop or an error; returns when the last frame written was captured (0: none)."""
        last_captured = 0.0
        while not self.stop.is_set() and not ctrl_c.is_set():
            try:
                item = self.q_out.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END:
                return last_captured
            t = time.perf_counter()
            self.sink.write(item.result, self._status(t - t0, t - item.t_capture), item.t_capture)
            done = time.perf_counter()
            self.stats.stage_ms["write"].append((done - t) * 1e3)
            self.stats.latencies_ms.append((done - item.t_capture) * 1e3)
            self.stats.frames_out += 1
            self.stats.seconds = done - t0
            last_captured = item.t_capture
            if self.on_frame is not None:
                self.on_frame(self.stats)
            if self.sink.quit_requested or self.opts.max_frames and self.stats.frames_out >= self.opts.max_frames:
                break
        self.stats.interrupted = ctrl_c.is_set() or self.sink.quit_requested  # else a stage failed: its error says
        return last_captured

    def _resume_stabilizer(self) -> None:
        """A resumed conversion's filter starts from the last frame written before, not afresh: no jump there."""
        assert self.stabilizer is not None and self.source.before is not None
        written = self.sink.last_resumed()
        if written is None:
            return
        if self.opts.side_by_side:  # source | output
            written = written[:, written.shape[1] // 2 :]
        self.stabilizer.resume_from(resize_area(self.source.before, self.infer_hw), resize_area(written, self.infer_hw))

    def run(self) -> PipelineStats:
        if self.stabilizer is not None and self.source.before is not None and self.sink.resumed:
            self._resume_stabilizer()
        if self.opts.batch > 1 and not self.source.live:
            infer = self._guard(self._infer_batches)
        elif isinstance(self.backend, AsyncBackend) and self.backend.in_flight > 1 and not self.source.live:
            infer = self._guard(self._infer_in_flight, self.backend)
        else:
            infer = self._guard(self._stage, "infer", self.q_pre, self.q_infer, self._infer)
        threads = [
            threading.Thread(target=self._guard(self._capture), name="capture", daemon=True),
            threading.Thread(target=self._guard(self._stage, "pre", self.q_capture, self.q_pre, self._pre), name="pre", daemon=True),
            threading.Thread(target=infer, name="infer", daemon=True),
            threading.Thread(target=self._guard(self._stage, "post", self.q_stable, self.q_post, self._post), name="post", daemon=True),
        ]  # fmt: skip
        optional = [("stabilize", self.q_infer, self.q_stable, self._stabilize, self.stabilizer),
                    ("flicker", self.q_post, self.q_out, self._flicker, self.meter)]  # fmt: skip
        for name, src, dst, work, enabled in optional:
            if enabled is not None:
                target = self._guard(self._stage, name, src, dst, work)
                threads.append(threading.Thread(target=target, name=name, daemon=True))
        self.source.stop_on(self.stop)
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        ctrl_c = threading.Event()
        self.sink.interrupt_on(ctrl_c)
        last_captured = 0.0
        try:
            with deferred_ctrl_c(ctrl_c):
                last_captured = self._write_loop(t0, ctrl_c)
        except KeyboardInterrupt:  # a second Ctrl-C
            self.stats.interrupted = True
        except Exception as e:  # the sink failed (disk full, ...): reported, and what was written is kept
            self.errors.append(e)
        finally:
            self.stop.set()
            with deferred_ctrl_c(leave := threading.Event()):  # a Ctrl-C now leaves the wait, not the close
                self.stats.stuck = wait_for_stages(threads, leave)
            self.stats.interrupted |= leave.is_set()
            with deferred_ctrl_c(threading.Event()):  # and one now is noted; a second one stops a close that hangs
                self._finish(t0, last_captured)
        if self.errors:
            err = self.stats.exception = self.errors[0]
            self.stats.error = describe(err, hint=False)
            self.stats.write_failed = isinstance(err, WriteFailed)  # not an input's I/O error: the batch goes on
        return self.stats

    def _finish(self, t0: float, last_captured: float) -> None:
        """The run's figures, and the sink closed."""
        self.stats.seconds = time.perf_counter() - t0
        if self.source.live and last_captured > t0:  # up to its last frame's capture, not the wait that told its
            # stream had ended; and no faster than the source (a burst of frames buffered before the start)
            self.stats.seconds = max(last_captured - t0, self.stats.frames_out / (self.source.fps or 30.0))
        if isinstance(self.q_capture, LatestSlot):
            self.stats.dropped = self.q_capture.dropped
        self.stats.flicker = self.meter.value if self.meter is not None else None
        if self.stats.interrupted or self.errors:
            self.sink.mark_stopped()  # a writer then keeps an earlier output that --overwrite would replace
        try:
            self.sink.close()  # finalize what was written, whatever happened
        except Exception as e:  # a failed finalization is the run's error too
            self.errors.append(e)
