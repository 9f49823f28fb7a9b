"""The models and the clip bundled in the package (cyclegan_edge/assets), and a model named by a bundled one's
name: what the runtime, translate and the benchmarks resolve --model with."""

from __future__ import annotations

from pathlib import Path

from cyclegan_edge import ASSETS_DIR as ASSETS
from cyclegan_edge.errors import importable
from cyclegan_edge.runtime.backends import BackendOptions, backend_for, openvino_importable

# The bundled models by demo name: ASSETS/<stem>.onnx, and <stem>.int8.onnx for the CPU where bundled (export
# --target cpu: 1.3-1.5x OpenVINO f32 at about 41 dB PSNR, README "CPU backends"). A bundled model's stem
# also works as --model.
DEMO_MODELS = {"monet": "photo2monet"}
DEFAULT_DEMO = "monet"
DEMO_CLIP = "butterfly.mp4"  # CC0, 4 s of real summer footage with its sound (scripts/make_demo_clip.py)


def bundled_names() -> list[str]:
    return sorted(p.stem for p in ASSETS.glob("*.onnx") if not p.stem.endswith(".int8"))


def default_model(options: BackendOptions | None = None, stem: str = DEMO_MODELS[DEFAULT_DEMO]) -> Path:
    """A bundled model (the default demo's unless ``stem`` says); its CPU INT8 version where OpenVINO runs it
    (ONNX Runtime runs INT8 slower than FP32)."""
    int8 = Path(str(ASSETS / f"{stem}.int8.onnx"))
    fp32 = Path(str(ASSETS / f"{stem}.onnx"))
    if options is not None and int8.is_file() and backend_for(fp32, options) == "openvino" and openvino_importable():
        return int8
    return fp32


def resolve_model(model: str, options: BackendOptions) -> str | Path:
    """A model file as given, or a bundled model's name (no such file here) as its file."""
    is_name = not Path(model).exists() and model in bundled_names()
    return default_model(options, model) if is_name else model


def bundled_source_model(model: str) -> str:
    """A bundled model's name as the file its variants are made from (its checkpoint where bundled and torch is
    here, else its FP32 ONNX: an edge install benches that): what bench measures; anything else as given."""
    if Path(model).exists() or model not in bundled_names():
        return model
    checkpoint = ASSETS / f"{model}.pth"
    return str(checkpoint if checkpoint.is_file() and importable("torch") else ASSETS / f"{model}.onnx")
