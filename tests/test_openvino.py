"""The OpenVINO backend: parity with ONNX Runtime on real images, the precision it names, IR files, requests in
flight, how ``auto`` picks it, the one-line fallback when openvino is missing, and the runtime CLI on it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import HORSES, ONE_THREAD, need
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.imaging.quality import psnr
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.imaging.io import load_test_images
from cyclegan_edge.imaging.resize import resized
from cyclegan_edge.runtime.backends import (
    AsyncBackend,
    BackendError,
    BackendOptions,
    OnnxRuntimeBackend,
    backend_for,
    open_backend,
    prefers_openvino,
)
from cyclegan_edge.runtime.bundled import DEFAULT_DEMO, DEMO_MODELS
from cyclegan_edge.runtime.openvino_backend import OpenVinoBackend
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, inference_size
from cyclegan_edge.runtime.sinks import MemorySink
from cyclegan_edge.runtime.sources import open_source

MODEL = ASSETS_DIR / "photo2monet.onnx"
DEMO_STEM = DEMO_MODELS[DEFAULT_DEMO]
OV = BackendOptions(threads=2, backend="openvino")
ORT = BackendOptions(threads=2, backend="onnxruntime")
# OpenVINO f32 vs ONNX Runtime FP32, measured on the bundled photos (native sizes and 256x256) and 4 horse2zebra
# test photos, 2 threads, AVX2: max abs 4.5e-6..4.9e-5 in [-1, 1] units, uint8 outputs within one grey level. The
# bound keeps 4x headroom for other CPUs' kernels (AVX-512 sums in another order) and is still 1/40 of a grey level
# (7.8e-3); bf16 (~47 dB PSNR) or a layout/padding bug is >= 1e-2.
PARITY_MAX_ABS = 2e-4
ENV = {**os.environ, **ONE_THREAD}


@pytest.fixture(scope="module")
def ov() -> Any:
    """The openvino module; tests that need it skip where it is not installed (aarch64, Python < 3.10)."""
    return pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def ov_backend(ov: Any) -> OpenVinoBackend:
    b = open_backend(MODEL, OV)
    assert isinstance(b, OpenVinoBackend)
    return b


@pytest.fixture(scope="module")
def ort_backend() -> OnnxRuntimeBackend:
    b = open_backend(MODEL, ORT)
    assert isinstance(b, OnnxRuntimeBackend)
    return b


def real_images() -> list[np.ndarray]:
    return load_test_images(ASSETS_DIR / "images", 3)


def test_parity_with_onnxruntime_on_real_images(ov_backend: OpenVinoBackend, ort_backend: OnnxRuntimeBackend) -> None:
    images = real_images()
    cases = [frames_to_tensor([images[0]])]  # 300x451: padded to 300x452 (the tensor keeps the padding)
    cases += [frames_to_tensor(resized([img], (256, 256))) for img in images]
    cases += [frames_to_tensor(resized(images[:2], (128, 192)))]  # batch 2
    for x in cases:
        a, b = ov_backend.infer(x), ort_backend.infer(x)
        assert a.shape == b.shape == x.shape and a.dtype == np.float32
        assert np.abs(a - b).max() <= PARITY_MAX_ABS, x.shape
        for fa, fb in zip(tensor_to_frames(a), tensor_to_frames(b)):
            assert np.abs(fa.astype(int) - fb.astype(int)).max() <= 1


def test_horse_photos(ov_backend: OpenVinoBackend, ort_backend: OnnxRuntimeBackend) -> None:
    x = frames_to_tensor(load_test_images(need(HORSES), 2))
    assert np.abs(ov_backend.infer(x) - ort_backend.infer(x)).max() <= PARITY_MAX_ABS


def ov_default_precision(ov: Any) -> str:
    """What OpenVINO runs the model in when no precision is asked: bf16 on CPUs with native bf16, else f32."""
    compiled = ov.Core().compile_model(str(MODEL), "CPU", {})
    return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())


def test_precision_is_pinned_and_named(ov: Any, ov_backend: OpenVinoBackend) -> None:
    assert ov_backend.name == "openvino:CPU:f32"
    assert ov_backend.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    bf16 = open_backend(MODEL, BackendOptions(threads=2, backend="openvino", precision_hint="bf16"))
    ran = bf16.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    assert bf16.name == f"openvino:CPU:{ran}"  # what ran: f32 on CPUs without bf16 (AVX2), else bf16
    auto = open_backend(MODEL, BackendOptions(threads=2, backend="openvino", precision_hint="auto"))
    assert auto.name == f"openvino:CPU:{ov_default_precision(ov)}"  # OpenVINO's own choice, named
    with pytest.raises(BackendError, match="precision must be one of"):
        open_backend(MODEL, BackendOptions(backend="openvino", precision_hint="int4"))
    with pytest.raises(BackendError, match="device NPU7 is not available"):
        open_backend(MODEL, BackendOptions(backend="openvino", device="npu7"))


def test_int8_qdq_model_runs_int8_and_says_so(ov: Any, tmp_path: Path) -> None:
    from cyclegan_edge.export.int8 import Int8Options, quantize_int8

    opts = Int8Options(calib_count=3, calib_size=(64, 64))
    q = quantize_int8(MODEL, tmp_path / "m.int8.onnx", ASSETS_DIR / "images", opts)
    b = open_backend(q, OV)
    assert b.name == "openvino:CPU:f32+int8"
    x = frames_to_tensor(resized(real_images()[:1], (64, 96)))
    assert np.abs(b.infer(x) - open_backend(q, ORT).infer(x)).mean() < 0.05  # both run the same int8 model


def test_ir_xml_with_a_fixed_shape_runs_any_size(ov: Any, tmp_path: Path, ov_backend: OpenVinoBackend) -> None:
    model = ov.Core().read_model(str(MODEL))
    model.reshape([1, 3, 64, 64])
    ov.save_model(model, str(tmp_path / "m.xml"), compress_to_fp16=False)  # the default's fp16 weights differ by ~7e-4
    b = open_backend(tmp_path / "m.xml", BackendOptions(threads=2))  # auto: .xml is OpenVINO's
    assert isinstance(b, OpenVinoBackend)
    x = frames_to_tensor(resized(real_images()[:1], (96, 128)))
    assert np.abs(b.infer(x) - ov_backend.infer(x)).max() <= PARITY_MAX_ABS
    with pytest.raises(BackendError, match="onnxruntime backend runs .onnx models, not .xml"):
        open_backend(tmp_path / "m.xml", ORT)


def test_two_frames_in_flight(ov_backend: OpenVinoBackend) -> None:
    frames = [frames_to_tensor(resized(real_images()[i:i + 1], (64, 64))) for i in range(2)]
    first, second = ov_backend.submit(frames[0]), ov_backend.submit(frames[1])
    with pytest.raises(RuntimeError, match="busy"):
        ov_backend.submit(frames[0])
    b, a = second(), first()  # collected in any order, each its own frame's output
    assert np.array_equal(a, ov_backend.infer(frames[0])) and np.array_equal(b, ov_backend.infer(frames[1]))


def test_pipeline_keeps_frames_in_flight_in_order(ov: Any) -> None:
    """A video file through OpenVINO with 2 streams: the pipeline submits frames ahead (AsyncBackend) and
    writes each frame's own output, in order, as a frame-by-frame run would."""
    backend = open_backend(MODEL, BackendOptions(threads=2, backend="openvino", streams=2))
    assert isinstance(backend, AsyncBackend) and backend.in_flight == 2
    source, sink = open_source(str(ASSETS_DIR / "demo.mp4")), MemorySink()
    stats = Pipeline(source, backend, sink, PipelineOptions(size=64, max_frames=9)).run()
    source.close()
    assert stats.error is None and stats.frames_out == 9 == len(sink.frames_list)
    source = open_source(str(ASSETS_DIR / "demo.mp4"))
    inputs = [source.read() for _ in range(9)]
    source.close()
    hw = inference_size(inputs[0].shape[:2], PipelineOptions(size=64))
    for got, frame in zip(sink.frames_list, inputs):
        one = tensor_to_frames(backend.infer(frames_to_tensor(resized([frame], hw))), hw)[0]
        want = cv2.resize(one, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(got, want)


def test_selection_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import cyclegan_edge.runtime.backends as backends

    monkeypatch.setattr(backends, "ort_has_gpu_provider", lambda: False)
    auto = BackendOptions()
    assert prefers_openvino(auto, "x86_64") and prefers_openvino(auto, "AMD64")
    assert not prefers_openvino(auto, "aarch64")  # Jetson / ARM: ONNX Runtime (or TensorRT)
    assert not prefers_openvino(BackendOptions(provider="cpu"), "x86_64")  # an ONNX Runtime provider asked for
    assert not prefers_openvino(BackendOptions(device="cuda"), "x86_64")
    for device in ("gpu", "NPU", "gpu.1"):  # OpenVINO's devices: ONNX Runtime ran them on the CPU, unsaid
        assert prefers_openvino(BackendOptions(device=device), "x86_64"), device
    x86 = backends.platform.machine().lower() in backends.X86_64
    assert backend_for(Path("m.onnx"), auto) == ("openvino" if x86 else "onnxruntime")
    assert backend_for(Path("m.xml"), auto) == "openvino"
    assert backend_for(Path("m.pth"), auto) == "torch" and backend_for(Path("m.plan"), auto) == "tensorrt"
    assert backend_for(Path("m.onnx"), BackendOptions(backend="onnxruntime")) == "onnxruntime"
    monkeypatch.setattr(backends, "ort_has_gpu_provider", lambda: True)  # ONNX Runtime's GPU providers win
    assert not prefers_openvino(auto, "x86_64")
    with pytest.raises(BackendError, match="the tensorrt backend runs .plan/.engine models, not .onnx"):
        backend_for(Path("m.onnx"), BackendOptions(backend="tensorrt"))
    with pytest.raises(BackendError, match="unknown backend"):
        backend_for(Path("m.onnx"), BackendOptions(backend="tvm"))


def test_forced_openvino_without_openvino_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(BackendError, match=r"^openvino is not importable .*pip install 'cyclegan-edge\[openvino\]'$"):
        open_backend(MODEL, OV)


def runtime(*args: str, cwd: Path, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "--headless", "--max-frames", "6", "--size", "128", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def test_runtime_cli_on_openvino(ov: Any, tmp_path: Path) -> None:
    clip = str(ASSETS_DIR / "demo.mp4")
    r = runtime("--video", clip, "-o", "out.mp4", "--engine", str(MODEL), "--backend", "openvino", "--threads", "2",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    ran = ov_default_precision(ov)  # the runtime's default: OpenVINO's own precision (bf16 where the CPU has it)
    assert re.search(rf"^6 frames -> out.mp4 at [\d.]+ FPS \(model .*photo2monet.onnx, openvino:CPU:{ran}\)$", r.stdout,
                     re.M), r.stdout  # fmt: skip
    assert frame_count(tmp_path / "out.mp4") == 6
    r = runtime("--video", clip, "-o", "int8.mp4", "--backend", "openvino", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # no --engine: the bundled demo model's CPU INT8
    assert f"(model {DEMO_STEM}.int8.onnx (bundled; --model MODEL for another), openvino:CPU:{ran}+int8)" in r.stdout
    r = runtime("--video", clip, "-o", "f32.mp4", "--backend", "openvino", "--precision-hint", "f32", cwd=tmp_path)
    assert r.returncode == 0 and "openvino:CPU:f32+int8)" in r.stdout, r.stderr  # pinned: exact FP32 around int8


@pytest.mark.parametrize("stem", sorted(p.name.removesuffix(".int8.onnx") for p in ASSETS_DIR.glob("*.int8.onnx")))
def test_demo_model_int8_where_openvino_runs_it(ov: Any, stem: str) -> None:
    from cyclegan_edge.runtime.bundled import default_model

    fp32, int8 = ASSETS_DIR / f"{stem}.onnx", ASSETS_DIR / f"{stem}.int8.onnx"
    assert default_model(BackendOptions(backend="openvino"), stem) == int8
    assert default_model(BackendOptions(backend="onnxruntime"), stem) == fp32  # ONNX Runtime runs INT8 slower than FP32
    assert default_model(BackendOptions(provider="cpu"), stem) == fp32 and default_model(None, stem) == fp32
    assert default_model(BackendOptions(), stem) == (int8 if backend_for(fp32, BackendOptions()) == "openvino" else fp32)
    # Its quality where it runs, on the bundled photos at 256x256 (photo2monet: 48.5, 44.8, 34.2 dB; 41.0 mean, 32.4
    # min on 12 monet2photo test photos): >= 30 dB, the bar for shipping it.
    ref, q = open_backend(fp32, ORT), open_backend(int8, OV)
    for img in resized(real_images(), (256, 256)):
        x = frames_to_tensor([img])
        assert psnr(tensor_to_frames(ref.infer(x))[0], tensor_to_frames(q.infer(x))[0]) >= 30


def test_missing_openvino_falls_back_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "block" / "openvino"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('openvino is blocked for this test')\n")
    env = {**ENV, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = runtime("--demo", "-o", "demo.mp4", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "6 frames -> demo.mp4" in r.stdout and "onnxruntime:CPUExecutionProvider)" in r.stdout
    if backend_for(MODEL, BackendOptions()) == "openvino":  # x86-64: auto wanted OpenVINO and says why it did not
        notes = [line for line in r.stderr.splitlines() if "%|" not in line and line.strip()]  # less progress bars
        assert notes == [
            "WARNING openvino is not importable (openvino is blocked for this test): pip install "
            "'cyclegan-edge[openvino]'; running ONNX Runtime instead (--backend onnxruntime silences this)"]
    r = runtime("--demo", "-o", "demo.mp4", "--backend", "openvino", cwd=tmp_path, env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: openvino is not importable")
    assert len(r.stderr.splitlines()) == 1


def test_bench_times_what_the_runtime_runs(ov: Any) -> None:
    """bench's OpenVINO rows were pinned to f32 while the runtime (and bench pipeline) ran OpenVINO's own choice,
    bf16 on this CPU: nothing in a report timed what a conversion runs. openvino-auto does, and names it."""
    from cyclegan_edge.bench.runner import run_benchmark
    from cyclegan_edge.runtime.backends import BackendOptions, job_options
    from cyclegan_edge.runtime.bundled import default_model

    runtime = job_options(BackendOptions(precision_hint="auto"), live=False)  # the runtime's, for a file
    model = default_model(runtime)  # the bundled INT8 model where OpenVINO runs
    ran = open_backend(model, runtime).name
    rows, _ = run_benchmark(model, ["openvino-auto"], [(64, 64)], [1], 2, 1)
    assert [(r["variant"], r["backend"]) for r in rows] == [("openvino-auto", ran)], rows


def test_bench_openvino_variants(ov: Any) -> None:
    from cyclegan_edge.bench.runner import run_benchmark

    rows, notes = run_benchmark(MODEL, ["onnxruntime-fp32", "openvino-fp32", "openvino-int8"], [(64, 96)], [1], 2, 1,
                                calib=str(ASSETS_DIR / "images"), threads=2, parity_frames=real_images())  # fmt: skip
    assert notes == [f"INT8 calibrated on 3 images of {ASSETS_DIR / 'images'}; openvino-int8 the CPU one (--target "
                     "cpu)"]  # what it was calibrated on; nothing skipped  # fmt: skip
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["onnxruntime-fp32"]["backend"] == "onnxruntime:CPUExecutionProvider"
    assert by_variant["openvino-fp32"]["backend"] == "openvino:CPU:f32"
    assert by_variant["openvino-fp32"]["max_abs_vs_reference"] <= PARITY_MAX_ABS
    assert by_variant["openvino-int8"]["backend"] == "openvino:CPU:f32+int8"  # the CPU target's placement
    assert 0 < by_variant["openvino-int8"]["max_abs_vs_reference"] < 0.5


def test_a_file_that_fails_mid_conversion_leaves_the_backend_ready_for_the_next(tmp_path: Path) -> None:
    """Frames still in flight when a write fails are collected: a batch's next file gets every infer request."""
    pytest.importorskip("av")
    from cyclegan_edge.runtime.batch import convert_video

    backend = open_backend(MODEL, OV)
    assert isinstance(backend, OpenVinoBackend)
    # the file frames are encoded into cannot be created (a link into a folder that is not there): the writer fails
    # at the encoder's first packet, some frames in, with the next ones in flight
    (tmp_path / ".x.partial.mp4").symlink_to(tmp_path / "gone" / "x.mp4")
    clip = ASSETS_DIR / "demo.mp4"
    failed = convert_video(clip, tmp_path / "x.mp4", backend, PipelineOptions(size=64))
    assert failed.failed and "x.mp4: cannot write" in str(failed.error), failed
    assert len(backend._idle) == backend.in_flight
    done = convert_video(clip, tmp_path / "next.mp4", backend, PipelineOptions(size=64, max_frames=8))
    assert done.status == "done" and done.frames == 8, done.status


def test_a_junk_or_truncated_onnx_is_one_error_line(ov: Any, tmp_path: Path) -> None:
    """OpenVINO's generic reader also tries its TensorFlow frontend on a file that is no ONNX, which printed
    three parser lines on stderr, then a fallback warning; now the ONNX frontend alone reads it: one line."""
    junk, cut = tmp_path / "junk.onnx", tmp_path / "cut.onnx"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    cut.write_bytes((ASSETS_DIR / "photo2monet.onnx").read_bytes()[:300])
    for model in (junk, cut):
        r = subprocess.run([sys.executable, "-m", "cyclegan_edge.translate", str(model), str(ASSETS_DIR / "images"),
                            "-o", str(tmp_path / "out")], capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
        assert r.returncode == 1 and r.stderr == f"error: {model}: not a readable ONNX model (Model can't be parsed)\n"
    assert not (tmp_path / "out").exists()
