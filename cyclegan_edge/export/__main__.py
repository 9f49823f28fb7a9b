"""python -m cyclegan_edge.export CHECKPOINT --onnx OUT.onnx [--precision fp16|int8 ...] [--engine OUT.plan]
   python -m cyclegan_edge.export MODEL.onnx --engine OUT.plan   (engine only: no torch, Python 3.8+)"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cyclegan_edge import ASSETS_DIR, require_python_310
from cyclegan_edge.atomic import write_json
from cyclegan_edge.errors import ArgumentParser, first_line, run_cli
from cyclegan_edge.export.int8 import CALIB_METHODS, INT8_TARGETS, Int8Options
from cyclegan_edge.export.onnx_export import DEFAULT_OPSET, ExportError
from cyclegan_edge.export.report import FP32_TOLERANCE, machine_line, report_path
from cyclegan_edge.imaging.io import check_outputs
from cyclegan_edge.model_files import CHECKPOINT_EXTENSIONS, ENGINE_EXTENSIONS, PRECISIONS
from cyclegan_edge.trt.build import (
    EngineOptions,
    build_engine,
    equivalent_trtexec,
    onnx_precision,
)
from cyclegan_edge.trt.loader import TensorRTUnavailable, import_tensorrt
from cyclegan_edge.trt.plan import EngineSidecar, engine_targets, make_profile, sidecar_path

FP16_MIN_PSNR = 40.0
INT8_MIN_PSNR = 30.0
ENGINE, INT8 = EngineOptions(), Int8Options()  # argparse reads its defaults from these


def default_test_images() -> str:
    return str(ASSETS_DIR / "images")


def add_switch(group: Any, name: str, default: bool, text: str) -> None:
    """``--name`` / ``--no-name`` (argparse.BooleanOptionalAction needs Python 3.9; JetPack 5 has 3.8)."""
    dest = name.replace("-", "_")
    group.add_argument(f"--{name}", dest=dest, action="store_true", default=default,
                       help=f"{text}; --no-{name} to turn off" if default else text)  # fmt: skip
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m cyclegan_edge.export", description=__doc__,
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    ap.add_argument("checkpoint", help="generator checkpoint (.pth/.pt: published, GAN Compression or ours), or an "
                    "exported .onnx to build an engine from (on the device that will run it)")  # fmt: skip
    ap.add_argument("--onnx", type=Path, help="FP32 ONNX output (needed for a checkpoint); FP16/INT8 go beside it")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help="17 suits TensorRT 8.5+ (JetPack 5); 13 for TensorRT 8.2 (JetPack 4); newer selectable")  # fmt: skip
    ap.add_argument("--direction", default="A->B", help="for training states holding both generators")
    ap.add_argument("--precision", choices=PRECISIONS, default=None,
                    help="default: fp32 for a checkpoint, what the ONNX carries for an .onnx")  # fmt: skip
    ap.add_argument("--test-images", default=None, help="real images for the parity/quality reports (default: bundled)")
    ap.add_argument("--test-count", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=FP32_TOLERANCE, help="max abs error vs PyTorch for FP32")
    g8 = ap.add_argument_group("INT8")
    g8.add_argument("--calib", help="folder of real images for calibration")
    g8.add_argument("--calib-count", type=int, default=INT8.calib_count)
    g8.add_argument("--calib-method", choices=CALIB_METHODS, default=INT8.calib_method)
    g8.add_argument("--percentile", type=float, default=INT8.percentile)
    add_switch(g8, "keep-first-last", INT8.keep_first_last, "keep the first and last convs in float")
    add_switch(g8, "keep-conv-transpose", INT8.keep_conv_transpose, "keep the ConvTranspose layers in float")
    add_switch(g8, "keep-depthwise", INT8.keep_depthwise, "keep depthwise convs (mobile generators) in float")
    g8.add_argument("--target", choices=INT8_TARGETS, default=INT8.target,
                    help="tensorrt: symmetric int8 (engines); cpu: uint8 activations, depthwise convs in float "
                    "(OpenVINO: faster on CPUs; TensorRT cannot build it)")  # fmt: skip
    gt = ap.add_argument_group("TensorRT")
    gt.add_argument("--engine", type=Path, help="build a TensorRT engine (.plan) from the ONNX of --precision")
    gt.add_argument("--min-shape", default=ENGINE.min_shape)
    gt.add_argument("--opt-shape", default=ENGINE.opt_shape)
    gt.add_argument("--max-shape", default=ENGINE.max_shape)
    gt.add_argument("--workspace", type=int, default=ENGINE.workspace_mib, help="MiB")
    gt.add_argument("--timing-cache", default=ENGINE.timing_cache, help="persistent timing cache file")
    gt.add_argument("--dla-core", type=int, default=ENGINE.dla_core, help="Jetson DLA core")
    gt.add_argument("--print-trtexec", action="store_true",
                    help="print the trtexec command (without --engine: nothing is exported or built)")  # fmt: skip
    gt.add_argument("--trt-version", default=None,
                    help="TensorRT the trtexec command is for, e.g. 8.2 (JetPack 4), 8.5, 10.3, rtx (default: the "
                    "installed one, else 10)")  # fmt: skip
    return ap


def engine_options(args: argparse.Namespace, precision: str) -> EngineOptions:
    return EngineOptions(precision=precision, min_shape=args.min_shape, opt_shape=args.opt_shape,
                         max_shape=args.max_shape, workspace_mib=args.workspace, timing_cache=args.timing_cache,
                         dla_core=args.dla_core)  # fmt: skip


def int8_options(args: argparse.Namespace) -> Int8Options:
    return Int8Options(calib_method=args.calib_method, calib_count=args.calib_count, percentile=args.percentile,
                       keep_first_last=args.keep_first_last, keep_conv_transpose=args.keep_conv_transpose,
                       keep_depthwise=args.keep_depthwise, target=args.target)  # fmt: skip


def trt_target(requested: str | None) -> tuple[str, str, str]:
    """(flavor, version, where the choice came from) for a trtexec command."""
    if requested:
        if requested.lower().startswith("rtx"):
            return "tensorrt_rtx", requested[3:].lstrip("-") or "1", "--trt-version"
        return "tensorrt", requested, "--trt-version"
    try:
        trt, flavor = import_tensorrt()
    except TensorRTUnavailable:
        return "tensorrt", "10", "none installed here; --trt-version VERSION targets another"
    return flavor, str(getattr(trt, "__version__", "0")), "installed here; --trt-version VERSION targets another"


def print_trtexec(args: argparse.Namespace, onnx_path: Path, precision: str, onnx_prec: str | None = None) -> None:
    flavor, version, why = trt_target(args.trt_version)
    engine = args.engine or onnx_path.with_suffix(".plan")
    command = equivalent_trtexec(str(onnx_path), str(engine), engine_options(args, precision), flavor, version, onnx_prec)
    print(f"# for {'TensorRT-RTX' if flavor == 'tensorrt_rtx' else 'TensorRT'} {version} ({why})\n{command}")


def build_engine_step(args: argparse.Namespace, onnx_path: Path, precision: str) -> None:
    if args.print_trtexec:
        print_trtexec(args, onnx_path, precision)
    if not args.engine:
        return
    build_engine(onnx_path, args.engine, engine_options(args, precision))
    print(engine_written(args.engine))


def engine_written(engine: Path) -> str:
    """What was built and where it runs, from the engine's sidecar."""
    side = EngineSidecar.read(sidecar_path(engine))
    if side.tensorrt_flavor == "tensorrt_rtx":
        return (f"{engine}: TensorRT-RTX {side.tensorrt_version} engine written (sidecar {engine}.json); it runs on RTX "
                f"GPUs of compute capability {', '.join(engine_targets(side))}, not on Jetson (Orin is 8.7) or "
                "data-center GPUs: build for those with NVIDIA TensorRT")  # fmt: skip
    return (f"{engine}: TensorRT {side.tensorrt_version} engine written for {side.gpu_name} (compute capability "
            f"{side.compute_capability}; sidecar {engine}.json)")  # fmt: skip


