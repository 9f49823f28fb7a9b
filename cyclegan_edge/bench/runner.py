"""Measure backends: warm-up, N timed calls, host pre/post timed on their own, memory peaks."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.bench.stats import latency_stats
from cyclegan_edge.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.runtime.backends import Backend, BackendOptions, open_backend

NAMED_SIZES = {"256": (256, 256), "512": (512, 512), "360p": (360, 640), "480p": (480, 848), "720p": (720, 1280),
               "1080p": (1080, 1920)}  # fmt: skip


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``256,512x768,720p`` -> [(256, 256), (512, 768), (720, 1280)] (H, W)."""
    sizes = []
    for item in filter(None, (t.strip().lower() for t in text.split(","))):
        if item in NAMED_SIZES:
            sizes.append(NAMED_SIZES[item])
        elif "x" in item:
            h, w = item.split("x")
            sizes.append((int(h), int(w)))
        elif item.isdigit():
            sizes.append((int(item), int(item)))
        else:
            raise ValueError(f"bad size {item!r}: use 256, HxW or 720p")
    return sizes


@dataclass
class Variant:
    name: str  # pytorch | onnxruntime-fp32 | ... | tensorrt-int8
    precision: str
    model_path: Path
    options: BackendOptions


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_gpu_mb() -> float | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    return None


def measure(backend: Backend, hw: tuple[int, int], batch: int, iterations: int, warmup: int,
            seed: int = 0) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(batch)]
    x = frames_to_tensor(frames)
    for _ in range(warmup):
        backend.infer(x)
    pre, infer, post, gpu = [], [], [], []
    for _ in range(iterations):
        t0 = time.perf_counter()
        x = frames_to_tensor(frames)
        t1 = time.perf_counter()
        timed = getattr(backend, "infer_timed", None)
        if timed is not None:  # CUDA backends: H2D / compute / D2H from CUDA events
            y, parts = timed(x)
            gpu.append(parts)
        else:
            y = backend.infer(x)
        t2 = time.perf_counter()
        tensor_to_frames(y, hw)
        t3 = time.perf_counter()
        pre.append((t1 - t0) * 1e3)
        infer.append((t2 - t1) * 1e3)
        post.append((t3 - t2) * 1e3)
    row: dict[str, Any] = {
        "height": hw[0], "width": hw[1], "batch": batch, "iterations": iterations, "warmup": warmup,
        "latency_ms": latency_stats(infer, batch), "host_pre_ms": latency_stats(pre, batch),
        "host_post_ms": latency_stats(post, batch), "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_gpu_mb": peak_gpu_mb(), "gpu_ms": None, "samples_ms": infer,
    }  # fmt: skip
    if gpu:
        row["gpu_ms"] = {k: latency_stats([g[k] for g in gpu]) for k in gpu[0]}
    return row


def prepare_variants(model: str | os.PathLike[str], wanted: Sequence[str], workdir: Path, calib: str | None,
                     threads: int = 0) -> tuple[list[Variant], list[str]]:  # fmt: skip
    """Build every requested variant that this machine can run; return (variants, skipped notes)."""
    model = Path(model)
    variants: list[Variant] = []
    notes: list[str] = []
    cpu = BackendOptions(device="cpu", provider="cpu", threads=threads)
    onnx_fp32: Path | None = model if model.suffix == ".onnx" else None
    if model.suffix in (".pth", ".pt"):
        if "pytorch" in wanted:
            variants.append(Variant("pytorch", "fp32", model, cpu))
        if any(w.startswith(("onnxruntime", "tensorrt")) for w in wanted):
            from cyclegan_edge.export.onnx_export import export_onnx
            from cyclegan_edge.models import load_generator

            onnx_fp32 = export_onnx(load_generator(model), workdir / "model.onnx")
    if onnx_fp32 is None:
        return variants, notes
    onnx_by_precision = {"fp32": onnx_fp32}
    if any(w.endswith("fp16") for w in wanted):
        from cyclegan_edge.export.fp16 import export_fp16

        onnx_by_precision["fp16"] = export_fp16(onnx_fp32, workdir / "model.fp16.onnx")
    if any(w.endswith("int8") for w in wanted):
        if calib:
            from cyclegan_edge.export.int8 import Int8Options, quantize_int8

            onnx_by_precision["int8"] = quantize_int8(onnx_fp32, workdir / "model.int8.onnx", calib, Int8Options(calib_count=32))
        else:
            notes.append("int8 variants skipped: give --calib DIR (real images) to calibrate")
    for precision, path in onnx_by_precision.items():
        if f"onnxruntime-{precision}" in wanted:
            variants.append(Variant(f"onnxruntime-{precision}", precision, path, cpu))
    trt_wanted = [w for w in wanted if w.startswith("tensorrt")]
    for w in trt_wanted:
        precision = w.split("-")[1]
        src = onnx_by_precision.get(precision)  # the precision lives in the ONNX: works weakly and strongly typed
        if src is None:
            continue
        try:
            from cyclegan_edge.export.tensorrt_build import EngineOptions, build_engine

            plan = build_engine(src, workdir / f"model.{precision}.plan", EngineOptions(precision=precision))
            variants.append(Variant(w, precision, plan, BackendOptions()))
        except Exception as e:  # no TensorRT / no GPU here, or this precision unsupported: say so in the report
            notes.append(f"{w} skipped: {str(e).splitlines()[0]}")
    return variants, notes


def run_benchmark(model: str | os.PathLike[str], wanted: Sequence[str], sizes: Sequence[tuple[int, int]],
                  batches: Sequence[int], iterations: int, warmup: int, calib: str | None = None,
                  threads: int = 0, progress: Any = None) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        variants, notes = prepare_variants(model, wanted, Path(tmp), calib, threads)
        for v in variants:
            backend = open_backend(v.model_path, v.options)
            for hw in sizes:
                for b in batches:
                    row = {"variant": v.name, "precision": v.precision, "backend": backend.name,
                           **measure(backend, hw, b, iterations, warmup)}  # fmt: skip
                    rows.append(row)
                    if progress is not None:
                        progress(row)
            backend.close()
    return rows, notes


def add_ratios(rows: list[dict[str, Any]], baseline: str) -> None:
    """ratio_to_baseline = baseline p50 / this p50 (>1: faster than the baseline)."""
    base = {(r["height"], r["width"], r["batch"]): r["latency_ms"]["p50"] for r in rows if r["variant"] == baseline}
    for r in rows:
        b = base.get((r["height"], r["width"], r["batch"]))
        r["ratio_to_baseline"] = round(b / r["latency_ms"]["p50"], 3) if b else None
