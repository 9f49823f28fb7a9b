"""Peak memory and time of INT8 calibration: one image's tensors at a time (the default) against ONNX Runtime's
own default (every image's intermediate tensors held until the end), both generators, one run.

    python benchmarks/int8_calibration_memory.py [--count 16] [--data ../shared/data]

Each quantization runs in its own process (peak RSS is per process); the scales of the two ways are compared
(ratio of every activation scale). The classic resnet_9blocks is randomly initialised (memory and time do not
depend on the weights, the ranges barely do).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def quantize_once(onnx_path: str, out: str, calib: str, count: int, per_pass: int) -> None:
    from cyclegan_edge.export.int8 import Int8Options, quantize_int8

    t = time.perf_counter()
    quantize_int8(onnx_path, out, calib, Int8Options(calib_count=count, images_per_pass=per_pass))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mib": peak_mib}))


def activation_scales(path: Path) -> dict[str, float]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and inits[n.input[1]].ndim == 0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=16, help="calibration images (all at once needs ~0.33 GB each "
                    "for resnet_9blocks at 256 px)")  # fmt: skip
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    calib = str(Path(args.data) / "horse2zebra" / "trainA")
    if args.child:
        return quantize_once(args.child[0], args.child[1], calib, args.count, int(args.child[3]))

    import onnxruntime
    import torch

    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.machine import cpu_model
    from cyclegan_edge.models import load_generator, save_generator, seeded_resnet_9blocks

    print(f"{cpu_model()}; onnxruntime {onnxruntime.__version__}; {args.count} calibration images of "
          f"horse2zebra/trainA at 256x256, percentile 99.99, TensorRT target")  # fmt: skip
    print(f"{'model':30s} {'held at once':>13s} {'seconds':>8s} {'peak RSS MiB':>13s}  scales vs all-at-once")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = {
            "compressed (GAN Compression)": Path(args.data) / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth",
            "classic resnet_9blocks": save_generator(Path(tmp) / "r9.pth", seeded_resnet_9blocks()),
        }
        for name, ckpt in checkpoints.items():
            with torch.no_grad():
                onnx_path = export_onnx(load_generator(ckpt), Path(tmp) / f"{len(name)}.onnx")
            scales = {}
            for per_pass in (0, 1):
                out = Path(tmp) / f"{len(name)}.{per_pass}.int8.onnx"
                r = subprocess.run([sys.executable, __file__, "--count", str(args.count), "--data", args.data,
                                    "--child", str(onnx_path), str(out), "-", str(per_pass)],
                                   capture_output=True, text=True, check=True)  # fmt: skip
                m = json.loads(r.stdout.strip().splitlines()[-1])
                scales[per_pass] = activation_scales(out)
                held = "all" if per_pass == 0 else "1 image"
                ratio = ""
                if per_pass:
                    q = np.array([scales[1][k] / scales[0][k] for k in scales[0]])
                    ratio = f"{len(q)} scales, ratio {q.min():.4f}..{q.max():.4f}"
                print(f"{name:30s} {held:>13s} {m['seconds']:8.1f} {m['peak_rss_mib']:13.0f}  {ratio}", flush=True)


if __name__ == "__main__":
    main()