def run_onnx(args: argparse.Namespace) -> int:
    """An exported ONNX in: only the engine, which must be built on the GPU that runs it."""
    onnx_path = Path(args.checkpoint)
    if not (args.engine or args.print_trtexec):
        raise ExportError("an .onnx input only builds an engine: give --engine OUT.plan (or --print-trtexec)")
    if args.engine:
        check_outputs([onnx_path], [args.engine, sidecar_path(args.engine)])
    build_engine_step(args, onnx_path, args.precision or onnx_precision(onnx_path))
    return 0


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A hidden folder beside ``target``: the export writes there, and only a finished, checked export is
    moved to the target paths (a failure or Ctrl-C leaves what was there before untouched)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".export", dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def nonfinite_weights(model: Any) -> list[str]:
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]


def run(args: argparse.Namespace) -> int:
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise ExportError(f"{ckpt}: no such file")
    ext = ckpt.suffix.lower()
    if ext in ENGINE_EXTENSIONS:
        raise ExportError(f"{ckpt}: this is a TensorRT engine already (run it: python -m cyclegan_edge.runtime "
                          f"--engine {ckpt}); export takes a checkpoint (.pth/.pt) or an .onnx")  # fmt: skip
    if ext == ".onnx":
        return run_onnx(args)
    if ext not in CHECKPOINT_EXTENSIONS:
        raise ExportError(f"{ckpt}: export takes a checkpoint (.pth/.pt) or an .onnx, not {ext or 'this file'}")
    require_python_310("export from a checkpoint")
    if args.onnx is None:
        raise ExportError("give --onnx OUT.onnx (where the exported model goes)")
    precision = args.precision or "fp32"
    if precision == "int8" and not args.calib:
        raise ExportError("--precision int8 needs --calib DIR (real images from the target domain's input side)")
    if precision == "int8" and args.target == "cpu" and (args.engine or args.print_trtexec):
        raise ExportError("--target cpu makes a CPU model (uint8 activations) TensorRT cannot build: use --target tensorrt")
    target: Path = args.onnx
    final = precision_path(target, precision)
    check_outputs([ckpt], [target, final] + ([args.engine] if args.engine else []))
    if args.engine:  # a bad engine profile fails now, not after the export
        make_profile(args.min_shape, args.opt_shape, args.max_shape)
    if args.print_trtexec and not args.engine:  # the command needs names and the precision, not the export
        print_trtexec(args, final, precision, precision)
        return 0

    try:
        with staging(target) as stage:  # first: a folder that cannot be written fails before the slow work
            export_into(args, precision, ckpt, stage, target.parent)
    except OSError as e:
        raise ExportError(f"{target}: cannot write the export ({first_line(e)}); nothing written") from None
    if args.engine or args.print_trtexec:
        build_engine_step(args, final, precision)
    return 0


