"""TensorRT logic that needs no TensorRT: build plans per version, profiles, sidecars, trtexec."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclegan_edge.trt_compat import (
    EngineCompatError,
    EngineSidecar,
    compatibility_problems,
    make_profile,
    parse_shape,
    plan_build,
    sidecar_path,
    trtexec_command,
)
from cyclegan_edge.trt_loader import TensorRTUnavailable, import_tensorrt


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


def test_strongly_typed_versions_take_precision_from_onnx() -> None:
    p11 = plan_build("tensorrt", "11.1.0", "fp16", "fp16")
    assert p11.strongly_typed and p11.builder_flags == () and p11.network_flags == ("STRONGLY_TYPED",)
    rtx = plan_build("tensorrt_rtx", "1.7.1", "int8", "int8")
    assert rtx.strongly_typed and rtx.builder_flags == () and rtx.network_flags == ()
    with pytest.raises(ValueError, match="strongly typed.*--precision fp16"):
        plan_build("tensorrt", "11.0.0", "fp32", "fp16")
    with pytest.raises(ValueError, match="TensorRT-RTX is strongly typed"):
        plan_build("tensorrt_rtx", "1.7.1", "fp32", "int8")
    with pytest.raises(ValueError, match="too old"):
        plan_build("tensorrt", "7.2.3", "fp32", "fp32")


def test_profiles() -> None:
    with pytest.raises(ValueError, match="impossible profile on N"):
        make_profile("1x3x256x256", "4x360x640", "720x1280")  # max batch 1 < opt batch 4
    with pytest.raises(ValueError, match="multiples of 4"):
        make_profile("1x3x255x256", "1x3x256x256", "1x3x512x512")
    with pytest.raises(ValueError, match="3 channels"):
        make_profile("1x1x256x256", "1x1x256x256", "1x1x256x256")
    with pytest.raises(ValueError, match="bad shape"):
        parse_shape("big")
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
                        compute_capability="8.6", precision="fp16", profile={}, onnx_sha256="", strongly_typed=True)
    assert compatibility_problems(rtx, "tensorrt_rtx", "1.7.1", "RTX 4090", "8.9") == []  # portable engines
    assert compatibility_problems(rtx, "tensorrt_rtx", "1.7.1", "H100", "9.0")
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
    assert "--stronglyTyped" in strong and "--int8" not in strong


def test_missing_tensorrt_is_one_clear_line() -> None:
    try:
        trt, flavor = import_tensorrt()
    except TensorRTUnavailable as e:
        msg = str(e)
        assert "\n" not in msg and "pip install 'cyclegan-edge[trt]'" in msg and "JetPack" in msg
    else:  # a machine with TensorRT: the real module
        assert hasattr(trt, "Builder") and flavor in ("tensorrt", "tensorrt_rtx")
