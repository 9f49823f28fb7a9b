"""CPU backends side by side, interleaved: ONNX Runtime FP32, OpenVINO f32, OpenVINO INT8 (both Q/DQ placements:
``--target tensorrt`` and ``--target cpu``), on a CPU with AVX512_BF16 or AMX also OpenVINO bf16 (FP32 and INT8
models), and OpenVINO f32 with two frames in flight, on the bundled demo model and the compressed horse->zebra
generator, at 256x256 and 360x640, batch 1, 2 threads.

    python benchmarks/cpu_backends.py --work /tmp/cpu_backends | tee benchmarks/cpu_backends_cpu.txt

Shared machines are noisy, so every round times every case in turn (a few calls each) and the table gives the
median and the minimum over all rounds. The precision that ran is the backend's own report (``name``). Quality is
PSNR of the uint8 output images against ONNX Runtime FP32 on 12 real test photos at 256x256. The exported ONNX and
the INT8 models are kept in ``--work`` and reused by a second run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.export.int8 import Int8Options, quantize_int8
from cyclegan_edge.imaging.quality import psnr
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.imaging.io import load_test_images
from cyclegan_edge.imaging.resize import resized
from cyclegan_edge.machine import cpu_model, library_versions
from cyclegan_edge.runtime.backends import Backend, BackendOptions, open_backend
from cyclegan_edge.runtime.openvino_backend import OpenVinoBackend

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEGAN_EDGE_DATA", ROOT.parent / "shared" / "data"))
SIZES = ((256, 256), (360, 640))
THREADS = 2
# name, checkpoint or ONNX, calibration photos (the model's input domain), test photos
MODELS = (
    ("demo photo->Monet (bundled)", ASSETS_DIR / "photo2monet.onnx", DATA / "monet2photo" / "trainB", DATA / "monet2photo" / "testB"),
    ("horse->zebra compressed", DATA / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth",
     DATA / "horse2zebra" / "trainA", DATA / "horse2zebra" / "testA"),
)  # fmt: skip


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text()
    return " ".join(sorted(set(re.findall(r"\b(avx2|avx512[a-z_0-9]*|amx[a-z_0-9]*)\b", text))))


def onnx_for(model: Path, work: Path) -> Path:
    if model.suffix == ".onnx":
        return model
    out = work / f"{model.parent.name}.onnx"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "cyclegan_edge.export", str(model), "--onnx", str(out), "--test-count", "2"],
                       check=True, timeout=900)  # fmt: skip
    return out


def int8_for(fp32: Path, calib: Path, target: str, work: Path) -> Path:
    out = work / f"{fp32.stem}.int8.{target}.onnx"
    if not out.exists():
        quantize_int8(fp32, out, calib, Int8Options(calib_count=32, target=target))
    return out


class InFlight:
    """OpenVINO f32, two streams, two frames in flight: ``run(x, n)`` returns ms per frame (throughput)."""

    def __init__(self, path: Path) -> None:
        self.backend = OpenVinoBackend(path, BackendOptions(threads=THREADS, streams=2, backend="openvino"))
        self.name = self.backend.name + ", 2 streams, 2 in flight"

    def run(self, x: np.ndarray, frames: int) -> float:
        t = time.perf_counter()
        pending: list[Callable[[], np.ndarray]] = []
        for _ in range(frames):
            if len(pending) == 2:
                pending.pop(0)()
            pending.append(self.backend.submit(x))
        for p in pending:
            p()
        return (time.perf_counter() - t) * 1e3 / frames


def psnr_vs(reference: Backend, test: Backend, images: list[np.ndarray]) -> tuple[float, float]:
    values = []
    for img in resized(images, (256, 256)):
        x = frames_to_tensor([img])
        values.append(psnr(tensor_to_frames(reference.infer(x))[0], tensor_to_frames(test.infer(x))[0]))
    return float(np.mean(values)), float(np.min(values))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cpu_backends"))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=3, help="timed calls per case per round")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    versions = library_versions()
    print(f"# CPU backends, {time.strftime('%Y-%m-%d %H:%M')}: {cpu_model()}, {os.cpu_count()} cores, flags: {cpu_flags()}")
    print(f"# onnxruntime {versions.get('onnxruntime')}, openvino {versions.get('openvino')}; batch 1, {THREADS} threads, "
          f"{args.rounds} rounds x {args.calls} calls per case, interleaved; load average before: {os.getloadavg()}")  # fmt: skip
    print(f"# command: python benchmarks/cpu_backends.py {' '.join(sys.argv[1:])}")

    ort = BackendOptions(threads=THREADS, backend="onnxruntime")
    ov = BackendOptions(threads=THREADS, backend="openvino")  # f32 pinned (the default precision hint)
    bf16 = BackendOptions(threads=THREADS, backend="openvino", precision_hint="bf16")
    suites = []
    for title, model, calib, test in MODELS:
        if not model.exists():
            print(f"# {title}: skipped, {model} not present")
            continue
        fp32 = onnx_for(model, args.work)
        cases: dict[str, Backend] = {"ONNX Runtime FP32": open_backend(fp32, ort), "OpenVINO f32": open_backend(fp32, ov)}
        for target in ("tensorrt", "cpu"):
            cases[f"OpenVINO INT8 --target {target}"] = open_backend(int8_for(fp32, calib, target, args.work), ov)
        if "bf16" in cpu_flags() or "amx" in cpu_flags():  # OpenVINO's own default there
            cases["OpenVINO bf16 (--precision-hint bf16)"] = open_backend(fp32, bf16)
            cases["OpenVINO INT8 --target cpu, bf16"] = open_backend(int8_for(fp32, calib, "cpu", args.work), bf16)
        images = load_test_images(test, 12)
        quality = {k: psnr_vs(cases["ONNX Runtime FP32"], b, images) for k, b in cases.items() if k != "ONNX Runtime FP32"}
        suites.append((title, cases, InFlight(fp32), quality))

    inputs = {hw: frames_to_tensor(resized(load_test_images(ASSETS_DIR / "images", 1), hw)) for hw in SIZES}
    times: dict[tuple[str, str, tuple[int, int]], list[float]] = {}
    for title, cases, inflight, _ in suites:  # warm-up: first calls per shape compile kernels
        for hw, x in inputs.items():
            for b in cases.values():
                b.infer(x)
            inflight.run(x, 2)
    for _ in range(args.rounds):
        for title, cases, inflight, _ in suites:
            for hw, x in inputs.items():
                for k, b in cases.items():
                    for _ in range(args.calls):
                        t = time.perf_counter()
                        b.infer(x)
                        times.setdefault((title, k, hw), []).append((time.perf_counter() - t) * 1e3)
                times.setdefault((title, "in flight", hw), []).append(inflight.run(x, 2 * args.calls))

    print(f"# load average after: {os.getloadavg()}")
    for title, cases, inflight, quality in suites:
        print(f"\n## {title}\n")
        print("| path | precision that ran | 256x256 median / min ms | 360x640 median / min ms | speed-up vs ORT FP32 "
              "256 / 360x640 | vs OpenVINO f32 | PSNR vs ORT FP32, mean / min dB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")

        def ratios(reference: str, k: str) -> str:  # of medians
            return " / ".join(f"{statistics.median(times[(title, reference, hw)]) / statistics.median(times[(title, k, hw)]):.2f}x"
                              for hw in SIZES)  # fmt: skip

        names = {k: b.name for k, b in cases.items()} | {"in flight": inflight.name}
        for k, name in names.items():
            label = "OpenVINO f32, 2 frames in flight (ms per frame)" if k == "in flight" else k
            cells = [f"{statistics.median(times[(title, k, hw)]):.1f} / {min(times[(title, k, hw)]):.1f}" for hw in SIZES]
            q = quality.get(k)
            qtext = "reference" if k == "ONNX Runtime FP32" else (f"{q[0]:.1f} / {q[1]:.1f}" if q else "as OpenVINO f32")
            print(f"| {label} | {name} | {cells[0]} | {cells[1]} | {ratios('ONNX Runtime FP32', k)} | "
                  f"{ratios('OpenVINO f32', k)} | {qtext} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
