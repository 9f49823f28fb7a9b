"""Parity and quality reports: every exported model is checked against its source."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.imaging.quality import error_stats, psnr, ssim
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.imaging.resize import resized
from cyclegan_edge.runtime.backends import (CONVERSION_PRECISION_HINT, BackendOptions, OnnxRuntimeBackend, backend_for,
                                            open_backend)  # fmt: skip

PARITY_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (360, 640), (301, 451))  # the last exercises padding
PARITY_BATCHES = (1, 4)
# One uint8 grey level is 2/255 = 7.8e-3 in the model's [-1, 1] range. Measured FP32 ONNX Runtime
# vs PyTorch max abs error: 1e-5..5e-5 on horse2zebra test images, up to 1.6e-4 on the bundled
# photos (different conv algorithms; InstanceNorm amplifies rounding in low-variance channels).
# 5e-4 is 1/16 of a grey level: a real export bug (padding, weights, layout) is >= 1e-2.
FP32_TOLERANCE = 5e-4


def ort_backend(path: str | os.PathLike[str]) -> OnnxRuntimeBackend:
    """The runtime's own ONNX Runtime backend, on the CPU provider, so reports measure what runs."""
    return OnnxRuntimeBackend(Path(path), BackendOptions(provider="cpu"))


def parity_vs_torch(model: Any, onnx_path: str | os.PathLike[str], images: Sequence[np.ndarray],
                    tolerance: float = FP32_TOLERANCE, sizes: Sequence[tuple[int, int]] = PARITY_SIZES,
                    batches: Sequence[int] = PARITY_BATCHES) -> dict[str, Any]:  # fmt: skip
    """Max/mean abs error of ONNX Runtime vs PyTorch on real images, per size and batch."""
    import torch

    backend = ort_backend(onnx_path)
    rows = []
    for hw in sizes:
        frames = resized(images, hw)
        for b in batches:
            batch = frames_to_tensor([frames[i % len(frames)] for i in range(b)])
            with torch.no_grad():
                ref = model(torch.from_numpy(batch)).numpy()
            rows.append({"height": hw[0], "width": hw[1], "batch": b, **error_stats(ref, backend.infer(batch))})
    worst = max(r["max_abs"] for r in rows)
    return {"reference": "pytorch-fp32", "runtime": backend.name, "tolerance_max_abs": tolerance, "max_abs": worst,
            "passed": worst <= tolerance, "cases": rows}  # fmt: skip


def quality_vs(reference_onnx: str | os.PathLike[str], test_onnx: str | os.PathLike[str],
               images: Sequence[np.ndarray], test_options: BackendOptions | None = None) -> dict[str, Any]:  # fmt: skip
    """PSNR/SSIM of the test model's output images against the reference model's (uint8), both on ONNX Runtime's
    CPU provider (named in the result: another backend, OpenVINO's bf16 or TensorRT's FP16, rounds otherwise), or
    the test model on the backend ``test_options`` open."""
    ref_b = ort_backend(reference_onnx)
    test_b = ort_backend(test_onnx) if test_options is None else open_backend(Path(test_onnx), test_options)
    psnrs, ssims, errs = [], [], []
    for img in images:
        batch = frames_to_tensor([img])
        a, b = ref_b.infer(batch), test_b.infer(batch)
        fa, fb = tensor_to_frames(a, img.shape[:2])[0], tensor_to_frames(b, img.shape[:2])[0]
        psnrs.append(psnr(fa, fb))
        ssims.append(ssim(fa, fb))
        errs.append(error_stats(a, b)["max_abs"])
    for backend in (ref_b, test_b):
        backend.close()
    return {"images": len(images), "runtime": test_b.name, "psnr_db_mean": float(np.mean(psnrs)),
            "psnr_db_min": float(np.min(psnrs)), "ssim_mean": float(np.mean(ssims)),
            "max_abs": float(np.max(errs))}  # fmt: skip


def quality_as_run_here(reference_onnx: str | os.PathLike[str], test_onnx: str | os.PathLike[str],
                        images: Sequence[np.ndarray]) -> dict[str, Any] | None:  # fmt: skip
    """quality_vs with the test model on the backend and precision the runtime runs it with on this CPU (OpenVINO
    at its own precision where installed: bf16 on CPUs that have it); None where that is ONNX Runtime's CPU
    provider, the figure already given."""
    options = BackendOptions(device="cpu", precision_hint=CONVERSION_PRECISION_HINT)
    if backend_for(Path(test_onnx), options) == "onnxruntime":  # not measured twice
        return None
    q = quality_vs(reference_onnx, test_onnx, images, options)
    return None if q["runtime"].startswith("onnxruntime:CPU") else q  # OpenVINO could not run it: the fallback


def report_path(model_path: str | os.PathLike[str]) -> Path:
    return Path(str(model_path) + ".parity.json")
