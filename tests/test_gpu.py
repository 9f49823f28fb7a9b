"""Checks that need an NVIDIA GPU (and TensorRT / TensorRT-RTX for the engine path).

Run them all on a GPU machine with benchmarks/gpu/run_gpu_checks.sh; here they skip with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cyclegan_edge.imaging.frames import frames_to_tensor
from cyclegan_edge.runtime.backends import BackendOptions, TimedBackend, open_backend

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def _tensorrt_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU (none on this machine)"
    try:
        from cyclegan_edge.trt.loader import import_cudart, import_tensorrt

        import_tensorrt()
        import_cudart()
    except Exception as e:
        return f"needs TensorRT or TensorRT-RTX and cuda-python ({str(e).splitlines()[0][:80]})"
    return None


tensorrt_available = pytest.mark.skipif(_tensorrt_reason() is not None, reason=str(_tensorrt_reason()))


def _frames(horse_paths: list[Path], n: int = 2) -> np.ndarray:
    from cyclegan_edge.imaging.io import read_image

    return frames_to_tensor([read_image(p) for p in horse_paths[:n]])


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_pytorch_cuda_backend_matches_cpu(compressed_g_path: Path, horse_paths: list[Path], fp16: bool) -> None:
    from cyclegan_edge.imaging.quality import psnr
    from cyclegan_edge.imaging.frames import tensor_to_frames

    x = _frames(horse_paths)
    cpu = open_backend(compressed_g_path, BackendOptions(device="cpu")).infer(x)
    gpu = open_backend(compressed_g_path, BackendOptions(device="cuda", fp16=fp16))
    assert isinstance(gpu, TimedBackend)
    out, parts = gpu.infer_timed(x)
    if fp16:  # judged as images, like the export report: a few pixels differ by several grey levels
        a, b = tensor_to_frames(cpu, (256, 256)), tensor_to_frames(out, (256, 256))
        assert min(psnr(i, j) for i, j in zip(a, b)) > 40.0
    else:  # FP32, not cuDNN's default TF32
        assert float(np.abs(out - cpu).max()) < 1e-3
    assert set(parts) == {"h2d", "compute", "d2h"} and all(v > 0 for v in parts.values())


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_cuda_graphs_match_eager_and_follow_shape_changes(compressed_g_path: Path, horse_paths: list[Path],
                                                          fp16: bool) -> None:  # fmt: skip
    x = _frames(horse_paths)  # 2x3x256x256
    eager = open_backend(compressed_g_path, BackendOptions(device="cuda", fp16=fp16))
    graphs = open_backend(compressed_g_path, BackendOptions(device="cuda", fp16=fp16, cuda_graphs=True))
    assert graphs.name.endswith(":graphs")
    first, single, again = graphs.infer(x), graphs.infer(x[:1]), graphs.infer(x)  # capture, new shape, replay
    ref = eager.infer(x)
    tolerance = 5e-2 if fp16 else 1e-4
    assert float(np.abs(first - ref).max()) < tolerance and float(np.abs(single - ref[:1]).max()) < tolerance
    # a replay reads the new input, not a stale one (cuDNN's FP32 kernels are not bitwise reproducible: ~1e-7)
    assert np.allclose(first, again, rtol=0, atol=1e-5)
    forward = graphs.forward  # type: ignore[attr-defined]
    assert len(forward.graphs) == 2 and not forward.eager_shapes  # both shapes ran as graphs
    assert isinstance(graphs, TimedBackend)
    out, parts = graphs.infer_timed(x)
    assert np.allclose(out, first, rtol=0, atol=1e-5) and parts["compute"] > 0


@pytest.mark.gpu
@tensorrt_available
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_builds_and_matches_pytorch(compressed_g_path: Path, horse_paths: list[Path], tmp_path: Path,
                                                    precision: str) -> None:  # fmt: skip
    from cyclegan_edge.export.fp16 import export_fp16
    from cyclegan_edge.export.int8 import Int8Options, quantize_int8
    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.imaging.quality import psnr
    from cyclegan_edge.trt.build import EngineOptions, build_engine
    from cyclegan_edge.imaging.frames import tensor_to_frames
    from cyclegan_edge.models import load_generator
    from cyclegan_edge.trt.plan import EngineCompatError

    onnx_path = export_onnx(load_generator(compressed_g_path), tmp_path / "g.onnx")
    if precision == "fp16":
        onnx_path = export_fp16(onnx_path, tmp_path / "g.fp16.onnx")
    if precision == "int8":
        calib = horse_paths[0].parents[1] / "trainA"
        onnx_path = quantize_int8(onnx_path, tmp_path / "g.int8.onnx", calib, Int8Options(calib_count=32))
    plan = build_engine(onnx_path, tmp_path / f"g.{precision}.plan",
                        EngineOptions(precision=precision, min_shape="1x3x256x256", opt_shape="2x3x256x256",
                                      max_shape="4x3x512x512", timing_cache=str(tmp_path / "timing.cache")))  # fmt: skip
    assert (tmp_path / f"g.{precision}.plan.json").is_file()
    x = _frames(horse_paths)
    try:
        engine = open_backend(plan)
    except EngineCompatError as e:  # TensorRT-RTX on a GPU it does not support (an H100, say): said in one line
        assert "\n" not in str(e) and "RTX GPUs" in str(e)
        pytest.skip(f"engine built; this GPU cannot run it: {e}")
    ref = open_backend(compressed_g_path, BackendOptions(device="cpu")).infer(x)
    out = engine.infer(x)
    if precision == "int8":  # judged as images, like the export report
        a, b = tensor_to_frames(ref, (256, 256)), tensor_to_frames(out, (256, 256))
        assert min(psnr(i, j) for i, j in zip(a, b)) > 28.0
    else:
        assert float(np.abs(out - ref).max()) < (2e-3 if precision == "fp32" else 5e-2)
    assert isinstance(engine, TimedBackend)
    _, parts = engine.infer_timed(x)
    assert set(parts) == {"h2d", "compute", "d2h"} and parts["compute"] > 0
    engine.close()


@pytest.mark.gpu
@cuda
def test_cuda_training_with_amp_and_channels_last(horse_paths: list[Path], tmp_path: Path) -> None:
    from cyclegan_edge.train.config import TrainConfig
    from cyclegan_edge.train.trainer import Trainer

    root = horse_paths[0].parents[1]
    cfg = TrainConfig(dataroot=str(root), a_dir=str(root / "testA"), b_dir=str(root / "testB"), netG="mobile",
                      load_size=143, crop_size=128, max_iters=60, workers=2, output=str(tmp_path), name="amp",
                      amp=True, channels_last=True, log_every=10, sample_every=1000)  # fmt: skip
    trainer = Trainer(cfg)
    assert trainer.amp_dtype in (torch.bfloat16, torch.float16)
    assert trainer.fit() == 0
    rows = (tmp_path / "amp" / "log.csv").read_text().splitlines()[1:]
    assert len(rows) == 60
