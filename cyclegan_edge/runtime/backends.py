"""Inference backends behind one tiny interface, chosen by the model file's extension (``backend="auto"``).

    .plan / .engine -> TensorRT        (cyclegan_edge.trt.engine; needs tensorrt + cuda-python)
    .onnx           -> OpenVINO on x86-64 CPUs when it is installed and ONNX Runtime has no GPU provider
                       (1.4-1.7x ONNX Runtime's CPU speed here, see README "CPU backends"); else
                       ONNX Runtime (TensorRT EP, CUDA EP or CPU EP by availability)
    .xml            -> OpenVINO        (an OpenVINO IR; cyclegan_edge.runtime.openvino_backend)
    .pt / .pth      -> PyTorch         (CUDA when available, else CPU)

``backend`` forces one (onnxruntime | openvino | tensorrt | torch). When auto would take OpenVINO but it
cannot be imported or cannot compile the model, ONNX Runtime runs it and one warning line says why.

Every backend maps NCHW float32 RGB in [-1, 1] (H, W multiples of 4) to the same layout. A model that needs
larger multiples (a U-Net of depth d: 2**d) says so in its checkpoint or in the ONNX metadata key
``size_multiple``; the backend pads to it and crops back, so any input size comes back at its own size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cyclegan_edge.errors import (describe, first_line, import_failure, import_holding_ctrl_c, importable,
                                  not_installed)  # fmt: skip
from cyclegan_edge.imaging.frames import frames_to_tensor, pad_batch, run_padded, tensor_to_frames
from cyclegan_edge.model_files import (
    CHECKPOINT_EXTENSIONS,
    ENGINE_EXTENSIONS,
    ONNX_EXTENSIONS,
    OPENVINO_EXTENSIONS,
    metadata_size_multiple,
)

log = logging.getLogger(__name__)



class BackendError(RuntimeError):
    """A model file or backend that cannot be used; the message is one line for the user."""


class NotAGenerator(BackendError):
    """A model that loads but is not an image generator: no other backend would do better."""


class UnreadableModel(BackendError):
    """A file that does not parse as its kind of model (a truncated or junk .onnx): no other backend would read it."""


class NonFiniteOutput(BackendError):
    pass


def check_finite(out: np.ndarray) -> np.ndarray:
    """``out``, or NonFiniteOutput: NaN/Inf would become black pixels without a word."""
    if not np.isfinite(out).all():
        raise NonFiniteOutput("the model's output holds NaN/Inf values: its weights are probably corrupt "
                              "(NaN/Inf), or half precision overflowed")  # fmt: skip
    return out


def generator_io_problem(inputs: list[list[Any]], outputs: list[list[Any]]) -> str | None:
    """Why a model with these input and output shapes is not an image generator, or None. A dim is an int
    when fixed, anything else (a name, None) when dynamic. A generator has one Nx3xHxW input and one
    Nx3xHxW output whose H and W are dynamic or equal to the input's."""
    def shown(shapes: list[list[Any]]) -> str:
        return ", ".join("x".join(str(d) if isinstance(d, int) else "?" for d in s) or "?" for s in shapes) or "none"

    found = f"found inputs {shown(inputs)} and outputs {shown(outputs)}; expected one Nx3xHxW input and output"
    if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0]) != 4 or len(outputs[0]) != 4:
        return found
    (i, o), fixed = (inputs[0], outputs[0]), lambda d: isinstance(d, int) and d > 0
    if any(fixed(s[1]) and s[1] != 3 for s in (i, o)):
        return found
    if any(fixed(i[a]) and fixed(o[a]) and i[a] != o[a] for a in (2, 3)):
        return f"output size {o[2]}x{o[3]} differs from input size {i[2]}x{i[3]}; an image generator keeps the size"
    return None


def check_generator_io(path: Path, inputs: list[list[Any]], outputs: list[list[Any]]) -> None:
    problem = generator_io_problem(inputs, outputs)
    if problem:
        raise NotAGenerator(f"{path}: not an image generator ({problem})")


class Backend(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider"

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@runtime_checkable
class TimedBackend(Backend, Protocol):
    """A GPU backend that also times its stages with CUDA events: host->device, compute, device->host (ms)."""

    def infer_timed(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, float]]: ...


