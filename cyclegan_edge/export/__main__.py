"""python -m cyclegan_edge.export CHECKPOINT --onnx OUT.onnx [--precision fp16|int8 ...] [--engine OUT.plan]
   python -m cyclegan_edge.export MODEL.onnx --engine OUT.plan   (engine only: no torch, Python 3.8+)"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cyclegan_edge import ASSETS_DIR, require_python_310
from cyclegan_edge.atomic import OutputBusy, check_writable, lock_output, unlock_output, write_json
from cyclegan_edge.errors import (ArgumentParser, RawHelpFormatter, UsageError, first_line, float_arg,
                                  holding_ctrl_c, import_holding_ctrl_c, int_arg, run_cli)  # fmt: skip
from cyclegan_edge.export.int8 import CALIB_METHODS, INT8_TARGETS, Int8Options, image_count
from cyclegan_edge.export.onnx_export import DEFAULT_OPSET, MIN_OPSET, ExportError
from cyclegan_edge.export.report import FP32_TOLERANCE, report_path
from cyclegan_edge.imaging.files import check_outputs
from cyclegan_edge.machine import machine_line
from cyclegan_edge.model_files import (CHECKPOINT_EXTENSIONS, DIRECTIONS, ENGINE_EXTENSIONS, PRECISIONS,
                                       direction_arg)  # fmt: skip
from cyclegan_edge.trt.build import (
    EngineOptions,
    build_engine,
    equivalent_trtexec,
    onnx_precision,
)
from cyclegan_edge.trt.loader import TensorRTUnavailable, import_tensorrt
from cyclegan_edge.trt.plan import EngineSidecar, engine_targets, make_profile, sidecar_path

FP16_MIN_PSNR = 40.0  # mean PSNR vs FP32 an FP16 model must reach (below it, nothing is written)
INT8_MIN_PSNR = 30.0  # the INT8 goal (mean PSNR vs FP32): below it the model is still written, with a warning
ENGINE, INT8 = EngineOptions(), Int8Options()  # argparse reads its defaults from these
STAGING_MAX_AGE_S = 24 * 3600  # a staging folder without a process id in its name (older versions) is stale after this
log = logging.getLogger("cyclegan_edge.export")


def default_test_images() -> str:
    return str(ASSETS_DIR / "images")


def measured_on(args: argparse.Namespace, count: int) -> str:
    """The images a quality figure comes from, as the printed lines say it."""
    if args.test_images:
        return f"{count} image{'s' if count != 1 else ''} of {args.test_images}"
    return f"{count} bundled photo{'s' if count != 1 else ''} (--test-images DIR: your own domain's)"


def add_switch(group: Any, name: str, default: bool, text: str) -> None:
    """``--name`` / ``--no-name`` (argparse.BooleanOptionalAction needs Python 3.9; JetPack 5 has 3.8)."""
    dest = name.replace("-", "_")
    group.add_argument(f"--{name}", dest=dest, action="store_true", default=default,
                       help=f"{text}; --no-{name} to turn off" if default else text)  # fmt: skip
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m cyclegan_edge.export", description=__doc__, formatter_class=RawHelpFormatter)
    ap.add_argument("checkpoint", help="generator checkpoint (.pth/.pt: published, GAN Compression or ours), or an "
                    "exported .onnx to build an engine from (on the device that will run it)")  # fmt: skip
    ap.add_argument("--onnx", type=Path, metavar="OUT.onnx", help="FP32 ONNX output, a name ending in .onnx (needed "
                    "for a checkpoint); FP16/INT8 go beside it as OUT.fp16.onnx / OUT.int8.onnx")  # fmt: skip
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help=f"ONNX opset, {MIN_OPSET} up to the newest this torch writes: 17 suits TensorRT 8.5+ (JetPack "
                    "5), 13 TensorRT 8.2 (JetPack 4)")  # fmt: skip
    ap.add_argument("--direction", type=direction_arg, default=DIRECTIONS[0],
                    help="A->B or B->A: which generator of a training state that holds both")  # fmt: skip
    ap.add_argument("--precision", choices=PRECISIONS, default=None,
                    help="default: fp32 for a checkpoint, what the ONNX carries for an .onnx")  # fmt: skip
    ap.add_argument("--test-images", metavar="DIR", default=None,
                    help="real images for the parity/quality reports (default: the bundled photos)")  # fmt: skip
    ap.add_argument("--test-count", type=int_arg(1, 1000), default=8,
                    help="how many of the test images (the first, by name) the reports use")  # fmt: skip
    ap.add_argument("--tolerance", type=float_arg(0, 2, above_low=True), default=FP32_TOLERANCE,
                    help="max abs error vs PyTorch for FP32 (the model's range is -1..1)")  # fmt: skip
    g8 = ap.add_argument_group("INT8")
    g8.add_argument("--calib", metavar="DIR", help="folder of real images from the model's input domain")
    g8.add_argument("--calib-count", type=int_arg(0, 100000), default=INT8.calib_count,
                    help="how many calibration images, picked evenly across --calib's files (0: all)")  # fmt: skip
    g8.add_argument("--calib-method", choices=CALIB_METHODS, default=INT8.calib_method,
                    help="how each activation's range is set from the calibration images")  # fmt: skip
    g8.add_argument("--percentile", type=float_arg(0, 100, above_low=True), default=INT8.percentile,
                    help="for --calib-method percentile: the percentile of activation values the range covers")
    add_switch(g8, "keep-first-last", INT8.keep_first_last, "keep the first and last convs in float")
    add_switch(g8, "keep-conv-transpose", INT8.keep_conv_transpose, "keep the ConvTranspose layers in float")
    add_switch(g8, "keep-depthwise", INT8.keep_depthwise, "keep depthwise convs (mobile generators) in float")
    g8.add_argument("--target", choices=INT8_TARGETS, default=INT8.target,
                    help="tensorrt: symmetric int8 (engines); cpu: uint8 activations, depthwise convs in float "
                    "(OpenVINO: faster on CPUs; TensorRT cannot build it)")  # fmt: skip
    gt = ap.add_argument_group("TensorRT")
    gt.add_argument("--engine", type=Path, metavar="OUT.plan",
                    help="build a TensorRT engine (.plan or .engine) from the ONNX of --precision")  # fmt: skip
    gt.add_argument("--min-shape", default=ENGINE.min_shape, help="smallest input (NxCxHxW) the engine takes")
    gt.add_argument("--opt-shape", default=ENGINE.opt_shape, help="the input shape TensorRT tunes for")
    gt.add_argument("--max-shape", default=ENGINE.max_shape, help="largest input the engine takes")
    gt.add_argument("--workspace", type=int_arg(1, 1 << 20), default=ENGINE.workspace_mib, help="MiB")
    gt.add_argument("--timing-cache", default=ENGINE.timing_cache, help="persistent timing cache file")
    gt.add_argument("--dla-core", type=int_arg(0, 1), default=ENGINE.dla_core,
                    help="Jetson DLA core, 0 or 1 (default: the GPU)")  # fmt: skip
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
    print(f"{args.engine}: building the engine from {onnx_path}", flush=True)
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
        raise UsageError("an .onnx input only builds an engine: give --engine OUT.plan (or --print-trtexec)")
    if args.engine:
        check_outputs([onnx_path], [args.engine, sidecar_path(args.engine)])
        writable_before_work([args.engine, *timing_cache(args)])
    build_engine_step(args, onnx_path, args.precision or onnx_precision(onnx_path))
    return 0


def check_output_names(args: argparse.Namespace, checkpoint: bool) -> None:
    """UsageError for an --onnx / --engine that is missing, a folder or misnamed: a name without the model's
    extension could be another file (``--onnx mine.pth`` would have replaced a checkpoint)."""
    if checkpoint and args.onnx is None:
        raise UsageError("give --onnx OUT.onnx (where the exported model goes)")
    named: list[tuple[str, Path, tuple[str, ...]]] = [("--onnx", args.onnx, (".onnx",))] if checkpoint else []
    named += [("--engine", args.engine, ENGINE_EXTENSIONS)] if args.engine else []
    for flag, path, extensions in named:
        if path.is_dir():
            raise UsageError(f"{flag} {path} is a folder: give the file to write, e.g. {flag} "
                             f"{path / ('model' + extensions[0])}")  # fmt: skip
        if path.suffix.lower() not in extensions:
            raise UsageError(f"{flag} {path}: the name must end in {' or '.join(extensions)} (a name without it could "
                             "be another file, such as a checkpoint); nothing written")  # fmt: skip


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (POSIX; callers check)
    except (ProcessLookupError, OverflowError):  # OverflowError: no process has such a number
        return True
    except PermissionError:  # another user's
        return False
    return False


def remove_stale_staging(target: Path) -> None:
    """Remove the staging folders of ``target`` that an export killed midway (kill -9, power loss) left: those
    named after a process that is gone, or (no process id in the name: older versions) a day old. Only this
    output's exact pattern; a running export's folder stays."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"(?:(\d+)\.)?[a-z0-9_]{8}\.export")
    for folder in target.parent.iterdir():
        m = pattern.fullmatch(folder.name)
        if not m or folder.is_symlink() or not folder.is_dir():
            continue
        if m[1] and os.name == "posix":
            stale = process_gone(int(m[1]))
        else:
            stale = time.time() - folder.stat().st_mtime > STAGING_MAX_AGE_S
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                print(f"{folder}: removed (left by an export that was killed)")


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A hidden folder beside ``target``: the export writes there, and only a finished, checked export is
    moved to the target paths (a failure or Ctrl-C leaves what was there before untouched). Its name holds
    this process's id, so that a later run can tell one left by a killed export. The target is locked meanwhile
    (OutputBusy: another export's). Folders it made for the target are removed again when nothing was exported (a bad
    checkpoint left an empty --onnx folder)."""
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # deepest first
    try:  # a second export to the same model would move its files in among this one's
        lock = lock_output(target, "is exporting to it now; wait for it to end, or give another --onnx")
    except OutputBusy as e:
        raise ExportError(f"--onnx {e}") from None
    exported = False
    try:
        remove_stale_staging(target)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".export", dir=target.parent))
        try:
            yield folder
            exported = True
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        unlock_output(target, lock)
        for empty in made if not exported else []:
            try:
                empty.rmdir()
            except OSError:  # something else was put there meanwhile
                break


def timing_cache(args: argparse.Namespace) -> list[Path]:
    """The --timing-cache file, rewritten after the engine is built: checked with the outputs (an unwritable one
    failed after the build)."""
    return [Path(args.timing_cache)] if args.timing_cache else []


def writable_before_work(outputs: list[Path]) -> None:
    """A folder that cannot take an output fails now, not after minutes of export or engine build."""
    for out in outputs:
        try:
            check_writable(out)
        except OSError as e:
            raise ExportError(f"{out}: cannot write here ({e.strerror}); nothing written") from None


def run(args: argparse.Namespace) -> int:
    ckpt = Path(args.checkpoint)
    if ckpt.is_dir():
        raise ExportError(f"{ckpt}: a folder, not a checkpoint file: export takes a checkpoint (.pth/.pt) or an .onnx")
    if not ckpt.is_file():
        raise ExportError(f"{ckpt}: no such file")
    ext = ckpt.suffix.lower()
    if ext in ENGINE_EXTENSIONS:
        raise ExportError(f"{ckpt}: this is a TensorRT engine already (run it: python -m cyclegan_edge.runtime "
                          f"--engine {ckpt}); export takes a checkpoint (.pth/.pt) or an .onnx")  # fmt: skip
    if ext not in CHECKPOINT_EXTENSIONS + (".onnx",):
        raise ExportError(f"{ckpt}: export takes a checkpoint (.pth/.pt) or an .onnx, not {ext or 'this file'}")
    check_output_names(args, checkpoint=ext != ".onnx")
    if ext == ".onnx":
        return run_onnx(args)
    require_python_310("export from a checkpoint")
    precision = args.precision or "fp32"
    if precision == "int8" and not args.calib:
        raise UsageError("--precision int8 needs --calib DIR (real images from the target domain's input side)")
    if precision == "int8" and args.target == "cpu" and (args.engine or args.print_trtexec):
        raise UsageError("--target cpu makes a CPU model (uint8 activations) TensorRT cannot build: use --target "
                         "tensorrt")  # fmt: skip
    target: Path = args.onnx
    final = precision_path(target, precision)
    engine = [args.engine, sidecar_path(args.engine)] if args.engine else []
    check_outputs([ckpt], [target, final] + engine)
    for out in [report_path(target), final, report_path(final)] + engine:
        if out.is_dir():
            raise ExportError(f"{out}: a folder is in the way of this output; nothing written")
    if args.engine:  # a bad engine profile fails now, not after the export
        make_profile(args.min_shape, args.opt_shape, args.max_shape)
    if args.print_trtexec and not args.engine:  # the command needs names and the precision, not the export
        print_trtexec(args, final, precision, precision)
        return 0
    writable_before_work([target, *engine[:1], *(timing_cache(args) if engine else [])])

    images, calib = export_inputs(args, precision)  # before the slow work: a bad path fails now
    stage = None
    try:
        with staging(target) as stage:  # first: a folder that cannot be written fails before the slow work
            export_into(args, precision, ckpt, images, calib, stage, target.parent)
    except OSError as e:
        raise ExportError(f"{target}: cannot write the export ({first_line(e)}); nothing written") from None
    except (ValueError, RuntimeError) as e:  # a failed check names the file asked for, not the staging folder's
        if stage is None or str(stage) not in str(e):
            raise
        line = first_line(e).replace(str(stage), str(target.parent))
        raise ExportError(line if line.endswith("nothing written") else f"{line}; nothing written") from None
    stale = stale_precisions(target, precision)
    if stale:
        models = [precision_path(target, p) for p in stale]
        files = [f for m in models for f in (m, report_path(m)) if f.exists()]
        log.warning("%s: stale: made from another checkpoint than the new %s (from the FP32 model it replaced), left "
                    "as they were; rerun with --precision %s to refresh them, or delete them",
                    ", ".join(map(str, files)), target, " / ".join(stale))  # fmt: skip
    if args.engine or args.print_trtexec:
        build_engine_step(args, final, precision)
    return 0


def export_inputs(args: argparse.Namespace, precision: str) -> tuple[list[Any], list[Any]]:
    """The checks that need no model, then the test images and (INT8) the calibration batches; a bad path or
    an unusable folder is one line naming its flag."""
    import_holding_ctrl_c(("torch", "onnx"))  # a Ctrl-C while torch loads would be swallowed
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise ExportError(f"export from a checkpoint needs {e.name}: pip install 'cyclegan-edge[export]'") from None
    from cyclegan_edge.export.int8 import calibration_images
    from cyclegan_edge.export.onnx_export import max_opset
    from cyclegan_edge.imaging.io import load_test_images

    if not MIN_OPSET <= args.opset <= max_opset():
        raise UsageError(f"--opset {args.opset}: use {MIN_OPSET}..{max_opset()} (what this torch exports; 17 suits "
                         "TensorRT 8.5+, 13 TensorRT 8.2)")  # fmt: skip
    try:
        images = load_test_images(args.test_images or default_test_images(), args.test_count)
    except (OSError, ValueError) as e:
        raise ExportError(f"--test-images {first_line(e)}") from None
    if precision != "int8":
        return images, []
    try:
        return images, calibration_images(args.calib, args.calib_count, INT8.calib_size)
    except (OSError, ValueError) as e:
        raise ExportError(f"--calib {first_line(e)}") from None


def precision_path(fp32_onnx: Path, precision: str) -> Path:
    """Where the model of ``precision`` goes: beside the FP32 ONNX (m.onnx, m.fp16.onnx, m.int8.onnx)."""
    return fp32_onnx if precision == "fp32" else fp32_onnx.with_suffix(f".{precision}.onnx")


def model_source(path: Path) -> tuple[str, str] | None:
    """(source checkpoint sha256, direction) from an exported model's metadata; None if it cannot be read."""
    from cyclegan_edge.onnx_facts import read_onnx_facts

    try:
        meta = read_onnx_facts(path).metadata
    except ValueError:  # not a readable ONNX model
        return None
    return meta.get("source_checkpoint_sha256", ""), meta.get("direction", "")


