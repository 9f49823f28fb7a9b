"""Video files through PyAV (issue 12): H.264 vs OpenCV's mp4v, end-to-end FPS, and what a kill costs.

    python benchmarks/video_h264.py [--model cyclegan_edge/assets/photo2monet.onnx] [--size 256]

1. Size and quality: the backend's uncompressed output for the street video's first 120 frames (768x432,
   inference at --size) encoded by OpenCV's mp4v writer (the old default) and by x264 at several CRFs;
   PSNR of the decoded frames against the uncompressed ones, file size, and the x264 CRF that matches mp4v.
2. End to end (wall clock): the street video's first --frames frames (with its audio) converted to H.264
   by the runtime pipeline vs the same backend's inference alone on the same frames at the same size,
   measured before and after; OpenCV's mp4v writer for reference.
3. CPU time per frame of decoding, pre/post-processing, inference and encoding (x264 presets, mp4v): on a
   shared machine the wall clock moves with the other work, CPU time barely does.
4. Resume: the command line converting the whole street video is killed (SIGKILL) when half the frames are
   written, then rerun; frames the rerun had to encode again = frames written at the kill - frames kept.
5. Part 1 on the source's own frames (camera footage, no model).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from cyclegan_edge.bench.pipeline_bench import inference_only_seconds
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frame
from cyclegan_edge.machine import cpu_model
from cyclegan_edge.runtime.backends import open_backend
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, inference_size, output_size
from cyclegan_edge.runtime.sinks import EncodeSettings, MemorySink, Sink, VideoFileSink, open_output
from cyclegan_edge.runtime.sources import open_source

ROOT = Path(__file__).resolve().parents[1]
STREET = ROOT.parent / "shared" / "data" / "videos" / "car-detection.mp4"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def mean_psnr(path: Path, ref: list[np.ndarray]) -> tuple[float, float]:
    """Mean PSNR of the decoded frames against ``ref``: in BGR, and on luma against ``ref`` converted with
    the file's own matrix (BT.601 for OpenCV's writer, BT.709 for ours): the codec's loss alone, without
    the 4:2:0 chroma subsampling both formats share."""
    bgr, luma = [], []
    with av.open(str(path)) as c:
        for f, r in zip(c.decode(video=0), ref):
            matrix = "ITU709" if f.colorspace == 1 else "ITU601"
            y_ref = av.VideoFrame.from_ndarray(r, format="bgr24").reformat(format="yuv420p", dst_colorspace=matrix)
            h = r.shape[0]
            luma.append(psnr(f.reformat(format="yuv420p").to_ndarray()[:h], y_ref.to_ndarray()[:h]))
            bgr.append(psnr(f.to_ndarray(format="bgr24"), r))
    assert len(bgr) == len(ref), (path, len(bgr), len(ref))
    return float(np.mean(bgr)), float(np.mean(luma))


def encode(frames: list[np.ndarray], sink: Sink) -> None:
    for f in frames:
        sink.write(f)
    sink.close()


def size_and_quality(backend: object | None, video: str, size: int, tmp: Path) -> list[str]:
    """With a backend: its output frames; without: the source's own frames (camera footage)."""
    source, memory = open_source(video), MemorySink()
    if backend is not None:
        Pipeline(source, backend, memory, PipelineOptions(size=size, max_frames=120)).run()  # type: ignore[arg-type]
        frames, what = memory.frames_list, f"1. size and quality: the backend's output at --size {size}"
    else:
        frames, what = [f for f in (source.read() for _ in range(120)) if f is not None], "5. the same on the footage"
    fps = source.fps
    source.close()
    h, w = frames[0].shape[:2]
    lines = [f"{what}, {len(frames)} frames {w}x{h}; mean PSNR of the decoded file against them in BGR (4:2:0 "
             "chroma loss included: lossless 4:2:0 reaches only ~37 dB on the model's stippled output) and on luma "
             "(PSNR-Y: the codec's own loss)"]  # fmt: skip
    mp4v = tmp / "mp4v.mp4"
    encode(frames, VideoFileSink(mp4v, fps, (h, w)))
    (ref_db, ref_y), ref_kb = mean_psnr(mp4v, frames), mp4v.stat().st_size / 1024
    lines.append(f"   OpenCV mp4v (the old writer)  {ref_kb:7.0f} KiB  BGR {ref_db:5.2f} dB  Y {ref_y:5.2f} dB")
    rows: list[tuple[str, int, float, float, float]] = []
    for preset in ("veryfast", "medium"):
        for crf in (14, 18, 20, 22, 23, 28, 32) if preset == "veryfast" else (14, 18, 23, 28):
            out = tmp / f"x264_{preset}_{crf}.mp4"
            encode(frames, open_output(str(out), fps, (h, w), EncodeSettings(crf=crf, preset=preset)))
            (db, y), kb = mean_psnr(out, frames), out.stat().st_size / 1024
            rows.append((preset, crf, kb, db, y))
            note = "  <- default" if (preset, crf) == ("veryfast", 18) else ""
            lines.append(f"   x264 {preset:8s} CRF {crf:2d}      {kb:7.0f} KiB  BGR {db:5.2f} dB  Y {y:5.2f} dB{note}")
    for metric, ref, i in (("PSNR-Y", ref_y, 4), ("BGR PSNR", ref_db, 3)):
        same = size_at(ref, [(float(r[i]), r[2]) for r in rows if r[0] == "veryfast"])
        if same:
            lines.append(f"   at mp4v's {metric} ({ref:.2f} dB) x264 veryfast needs {same:.0f} KiB (log-size interpolated "
                         f"between CRFs): {ref_kb / same:.2f}x smaller than mp4v's {ref_kb:.0f} KiB")  # fmt: skip
    return lines


