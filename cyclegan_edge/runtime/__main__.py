"""python -m cyclegan_edge.runtime: translate a camera, a video or a folder with any backend.

    python -m cyclegan_edge.runtime --demo                      # bundled model + clip, OpenVINO or ONNX Runtime CPU
    python -m cyclegan_edge.runtime --camera 0 --engine summer2winter.plan
    python -m cyclegan_edge.runtime --video street.mp4 --output street_monet.mp4 --size 256
    python -m cyclegan_edge.runtime --input videos/ --output converted/
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from cyclegan_edge import ASSETS_DIR as ASSETS
from cyclegan_edge.errors import ArgumentParser, UsageError, int_arg, run_cli
from cyclegan_edge.imaging.io import IMAGE_EXTENSIONS, check_outputs
from cyclegan_edge.runtime.backends import (BACKENDS, OV_PRECISIONS, Backend, BackendOptions, backend_for, open_backend,
                                            openvino_importable)  # fmt: skip
from cyclegan_edge.runtime.pipeline import (SIZE_RANGE, Pipeline, PipelineOptions, PipelineStats, after_resume,
                                            inference_size, output_size, too_small)  # fmt: skip
from cyclegan_edge.runtime.sinks import (CODEC_NAMES, ENCODERS, EncodeSettings, MultiSink, Sink, SinkError, WindowSink,
                                         display_available, open_output)  # fmt: skip
from cyclegan_edge.runtime.sources import Source, SourceError, open_source
from cyclegan_edge.runtime.stabilize import DEFAULT_WEIGHT, METRIC_FLOW, weight_arg

DEFAULT_MODEL = "photo2monet.onnx"
# Its INT8 for the CPU (export --target cpu): 1.3-1.5x OpenVINO f32 at 41 dB PSNR, see README "CPU backends".
DEFAULT_CPU_INT8_MODEL = "photo2monet.int8.onnx"
DEMO_CLIP = "demo.mp4"
DEMO_OUTPUT = "cyclegan_edge_demo.mp4"


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m cyclegan_edge.runtime", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--camera", metavar="URI", help="0, /dev/video0, csi://0, rtsp://..., test://?fps=30")
    src.add_argument("--video", metavar="FILE", help="a video file (every frame is converted)")
    src.add_argument("--input", metavar="DIR", help="convert every video and image in a folder (batch)")
    src.add_argument("--demo", action="store_true", help="the bundled clip (default when no source is given)")
    ap.add_argument("--engine", "--model", dest="model", metavar="MODEL",
                    help=".plan/.engine (TensorRT), .onnx (OpenVINO or ONNX Runtime, see --backend), .xml (OpenVINO) or "
                    ".pth/.pt (PyTorch); default: bundled demo")  # fmt: skip
    ap.add_argument("--output", "-o", metavar="PATH", help="video file, or folder (frames / batch outputs)")
    ap.add_argument("--headless", action="store_true", help="never open a window")
    ap.add_argument("--show", action="store_true", help="show a window even when writing --output")
    ap.add_argument("--size", type=int_arg(*SIZE_RANGE, also=0), default=0,
                    help=f"inference at this shorter side ({SIZE_RANGE[0]}..{SIZE_RANGE[1]}, rounded to a multiple of 4); "
                    "0 = full resolution")  # fmt: skip
    ap.add_argument("--side-by-side", action="store_true", help="input and output next to each other")
    ap.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="auto: by the model's extension (.onnx: OpenVINO on x86-64 CPUs when installed)")  # fmt: skip
    ap.add_argument("--provider", default="auto", help="ONNX Runtime: auto, cpu, cuda, tensorrt")
    ap.add_argument("--device", default="auto", help="PyTorch: auto, cpu, cuda; OpenVINO: auto (CPU), cpu, gpu, npu")
    ap.add_argument("--precision-hint", choices=OV_PRECISIONS, default="f32",
                    help="OpenVINO INFERENCE_PRECISION_HINT (bf16: faster on AVX-512-BF16/AMX CPUs, ~47 dB vs f32)")  # fmt: skip
    ap.add_argument("--streams", type=int, default=0, help="OpenVINO streams (0: one, latency first)")
    ap.add_argument("--fp16", action="store_true", help="PyTorch on CUDA: half precision")
    ap.add_argument("--cuda-graphs", action="store_true", help="PyTorch on CUDA: replay captured CUDA graphs")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for the backend (0: library default)")
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true",
                    help="start over: convert files whose output exists (batch), discard a partial conversion")  # fmt: skip
    ap.add_argument("--batch", type=int_arg(1, 256), default=1, help="video files: frames per backend call; cameras always 1")
    ap.add_argument("--shard", type=parse_shard, metavar="K/N",
                    help="--input: convert only part K of N (0-based; stable by path), e.g. one per GPU or array job")  # fmt: skip
    ap.add_argument("--stabilize", action="store_true",
                    help="temporal filter against flicker: blend each output with the previous one moved by the "
                    "input's optical flow, except where it does not fit (occlusions, scene cuts)")  # fmt: skip
    ap.add_argument("--stabilize-weight", type=weight_arg, metavar="W",
                    help=f"the previous output's share of that blend, in (0, 1); default {DEFAULT_WEIGHT}; "
                    "implies --stabilize")  # fmt: skip
    ap.add_argument("--flicker", action="store_true", help="measure and report the output's flicker (warping error; "
                    "costs an optical flow per frame)")  # fmt: skip
    vid = ap.add_argument_group("video files (through PyAV; without it OpenCV writes mp4v, no audio, no resume)")
    vid.add_argument("--codec", choices=CODEC_NAMES, default="h264", help="h264 (plays everywhere, default), hevc, av1, mjpeg")
    vid.add_argument("--crf", type=int_arg(0, 63), help="quality, lower is better; default: h264 18, hevc 22, av1 30, mjpeg 3 (qscale)")
    vid.add_argument("--bitrate", metavar="RATE", help="a bitrate instead of --crf, e.g. 4M or 800k")
    vid.add_argument("--preset", help="encoder speed vs size: x264/x265 ultrafast..veryslow (default veryfast / fast), "
                                      "SVT-AV1 0..13 (8), NVENC p1..p7 (p5)")  # fmt: skip
    vid.add_argument("--encoder", choices=ENCODERS, default="auto", help="auto: NVENC when it opens here, else the CPU")
    vid.add_argument("--no-audio", action="store_true", help="drop the source's audio (copied by default)")
    return ap


def parse_shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r}: give K/N with 0 <= K < N, e.g. 0/4")
    return int(k), int(n)


def encode_settings(args: argparse.Namespace) -> EncodeSettings:
    return EncodeSettings(codec=args.codec, crf=args.crf, bitrate=args.bitrate, preset=args.preset,
                          encoder=args.encoder, audio=not args.no_audio)  # fmt: skip


def conversion_job(args: argparse.Namespace, backend: Backend, opts: PipelineOptions) -> tuple[object, ...]:
    """What shapes the frames: a rerun resumes an interrupted conversion only when this is unchanged."""
    from cyclegan_edge.atomic import sha256_file

    model = Path(str(args.model or default_model(backend_options(args))))
    digest = sha256_file(model) if model.is_file() else str(model)
    return digest, backend.name, opts.size, opts.side_by_side, opts.stabilize


def default_model(options: BackendOptions | None = None) -> Path:
    """The bundled demo model; its CPU INT8 version where OpenVINO runs it (ONNX Runtime runs INT8 slower than FP32)."""
    int8 = Path(str(ASSETS / DEFAULT_CPU_INT8_MODEL))
    fp32 = Path(str(ASSETS / DEFAULT_MODEL))
    if options is not None and int8.is_file() and backend_for(fp32, options) == "openvino" and openvino_importable():
        return int8
    return fp32


def backend_options(args: argparse.Namespace) -> BackendOptions:
    return BackendOptions(device=args.device, provider=args.provider, fp16=args.fp16, cuda_graphs=args.cuda_graphs,
                          threads=args.threads, backend=args.backend, precision=args.precision_hint,
                          streams=args.streams)  # fmt: skip


def make_sinks(args: argparse.Namespace, source: Source, size: tuple[int, int], job: tuple[object, ...] = ()) -> Sink:
    sinks: list[Sink] = []
    if args.output:
        sinks.append(open_output(args.output, source.fps, size, encode_settings(args), source, job, args.overwrite))
    want_window = not args.headless and (args.show or not args.output)
    if want_window:
        if display_available():
            sinks.append(WindowSink())
        elif not sinks:
            raise SinkError("no display here: give --output FILE (or run where a window can open)")
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


def model_name(args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    return f"{default_model(backend_options(args)).name} (bundled; --engine MODEL for another)"


def report(stats: PipelineStats, backend: Backend, where: str, live: bool, model: str = "") -> None:
    s = stats.summary()
    # For files, frames wait in the queues by design (lossless), so latency only means something live.
    extra = f"; latency p50 {s['latency_ms_p50']} ms, {s['dropped']} stale frames dropped" if live else ""
    print(f"{s['frames_out']} frames -> {where} at {s['fps']:.1f} FPS (model {model}, {backend.name}{extra})")
    if s["flicker"] is not None:
        print(f"flicker: warping error {s['flicker']:.2f} grey levels (Lai et al. 2018; {METRIC_FLOW})")


def check_paths(args: argparse.Namespace) -> None:
    """Mistakes found before anything is opened: a path given to the wrong flag, an output that is an input."""
    if args.video and Path(args.video).is_dir():
        raise SourceError(f"{args.video} is a folder: --input {args.video} converts a folder (--video takes one file)")
    if args.input and Path(args.input).is_file():
        hint = (f"python -m cyclegan_edge.translate MODEL {args.input} -o DIR translates an image"
                if Path(args.input).suffix.lower() in IMAGE_EXTENSIONS else f"--video {args.input} converts one video")
        raise SourceError(f"{args.input} is a file: {hint} (--input takes a folder)")
    if args.output and not args.input:
        inputs = [Path(p) for p in (args.video, args.model) if p and Path(p).is_file()]
        check_outputs(inputs, [Path(args.output)])


def run_stream(args: argparse.Namespace, backend: Backend, opts: PipelineOptions, uri: str) -> int:
    source = open_source(uri)
    try:
        small = too_small(inference_size(source.size, opts))
        if small:
            raise SourceError(f"{uri}: {small}")
        sink = make_sinks(args, source, output_size(source.size, opts), conversion_job(args, backend, opts))
        left = None if source.finished else after_resume(opts, sink.resumed)
        total = min(filter(None, (source.frame_count, opts.max_frames)), default=None)
        with tqdm(total=total, initial=sink.resumed, desc=Path(uri).name if not source.live else uri, unit="frame",
                  leave=False, dynamic_ncols=True) as bar:  # fmt: skip
            stats = Pipeline(source, backend, sink, left, on_frame=lambda _: bar.update(1)).run() if left else PipelineStats()
        if not left:
            sink.close()
    finally:
        source.close()
    if stats.error:  # the sink's error too (a full disk): never announce a file that is not whole
        print(f"error: {stats.error}", file=sys.stderr)
        return 1
    if not left:
        print(f"{sink.name} already holds the {sink.resumed} frames of this conversion (--overwrite converts again)")
        return 0
    report(stats, backend, sink.name, source.live, model_name(args))
    if sink.resumed:
        print(f"({sink.resumed} earlier frames kept from an interrupted run; --overwrite starts over)")
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
    results = convert_folder(in_dir, args.output, backend, opts, overwrite=args.overwrite, shard=args.shard,
                             settings=encode_settings(args), job=conversion_job(args, backend, opts))  # fmt: skip
    print(summary_table(results, in_dir))
    failed = [r for r in results if r.failed]
    part = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""
    print(f"{len(results) - len(failed)} of {len(results)} files ok{part}; outputs in {args.output}")
    return 1 if failed else 0


def run(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    opts = PipelineOptions(size=args.size, side_by_side=args.side_by_side, max_frames=args.max_frames, batch=args.batch)
    weight = args.stabilize_weight or (DEFAULT_WEIGHT if args.stabilize else 0.0)
    opts = replace(opts, stabilize=weight, flicker=args.flicker)
    check_paths(args)
    if args.shard and not args.input:
        raise UsageError("--shard K/N splits a batch: it goes with --input DIR")
    options = backend_options(args)
    model = args.model or default_model(options)
    backend = open_backend(model, options)
    if args.input:
        return run_batch(args, backend, opts)
    if args.camera:
        return run_stream(args, backend, opts, args.camera)
    if args.video:
        return run_stream(args, backend, opts, args.video)
    args.output = args.output or DEMO_OUTPUT
    opts = replace(opts, side_by_side=True)
    print(f"demo: {DEMO_CLIP} (bundled) through {Path(str(model)).name}")
    return run_stream(args, backend, opts, str(ASSETS / DEMO_CLIP))


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
