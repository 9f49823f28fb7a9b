from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from conftest import SHARED_DATA, need
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.export.__main__ import build_parser, checked_int8, main, staging, measured_on
from cyclegan_edge.export.fp16 import convert_fp16
from cyclegan_edge.export.int8 import Int8Options, calibration_images, quantize_int8
from cyclegan_edge.export.onnx_export import MIN_OPSET, export_onnx, max_opset
from cyclegan_edge.export.report import ort_backend, parity_vs_torch, quality_vs
from cyclegan_edge.imaging.frames import frames_to_tensor
from cyclegan_edge.imaging.io import load_test_images
from cyclegan_edge.imaging.resize import resized
from cyclegan_edge.models import LoadedGenerator, NLayerDiscriminator, init_normal, load_generator, resnet_9blocks
from cyclegan_edge.runtime.backends import BackendError, BackendOptions, open_backend
from cyclegan_edge.trt.build import EngineBuildError, onnx_precision


def load_onnx(path: Path) -> Any:
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return proto


def metadata_of(proto: Any) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def initializer_names(proto: Any) -> set[str]:
    return {i.name for i in proto.graph.initializer}


def nodes_of(proto: Any, op_types: list[str]) -> list[Any]:
    return [n for n in proto.graph.node if n.op_type in op_types]


@pytest.fixture(scope="module")
def horse_images() -> list[np.ndarray]:
    return load_test_images(need(SHARED_DATA / "horse2zebra" / "testA"), 8)


@pytest.fixture(scope="module")
def compressed(compressed_g_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedGenerator, Path]:
    gen = load_generator(compressed_g_path)
    return gen, export_onnx(gen, tmp_path_factory.mktemp("onnx") / "h2z.onnx")


def test_onnx_graph_is_folded_dynamic_and_described(compressed: tuple[LoadedGenerator, Path]) -> None:
    gen, path = compressed
    proto = load_onnx(path)
    assert proto.opset_import[0].version == 17
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    inits = initializer_names(proto)
    for node in nodes_of(proto, ["InstanceNormalization", "Pad"]):
        assert all(i in inits for i in node.input[1:] if i), node.name
    assert not nodes_of(proto, ["Constant", "ConstantOfShape", "Concat", "Slice", "Reshape"])
    meta = metadata_of(proto)
    assert meta["architecture"] == "mobile_resnet_9blocks_16_16_32_16_32_32_16_16"
    assert meta["source_checkpoint_sha256"] == gen.sha256 == (
        "0ab6b7a4312a94187078a631608d89f2d5ab8036e4469b4a56508cf27faf3e78"
    )
    assert meta["direction"] == "A->B" and "[-1, 1]" in meta["input_normalization"] and "4" in meta["size_rule"]


def test_compressed_generator_parity(compressed: tuple[LoadedGenerator, Path], horse_images: list[np.ndarray],
                                     margin: Any) -> None:  # fmt: skip
    gen, path = compressed
    report = parity_vs_torch(gen.model, path, horse_images)
    assert report["passed"], report
    assert {(c["height"], c["width"], c["batch"]) for c in report["cases"]} == {
        (h, w, b) for h, w in ((256, 256), (360, 640), (301, 451)) for b in (1, 4)
    }
    # half export's own bar (5e-4): 5.3e-5 measured on AVX2, 6.9e-5 on AVX-512 (the kernels sum in other orders;
    # 1.38e-4 on the bundled photos, benchmarks/cpu_backends_*.txt); a wrong export is off by 1e-2 or more
    assert margin("max abs ONNX Runtime vs PyTorch", max(c["max_abs"] for c in report["cases"]), "<", 2.5e-4) < 2.5e-4


