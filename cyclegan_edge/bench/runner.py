"""Measure backends: warm-up, N timed calls, host pre/post timed on their own, memory peaks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.bench import CALIB_COUNT
from cyclegan_edge.bench.load import OtherLoad, cpus_over
from cyclegan_edge.errors import describe, holding_ctrl_c, importable
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.model_files import is_checkpoint
from cyclegan_edge.onnx_facts import OnnxFacts, read_onnx_facts
from cyclegan_edge.runtime.backends import Backend, BackendOptions, open_backend
from cyclegan_edge.runtime.pipeline import too_small
from cyclegan_edge.runtime.timing import latency_stats, measure

ONNX_BACKENDS = ("onnxruntime", "openvino", "tensorrt")  # variant name prefixes of the variants run from an ONNX
NAMED_SIZES = {"256": (256, 256), "512": (512, 512), "360p": (360, 640), "480p": (480, 848), "720p": (720, 1280),
               "1080p": (1080, 1920)}  # fmt: skip


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``256,512x768,720p`` -> [(256, 256), (512, 768), (720, 1280)] (H, W); ValueError for anything else,
    and for a size the generator cannot take."""
    sizes = []
    for item in filter(None, (t.strip().lower() for t in text.split(","))):
        sides = [s.strip() for s in item.split("x")]
        if item in NAMED_SIZES:
            sizes.append(NAMED_SIZES[item])
        elif len(sides) <= 2 and all(s.isdecimal() for s in sides):
            sizes.append((int(sides[0]), int(sides[-1])))
        else:
            raise ValueError(f"bad size {item!r}: use 256, HxW or 720p")
        small = too_small(sizes[-1])
        if small:
            raise ValueError(small)
    if not sizes:
        raise ValueError("no size given: use 256, HxW or 720p")
    return sizes


def parse_batches(text: str) -> list[int]:
    """``1,4`` -> [1, 4]; ValueError for anything else."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(t.isdecimal() and int(t) >= 1 for t in items):
        raise ValueError("use batch sizes of 1 or more, e.g. 1,4")
    return [int(t) for t in items]


PRECISION_NAMES = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}


@dataclass
class Variant:
    name: str  # pytorch | onnxruntime-fp32 | openvino-fp32 | ... | tensorrt-int8
    precision: str
    model_path: Path
    options: BackendOptions


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def gpu_visible() -> bool:
    """A CUDA GPU here that a TensorRT engine could run on (as cuda-python, else PyTorch, sees it)."""
    from cyclegan_edge.errors import holding_ctrl_c
    from cyclegan_edge.trt.loader import TensorRTUnavailable, gpu_identity

    try:
        with holding_ctrl_c():  # it may load torch, whose extension swallows a Ctrl-C meanwhile
            gpu_identity()
        return True
    except TensorRTUnavailable:
        return False


def torch_cuda_variants(model: Path, wanted: Sequence[str]) -> tuple[list[Variant], list[str]]:
    """pytorch-cuda-{fp32,fp16}[-graphs]: the runtime's PyTorch backend on the GPU."""
    names = [w for w in wanted if w.startswith("pytorch-cuda")]
    if not names:
        return [], []
    if not cuda_available():
        return [], [f"{', '.join(names)} skipped: PyTorch sees no CUDA GPU here"]
    variants = []
    for w in names:
        precision = "fp16" if "fp16" in w else "fp32"
        opts = BackendOptions(device="cuda", fp16=precision == "fp16", cuda_graphs=w.endswith("-graphs"))
        variants.append(Variant(w, precision, model, opts))
    return variants, []


