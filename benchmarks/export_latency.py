"""PyTorch eager vs ONNX Runtime FP32 vs ONNX Runtime INT8, both generators, 256x256, one run.

    python benchmarks/export_latency.py [--iters 20] [--data ../shared/data]

The compressed generator is the shared GAN Compression horse->zebra checkpoint; the classic
resnet_9blocks is randomly initialised (latency does not depend on the weights). INT8 is
calibrated on 32 real horse2zebra/trainA images.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from cyclegan_edge.machine import cpu_model
from cyclegan_edge.bench.runner import add_ratios, run_benchmark
from cyclegan_edge.models import save_generator, seeded_resnet_9blocks

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "compressed (GAN Compression h2z)": data / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth",
            "classic resnet_9blocks ngf64": save_generator(Path(tmp) / "r9.pth", seeded_resnet_9blocks()),
        }
        print(f"{cpu_model()}, {torch.get_num_threads()} threads; median latency at 256x256, batch 1, {args.iters} runs")
        print(f"{'model':34s} {'pytorch':>10s} {'ort fp32':>10s} {'ort int8':>10s} {'fp32/pt':>8s} {'int8/fp32':>9s}")
        for name, path in models.items():
            rows, _ = run_benchmark(path, ["pytorch", "onnxruntime-fp32", "onnxruntime-int8"], [(256, 256)], [1],
                                    args.iters, 3, calib=str(data / "horse2zebra" / "trainA"))  # fmt: skip
            add_ratios(rows, "pytorch")
            p50 = {r["variant"]: r["latency_ms"]["p50"] for r in rows}
            pt, f32, i8 = p50["pytorch"], p50["onnxruntime-fp32"], p50["onnxruntime-int8"]
            print(f"{name:34s} {pt:8.1f}ms {f32:8.1f}ms {i8:8.1f}ms {pt / f32:7.2f}x {f32 / i8:8.2f}x")


if __name__ == "__main__":
    main()
