"""OpenVINO backend: an ``.onnx`` or an OpenVINO IR ``.xml`` on the CPU (or a GPU/NPU that OpenVINO finds).

Precision: OpenVINO's CPU plugin runs bf16 unless told otherwise on CPUs with AVX-512-BF16/AMX (about 2x
faster there, about 47 dB PSNR against FP32), and its GPU plugin runs f16. ``precision_hint`` ``auto``
leaves that choice to OpenVINO (the runtime's default for conversions); ``f32`` pins FP32 through
``INFERENCE_PRECISION_HINT`` (the default where figures are compared); bf16/f16 are chosen by name. ``name``
says what the compiled model reports it runs (a CPU without bf16 reports f32 even when bf16 was asked for),
plus ``+int8`` when quantized convolutions run in int8 (a Q/DQ model: OpenVINO fuses the pairs into int8
convolutions).

``submit``/``infer`` share a small pool of infer requests, so a caller can keep frames in flight.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cyclegan_edge.errors import first_line, holding_ctrl_c
from cyclegan_edge.imaging.frames import pad_batch
from cyclegan_edge.model_files import ONNX_EXTENSIONS, SIZE_MULTIPLE_KEY, metadata_size_multiple
from cyclegan_edge.runtime.backends import (
    OV_PRECISIONS,
    BackendError,
    BackendOptions,
    UnreadableModel,
    check_generator_io,
)


def import_openvino() -> Any:
    try:
        with holding_ctrl_c():  # see errors.HELD_IMPORTS
            import openvino
    except (ImportError, OSError) as e:
        raise BackendError(f"openvino is not importable ({first_line(e, 200)}): pip install 'cyclegan-edge[openvino]'") from None
    return openvino


def openvino_device(requested: str, available: list[str]) -> str:
    """Our device names (auto | cpu | gpu[.N] | npu | an OpenVINO name) -> an OpenVINO device present here.

    ``auto`` is the CPU: its precision and speed are what this project measured and documents."""
    name = "CPU" if requested.lower() in ("auto", "cpu") else requested.upper()
    if name not in available and not any(a.startswith(name + ".") for a in available):
        raise BackendError(f"OpenVINO device {name} is not available here (available: {', '.join(available) or 'none'})")
    return name


def compile_config(device: str, precision: str, threads: int, streams: int) -> dict[str, Any]:
    if precision not in OV_PRECISIONS:
        raise BackendError(f"OpenVINO precision must be one of {', '.join(OV_PRECISIONS)} (got {precision!r})")
    config: dict[str, Any] = {} if precision == "auto" else {"INFERENCE_PRECISION_HINT": precision}
    if streams:
        config["NUM_STREAMS"] = streams
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"  # one stream using every thread: the lowest latency per frame
    if threads and device.startswith("CPU"):
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def precision_that_ran(compiled: Any) -> str:
    """The compiled model's floating-point precision, plus ``+int8`` when any convolution runs in int8."""
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        precision = str(hint.get_type_name()) if hasattr(hint, "get_type_name") else str(hint)
    except Exception:  # a plugin without the property
        precision = "unknown"
    int8 = False
    try:
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "layerType" in info and info["layerType"].astype(str) in ("Convolution", "Deconvolution"):
                int8 = int8 or info["runtimePrecision"].astype(str) in ("u8", "i8")
    except Exception:  # plugins other than the CPU's may not expose an execution graph
        pass
    return precision + ("+int8" if int8 else "")


def size_multiple_of(model: Any) -> int:
    """The ONNX metadata's ``size_multiple`` (OpenVINO keeps ONNX metadata under rt_info "framework", also
    in an IR saved from it); 4 when absent."""
    key = ["framework", SIZE_MULTIPLE_KEY]
    try:
        value = model.get_rt_info(key).astype(str) if model.has_rt_info(key) else ""
    except Exception:  # an OpenVINO without rt_info access: the default
        value = ""
    return metadata_size_multiple({SIZE_MULTIPLE_KEY: value} if value else {})


