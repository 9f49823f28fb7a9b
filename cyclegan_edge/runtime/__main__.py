"""python -m cyclegan_edge.runtime INPUT [OUTPUT]: translate a camera, a video, an image or a folder with any backend.

    python -m cyclegan_edge.runtime 0 --model summer2winter.plan             # USB camera -> window
    python -m cyclegan_edge.runtime street.mp4 street_monet.mp4 --size 256   # video -> video
    python -m cyclegan_edge.runtime photo.jpg photo_monet.png                # image -> image (or a folder)
    python -m cyclegan_edge.runtime videos/ converted/                       # folder -> folder (batch)
    python -m cyclegan_edge.runtime 'photos/**/*.jpg' converted/             # glob -> folder (batch)
    python -m cyclegan_edge.runtime csi://0 display://0 --model model.plan   # Jetson CSI camera -> window
    python -m cyclegan_edge.runtime 0 udp://192.168.1.20:5000                # camera -> live stream (ffplay udp://@:5000)
    python -m cyclegan_edge.runtime --demo                                   # bundled model + clip (also: no INPUT)

INPUT: a camera (0, /dev/video0, csi://0), a stream (rtsp://...), test://?fps=30&size=640x480, a video file,
an image file, a folder or a quoted glob. OUTPUT: a video file, a folder, an image file (for an image INPUT),
display://0 (a window: a stream's default), or a live stream (H.264, video only, through PyAV): udp://HOST:PORT
(MPEG-TS), rtp://HOST:PORT (MPEG-TS over RTP) to a receiver, or rtsp://SERVER:PORT/PATH to a server (mediamtx).
The earlier flags remain as aliases: --camera URI (a stream), --video FILE (a video file, every frame), --input DIR
(a folder), --output/-o (OUTPUT); --engine is --model.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import replace
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from cyclegan_edge.atomic import unwritable_folder
from cyclegan_edge.errors import ArgumentParser, RawHelpFormatter, UsageError, int_arg, run_cli
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_outputs, output_path
from cyclegan_edge.progress import progress_bar
from cyclegan_edge.runtime.backends import (BACKENDS, CONVERSION_PRECISION_HINT, FILE_STREAMS, OV_PRECISIONS,
                                            PRECISION_HELP, Backend, BackendOptions, job_options,
                                            open_backend)  # fmt: skip
from cyclegan_edge.runtime.bundled import (ASSETS, DEFAULT_DEMO, DEMO_CLIP, DEMO_MODELS, bundled_names, default_model,
                                           resolve_model)  # fmt: skip
from cyclegan_edge.runtime.pipeline import (SIZE_RANGE, Pipeline, PipelineOptions, PipelineStats, after_resume,
                                            inference_size, keep_up_note, output_size, too_small,
                                            upscale_note)  # fmt: skip
from cyclegan_edge.runtime.sinks import (CODEC_NAMES, DISPLAY_SCHEME, ENCODERS, FOURCC, EncodeSettings,
                                         ImageFolderSink, MultiSink, OutputExists, Sink, SinkError, VideoFileSink,
                                         check_sink_uri, check_stream_settings, display_available, frame_file,
                                         is_display, is_stream_output, open_sink, parse_bitrate, play_command,
                                         preset_choices)  # fmt: skip
from cyclegan_edge.runtime.sources import (FILE_KINDS, Source, SourceError, SourceSpec, glob_root, open_source,
                                           parse_source, pyav)  # fmt: skip
from cyclegan_edge.runtime.stabilize import DEFAULT_WEIGHT, METRIC_FLOW, weight_arg

log = logging.getLogger("cyclegan_edge.runtime")

DEMO_SIZE = 256  # the demo's inference size unless --size says: a CPU runs it in seconds
DEMO_OUTPUT = "cyclegan_edge_demo.mp4"
BACKEND, PIPELINE, ENCODE = BackendOptions(), PipelineOptions(), EncodeSettings()  # argparse reads its defaults here
DEMO_CHOICES = ", ".join(f"{name} = {stem}" for name, stem in DEMO_MODELS.items())  # either name works
OUTPUT_FOR = {"image": "an image goes to an image file or a folder", "folder": "a folder goes to a folder",
              "glob": "a glob's files go to a folder"}  # fmt: skip


def demo_name(text: str) -> str:
    """A demo's name, or its model's (--demo photo2monet is --demo monet: --model takes that name)."""
    text = next((name for name, stem in DEMO_MODELS.items() if text == stem), text)
    if text and text not in DEMO_MODELS:  # "": a bare --demo
        hint = "; an output goes with -o" if "." in text or "/" in text else ""
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DEMO_MODELS)}{hint})")
    return text


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m cyclegan_edge.runtime", description=__doc__,
                        usage="%(prog)s [INPUT [OUTPUT]] [--model MODEL] [options]",
                        formatter_class=RawHelpFormatter)  # fmt: skip
    ap.add_argument("source", nargs="?", metavar="INPUT",
                    help="camera (0, /dev/video0, csi://0), rtsp://..., test://?fps=30, a video, an image, a folder or "
                    "a quoted glob; none: --demo")  # fmt: skip
    ap.add_argument("sink", nargs="?", metavar="OUTPUT",
                    help="a video file, a folder (frames / batch outputs), an image file (for an image INPUT), "
                    "display://0 (a window, the default for streams), udp://HOST:PORT, rtp://HOST:PORT or "
                    "rtsp://SERVER:PORT/PATH (live)")  # fmt: skip
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--camera", metavar="URI", help="alias: INPUT as a stream (0, csi://0, rtsp://..., test://)")
    src.add_argument("--video", metavar="FILE", help="alias: INPUT as a video file (every frame is converted)")
    src.add_argument("--input", metavar="DIR", help="alias: INPUT as a folder (batch: every video and image in it)")
    # const "": a bare --demo (which --model may complete) told apart from a named one (which it would contradict)
    src.add_argument("--demo", nargs="?", const="", type=demo_name, metavar="NAME",
                     help=f"the bundled clip through bundled model NAME ({DEMO_CHOICES}; default {DEFAULT_DEMO}) or, "
                     "given bare, through --model; also what runs when no INPUT is given")  # fmt: skip
    ap.add_argument("--engine", "--model", dest="model", metavar="MODEL",
                    help=".plan/.engine (TensorRT), .onnx (OpenVINO or ONNX Runtime, see --backend), .xml (OpenVINO) or "
                    f".pth/.pt (PyTorch), or a bundled model's name ({', '.join(bundled_names())}); default: "
                    f"{DEMO_MODELS[DEFAULT_DEMO]}")  # fmt: skip
    ap.add_argument("--output", "-o", metavar="PATH", help="alias: OUTPUT")
    ap.add_argument("--record", metavar="FILE", help="a camera or stream INPUT: also write the output to this video "
                    "file (OUTPUT a stream or a window: record what is streamed or shown)")  # fmt: skip
    ap.add_argument("--headless", action="store_true", help="never open a window")
    ap.add_argument("--show", action="store_true", help="show a window even when writing --output")
    ap.add_argument("--size", type=int_arg(*SIZE_RANGE, also=0), default=PIPELINE.size,
                    help=f"inference at this shorter side ({SIZE_RANGE[0]}..{SIZE_RANGE[1]}, rounded to a multiple of 4); "
                    f"0 = full resolution; the demo runs at {DEMO_SIZE} unless given")  # fmt: skip
    ap.add_argument("--side-by-side", action="store_true", help="input and output next to each other")
    ap.add_argument("--backend", choices=BACKENDS, default=BACKEND.backend,
                    help="auto: by the model's extension (.onnx: OpenVINO on x86-64 CPUs when installed)")  # fmt: skip
    ap.add_argument("--provider", default=BACKEND.provider, help="ONNX Runtime: auto, cpu, cuda, tensorrt")
    ap.add_argument("--device", default=BACKEND.device,
                    help="PyTorch: auto, cpu, cuda; OpenVINO: auto (CPU), cpu, gpu, npu")  # fmt: skip
    ap.add_argument("--precision-hint", choices=OV_PRECISIONS, default=CONVERSION_PRECISION_HINT, help=PRECISION_HELP)
    ap.add_argument("--streams", type=int_arg(0, 64), default=BACKEND.streams,
                    help=f"OpenVINO streams; 0: one for cameras and streams (latency first), {FILE_STREAMS} for files "
                    "(frames in flight on parallel streams: 1.3x the FPS end to end on 2 cores, "
                    "benchmarks/openvino_streams_cpu.txt)")  # fmt: skip
    ap.add_argument("--fp16", action="store_true", help="PyTorch on CUDA: half precision")
    ap.add_argument("--cuda-graphs", action="store_true", help="PyTorch on CUDA: replay captured CUDA graphs")
    ap.add_argument("--threads", type=int_arg(0, 1024), default=BACKEND.threads,
                    help="CPU threads for the backend (0: library default)")  # fmt: skip
    ap.add_argument("--max-frames", type=int_arg(0, 10**9), default=PIPELINE.max_frames,
                    help="stop after this many frames (0: all)")  # fmt: skip
    ap.add_argument("--overwrite", action="store_true",
                    help="start over: convert files whose output exists (batch), discard another conversion's "
                    "partial file; the earlier output is replaced once the new conversion is whole")  # fmt: skip
    ap.add_argument("--batch", type=int_arg(1, 256), default=PIPELINE.batch,
                    help="video files: frames per backend call; cameras always 1")  # fmt: skip
    ap.add_argument("--shard", type=parse_shard, metavar="K/N",
                    help="a folder or glob INPUT: convert only part K of N (0-based; stable by path), e.g. one per GPU "
                    "or array job")  # fmt: skip
    ap.add_argument("--stabilize", action="store_true",
                    help="temporal filter against flicker: blend each output with the previous one moved by the "
                    "input's optical flow, except where it does not fit (occlusions, scene cuts)")  # fmt: skip
    ap.add_argument("--stabilize-weight", type=weight_arg, metavar="W",
                    help=f"the previous output's share of that blend, in (0, 1); default {DEFAULT_WEIGHT}; "
                    "implies --stabilize")  # fmt: skip
    ap.add_argument("--flicker", action="store_true", help="measure and report the output's flicker (warping error; "
                    "costs an optical flow per frame)")  # fmt: skip
    vid = ap.add_argument_group("video files (through PyAV; without it OpenCV writes mp4v, no audio, no resume)")
    vid.add_argument("--codec", choices=CODEC_NAMES, default=ENCODE.codec,
                     help="h264 (plays everywhere), hevc, av1, mjpeg")  # fmt: skip
    vid.add_argument("--crf", type=int_arg(0, 63), help="quality, lower is better; default: h264 18, hevc 22, av1 30, mjpeg 3 (qscale)")
    vid.add_argument("--bitrate", metavar="RATE", help="a bitrate instead of --crf, e.g. 4M or 800k")
    vid.add_argument("--preset", help="encoder speed vs size: x264/x265 ultrafast..veryslow (default veryfast / fast), "
                                      "SVT-AV1 -2..13 (8), NVENC p1..p7 (p5)")  # fmt: skip
    vid.add_argument("--encoder", choices=ENCODERS, default=ENCODE.encoder,
                     help="auto: NVENC when it opens here, else the CPU")  # fmt: skip
    vid.add_argument("--no-audio", action="store_true", help="drop the source's audio (copied by default)")
    return ap


def parse_shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r}: give K/N with 0 <= K < N, e.g. 0/4")
    return int(k), int(n)


def check_encoding(args: argparse.Namespace) -> None:
    """UsageError for a --bitrate or --preset that the encoder would refuse only after the model has loaded."""
    if args.bitrate is not None:
        try:
            parse_bitrate(args.bitrate)
        except SinkError as e:
            raise UsageError(str(e)) from None
    stream = bool(args.output) and is_stream_output(args.output)
    if stream:  # a receiver source waits for its sender first: said now, not once a sender has come
        try:
            check_stream_settings(args.output, encode_settings(args))
        except SinkError as e:
            raise UsageError(str(e)) from None
    if args.preset is None:
        return
    allowed = preset_choices(args.codec, "cpu" if stream else args.encoder)  # streams encode with libx264
    if not allowed:
        raise UsageError(f"--codec {args.codec} has no presets: leave out --preset {args.preset}")
    if args.preset not in allowed:
        on = " for a stream (libx264)" if stream else "" if args.encoder == "auto" else f" on --encoder {args.encoder}"
        raise UsageError(f"--preset {args.preset} is not a preset of --codec {args.codec}{on}: use one of "
                         f"{', '.join(allowed)}")  # fmt: skip


def encode_settings(args: argparse.Namespace) -> EncodeSettings:
    return EncodeSettings(codec=args.codec, crf=args.crf, bitrate=args.bitrate, preset=args.preset,
                          encoder=args.encoder, audio=not args.no_audio)  # fmt: skip


def chosen_digest(args: argparse.Namespace) -> str:
    from cyclegan_edge.runtime.batch import model_digest

    return model_digest(str(chosen_model(args, backend_options(args))))


def conversion_job(digest: str, backend: Backend, opts: PipelineOptions) -> tuple[object, ...]:
    """What shapes a video's frames: a rerun resumes an interrupted conversion only when this is unchanged."""
    return digest, backend.name, opts.size, opts.side_by_side, opts.stabilize