def stale_precisions(target: Path, written: str) -> list[str]:
    """The precisions (fp16, int8) whose model beside ``target`` this run did not write and that another
    checkpoint (or direction) made: derived from the FP32 model that ``target`` replaced."""
    source = model_source(target)
    return [p for p in ("fp16", "int8") if p != written and precision_path(target, p).is_file()
            and model_source(precision_path(target, p)) != source]  # fmt: skip


def export_into(args: argparse.Namespace, precision: str, ckpt: Path, images: list[Any], calib: list[Any],
                stage: Path, out_dir: Path) -> None:  # fmt: skip
    """Load, check, export into ``stage``, then move the checked files to ``out_dir``."""
    from cyclegan_edge.models import count_macs, load_generator, nonfinite_weights

    gen = load_generator(ckpt, direction=args.direction)
    print(f"{ckpt}: {gen.config.name}, {count_macs(gen.model)}")
    if args.engine:  # again with this model's size multiple (a U-Net's 2**depth), still before the slow work
        make_profile(args.min_shape, args.opt_shape, args.max_shape, multiple=gen.config.size_multiple)
    bad = nonfinite_weights(gen.model)
    if bad:
        raise ExportError(f"{ckpt}: {len(bad)} weight tensors hold NaN/Inf values (first: {bad[0]}); the checkpoint is "
                          "corrupt (a diverged training run?): nothing exported")  # fmt: skip
    moved: list[Path] = []
    checked = export_checked(args, precision, gen, images, calib, stage, out_dir)
    with holding_ctrl_c():  # a model and its report move together: Ctrl-C between two left a new model, old report
        for staged in checked:
            final = out_dir / staged.name
            try:
                os.replace(staged, final)
            except OSError as e:  # name the output, not the staging path; and say what is already in place
                done = f"already written: {', '.join(map(str, moved))}" if moved else "nothing written"
                raise ExportError(f"{final}: cannot write ({first_line(e, path=False)}); {done}") from None
            moved.append(final)