def precision_path(fp32_onnx: Path, precision: str) -> Path:
    """Where the model of ``precision`` goes: beside the FP32 ONNX (m.onnx, m.fp16.onnx, m.int8.onnx)."""
    return fp32_onnx if precision == "fp32" else fp32_onnx.with_suffix(f".{precision}.onnx")


def export_into(args: argparse.Namespace, precision: str, ckpt: Path, stage: Path, out_dir: Path) -> None:
    """Load, check, export into ``stage``, then move the checked files to ``out_dir``."""
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise ExportError(f"export from a checkpoint needs {e.name}: pip install 'cyclegan-edge[export]'") from None
    from cyclegan_edge.imaging.io import load_test_images
    from cyclegan_edge.models import count_macs, load_generator

    gen = load_generator(ckpt, direction=args.direction)
    print(f"{ckpt}: {gen.config.name}, {count_macs(gen.model)}")
    if args.engine:  # again with this model's size multiple (a U-Net's 2**depth), still before the slow work
        make_profile(args.min_shape, args.opt_shape, args.max_shape, multiple=gen.config.size_multiple)
    bad = nonfinite_weights(gen.model)
    if bad:
        raise ExportError(f"{ckpt}: {len(bad)} weight tensors hold NaN/Inf values (first: {bad[0]}); the checkpoint is "
                          "corrupt (a diverged training run?): nothing exported")  # fmt: skip
    images = load_test_images(args.test_images or default_test_images(), args.test_count)
    for staged in export_checked(args, precision, gen, images, stage, out_dir):
        os.replace(staged, out_dir / staged.name)


