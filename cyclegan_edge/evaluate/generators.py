"""Opening the generators under evaluation and running them over a list of frames.

A ``.pth``/``.pt`` (published, our format, or a training state holding both directions) loads through
``models.load_generator`` on the CPU, which also gives its MACs; anything else (ONNX in FP32/FP16/INT8,
OpenVINO IR, TensorRT engines) through the runtime's ``open_backend``, so a converted model is judged exactly as
it runs. With ``--backend auto`` that is the runtime's own choice on this CPU (``evaluation_options``): an .onnx
runs on OpenVINO on x86-64 when it is installed, as ``python -m cyclegan_edge.runtime`` runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.atomic import sha256_file
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.model_files import CHECKPOINT_EXTENSIONS
from cyclegan_edge.models import count_macs
from cyclegan_edge.models.checkpoint import TRAIN_STATE_FORMAT, read_checkpoint
from cyclegan_edge.onnx_facts import read_onnx_facts
from cyclegan_edge.runtime.backends import (Backend, BackendOptions, NonFiniteOutput, TorchBackend, check_finite,
                                             open_backend, openvino_importable, prefers_openvino)  # fmt: skip
from cyclegan_edge.trt.plan import EngineCompatError, EngineSidecar, sidecar_path

OTHER = {"A->B": "B->A", "B->A": "A->B"}


@dataclass
class Generator:
    path: Path
    direction: str
    backend: Backend
    info: dict[str, Any] = field(default_factory=dict)

    def translate(self, frames: Sequence[np.ndarray], batch: int = 8) -> list[np.ndarray]:
        """Same-sized BGR uint8 frames -> translated BGR uint8 frames (8-bit, as an application sees them)."""
        out: list[np.ndarray] = []
        for i in range(0, len(frames), batch):
            chunk = frames[i : i + batch]
            try:  # NaN/Inf would become black pixels that score as a perfect "other domain" without a word
                result = check_finite(self.backend.infer(frames_to_tensor(chunk)))
            except NonFiniteOutput as e:
                raise NonFiniteOutput(f"{self.path}: {e}") from None
            out += tensor_to_frames(result, chunk[0].shape[:2])
        return out


def evaluation_options(backend: str, provider: str, threads: int) -> BackendOptions:
    """Backend options on the CPU. ``backend`` auto with ``provider`` cpu (the defaults) takes the runtime's auto
    choice for this CPU: where the runtime would run an .onnx on OpenVINO, the provider becomes auto (ONNX
    Runtime has no GPU provider then), so ``open_backend`` picks OpenVINO and falls back to ONNX Runtime on
    the CPU as the runtime does. A forced backend, or another provider, is taken as given."""
    options = BackendOptions(device="cpu", provider=provider, threads=threads, backend=backend)
    if (backend == "auto" and provider == "cpu" and openvino_importable()
            and prefers_openvino(dataclasses.replace(options, provider="auto"))):  # fmt: skip
        return dataclasses.replace(options, provider="auto")
    return options


def is_training_state(path: Path) -> bool:
    if path.suffix.lower() not in CHECKPOINT_EXTENSIONS:
        return False
    obj = read_checkpoint(path)
    return isinstance(obj, dict) and obj.get("format") == TRAIN_STATE_FORMAT


def model_precision(path: Path) -> str | None:
    """What the file computes in (fp32, fp16, int8): an ONNX's graph, an engine's sidecar; None where unknown."""
    if path.suffix.lower() == ".onnx":
        return read_onnx_facts(path).precision
    if sidecar_path(path).is_file():
        try:
            return EngineSidecar.read(sidecar_path(path)).precision
        except EngineCompatError:
            return None
    return None


def open_generator(path: str | Path, direction: str, side: int, options: BackendOptions,
                   reverse: bool = False) -> Generator:  # fmt: skip
    """``direction`` picks the generator inside a training state (other files hold one and ignore it);
    ``options`` apply to files that are not checkpoints; ``reverse``: it is --reverse's (its direction follows)."""
    p = Path(path)
    info: dict[str, Any] = {"path": str(p), "file_bytes": p.stat().st_size if p.is_file() else None}
    if p.suffix.lower() in CHECKPOINT_EXTENSIONS:
        gen = TorchBackend(p, dataclasses.replace(options, device="cpu", fp16=False, cuda_graphs=False), direction)
        macs = count_macs(gen.loaded.model, side, side)
        info.update(architecture=gen.loaded.config.name, upsample=gen.loaded.config.upsample, sha256=gen.loaded.sha256,
                    params=macs.params, macs=macs.macs, precision="fp32")  # fmt: skip
        backend: Backend = gen
        held = gen.loaded.meta.get("direction")
    else:
        backend = open_backend(p, options)
        meta = getattr(backend, "metadata", {})
        info.update(architecture=meta.get("architecture"), upsample=None, sha256=sha256_file(p), params=None, macs=None,
                    precision=model_precision(p))  # fmt: skip
        held = None  # an ONNX's direction key is export's guess (A->B) for a checkpoint that named none
    info["backend"] = backend.name
    if held in OTHER and held != direction:  # horses into a zebra->horse model: every figure would be off, silently
        backend.close()
        fix = (f"--reverse takes the {direction} generator (the model's inverse)" if reverse else
               f"give --direction '{held}' for it (or the {direction} generator)")  # fmt: skip
        article = "an" if held.startswith("A") else "a"
        raise DirectionMismatch(f"{p}: {article} {held} generator (its metadata says so), evaluated as {direction}: "
                                f"{fix}")  # fmt: skip
    return Generator(path=p, direction=direction, backend=backend, info=info)


class DirectionMismatch(ValueError):
    """A checkpoint whose metadata names the other direction than the one asked for (exit 1, one line)."""