def chosen_model(args: argparse.Namespace, options: BackendOptions) -> str | Path:
    """--model (a file or a bundled model's name), or the demo's model."""
    if args.model:
        return resolve_model(args.model, options)
    return default_model(options, DEMO_MODELS[args.demo or DEFAULT_DEMO])


def backend_options(args: argparse.Namespace, live: bool = False) -> BackendOptions:
    """The backend's options (``job_options``: the streams of a file job, not ``live``, or a camera's)."""
    return job_options(BackendOptions(device=args.device, provider=args.provider, fp16=args.fp16,
                                      cuda_graphs=args.cuda_graphs, threads=args.threads, backend=args.backend,
                                      precision_hint=args.precision_hint, streams=args.streams), live)  # fmt: skip


def sink_uris(args: argparse.Namespace) -> list[str]:
    """OUTPUT, and a window where --show asks for one or nothing else is written (never with --headless)."""
    uris, record = [args.output] if args.output else [], [args.record] if args.record else []
    if args.headless or any(is_display(u) for u in uris) or not (args.show or not uris):
        return uris + record
    if display_available():
        return [*uris, f"{DISPLAY_SCHEME}0", *record]
    if record:
        log.warning("no window can open here (no display, or an OpenCV without a GUI); writing %s only",
                    " and ".join(uris + record))  # fmt: skip
        return uris + record
    if not uris:
        raise SinkError("no display here: give OUTPUT (a video file or folder) or --output (or run where a window "
                        "can open)")  # fmt: skip
    log.warning("--show: no window can open here (no display, or an OpenCV without a GUI); writing %s only", uris[0])
    return uris


