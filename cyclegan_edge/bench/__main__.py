"""python -m cyclegan_edge.bench: latency/throughput reports people can trust and compare.

    python -m cyclegan_edge.bench MODEL [--variants auto] [--sizes 256,720p] [--batches 1,4] [-o DIR]
    python -m cyclegan_edge.bench pipeline MODEL --video FILE [--size 256]
    python -m cyclegan_edge.bench --compare A.json B.json
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from cyclegan_edge.bench import CALIB_COUNT, Timing
from cyclegan_edge import __version__
from cyclegan_edge.atomic import atomic_path, check_writable, sha256_file, write_json
from cyclegan_edge.errors import (EXIT_INTERRUPTED, ArgumentParser, HelpFormatter, RawHelpFormatter, UsageError,
                                  importable, int_arg, run_cli)  # fmt: skip
from cyclegan_edge.model_files import is_checkpoint

ALL_VARIANTS = ("pytorch", "pytorch-cuda-fp32", "pytorch-cuda-fp16", "pytorch-cuda-fp32-graphs",
                "pytorch-cuda-fp16-graphs", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "openvino-fp32",
                "openvino-auto", "openvino-int8", "tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8")  # fmt: skip
log = logging.getLogger("cyclegan_edge.bench")
TIMING = Timing()  # argparse reads its defaults here


def model_summary(model: str) -> dict[str, Any]:
    """What report.json says of the model: its file, size and hash; for an ONNX what it computes in (read
    from the graph) and our export's metadata; for a checkpoint the architecture and its complexity.
    Reading the ONNX here also refuses an unreadable one before anything runs."""
    from cyclegan_edge.atomic import sha256_file

    p = Path(model)
    info: dict[str, Any] = {"path": str(p), "file": p.name, "name": p.stem, "size_bytes": p.stat().st_size,
                            "sha256": sha256_file(p)}  # fmt: skip
    if p.suffix.lower() == ".onnx":
        from cyclegan_edge.onnx_facts import read_onnx_facts

        facts = read_onnx_facts(p)
        info.update({"precision": facts.precision, "precision_evidence": facts.evidence,
                     "metadata": facts.metadata})  # fmt: skip
        for key in ("architecture", "int8_target"):  # our export's metadata
            if facts.metadata.get(key):
                info[key] = facts.metadata[key]
    try:
        from cyclegan_edge.models import count_macs, load_generator

        if is_checkpoint(p):
            gen = load_generator(p)
            c = count_macs(gen.model)
            info.update({"name": gen.config.name, "params": c.params, "macs_256": c.macs, "summary": str(c)})
    except ImportError:
        pass
    return info


def check_model_path(model: str) -> None:
    """A model bench can take, refused in one line before any progress bar or measurement."""
    p = Path(model)
    if not p.exists():
        raise FileNotFoundError(f"{model}: no such model file")
    if not p.is_file():
        raise UsageError(f"{model}: not a file (give a generator checkpoint .pth/.pt or an .onnx)")
    if not (is_checkpoint(p) or p.suffix.lower() == ".onnx"):
        raise UsageError(f"{model}: bench takes a generator checkpoint (.pth/.pt) or an .onnx")


def parse_run(argv: list[str]) -> argparse.Namespace:
    ap = ArgumentParser(prog="python -m cyclegan_edge.bench", description=__doc__, formatter_class=RawHelpFormatter)
    ap.add_argument("model", help="generator checkpoint (.pth: all variants), .onnx, or a bundled model's name "
                    "(photo2monet: its checkpoint)")
    ap.add_argument("--variants", default="auto", help=f"comma list of {', '.join(ALL_VARIANTS)}, or auto")
    ap.add_argument("--sizes", "--size", default="256", help="e.g. 256,512,360x640,720p")
    ap.add_argument("--batches", "--batch", dest="batch", default="1", help="e.g. 1,4")
    ap.add_argument("--iters", type=int_arg(1, 10**6), default=TIMING.iterations,
                    help="timed calls per variant, size and batch, in each round")  # fmt: skip
    ap.add_argument("--rounds", type=int_arg(1, 1000), default=TIMING.rounds,
                    help="rounds taken in turn over all cases: each variant timed under the same conditions as the "
                    "others, and how far a case's rounds differ shows whether the machine kept its speed (1: each case "
                    "timed once, in one go)")  # fmt: skip
    ap.add_argument("--warmup", type=int_arg(0, 10**6), default=TIMING.warmup,
                    help="untimed calls before each round's timed ones")  # fmt: skip
    ap.add_argument("--threads", type=int_arg(0, 1024), default=0, help="CPU threads per backend (0: library default)")
    ap.add_argument("--calib", metavar="DIR", help=f"a folder of real images: the INT8 variants are calibrated on "
                    f"{CALIB_COUNT} of them (spread over it); its first 2 also check every variant's output against "
                    "the baseline")  # fmt: skip
    ap.add_argument("--baseline", default=None, help="variant the ratios refer to (default: the first)")
    ap.add_argument("--tegrastats", action="store_true", help="sample power/temperature with tegrastats (Jetson)")
    ap.add_argument("-o", "--output", "--out", dest="out", default="bench_report",
                    help="folder for report.json, report.md and plots (--out: old spelling)")  # fmt: skip
    ap.add_argument("--overwrite", action="store_true", help="replace the report --output already holds")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="instead of measuring: B's figures against A's "
                    "(two report.json files or --output folders), and what differs between them; given first, alone")
    args = ap.parse_args(argv)
    if args.compare:
        raise UsageError("--compare goes first and alone: python -m cyclegan_edge.bench --compare A B")
    return args


def check_no_report(out: Path) -> None:
    """A report --output already holds is another run's measurements: kept unless --overwrite."""
    from cyclegan_edge.bench.report import load_report

    earlier = out / "report.json"
    if not earlier.is_file():
        return
    try:
        held = load_report(earlier)
        n = len(held["results"])
        what = f"{n} case{'' if n == 1 else 's'} measured {held['created']}"
    except (OSError, ValueError, KeyError, TypeError):
        what = "a report.json"
    raise FileExistsError(f"--output {out} holds a report ({what}): --overwrite replaces it, or give another "
                          "--output")  # fmt: skip


