"""End-to-end runtime FPS on a video file with OpenVINO: one stream (latency first, a frame at a time) vs
two streams with two frames in flight (what the runtime uses for files), and each against its backend's
inference alone on the same frames (the CPU issue's goal: end to end >= 90% of inference).

    python benchmarks/openvino_streams.py [--video cyclegan_edge/assets/butterfly.mp4] [--rounds 3]

Cases run interleaved, round by round, so a noisy neighbour hits them alike; prints median and min FPS.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.bench.pipeline_bench import pipeline_vs_inference
from cyclegan_edge.machine import cpu_flags, cpu_model
from cyclegan_edge.runtime.backends import BackendOptions, open_backend

MODELS = ("photo2monet.onnx", "photo2monet.int8.onnx")
CASES = {"1 stream, sync": 0, "2 streams, 2 in flight": 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(ASSETS_DIR / "butterfly.mp4"))
    ap.add_argument("--size", type=int, default=256, help="inference shorter side")
    ap.add_argument("--max-frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    backends = {(m, c): open_backend(ASSETS_DIR / m, BackendOptions(backend="openvino", streams=s))
                for m in MODELS for c, s in CASES.items()}  # fmt: skip
    runs: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in backends}
    for _ in range(args.rounds):
        for (model, case), backend in backends.items():
            # the one-stream case's inference alone runs a frame at a time: what bounded the runtime before
            r = pipeline_vs_inference(backend, args.video, args.size, args.max_frames,
                                      in_flight=case != "1 stream, sync")  # fmt: skip
            runs[(model, case)].append(r)
    first = next(iter(runs.values()))[0]
    print(f"{cpu_model()}; vector flags {' '.join(cpu_flags())}; {Path(args.video).name}, {first['frames']} frames "
          f"at {first['inference_size']} (source {first['source_size'][1]}x{first['source_size'][0]}); "
          f"{args.rounds} interleaved rounds, median (min)")  # fmt: skip
    for (model, case), rs in runs.items():
        pipe = [r["pipeline_fps"] for r in rs]
        ratio = [r["ratio"] for r in rs]
        print(f"{model:24s} {case:24s} {backends[(model, case)].name:28s} end to end {statistics.median(pipe):5.2f} "
              f"({min(pipe):5.2f}) FPS; vs its inference alone {100 * statistics.median(ratio):5.1f}% "
              f"({100 * min(ratio):5.1f}%)")  # fmt: skip
    for model in MODELS:
        one, two = (statistics.median(r["pipeline_fps"] for r in runs[(model, c)]) for c in CASES)
        sync = statistics.median(r["inference_fps"] for r in runs[(model, next(iter(CASES)))])
        print(f"{model}: end to end, two streams in flight {two / one:.2f}x one stream; {100 * two / sync:.0f}% of "
              f"one-stream inference alone ({sync:.2f} FPS), which is what the runtime's FPS used to be bounded by")  # fmt: skip


if __name__ == "__main__":
    main()