def test_classic_resnet9_parity(tmp_path: Path, horse_images: list[np.ndarray]) -> None:
    torch.manual_seed(0)
    model = resnet_9blocks(ngf=64)
    init_normal(model)
    gen = LoadedGenerator(model=model.eval(), config=model.cfg)
    # a square and an odd size (padded), batch 1 and 2: the compressed generator's test covers every case; this
    # 11 M-parameter one at 360x640 x 4 alone took a minute on 2 cores
    report = parity_vs_torch(model, export_onnx(gen, tmp_path / "r9.onnx"), horse_images[:2],
                             sizes=((256, 256), (301, 451)), batches=(1, 2))  # fmt: skip
    assert report["passed"], report["max_abs"]
    assert {(c["height"], c["width"], c["batch"]) for c in report["cases"]} == {
        (h, w, b) for h, w in ((256, 256), (301, 451)) for b in (1, 2)}


def test_fp16_keeps_instance_norm_fp32_and_psnr(compressed: tuple[LoadedGenerator, Path], tmp_path: Path,
                                                horse_images: list[np.ndarray], margin: Any) -> None:  # fmt: skip
    _, path = compressed
    fp16 = convert_fp16(load_onnx(path))
    inits = {i.name: i for i in fp16.graph.initializer}
    for node in nodes_of(fp16, ["InstanceNormalization"]):
        assert all(inits[i].data_type == onnx.TensorProto.FLOAT for i in node.input[1:])
    convs = nodes_of(fp16, ["Conv", "ConvTranspose"])
    assert all(inits[n.input[1]].data_type == onnx.TensorProto.FLOAT16 for n in convs)
    out = tmp_path / "h2z.fp16.onnx"
    onnx.save(fp16, str(out))
    q = quality_vs(path, out, horse_images)
    assert margin("FP16 PSNR dB vs FP32", q["psnr_db_mean"], ">=", 40) >= 40.0, q


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
def test_fp16_of_a_resize_conv_generator_loads_and_matches(upsample: str, tmp_path: Path,
                                                            horse_images: list[np.ndarray]) -> None:  # fmt: skip
    """train's default generators upsample by Resize, whose scales ONNX types as float32: converted to float16
    they made ONNX Runtime refuse every FP16 export of a model trained with the defaults."""
    from cyclegan_edge.models import GeneratorConfig, ResnetGenerator, save_generator

    torch.manual_seed(0)
    model = ResnetGenerator(GeneratorConfig(channels=(8, 8, 16, 8, 16, 16, 8, 8), separable=True, upsample=upsample))
    init_normal(model)
    pth = save_generator(tmp_path / "g.pth", model.eval())
    rc = main([str(pth), "--onnx", str(tmp_path / "g.onnx"), "--precision", "fp16", "--test-images",
               str(need(SHARED_DATA / "horse2zebra" / "testA")), "--test-count", "2"])  # fmt: skip
    assert rc == 0 and (tmp_path / "g.fp16.onnx").is_file()
    said = json.loads((tmp_path / "g.fp16.onnx.parity.json").read_text())["quality_vs_fp32"]["test_images"]
    assert said == f"2 images of {SHARED_DATA / 'horse2zebra' / 'testA'}"  # what the quality figure was taken on
    fp16 = load_onnx(tmp_path / "g.fp16.onnx")
    inits = {i.name: i for i in fp16.graph.initializer}
    consts = {o: n for n in fp16.graph.node if n.op_type == "Constant" for o in n.output}
    for node in nodes_of(fp16, ["Resize"]):  # scales in float32, as the spec has them
        scales = node.input[2]
        kind = inits[scales].data_type if scales in inits else consts[scales].attribute[0].t.data_type
        assert kind == onnx.TensorProto.FLOAT, node.name
    assert quality_vs(tmp_path / "g.onnx", tmp_path / "g.fp16.onnx", horse_images)["psnr_db_mean"] > 40