def save_report(out: Path, report: dict[str, Any], rows: list[dict[str, Any]], with_plots: bool) -> list[Path]:
    """report.json and report.md (atomically: a reader never sees half a report), and the plots; returns the
    files written. A failed write is one line naming --output (not a temporary file's name)."""
    from cyclegan_edge.bench.report import markdown, output_error, plots

    try:
        write_json(out / "report.json", report)
        with atomic_path(out / "report.md") as tmp:
            tmp.write_text(markdown(report))
        written = [out / "report.json", out / "report.md"]
        if with_plots and rows:
            written += plots(report, rows, out)
    except OSError as e:
        raise output_error(out, e) from None
    return written


def checked_cases(args: argparse.Namespace) -> tuple[list[str], list[tuple[int, int]], list[int]]:
    """(variants, sizes, batches) the command asks for; UsageError (one line) for one it cannot take."""
    from cyclegan_edge.bench.runner import parse_batches, parse_sizes

    check_model_path(args.model)
    wanted = list(ALL_VARIANTS) if args.variants == "auto" else [v.strip() for v in args.variants.split(",")]
    unknown = set(wanted) - set(ALL_VARIANTS)
    if unknown:
        raise UsageError(f"unknown variants {sorted(unknown)}: use {', '.join(ALL_VARIANTS)}, or auto")
    if args.baseline is not None and args.baseline not in wanted:
        raise UsageError(f"--baseline {args.baseline}: not one of the variants benched ({', '.join(wanted)})")
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as e:
        raise UsageError(f"--sizes {args.sizes}: {e}") from None
    try:
        batches = parse_batches(args.batch)
    except ValueError as e:
        raise UsageError(f"--batches {args.batch}: {e}") from None
    return wanted, sizes, batches


