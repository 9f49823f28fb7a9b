"""TensorRT backend: named I/O tensors, execute_async_v3, one CUDA stream, pinned host buffers.

Kept thin on purpose (it cannot run without a GPU and TensorRT); what it decides is in
cyclegan_edge.trt.plan and tested there. Buffers go through cuda-python's runtime API.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cyclegan_edge.imaging.frames import run_padded
from cyclegan_edge.trt.loader import (TensorRTUnavailable, gpu_identity, import_cudart, import_tensorrt, no_gpu_here,
                                     recording_logger)  # fmt: skip
from cyclegan_edge.trt.plan import (EngineCompatError, EngineSidecar, compatibility_problems, outside_profile,
                                    sidecar_path, stale_source)  # fmt: skip

if TYPE_CHECKING:  # checked against the tensorrt-stubs package
    import tensorrt

log = logging.getLogger(__name__)
SKIP_CHECK_ENV = "CYCLEGAN_EDGE_SKIP_ENGINE_CHECK"  # run an engine whose sidecar says it does not fit


def _check(result: Any) -> Any:
    """cuda-python returns (error, *values); raise on error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {int(err)} ({err})")
    return values[0] if len(values) == 1 else values


class DeviceBuffer:
    def __init__(self, cudart: Any, nbytes: int) -> None:
        self.cudart, self.nbytes = cudart, nbytes
        self.ptr = int(_check(cudart.cudaMalloc(nbytes)))

    def free(self) -> None:
        if self.ptr:
            _check(self.cudart.cudaFree(self.ptr))
            self.ptr = 0