@runtime_checkable
class AsyncBackend(Backend, Protocol):
    """A backend that starts an inference and returns at once: ``submit(batch)()`` waits for the output.
    ``in_flight`` submissions may be outstanding (the pipeline keeps that many frames in flight)."""

    in_flight: int

    def submit(self, batch: np.ndarray) -> Callable[[], np.ndarray]: ...


@dataclass(frozen=True)
class BackendOptions:
    device: str = "auto"  # PyTorch: auto | cpu | cuda[:N]
    provider: str = "auto"  # ONNX Runtime: auto | cpu | cuda | tensorrt | a full provider name
    fp16: bool = False  # PyTorch on CUDA: run in half precision
    cuda_graphs: bool = False  # PyTorch on CUDA: capture one CUDA graph per input shape and replay it
    threads: int = 0  # ONNX Runtime / OpenVINO / PyTorch CPU threads; 0 = library default
    backend: str = "auto"  # auto (by extension, see above) | onnxruntime | openvino | tensorrt | torch
    precision_hint: str = "f32"  # OpenVINO INFERENCE_PRECISION_HINT: f32 | bf16 | f16 | auto (OpenVINO's choice)
    streams: int = 0  # OpenVINO streams; 0 = one stream, latency first


# The precision hint a conversion (runtime, translate, bench pipeline) runs with unless told: OpenVINO's own choice,
# bf16 where the CPU runs it natively; the library default (BackendOptions) stays f32 for bench, evaluate, export
CONVERSION_PRECISION_HINT = "auto"
# OpenVINO streams for file jobs: the pipeline keeps this many frames in flight (benchmarks/openvino_streams.py)
FILE_STREAMS = 2


def job_options(options: BackendOptions, live: bool) -> BackendOptions:
    """The options a conversion runs with: a file job (not ``live``) runs OpenVINO on FILE_STREAMS streams unless
    ``options.streams`` says (a camera or stream: one, latency first)."""
    return replace(options, streams=options.streams or (0 if live else FILE_STREAMS))


class TorchBackend:
    """A generator checkpoint on PyTorch; ``direction`` picks one from a training state holding both."""

    def __init__(self, path: Path, options: BackendOptions, direction: str = "A->B") -> None:
        import_holding_ctrl_c(("torch",))  # a Ctrl-C while torch loads would be swallowed
        try:
            import torch
        except ImportError:
            raise BackendError(f"{path}: PyTorch models need torch: pip install 'cyclegan-edge[train]' (or run "
                               "an .onnx exported from it)") from None  # fmt: skip
        from cyclegan_edge.models import load_generator

        self._torch = torch
        dev = options.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        if options.threads and self.device.type == "cpu":
            torch.set_num_threads(options.threads)
        self.loaded = load_generator(path, direction=direction, device=self.device)
        self.size_multiple = self.loaded.config.size_multiple
        self.dtype = torch.float16 if options.fp16 and self.device.type == "cuda" else torch.float32
        self.model = self.loaded.model.to(self.dtype)
        self.forward: Any = self.model
        if self.device.type == "cuda" and options.cuda_graphs:
            self.forward = CudaGraphForward(self.model, self.device, self.dtype)
        self.name = f"pytorch:{self.device}" + (":fp16" if self.dtype == torch.float16 else "")
        self.name += ":graphs" if isinstance(self.forward, CudaGraphForward) else ""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return run_padded(self._infer, batch, self.size_multiple)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), self.exact_fp32():
            x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=True)
            return self.forward(x).float().cpu().numpy()

    @contextlib.contextmanager
    def exact_fp32(self) -> Iterator[None]:
        """FP32 on CUDA means FP32: cuDNN's default TF32 convolutions (10-bit mantissa) put an FP32 generator up
        to 0.076 (10 grey levels) from the CPU on an H200; fp16 is the fast precision. Also holds while CUDA
        graphs are captured, which fixes their kernels. Only ``allow_tf32`` is touched, and restored."""
        cudnn: Any = self._torch.backends.cudnn  # allow_tf32 is a module property the stubs do not declare
        if self.device.type != "cuda" or self.dtype != self._torch.float32:
            yield
            return
        before = cudnn.allow_tf32
        cudnn.allow_tf32 = False
        try:
            yield
        finally:
            cudnn.allow_tf32 = before

    def close(self) -> None:
        pass