def run(argv: list[str]) -> int:
    """Measure, and rewrite the report after every case: Ctrl-C (or a crash) keeps what was measured."""
    from cyclegan_edge.atomic import OutputBusy, lock_output, unlock_output
    from cyclegan_edge.bench.report import check_output
    from cyclegan_edge.imaging.files import list_files
    from cyclegan_edge.runtime.bundled import bundled_source_model

    args = parse_run(argv)
    args.model = bundled_source_model(args.model)
    wanted, sizes, batches = checked_cases(args)
    out = Path(args.out)  # before any work: a report that cannot be written fails now, not after the measurements
    check_output(out, [Path(args.model), *(list_files([args.calib]) if args.calib else [])])
    made = not out.exists()
    try:  # a second bench into the same folder would write its report over this one's (both said "written")
        lock = lock_output(out / "report.json", "is benchmarking into it now; wait for it to end, or give another "
                           "--output")  # fmt: skip
    except OutputBusy as e:
        raise FileExistsError(f"--output {out}: {str(e).split(': ', 1)[1]}") from None
    try:
        return measure(args, "python -m cyclegan_edge.bench " + shlex.join(argv), out, wanted, sizes, batches)
    finally:
        unlock_output(out / "report.json", lock)
        if made and not any(out.iterdir()):  # nothing measured (a model that would not load): no empty folder left
            out.rmdir()


