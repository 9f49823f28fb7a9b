"""Package a summer2winter training run as the bundled season models (issue 13).

    python scripts/export_season_models.py ~/runs/s2w_bilinear [--data ../shared/data/summer2winter_yosemite]

From the run's training state (``checkpoints/latest.pt``, both generators) it writes, in cyclegan_edge/assets/:
``summer2winter.pth`` / ``winter2summer.pth`` (our generator format), their ONNX (``python -m
cyclegan_edge.export``: FP32 parity against PyTorch on real test photos) and ``summer2winter.int8.onnx``
(``--precision int8 --target cpu``, calibrated on 64 summer training photos: what the CPU demo runs on
OpenVINO). The export reports go to ``benchmarks/season/``. Then it draws docs/season_before_after.jpg:
frames of the bundled demo clip before and after summer2winter, as the demo runs them (256 px).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

from cyclegan_edge.imaging.frames import frames_to_tensor, resize_shorter_side, tensor_to_frames
from cyclegan_edge.imaging.io import write_image
from cyclegan_edge.imaging.resize import resize_area
from cyclegan_edge.models import load_generator, save_generator

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "cyclegan_edge" / "assets"
REPORTS = ROOT / "benchmarks" / "season"
DIRECTIONS = {"summer2winter": "A->B", "winter2summer": "B->A"}
SHOT_SECONDS = (0.5, 2.0, 3.5)


def export(cmd: list[str]) -> None:
    print("+ python -m cyclegan_edge.export " + " ".join(cmd))
    subprocess.run([sys.executable, "-m", "cyclegan_edge.export", *cmd], check=True)


def clip_frames(path: Path, seconds: tuple[float, ...]) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if len(frames) < len(seconds) and f.time is not None and f.time >= seconds[len(frames)]:
                frames.append(f.to_ndarray(format="bgr24"))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "summer2winter_yosemite")
    args = ap.parse_args()
    state = args.run_dir / "checkpoints" / "latest.pt"
    REPORTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, direction in DIRECTIONS.items():
            g = load_generator(state, direction=direction)
            meta = {**g.meta, "name": name, "dataset": "summer2winter_yosemite (A: summer, B: winter)"}
            pth = save_generator(ASSETS / f"{name}.pth", g.model, meta)
            test = args.data / ("testA" if direction == "A->B" else "testB")
            onnx = Path(tmp) / f"{name}.onnx"
            export([str(pth), "--onnx", str(onnx), "--test-images", str(test), "--test-count", "12"])
            if name == "summer2winter":
                export([str(pth), "--onnx", str(onnx), "--precision", "int8", "--target", "cpu", "--calib",
                        str(args.data / "trainA"), "--calib-count", "64", "--test-images", str(test),
                        "--test-count", "12"])  # fmt: skip
            for f in Path(tmp).glob(f"{name}*.onnx"):
                shutil.copy(f, ASSETS / f.name)
            for f in Path(tmp).glob(f"{name}*.json"):  # the reports, naming the files where they now are
                (REPORTS / f.name).write_text(f.read_text().replace(tmp, "cyclegan_edge/assets"))
            print(f"{name}: iteration {meta.get('iterations')}, {pth.stat().st_size / 1e6:.2f} MB .pth")

    g = load_generator(ASSETS / "summer2winter.pth").model.eval()
    rows = []
    for frame in clip_frames(ASSETS / "butterfly.mp4", SHOT_SECONDS):
        small = resize_area(frame, resize_shorter_side(*frame.shape[:2], 256))
        with torch.no_grad():
            out = tensor_to_frames(g(torch.from_numpy(frames_to_tensor([small]))).numpy(), small.shape[:2])[0]
        rows.append(np.hstack([small, np.full((small.shape[0], 8, 3), 255, np.uint8), out]))
    shot = np.vstack([np.pad(r, ((0, 8), (0, 0), (0, 0)), constant_values=255) for r in rows])
    print(write_image(ROOT / "docs" / "season_before_after.jpg", shot))


if __name__ == "__main__":
    main()