def export_checked(args: argparse.Namespace, precision: str, gen: Any, images: list[Any], calib: list[Any],
                   stage: Path, out_dir: Path) -> list[Path]:  # fmt: skip
    """Export into ``stage`` under the final names, check each model; return the files to move to ``out_dir``
    (reports name the final paths). Raises ExportError on a failed check."""
    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.export.report import parity_vs_torch

    def shown(p: Path) -> str:
        return str(out_dir / p.name)

    onnx_path = export_onnx(gen, stage / args.onnx.name, opset=args.opset)
    parity = parity_vs_torch(gen.model, onnx_path, images, args.tolerance)
    tested = measured_on(args, len(images))
    write_json(report_path(onnx_path), {"model": shown(onnx_path), "precision": "fp32", "opset": args.opset,
                                        "checkpoint": str(args.checkpoint), "machine": machine_line(),
                                        "parity": {**parity, "test_images": tested}})  # fmt: skip
    print(f"{shown(onnx_path)}: FP32 vs PyTorch max abs error {parity['max_abs']:.2e} (tolerance {args.tolerance:.0e}) "
          f"over {len(parity['cases'])} size/batch cases of {tested} on {parity['runtime']}")  # fmt: skip
    if not parity["passed"]:
        raise ExportError(f"{shown(onnx_path)}: FP32 parity failed: max abs error {parity['max_abs']:.2e} > "
                          f"{args.tolerance:.0e}; nothing written")  # fmt: skip
    written = [onnx_path, report_path(onnx_path)]
    if precision == "fp16":
        written += checked_fp16(onnx_path, images, tested, shown)
    elif precision == "int8":
        written += checked_int8(onnx_path, images, tested, calib, args.calib, int8_options(args), shown)
    return written


