"""TensorRT logic that needs no GPU: build plans per version, profiles, sidecars, trtexec, and real
TensorRT-RTX engine builds (it builds without a GPU; running an engine is in tests/test_gpu.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.trt.plan import (
    EngineCompatError,
    EngineSidecar,
    compatibility_problems,
    make_profile,
    parse_shape,
    plan_build,
    sidecar_path,
    trtexec_command,
)
from cyclegan_edge.trt.loader import TensorRTUnavailable, import_tensorrt


def test_weakly_typed_versions_use_flags() -> None:
    p86 = plan_build("tensorrt", "8.6.1", "fp32", "fp16")
    assert p86.network_flags == ("EXPLICIT_BATCH",) and p86.builder_flags == ("FP16",) and not p86.strongly_typed
    p10 = plan_build("tensorrt", "10.3.0", "fp32", "fp16")
    assert p10.network_flags == () and p10.builder_flags == ("FP16",)
    assert plan_build("tensorrt", "10.3.0", "fp32", "fp32").builder_flags == ()
    assert plan_build("tensorrt", "8.6.1", "int8", "int8").builder_flags == ("INT8", "FP16")
    assert plan_build("tensorrt", "10.8.0", "int8", "int8").network_flags == ("STRONGLY_TYPED",)
    with pytest.raises(ValueError, match="calibrated Q/DQ ONNX"):
        plan_build("tensorrt", "10.3.0", "fp32", "int8")
    # an engine labelled fp32 ran the ONNX's INT8 or FP16; an FP32 one ran TF32 on Ampere and newer
    for version, onnx in (("10.3.0", "int8"), ("8.6.1", "fp16")):
        with pytest.raises(ValueError, match=f"the ONNX is {onnx}, and an engine built from it runs {onnx}, not fp32"):
            plan_build("tensorrt", version, onnx, "fp32")
    assert p10.cleared_flags == () and plan_build("tensorrt", "10.3.0", "fp32", "fp32").cleared_flags == ("TF32",)
    assert plan_build("tensorrt_rtx", "1.7.1", "fp32", "fp32").cleared_flags == ("TF32",)


def test_strongly_typed_versions_take_precision_from_onnx() -> None:
    p11 = plan_build("tensorrt", "11.1.0", "fp16", "fp16")
    assert p11.strongly_typed and p11.builder_flags == () and p11.network_flags == ("STRONGLY_TYPED",)
    rtx = plan_build("tensorrt_rtx", "1.7.1", "int8", "int8")
    assert rtx.strongly_typed and rtx.builder_flags == () and rtx.network_flags == ()
    with pytest.raises(ValueError, match="strongly typed.*--precision fp16"):
        plan_build("tensorrt", "11.0.0", "fp32", "fp16")
    with pytest.raises(ValueError, match="TensorRT-RTX is strongly typed"):
        plan_build("tensorrt_rtx", "1.7.1", "fp32", "int8")
    with pytest.raises(ValueError, match="too old: 8.5"):
        plan_build("tensorrt", "8.2.1", "fp32", "fp32")  # Jetson Nano's JetPack 4.6
    assert plan_build("tensorrt", "8.5.2", "fp32", "fp16").network_flags == ("EXPLICIT_BATCH",)  # JetPack 5.1


def test_profiles() -> None:
    with pytest.raises(ValueError, match="impossible profile on N"):
        make_profile("1x3x256x256", "4x360x640", "720x1280")  # max batch 1 < opt batch 4
    with pytest.raises(ValueError, match="multiples of 4"):
        make_profile("1x3x255x256", "1x3x256x256", "1x3x512x512")
    with pytest.raises(ValueError, match="3 channels"):
        make_profile("1x1x256x256", "1x1x256x256", "1x1x256x256")
    with pytest.raises(ValueError, match="bad shape"):
        parse_shape("big")
    with pytest.raises(ValueError, match="multiples of 64 for this model"):  # a U-Net of depth 6
        make_profile("1x3x64x64", "1x3x256x256", "1x3x360x640", multiple=64)
    ok = make_profile("256x256", "2x3x360x640", "4x3x1088x1920")
    assert ok.as_dict() == {"min": [1, 3, 256, 256], "opt": [2, 3, 360, 640], "max": [4, 3, 1088, 1920]}


def test_sidecar_round_trip_and_compatibility(tmp_path: Path) -> None:
    engine = tmp_path / "m.plan"
    s = EngineSidecar(tensorrt_flavor="tensorrt", tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                      precision="fp16", profile={"min": [1, 3, 256, 256]}, onnx_sha256="ab", strongly_typed=False)
    s.write(sidecar_path(engine))
    r = EngineSidecar.read(sidecar_path(engine))
    assert r == s and sidecar_path(engine).name == "m.plan.json"
    assert compatibility_problems(r, "tensorrt", "10.3.0.26", "Jetson AGX Orin", "8.7") == []
    assert "this machine has 8.6.1" in compatibility_problems(r, "tensorrt", "8.6.1", "Orin", "8.7")[0]
    assert "compute capability 8.7" in compatibility_problems(r, "tensorrt", "10.3.0", "RTX 4090", "8.9")[0]
    assert "this machine has tensorrt_rtx" in compatibility_problems(r, "tensorrt_rtx", "1.7", "Orin", "8.7")[0]
    rtx = EngineSidecar(tensorrt_flavor="tensorrt_rtx", tensorrt_version="1.7.1", gpu_name="RTX 3090",
                        compute_capability="8.6,8.9,12.0", precision="fp16", profile={}, onnx_sha256="",
                        strongly_typed=True)  # fmt: skip
    assert compatibility_problems(rtx, "tensorrt_rtx", "1.7.1", "RTX 4090", "8.9") == []  # portable engines
    assert len(compatibility_problems(rtx, "tensorrt_rtx", "1.7.1", "H100", "9.0")) == 2  # the CC, and what to use
    sidecar_path(engine).write_text("[]")  # an AttributeError, "unexpected"
    with pytest.raises(EngineCompatError, match=r"m.plan.json: unreadable engine sidecar \(a JSON list, not an object"):
        EngineSidecar.read(sidecar_path(engine))
    with pytest.raises(EngineCompatError, match="missing engine sidecar"):
        EngineSidecar.read(tmp_path / "other.plan.json")
    (tmp_path / "bad.plan.json").write_text("{")
    with pytest.raises(EngineCompatError, match="unreadable"):
        EngineSidecar.read(tmp_path / "bad.plan.json")


def test_trtexec_command() -> None:
    profile = make_profile("1x3x256x256", "1x3x360x640", "1x3x720x1280")
    cmd = trtexec_command("m.fp16.onnx", "m.plan", profile, plan_build("tensorrt", "8.6.1", "fp32", "fp16"), 2048,
                          timing_cache="t.cache", dla_core=0)  # fmt: skip
    assert cmd == ("trtexec --onnx=m.fp16.onnx --saveEngine=m.plan --minShapes=input:1x3x256x256 "
                   "--optShapes=input:1x3x360x640 --maxShapes=input:1x3x720x1280 --memPoolSize=workspace:2048M "
                   "--fp16 --timingCacheFile=t.cache --useDLACore=0 --allowGPUFallback")  # fmt: skip
    strong = trtexec_command("m.int8.onnx", "m.plan", profile, plan_build("tensorrt", "11.0", "int8", "int8"), 512)
    assert "--stronglyTyped" in strong and "--int8" not in strong and "TF32" not in strong
    assert trtexec_command("m.onnx", "m.plan", profile, plan_build("tensorrt", "10.3", "fp32", "fp32"), 512).endswith(
        " --noTF32")  # fmt: skip


def test_bench_builds_engines_whose_profile_takes_every_case(tmp_path: Path) -> None:
    """bench built its engines with the default profile (1x3x256x256 to 1x3x1088x1920): --batches 1,4 or a size
    under 256 ended the run at the first such case. The profile now spans the sizes and batches benched, padded to
    the model's multiple; a real TensorRT-RTX build takes it."""
    from cyclegan_edge.bench.runner import tensorrt_variants
    from cyclegan_edge.trt.plan import profile_for

    assert profile_for([(256, 256), (720, 1280), (90, 100)], [1, 4]) == (
        "1x3x92x100", "1x3x256x256", "4x3x720x1280")  # fmt: skip
    assert profile_for([(720, 1280)], [2], multiple=64) == ("2x3x768x1280",) * 3  # a U-Net's
    import_tensorrt()
    variants, notes = tensorrt_variants({"fp32": ASSETS / "photo2monet.onnx"}, ["tensorrt-fp32"], tmp_path, None,
                                        ([(128, 160), (256, 256)], [1, 4]))  # fmt: skip
    assert [v.name for v in variants] == ["tensorrt-fp32"] and notes == [
        "tensorrt-fp32: engine built for 1x3x128x160 to 4x3x256x256, tuned for 1x3x128x160 (the cases benched; an "
        "engine export builds by default takes 1x3x256x256 to 1x3x1088x1920, and may time otherwise)"], notes
    side = EngineSidecar.read(sidecar_path(variants[0].model_path))
    assert side.profile == {"min": [1, 3, 128, 160], "opt": [1, 3, 128, 160], "max": [4, 3, 256, 256]}


