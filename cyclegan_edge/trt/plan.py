"""TensorRT version rules, shape profiles and engine sidecars: pure Python, no TensorRT needed.

Which TensorRT build path applies:
* TensorRT 8.5 / 8.6 / 10.x are weakly typed by default: an FP32 ONNX becomes FP16/INT8 through
  builder flags. A Q/DQ (INT8) ONNX needs the INT8 flag on 8.x; on 10.x an ONNX that carries its
  own precision (FP16 casts, Q/DQ) is built strongly typed.
* TensorRT 11.x and TensorRT-RTX are strongly typed only: precision must be in the ONNX
  (``export --precision fp16|int8``); there are no precision flags to set.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cyclegan_edge.imaging.frames import padded_size
from cyclegan_edge.model_files import BASE_MULTIPLE, INPUT_NAME, PRECISIONS

MIN_TENSORRT = (8, 5)  # named I/O tensors and execute_async_v3 (the runtime's TensorRT backend) start there
MIN_TRTEXEC = (8, 0)  # trtexec builds from the ONNX on older TensorRT too (8.2: JetPack 4, Jetson Nano)


class EngineCompatError(RuntimeError):
    pass


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@dataclass(frozen=True)
class BuildPlan:
    strongly_typed: bool
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag names
    builder_flags: tuple[str, ...]  # BuilderFlag names
    # BuilderFlag names cleared: TF32, on by default, runs an FP32 engine's convolutions with 10-bit mantissas on
    # Ampere and newer (Jetson Orin too): FP32 named is FP32 run, as PyTorch's CUDA rows are
    cleared_flags: tuple[str, ...] = ()


def plan_build(flavor: str, version: str, onnx_precision: str, precision: str,
               minimum: tuple[int, int] = MIN_TENSORRT) -> BuildPlan:  # fmt: skip
    """``flavor``: "tensorrt" or "tensorrt_rtx"; ``onnx_precision``: what the ONNX carries
    (fp32, fp16 or int8 = Q/DQ); ``precision``: what the user asked for; ``minimum``: the oldest
    TensorRT the build path supports (MIN_TRTEXEC for a trtexec command)."""
    if precision not in PRECISIONS or onnx_precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    major = parse_version(version)[0] if version else 0
    strongly_only = flavor == "tensorrt_rtx" or major >= 11
    no_tf32 = ("TF32",) if precision == "fp32" else ()
    if strongly_only:
        if precision != onnx_precision:
            what = "TensorRT-RTX" if flavor == "tensorrt_rtx" else f"TensorRT {version}"
            raise ValueError(
                f"{what} is strongly typed: precision comes from the ONNX, which is {onnx_precision}; "
                f"export a {precision} ONNX first (python -m cyclegan_edge.export CKPT --precision {precision})"
            )
        flags: tuple[str, ...] = ("STRONGLY_TYPED",) if flavor != "tensorrt_rtx" else ()
        return BuildPlan(True, flags, (), no_tf32)
    if parse_version(version)[:2] < minimum:
        if minimum == MIN_TENSORRT:
            raise ValueError(f"TensorRT {version} is too old: 8.5 (JetPack 5.1) or newer is needed for named I/O "
                             "tensors; run the .onnx with ONNX Runtime (or --print-trtexec for its trtexec)")  # fmt: skip
        raise ValueError(f"TensorRT {version} is too old for this toolkit's trtexec commands (8.0 or newer)")
    explicit = ("EXPLICIT_BATCH",) if major < 10 else ()
    if onnx_precision != "fp32":
        if precision != onnx_precision:  # an engine named fp32 would run the ONNX's precision
            raise ValueError(f"the ONNX is {onnx_precision}, and an engine built from it runs {onnx_precision}, not "
                             f"{precision}: leave --precision out, or build from the FP32 ONNX")  # fmt: skip
        if major >= 10:
            return BuildPlan(True, explicit + ("STRONGLY_TYPED",), ())
        # 8.x: Q/DQ needs the INT8 flag; FP16 lets the excluded layers run in half precision.
        return BuildPlan(False, explicit, ("INT8", "FP16") if onnx_precision == "int8" else ("FP16",))
    if precision == "int8":
        raise ValueError("INT8 needs a calibrated Q/DQ ONNX: export with --precision int8 --calib DIR first")
    return BuildPlan(False, explicit, ("FP16",) if precision == "fp16" else (), no_tf32)


@dataclass(frozen=True)
class ShapeProfile:
    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def profile_for(sizes: Sequence[tuple[int, int]], batches: Sequence[int], multiple: int = BASE_MULTIPLE,
                ) -> tuple[str, str, str]:  # fmt: skip
    """(min, opt, max) NxCxHxW shapes of a profile that takes every (H, W) of ``sizes`` (padded to ``multiple``, as
    the engine backend pads them) at every batch of ``batches``, tuned for the first of each."""
    padded = [padded_size(h, w, multiple) for h, w in sizes]

    def shape(n: int, h: int, w: int) -> str:
        return f"{n}x3x{h}x{w}"

    return (shape(min(batches), min(h for h, _ in padded), min(w for _, w in padded)), shape(batches[0], *padded[0]),
            shape(max(batches), max(h for h, _ in padded), max(w for _, w in padded)))


def outside_profile(profile: dict[str, list[int]], shape: tuple[int, ...]) -> str:
    """Why an engine with ``profile`` (a sidecar's) cannot take an input of ``shape`` (NCHW), as a line naming the
    way out ('': it can)."""
    lo, hi = profile.get("min"), profile.get("max")
    if not lo or not hi or all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
        return ""
    x = "x".join
    fix = (f"batches of {lo[0]} to {hi[0]}" if not lo[0] <= shape[0] <= hi[0] else
           "a smaller --size" if any(s > b for s, b in zip(shape[2:], hi[2:])) else "a larger --size")  # fmt: skip
    return (f"input {x(map(str, shape))} is outside this engine's profile ({x(map(str, lo))} to {x(map(str, hi))}): "
            f"run it with {fix}, or build the engine again with export --min-shape/--max-shape")


def parse_shape(text: str, channels: int = 3) -> tuple[int, int, int, int]:
    """``1x3x256x256``, ``4x256x256`` (channels implied) or ``256x256`` (batch 1)."""
    try:
        dims = [int(x) for x in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise ValueError(f"bad shape {text!r}: use NxCxHxW, e.g. 1x3x256x256") from None
    if len(dims) == 2:
        dims = [1, channels, *dims]
    elif len(dims) == 3:
        dims = [dims[0], channels, dims[1], dims[2]]
    if len(dims) != 4 or min(dims) < 1:
        raise ValueError(f"bad shape {text!r}: use NxCxHxW with positive sizes")
    n, c, h, w = dims
    return (n, c, h, w)


def make_profile(min_shape: str, opt_shape: str, max_shape: str, channels: int = 3,
                 multiple: int = BASE_MULTIPLE) -> ShapeProfile:  # fmt: skip
    p = ShapeProfile(parse_shape(min_shape, channels), parse_shape(opt_shape, channels), parse_shape(max_shape, channels))
    for name, shape in (("min", p.min), ("opt", p.opt), ("max", p.max)):
        if shape[1] != channels:
            raise ValueError(f"{name} shape {shape}: the generator takes {channels} channels")
        if shape[2] % multiple or shape[3] % multiple:
            raise ValueError(f"{name} shape {shape}: height and width must be multiples of {multiple} for this model")
    for i, axis in enumerate("NCHW"):
        if not p.min[i] <= p.opt[i] <= p.max[i]:
            raise ValueError(f"impossible profile on {axis}: need min <= opt <= max, got {p.min[i]}, {p.opt[i]}, {p.max[i]}")
    return p


@dataclass
class EngineSidecar:
    """What ``out.plan.json`` records; the runtime refuses an engine that does not fit the machine."""

    tensorrt_flavor: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: dict[str, list[int]]
    onnx_sha256: str
    strongly_typed: bool
    dla_core: int | None = None
    toolkit_version: str = ""
    size_multiple: int = BASE_MULTIPLE  # H and W multiples the model needs (a U-Net's 2**depth); the backend pads to it
    onnx_file: str = ""  # the ONNX it was built from, absolute (sidecars of older versions lack it)
    engine_bytes: int = 0  # the engine's size: a sidecar of another engine (an older version's interrupted build)

    def write(self, path: str | os.PathLike[str]) -> None:
        from cyclegan_edge.atomic import write_json

        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> EngineSidecar:
        p = Path(path)
        if not p.is_file():
            raise EngineCompatError(f"{p}: missing engine sidecar (build the engine with python -m cyclegan_edge.export)")
        try:
            data = json.loads(p.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            known = {f.name for f in fields(cls)}  # sidecars of older versions may hold keys since dropped
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as e:
            raise EngineCompatError(f"{p}: unreadable engine sidecar ({e})") from None


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    return Path(str(engine) + ".json")


def stale_source(engine: str | os.PathLike[str], sidecar: EngineSidecar) -> str | None:
    """A warning when the ONNX the engine was built from has changed since (a re-export): the engine still
    runs the old model. None when it is unchanged, gone (engines travel without it) or not recorded."""
    from cyclegan_edge.atomic import sha256_file

    onnx = Path(sidecar.onnx_file)
    if not sidecar.onnx_file or not onnx.is_file() or sha256_file(onnx) == sidecar.onnx_sha256:
        return None
    return (f"{engine}: built from an earlier {onnx} (the file has changed since), so it runs the old model; rebuild "
            f"it: python -m cyclegan_edge.export {onnx} --engine {engine}")


# TensorRT-RTX builds engines portable across these compute capabilities by default, and needs no GPU to
# do it (checked: TensorRT-RTX 1.7 builds our engines on a CPU-only machine). It supports RTX GPUs
# (Turing to Blackwell) only: not data-center parts such as the H100 (9.0).
RTX_PORTABLE_CC = ("8.6", "8.9", "12.0")
RTX_HINT = ("TensorRT-RTX runs on RTX GPUs (compute capability 8.6, 8.9, 12.x; 7.5 with device-specific engines); "
            "on other GPUs use NVIDIA TensorRT (pip install 'cyclegan-edge[trt]') or ONNX Runtime")  # fmt: skip


def engine_targets(sidecar: EngineSidecar) -> list[str]:
    """Compute capabilities an engine runs on ("8.6,8.9,12.0" for portable TensorRT-RTX engines)."""
    return [c.strip() for c in sidecar.compute_capability.split(",") if c.strip()]


def compatibility_problems(sidecar: EngineSidecar, flavor: str, version: str, gpu_name: str, cc: str) -> list[str]:
    """Reasons an engine will not run here (empty: it will). GPU name differences alone are
    fine: engines depend on the compute capability and the TensorRT version."""
    problems = []
    if sidecar.tensorrt_flavor != flavor:
        problems.append(f"built with {sidecar.tensorrt_flavor}, this machine has {flavor}")
    elif parse_version(sidecar.tensorrt_version) != parse_version(version):
        problems.append(f"built with {flavor} {sidecar.tensorrt_version}, this machine has {version}")
    if cc not in engine_targets(sidecar):
        problems.append(f"built for compute capability {sidecar.compute_capability} ({sidecar.gpu_name}), "
                        f"this GPU is {cc} ({gpu_name})")  # fmt: skip
        if sidecar.tensorrt_flavor == "tensorrt_rtx" and cc not in RTX_PORTABLE_CC:
            problems.append(RTX_HINT)
    return problems


def trtexec_command(onnx: str, engine: str, profile: ShapeProfile, plan: BuildPlan, workspace_mib: int,
                    timing_cache: str | None = None, dla_core: int | None = None, version: str = "10",
                    flavor: str = "tensorrt") -> str:  # fmt: skip
    """The trtexec command line for ``version`` (TensorRT-RTX's tool is ``tensorrt_rtx``, same flags)."""
    def shape(s: tuple[int, ...]) -> str:
        return f"{INPUT_NAME}:" + "x".join(map(str, s))

    old = flavor == "tensorrt" and parse_version(version)[:2] < (8, 4)  # --memPoolSize came with 8.4
    args = ["tensorrt_rtx" if flavor == "tensorrt_rtx" else "trtexec", f"--onnx={onnx}", f"--saveEngine={engine}",
            f"--minShapes={shape(profile.min)}", f"--optShapes={shape(profile.opt)}",
            f"--maxShapes={shape(profile.max)}",
            f"--workspace={workspace_mib}" if old else f"--memPoolSize=workspace:{workspace_mib}M"]  # fmt: skip
    if plan.strongly_typed and flavor == "tensorrt":  # TensorRT-RTX is strongly typed without asking
        args.append("--stronglyTyped")
    args += [f"--{f.lower()}" for f in plan.builder_flags]
    if "TF32" in plan.cleared_flags and flavor == "tensorrt":
        args.append("--noTF32")
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    if dla_core is not None:
        args += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    return shlex.join(args)