def make_sinks(args: argparse.Namespace, uris: list[str], source: Source, size: tuple[int, int],
               job: tuple[object, ...] = ()) -> Sink:  # fmt: skip
    sinks: list[Sink] = []
    try:
        for uri in uris:
            sinks.append(open_sink(uri, source.fps, size, encode_settings(args), source, job, args.overwrite))
    except BaseException:  # the ones opened before it let go of their outputs (and locks), replacing nothing
        for opened in sinks:
            opened.mark_stopped()
            with contextlib.suppress(Exception):
                opened.close()
        raise
    for uri in filter(is_stream_output, uris):
        print(f"streaming to {uri}; play it with: {play_command(uri)}", file=sys.stderr)
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


def model_name(args: argparse.Namespace) -> str:
    model = chosen_model(args, backend_options(args))
    return str(model) if args.model else f"{Path(model).name} (bundled; --model MODEL for another)"


def report(stats: PipelineStats, backend: Backend, where: str, live: bool, model: str = "") -> None:
    s = stats.summary()
    # For files, frames wait in the queues by design (lossless), so latency only means something live.
    extra = f"; latency p50 {s['latency_ms_p50']} ms, {s['dropped']} stale frames dropped" if live else ""
    print(f"{s['frames_out']} frames -> {where} at {s['fps']:.1f} FPS (model {model}, {backend.name}{extra})")
    if s["flicker"] is not None:
        print(f"flicker: warping error {s['flicker']:.2f} grey levels (Lai et al. 2018; {METRIC_FLOW})")


def chosen_input(args: argparse.Namespace) -> tuple[str, SourceSpec] | None:
    """INPUT, or the alias that gave it, and its kind (the aliases fix it: --input a folder, --camera and --video a
    stream); None for the demo. Also takes OUTPUT from --output. UsageError for an input or output given twice,
    or for --demo NAME with --model (two models)."""
    alias = next((flag for flag in ("camera", "video", "input", "demo") if getattr(args, flag) is not None), None)
    if args.source is not None and alias is not None:
        raise UsageError(f"give the input once: {args.source!r} (INPUT) or --{alias}, not both (an output after "
                         "--camera/--video/--input/--demo goes with -o/--output)")  # fmt: skip
    if args.demo and args.model:
        raise UsageError(f"--demo {args.demo} runs the bundled {DEMO_MODELS[args.demo]} model: leave out --model "
                         f"{args.model}, or give a bare --demo to run the demo clip through it")  # fmt: skip
    if args.sink is not None and args.output is not None:
        raise UsageError(f"give the output once: {args.sink!r} (OUTPUT) or --output, not both")
    args.output = args.output if args.output is not None else args.sink
    if args.source is not None:
        return args.source, parse_source(args.source)
    if args.input:
        return args.input, SourceSpec("folder", args.input, False)
    uri = args.camera or args.video
    if not uri:
        return None
    spec = parse_source(uri)
    return uri, spec if spec.is_stream else SourceSpec("file", uri, False)  # the flag says: read it as frames


def check_paths(args: argparse.Namespace, uri: str | None, spec: SourceSpec | None) -> None:
    """Mistakes found before anything is opened: a path given to the wrong flag, an output that is an input or
    that no sink here takes, --shard without a batch."""
    if args.video and Path(args.video).is_dir():
        raise SourceError(f"{args.video} is a folder: --input {args.video} converts a folder (--video takes one file)")
    if args.input and Path(args.input).is_file():
        hint = (f"python -m cyclegan_edge.translate MODEL {args.input} -o DIR translates an image"
                if Path(args.input).suffix.lower() in IMAGE_EXTENSIONS else f"--video {args.input} converts one video")
        raise SourceError(f"{args.input} is a file: {hint} (--input takes a folder)")
    kind = spec.kind if spec is not None else "demo"
    if args.shard and kind not in ("folder", "glob"):
        raise UsageError("--shard K/N splits a batch: it goes with a folder or glob INPUT (or --input DIR)")
    if args.record:
        check_record(args, uri, kind, spec is not None and spec.live)
    if not args.output and args.record:
        return
    if not args.output:
        if kind in FILE_KINDS:
            raise SinkError(f"{uri}: {OUTPUT_FOR[kind]}: give OUTPUT (or --output)")
        if args.headless:  # it ran, wrote nothing and said "N frames -> " (bench pipeline measures a run's speed)
            raise UsageError("--headless and no OUTPUT: nothing would be shown or written; give OUTPUT (a video file, "
                             "a folder or a stream)")  # fmt: skip
        return
    check_sink_uri(args.output)
    if is_display(args.output) or is_stream_output(args.output):  # no file: nothing to check against the inputs
        if kind in FILE_KINDS:
            raise SinkError(f"{args.output}: {uri} is translated to files ({OUTPUT_FOR[kind]})")
        if args.headless and is_display(args.output):
            raise UsageError(f"--headless never opens a window: give a file or a folder instead of {args.output}")
    elif kind in ("folder", "glob"):  # a folder of outputs: checked before the model loads (each output later)
        why = unwritable_folder(args.output)
        if why:
            raise SinkError(f"{args.output}: {why} (a batch writes its outputs into a folder); nothing converted")
    else:
        target = image_output(Path(str(uri)), args.output) if kind == "image" else Path(args.output)
        check_file_output(args, uri, kind, target)


def check_file_output(args: argparse.Namespace, uri: str | None, kind: str, target: Path) -> None:
    """A file or folder of frames to write: not an input, writable, and not another job's work unless --overwrite."""
    check_outputs([Path(p) for p in (uri, args.model) if p and Path(p).is_file()], [target])
    if target.is_file() and not target.suffix:
        raise SinkError(f"{target} is a file: a name without an extension is a folder of frames (or give OUT.mp4)")
    why = unwritable_folder(target.parent if target.suffix else target, named=True)  # frames: into a folder
    if why:
        raise SinkError(f"{target}: {why}")
    # ours: the writer resumes it, or it is said done
    ours = target.is_file() and not args.overwrite and (
        converted_here(target) or (kind == "image" and holds_translation(args, Path(str(uri)), target)))
    if target.is_file() and not args.overwrite and not ours:
        raise OutputExists(f"{target} exists: --overwrite replaces it, or give another output")
    if target.is_dir() and not args.overwrite and any(target.glob("frame_*")) and not (
            kind == "file" and frames_converted_here(target)):  # ours: continued, or said done
        raise OutputExists(f"{target} holds frames already: --overwrite replaces them, or give another folder")


