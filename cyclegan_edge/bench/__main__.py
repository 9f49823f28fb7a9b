"""python -m cyclegan_edge.bench: latency/throughput reports people can trust and compare.

    python -m cyclegan_edge.bench MODEL [--variants auto] [--sizes 256,720p] [--batch 1,4] [--out DIR]
    python -m cyclegan_edge.bench pipeline MODEL --video FILE [--size 256]
    python -m cyclegan_edge.bench --compare A.json B.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from cyclegan_edge.atomic import write_json

ALL_VARIANTS = ("pytorch", "pytorch-cuda-fp32", "pytorch-cuda-fp16", "pytorch-cuda-fp32-graphs",
                "pytorch-cuda-fp16-graphs", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "tensorrt-fp32",
                "tensorrt-fp16", "tensorrt-int8")  # fmt: skip


def model_summary(model: str) -> dict[str, Any]:
    p = Path(model)
    info: dict[str, Any] = {"path": str(p), "name": p.stem}
    try:
        from cyclegan_edge.models import count_macs, load_generator

        if p.suffix in (".pth", ".pt"):
            gen = load_generator(p)
            c = count_macs(gen.model)
            info.update({"name": gen.config.name, "params": c.params, "macs_256": c.macs, "summary": str(c)})
    except ImportError:
        pass
    return info


def parse_run(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m cyclegan_edge.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("model", help="generator checkpoint (.pth: all variants) or .onnx")
    ap.add_argument("--variants", default="auto", help=f"comma list of {', '.join(ALL_VARIANTS)}, or auto")
    ap.add_argument("--sizes", default="256", help="e.g. 256,512,360x640,720p")
    ap.add_argument("--batch", default="1", help="e.g. 1,4")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per backend (0: library default)")
    ap.add_argument("--calib", help="real images: calibrate the INT8 variants; the first 2 also check parity")
    ap.add_argument("--baseline", default=None, help="variant the ratios refer to (default: the first)")
    ap.add_argument("--tegrastats", action="store_true", help="sample power/temperature with tegrastats (Jetson)")
    ap.add_argument("--out", default="bench_report", help="folder for report.json, report.md and plots")
    return ap.parse_args(argv)


def run(argv: list[str]) -> int:
    from tqdm import tqdm

    from cyclegan_edge.machine import machine_info
    from cyclegan_edge.bench.report import make_report, markdown, plots
    from cyclegan_edge.bench.runner import add_ratios, parse_sizes, run_benchmark
    from cyclegan_edge.bench.tegrastats import TegrastatsSampler, summarize

    args = parse_run(argv)
    wanted = list(ALL_VARIANTS) if args.variants == "auto" else [v.strip() for v in args.variants.split(",")]
    unknown = set(wanted) - set(ALL_VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}")
    sizes, batches = parse_sizes(args.sizes), [int(b) for b in args.batch.split(",")]
    machine = machine_info()
    if machine.get("jetson") and machine["jetson"].get("clocks_locked") is False:
        print("warning: Jetson clocks are not locked; run `sudo jetson_clocks` for stable figures (NVIDIA's advice)",
              file=sys.stderr)  # fmt: skip
    sampler = TegrastatsSampler() if args.tegrastats else None
    if sampler is not None and not sampler.start():
        print("warning: tegrastats not found; no power figures", file=sys.stderr)
        sampler = None
    bar = tqdm(desc="bench", unit="case")
    parity_frames = None
    if args.calib:
        from cyclegan_edge.imaging.io import load_test_images

        parity_frames = load_test_images(args.calib, 2)
    rows, notes = run_benchmark(args.model, wanted, sizes, batches, args.iters, args.warmup, args.calib, args.threads,
                                progress=lambda r: bar.update(1), parity_frames=parity_frames)  # fmt: skip
    bar.close()
    power = summarize(sampler.stop()) if sampler is not None else None
    if not rows:
        raise ValueError("nothing could be measured (see the notes): " + "; ".join(notes))
    baseline = args.baseline or rows[0]["variant"]
    add_ratios(rows, baseline)
    command = "python -m cyclegan_edge.bench " + shlex.join(argv)
    report = make_report(command, machine, model_summary(args.model), baseline, rows, notes, power)
    out = Path(args.out)
    write_json(out / "report.json", report)
    md = markdown(report)
    (out / "report.md").write_text(md)
    plots(report, rows, out)
    print(md)
    print(f"written: {out}/report.json, report.md, latency.png, fps_vs_size.png")
    return 0


def pipeline(argv: list[str]) -> int:
    from cyclegan_edge.machine import machine_info
    from cyclegan_edge.bench.pipeline_bench import pipeline_vs_inference
    from cyclegan_edge.runtime.backends import BackendOptions, open_backend

    ap = argparse.ArgumentParser(prog="python -m cyclegan_edge.bench pipeline")
    ap.add_argument("model")
    ap.add_argument("--video", required=True)
    ap.add_argument("--size", type=int, default=256, help="inference shorter side")
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--provider", default="auto")
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    backend = open_backend(args.model, BackendOptions(provider=args.provider))
    result = pipeline_vs_inference(backend, args.video, args.size, args.max_frames)
    result["machine"] = machine_info()
    result["command"] = "python -m cyclegan_edge.bench pipeline " + shlex.join(argv)
    print(f"{result['frames']} frames at {result['inference_size']} ({result['backend']}): pipeline "
          f"{result['pipeline_fps']:.2f} FPS end to end, pure inference {result['inference_fps']:.2f} FPS "
          f"-> {100 * result['ratio']:.1f}%")  # fmt: skip
    print("stage means (ms): " + ", ".join(f"{k} {v}" for k, v in result["stage_ms_mean"].items()))
    if args.out:
        write_json(args.out, result)
    return 0


def compare(paths: list[str]) -> int:
    from cyclegan_edge.bench.report import compare as compare_reports
    from cyclegan_edge.bench.report import load_report

    if len(paths) != 2:
        raise ValueError("--compare takes two report.json files")
    print(compare_reports(load_report(paths[0]), load_report(paths[1])))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["pipeline"]:
            return pipeline(argv[1:])
        if argv[:1] == ["--compare"]:
            return compare(argv[1:])
        return run(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
