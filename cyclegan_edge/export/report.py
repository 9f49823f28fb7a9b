"""Parity and quality reports: every exported model is checked against its source."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.cv import cv2
from cyclegan_edge.export.quality import error_stats, psnr, ssim
from cyclegan_edge.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.images import list_files, read_image

PARITY_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (360, 640), (301, 451))  # the last exercises padding
PARITY_BATCHES = (1, 4)
# One uint8 grey level is 2/255 = 7.8e-3 in the model's [-1, 1] range. Measured FP32 ONNX Runtime
# vs PyTorch max abs error: 1e-5..5e-5 on horse2zebra test images, up to 1.6e-4 on the bundled
# photos (different conv algorithms; InstanceNorm amplifies rounding in low-variance channels).
# 5e-4 is 1/16 of a grey level: a real export bug (padding, weights, layout) is >= 1e-2.
FP32_TOLERANCE = 5e-4


def ort_session(path: str | os.PathLike[str], threads: int = 0) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run_ort(session: Any, batch: np.ndarray) -> np.ndarray:
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return np.asarray(session.run(None, {inp.name: batch.astype(dtype)})[0], dtype=np.float32)


def load_test_images(folder: str | os.PathLike[str], count: int) -> list[np.ndarray]:
    files = list_files([folder])[:count]
    if not files:
        raise ValueError(f"{folder}: no test images")
    return [read_image(p) for p in files]


def resized(images: Sequence[np.ndarray], hw: tuple[int, int]) -> list[np.ndarray]:
    return [cv2().resize(i, (hw[1], hw[0]), interpolation=cv2().INTER_AREA) for i in images]


def parity_vs_torch(model: Any, onnx_path: str | os.PathLike[str], images: Sequence[np.ndarray],
                    tolerance: float = FP32_TOLERANCE) -> dict[str, Any]:  # fmt: skip
    """Max/mean abs error of ONNX Runtime vs PyTorch on real images, per size and batch."""
    import torch

    session = ort_session(onnx_path)
    rows = []
    for hw in PARITY_SIZES:
        frames = resized(images, hw)
        for b in PARITY_BATCHES:
            batch = frames_to_tensor([frames[i % len(frames)] for i in range(b)])
            with torch.no_grad():
                ref = model(torch.from_numpy(batch)).numpy()
            rows.append({"height": hw[0], "width": hw[1], "batch": b, **error_stats(ref, run_ort(session, batch))})
    worst = max(r["max_abs"] for r in rows)
    return {"reference": "pytorch-fp32", "tolerance_max_abs": tolerance, "max_abs": worst,
            "passed": worst <= tolerance, "cases": rows}  # fmt: skip


def quality_vs(reference_onnx: str | os.PathLike[str], test_onnx: str | os.PathLike[str],
               images: Sequence[np.ndarray]) -> dict[str, Any]:  # fmt: skip
    """PSNR/SSIM of the test model's output images against the reference model's (uint8)."""
    ref_s, test_s = ort_session(reference_onnx), ort_session(test_onnx)
    psnrs, ssims, errs = [], [], []
    for img in images:
        batch = frames_to_tensor([img])
        a, b = run_ort(ref_s, batch), run_ort(test_s, batch)
        fa, fb = tensor_to_frames(a, img.shape[:2])[0], tensor_to_frames(b, img.shape[:2])[0]
        psnrs.append(psnr(fa, fb))
        ssims.append(ssim(fa, fb))
        errs.append(error_stats(a, b)["max_abs"])
    return {"images": len(images), "psnr_db_mean": float(np.mean(psnrs)), "psnr_db_min": float(np.min(psnrs)),
            "ssim_mean": float(np.mean(ssims)), "max_abs": float(np.max(errs))}  # fmt: skip


def ort_latency_ms(onnx_path: str | os.PathLike[str], hw: tuple[int, int] = (256, 256), runs: int = 20,
                   warmup: int = 3) -> dict[str, float]:  # fmt: skip
    session = ort_session(onnx_path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, *hw)).astype(np.float32)
    for _ in range(warmup):
        run_ort(session, x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run_ort(session, x)
        times.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


def machine_line() -> str:
    from cyclegan_edge.bench.machine import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report_path(model_path: str | os.PathLike[str]) -> Path:
    return Path(str(model_path) + ".parity.json")
