"""End to end: a real file conversion through the runtime pipeline vs inference alone, on the same frames
and with the same clock, so that their ratio means what it says."""

from __future__ import annotations

import collections
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.bench.load import OTHERS_BUSY_CPUS, OtherLoad
from cyclegan_edge.imaging.frames import frames_to_tensor
from cyclegan_edge.imaging.resize import resize_area
from cyclegan_edge.runtime.backends import AsyncBackend, Backend
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, inference_size, output_size, upscale_note
from cyclegan_edge.runtime.sinks import open_output
from cyclegan_edge.runtime.sources import open_source
from cyclegan_edge.runtime.stabilize import METRIC_FLOW

log = logging.getLogger("cyclegan_edge.bench")

COMPARED = ("pipeline: decode, resize, infer, post-process and encode to a file, overlapped in threads (frames / "
            "wall time); inference only: the same frames at the same size through the same backend, one after "
            "another or, where the backend keeps frames in flight (OpenVINO streams), as many at once as the "
            "pipeline keeps (frames / summed inference time, decoding and resizing off the clock; "
            "time.perf_counter for both); ratio = pipeline FPS / inference-only FPS, 1.0 when the pipeline hides "
            "all other work behind inference")  # fmt: skip


CHUNK = 32  # frames decoded and resized ahead of each timed stretch of inference (kept off the clock)


def infer_all(backend: Backend, tensors: list[np.ndarray], in_flight: bool = True) -> None:
    """Each tensor through the backend as the pipeline runs it: one after another, or (``in_flight``) as many at
    a time as an AsyncBackend keeps in flight (OpenVINO's streams)."""
    if not (in_flight and isinstance(backend, AsyncBackend) and backend.in_flight > 1):
        for x in tensors:
            backend.infer(x)
        return
    waiting: collections.deque[Callable[[], np.ndarray]] = collections.deque()
    try:
        for x in tensors:
            if len(waiting) >= backend.in_flight:
                waiting.popleft()()
            waiting.append(backend.submit(x))
        while waiting:
            waiting.popleft()()
    finally:  # after an error: what was submitted is still collected, so that the backend serves the next call
        for result in waiting:
            try:
                result()
            except Exception:  # the first error is the one raised
                pass


def inference_only_seconds(backend: Backend, video: str, hw: tuple[int, int], frames: int, tick: Callable[[], None],
                           in_flight: bool = True) -> float:  # fmt: skip
    """Seconds spent in inference (``infer_all``) over the video's first ``frames`` frames, resized to ``hw``."""
    source = open_source(video)
    spent = 0.0
    try:
        while frames > 0:
            chunk: list[np.ndarray] = []
            while len(chunk) < min(CHUNK, frames) and (frame := source.read()) is not None:
                chunk.append(frames_to_tensor([resize_area(frame, hw)]))
            if not chunk:
                break
            t = time.perf_counter()
            infer_all(backend, chunk, in_flight)
            spent += time.perf_counter() - t
            for _ in chunk:
                tick()
            frames -= len(chunk)
    finally:
        source.close()
    return spent


def unsteady_pipeline_note(others: float | None) -> str | None:
    """Why the figures are not an idle machine's: other processes kept more than OTHERS_BUSY_CPUS busy meanwhile
    (a steady load slows every frame alike, which no spread shows), or None (also when not judged: under a second,
    or no psutil). The infer stage's own spread is no judge here: the pipeline's threads share the cores with it
    (p90 at 1.7-1.8x p50 at 64 px on an idle 2-core machine)."""
    if others is None or others <= OTHERS_BUSY_CPUS:
        return None
    return (f"a busy machine: other processes (or virtual machines) kept {others:.1f} CPUs busy during the "
            f"measurement (of {os.cpu_count()}); rerun on an idle one before trusting the figures")  # fmt: skip


def pipeline_vs_inference(backend: Backend, video: str, size: int, max_frames: int = 0,
                          progress: Callable[[str, int | None], Callable[[], None]] | None = None,
                          stabilize: float = 0.0, flicker: bool = False,
                          in_flight: bool = True) -> dict[str, Any]:  # fmt: skip
    """``progress(stage, total)`` returns a function called once per frame of that stage; ``stabilize`` and
    ``flicker`` as in PipelineOptions (the flicker stage competes for the CPU: measure speed without it);
    ``in_flight`` False: inference alone one frame at a time, whatever the backend keeps in flight."""
    def ticker(stage: str, total: int | None) -> Callable[[], None]:
        return progress(stage, total) if progress is not None else (lambda: None)

    source = open_source(video)
    opts = PipelineOptions(size=size, max_frames=max_frames, stabilize=stabilize, flicker=flicker)
    hw = inference_size(source.size, opts)
    upscaled = upscale_note(source.size, opts)
    if upscaled:  # as the runtime says it: the figures would be of a frame no conversion should use
        log.warning("%s: %s", Path(video).name, upscaled)
    total = min(filter(None, (source.frame_count, max_frames)), default=None)
    tick = ticker("pipeline", total)
    others = OtherLoad()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sink = open_output(str(Path(tmp) / "out.mp4"), source.fps, output_size(source.size, opts))
            stats = Pipeline(source, backend, sink, opts, on_frame=lambda _: tick()).run()
    finally:
        source.close()
    if stats.error:
        raise RuntimeError(f"{video}: the pipeline failed: {stats.error}")
    if stats.interrupted:  # the pipeline caught Ctrl-C and stopped early: its figures are not a conversion's
        raise KeyboardInterrupt
    # the backend is warm: the pipeline just ran it at this size
    infer_s = inference_only_seconds(backend, video, hw, stats.frames_out, ticker("inference only", stats.frames_out),
                                     in_flight)  # fmt: skip
    inference_fps = stats.frames_out / infer_s if infer_s > 0 else 0.0
    busy = others.cpus()
    return {
        "video": video, "source_size": list(source.size), "inference_size": f"{hw[0]}x{hw[1]}",  # HxW, as --sizes
        "frames": stats.frames_out, "pipeline_fps": stats.fps, "inference_fps": inference_fps,
        "ratio": stats.fps / inference_fps if inference_fps else 0.0, "compared": COMPARED,
        "stage_ms_mean": stats.summary()["stage_ms_mean"], "backend": backend.name,
        "in_flight": backend.in_flight if in_flight and isinstance(backend, AsyncBackend) else 1,
        "stabilize": stabilize, "flicker": stats.flicker, "flicker_method": METRIC_FLOW if flicker else None,
        "others_busy_cpus": None if busy is None else round(busy, 2),
        "unsteady": unsteady_pipeline_note(busy),
    }  # fmt: skip

