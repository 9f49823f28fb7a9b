"""Timing a backend: N timed calls with host pre/post timed on their own, latency statistics (percentiles by
linear interpolation, NumPy's default "type 7") and memory peaks. Used by export reports and the bench."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.runtime.backends import Backend, TimedBackend

PERCENTILES = (50, 90, 99)


def throughput_fps(batch: int, p50_ms: float) -> float:
    """Frames per second at the median (p50) call: the one definition of FPS in stats, bench reports, tables,
    plots and ``--compare``."""
    return batch * 1000.0 / p50_ms


def latency_stats(times_ms: Sequence[float], batch: int = 1) -> dict[str, float]:
    """min/mean/p50/p90/p99/max in ms, and throughput in frames/s (batch frames per call at the median
    latency: bench's one FPS definition)."""
    if len(times_ms) == 0:
        raise ValueError("no timings")
    t = np.asarray(times_ms, dtype=np.float64)
    out = {"min": float(t.min()), "mean": float(t.mean())}
    out.update({f"p{p}": float(np.percentile(t, p)) for p in PERCENTILES})
    out["max"] = float(t.max())
    out["fps"] = throughput_fps(batch, out["p50"])
    return out


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_cuda_peak_mb(backend: Backend, reset: bool = False) -> float | None:
    """PyTorch's CUDA allocator peak in MiB since the last ``reset``, for a PyTorch CUDA backend; None for any other
    (ONNX Runtime and TensorRT allocate outside it: no figure rather than another variant's)."""
    if not backend.name.startswith("pytorch:cuda"):
        return None
    import torch

    device = getattr(backend, "device", None)  # cuda:1, say: not the current device
    if reset:
        torch.cuda.reset_peak_memory_stats(device)
        return None
    return float(torch.cuda.max_memory_allocated(device) / 2**20)


def measure(backend: Backend, hw: tuple[int, int], batch: int, iterations: int, warmup: int,
            seed: int = 0) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(batch)]
    x = frames_to_tensor(frames)
    torch_cuda_peak_mb(backend, reset=True)  # this case's peak, not the largest case's so far
    for _ in range(warmup):
        backend.infer(x)
    pre, infer, post, gpu = [], [], [], []
    started = time.monotonic()  # the timed calls' window: power samples (a Jetson's) are taken from it
    for _ in range(iterations):
        t0 = time.perf_counter()
        x = frames_to_tensor(frames)
        t1 = time.perf_counter()
        if isinstance(backend, TimedBackend):  # CUDA backends: H2D / compute / D2H from CUDA events
            y, parts = backend.infer_timed(x)
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
        "peak_gpu_mb": torch_cuda_peak_mb(backend), "gpu_ms": None, "samples_ms": infer,
        "timed_window": (started, time.monotonic()),
    }  # fmt: skip
    if gpu:
        row["gpu_ms"] = {k: latency_stats([g[k] for g in gpu]) for k in gpu[0]}
    return row
