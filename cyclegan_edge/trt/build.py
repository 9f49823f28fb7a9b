"""ONNX -> TensorRT engine (.plan) with the TensorRT Python API, and its sidecar JSON.

Works, by code path (see cyclegan_edge.trt.plan.plan_build), on TensorRT 8.5, 8.6 and 10.x
(weakly typed: precision flags) and on TensorRT 11.x and TensorRT-RTX (strongly typed: the
precision comes from an FP16 or Q/DQ INT8 ONNX). TensorRT needs the target GPU to build;
TensorRT-RTX builds portable engines on any machine, a CPU-only one included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cyclegan_edge import __version__
from cyclegan_edge.atomic import atomic_path, sha256_file
from cyclegan_edge.errors import holding_ctrl_c
from cyclegan_edge.model_files import BASE_MULTIPLE, metadata_size_multiple
from cyclegan_edge.onnx_facts import read_onnx_facts
from cyclegan_edge.trt.loader import TensorRTUnavailable, gpu_identity, import_tensorrt, recording_logger
from cyclegan_edge.trt.plan import (
    INPUT_NAME,
    MIN_TRTEXEC,
    RTX_PORTABLE_CC,
    EngineSidecar,
    ShapeProfile,
    make_profile,
    plan_build,
    sidecar_path,
    trtexec_command,
)

if TYPE_CHECKING:  # the tensorrt-stubs package: TensorRT objects below are checked against it
    import tensorrt


class EngineBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class EngineOptions:
    precision: str = "fp32"
    min_shape: str = "1x3x256x256"
    opt_shape: str = "1x3x256x256"
    max_shape: str = "1x3x1088x1920"
    workspace_mib: int = 1024
    timing_cache: str | None = None  # file; created if missing, updated after each build
    dla_core: int | None = None


def onnx_facts(onnx_path: str | os.PathLike[str]) -> tuple[str, int]:
    """What a build reads from the ONNX: its precision (see cyclegan_edge.onnx_facts) and the H/W multiple the
    model needs (our export's metadata; 4 when absent)."""
    try:
        import onnx  # noqa: F401  (the builder reads the graph, not guesses from bytes)
    except ImportError:
        raise EngineBuildError("building an engine from an ONNX needs the onnx package: "
                               "pip install 'cyclegan-edge[engine]'") from None  # fmt: skip
    try:
        facts = read_onnx_facts(onnx_path)
    except (ValueError, OSError) as e:
        raise EngineBuildError(str(e)) from None
    if facts.metadata.get("int8_target") == "cpu":  # TensorRT's parser fails on it with an assertion about DLA
        raise EngineBuildError(f"{onnx_path}: INT8 quantized for CPUs (--target cpu: uint8 activations with zero "
                               "points), which TensorRT does not take; export the INT8 model for TensorRT with "
                               "--precision int8 --target tensorrt (the default)")  # fmt: skip
    return facts.precision, metadata_size_multiple(facts.metadata)


def onnx_precision(onnx_path: str | os.PathLike[str]) -> str:
    return onnx_facts(onnx_path)[0]


def equivalent_trtexec(onnx_path: str, engine_path: str, opts: EngineOptions, flavor: str = "tensorrt",
                       version: str = "10", onnx_prec: str | None = None) -> str:  # fmt: skip
    """The trtexec command for ``flavor`` ``version``; ``onnx_prec`` (what the ONNX carries) and the size
    multiple the profile must respect are read from the file when ``onnx_prec`` is not given."""
    # given onnx_prec, the ONNX need not exist yet (export --print-trtexec without the export): nothing is read
    onnx_prec, multiple = (onnx_prec, BASE_MULTIPLE) if onnx_prec else onnx_facts(onnx_path)
    plan = plan_build(flavor, version, onnx_prec, opts.precision, minimum=MIN_TRTEXEC)
    profile = make_profile(opts.min_shape, opts.opt_shape, opts.max_shape, multiple=multiple)
    return trtexec_command(onnx_path, engine_path, profile, plan, opts.workspace_mib, opts.timing_cache, opts.dla_core,
                           version=version, flavor=flavor)  # fmt: skip


def build_engine(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str],
                 opts: EngineOptions | None = None) -> Path:  # fmt: skip
    """Build, write ``engine_path`` and ``engine_path.json`` atomically; return the engine path."""
    opts = opts or EngineOptions()
    onnx_prec, multiple = onnx_facts(onnx_path)
    profile = make_profile(opts.min_shape, opts.opt_shape, opts.max_shape, multiple=multiple)  # before TensorRT
    trt, flavor = import_tensorrt()
    version = str(getattr(trt, "__version__", "0"))
    plan = plan_build(flavor, version, onnx_prec, opts.precision)

    gpu_name, cc = build_target(flavor)  # all the sidecar needs, before the build: the pair is written together
    onnx_sha256 = sha256_file(onnx_path)
    # TensorRT runs Python only in its logger and progress callbacks, and catches what they raise: a Ctrl-C there
    # was printed and the build went on. So Ctrl-C only sets a flag meanwhile, the progress monitor (TensorRT 8.6+)
    # cancels the build at its next step (without one it finishes and is thrown away), KeyboardInterrupt after.
    with holding_ctrl_c(mask=False) as stop:
        logger, messages = recording_logger(trt)
        builder: tensorrt.Builder = trt.Builder(logger)
        flags = 0
        for name in plan.network_flags:
            flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
        network: tensorrt.INetworkDefinition = builder.create_network(flags)
        parser: tensorrt.OnnxParser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors))
            raise EngineBuildError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
        config: tensorrt.IBuilderConfig = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
        for name in plan.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, name))
        for name in plan.cleared_flags:
            config.clear_flag(getattr(trt.BuilderFlag, name))
        if opts.dla_core is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = opts.dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        set_profile(trt, builder, network, config, profile)
        cache = load_timing_cache(config, opts.timing_cache)
        if hasattr(trt, "IProgressMonitor"):
            config.progress_monitor = cancelling_monitor(trt, stop)
        serialized: tensorrt.IHostMemory | None = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build {onnx_path}: " + " | ".join(messages[-5:]))
    engine, engine_path = bytes(serialized), Path(engine_path)
    sidecar = EngineSidecar(
        tensorrt_flavor=flavor, tensorrt_version=version, gpu_name=gpu_name, compute_capability=cc,
        precision=opts.precision, profile=profile.as_dict(), onnx_sha256=onnx_sha256,
        strongly_typed=plan.strongly_typed, dla_core=opts.dla_core, toolkit_version=__version__,
        size_multiple=multiple, onnx_file=str(Path(onnx_path).resolve()), engine_bytes=len(engine),
    )  # fmt: skip
    with holding_ctrl_c():  # an engine and a sidecar that describes another one would be refused, or misread
        with atomic_path(engine_path) as tmp:
            tmp.write_bytes(engine)
        sidecar.write(sidecar_path(engine_path))
    if cache is not None and opts.timing_cache:
        with atomic_path(opts.timing_cache) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    return engine_path