def check_record(args: argparse.Namespace, uri: str | None, kind: str, live: bool) -> None:
    """--record: a video file, beside the OUTPUT of a live input (a camera's or a stream's frames cannot be had
    again). A video file or a batch is converted to files already (and a second file would resume on its own)."""
    record = Path(args.record)
    if kind in FILE_KINDS or not live:
        what = OUTPUT_FOR[kind] if kind in FILE_KINDS else "a video converts to OUTPUT, which can be a stream too"
        raise UsageError(f"--record {args.record} records a camera or a stream: {uri or 'the demo'} is a file ({what})")
    if is_display(args.record) or is_stream_output(args.record) or record.suffix.lower() not in FOURCC:
        raise UsageError(f"--record {args.record}: give a video file ({', '.join(sorted(FOURCC))}); a stream or a "
                         "window goes in OUTPUT")  # fmt: skip
    if args.output and not (is_display(args.output) or is_stream_output(args.output)) and (
            Path(args.output).resolve() == record.resolve()):  # fmt: skip
        raise UsageError(f"--record {args.record} is OUTPUT too: give it once")
    check_file_output(args, uri, kind, record)


def holds_translation(args: argparse.Namespace, src: Path, out: Path) -> bool:
    """Whether an image file is this command's translation already: its PNG names this source, model and --size."""
    from cyclegan_edge.imaging.io import JOB_KEYWORD, SOURCE_KEYWORD, png_text
    from cyclegan_edge.runtime.batch import image_job, source_digest

    held_source, held_job = png_text(out, SOURCE_KEYWORD), png_text(out, JOB_KEYWORD)
    if held_source is None or held_job is None:  # not ours: nothing to hash
        return False
    same_job = held_job == image_job(chosen_digest(args), PipelineOptions(size=args.size))
    return same_job and held_source == source_digest(src)


def converted_here(path: Path) -> bool:
    """Whether ``path`` is a video that a conversion of this toolkit wrote (it may hold this one's frames)."""
    if path.suffix.lower() not in VIDEO_EXTENSIONS or path.suffix.lower() == ".avi":  # .avi: OpenCV's, untagged
        return False
    av_video = pyav()
    return av_video is not None and bool(av_video.converted_here(path))


def frames_converted_here(folder: Path) -> bool:
    """Whether a folder's frames are a video conversion's of this toolkit (they may be this one's, to continue)."""
    from cyclegan_edge.imaging.io import JOB_KEYWORD, png_text

    return pyav() is not None and bool(png_text(folder / frame_file(0), JOB_KEYWORD))