def run_here_said(q: dict[str, Any], here: dict[str, Any] | None) -> str:
    """Which backend ``q`` was measured on and, where the runtime runs the model on another here, its figure."""
    said = f" with {q['runtime']}"
    if here is not None:
        said += f"; as the runtime runs it here ({here['runtime']}): {here['psnr_db_mean']:.1f} dB"
    return said


def checked_fp16(onnx_path: Path, images: list[Any], tested: str, shown: Callable[[Path], str]) -> list[Path]:
    """The FP16 model beside ``onnx_path`` and its report (quality on ``images``, which ``tested`` names);
    ExportError below FP16_MIN_PSNR."""
    from cyclegan_edge.export.fp16 import export_fp16
    from cyclegan_edge.export.report import quality_as_run_here, quality_vs

    final = export_fp16(onnx_path, precision_path(onnx_path, "fp16"))
    q, here = quality_vs(onnx_path, final, images), quality_as_run_here(onnx_path, final, images)
    write_json(report_path(final), {"model": shown(final), "precision": "fp16", "reference": shown(onnx_path),
                                    "machine": machine_line(), "quality_vs_fp32": {**q, "test_images": tested},
                                    "quality_as_run_here": here, "required_psnr_db_mean": FP16_MIN_PSNR,
                                    "passed": q["psnr_db_mean"] >= FP16_MIN_PSNR})  # fmt: skip
    print(f"{shown(final)}: FP16 vs FP32 PSNR {q['psnr_db_mean']:.1f} dB (min {q['psnr_db_min']:.1f}), SSIM "
          f"{q['ssim_mean']:.4f} on {tested}{run_here_said(q, here)}")  # fmt: skip
    if q["psnr_db_mean"] < FP16_MIN_PSNR:
        raise ExportError(f"{shown(final)}: FP16 PSNR {q['psnr_db_mean']:.1f} dB is below {FP16_MIN_PSNR} dB; nothing written")
    return [final, report_path(final)]


