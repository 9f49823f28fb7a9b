"""INT8 with explicit quantization (Q/DQ nodes), calibrated on real images, for one of two targets.

``tensorrt`` (the default, what TensorRT accepts): symmetric signed int8 (zero points 0), per-channel
weights, Q/DQ pairs in front of Conv/ConvTranspose only. InstanceNorm, Pad, ReLU, Add and Tanh stay in
float: the norm needs float statistics and the others gain nothing. Optionally the first/last convs and
the ConvTranspose layers keep full precision (they see the image itself or produce it).
Q/DQ pairs sit on conv inputs only, never on conv outputs, so every InstanceNorm sees float data (every
conv of the generator family but the last, which stays float, feeds an InstanceNorm: there is no conv
output worth quantizing).

``cpu`` (OpenVINO / oneDNN; TensorRT cannot build it): uint8 activations with a zero point (the CPU
kernels' native input, so asymmetric ranges cost nothing and ReLU outputs get all 256 levels) and the
depthwise convs in float (with AVX2, int8 depthwise plus its quantize step is slower than float).

Run by ONNX Runtime, measured on the GAN Compression horse->zebra generator against its FP32 ONNX (16
held-out horse2zebra/testA images, 32 calibration images from trainA, percentile 99.99), tensorrt target:
  default (first/last conv and ConvTranspose in float)          34.3 dB PSNR, SSIM 0.972
  depthwise convs also kept in float (keep_depthwise=True)      35.7 dB, SSIM 0.982
  ConvTranspose quantized too (keep_conv_transpose=False)       29.2 dB, SSIM 0.895

Run by OpenVINO 2026.4 (f32 pinned, AVX2 CPU), against ONNX Runtime FP32 on 12 testA images, 32
calibration images; median latency at 256x256 over 24 calls interleaved with OpenVINO FP32 (a heavily
loaded 2-core machine; benchmarks/cpu_backends_cpu.txt has the full run):
  tensorrt target                                                32.1 dB (min 27.9), 1.15x FP32
  uint8 activations only                                         33.6 dB (min 28.2), 1.22x
  cpu target (uint8 activations, depthwise in float)             34.3 dB (min 28.7), 1.37x
  uint8, everything quantized                                    23.3 dB (min 20.5), 1.39x
OpenVINO's int8 kernels lose 0.5-2 dB against ONNX Runtime running the same Q/DQ model on AVX2 CPUs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.atomic import atomic_path
from cyclegan_edge.export.onnx_export import set_metadata
from cyclegan_edge.imaging.frames import frame_to_tensor
from cyclegan_edge.imaging.files import IMAGE_EXTENSIONS, list_files, spread
from cyclegan_edge.imaging.io import decoded_images
from cyclegan_edge.imaging.resize import resized


CALIB_METHODS = ("entropy", "minmax", "percentile")
INT8_TARGETS = ("tensorrt", "cpu")


@dataclass(frozen=True)
class Int8Options:
    calib_method: str = "percentile"
    calib_count: int = 64
    calib_size: tuple[int, int] = (256, 256)  # images are resized to this (H, W) for calibration
    keep_first_last: bool = True
    keep_conv_transpose: bool = True
    keep_depthwise: bool = False
    percentile: float = 99.99
    target: str = "tensorrt"  # tensorrt: symmetric int8 activations | cpu: uint8 activations, depthwise convs in float
    # Images whose intermediate tensors are held at once while calibrating (0: all, ONNX Runtime's default);
    # the ranges agree within 0.1% (see CalibrationImages). Percentile and minmax only: entropy takes all.
    images_per_pass: int = 1


def calibration_images(calib: str | os.PathLike[str], count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """The calibration images (uint8 BGR, resized to ``size``; a quarter of their tensors' memory): up to ``count``
    image files (0: all) picked evenly across the folder ``calib`` (or one image file). Each unreadable file is
    skipped with a warning naming it; ValueError naming ``calib`` when no image is usable; FileNotFoundError when
    it is not there."""
    needs = "INT8 calibration needs a folder of real images (JPEG, PNG, BMP, WebP or TIFF) from the model's input domain"
    if Path(calib).is_file() and Path(calib).suffix.lower() not in IMAGE_EXTENSIONS:  # a video, say: not read at all
        raise ValueError(f"{calib}: not an image file; {needs}")
    files = spread(list_files([calib]), count)  # picks over the whole folder, not its first N
    images = [resized([image], size)[0] for _, image in decoded_images(files, calib)]
    if not images:
        found = ("not a readable image" if Path(calib).is_file() else
                 f"none of its {len(files)} image files is readable" if files else "no image files in this folder")
        raise ValueError(f"{calib}: {found}; {needs}")
    return images


class CalibrationImages:
    """ONNX Runtime's calibration data reader (``get_next``; the ABC accepts any class that has it): the
    calibration images, one batch of 1 each, with a progress bar. ``__len__`` and ``set_range`` let ONNX Runtime
    (1.19+, ``CalibStridedMinMax``) calibrate one image at a time: its histogram calibrators otherwise keep every
    intermediate tensor of every image (measured: 5.9 GB for 32 images of the compressed generator, 0.3 GB so)."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray]) -> None:
        from cyclegan_edge.progress import progress_bar

        self.input_name, self.images = input_name, images
        self.next, self.end = 0, len(images)
        self.bar = progress_bar(total=len(images), desc="INT8 calibration", unit="img", leave=False)

    def __len__(self) -> int:
        return len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, min(end_index, len(self.images))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= self.end:
            return None
        image = self.images[self.next]
        self.next += 1
        self.bar.update(1)
        return {self.input_name: frame_to_tensor(image)}

    def close(self) -> None:
        self.bar.close()


def image_count(n: int) -> str:
    return f"{n} image" + ("" if n == 1 else "s")


def excluded_nodes(model: Any, opts: Int8Options) -> list[str]:
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    names: list[str] = []
    if opts.keep_first_last and convs:
        names += [convs[0].name, convs[-1].name]
    if opts.keep_conv_transpose:
        names += [n.name for n in convs if n.op_type == "ConvTranspose"]
    if opts.keep_depthwise or opts.target == "cpu":
        names += [n.name for n in convs if n.op_type == "Conv" and _group(n) > 1]
    return names


def _group(node: Any) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "group"), 1)