def prepare_variants(model: str | os.PathLike[str], wanted: Sequence[str], workdir: Path, calib: str | None,
                     threads: int = 0, trt_profile: tuple[str, str, str] | None = None,
                     cases: tuple[Sequence[tuple[int, int]], Sequence[int]] = ([(256, 256)], [1]),
                     ) -> tuple[list[Variant], list[str]]:  # fmt: skip
    """Build every requested variant that this machine can run; return (variants, skipped notes).

    trt_profile: (min, opt, max) NxCxHxW shapes for the TensorRT engines (default: one that takes every one of
    ``cases``, the (H, W) sizes and the batches benched)."""
    model = Path(model)
    variants: list[Variant] = []
    notes: list[str] = []
    trt = [w for w in wanted if w.startswith("tensorrt")]
    if trt and not gpu_visible():  # an engine built here could not run: skip the build (tens of seconds each)
        notes.append(f"{', '.join(trt)} skipped: no CUDA GPU here to run an engine (neither cuda-python nor PyTorch "
                     "sees one); python -m cyclegan_edge.export MODEL --engine OUT.plan builds one")  # fmt: skip
        wanted = [w for w in wanted if w not in trt]
    elif trt and (missing := tensorrt_missing()):  # skip the ONNX exports and INT8 calibration done for it alone
        notes.append(f"{', '.join(trt)} skipped: {missing}")
        wanted = [w for w in wanted if w not in trt]
    cpu = BackendOptions(device="cpu", provider="cpu", threads=threads)
    ort_cpu = replace(cpu, backend="onnxruntime")
    # f32 pinned (the precision named); openvino-auto: OpenVINO's own choice, as the runtime runs (bf16 on CPUs with it)
    ov_cpu = BackendOptions(device="cpu", threads=threads, backend="openvino")
    torch_only = [w for w in wanted if w.startswith("pytorch")]
    if torch_only and not is_checkpoint(model):
        notes.append(f"{', '.join(torch_only)} skipped: PyTorch variants run a checkpoint (.pth), not {model.name}")
    onnx_fp32: Path | None = None
    if model.suffix.lower() == ".onnx":
        facts = read_onnx_facts(model)
        if facts.precision != "fp32":  # benched as given: FP16/INT8 variants are derived from an FP32 model only
            given, given_notes = given_precision_variants(model, facts, wanted, workdir, ort_cpu, ov_cpu, trt_profile,
                                                             cases)
            return given, notes + given_notes
        onnx_fp32 = model
    if is_checkpoint(model):
        if "pytorch" in wanted:
            variants.append(Variant("pytorch", "fp32", model, replace(cpu, backend="torch")))
        cuda_variants, cuda_notes = torch_cuda_variants(model, wanted)
        variants += cuda_variants
        notes += cuda_notes
        if any(w.startswith(ONNX_BACKENDS) for w in wanted):
            from cyclegan_edge.export.onnx_export import export_onnx
            from cyclegan_edge.models import load_generator

            onnx_fp32 = export_onnx(load_generator(model), workdir / "model.onnx")
    if onnx_fp32 is None:
        return variants, notes
    derived = [w for w in wanted if w.endswith(("fp16", "int8")) and not w.startswith("pytorch")]
    if derived and not importable("onnx"):  # an edge install ([runtime]): the FP32 model's variants still run
        notes.append(f"{', '.join(derived)} skipped: making FP16/INT8 models from the ONNX needs the onnx package "
                     "(pip install 'cyclegan-edge[engine]')")  # fmt: skip
        wanted = [w for w in wanted if w not in derived]
    onnx_by_precision = {"fp32": onnx_fp32}
    if any(w.endswith("fp16") for w in wanted if not w.startswith("pytorch")):
        from cyclegan_edge.export.fp16 import export_fp16

        onnx_by_precision["fp16"] = export_fp16(onnx_fp32, workdir / "model.fp16.onnx")
    int8_cpu: Path | None = None  # OpenVINO runs the CPU target's placement (uint8 activations, depthwise float)
    if any(w.endswith("int8") for w in wanted):
        if calib:
            from cyclegan_edge.export.int8 import Int8Options, calibration_images, quantize_int8

            opts = Int8Options(calib_count=CALIB_COUNT)
            images = calibration_images(calib, opts.calib_count, opts.calib_size)  # read (and warned about) once
            trt_placed = [w for w in wanted if w.endswith("int8") and w != "openvino-int8"]
            if trt_placed:
                onnx_by_precision["int8"] = quantize_int8(onnx_fp32, workdir / "model.int8.onnx", images, opts)
            if "openvino-int8" in wanted:
                int8_cpu = quantize_int8(onnx_fp32, workdir / "model.int8.cpu.onnx", images,
                                         replace(opts, target="cpu"))  # fmt: skip
            trt_names = " and ".join(trt_placed)
            placed = [f"{trt_names} the TensorRT placement (export --target tensorrt)"] * bool(trt_placed)
            placed += ["openvino-int8 the CPU one (--target cpu)"] * ("openvino-int8" in wanted)
            two = ": two INT8 models, not one" if len(placed) == 2 else ""
            notes.append(f"INT8 calibrated on {len(images)} images of {calib}; " + ", ".join(placed) + two)
        else:
            notes.append("int8 variants skipped: give --calib DIR (real images) to calibrate")
    for precision, path in onnx_by_precision.items():
        if f"onnxruntime-{precision}" in wanted:
            variants.append(Variant(f"onnxruntime-{precision}", precision, path, ort_cpu))
    for precision, ov_path in (("fp32", onnx_fp32), ("int8", int8_cpu)):
        if f"openvino-{precision}" in wanted and ov_path is not None:
            variants.append(Variant(f"openvino-{precision}", precision, ov_path, ov_cpu))
        if precision == "fp32" and "openvino-auto" in wanted:  # what the runtime runs an FP32 .onnx with here
            variants.append(Variant("openvino-auto", "fp32", onnx_fp32, replace(ov_cpu, precision_hint="auto")))
    trt_variants, trt_notes = tensorrt_variants(onnx_by_precision, wanted, workdir, trt_profile, cases)
    return variants + trt_variants, notes + trt_notes