def cancelling_monitor(trt: Any, stop: list[int]) -> Any:
    """A TensorRT progress monitor that cancels the build once ``stop`` holds something (a Ctrl-C)."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            return not stop

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


def build_target(flavor: str) -> tuple[str, str]:
    """(GPU name, compute capabilities) an engine is built for. TensorRT builds for the GPU it runs
    on; TensorRT-RTX builds portable engines, with or without a GPU in the machine."""
    if flavor != "tensorrt_rtx":
        return gpu_identity()
    try:
        name = gpu_identity()[0]
    except TensorRTUnavailable:
        name = "no GPU: portable TensorRT-RTX engine"
    return name, ",".join(RTX_PORTABLE_CC)


def set_profile(trt: Any, builder: tensorrt.Builder, network: tensorrt.INetworkDefinition,
                config: tensorrt.IBuilderConfig, profile: ShapeProfile) -> None:  # fmt: skip
    name = network.get_input(0).name if network.num_inputs else INPUT_NAME
    p: tensorrt.IOptimizationProfile = builder.create_optimization_profile()
    p.set_shape(name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(p)


def load_timing_cache(config: tensorrt.IBuilderConfig, path: str | None) -> tensorrt.ITimingCache | None:
    """A persistent timing cache (TensorRT-RTX has none: it keeps a runtime cache instead)."""
    if not path or not hasattr(config, "create_timing_cache"):
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache: tensorrt.ITimingCache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache
