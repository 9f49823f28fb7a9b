"""What machine a report was measured on: CPU, GPU, library versions, Jetson power state."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any


def _run(cmd: list[str], timeout: float = 5) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd",
                "sve")  # fmt: skip


def cpu_flags() -> list[str]:
    """The vector extensions that decide which kernels (and which precision) libraries pick."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    lines = re.findall(r"^(?:flags|Features)\s*:(.*)$", text, flags=re.M)  # x86 / Arm
    flags = set(lines[0].split()) if lines else set()
    return [f for f in VECTOR_FLAGS if f in flags]


# report name -> (pip distributions that provide it, module to import when none is pip-installed: JetPack's apt
# packages carry no pip metadata)
LIBRARIES = {
    "onnxruntime": (("onnxruntime", "onnxruntime-gpu"), "onnxruntime"), "openvino": (("openvino",), "openvino"),
    "torch": (("torch",), "torch"), "opencv": (("opencv-python-headless", "opencv-python"), "cv2"),
    "av": (("av",), "av"), "numpy": (("numpy",), "numpy"), "onnx": (("onnx",), "onnx"),
    "tensorrt": (("tensorrt", "tensorrt-cu12", "tensorrt-cu13"), "tensorrt"),
    "tensorrt_rtx": (("tensorrt-rtx-cu13-bindings",), "tensorrt_rtx"),
}  # fmt: skip


def library_versions() -> dict[str, str | None]:
    """Versions from pip's metadata where it exists (importing torch only to read its version costs seconds)."""
    from importlib import import_module, metadata

    versions: dict[str, str | None] = {}
    for name, (dists, module) in LIBRARIES.items():
        versions[name] = None
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        if versions[name] is None and name != "tensorrt_rtx":
            try:
                versions[name] = str(import_module(module).__version__)
            except Exception:
                pass
    return versions


def loaded_versions() -> dict[str, str | None]:
    """Versions of the libraries this process actually used (imported), without importing more."""
    import sys

    return {name: str(getattr(sys.modules[module], "__version__", "?"))
            for name, (_, module) in LIBRARIES.items() if module in sys.modules}  # fmt: skip


def machine_line() -> str:
    """One line for a report that holds a speed figure: the CPU and its vector flags, cores, Python."""
    flags = " ".join(cpu_flags())
    return f"{cpu_model()}{f' ({flags})' if flags else ''}, {os.cpu_count()} cores, Python {platform.python_version()}"


def visible_gpu() -> list[str]:
    """nvidia-smi's -i for the GPU a CUDA process here uses first (CUDA_VISIBLE_DEVICES' first entry: an index or a
    UUID), or [] for nvidia-smi's first GPU."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return ["-i", first] if first and not first.startswith("-") else []


def gpu_info() -> dict[str, Any] | None:
    """The GPU the process runs on, its driver, and the newest CUDA the driver supports ("driver_cuda"; the CUDA
    that ran is a library's, named with it)."""
    if shutil.which("nvidia-smi"):
        out = _run(["nvidia-smi", *visible_gpu(), "--query-gpu=name,driver_version,memory.total",
                    "--format=csv,noheader"])  # fmt: skip
        if out:
            name, driver, mem = (x.strip() for x in out.splitlines()[0].split(","))
            cuda = re.search(r"CUDA Version: ([\d.]+)", _run(["nvidia-smi"]))
            return {"name": name, "driver": driver, "memory": mem, "driver_cuda": cuda.group(1) if cuda else None}
    try:
        import torch

        if torch.cuda.is_available():
            return {"name": torch.cuda.get_device_name(0), "driver": None, "cuda": torch.version.cuda}
    except ImportError:
        pass
    return None


def jetson_info() -> dict[str, Any] | None:
    release = Path("/etc/nv_tegra_release")
    model = Path("/proc/device-tree/model")
    if not release.exists() and not (model.exists() and "jetson" in model.read_text(errors="ignore").lower()):
        return None
    info: dict[str, Any] = {"module": model.read_text(errors="ignore").strip("\x00 \n") if model.exists() else None}
    if release.exists():
        m = re.search(r"R(\d+).*REVISION: ([\d.]+)", release.read_text(errors="ignore"))
        info["l4t"] = f"{m.group(1)}.{m.group(2)}" if m else None
    mode = _run(["nvpmodel", "-q"])
    info["power_mode"] = mode.splitlines()[0].replace("NV Power Mode:", "").strip() if mode else None
    clocks = _run(["jetson_clocks", "--show"])
    # Locked clocks show MinFreq == MaxFreq == CurrentFreq for the CPUs.
    locked = bool(clocks) and all(
        len(set(re.findall(r"(?:MinFreq|MaxFreq|CurrentFreq)=(\d+)", ln))) == 1 for ln in clocks.splitlines() if "cpu" in ln
    )
    info["clocks_locked"] = locked if clocks else None
    return info


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "gpu": gpu_info(),
        "jetson": jetson_info(),
        "versions": library_versions(),
    }
