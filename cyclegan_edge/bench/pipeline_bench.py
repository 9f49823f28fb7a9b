"""End to end: a real file conversion through the runtime pipeline vs the backend's pure inference."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cyclegan_edge.runtime.timing import measure
from cyclegan_edge.runtime.backends import Backend
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, inference_size, output_size
from cyclegan_edge.runtime.sinks import VideoFileSink
from cyclegan_edge.runtime.sources import open_source


def pipeline_vs_inference(backend: Backend, video: str, size: int, max_frames: int = 0,
                          inference_iterations: int = 30) -> dict[str, Any]:  # fmt: skip
    source = open_source(video)
    opts = PipelineOptions(size=size, max_frames=max_frames)
    hw = inference_size(source.size, opts)
    with tempfile.TemporaryDirectory() as tmp:
        sink = VideoFileSink(Path(tmp) / "out.mp4", source.fps, output_size(source.size, opts))
        stats = Pipeline(source, backend, sink, opts).run()
    source.close()
    pure = measure(backend, hw, 1, inference_iterations, warmup=3)
    inference_fps = 1000.0 / pure["latency_ms"]["mean"]
    return {
        "video": video, "source_size": list(source.size), "inference_size": f"{hw[0]}x{hw[1]}",
        "frames": stats.frames_out, "pipeline_fps": stats.fps, "inference_fps": inference_fps,
        "ratio": stats.fps / inference_fps, "stage_ms_mean": stats.summary()["stage_ms_mean"],
        "backend": backend.name,
    }  # fmt: skip
