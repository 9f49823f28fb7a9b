"""Flicker of per-frame vs stabilized video, the stabilizer's cost, and its reset on scene cuts (issue 15).

    python benchmarks/flicker.py [--frames 60] [--size 256] [--shots DIR] [--h2z-onnx FILE] [--parts cost ...]

Models: the bundled demo (photo->Monet) and the compressed horse->zebra generator, exported to ONNX here
with ``python -m cyclegan_edge.export`` (or ``--h2z-onnx``). Clips: the first ``--frames`` frames of each
``../shared/data/videos/*.mp4``, translated at ``--size`` exactly as the runtime does (area-downscale,
model, stabilizer at inference size, linear upscale to the source size).

- Flicker: Lai et al.'s warping error (stabilize.METRIC_FLOW) of per-frame and stabilized output, and of
  the input itself (its floor: what flow cannot explain even in real footage); PSNR of stabilized against
  per-frame output (how far the filter moves away from the model's own frames). A sweep over blend weights.
- Cost: the Stabilizer's time per frame (flows, trust mask, warp, blend) at the inference size and at 720p.
- Scene cuts: two clips back to back; where the filter resets, and the PSNR between stabilized and per-frame
  output on the frames after the cut, with the reset and without it (``cut_fraction=0``).
- End to end: pipeline FPS with and without --stabilize (bench pipeline, the filter in its own thread).
- ``--shots DIR``: input | per-frame | stabilized PNGs of the fastest-moving frames, to look for ghosts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.bench.pipeline_bench import pipeline_vs_inference
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frame
from cyclegan_edge.machine import cpu_model
from cyclegan_edge.runtime.backends import Backend, open_backend
from cyclegan_edge.runtime.pipeline import PipelineOptions, inference_size
from cyclegan_edge.runtime.stabilize import (DEFAULT_WEIGHT, METRIC_FLOW, FlickerMeter, Stabilizer, dis_flow,
                                             downscaled, flows, grey_at, pixel_grid)  # fmt: skip

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CLIPS = ("butterfly", "flower", "cockatoo", "car-detection")
H2Z = DATA / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth"
WEIGHTS = (0.5, 0.6, 0.7, 0.8)
CUTS = (("butterfly", "cockatoo"), ("cockatoo", "butterfly"), ("flower", "car-detection"))
PARTS = ("flicker", "cost", "cuts", "end-to-end")
AFTER_CUT = 10  # frames after a cut whose PSNR is reported


def read_clip(name: str, frames: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DATA / "videos" / f"{name}.mp4"))
    out: list[np.ndarray] = []
    while len(out) < frames:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame if size is None else cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    cap.release()
    return out


def model_inputs(frames: list[np.ndarray], size: int) -> list[np.ndarray]:
    """The frames at the inference size, as the pipeline's pre stage makes them (the stabilizer reads these)."""
    hw = inference_size(frames[0].shape[:2], PipelineOptions(size=size))
    return [cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) if f.shape[:2] != hw else f for f in frames]


def translate(backend: Backend, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Per-frame outputs at the inference size."""
    return [tensor_to_frame(backend.infer(frames_to_tensor([f])), f.shape[:2]) for f in inputs]


def upscale(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """As the pipeline's post stage: the output back at the source size."""
    h, w = like.shape[:2]
    return out if out.shape[:2] == (h, w) else cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def stabilized(inputs: list[np.ndarray], outputs: list[np.ndarray], weight: float,
               cut_fraction: float | None = None) -> tuple[list[np.ndarray], Stabilizer]:  # fmt: skip
    st = Stabilizer(weight) if cut_fraction is None else Stabilizer(weight, cut_fraction=cut_fraction)
    return [st(i, o) for i, o in zip(inputs, outputs)], st


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.PSNR(a, b))  # 361 dB for identical frames (OpenCV's cap)