def checked_int8(onnx_path: Path, images: list[Any], tested: str, calib: Sequence[Any], folder: str,
                 opts: Int8Options, shown: Callable[[Path], str]) -> list[Path]:  # fmt: skip
    """The INT8 model beside ``onnx_path``, calibrated on ``calib`` (the batches read from ``folder``), and its
    report (quality and CPU speed-up vs FP32); a warning below INT8_MIN_PSNR (a user may still want it: the
    report says what it costs)."""
    from cyclegan_edge.export.int8 import cpu_speedup, quantize_int8
    from cyclegan_edge.export.report import quality_as_run_here, quality_vs

    final = quantize_int8(onnx_path, precision_path(onnx_path, "int8"), calib, opts)
    q, here = quality_vs(onnx_path, final, images), quality_as_run_here(onnx_path, final, images)
    cpu = cpu_speedup(onnx_path, final)  # on the backend the runtime picks for an .onnx on this CPU
    settings = asdict(opts)
    asked = settings.pop("calib_count")
    write_json(report_path(final), {
        "model": shown(final), "precision": "int8", "reference": shown(onnx_path),
        "calibration": {"folder": str(folder), "images": len(calib), "images_asked": asked or "all", **settings},
        "quality_vs_fp32": {**q, "test_images": tested}, "goal_psnr_db_mean": INT8_MIN_PSNR,
        "meets_goal": q["psnr_db_mean"] >= INT8_MIN_PSNR, "quality_as_run_here": here,
        "cpu_latency_256": {**cpu, "machine": machine_line()},
    })  # fmt: skip
    print(f"{shown(final)}: INT8 (calibrated on {image_count(len(calib))}) vs FP32 PSNR {q['psnr_db_mean']:.1f} dB "
          f"(min {q['psnr_db_min']:.1f}), SSIM {q['ssim_mean']:.4f} on {tested}{run_here_said(q, here)}; CPU 256x256 "
          "median (min): FP32 "
          f"{cpu['fp32']['median_ms']:.1f} ({cpu['fp32']['min_ms']:.1f}) ms on {cpu['fp32']['backend']}, INT8 "
          f"{cpu['int8']['median_ms']:.1f} ({cpu['int8']['min_ms']:.1f}) ms on {cpu['int8']['backend']} "
          f"({cpu['speedup_median']:.2f}x median, {cpu['fp32']['min_ms'] / cpu['int8']['min_ms']:.2f}x min)"
          )  # fmt: skip
    if q["psnr_db_mean"] < INT8_MIN_PSNR:
        log.warning("INT8 PSNR %.1f dB is below the %s dB goal (the model is written; its report says so)",
                    q["psnr_db_mean"], INT8_MIN_PSNR)  # fmt: skip
    return [final, report_path(final)]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return run_cli(lambda a: run(build_parser().parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