def quantize_int8(onnx_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                  calib: str | os.PathLike[str] | Sequence[np.ndarray],
                  opts: Int8Options | None = None) -> Path:  # fmt: skip
    """Calibrate on ``calib`` (a folder of images, or the images of ``calibration_images``) and write the Q/DQ
    model to ``out_path``; its metadata records how many images calibrated it."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    o = opts or Int8Options()
    if o.calib_method not in CALIB_METHODS:
        raise ValueError(f"calibration method must be one of {CALIB_METHODS}")
    if o.target not in INT8_TARGETS:
        raise ValueError(f"INT8 target must be one of {INT8_TARGETS}")
    unsigned = o.target == "cpu"
    model = onnx.load(str(onnx_path))
    if isinstance(calib, (str, os.PathLike)):
        images: Sequence[np.ndarray] = calibration_images(calib, o.calib_count, o.calib_size)
    else:
        images = calib
    reader = CalibrationImages(model.graph.input[0].name, images)
    # ONNX Runtime needs a stride that divides the count. Entropy all at once: its histograms merge at the first
    # pass's bin width, and a narrow first image could multiply the bins its threshold search walks through.
    stride = math.gcd(o.images_per_pass, len(images)) if o.calib_method != "entropy" else 0
    method = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
              "percentile": CalibrationMethod.Percentile}[o.calib_method]  # fmt: skip
    out = Path(out_path)
    quiet = logging.getLogger()  # ONNX Runtime's quantizer prints progress and a pre-processing hint
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with atomic_path(out) as tmp, contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(onnx_path), str(tmp), reader, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv", "ConvTranspose"], per_channel=True,
                activation_type=QuantType.QUInt8 if unsigned else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded_nodes(model, o), calibrate_method=method,
                extra_options={
                    "ActivationSymmetric": not unsigned, "WeightSymmetric": True,
                    "CalibPercentile": o.percentile,
                    "QDQOpTypePerChannelSupportToAxis": {"ConvTranspose": 1},
                    "DedicatedQDQPair": False,
                    # Biases stay float: TensorRT's parser rejects an INT32 DequantizeLinear (seen with
                    # TensorRT-RTX 1.7: "input has type Int32 but must have type FP8, FP4, Int4, Int8, or UInt8").
                    "QuantizeBias": False,
                    # Q/DQ on conv *inputs* only: the norm that follows each conv must see float data.
                    "OpTypesToExcludeOutputQuantization": ["Conv", "ConvTranspose"],
                    **({"CalibStridedMinMax": stride} if stride else {}),  # any calibrator, despite its name
                },
            )  # fmt: skip
            q = onnx.load(str(tmp))
            src_meta = {p.key: p.value for p in model.metadata_props}
            set_metadata(q, {**src_meta, "precision": "int8-qdq", "int8_target": o.target,
                             "calibration": f"{o.calib_method}, {image_count(len(images))}"})  # fmt: skip
            onnx.save(q, str(tmp))
    finally:
        quiet.setLevel(level)
        reader.close()
    return out


def cpu_speedup(fp32_onnx: str | os.PathLike[str], int8_onnx: str | os.PathLike[str], hw: tuple[int, int] = (256, 256),
                rounds: int = 5, calls: int = 4, threads: int = 0) -> dict[str, Any]:  # fmt: skip
    """FP32 and INT8 latency (ms, batch 1) on the backend the runtime picks for an .onnx on this CPU (OpenVINO
    on x86-64 when installed, else ONNX Runtime), interleaved round by round so shared-machine noise hits both."""
    import time

    from cyclegan_edge.runtime.backends import BackendOptions, open_backend

    opts = BackendOptions(device="cpu", threads=threads)
    backends = {"fp32": open_backend(fp32_onnx, opts), "int8": open_backend(int8_onnx, opts)}
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, *hw)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in backends}
    for b in backends.values():
        b.infer(x)
    for _ in range(rounds):
        for k, b in backends.items():
            for _ in range(calls):
                t = time.perf_counter()
                b.infer(x)
                times[k].append((time.perf_counter() - t) * 1e3)
    out: dict[str, Any] = {"hw": list(hw), "calls": rounds * calls}
    for k, b in backends.items():
        out[k] = {"backend": b.name, "median_ms": float(np.median(times[k])), "min_ms": float(np.min(times[k]))}
        b.close()
    out["speedup_median"] = out["fp32"]["median_ms"] / out["int8"]["median_ms"]
    return out