def tensorrt_missing() -> str | None:
    """Why TensorRT cannot be imported here (one line), or None."""
    from cyclegan_edge.trt.loader import import_tensorrt

    try:
        import_tensorrt()
    except Exception as e:
        return describe(e, hint=False)
    return None


def tensorrt_variants(onnx_by_precision: dict[str, Path], wanted: Sequence[str], workdir: Path,
                      trt_profile: tuple[str, str, str] | None, cases: tuple[Sequence[tuple[int, int]], Sequence[int]],
                      ) -> tuple[list[Variant], list[str]]:  # fmt: skip
    """tensorrt-{precision} engines built from the ONNX of that precision (the precision lives in the ONNX:
    works weakly and strongly typed), with ``trt_profile`` or else one that takes every one of ``cases``."""
    variants: list[Variant] = []
    notes: list[str] = []
    for w in (w for w in wanted if w.startswith("tensorrt")):
        precision = w.split("-")[1]
        src = onnx_by_precision.get(precision)
        if src is None:
            continue
        try:
            from cyclegan_edge.trt.build import EngineOptions, build_engine, onnx_facts
            from cyclegan_edge.trt.plan import profile_for

            lo, opt, hi = trt_profile or profile_for(*cases, multiple=onnx_facts(src)[1])
            opts = EngineOptions(precision=precision, min_shape=lo, opt_shape=opt, max_shape=hi)
            plan = build_engine(src, workdir / f"model.{precision}.plan", opts)
            variants.append(Variant(w, precision, plan, BackendOptions()))
            default = EngineOptions()
            notes.append(f"{w}: engine built for {lo} to {hi}, tuned for {opt} (the cases benched; an engine export "
                         f"builds by default takes {default.min_shape} to {default.max_shape}, and may time "
                         "otherwise)")  # fmt: skip
        except Exception as e:  # no TensorRT / no GPU here, or this precision unsupported: say so in the report
            notes.append(f"{w} skipped: {describe(e, hint=False)}")
    return variants, notes