def run_stream(args: argparse.Namespace, backend: Backend, opts: PipelineOptions, uri: str) -> int:
    uris = sink_uris(args)  # a window it cannot open: said now, not once a receiver's sender has come
    source = open_source(uri)
    stats = PipelineStats()
    try:
        small = too_small(inference_size(source.size, opts))
        if small:
            raise SourceError(f"{uri}: {small}")
        upscaled = upscale_note(source.size, opts)
        if upscaled:
            log.warning("%s: %s", Path(uri).name if not source.live else uri, upscaled)
        job = conversion_job(chosen_digest(args), backend, opts)
        sink = make_sinks(args, uris, source, output_size(source.size, opts), job)
        left = None if source.finished else after_resume(opts, sink.resumed)
        total = min(filter(None, (source.frame_count, opts.max_frames)), default=None)
        if left:  # else nothing is converted: no progress bar either
            with logging_redirect_tqdm(), progress_bar(total=total, initial=sink.resumed, unit="frame", leave=False,
                                                      desc=Path(uri).name if not source.live else uri,
                                                      dynamic_ncols=True) as bar:  # fmt: skip
                stats = Pipeline(source, backend, sink, left, on_frame=lambda _: bar.update(1)).run()
        else:
            sink.close()
    finally:
        if "capture" not in stats.stuck:  # else a read still runs in it (Ctrl-C left it): releasing can crash
            source.close()
    if stats.exception is not None:  # the sink's error too (a full disk): never announce a file that is not whole
        raise stats.exception  # said by run_cli: one line, "unexpected" with the way to its traceback where it is
    if not left:
        print(f"{sink.name} already holds the {sink.resumed} frames of this conversion (--overwrite converts again)")
        return 0
    if stats.interrupted and not (stats.frames_out or sink.resumed):
        print(f"stopped before the first frame: nothing written to {sink.name}", file=sys.stderr)
        return 130 if not sink.quit_requested else 0
    if stats.interrupted and not source.live:  # a file stopped halfway: no line that reads as done
        kept = f" (after {sink.resumed} kept from before)" if sink.resumed else ""
        hint = continue_hint(sink, args.overwrite)
        print(f"stopped: {stats.frames_out} frames written to {sink.held_back or sink.name}{kept} at {stats.fps:.1f} "
              "FPS" + (f"; {hint}" if hint else ""), file=sys.stderr)  # fmt: skip
        return 130 if not sink.quit_requested else 0
    if source.live and not stats.frames_out and stats.frames_in:  # "0 frames -> out.mp4" named a file never written
        print(f"error: nothing written to {sink.name}: all {stats.frames_in} frames of the source came while the model "
              "was busy and were dropped as stale (a live source keeps only the newest frame)", file=sys.stderr)
        return 1
    report(stats, backend, sink.name, source.live, model_name(args))
    slow = keep_up_note(stats, source.size, opts, backend.name) if source.live else None
    if slow:
        log.warning("%s: %s", uri, slow)
    if sink.resumed:
        again = ("continued from a stopped --overwrite run of it; the earlier output is replaced only now"
                 if args.overwrite else "kept; --overwrite starts over")  # fmt: skip
        print(f"({sink.resumed} earlier frames of this conversion {again})")
    if stats.interrupted:
        print(f"stopped: {stats.frames_out} frames written to {sink.name}", file=sys.stderr)
        return 130 if not sink.quit_requested else 0
    return 0


def continue_hint(sink: Sink, overwrite: bool) -> str:
    """What a rerun does with a file conversion stopped halfway into ``sink`` ('' for a window or a stream)."""
    if sink.held_back:
        if not sink.resumable:  # OpenCV's writer
            return "the earlier output is kept as it was; --overwrite converts again from the start"
        return "the earlier output is kept until the conversion is whole; the same command continues it"
    if sink.resumable:  # --overwrite starts over: only the command without it continues
        return "the same command without --overwrite continues it" if overwrite else "the same command continues it"
    sinks = sink.sinks if isinstance(sink, MultiSink) else [sink]
    if any(isinstance(s, VideoFileSink) for s in sinks):
        why = " (OpenCV's writer; PyAV's resumes: pip install 'cyclegan-edge[video]')" if pyav() is None else ""
        return f"it plays as it is but cannot be continued{why}: --overwrite converts it again from its start"
    if any(isinstance(s, ImageFolderSink) for s in sinks):
        return "the frames written are kept; --overwrite converts them again from the start"
    return ""