def export_h2z(tmp: Path) -> Path:
    onnx = tmp / "h2z.onnx"
    subprocess.run([sys.executable, "-m", "cyclegan_edge.export", str(H2Z), "--onnx", str(onnx)], check=True,
                   timeout=1800, stdout=subprocess.DEVNULL)  # fmt: skip
    return onnx


def flicker_table(models: dict[str, Backend], frames: int, size: int, shots: Path | None) -> None:
    print(f"\n## Flicker: warping error (0-255 levels) at --size {size}, first {frames} frames per clip")
    print(f"metric flow: {METRIC_FLOW}; stabilizer weight {DEFAULT_WEIGHT} unless swept")
    print("PSNR: stabilized vs per-frame output. Ghost check: mean |stabilized - per-frame| on the pixels the metric's "
          "flow marks as not visible in the previous frame (occluded / disoccluded), against the visible ones: a "
          "ghost (the previous frame showing through) would make the first larger")  # fmt: skip
    print(f"{'model':7s} {'clip':14s} {'input':>6s} {'per-frame':>9s} {'stabilized':>10s} {'change':>7s} "
          f"{'PSNR dB':>7s} {'occl / visible':>14s} {'cuts':>4s}")  # fmt: skip
    sweep: dict[float, list[tuple[float, float]]] = {w: [] for w in WEIGHTS}
    weights = sorted({*WEIGHTS, DEFAULT_WEIGHT})
    for clip in CLIPS:
        sources = read_clip(clip, frames)
        inputs = model_inputs(sources, size)
        per_frame = {name: translate(backend, inputs) for name, backend in models.items()}
        runs = {(name, w): stabilized(inputs, outs, w) for name, outs in per_frame.items() for w in weights}
        meter = FlickerMeter()  # one input flow for every stream of this clip
        psnrs: dict[tuple[str, float], list[float]] = {k: [] for k in runs}
        ghost: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in models}
        for i, s in enumerate(sources):
            base = {name: upscale(outs[i], s) for name, outs in per_frame.items()}
            stable = {k: upscale(r[0][i], s) for k, r in runs.items()}
            meter.update(s, s, *base.values(), *stable.values())
            for (name, w), o in stable.items():
                psnrs[name, w].append(psnr(o, base[name]))
                if w == DEFAULT_WEIGHT and i > 0 and meter.mask is not None and not meter.mask.all():
                    small = [downscaled(x, meter.shorter).astype(np.float32) for x in (o, base[name])]
                    diff = np.abs(small[0] - small[1])
                    ghost[name][0].append(float(diff.mean(-1)[~meter.mask].mean()))
                    ghost[name][1].append(float(diff.mean(-1)[meter.mask].mean()))
        inp, *errs = [float("nan") if v is None else v for v in meter.values]
        base_err = dict(zip(per_frame, errs[: len(per_frame)]))
        stable_err = dict(zip(runs, errs[len(per_frame) :]))
        for name in models:
            for w in weights:
                change = stable_err[name, w] / base_err[name] - 1.0
                if w in WEIGHTS:
                    sweep[w].append((change, statistics.fmean(psnrs[name, w][1:])))
                if w == DEFAULT_WEIGHT:
                    occluded, visible = (statistics.fmean(g) for g in ghost[name])
                    print(f"{name:7s} {clip:14s} {inp:6.2f} {base_err[name]:9.2f} {stable_err[name, w]:10.2f} "
                          f"{100 * change:+6.1f}% {statistics.fmean(psnrs[name, w][1:]):7.1f} "
                          f"{occluded:6.2f} / {visible:5.2f} {runs[name, w][1].cuts:4d}")  # fmt: skip
            if shots is not None:
                save_shots(shots, f"{name}_{clip}", sources, per_frame[name], runs[name, DEFAULT_WEIGHT][0])
    print("\nweight sweep (all 8 model x clip runs): flicker change mean / worst, PSNR vs per-frame mean")
    for w, rows in sweep.items():
        changes = [r[0] for r in rows]
        print(f"  weight {w}: {100 * statistics.fmean(changes):+.1f}% / {100 * max(changes):+.1f}%, "
              f"{statistics.fmean(r[1] for r in rows):.1f} dB")  # fmt: skip