def given_precision_variants(model: Path, facts: OnnxFacts, wanted: Sequence[str], workdir: Path,
                             ort_cpu: BackendOptions, ov_cpu: BackendOptions,
                             trt_profile: tuple[str, str, str] | None,
                             cases: tuple[Sequence[tuple[int, int]], Sequence[int]],
                             ) -> tuple[list[Variant], list[str]]:  # fmt: skip
    """An ONNX that already is FP16 or INT8: the wanted variants of that precision run the file as given
    (OpenVINO has an INT8 variant, not an FP16 one); nothing is derived from it. One note says why the
    variants of other precisions are absent."""
    precision = facts.precision
    variants = [Variant(w, precision, model, opts)
                for w, opts in ((f"onnxruntime-{precision}", ort_cpu), (f"openvino-{precision}", ov_cpu),
                                ("openvino-auto", replace(ov_cpu, precision_hint="auto")))  # as the runtime runs it
                if w in wanted]  # fmt: skip
    others = [w for w in wanted if w.startswith(ONNX_BACKENDS) and not w.endswith((f"-{precision}", "-auto"))]
    notes = []
    if others:
        notes.append(f"{model.name} is already {PRECISION_NAMES[precision]} ({facts.evidence}): benched as given "
                     f"(the {precision} variants); {', '.join(others)} not run: bench derives those from an FP32 "
                     "model only (give it the FP32 .onnx or the checkpoint)")  # fmt: skip
    trt_variants, trt_notes = tensorrt_variants({precision: model}, wanted, workdir, trt_profile, cases)
    return variants + trt_variants, notes + trt_notes


def psnr_db(reference: np.ndarray, test: np.ndarray, hw: tuple[int, int]) -> float | None:
    """PSNR (dB) of ``test``'s output images against ``reference``'s, as uint8 frames, the worst of the batch (what
    a max abs difference means to the eye); None where they are the same images."""
    from cyclegan_edge.imaging.quality import psnr

    worst = min(psnr(a, b) for a, b in zip(tensor_to_frames(reference, hw), tensor_to_frames(test, hw)))
    return None if worst == float("inf") else round(worst, 2)


def parity_batch(frames: Sequence[np.ndarray], hw: tuple[int, int], batch: int) -> np.ndarray:
    """``batch`` of the given frames, resized to ``hw``, as the model's input tensor."""
    from cyclegan_edge.imaging.resize import resized

    sized = resized(frames, hw)
    return frames_to_tensor([sized[i % len(sized)] for i in range(batch)])


def run_benchmark(model: str | os.PathLike[str], wanted: Sequence[str], sizes: Sequence[tuple[int, int]],
                  batches: Sequence[int], iterations: int, warmup: int, calib: str | None = None,
                  threads: int = 0, progress: Any = None, parity_frames: Sequence[np.ndarray] | None = None,
                  reference: Backend | None = None, trt_profile: tuple[str, str, str] | None = None,
                  on_start: Any = None, rounds: int = 1) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """Measure every variant at every size and batch: ``warmup`` calls, then ``iterations`` timed ones, in each of
    ``rounds`` rounds taken in turn over all cases (each variant's round k under the same conditions as the
    others'; how far the rounds' medians spread is the run's noise, ``round_p50_ms``). One variant is loaded at a
    time, in every round. ``on_start(case_rounds, notes)`` is called once the
    variants are built (for a progress total, and the notes so far); ``progress(row)`` after each case's round, with
    the case's row so far (the same dict for a case, its figures over the rounds taken).

    Each row also gets ``max_abs_vs_reference``: the largest difference between this variant's output and
    the reference's on ``parity_frames`` (real images; seeded noise when none) in the [-1, 1] range. The
    reference is ``reference`` when given, else the first variant."""
    if not parity_frames:
        rng = np.random.default_rng(1)
        parity_frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(2)]
    expected: dict[tuple[int, int, int], np.ndarray] = {}
    rows: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants, notes = prepare_variants(model, wanted, Path(tmp), calib, threads, trt_profile, (sizes, batches))
        if on_start is not None:
            on_start(len(variants) * len(sizes) * len(batches) * rounds, notes)
        failed: set[str] = set()
        for _ in range(rounds):
            for v in variants:  # one loaded at a time, in every round: memory for one variant (a Jetson's GPU)
                if v.name in failed:
                    continue
                try:
                    with holding_ctrl_c():  # a Ctrl-C inside a session's making crashed ONNX Runtime (exit 139)
                        backend = open_backend(v.model_path, v.options)
                except Exception as e:  # e.g. an engine that builds but cannot run here: said, the rest measured
                    notes.append(f"{v.name} built, not run: {describe(e, hint=False)}")
                    failed.add(v.name)
                    continue
                try:
                    for hw in sizes:
                        for b in batches:
                            row = time_case(rows, v, backend, hw, b, iterations, warmup, expected, parity_frames,
                                            reference)  # fmt: skip
                            if progress is not None:
                                progress(row)
                finally:
                    with holding_ctrl_c():
                        backend.close()
                        del backend  # the session freed here, not wherever a KeyboardInterrupt unwinds to
    return list(rows.values()), notes