def run_batch(args: argparse.Namespace, backend: Backend, opts: PipelineOptions, uri: str, kind: str) -> int:
    """A folder or a glob: every video and image in it, to the OUTPUT folder."""
    from cyclegan_edge.runtime.batch import (NOT_TRIED, SKIPPED_EXISTS, SKIPPED_OTHER, convert_files, folder_files,
                                             glob_files, image_job, summary_table)  # fmt: skip

    out_dir = Path(args.output)
    if kind == "glob":
        root, files = glob_root(uri), glob_files(uri, out_dir)
    elif Path(uri).is_dir():
        root, files = Path(uri), folder_files(Path(uri), out_dir)
    else:
        raise SourceError(f"{uri}: no such folder")
    digest = chosen_digest(args)
    results = convert_files(files, root, out_dir, backend, opts, overwrite=args.overwrite, shard=args.shard,
                            settings=encode_settings(args), job=conversion_job(digest, backend, opts),
                            image_job=image_job(digest, opts))  # fmt: skip
    print(summary_table(results, root))
    failed, stopped = [r for r in results if r.failed], [r for r in results if r.stopped]
    part = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""
    other = sum(r.status == SKIPPED_OTHER for r in results)
    ok = len(results) - len(failed) - len(stopped) - other - sum(r.status == NOT_TRIED for r in results)
    kept = sum(r.status == SKIPPED_EXISTS for r in results)
    wrote = any(r.output is not None and r.output.is_file() for r in results)  # this run's or earlier ones'
    where = f"outputs in {args.output}" if wrote else "nothing written"
    print(f"{ok} of {len(results)} files ok{part}; {where} (model {model_name(args)}, {backend.name})")
    if kept:  # made by an earlier run of this job (or one that does not say which)
        print(f"{kept} of them skipped: their outputs exist from an earlier run (--overwrite converts them again)")
    if other:  # finished videos whose key differs: not this run's work, and not called ok
        whose = "their outputs were" if other > 1 else "its output was"
        print(f"{other} video{'s' if other > 1 else ''} skipped: {whose} made by another conversion (another "
              "model, other settings, encoder or PyAV version); --overwrite converts them again")  # fmt: skip
    if stopped:
        again = ("their earlier outputs are kept until they are whole; the same command continues them (and "
                 "converts the finished ones again)" if args.overwrite else
                 "the same command continues them")  # fmt: skip
        how = ("a stopped video resumes where it stopped" if pyav() is not None else "without PyAV a stopped video "
               "is converted again from its start")  # fmt: skip
        print(f"stopped: {len(stopped)} files interrupted or not started; {again} ({how})", file=sys.stderr)
        return 130
    return 1 if failed or other else 0


def image_output(src: Path, output: str) -> Path:
    """An image file OUTPUT as given; a folder (or a name without extension) gets SRC's name as PNG in it."""
    out = Path(output)
    if out.suffix and not out.is_dir():
        if out.suffix.lower() not in IMAGE_EXTENSIONS:
            raise SinkError(f"{output}: an image translates to an image file ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                            "or a folder")  # fmt: skip
        return out
    return output_path(src, out)


def run_image(args: argparse.Namespace, backend: Backend, opts: PipelineOptions, uri: str) -> int:
    from cyclegan_edge.runtime.batch import convert_image, image_job

    src = Path(uri)
    out = image_output(src, args.output)  # checked against the inputs already (check_paths)
    if not args.overwrite and out.is_file() and holds_translation(args, src, out):
        print(f"{out} already holds this translation of {src} (--overwrite translates again)")
        return 0
    result = convert_image(src, out, backend, opts, note_upscale=True, job=image_job(chosen_digest(args), opts),
                           said=set())  # fmt: skip
    if result.error is not None:
        print(f"error: {src}: {result.error}", file=sys.stderr)
        return 1
    print(f"{src} -> {out} (model {model_name(args)}, {backend.name})")
    return 0


def run(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_intermixed_args(argv)
    opts = PipelineOptions(size=args.size, side_by_side=args.side_by_side, max_frames=args.max_frames, batch=args.batch)
    weight = args.stabilize_weight or (DEFAULT_WEIGHT if args.stabilize else 0.0)
    opts = replace(opts, stabilize=weight, flicker=args.flicker)
    cv2()  # every frame is resized through OpenCV: without it, one line before any work
    chosen = chosen_input(args)
    if chosen is None:  # the demo's output is checked as any other (OpenCV's writer would replace it unasked)
        args.output = args.output or DEMO_OUTPUT
    check_encoding(args)
    check_paths(args, *(chosen or (None, None)))
    options = backend_options(args, live=chosen is not None and chosen[1].live)
    model = chosen_model(args, options)
    backend = open_backend(model, options)
    if chosen is None:
        opts = replace(opts, side_by_side=True, size=opts.size or DEMO_SIZE)
        print(f"demo: {DEMO_CLIP} (bundled) through {Path(str(model)).name}")
        return run_stream(args, backend, opts, str(ASSETS / DEMO_CLIP))
    uri, spec = chosen
    if spec.kind in ("folder", "glob"):
        return run_batch(args, backend, opts, uri, spec.kind)
    if spec.kind == "image":
        return run_image(args, backend, opts, uri)
    return run_stream(args, backend, opts, uri)


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
