"""Inference backends behind one tiny interface, chosen by the model file's extension.

    .plan / .engine -> TensorRT        (cyclegan_edge.trt.engine; needs tensorrt + cuda-python)
    .onnx           -> ONNX Runtime    (TensorRT EP, CUDA EP or CPU EP by availability)
    .pt / .pth      -> PyTorch         (CUDA when available, else CPU)

Every backend maps NCHW float32 RGB in [-1, 1] (H, W multiples of 4) to the same layout.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames

log = logging.getLogger(__name__)

ONNX_EXTENSIONS = (".onnx",)
TORCH_EXTENSIONS = (".pt", ".pth")
ENGINE_EXTENSIONS = (".plan", ".engine")


class BackendError(RuntimeError):
    """A model file or backend that cannot be used; the message is one line for the user."""


class Backend(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider"

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendOptions:
    device: str = "auto"  # PyTorch: auto | cpu | cuda[:N]
    provider: str = "auto"  # ONNX Runtime: auto | cpu | cuda | tensorrt | a full provider name
    fp16: bool = False  # PyTorch on CUDA: run in half precision
    cuda_graphs: bool = False  # PyTorch on CUDA: capture one CUDA graph per input shape and replay it
    threads: int = 0  # ONNX Runtime / PyTorch CPU threads; 0 = library default


class TorchBackend:
    def __init__(self, path: Path, options: BackendOptions) -> None:
        try:
            import torch
        except ImportError:
            raise BackendError(f"{path}: PyTorch models need torch: pip install 'cyclegan-edge[train]'") from None
        from cyclegan_edge.models import load_generator

        self._torch = torch
        dev = options.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        if options.threads and self.device.type == "cpu":
            torch.set_num_threads(options.threads)
        self.loaded = load_generator(path, device=self.device)
        self.dtype = torch.float16 if options.fp16 and self.device.type == "cuda" else torch.float32
        self.model = self.loaded.model.to(self.dtype)
        self.forward: Any = self.model
        if self.device.type == "cuda" and options.cuda_graphs:
            self.forward = CudaGraphForward(self.model, self.device, self.dtype)
        self.name = f"pytorch:{self.device}" + (":fp16" if self.dtype == torch.float16 else "")
        self.name += ":graphs" if isinstance(self.forward, CudaGraphForward) else ""
        if self.device.type == "cuda":
            self.infer_timed = self._infer_timed_cuda

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=True)
            return self.forward(x).float().cpu().numpy()

    def _infer_timed_cuda(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """Inference with CUDA events around host->device, compute and device->host (ms)."""
        torch = self._torch
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        with torch.inference_mode():
            ev[0].record()
            x = torch.from_numpy(batch).to(self.device, self.dtype)
            ev[1].record()
            y = self.forward(x).float()
            ev[2].record()
            out = y.cpu()
            ev[3].record()
        torch.cuda.synchronize()
        return out.numpy(), {"h2d": ev[0].elapsed_time(ev[1]), "compute": ev[1].elapsed_time(ev[2]),
                             "d2h": ev[2].elapsed_time(ev[3])}  # fmt: skip

    def close(self) -> None:
        pass


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
                log.warning("CUDA graph capture failed for input %s, running eagerly: %s", shape, str(e).splitlines()[0])
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
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError(f"{path}: ONNX models need onnxruntime: pip install 'cyclegan-edge[runtime]'") from None
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if options.threads:
            so.intra_op_num_threads = options.threads
        providers = choose_ort_providers(options.provider, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as e:
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise BackendError(f"{path}: ONNX Runtime cannot load this model ({msg})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, "3"):
            shapes = [(i.name, i.shape) for i in inputs]
            raise BackendError(f"{path}: not an image generator (inputs {shapes}; expected one Nx3xHxW input)")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.name = f"onnxruntime:{self.session.get_providers()[0]}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: batch.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        pass


def open_backend(path: str | os.PathLike[str], options: BackendOptions | None = None) -> Backend:
    """Open the backend that fits ``path``'s extension."""
    p = Path(path)
    opts = options or BackendOptions()
    if not p.is_file():
        raise BackendError(f"{p}: no such model file")
    ext = p.suffix.lower()
    if ext in ONNX_EXTENSIONS:
        return OnnxRuntimeBackend(p, opts)
    if ext in TORCH_EXTENSIONS:
        from cyclegan_edge.models import CheckpointError

        try:
            return TorchBackend(p, opts)
        except CheckpointError as e:
            raise BackendError(str(e)) from None
    if ext in ENGINE_EXTENSIONS:
        from cyclegan_edge.trt.engine import TensorRTBackend

        return TensorRTBackend(p)
    known = ", ".join(ENGINE_EXTENSIONS + ONNX_EXTENSIONS + TORCH_EXTENSIONS)
    raise BackendError(f"{p}: unknown model extension {ext!r} (expected one of {known})")


def translate_frames(backend: Backend, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Same-sized BGR frames through a backend; outputs have the inputs' size."""
    size = frames[0].shape[:2]
    return tensor_to_frames(backend.infer(frames_to_tensor(frames)), (int(size[0]), int(size[1])))