def measure(args: argparse.Namespace, command: str, out: Path, wanted: list[str], sizes: list[tuple[int, int]],
            batches: list[int]) -> int:  # fmt: skip
    """The cases measured into the report in ``out`` (run's work once its checks have passed)."""
    from cyclegan_edge.bench.report import fps_plot_skipped, make_report, markdown, unsteady_note
    from cyclegan_edge.bench.runner import add_ratios, run_benchmark
    from cyclegan_edge.bench.tegrastats import TegrastatsSampler, mean_power_mw, summarize
    from cyclegan_edge.machine import machine_info
    from cyclegan_edge.progress import progress_bar

    if not args.overwrite:
        check_no_report(out)
    # an earlier report stays whole until this run is: the measurements go to OUT/partial until then
    replacing = (out / "report.json").is_file()
    into = out / "partial" if replacing else out
    machine = machine_info()
    if machine.get("jetson") and machine["jetson"].get("clocks_locked") is False:
        log.warning("Jetson clocks are not locked; run `sudo jetson_clocks` for stable figures (NVIDIA's advice)")
    sampler = TegrastatsSampler() if args.tegrastats else None
    if sampler is not None and not sampler.start():
        log.warning("tegrastats not found; no power figures")
        sampler = None
    parity_frames = None
    if args.calib:
        from cyclegan_edge.imaging.io import load_test_images

        parity_frames = load_test_images(args.calib, 2)
    summary = model_summary(args.model)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    no_plots = None if importable("matplotlib") else (
        "no plots: matplotlib is not installed here (pip install 'cyclegan-edge[bench]' draws latency.png and "
        "fps_vs_size.png); the table has every figure")  # fmt: skip
    if no_plots:  # said before the measurements: an edge install ([runtime]) measures, and its report has no plots
        log.warning("%s", no_plots)

    def report_now(extra: list[str], power: dict[str, Any] | None = None, plotted: bool = True) -> dict[str, Any]:
        first = rows[0]["variant"]  # every case's outputs are compared with the first variant's that ran
        ran = any(r["variant"] == args.baseline for r in rows)
        baseline = args.baseline if ran else first
        gone = f"--baseline {args.baseline} was not measured (see the notes): the ratios refer to {first}"
        fps_note = fps_plot_skipped(rows, len(sizes)) if plotted and not no_plots else no_plots
        late_notes = [n for n in [gone if args.baseline and not ran and plotted else None,  # partial: not yet
                                  unsteady_note(rows), fps_note] if n]  # fmt: skip
        add_ratios(rows, baseline)
        return make_report(command, machine, summary, baseline, rows, notes + extra + late_notes, power,
                           parity_reference=first, threads=args.threads)  # fmt: skip

    bar = progress_bar(desc="bench (building variants)", unit="case", dynamic_ncols=True)

    cases = len(wanted) * len(sizes) * len(batches)  # until the variants are built: then those that run

    def started(case_rounds: int, prepared: list[str]) -> None:
        nonlocal cases
        notes[:] = prepared
        bar.total, cases = case_rounds, case_rounds // args.rounds
        bar.set_description("bench")

    def so_far() -> str:
        return f"{len(rows)} of {cases} cases"

    def in_round() -> str:  # the round of the case measured last
        now = max((len(r.get("round_p50_ms") or []) for r in rows), default=1)
        return f" in round {now} of {args.rounds}" if args.rounds > 1 else ""

    def measured(row: dict[str, Any]) -> None:
        if not any(r is row for r in rows):  # a case's later rounds update its row
            rows.append(row)
        bar.update(1)
        partial = report_now([f"partial: {so_far()} so far{in_round()}"], plotted=False)
        save_report(into, partial, rows, with_plots=False)

    try:
        _, final_notes = run_benchmark(args.model, wanted, sizes, batches, args.iters, args.warmup, args.calib,
                                       args.threads, progress=measured, parity_frames=parity_frames, on_start=started,
                                       rounds=args.rounds)  # fmt: skip
        notes[:] = final_notes
    except KeyboardInterrupt:
        bar.close()
        if not rows:
            print("error: interrupted before any case was measured; no report written", file=sys.stderr)
            return EXIT_INTERRUPTED
        save_report(into, report_now([f"interrupted (Ctrl-C){in_round()} after {so_far()}"]), rows, not no_plots)
        kept = f"; the earlier report in {out} is kept (a whole run replaces it)" if replacing else ""
        print(f"stopped{in_round()}: {so_far()} measured; report in {into}/report.json, report.md{kept}",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    finally:
        bar.close()
        power = summarize(sampler.stop()) if sampler is not None else None
    if sampler is not None:  # each case's own: the run's mean holds building, calibration and the other variants
        for row in rows:
            row["power_mw"] = mean_power_mw(sampler.during(row["timed_windows"]))
            row["energy_mj_per_frame"] = None if row["power_mw"] is None else round(
                row["power_mw"] * row["latency_ms"]["p50"] / 1000 / row["batch"], 2)  # fmt: skip
    if not rows:
        raise ValueError("nothing could be measured (see the notes): " + "; ".join(notes))
    report = report_now([], power)
    written = save_report(out, report, rows, with_plots=not no_plots)
    if replacing:
        shutil.rmtree(into, ignore_errors=True)
    print(markdown(report))
    print(f"written: {out}/{written[0].name}, " + ", ".join(p.name for p in written[1:]))
    unsteady = unsteady_note(rows)
    if unsteady:  # also in the report's notes; said again where it is seen last
        log.warning("%s", unsteady)
    return 0


def pipeline(argv: list[str]) -> int:
    from cyclegan_edge.bench.pipeline_bench import pipeline_vs_inference
    from cyclegan_edge.machine import machine_info
    from cyclegan_edge.progress import progress_bar
    from cyclegan_edge.runtime.backends import (CONVERSION_PRECISION_HINT, FILE_STREAMS, OV_PRECISIONS,
                                                PRECISION_HELP, BackendOptions, job_options, open_backend)  # fmt: skip
    from cyclegan_edge.runtime.bundled import resolve_model
    from cyclegan_edge.imaging.cv import cv2
    from cyclegan_edge.runtime.pipeline import SIZE_RANGE
    from cyclegan_edge.runtime.sources import parse_source
    from cyclegan_edge.runtime.stabilize import DEFAULT_WEIGHT

    ap = ArgumentParser(prog="python -m cyclegan_edge.bench pipeline", formatter_class=HelpFormatter,
                        description="The runtime's pipeline (decode, infer, encode, overlapped) on a video file against "
                        "inference alone on the same frames: how much of the model's speed a conversion keeps.")  # fmt: skip
    ap.add_argument("model", help="the model to run (.onnx, .plan/.engine, .pth, a bundled model's name), as the "
                    "runtime takes it")  # fmt: skip
    ap.add_argument("--video", required=True, help="the video file to convert (then its frames through inference "
                    "alone)")  # fmt: skip
    ap.add_argument("--size", type=int_arg(*SIZE_RANGE), default=256, help="inference shorter side")
    ap.add_argument("--max-frames", type=int_arg(0, 1 << 30), default=0, help="frames to convert (0 = all)")
    ap.add_argument("--provider", default=BackendOptions().provider,
                    help="ONNX Runtime provider: auto, cpu, cuda, tensorrt")  # fmt: skip
    ap.add_argument("--precision-hint", choices=OV_PRECISIONS, default=CONVERSION_PRECISION_HINT,
                    help=f"as the runtime's (its default too): {PRECISION_HELP}")  # fmt: skip
    ap.add_argument("--streams", type=int_arg(0, 64), default=BackendOptions().streams,
                    help=f"OpenVINO streams, as the runtime's (0: {FILE_STREAMS} for a file, its default)")  # fmt: skip
    ap.add_argument("-o", "--output", "--out", dest="out", default="bench_report/pipeline.json",
                    help="where the result goes (JSON; --out: old spelling)")  # fmt: skip
    ap.add_argument("--overwrite", action="store_true", help="replace the result --output already holds")
    ap.add_argument("--stabilize", action="store_true", help="with the runtime's temporal filter (--stabilize)")
    ap.add_argument("--flicker", action="store_true", help="also measure the output's warping error (slows the run)")
    args = ap.parse_args(argv)
    if parse_source(args.video).live:
        raise UsageError(f"--video {args.video}: a live source drops the frames it cannot keep up with, so a ratio "
                         "to inference alone means nothing: give a video file (the runtime's summary line gives a "
                         "live source's FPS and latency)")  # fmt: skip
    if not Path(args.video).is_file():
        raise FileNotFoundError(f"{args.video}: no such video file")
    out = Path(args.out)  # before any work, as the report's --output
    if out.is_file() and not args.overwrite:
        raise FileExistsError(f"--output {out} holds a measurement already: --overwrite replaces it, or give another "
                              "--output")  # fmt: skip
    if out.is_dir():
        raise IsADirectoryError(f"--output {out}: a folder, not a file (the result is one JSON file); nothing measured")
    try:
        check_writable(out)
    except OSError as e:
        raise OSError(f"--output {out}: cannot write ({e.strerror or e}); nothing measured") from None
    cv2()  # the pipeline's stages resize with OpenCV: without it, one line now, not a failed stage after a bar
    # what the runtime runs a file with (its defaults): the figures are a conversion's
    options = BackendOptions(provider=args.provider, precision_hint=args.precision_hint, streams=args.streams)
    options = job_options(options, live=False)
    backend = open_backend(resolve_model(args.model, options), options)
    bars: list[Any] = []

    def progress(stage: str, total: int | None) -> Any:
        for b in bars:
            b.close()
        bars.append(progress_bar(total=total, desc=stage, unit="frame", leave=False, dynamic_ncols=True))
        return lambda: bars[-1].update(1)

    try:
        result = pipeline_vs_inference(backend, args.video, args.size, args.max_frames, progress,
                                       DEFAULT_WEIGHT if args.stabilize else 0.0, args.flicker)  # fmt: skip
    finally:
        for b in bars:
            b.close()
    result["streams"] = options.streams  # OpenVINO's, as compiled (the runtime's for a file unless --streams)
    model = Path(resolve_model(args.model, options))
    result["model"] = {"file": model.name, "sha256": sha256_file(model) if model.is_file() else None}
    result["machine"] = machine_info()
    result["command"] = "python -m cyclegan_edge.bench pipeline " + shlex.join(argv)
    result["toolkit_version"] = __version__
    write_json(args.out, result)
    print(f"{result['frames']} frames at {result['inference_size']} ({result['backend']}): pipeline "
          f"{result['pipeline_fps']:.2f} FPS end to end (decode + infer + encode, overlapped), inference only "
          f"{result['inference_fps']:.2f} FPS on the same frames -> the pipeline runs at {100 * result['ratio']:.0f}% of "
          "inference-only throughput")  # fmt: skip
    print("stage means (ms a frame spends in each stage; the stages overlap, and with frames in flight 'infer' runs "
          "from a frame's submission to its result): " + ", ".join(f"{k} {v}" for k, v in result["stage_ms_mean"].items()))
    if result["flicker"] is not None:
        print(f"flicker: warping error {result['flicker']:.2f} grey levels ({result['flicker_method']})")
    if result["unsteady"]:  # also in the JSON
        log.warning("%s", result["unsteady"])
    print(f"written: {args.out}")
    return 0


def compare(paths: list[str]) -> int:
    from cyclegan_edge.bench.report import compare as compare_reports
    from cyclegan_edge.bench.report import load_report

    if len(paths) != 2:
        raise UsageError("--compare takes two report.json files")
    print(compare_reports(load_report(paths[0]), load_report(paths[1])))
    return 0


def run_command(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")  # as every command's warnings
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pipeline"]:
        return pipeline(argv[1:])
    if argv[:1] == ["--compare"]:
        return compare(argv[1:])
    return run(argv)


def main(argv: list[str] | None = None) -> int:
    return run_cli(run_command, argv)


if __name__ == "__main__":
    sys.exit(main())