def dims(ports: Any) -> list[list[Any]]:
    """Each port's shape as a list: ints where fixed, None where dynamic (empty for a dynamic rank)."""
    shapes = [p.get_partial_shape() for p in ports]
    return [[d.get_length() if d.is_static else None for d in s] if s.rank.is_static else [] for s in shapes]


def read_model(ov: Any, core: Any, path: Path) -> Any:
    """The model in ``path``; an ONNX file through the ONNX frontend alone (``core.read_model`` also tries the
    TensorFlow one on a file that is no ONNX, which prints parser errors on stderr)."""
    if path.suffix.lower() not in ONNX_EXTENSIONS:
        try:
            return core.read_model(str(path))
        except Exception as e:
            raise BackendError(f"{path}: OpenVINO cannot read this model ({first_line(e, 200)})") from None
    try:
        frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
    except Exception as e:  # an OpenVINO build without its ONNX frontend: ONNX Runtime runs it instead
        raise BackendError(f"{path}: OpenVINO cannot read ONNX here ({first_line(e, 200)})") from None
    try:
        source = frontend.load(str(path))
    except Exception as e:  # its first line names a C++ source file; the last says what is wrong
        reason = [line for line in str(e).splitlines() if line.strip()][-1:] or [type(e).__name__]
        raise UnreadableModel(f"{path}: not a readable ONNX model ({reason[0].strip()[:200]})") from None
    try:
        return frontend.convert(source)
    except Exception as e:
        raise BackendError(f"{path}: OpenVINO cannot read this model ({first_line(e, 200)})") from None


class OpenVinoBackend:
    """NCHW float32 RGB in [-1, 1] -> same, through OpenVINO. Dynamic batch/height/width."""


    def __init__(self, path: Path, options: BackendOptions) -> None:
        ov = import_openvino()
        core = ov.Core()
        self.device = openvino_device(options.device, list(core.available_devices))
        config = compile_config(self.device, options.precision_hint, options.threads, options.streams)
        model = read_model(ov, core, path)
        inputs, outputs = model.inputs, model.outputs
        check_generator_io(path, dims(inputs), dims(outputs))
        shape = inputs[0].get_partial_shape()
        if shape.is_static:  # an IR saved with a fixed size: generators are fully convolutional
            model.reshape({inputs[0].get_any_name(): ov.PartialShape([-1, 3, -1, -1])})
        try:
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as e:
            raise BackendError(f"{path}: OpenVINO cannot compile this model for {self.device} ({first_line(e, 200)})") from None
        self.size_multiple = size_multiple_of(model)
        self.input_type = np.float16 if model.inputs[0].get_element_type() == ov.Type.f16 else np.float32
        # infer requests, i.e. the most frames in flight through submit(): one per stream, at least two so
        # that the next frame is queued while one runs
        self.in_flight = max(2, options.streams)
        self._idle = collections.deque(self.compiled.create_infer_request() for _ in range(self.in_flight))
        self.precision = precision_that_ran(self.compiled)
        self.name = f"openvino:{self.device}:{self.precision}"

    def submit(self, batch: np.ndarray) -> Callable[[], np.ndarray]:
        """Start one inference on an idle request; call the returned function for its output. At most
        ``in_flight`` may be outstanding (the pipeline keeps two frames in flight this way)."""
        if not self._idle:
            raise RuntimeError("OpenVINO: every infer request is busy; collect one result before submitting more")
        request = self._idle.popleft()
        h, w = batch.shape[2:]
        padded = pad_batch(batch, self.size_multiple)  # a U-Net's 2**depth; the batch itself otherwise
        request.start_async({0: padded.astype(self.input_type, copy=False)}, share_inputs=False)

        def result() -> np.ndarray:
            try:
                request.wait()
                # a copy (the request is reused), cropped back to the batch's size
                return np.array(request.get_output_tensor(0).data[:, :, :h, :w], dtype=np.float32)
            finally:
                self._idle.append(request)

        return result

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.submit(batch)()

    def close(self) -> None:
        self._idle.clear()