class TorchCudaBackend(TorchBackend):
    """PyTorch on a CUDA device: a TimedBackend."""

    def infer_timed(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """Inference with CUDA events around host->device, compute and device->host (ms)."""
        torch = self._torch
        h, w = batch.shape[2:]
        batch = pad_batch(batch, self.size_multiple)
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        with torch.inference_mode(), self.exact_fp32():
            ev[0].record()
            x = torch.from_numpy(batch).to(self.device, self.dtype)
            ev[1].record()
            y = self.forward(x).float()[:, :, :h, :w]
            ev[2].record()
            out = y.cpu()
            ev[3].record()
        torch.cuda.synchronize()
        return out.numpy(), {"h2d": ev[0].elapsed_time(ev[1]), "compute": ev[1].elapsed_time(ev[2]),
                             "d2h": ev[2].elapsed_time(ev[3])}  # fmt: skip


class CudaGraphForward:
    """``model(x)`` through CUDA graphs: one graph per input shape, captured on first use and replayed
    after (the launch overhead of ~100 small kernels is paid once). Output tensors are static: they
    are overwritten by the next call, so callers copy them out (``infer`` does, with ``.cpu()``).
    A shape whose capture fails runs eagerly, with one warning."""

    MAX_GRAPHS = 4  # each graph holds its own activation memory

    def __init__(self, model: Any, device: Any, dtype: Any) -> None:
        self.model, self.device, self.dtype = model, device, dtype
        self.graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self.eager_shapes: set[tuple[int, ...]] = set()

    def capture(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        import torch

        static_in = torch.zeros(shape, device=self.device, dtype=self.dtype)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires (cuDNN autotune etc.)
            for _ in range(3):
                self.model(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return graph, static_in, static_out

    def __call__(self, x: Any) -> Any:
        shape = tuple(x.shape)
        if shape in self.eager_shapes:
            return self.model(x)
        entry = self.graphs.get(shape)
        if entry is None:
            if len(self.graphs) >= self.MAX_GRAPHS:
                self.graphs.pop(next(iter(self.graphs)))  # oldest first
            try:
                entry = self.graphs[shape] = self.capture(shape)
            except RuntimeError as e:
                log.warning("CUDA graph capture failed for input %s, running eagerly: %s", shape, first_line(e))
                self.eager_shapes.add(shape)
                return self.model(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out


ORT_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
ORT_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def choose_ort_providers(requested: str, available: list[str]) -> list[str]:
    """The providers to pass to an InferenceSession, best first, always ending in CPU."""
    if requested == "auto":
        chosen = [p for p in ORT_PREFERENCE if p in available]
    else:
        name = ORT_PROVIDER_ALIASES.get(requested.lower(), requested)
        if name not in available:
            raise BackendError(f"ONNX Runtime provider {name} is not available here (available: {', '.join(available)})")
        chosen = [name]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class OnnxRuntimeBackend:
    def __init__(self, path: Path, options: BackendOptions) -> None:
        failure = import_failure("onnxruntime")
        if not_installed(failure, "onnxruntime"):
            raise BackendError(f"{path}: ONNX models need onnxruntime: pip install 'cyclegan-edge[runtime]'")
        if failure is not None:
            raise BackendError(f"{path}: {describe(failure)}")
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if options.threads:
            so.intra_op_num_threads = options.threads
        providers = choose_ort_providers(options.provider, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as e:
            raise BackendError(f"{path}: ONNX Runtime cannot load this model ({first_line(e, 200)})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_generator_io(path, [list(i.shape) for i in inputs], [list(o.shape) for o in outputs])
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.size_multiple = metadata_size_multiple(self.metadata)
        self.name = f"onnxruntime:{self.session.get_providers()[0]}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return run_padded(self._infer, batch, self.size_multiple)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: batch.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        pass


BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt", "torch")
# OpenVINO's INFERENCE_PRECISION_HINT values; auto: none given, OpenVINO's own choice (bf16 on CPUs that run it natively)
OV_PRECISIONS = ("auto", "f32", "bf16", "f16")
PRECISION_HELP = ("OpenVINO's INFERENCE_PRECISION_HINT. auto: OpenVINO's own choice, bf16 on CPUs that run it natively "
                  "(AVX-512-BF16, AMX: 1.7-2x f32's speed, 51-54 dB PSNR against f32), else f32; f32 pins exact "
                  "FP32; the backend's name says what ran")  # fmt: skip
BACKEND_EXTENSIONS = {"onnxruntime": ONNX_EXTENSIONS, "openvino": OPENVINO_EXTENSIONS, "tensorrt": ENGINE_EXTENSIONS,
                      "torch": CHECKPOINT_EXTENSIONS}  # fmt: skip
X86_64 = ("x86_64", "amd64")


def ort_has_gpu_provider() -> bool:
    if not importable("onnxruntime"):
        return False
    import onnxruntime as ort

    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def openvino_importable() -> bool:
    return importable("openvino")


OPENVINO_ONLY_DEVICES = ("gpu", "npu")  # and gpu.1 ...


def prefers_openvino(options: BackendOptions, machine: str | None = None) -> bool:
    """Whether ``auto`` runs an .onnx on OpenVINO: an OpenVINO device asked for (gpu, npu: ONNX Runtime has none
    by those names, and ran on the CPU unsaid), or an x86-64 CPU (where it was measured faster than ONNX Runtime),
    no ONNX Runtime provider or device asked for, and no GPU provider in ONNX Runtime."""
    if options.device.lower().split(".")[0] in OPENVINO_ONLY_DEVICES:
        return True
    machine = (machine or platform.machine()).lower()
    return (machine in X86_64 and options.provider == "auto" and options.device in ("auto", "cpu")
            and not ort_has_gpu_provider())  # fmt: skip


def backend_for(path: Path, options: BackendOptions) -> str:
    """The backend that runs ``path``: the forced one (checked against the extension) or auto's choice."""
    ext = path.suffix.lower()
    if options.backend not in BACKENDS:
        raise BackendError(f"unknown backend {options.backend!r} (expected one of {', '.join(BACKENDS)})")
    if options.backend != "auto":
        if ext not in BACKEND_EXTENSIONS[options.backend]:
            exts = "/".join(BACKEND_EXTENSIONS[options.backend])
            raise BackendError(f"{path}: the {options.backend} backend runs {exts} models, not {ext or 'this file'}")
        return options.backend
    if ext == ".xml":
        return "openvino"
    if ext in ONNX_EXTENSIONS:
        return "openvino" if prefers_openvino(options) else "onnxruntime"
    for name in ("torch", "tensorrt"):
        if ext in BACKEND_EXTENSIONS[name]:
            return name
    known = ", ".join(ENGINE_EXTENSIONS + ONNX_EXTENSIONS + (".xml",) + CHECKPOINT_EXTENSIONS)
    raise BackendError(f"{path}: unknown model extension {ext!r} (expected one of {known})")


def torch_on_cuda(device: str) -> bool:
    """Whether a PyTorch backend asked for ``device`` (auto | cpu | cuda[:N]) runs on CUDA."""
    if device != "auto":
        return device.startswith("cuda")
    import_holding_ctrl_c(("torch",))  # a Ctrl-C while torch loads would be swallowed
    try:
        import torch
    except ImportError:
        return False  # TorchBackend says what to install
    return bool(torch.cuda.is_available())


def open_backend(path: str | os.PathLike[str], options: BackendOptions | None = None) -> Backend:
    """Open the backend that fits ``path``'s extension (or the one ``options.backend`` forces)."""
    p = Path(path)
    opts = options or BackendOptions()
    if not p.is_file():
        raise BackendError(f"{p}: no such model file")
    name = backend_for(p, opts)
    if name == "openvino":
        from cyclegan_edge.runtime.openvino_backend import OpenVinoBackend

        try:
            return OpenVinoBackend(p, opts)
        except (NotAGenerator, UnreadableModel):
            raise
        except BackendError as e:
            if opts.backend != "auto" or p.suffix.lower() not in ONNX_EXTENSIONS:
                raise
            log.warning("%s; running ONNX Runtime instead (--backend onnxruntime silences this)", e)
            name = "onnxruntime"
    if name == "onnxruntime":
        return OnnxRuntimeBackend(p, opts)
    if name == "torch":
        try:
            return (TorchCudaBackend if torch_on_cuda(opts.device) else TorchBackend)(p, opts)
        except ValueError as e:  # models.CheckpointError (not imported here: it needs torch, which may be absent)
            raise BackendError(str(e)) from None
    from cyclegan_edge.trt.engine import TensorRTBackend

    return TensorRTBackend(p)


def translate_frames(backend: Backend, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Same-sized BGR frames through a backend; outputs have the inputs' size."""
    size = frames[0].shape[:2]
    return tensor_to_frames(check_finite(backend.infer(frames_to_tensor(frames))), (int(size[0]), int(size[1])))