def save_shots(folder: Path, tag: str, sources: list[np.ndarray], per_frame: list[np.ndarray],
               stable: list[np.ndarray], count: int = 2) -> None:  # fmt: skip
    """input | per-frame | stabilized at the inference size, for the frames with the most input motion."""
    folder.mkdir(parents=True, exist_ok=True)
    dis = dis_flow("medium")
    greys = [grey_at(s, 180) for s in sources]
    motion = [0.0] + [float(np.abs(flows(dis, a, b)[0]).mean()) for a, b in zip(greys, greys[1:])]
    for i in sorted(np.argsort(motion)[-count:]):
        h, w = per_frame[i].shape[:2]
        src = cv2.resize(sources[i], (w, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{tag}_{i:03d}.png"), np.hstack([src, per_frame[i], stable[i]]))


def timed(fn: Callable[[np.ndarray, np.ndarray], object], sources: list[np.ndarray],
          outputs: list[np.ndarray]) -> tuple[list[float], list[float]]:  # fmt: skip
    """Wall and CPU milliseconds of each call but the first, OpenCV on one thread: the host is shared, and
    the CPU time of the calling thread is what the other jobs cannot inflate."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    wall, cpu = [], []
    try:
        for s, o in zip(sources, outputs):
            t, c = time.perf_counter(), time.thread_time()
            fn(s, o)
            wall.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
    finally:
        cv2.setNumThreads(threads)
    return wall[1:], cpu[1:]


def warp_and_blend() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The two full-size operations of the stabilizer that no flow resolution can shrink: the previous
    output remapped (a constant half-pixel shift, maps made once) and blended with the current one."""
    state: dict[str, np.ndarray] = {}

    def step(source: np.ndarray, output: np.ndarray) -> np.ndarray:
        h, w = output.shape[:2]
        if "maps" not in state:
            state["maps"] = cv2.convertMaps(pixel_grid(h, w) + 0.5, None, cv2.CV_16SC2)
            state["alpha"] = np.full((h, w), DEFAULT_WEIGHT, np.float32)
            state["prev"] = output
        warped = cv2.remap(state["prev"], *state["maps"], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        state["prev"] = cv2.blendLinear(warped, output, state["alpha"], 1.0 - state["alpha"])
        return state["prev"]

    return step


def cost(models: dict[str, Backend], frames: int, size: int) -> None:
    print(f"\n## Cost per frame (ms, over {frames - 1} frames of butterfly, 1280x720 input; OpenCV on one thread): "
          "CPU time median, wall time median / min")  # fmt: skip
    sources = read_clip("butterfly", frames)
    inputs = model_inputs(sources, size)
    backend = next(iter(models.values()))
    per_frame = translate(backend, inputs)
    full = [upscale(o, s) for o, s in zip(per_frame, sources)]
    h, w = per_frame[0].shape[:2]

    def show(what: str, wall: list[float], cpu: list[float]) -> float:
        print(f"  {what}: CPU {statistics.median(cpu):.1f}; wall {statistics.median(wall):.1f} / {min(wall):.1f}")
        return statistics.median(cpu)

    stabilizer_cpu = show(f"stabilizer, {h}x{w} output (--size {size})", *timed(Stabilizer(), inputs, per_frame))
    show("stabilizer, 720x1280 output (full-size inference)", *timed(Stabilizer(), sources, full))
    show("  of which its floor, one fixed-point remap + one blend at 720x1280", *timed(warp_and_blend(), sources, full))
    meter = FlickerMeter()
    show("for scale, the flicker meter (DIS medium, two flows at 360 px)", *timed(meter.update, sources, per_frame))
    x = frames_to_tensor([inputs[0]])
    infer_cpu = []
    for _ in range(10):
        c = time.process_time()  # the backend's own threads included
        backend.infer(x)
        infer_cpu.append((time.process_time() - c) * 1e3)
    infer = statistics.median(infer_cpu)
    print(f"  the model ({backend.name}) at {h}x{w}: CPU {infer:.1f} (all its threads); so on a CPU with no idle "
          f"core the stabilizer's thread costs at most {100 * stabilizer_cpu / (infer + stabilizer_cpu):.0f}% of "
          "throughput")  # fmt: skip


def cuts(backend: Backend, name: str, size: int, half: int) -> None:
    print(f"\n## Scene cuts ({name}): {half} frames of one clip, then {half} of another (at the first's size)")
    print(f"PSNR of stabilized vs per-frame output on the {AFTER_CUT} frames after the cut (per-frame output: inf)")
    for a, b in CUTS:
        first = read_clip(a, half)
        second = read_clip(b, half, first[0].shape[:2])
        sources = first + second
        inputs = model_inputs(sources, size)
        per_frame = translate(backend, inputs)
        alone, _ = stabilized(inputs[half:], per_frame[half:], DEFAULT_WEIGHT)
        rows = []
        for label, cut_fraction in (("reset", None), ("no reset", 0.0)):
            out, st = stabilized(inputs, per_frame, DEFAULT_WEIGHT, cut_fraction)
            after = [psnr(upscale(o, s), upscale(p, s)) for o, p, s in
                     zip(out[half : half + AFTER_CUT], per_frame[half:], sources[half:])]  # fmt: skip
            same = np.array_equal(out[half], per_frame[half])
            first_frame = "identical" if same else f"{after[0]:.1f} dB"
            rows.append(f"{label}: {statistics.fmean(after[1:]):.1f} dB over frames 2..{AFTER_CUT} "
                        f"(first frame {first_frame}; cuts seen {st.cuts})")  # fmt: skip
        ref = [psnr(upscale(o, s), upscale(p, s)) for o, p, s in zip(alone[:AFTER_CUT], per_frame[half:], second)]
        print(f"  {a} -> {b}: " + "; ".join(rows) + f"; the second clip stabilized on its own: "
              f"{statistics.fmean(ref[1:]):.1f} dB")  # fmt: skip


def end_to_end(backend: Backend, name: str, frames: int, size: int) -> None:
    video = str(DATA / "videos" / "butterfly.mp4")
    print(f"\n## End to end ({name}, butterfly, {frames} frames, --size {size}; bench pipeline, file to file)")
    fps: dict[float, list[float]] = {}
    for w in (0.0, DEFAULT_WEIGHT, 0.0, DEFAULT_WEIGHT):  # interleaved: the host's load drifts
        r = pipeline_vs_inference(backend, video, size, frames, stabilize=w)
        fps.setdefault(w, []).append(r["pipeline_fps"])
        print(f"  {'--stabilize' if w else 'per-frame  '}: {r['pipeline_fps']:.2f} FPS, stage ms {r['stage_ms_mean']}")
    ratio = statistics.fmean(fps[DEFAULT_WEIGHT]) / statistics.fmean(fps[0.0])
    print(f"  with / without --stabilize: {100 * ratio:.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--h2z-onnx", type=Path, help="the horse->zebra ONNX (default: export it to a temp dir)")
    ap.add_argument("--shots", type=Path, help="write input | per-frame | stabilized PNGs here")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which sections to run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        h2z = args.h2z_onnx or export_h2z(Path(tmp))
        models = {"monet": open_backend(ASSETS_DIR / "photo2monet.onnx"), "h2z": open_backend(h2z)}
        names = ", ".join(f"{k} on {b.name}" for k, b in models.items())
        print(f"{cpu_model()}, shared with other jobs (noisy: compare within this run); models {names}")
        if "flicker" in args.parts:
            flicker_table(models, args.frames, args.size, args.shots)
        if "cost" in args.parts:
            cost(models, args.frames, args.size)
        if "cuts" in args.parts:
            cuts(models["h2z"], "h2z", args.size, args.frames // 2)
        if "end-to-end" in args.parts:
            end_to_end(models["monet"], "monet", args.frames // 2, args.size)


if __name__ == "__main__":
    main()
