"""Pipeline FPS vs pure inference FPS at 256x256 (the runtime issue's goal: >= 90%).

    python benchmarks/pipeline_fps.py MODEL [--video ../shared/data/videos/car-detection.mp4]

Makes a 256x256 centre crop of the street video (all 377 frames, H.264 decoded by OpenCV), converts
it through the runtime pipeline to an MPEG-4 file, and measures the same backend's pure inference at
256x256; prints both and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2

from cyclegan_edge.machine import cpu_model
from cyclegan_edge.bench.pipeline_bench import pipeline_vs_inference
from cyclegan_edge.runtime.backends import CONVERSION_PRECISION_HINT, BackendOptions, job_options, open_backend

ROOT = Path(__file__).resolve().parents[1]


def centre_crop_clip(video: str, out: Path, side: int = 256) -> None:
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (side, side))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        s = min(h, w)
        crop = frame[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]
        writer.write(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "videos" / "car-detection.mp4"))
    ap.add_argument("--provider", default="auto")
    args = ap.parse_args()
    options = BackendOptions(provider=args.provider, precision_hint=CONVERSION_PRECISION_HINT)
    backend = open_backend(args.model, job_options(options, live=False))  # as the runtime opens it for a file
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "street_256.avi"
        centre_crop_clip(args.video, clip)
        r = pipeline_vs_inference(backend, str(clip), size=0)
    print(f"{cpu_model()}; {Path(args.model).name} on {r['backend']}, {r['frames']} frames at {r['inference_size']}")
    print(f"pipeline {r['pipeline_fps']:.2f} FPS end to end, inference alone on the same frames "
          f"{r['inference_fps']:.2f} FPS: {100 * r['ratio']:.1f}%")  # fmt: skip
    print("stage means (ms): " + ", ".join(f"{k} {v}" for k, v in r["stage_ms_mean"].items()))


if __name__ == "__main__":
    main()
