"""TensorRT-RTX engine builds from our ONNX, on this machine (no GPU needed): time and engine size.

    python benchmarks/trt_rtx_build.py [--data ../shared/data]

For the bundled demo model, the shared compressed horse->zebra generator and a classic resnet_9blocks
(seeded random weights), FP32, FP16 and INT8 (calibrated on 32 horse2zebra/trainA images), with a
256x256 .. 720p profile. Running the engines needs an RTX GPU (benchmarks/gpu/).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.machine import cpu_model
from cyclegan_edge.export.fp16 import export_fp16
from cyclegan_edge.export.int8 import Int8Options, quantize_int8
from cyclegan_edge.export.onnx_export import export_onnx
from cyclegan_edge.trt.build import EngineOptions, build_engine
from cyclegan_edge.models import load_generator, save_generator, seeded_resnet_9blocks
from cyclegan_edge.trt.loader import import_tensorrt

ROOT = Path(__file__).resolve().parents[1]
PROFILE = EngineOptions(min_shape="1x3x256x256", opt_shape="1x3x720x1280", max_shape="1x3x720x1280")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    data = Path(args.data)
    trt, flavor = import_tensorrt()
    print(f"{flavor} {trt.__version__} on {cpu_model()} (no GPU); profile {PROFILE.min_shape} .. {PROFILE.max_shape}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoints = {"demo photo2monet": ASSETS_DIR / "photo2monet.pth",
                       "compressed h2z": data / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth",
                       "resnet_9blocks": save_generator(work / "r9.pth", seeded_resnet_9blocks())}  # fmt: skip
        for name, ckpt in checkpoints.items():
            fp32 = export_onnx(load_generator(ckpt), work / f"{ckpt.stem}.onnx")
            onnx = {"fp32": fp32, "fp16": export_fp16(fp32, work / f"{ckpt.stem}.fp16.onnx"),
                    "int8": quantize_int8(fp32, work / f"{ckpt.stem}.int8.onnx", data / "horse2zebra" / "trainA",
                                          Int8Options(calib_count=32))}  # fmt: skip
            for precision, src in onnx.items():
                t = time.perf_counter()
                plan = build_engine(src, work / f"{ckpt.stem}.{precision}.plan", replace(PROFILE, precision=precision))
                seconds = time.perf_counter() - t
                print(f"{name:18s} {precision}: built in {seconds:5.1f} s, engine {plan.stat().st_size / 2**20:6.1f} MiB")


if __name__ == "__main__":
    main()