def time_case(rows: dict[tuple[str, int, int, int], dict[str, Any]], v: Variant, backend: Backend,
              hw: tuple[int, int], b: int, iterations: int, warmup: int, expected: dict[tuple[int, int, int], Any],
              parity_frames: Sequence[np.ndarray], reference: Backend | None) -> dict[str, Any]:  # fmt: skip
    """One round of one case into its row in ``rows`` (made at its first round, with its output's difference from
    the reference's on ``parity_frames``); returns the row."""
    key = (v.name, *hw, b)
    if key not in rows:
        x = parity_batch(parity_frames, hw, b)
        out = backend.infer(x)
        if (*hw, b) not in expected:
            expected[(*hw, b)] = reference.infer(x) if reference is not None else out
        rows[key] = {"variant": v.name, "precision": v.precision, "backend": backend.name,
                     "max_abs_vs_reference": float(np.abs(out - expected[(*hw, b)]).max()),
                     "psnr_vs_reference_db": psnr_db(expected[(*hw, b)], out, hw)}  # fmt: skip
    load = OtherLoad()
    timed = measure(backend, hw, b, iterations, warmup)
    return add_round(rows[key], timed, load.seconds())


def add_round(row: dict[str, Any], timed: dict[str, Any], others: tuple[float, float] | None) -> dict[str, Any]:
    """``row`` with one more round of timed calls: latency over all its calls, each round's median, other
    processes' load over all its rounds (``others``: OtherLoad.seconds of this one); the host stages, memory and GPU
    parts as the last round measured them."""
    samples = row.get("samples_ms", []) + timed["samples_ms"]
    was = row.get("others_s")
    load = None if others is None else (others[0] + (was[0] if was else 0.0), others[1] + (was[1] if was else 0.0))
    busy = cpus_over(load)
    windows = [*row.get("timed_windows", []), timed["timed_window"]]
    row.update({**timed, "samples_ms": samples, "iterations": len(samples), "timed_windows": windows,
                "warmup": row.get("warmup", timed["warmup"]), "latency_ms": latency_stats(samples, timed["batch"]),
                "round_p50_ms": [*row.get("round_p50_ms", []), round(timed["latency_ms"]["p50"], 3)],
                "others_s": load, "others_busy_cpus": None if busy is None else round(busy, 2)})  # fmt: skip
    return row


def add_ratios(rows: list[dict[str, Any]], baseline: str) -> None:
    """ratio_to_baseline = baseline p50 / this p50 (>1: faster than the baseline)."""
    base = {(r["height"], r["width"], r["batch"]): r["latency_ms"]["p50"] for r in rows if r["variant"] == baseline}
    for r in rows:
        b = base.get((r["height"], r["width"], r["batch"]))
        r["ratio_to_baseline"] = round(b / r["latency_ms"]["p50"], 3) if b else None