def size_at(db: float, points: list[tuple[float, float]]) -> float | None:
    """File size at quality ``db`` from (dB, KiB) points, interpolating log(size) linearly in dB."""
    pts = sorted(points)
    for (d0, k0), (d1, k1) in zip(pts, pts[1:]):
        if d0 <= db <= d1:
            t = (db - d0) / (d1 - d0) if d1 > d0 else 0.0
            return float(np.exp(np.log(k0) + t * (np.log(k1) - np.log(k0))))
    return None


def end_to_end(backend: object, video: str, size: int, frames: int, tmp: Path) -> list[str]:
    """Wall clock: inference alone before and after (the machine is shared: its mean is the baseline), the
    pipeline to H.264 and to mp4v in between, all on the same first ``frames`` frames."""
    lines = [f"2. end to end: {video.rsplit('/', 1)[-1]} (first {frames} frames) -> file, inference at --size {size}, "
             "wall clock"]  # fmt: skip
    source = open_source(video)
    opts = PipelineOptions(size=size, max_frames=frames)
    hw, shape = inference_size(source.size, opts), output_size(source.size, opts)
    source.close()
    baseline = [frames / inference_only_seconds(backend, video, hw, frames, lambda: None)]  # type: ignore[arg-type]
    results = {}
    for name in ("h264", "mp4v"):
        source = open_source(video)
        out = tmp / f"e2e_{name}.mp4"
        sink: Sink = open_output(str(out), source.fps, shape, EncodeSettings(), source) if name == "h264" else \
            VideoFileSink(out, source.fps, shape)  # fmt: skip
        results[name] = Pipeline(source, backend, sink, opts).run()  # type: ignore[arg-type]
        source.close()
        assert results[name].error is None, results[name].error
    baseline.append(frames / inference_only_seconds(backend, video, hw, frames, lambda: None))  # type: ignore[arg-type]
    inference_fps = float(np.mean(baseline))
    lines.append(f"   inference alone: {baseline[0]:.2f} FPS before, {baseline[1]:.2f} after ({hw[1]}x{hw[0]})")
    for name, stats in results.items():
        st = stats.summary()["stage_ms_mean"]
        lines.append(f"   pipeline with {name}: {stats.fps:6.2f} FPS = {100 * stats.fps / inference_fps:5.1f}% of inference "
                     "alone; stage means ms: " + ", ".join(f"{k} {v}" for k, v in st.items()))  # fmt: skip
    return lines


