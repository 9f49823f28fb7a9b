"""python -m cyclegan_edge.runtime: translate a camera, a video or a folder with any backend.

    python -m cyclegan_edge.runtime --demo                      # bundled model + clip, ONNX Runtime CPU
    python -m cyclegan_edge.runtime --camera 0 --engine summer2winter.plan
    python -m cyclegan_edge.runtime --video street.mp4 --output street_monet.mp4 --size 256
    python -m cyclegan_edge.runtime --input videos/ --output converted/
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cyclegan_edge import ASSETS_DIR as ASSETS
from cyclegan_edge.imaging.cv import MissingDependency
from cyclegan_edge.runtime.backends import Backend, BackendError, BackendOptions, open_backend
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, PipelineStats, output_size
from cyclegan_edge.runtime.sinks import ImageFolderSink, MultiSink, Sink, SinkError, VideoFileSink, WindowSink, display_available
from cyclegan_edge.runtime.sources import SourceError, open_source

DEFAULT_MODEL = "photo2monet.onnx"
DEMO_CLIP = "demo.mp4"
DEMO_OUTPUT = "cyclegan_edge_demo.mp4"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m cyclegan_edge.runtime", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--camera", metavar="URI", help="0, /dev/video0, csi://0, rtsp://..., test://?fps=30")
    src.add_argument("--video", metavar="FILE", help="a video file (every frame is converted)")
    src.add_argument("--input", metavar="DIR", help="convert every video and image in a folder (batch)")
    src.add_argument("--demo", action="store_true", help="the bundled clip (default when no source is given)")
    ap.add_argument("--engine", "--model", dest="model", metavar="MODEL",
                    help=".plan/.engine (TensorRT), .onnx (ONNX Runtime) or .pth/.pt (PyTorch); default: bundled demo")  # fmt: skip
    ap.add_argument("--output", "-o", metavar="PATH", help="video file, or folder (frames / batch outputs)")
    ap.add_argument("--headless", action="store_true", help="never open a window")
    ap.add_argument("--show", action="store_true", help="show a window even when writing --output")
    ap.add_argument("--size", type=int, default=0, help="inference at this shorter side (multiple of 4); 0 = full")
    ap.add_argument("--side-by-side", action="store_true", help="input and output next to each other")
    ap.add_argument("--provider", default="auto", help="ONNX Runtime: auto, cpu, cuda, tensorrt")
    ap.add_argument("--device", default="auto", help="PyTorch: auto, cpu, cuda")
    ap.add_argument("--fp16", action="store_true", help="PyTorch on CUDA: half precision")
    ap.add_argument("--cuda-graphs", action="store_true", help="PyTorch on CUDA: replay captured CUDA graphs")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for the backend (0: library default)")
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="batch: convert files whose output exists")
    return ap


def default_model() -> Path:
    return Path(str(ASSETS / DEFAULT_MODEL))


def make_sinks(args: argparse.Namespace, fps: float, size: tuple[int, int]) -> Sink:
    sinks: list[Sink] = []
    if args.output:
        out = Path(args.output)
        sinks.append(ImageFolderSink(out) if not out.suffix else VideoFileSink(out, fps, size))
    want_window = not args.headless and (args.show or not args.output)
    if want_window:
        if display_available():
            sinks.append(WindowSink())
        elif not sinks:
            raise SinkError("no display here: give --output FILE (or run where a window can open)")
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


def report(stats: PipelineStats, backend: Backend, where: str, live: bool) -> None:
    s = stats.summary()
    # For files, frames wait in the queues by design (lossless), so latency only means something live.
    extra = f"; latency p50 {s['latency_ms_p50']} ms, {s['dropped']} stale frames dropped" if live else ""
    print(f"{s['frames_out']} frames -> {where} at {s['fps']:.1f} FPS ({backend.name}{extra})")


def run_stream(args: argparse.Namespace, backend: Backend, opts: PipelineOptions, uri: str) -> int:
    source = open_source(uri)
    try:
        sink = make_sinks(args, source.fps, output_size(source.size, opts))
        stats = Pipeline(source, backend, sink, opts).run()
    finally:
        source.close()
    report(stats, backend, sink.name, source.live)
    if stats.error:
        print(f"error: {stats.error} (output so far finalized in {sink.name})", file=sys.stderr)
        return 1
    if stats.interrupted:
        print(f"stopped: {stats.frames_out} frames written to {sink.name}", file=sys.stderr)
        return 130 if not sink.quit_requested else 0
    return 0


def run_batch(args: argparse.Namespace, backend: Backend, opts: PipelineOptions) -> int:
    from cyclegan_edge.runtime.batch import convert_folder, summary_table

    if not args.output:
        raise SinkError("--input DIR needs --output DIR")
    in_dir = Path(args.input)
    if not in_dir.is_dir():
        raise SourceError(f"{in_dir}: no such folder")
    results = convert_folder(in_dir, args.output, backend, opts, overwrite=args.overwrite)
    print(summary_table(results, in_dir))
    failed = [r for r in results if r.failed]
    print(f"{len(results) - len(failed)} of {len(results)} files ok; outputs in {args.output}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    opts = PipelineOptions(size=args.size, side_by_side=args.side_by_side, max_frames=args.max_frames)
    try:
        model = args.model or default_model()
        backend = open_backend(model, BackendOptions(device=args.device, provider=args.provider, fp16=args.fp16,
                                                     cuda_graphs=args.cuda_graphs, threads=args.threads))  # fmt: skip
        if args.input:
            return run_batch(args, backend, opts)
        if args.camera:
            return run_stream(args, backend, opts, args.camera)
        if args.video:
            return run_stream(args, backend, opts, args.video)
        args.output = args.output or DEMO_OUTPUT
        opts = PipelineOptions(size=args.size, side_by_side=True, max_frames=args.max_frames)
        print(f"demo: {DEMO_CLIP} (bundled) through {Path(str(model)).name}")
        return run_stream(args, backend, opts, str(ASSETS / DEMO_CLIP))
    except (BackendError, SourceError, SinkError, MissingDependency) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # TensorRT / CUDA errors from the optional backend, one line each
        from cyclegan_edge.trt.plan import EngineCompatError
        from cyclegan_edge.trt.loader import TensorRTUnavailable

        if isinstance(e, (EngineCompatError, TensorRTUnavailable)):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