def test_int8_qdq_is_tensorrt_style_and_psnr(compressed: tuple[LoadedGenerator, Path], tmp_path: Path,
                                            horse_images: list[np.ndarray], margin: Any) -> None:  # fmt: skip
    _, path = compressed
    out = quantize_int8(path, tmp_path / "h2z.int8.onnx", need(SHARED_DATA / "horse2zebra" / "trainA"),
                        Int8Options(calib_count=32))  # fmt: skip
    proto = onnx.load(str(out))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    qs = nodes_of(proto, ["QuantizeLinear", "DequantizeLinear"])
    assert qs
    for node in qs:  # symmetric signed int8 (biases stay float: TensorRT rejects INT32 Q/DQ): zero points 0
        if len(node.input) > 2:
            zp = inits[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any()
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            assert inits[node.input[0]].dtype == np.int8, node.input[0]
    producers = {o: n for n in proto.graph.node for o in n.output}
    for node in nodes_of(proto, ["InstanceNormalization", "Pad", "Relu"]):
        assert producers.get(node.input[0]) is None or producers[node.input[0]].op_type != "DequantizeLinear"
    per_channel = [inits[n.input[1]] for n in nodes_of(proto, ["QuantizeLinear", "DequantizeLinear"])
                   if inits.get(n.input[1]) is not None and inits[n.input[1]].ndim == 1]  # fmt: skip
    assert per_channel, "weights should be quantized per channel"
    q = quality_vs(path, out, horse_images)
    # Measured 31.4 dB mean on 16 images with 64 calibration images; see int8.py for what limits it.
    margin("INT8 SSIM vs FP32", q["ssim_mean"], ">", 0.9)
    assert margin("INT8 PSNR dB vs FP32", q["psnr_db_mean"], ">=", 30) >= 30.0 and q["ssim_mean"] > 0.9, q


def test_int8_calibrates_one_image_at_a_time_with_the_ranges_of_all_at_once(tmp_path: Path) -> None:
    """The default holds one image's intermediate tensors at a time (ONNX Runtime's own default holds every
    image's: 5 GB for 16 images of resnet_9blocks, benchmarks/int8_calibration_memory.txt); the activation
    ranges it finds are those of all at once, on real photos."""
    scales = {}
    for per_pass in (0, 1):
        out = quantize_int8(ASSETS_DIR / "photo2monet.onnx", tmp_path / f"{per_pass}.onnx", ASSETS_DIR / "images",
                            Int8Options(calib_count=3, images_per_pass=per_pass))  # fmt: skip
        proto = onnx.load(str(out))
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
        scales[per_pass] = {n.input[0]: float(inits[n.input[1]]) for n in proto.graph.node
                            if n.op_type == "QuantizeLinear" and inits[n.input[1]].ndim == 0}  # fmt: skip
    assert len(scales[0]) > 10 and scales[0].keys() == scales[1].keys()
    ratios = np.array([scales[1][k] / scales[0][k] for k in scales[0]])
    assert np.abs(ratios - 1).max() < 5e-3, ratios


def test_cli_writes_reports_and_fails_clearly(compressed_g_path: Path, tmp_path: Path) -> None:
    export = [sys.executable, "-m", "cyclegan_edge.export", str(compressed_g_path), "--onnx", str(tmp_path / "g.onnx"),
              "--precision", "fp16", "--test-count", "3"]  # fmt: skip
    # Beside it: an INT8 model of another checkpoint (made from the g.onnx this export replaces), and the staging
    # folder of an export killed midway (kill -9), which a later export of g.onnx removes.
    old_int8 = quantize_int8(ASSETS_DIR / "photo2monet.onnx", tmp_path / "g.int8.onnx", ASSETS_DIR / "images",
                             Int8Options(calib_count=1))  # fmt: skip
    (tmp_path / "g.int8.onnx.parity.json").write_text("{}\n")
    old_bytes = old_int8.read_bytes()
    killed = subprocess.Popen(export, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".g.onnx.*.export")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    left = list(tmp_path.glob(".g.onnx.*.export"))
    assert len(left) == 1, "the killed export should have left its staging folder"
    kept = [tmp_path / f".g.onnx.{os.getpid()}.abcdefgh.export", tmp_path / f".h.onnx.{killed.pid}.abcdefgh.export"]
    for folder in kept:  # a running export's folder; another output's
        folder.mkdir()

    r = subprocess.run(export, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    parity = json.loads((tmp_path / "g.onnx.parity.json").read_text())
    assert parity["parity"]["passed"] and parity["parity"]["max_abs"] < 5e-4 and parity["opset"] == 17
    fp16 = json.loads((tmp_path / "g.fp16.onnx.parity.json").read_text())
    assert fp16["quality_vs_fp32"]["psnr_db_mean"] >= 40 and fp16["quality_vs_fp32"]["images"] == 3
    assert fp16["required_psnr_db_mean"] == 40 and fp16["passed"] is True
    # what each figure was measured on and with (the images and the runtime were not said; FP16's machine neither)
    assert parity["parity"]["runtime"] == fp16["quality_vs_fp32"]["runtime"] == "onnxruntime:CPUExecutionProvider"
    assert parity["parity"]["test_images"] == fp16["quality_vs_fp32"]["test_images"] and fp16["machine"]
    # and as the runtime runs the file here (OpenVINO at its own precision, where installed): what a user sees
    here = fp16["quality_as_run_here"]
    if importlib.util.find_spec("openvino") is not None:
        assert here["runtime"].startswith("openvino:CPU:") and here["psnr_db_mean"] > 35 and here["images"] == 3
        assert f" with onnxruntime:CPUExecutionProvider; as the runtime runs it here ({here['runtime']}): " in r.stdout
    else:
        assert here is None and "as the runtime runs it here" not in r.stdout
    assert not left[0].exists() and f"{left[0]}: removed" in r.stdout and all(f.is_dir() for f in kept)
    stale = [ln for ln in r.stderr.splitlines() if "stale" in ln]
    assert len(stale) == 1 and stale[0].startswith(f"WARNING {old_int8}, {old_int8}.parity.json: stale"), r.stderr
    assert "g.fp16.onnx" not in stale[0] and "--precision int8" in stale[0]
    assert old_int8.read_bytes() == old_bytes  # warned about, never deleted

    disc = tmp_path / "latest_net_D_A.pth"
    torch.save(NLayerDiscriminator().state_dict(), disc)
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.export", str(disc), "--onnx", str(tmp_path / "d.onnx")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "PatchGAN discriminator" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.export", str(compressed_g_path), "--onnx",
                        str(tmp_path / "e.onnx"), "--test-count", "1", "--engine", str(tmp_path / "e.plan"),
                        "--min-shape", "1x3x512x512", "--opt-shape", "1x3x256x256"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "impossible profile on H" in r.stderr


def test_corrupt_and_truncated_onnx(compressed: tuple[LoadedGenerator, Path], tmp_path: Path) -> None:
    """A truncated or garbage .onnx is refused in one line by the runtime and by the engine builder."""
    _, path = compressed
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(path.read_bytes()[:4000])
    garbage = tmp_path / "g.onnx"
    garbage.write_text("not a model")
    for p in (truncated, garbage):
        with pytest.raises(BackendError, match="cannot load this model"):
            open_backend(p, BackendOptions(backend="onnxruntime"))
        with pytest.raises(EngineBuildError, match="not a readable ONNX model"):
            onnx_precision(p)


def test_cli_refuses_bad_command_lines_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each mistake is one line naming the flag and path, before anything is loaded or written."""
    ckpt = str(ASSETS_DIR / "photo2monet.pth")
    other = tmp_path / "other_ckpt.pth"
    shutil.copy(ckpt, other)
    for folder in ("outdir", "junk"):
        (tmp_path / folder).mkdir()
    (tmp_path / "junk" / "a.jpg").write_text("not an image")
    (tmp_path / "junk" / "b.png").write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    before = sorted(tmp_path.rglob("*"))
    onnx = ["--onnx", str(tmp_path / "m.onnx")]
    cases = [
        ([ckpt, "--onnx", str(other)], 2, f"--onnx {other}: the name must end in .onnx"),
        ([ckpt, "--onnx", str(tmp_path / "outdir")], 2, f"--onnx {tmp_path / 'outdir'} is a folder"),
        ([ckpt], 2, "give --onnx OUT.onnx"),
        ([str(tmp_path)], 1, f"{tmp_path}: a folder, not a checkpoint file"),
        ([ckpt, *onnx, "--opset", "7"], 2, f"--opset 7: use {MIN_OPSET}..{max_opset()}"),
        ([ckpt, *onnx, "--opset", "99"], 2, f"--opset 99: use {MIN_OPSET}..{max_opset()}"),
        ([ckpt, *onnx, "--precision", "int8"], 2, "--precision int8 needs --calib DIR"),
        ([ckpt, *onnx, "--precision", "int8", "--calib", "nope"], 1, "--calib nope: no such file or folder"),
        ([ckpt, *onnx, "--test-images", "nope"], 1, "--test-images nope: no such file or folder"),
        ([ckpt, *onnx, "--precision", "int8", "--calib", str(tmp_path / "junk")], 1,
         f"--calib {tmp_path / 'junk'}: none of its 2 image files is readable; INT8 calibration needs a folder of real"),
        ([ckpt, *onnx, "--precision", "int8", "--calib", str(tmp_path / "clip.mp4")], 1,
         f"--calib {tmp_path / 'clip.mp4'}: not an image file"),
        ([ckpt, *onnx, "--engine", str(other)], 2, f"--engine {other}: the name must end in .plan or .engine"),
        ([ckpt, *onnx, "--test-count", "0"], 2, "argument --test-count: '0' is not allowed"),
        ([ckpt, *onnx, "--calib-count", "-1"], 2, "argument --calib-count: '-1' is not allowed"),
        # these were said after the export, the parity check and 33 s of calibration, in ONNX Runtime's words
        ([ckpt, *onnx, "--percentile", "150"], 2, "argument --percentile: '150' is not allowed: use more than 0 up to "
                                                  "100"),
        ([ckpt, *onnx, "--tolerance", "0"], 2, "argument --tolerance: '0' is not allowed: use more than 0 up to 2"),
        ([ckpt, *onnx, "--tolerance", "nan"], 2, "argument --tolerance: 'nan' is not allowed"),
        ([ckpt, *onnx, "--workspace", "0"], 2, "argument --workspace: '0' is not allowed: use 1..1048576"),
        ([ckpt, *onnx, "--dla-core", "2"], 2, "argument --dla-core: '2' is not allowed: use 0..1"),
        ([ckpt, *onnx, "--engine", str(tmp_path / "m.plan"), "--timing-cache", str(tmp_path / "clip.mp4" / "t")], 1,
         f"{tmp_path / 'clip.mp4' / 't'}: cannot write here (Not a directory); nothing written"),  # after the build
    ]  # fmt: skip
    for argv, status, line in cases:
        assert main(argv) == status, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {line}") and len(err.splitlines()) == 1, (argv, err)
    assert sorted(tmp_path.rglob("*")) == before and other.read_bytes() == Path(ckpt).read_bytes()
    text = " ".join(build_parser().format_help().split())
    assert "(default: None)" not in text and "bundled photos" in text and "picked evenly across --calib" in text


def test_a_second_export_to_the_same_model_is_refused_while_the_first_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Two exports to one --onnx moved their files in among each other's (a model beside the other's report)."""
    from cyclegan_edge.atomic import lock_output, unlock_output
    from cyclegan_edge.export.__main__ import main

    target = tmp_path / "m.onnx"
    lock = lock_output(target)  # what a running export holds
    try:
        assert main([str(ASSETS_DIR / "photo2monet.pth"), "--onnx", str(target)]) == 1
    finally:
        unlock_output(target, lock)
    assert capsys.readouterr().err == (f"error: --onnx {target}: another process (pid {os.getpid()}) is exporting to "
                                       "it now; wait for it to end, or give another --onnx\n")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_opset_range_ends_export_and_run(tmp_path: Path) -> None:
    """--opset accepts MIN_OPSET..max_opset(): both ends export models that ONNX Runtime runs like PyTorch."""
    gen = load_generator(ASSETS_DIR / "photo2monet.pth")
    x = frames_to_tensor(resized(load_test_images(ASSETS_DIR / "images", 1), (64, 64)))
    with torch.no_grad():
        ref = gen.model(torch.from_numpy(x)).numpy()
    for opset in (MIN_OPSET, max_opset()):
        path = export_onnx(gen, tmp_path / f"m{opset}.onnx", opset=opset)
        assert load_onnx(path).opset_import[0].version == opset
        assert np.abs(ort_backend(path).infer(x) - ref).max() < 5e-4, opset


def test_int8_calibration_skips_unreadable_and_reports_the_count_used(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(ASSETS_DIR / "images" / "chelsea.jpg", calib)
    (calib / "broken.jpg").write_bytes((ASSETS_DIR / "images" / "coffee.jpg").read_bytes()[:300])
    (calib / "notes.txt").write_text("not an image file: not listed")
    calib_images = calibration_images(calib, 64, (256, 256))
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(calib_images) == 1 and len(skipped) == 2, skipped
    assert skipped[0].startswith(f"skipped: {calib / 'broken.jpg'}: ")
    assert skipped[1] == f"{calib}: 1 of 2 image files skipped (not decodable)"

    fp32 = tmp_path / "m.onnx"
    shutil.copy(ASSETS_DIR / "photo2monet.onnx", fp32)
    images = load_test_images(ASSETS_DIR / "images", 1)
    tested = measured_on(build_parser().parse_args(["m.pth"]), len(images))
    assert tested == "1 bundled photo (--test-images DIR: your own domain's)"
    written = checked_int8(fp32, images, tested, calib_images, str(calib), Int8Options(calib_count=64), str)
    assert written == [tmp_path / "m.int8.onnx", tmp_path / "m.int8.onnx.parity.json"]
    assert metadata_of(load_onnx(written[0]))["calibration"] == "percentile, 1 image"
    report = json.loads(written[1].read_text())
    assert report["calibration"]["images"] == 1 and report["calibration"]["images_asked"] == 64
    assert "calib_count" not in report["calibration"] and "min_psnr_db" not in report
    q = report["quality_vs_fp32"]
    assert report["goal_psnr_db_mean"] == 30.0 and report["meets_goal"] == (q["psnr_db_mean"] >= 30.0)
    cpu = report["cpu_latency_256"]
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "INT8 (calibrated on 1 image)" in line and f"on {tested} with {q['runtime']}" in line
    here = report["quality_as_run_here"]
    assert f"; as the runtime runs it here ({here['runtime']}): {here['psnr_db_mean']:.1f} dB; CPU 256x256 median" in (
        line) if here else "; CPU 256x256 median (min)" in line  # fmt: skip
    assert q["test_images"] == tested
    assert f"FP32 {cpu['fp32']['median_ms']:.1f} ({cpu['fp32']['min_ms']:.1f}) ms on {cpu['fp32']['backend']}, " in line
    assert f"INT8 {cpu['int8']['median_ms']:.1f} ({cpu['int8']['min_ms']:.1f}) ms on {cpu['int8']['backend']} " in line


def test_staging_removes_only_stale_folders_of_its_output(tmp_path: Path) -> None:
    """A staging folder left by a killed export (its process gone, or no process id and a day old) is removed by
    the next export of the same output; a live process's, a recent one's and another output's stay."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    stale = [tmp_path / f".m.onnx.{dead_pid}.ab_cd123.export", tmp_path / ".m.onnx.bd6hwpoa.export"]
    kept = [tmp_path / f".m.onnx.{os.getpid()}.ab_cd123.export", tmp_path / ".m.onnx.k3pt0000.export",
            tmp_path / f".other.onnx.{dead_pid}.ab_cd123.export", tmp_path / f".m.onnx.{dead_pid}.export"]  # fmt: skip
    for folder in stale + kept:
        folder.mkdir()
        (folder / "m.onnx").write_text("partial")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stale[1], (day_ago, day_ago))
    with staging(tmp_path / "m.onnx") as stage:
        assert stage.name.startswith(f".m.onnx.{os.getpid()}.") and stage.is_dir()
    assert not stage.exists() and not any(f.exists() for f in stale) and all(f.is_dir() for f in kept)