def cpu_costs(backend: Any, video: str, size: int, frames: int, tmp: Path) -> list[str]:
    """CPU time per frame of each step (all threads of the process): unlike wall clock, barely moved by other
    work on a shared machine. When inference can use every core, the pipeline reaches about
    inference / (sum of all steps) of inference alone."""
    cpu: dict[str, float] = {}
    source = open_source(video)
    opts = PipelineOptions(size=size)
    hw, shape = inference_size(source.size, opts), output_size(source.size, opts)
    t = time.process_time()
    decoded = [f for f in (source.read() for _ in range(frames)) if f is not None]
    cpu["decode"] = time.process_time() - t
    source.close()
    t = time.process_time()
    tensors = [frames_to_tensor([cv2().resize(f, (hw[1], hw[0]), interpolation=cv2().INTER_AREA)]) for f in decoded]
    cpu["pre"] = time.process_time() - t
    t = time.process_time()
    outputs = [backend.infer(x) for x in tensors]
    cpu["infer"] = time.process_time() - t
    t = time.process_time()
    results = [cv2().resize(tensor_to_frame(y, hw), (shape[1], shape[0]), interpolation=cv2().INTER_LINEAR)
               for y in outputs]  # fmt: skip
    cpu["post"] = time.process_time() - t
    encoders: dict[str, float] = {}
    for preset in ("ultrafast", "superfast", "veryfast", "medium"):
        t = time.process_time()
        encode(results, open_output(str(tmp / f"cpu_{preset}.mp4"), 12.5, shape, EncodeSettings(preset=preset)))
        encoders[f"x264 {preset}"] = time.process_time() - t
    t = time.process_time()
    encode(results, VideoFileSink(tmp / "cpu_mp4v.mp4", 12.5, shape))
    encoders["mp4v"] = time.process_time() - t
    n = len(decoded)
    lines = [f"3. CPU time per frame (ms, all threads; {n} frames, inference at {hw[1]}x{hw[0]}, output {shape[1]}x{shape[0]}): "
             + ", ".join(f"{k} {1e3 * v / n:.1f}" for k, v in cpu.items())]  # fmt: skip
    rest = sum(v for k, v in cpu.items() if k != "infer")
    for name, enc in encoders.items():
        share = cpu["infer"] / (cpu["infer"] + rest + enc)
        note = "  <- default" if name == "x264 veryfast" else ""
        lines.append(f"   encode {name:15s} {1e3 * enc / n:6.1f} ms -> pipeline at about {100 * share:.0f}% of "
                     f"inference alone when inference fills the cores{note}")  # fmt: skip
    return lines


def kill_at_half(model: str, video: str, size: int, tmp: Path, total: int) -> list[str]:
    out = tmp / "resume.mp4"
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "--engine", model, "--video", video, "--size", str(size),
           "-o", str(out), "--headless"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    written = [0]

    def progress() -> None:  # tqdm's "N/377" on stderr
        assert proc.stderr is not None
        buf = b""
        while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
            buf = (buf + chunk)[-200:]
            found = re.findall(rb"(\d+)/%d" % total, buf)
            if found:
                written[0] = int(found[-1])

    reader = threading.Thread(target=progress, daemon=True)
    reader.start()
    t0 = time.time()
    while proc.poll() is None and written[0] < total // 2 and time.time() - t0 < 1800:
        time.sleep(0.01)
    at_kill = written[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    rerun_s = time.time() - t
    kept = int(re.search(r"resuming after frame (\d+)", r.stderr).group(1))  # type: ignore[union-attr]
    with av.open(str(out)) as c:
        n = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    redone = at_kill - kept
    return [f"4. resume: killed (SIGKILL) at {at_kill}/{total} frames written; the rerun kept {kept} (the finished GOPs: "
            f"2 s, or shorter at a scene cut), re-encoded {redone} ({redone / 12.5:.1f} s of video), finished in {rerun_s:.1f} s; "
            f"output {n} frames (source {total})"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "cyclegan_edge" / "assets" / "photo2monet.onnx"))
    ap.add_argument("--video", default=str(STREET))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=150, help="frames for the end-to-end and CPU-time parts")
    ap.add_argument("--parts", default="1,2,3,4,5", help="which parts to run, e.g. 1 or 2,3")
    args = ap.parse_args()
    backend = open_backend(args.model)
    print(f"{cpu_model()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the start: shared "
          f"machine); {Path(args.model).name} on {backend.name}; PyAV {av.__version__}")  # fmt: skip
    parts = {
        "1": lambda tmp: size_and_quality(backend, args.video, args.size, tmp),
        "2": lambda tmp: end_to_end(backend, args.video, args.size, args.frames, tmp),
        "3": lambda tmp: cpu_costs(backend, args.video, args.size, args.frames, tmp),
        "4": lambda tmp: kill_at_half(args.model, args.video, args.size, tmp, open_source(args.video).frame_count),
        "5": lambda tmp: size_and_quality(None, args.video, args.size, tmp),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts.split(","):
            for line in parts[part](Path(tmp)):
                print(line, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