def test_an_input_outside_the_engine_profile_is_one_line_naming_the_way_out() -> None:
    """An input outside the profile was freed buffers in use on the next input (the engine backend freed them before
    TensorRT refused the shape); it is now refused from the sidecar's profile before anything changes."""
    from cyclegan_edge.trt.plan import outside_profile

    profile = make_profile("1x3x256x256", "1x3x256x256", "2x3x1088x1920").as_dict()
    assert outside_profile(profile, (1, 3, 720, 1280)) == outside_profile(profile, (2, 3, 256, 256)) == ""
    said = outside_profile(profile, (1, 3, 2160, 3840))
    assert said == ("input 1x3x2160x3840 is outside this engine's profile (1x3x256x256 to 2x3x1088x1920): run it with "
                    "a smaller --size, or build the engine again with export --min-shape/--max-shape")  # fmt: skip
    assert "with a larger --size," in outside_profile(profile, (1, 3, 128, 256))
    assert "with batches of 1 to 2," in outside_profile(profile, (4, 3, 256, 256))
    assert outside_profile({}, (9, 3, 9, 9)) == ""  # a sidecar without one: TensorRT says


def test_missing_tensorrt_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"):
        monkeypatch.setitem(sys.modules, name, None)  # what a machine without TensorRT sees: ImportError
    with pytest.raises(TensorRTUnavailable) as e:
        import_tensorrt()
    msg = str(e.value)
    assert "\n" not in msg and "pip install 'cyclegan-edge[trt]'" in msg and "JetPack" in msg