class PinnedBuffer:
    def __init__(self, cudart: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.cudart = cudart
        nbytes = int(np.prod(shape)) * dtype.itemsize
        self.ptr = int(_check(cudart.cudaMallocHost(nbytes)))
        self.array = np.ctypeslib.as_array(ctypes.cast(self.ptr, ctypes.POINTER(ctypes.c_byte)), (nbytes,)).view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            _check(self.cudart.cudaFreeHost(self.ptr))
            self.ptr = 0


class TensorRTBackend:
    def __init__(self, path: Path) -> None:
        try:
            trt, flavor = import_tensorrt()
        except TensorRTUnavailable:
            no_gpu = no_gpu_here()
            if not no_gpu:
                raise
            raise TensorRTUnavailable(f"TensorRT is not importable{no_gpu}") from None  # installing it would not help
        sidecar = EngineSidecar.read(sidecar_path(path))
        if sidecar.engine_bytes and sidecar.engine_bytes != path.stat().st_size:
            raise EngineCompatError(f"{path}: its sidecar {sidecar_path(path).name} describes another engine "
                                    f"({sidecar.engine_bytes} bytes, this one has {path.stat().st_size}): rebuild it")  # fmt: skip
        stale = stale_source(path, sidecar)
        if stale:
            log.warning("%s", stale)
        self.cudart = cudart = import_cudart(flavor)
        version = str(getattr(trt, "__version__", "0"))
        gpu_name, cc = gpu_identity()
        problems = compatibility_problems(sidecar, flavor, version, gpu_name, cc)
        if problems and os.environ.get(SKIP_CHECK_ENV) != "1":
            raise EngineCompatError(f"{path}: engine does not fit this machine: {'; '.join(problems)}; rebuild it here "
                                    f"(or set {SKIP_CHECK_ENV}=1 to try anyway)")  # fmt: skip
        if problems:
            log.warning("%s: %s; trying anyway (%s=1)", path, "; ".join(problems), SKIP_CHECK_ENV)
        self.logger, messages = recording_logger(trt)
        runtime: tensorrt.Runtime = trt.Runtime(self.logger)
        engine: tensorrt.ICudaEngine | None = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            said = f": {messages[-1]}" if messages else ""
            raise EngineCompatError(f"{path}: TensorRT could not deserialize this engine{said}")
        self.runtime, self.engine = runtime, engine
        context: tensorrt.IExecutionContext | None = engine.create_execution_context()
        if context is None:
            raise EngineCompatError(f"{path}: could not create an execution context")
        self.context = context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineCompatError(f"{path}: not a generator engine (inputs {inputs}, outputs {outputs})")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        self.stream = _check(cudart.cudaStreamCreate())
        self.shape: tuple[int, ...] = ()
        self.buffers: list[Any] = []
        self.events: list[Any] = []
        self.name = f"{flavor}:{version}:{sidecar.precision}"
        self.size_multiple, self.profile = sidecar.size_multiple, sidecar.profile

    def _allocate(self, shape: tuple[int, ...]) -> None:
        refused = outside_profile(self.profile, shape)  # before anything is freed: the next input may fit again
        if refused:
            raise ValueError(refused)
        for b in self.buffers:
            b.free()
        self.buffers, self.shape = [], ()  # a failure below leaves nothing that points at freed memory
        if not self.context.set_input_shape(self.input_name, shape):
            raise ValueError(f"input {shape} refused by TensorRT (profile {self.profile})")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        self.h_in = PinnedBuffer(self.cudart, shape, self.input_dtype)
        self.buffers.append(self.h_in)
        self.h_out = PinnedBuffer(self.cudart, out_shape, self.output_dtype)
        self.buffers.append(self.h_out)
        self.d_in = DeviceBuffer(self.cudart, self.h_in.array.nbytes)
        self.buffers.append(self.d_in)
        self.d_out = DeviceBuffer(self.cudart, self.h_out.array.nbytes)
        self.buffers.append(self.d_out)
        self.context.set_tensor_address(self.input_name, self.d_in.ptr)
        self.context.set_tensor_address(self.output_name, self.d_out.ptr)
        self.shape = shape

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return run_padded(lambda b: self._run(b, None), batch, self.size_multiple)

    def infer_timed(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """infer() with CUDA events around host->device, compute and device->host (ms), as TorchBackend."""
        if not self.events:
            self.events = [_check(self.cudart.cudaEventCreate()) for _ in range(4)]
        out = run_padded(lambda b: self._run(b, self.events), batch, self.size_multiple)
        ms = [float(_check(self.cudart.cudaEventElapsedTime(a, b))) for a, b in zip(self.events, self.events[1:])]
        return out, {"h2d": ms[0], "compute": ms[1], "d2h": ms[2]}

    def _run(self, batch: np.ndarray, events: list[Any] | None) -> np.ndarray:
        if batch.shape != self.shape:
            self._allocate(tuple(batch.shape))
        cudart, kind = self.cudart, self.cudart.cudaMemcpyKind

        def mark(i: int) -> None:
            if events is not None:
                _check(cudart.cudaEventRecord(events[i], self.stream))

        np.copyto(self.h_in.array, batch, casting="same_kind")
        mark(0)
        _check(cudart.cudaMemcpyAsync(self.d_in.ptr, self.h_in.ptr, self.h_in.array.nbytes,
                                      kind.cudaMemcpyHostToDevice, self.stream))  # fmt: skip
        mark(1)
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execution failed")
        mark(2)
        _check(cudart.cudaMemcpyAsync(self.h_out.ptr, self.d_out.ptr, self.h_out.array.nbytes,
                                      kind.cudaMemcpyDeviceToHost, self.stream))  # fmt: skip
        mark(3)
        _check(cudart.cudaStreamSynchronize(self.stream))
        return self.h_out.array.astype(np.float32, copy=True)

    def close(self) -> None:
        for b in self.buffers:
            b.free()
        self.buffers = []
        for ev in self.events:
            _check(self.cudart.cudaEventDestroy(ev))
        self.events = []
        if self.stream is not None:
            _check(self.cudart.cudaStreamDestroy(self.stream))
            self.stream = None
