"""Import TensorRT (or TensorRT-RTX) with one clear line when neither is installed."""

from __future__ import annotations

from types import ModuleType
from typing import Any

TRT_HINT = (
    "TensorRT is not importable: on Jetson use JetPack's python3-libnvinfer (venv with "
    "--system-site-packages); on a desktop `pip install 'cyclegan-edge[trt]'` (NVIDIA's tensorrt "
    "wheels) or TensorRT-RTX (tensorrt-rtx wheels); or run the .onnx with ONNX Runtime instead"
)


class TensorRTUnavailable(RuntimeError):
    pass


def no_gpu_here() -> str:
    """What to add to an install hint on a Linux machine with no NVIDIA GPU device (a desktop driver's
    /dev/nvidiactl, a Jetson's nvgpu nodes or L4T release file, WSL2's /dev/dxg): engines run only on a GPU, so
    the pip line alone cannot help there."""
    import os
    import sys

    signs = ("/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu", "/etc/nv_tegra_release", "/dev/dxg")  # dxg: WSL2
    if sys.platform == "darwin" or (sys.platform.startswith("linux") and not any(os.path.exists(p) for p in signs)):
        return "; this machine has no NVIDIA GPU driver loaded, and engines run only on a GPU: run the .onnx here"
    return ""


def import_cudart(flavor: str = "tensorrt") -> ModuleType:
    """cuda-python's runtime API: ``cuda.bindings.runtime`` (cuda-python 12.6+) or ``cuda.cudart``
    (older releases, e.g. 11.4 for JetPack 5's CUDA 11.4); the same functions either way. ``flavor``
    picks the install hint: TensorRT-RTX needs cuda-python 13 ([trt-rtx])."""
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # type: ignore[attr-defined]

        return cudart  # type: ignore[no-any-return]
    except ImportError:
        if flavor == "tensorrt_rtx":
            raise TensorRTUnavailable("cuda-python is needed for TensorRT-RTX engines: "
                                      f"pip install 'cyclegan-edge[trt-rtx]'{no_gpu_here()}") from None  # fmt: skip
        raise TensorRTUnavailable("cuda-python is needed for TensorRT engines: pip install 'cyclegan-edge[trt]' "
                                  f"(on JetPack 5: pip install cuda-python==11.8.*){no_gpu_here()}") from None


def import_tensorrt() -> tuple[ModuleType, str]:
    """(module, flavor) with flavor "tensorrt" or "tensorrt_rtx"."""
    try:
        import tensorrt as trt

        # A stubs-only install leaves an empty namespace package: check for the real thing.
        if hasattr(trt, "Builder"):
            return trt, "tensorrt"
    except ImportError:
        pass
    for name in ("tensorrt_rtx", "tensorrt_rtx_bindings"):
        try:
            mod = __import__(name)
            if hasattr(mod, "Builder"):
                return mod, "tensorrt_rtx"
        except ImportError:
            continue
    raise TensorRTUnavailable(TRT_HINT)


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "M.m") through cuda-python, else PyTorch."""
    try:
        cudart = import_cudart()
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
            return name.rstrip("\x00"), f"{prop.major}.{prop.minor}"
    except (TensorRTUnavailable, RuntimeError):  # no cuda-python, or no driver to load
        pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(device)
            return torch.cuda.get_device_name(device), f"{major}.{minor}"
    except ImportError:
        pass
    raise TensorRTUnavailable("no CUDA GPU visible (cuda-python or torch with CUDA is needed to query it)")


def recording_logger(trt: ModuleType) -> tuple[Any, list[str]]:
    """A TensorRT logger that keeps warnings and errors (one line each) for error messages, instead of
    printing them: (logger, messages)."""
    messages: list[str] = []

    class Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if severity <= trt.ILogger.Severity.WARNING:
                messages.append(" ".join(msg.split()))

    return Logger(), messages