def _rtx_reason() -> str | None:
    try:
        _, flavor = import_tensorrt()
    except TensorRTUnavailable:
        return "needs TensorRT-RTX (pip install 'cyclegan-edge[tensorrt-rtx-build]'; part of [dev])"
    return None if flavor == "tensorrt_rtx" else "TensorRT builds need a GPU; covered by tests/test_gpu.py"


needs_rtx = pytest.mark.skipif(_rtx_reason() is not None, reason=str(_rtx_reason()))
ASSETS = ASSETS_DIR


@needs_rtx
def test_tensorrt_rtx_builds_real_engines_for_every_precision(tmp_path: Path) -> None:
    """TensorRT-RTX builds portable engines without a GPU: the whole build path runs here for real
    (parser, strongly typed network, profile, serialization); only running an engine needs a GPU."""
    from cyclegan_edge.atomic import sha256_file
    from cyclegan_edge.export.fp16 import export_fp16
    from cyclegan_edge.export.int8 import Int8Options, quantize_int8
    from cyclegan_edge.trt.build import EngineBuildError, EngineOptions, build_engine

    trt, _ = import_tensorrt()
    fp32 = ASSETS / "photo2monet.onnx"
    onnx = {"fp32": fp32, "fp16": export_fp16(fp32, tmp_path / "m.fp16.onnx"),
            "int8": quantize_int8(fp32, tmp_path / "m.int8.onnx", ASSETS / "images", Int8Options(calib_count=3))}  # fmt: skip
    opts = {"min_shape": "1x3x64x64", "opt_shape": "1x3x256x256", "max_shape": "2x3x512x512"}
    plans = {}
    for precision, src in onnx.items():
        plan = build_engine(src, tmp_path / f"m.{precision}.plan", EngineOptions(precision=precision, **opts))
        plans[precision] = plan.read_bytes()
        side = EngineSidecar.read(sidecar_path(plan))
        assert len(plans[precision]) > 1_000_000 and not list(tmp_path.glob("*.partial*"))
        assert (side.tensorrt_flavor, side.tensorrt_version, side.precision) == ("tensorrt_rtx", trt.__version__, precision)
        assert side.strongly_typed and side.onnx_sha256 == sha256_file(src)
        assert side.profile == {"min": [1, 3, 64, 64], "opt": [1, 3, 256, 256], "max": [2, 3, 512, 512]}
        assert compatibility_problems(side, "tensorrt_rtx", trt.__version__, "RTX 4090", "8.9") == []
        h100 = compatibility_problems(side, "tensorrt_rtx", trt.__version__, "NVIDIA H100", "9.0")
        assert "this GPU is 9.0" in h100[0] and "RTX GPUs" in h100[1]
    assert len(set(plans.values())) == 3  # three different engines
    with pytest.raises(ValueError, match="strongly typed"):  # the precision must be in the ONNX
        build_engine(fp32, tmp_path / "x.plan", EngineOptions(precision="fp16", **opts))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(EngineBuildError, match="not a readable ONNX model") as e:
        build_engine(bad, tmp_path / "bad.plan", EngineOptions(**opts))
    assert "\n" not in str(e.value)
    # A valid ONNX that TensorRT cannot parse: an INT32 DequantizeLinear (what quantizing biases gave; a Q/DQ graph
    # reads as INT8, so that is the precision asked)
    import onnx
    from onnx import TensorProto, helper

    dq = helper.make_node("DequantizeLinear", ["q", "s"], ["y"])
    graph = helper.make_graph([dq], "g", [helper.make_tensor_value_info("q", TensorProto.INT32, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(bad))
    with pytest.raises(EngineBuildError, match="ONNX parser failed") as e:
        build_engine(bad, tmp_path / "bad.plan", EngineOptions(precision="int8", min_shape="1x3x8x8", opt_shape="1x3x8x8",
                                                               max_shape="1x3x8x8"))  # fmt: skip
    assert "\n" not in str(e.value) and "Int32" in str(e.value)
    cpu_int8 = ASSETS / "photo2monet.int8.onnx"  # the bundled one is quantized for OpenVINO: TensorRT's parser
    with pytest.raises(EngineBuildError, match=r"INT8 quantized for CPUs \(--target cpu"):  # asserted on "DLA"
        build_engine(cpu_int8, tmp_path / "cpu.plan", EngineOptions(precision="int8", **opts))
    assert not (tmp_path / "x.plan").exists() and not (tmp_path / "bad.plan").exists()
    assert not (tmp_path / "cpu.plan").exists()


@pytest.fixture
def unet_onnx(tmp_path: Path) -> Path:
    """A small U-Net of depth 6 (H and W multiples of 64), exported by our exporter."""
    import torch

    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.models import UnetConfig, UnetGenerator, load_generator, save_generator

    torch.manual_seed(0)
    pth = save_generator(tmp_path / "u.pth", UnetGenerator(UnetConfig(depth=6, ngf=4, norm="instance")).eval(), {})
    return export_onnx(load_generator(pth), tmp_path / "u.onnx")


def test_unet_profile_breaking_its_size_multiple_is_refused_before_tensorrt(unet_onnx: Path, tmp_path: Path) -> None:
    from cyclegan_edge.trt.build import EngineOptions, build_engine, equivalent_trtexec

    opts = EngineOptions(min_shape="1x3x64x64", opt_shape="1x3x256x256", max_shape="1x3x360x640")
    with pytest.raises(ValueError, match="multiples of 64"):
        build_engine(unet_onnx, tmp_path / "u.plan", opts)  # no TensorRT needed to say so
    with pytest.raises(ValueError, match="multiples of 64"):
        equivalent_trtexec(str(unet_onnx), "u.plan", opts)  # nor a trtexec command that would fail the same way
    assert "--maxShapes=input:1x3x384x640" in equivalent_trtexec(
        str(unet_onnx), "u.plan", EngineOptions(min_shape="1x3x64x64", opt_shape="1x3x256x256", max_shape="1x3x384x640"))
    assert not (tmp_path / "u.plan").exists()


@needs_rtx
def test_unet_engine_sidecar_carries_its_size_multiple(unet_onnx: Path, tmp_path: Path) -> None:
    """The sidecar tells the runtime's TensorRT backend what to pad to (as the other backends read the ONNX)."""
    from cyclegan_edge.trt.build import EngineOptions, build_engine

    onnx = unet_onnx
    plan = build_engine(onnx, tmp_path / "u.plan", EngineOptions(min_shape="1x3x64x64", opt_shape="1x3x256x256",
                                                                 max_shape="1x3x384x640"))  # fmt: skip
    assert EngineSidecar.read(sidecar_path(plan)).size_multiple == 64
    photo = build_engine(ASSETS / "photo2monet.onnx", tmp_path / "m.plan",
                         EngineOptions(min_shape="1x3x64x64", opt_shape="1x3x64x64", max_shape="1x3x64x64"))  # fmt: skip
    assert EngineSidecar.read(sidecar_path(photo)).size_multiple == 4


@needs_rtx
def test_export_cli_writes_an_engine_and_the_runtime_explains_what_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.export", str(ASSETS / "photo2monet.pth"), "--onnx",
                        str(tmp_path / "m.onnx"), "--precision", "fp16", "--engine", str(tmp_path / "m.plan"),
                        "--max-shape", "1x3x512x512", "--test-count", "2"],
                       capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "TensorRT-RTX" in r.stdout and "engine written" in r.stdout and "8.6, 8.9, 12.0" in r.stdout
    sidecar = EngineSidecar.read(sidecar_path(tmp_path / "m.plan"))
    assert sidecar.precision == "fp16" and sidecar.onnx_file == str((tmp_path / "m.fp16.onnx").resolve())
    # Running it needs cuda-python and a GPU: one line saying which is missing, nothing else.
    from cyclegan_edge.trt.loader import import_cudart

    try:
        import_cudart()
    except TensorRTUnavailable:
        pass
    else:
        pytest.skip("cuda-python is installed: running engines is tests/test_gpu.py's job")
    runtime = [sys.executable, "-m", "cyclegan_edge.runtime", "--engine", str(tmp_path / "m.plan"), "--demo",
               "--headless", "-o", str(tmp_path / "out.mp4")]  # fmt: skip
    r = subprocess.run(runtime, capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "cuda-python is needed" in lines[0]
    from cyclegan_edge.trt.loader import no_gpu_here

    no_gpu = "no NVIDIA GPU driver loaded, and engines run only on a GPU: run the .onnx here"
    assert lines[0].endswith(no_gpu) == bool(no_gpu_here())  # said where no GPU device is, and only there
    assert not (tmp_path / "out.mp4").exists()
    # A re-export changes the ONNX the engine came from: the engine runs the old model, and the runtime says so.
    import onnx

    model = onnx.load(str(tmp_path / "m.fp16.onnx"))
    onnx.helper.set_model_props(model, {"note": "re-exported"})
    onnx.save(model, str(tmp_path / "m.fp16.onnx"))
    r = subprocess.run(runtime, capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    assert r.returncode == 1 and len(lines) == 2 and "cuda-python is needed" in lines[1], r.stderr
    assert lines[0] == (f"WARNING {tmp_path / 'm.plan'}: built from an earlier {tmp_path.resolve() / 'm.fp16.onnx'} (the "
                        "file has changed since), so it runs the old model; rebuild it: python -m cyclegan_edge.export "
                        f"{tmp_path.resolve() / 'm.fp16.onnx'} --engine {tmp_path / 'm.plan'}")  # fmt: skip


@needs_rtx
def test_ctrl_c_stops_an_engine_build_and_keeps_the_previous_engine(tmp_path: Path) -> None:
    """TensorRT catches a KeyboardInterrupt raised in its logger callback, and the build went on to replace the
    engine (exit 0), or was stopped between the engine and its sidecar (a mismatched pair). Now Ctrl-C cancels the
    build: exit 130, one line, and the earlier engine and sidecar stay as they were, a matching pair."""
    onnx, plan = ASSETS / "photo2monet.onnx", tmp_path / "m.plan"
    export = [sys.executable, "-m", "cyclegan_edge.export", str(onnx), "--engine", str(plan)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([*export, "--max-shape", "1x3x256x256"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    before = plan.read_bytes(), sidecar_path(plan).read_bytes()
    assert EngineSidecar.read(sidecar_path(plan)).engine_bytes == len(before[0])
    log = tmp_path / "out.txt"
    with open(log, "w") as out:  # the default profile (up to 1088x1920): a build of seconds
        proc = subprocess.Popen(export, stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        deadline = time.monotonic() + 120
        while "building the engine" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # into TensorRT's parser or builder
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    # 130; once, on a loaded machine, the process said so and was then ended by the signal (-2) on its way out
    assert proc.returncode in (130, -signal.SIGINT) and err.strip() == "error: interrupted", (proc.returncode, err)
    assert (plan.read_bytes(), sidecar_path(plan).read_bytes()) == before
