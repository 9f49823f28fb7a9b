"""python -m cyclegan_edge.export CHECKPOINT --onnx OUT.onnx [--precision fp16|int8 ...] [--engine OUT.plan]
   python -m cyclegan_edge.export MODEL.onnx --engine OUT.plan   (engine only: no torch, Python 3.8+)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cyclegan_edge import ASSETS_DIR, require_python_310
from cyclegan_edge.atomic import write_json
from cyclegan_edge.export.int8 import CALIB_METHODS, Int8Options
from cyclegan_edge.export.onnx_export import DEFAULT_OPSET, ExportError
from cyclegan_edge.export.report import FP32_TOLERANCE, machine_line, report_path
from cyclegan_edge.trt.build import (
    EngineBuildError,
    EngineOptions,
    build_engine,
    equivalent_trtexec,
    onnx_precision,
)
from cyclegan_edge.trt.loader import TensorRTUnavailable

FP16_MIN_PSNR = 40.0
INT8_MIN_PSNR = 30.0


def default_test_images() -> str:
    return str(ASSETS_DIR / "images")


def add_switch(group: Any, name: str, default: bool, text: str) -> None:
    """``--name`` / ``--no-name`` (argparse.BooleanOptionalAction needs Python 3.9; JetPack 5 has 3.8)."""
    dest = name.replace("-", "_")
    group.add_argument(f"--{name}", dest=dest, action="store_true", default=default,
                       help=f"{text}; --no-{name} to turn off" if default else text)  # fmt: skip
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m cyclegan_edge.export", description=__doc__,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    ap.add_argument("checkpoint", help="generator checkpoint (.pth/.pt: published, GAN Compression or ours), or an "
                    "exported .onnx to build an engine from (on the device that will run it)")  # fmt: skip
    ap.add_argument("--onnx", type=Path, help="FP32 ONNX output (needed for a checkpoint); FP16/INT8 go beside it")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help="17 suits TensorRT 8.5+ (JetPack 5); 13 for TensorRT 8.2 (JetPack 4); newer selectable")  # fmt: skip
    ap.add_argument("--direction", default="A->B", help="for training states holding both generators")
    ap.add_argument("--precision", choices=["fp32", "fp16", "int8"], default=None,
                    help="default: fp32 for a checkpoint, what the ONNX carries for an .onnx")  # fmt: skip
    ap.add_argument("--test-images", default=None, help="real images for the parity/quality reports (default: bundled)")
    ap.add_argument("--test-count", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=FP32_TOLERANCE, help="max abs error vs PyTorch for FP32")
    g8 = ap.add_argument_group("INT8")
    g8.add_argument("--calib", help="folder of real images for calibration")
    g8.add_argument("--calib-count", type=int, default=64)
    g8.add_argument("--calib-method", choices=CALIB_METHODS, default="percentile")
    g8.add_argument("--percentile", type=float, default=99.99)
    add_switch(g8, "keep-first-last", True, "keep the first and last convs in float")
    add_switch(g8, "keep-conv-transpose", True, "keep the ConvTranspose layers in float")
    add_switch(g8, "keep-depthwise", False, "keep depthwise convs (mobile generators) in float")
    gt = ap.add_argument_group("TensorRT")
    gt.add_argument("--engine", type=Path, help="build a TensorRT engine (.plan) from the ONNX of --precision")
    gt.add_argument("--min-shape", default="1x3x256x256")
    gt.add_argument("--opt-shape", default="1x3x256x256")
    gt.add_argument("--max-shape", default="1x3x1088x1920")
    gt.add_argument("--workspace", type=int, default=1024, help="MiB")
    gt.add_argument("--timing-cache", default=None, help="persistent timing cache file")
    gt.add_argument("--dla-core", type=int, default=None, help="Jetson DLA core")
    gt.add_argument("--print-trtexec", action="store_true", help="print the equivalent trtexec command")
    return ap


def engine_options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(precision=args.precision, min_shape=args.min_shape, opt_shape=args.opt_shape,
                         max_shape=args.max_shape, workspace_mib=args.workspace, timing_cache=args.timing_cache,
                         dla_core=args.dla_core)  # fmt: skip


def build_engine_step(args: argparse.Namespace, onnx_path: Path) -> None:
    opts = engine_options(args)
    engine = args.engine or onnx_path.with_suffix(".plan")
    if args.print_trtexec:
        print(equivalent_trtexec(str(onnx_path), str(engine), opts))
    if args.engine:
        build_engine(onnx_path, engine, opts)
        print(f"{engine}: TensorRT engine written (sidecar {engine}.json)")


def run_onnx(args: argparse.Namespace) -> int:
    """An exported ONNX in: only the engine, which must be built on the GPU that runs it."""
    onnx_path = Path(args.checkpoint)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: no such file")
    if not (args.engine or args.print_trtexec):
        raise ExportError("an .onnx input only builds an engine: give --engine OUT.plan (or --print-trtexec)")
    args.precision = args.precision or onnx_precision(onnx_path)
    build_engine_step(args, onnx_path)
    return 0


def run(args: argparse.Namespace) -> int:
    if Path(args.checkpoint).suffix.lower() == ".onnx":
        return run_onnx(args)
    require_python_310("export from a checkpoint")
    if args.onnx is None:
        raise ExportError("give --onnx OUT.onnx (where the exported model goes)")
    args.precision = args.precision or "fp32"
    from cyclegan_edge.export.fp16 import export_fp16
    from cyclegan_edge.export.int8 import quantize_int8
    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.export.report import ort_latency_ms, parity_vs_torch, quality_vs
    from cyclegan_edge.imaging.io import load_test_images
    from cyclegan_edge.models import count_macs, load_generator

    if args.precision == "int8" and not args.calib:
        raise ExportError("--precision int8 needs --calib DIR (real images from the target domain's input side)")
    gen = load_generator(args.checkpoint, direction=args.direction)
    print(f"{args.checkpoint}: {gen.config.name}, {count_macs(gen.model)}")
    images = load_test_images(args.test_images or default_test_images(), args.test_count)

    onnx_path = export_onnx(gen, args.onnx, opset=args.opset)
    parity = parity_vs_torch(gen.model, onnx_path, images, args.tolerance)
    report: dict[str, Any] = {"model": str(onnx_path), "precision": "fp32", "opset": args.opset,
                              "checkpoint": str(args.checkpoint), "machine": machine_line(), "parity": parity}  # fmt: skip
    write_json(report_path(onnx_path), report)
    print(f"{onnx_path}: FP32 vs PyTorch max abs error {parity['max_abs']:.2e} (tolerance {args.tolerance:.0e}) "
          f"over {len(parity['cases'])} size/batch cases")  # fmt: skip
    if not parity["passed"]:
        raise ExportError(f"{onnx_path}: FP32 parity failed: max abs error {parity['max_abs']:.2e} > {args.tolerance:.0e}")

    final = onnx_path
    if args.precision == "fp16":
        final = export_fp16(onnx_path, onnx_path.with_suffix(".fp16.onnx"))
        q = quality_vs(onnx_path, final, images)
        write_json(report_path(final), {"model": str(final), "precision": "fp16", "reference": str(onnx_path),
                                        "quality_vs_fp32": q, "min_psnr_db": FP16_MIN_PSNR})  # fmt: skip
        print(f"{final}: FP16 vs FP32 PSNR {q['psnr_db_mean']:.1f} dB (min {q['psnr_db_min']:.1f}), SSIM {q['ssim_mean']:.4f}")
        if q["psnr_db_mean"] < FP16_MIN_PSNR:
            raise ExportError(f"{final}: FP16 PSNR {q['psnr_db_mean']:.1f} dB is below {FP16_MIN_PSNR} dB")
    elif args.precision == "int8":
        final = onnx_path.with_suffix(".int8.onnx")
        opts = Int8Options(calib_method=args.calib_method, calib_count=args.calib_count, percentile=args.percentile,
                           keep_first_last=args.keep_first_last, keep_conv_transpose=args.keep_conv_transpose,
                           keep_depthwise=args.keep_depthwise)  # fmt: skip
        quantize_int8(onnx_path, final, args.calib, opts)
        q = quality_vs(onnx_path, final, images)
        lat32, lat8 = ort_latency_ms(onnx_path), ort_latency_ms(final)
        write_json(report_path(final), {
            "model": str(final), "precision": "int8", "reference": str(onnx_path), "calibration": {
                "folder": str(args.calib), "count": args.calib_count, "method": args.calib_method,
                "percentile": args.percentile, "keep_first_last": args.keep_first_last,
                "keep_conv_transpose": args.keep_conv_transpose, "keep_depthwise": args.keep_depthwise},
            "quality_vs_fp32": q, "min_psnr_db": INT8_MIN_PSNR,
            "onnxruntime_cpu_latency_256": {"fp32": lat32, "int8": lat8, "machine": machine_line()},
        })  # fmt: skip
        print(f"{final}: INT8 vs FP32 PSNR {q['psnr_db_mean']:.1f} dB (min {q['psnr_db_min']:.1f}), SSIM {q['ssim_mean']:.4f}; "
              f"ONNX Runtime CPU 256x256 median: FP32 {lat32['median_ms']:.1f} ms, INT8 {lat8['median_ms']:.1f} ms")  # fmt: skip
        if q["psnr_db_mean"] < INT8_MIN_PSNR:
            print(f"warning: INT8 PSNR {q['psnr_db_mean']:.1f} dB is below the {INT8_MIN_PSNR} dB goal", file=sys.stderr)

    if args.engine or args.print_trtexec:
        build_engine_step(args, final)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ExportError, EngineBuildError, TensorRTUnavailable, ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