def export_checked(args: argparse.Namespace, precision: str, gen: Any, images: list[Any], stage: Path,
                   out_dir: Path) -> list[Path]:  # fmt: skip
    """Export into ``stage`` under the final names, check each model; return the files to move to ``out_dir``
    (reports name the final paths). Raises ExportError on a failed check."""
    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.export.report import parity_vs_torch

    def shown(p: Path) -> str:
        return str(out_dir / p.name)

    onnx_path = export_onnx(gen, stage / args.onnx.name, opset=args.opset)
    parity = parity_vs_torch(gen.model, onnx_path, images, args.tolerance)
    write_json(report_path(onnx_path), {"model": shown(onnx_path), "precision": "fp32", "opset": args.opset,
                                        "checkpoint": str(args.checkpoint), "machine": machine_line(),
                                        "parity": parity})  # fmt: skip
    print(f"{shown(onnx_path)}: FP32 vs PyTorch max abs error {parity['max_abs']:.2e} (tolerance {args.tolerance:.0e}) "
          f"over {len(parity['cases'])} size/batch cases")  # fmt: skip
    if not parity["passed"]:
        raise ExportError(f"{shown(onnx_path)}: FP32 parity failed: max abs error {parity['max_abs']:.2e} > "
                          f"{args.tolerance:.0e}; nothing written")  # fmt: skip
    written = [onnx_path, report_path(onnx_path)]
    if precision == "fp16":
        written += checked_fp16(onnx_path, images, shown)
    elif precision == "int8":
        written += checked_int8(onnx_path, images, args.calib, int8_options(args), shown)
    return written


def checked_fp16(onnx_path: Path, images: list[Any], shown: Callable[[Path], str]) -> list[Path]:
    """The FP16 model beside ``onnx_path`` and its report; ExportError below FP16_MIN_PSNR."""
    from cyclegan_edge.export.fp16 import export_fp16
    from cyclegan_edge.export.report import quality_vs

    final = export_fp16(onnx_path, precision_path(onnx_path, "fp16"))
    q = quality_vs(onnx_path, final, images)
    write_json(report_path(final), {"model": shown(final), "precision": "fp16", "reference": shown(onnx_path),
                                    "quality_vs_fp32": q, "min_psnr_db": FP16_MIN_PSNR})  # fmt: skip
    print(f"{shown(final)}: FP16 vs FP32 PSNR {q['psnr_db_mean']:.1f} dB (min {q['psnr_db_min']:.1f}), SSIM {q['ssim_mean']:.4f}")
    if q["psnr_db_mean"] < FP16_MIN_PSNR:
        raise ExportError(f"{shown(final)}: FP16 PSNR {q['psnr_db_mean']:.1f} dB is below {FP16_MIN_PSNR} dB; nothing written")
    return [final, report_path(final)]


def checked_int8(onnx_path: Path, images: list[Any], calib: str, opts: Int8Options,
                 shown: Callable[[Path], str]) -> list[Path]:  # fmt: skip
    """The calibrated INT8 model beside ``onnx_path`` and its report (quality and CPU speed-up vs FP32);
    a warning below INT8_MIN_PSNR (a user may still want it: the report says what it costs)."""
    from cyclegan_edge.export.int8 import cpu_speedup, quantize_int8
    from cyclegan_edge.export.report import quality_vs

    final = quantize_int8(onnx_path, precision_path(onnx_path, "int8"), calib, opts)
    q = quality_vs(onnx_path, final, images)
    cpu = cpu_speedup(onnx_path, final)  # on the backend the runtime picks for an .onnx on this CPU
    write_json(report_path(final), {
        "model": shown(final), "precision": "int8", "reference": shown(onnx_path),
        "calibration": {"folder": str(calib), **asdict(opts)},
        "quality_vs_fp32": q, "min_psnr_db": INT8_MIN_PSNR,
        "cpu_latency_256": {**cpu, "machine": machine_line()},
    })  # fmt: skip
    print(f"{shown(final)}: INT8 vs FP32 PSNR {q['psnr_db_mean']:.1f} dB (min {q['psnr_db_min']:.1f}), SSIM {q['ssim_mean']:.4f}; "
          f"CPU 256x256 median on {cpu['int8']['backend']}: FP32 {cpu['fp32']['median_ms']:.1f} ms, "
          f"INT8 {cpu['int8']['median_ms']:.1f} ms ({cpu['speedup_median']:.2f}x)")  # fmt: skip
    if q["psnr_db_mean"] < INT8_MIN_PSNR:
        print(f"warning: INT8 PSNR {q['psnr_db_mean']:.1f} dB is below the {INT8_MIN_PSNR} dB goal", file=sys.stderr)
    return [final, report_path(final)]


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda a: run(build_parser().parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
