"""Checkpoint I/O for generators, in one place.

Reads:
* published CycleGAN / GAN Compression / pix2pix files (a bare state dict: ``latest_net_G_A.pth``,
  ``*_pretrained/latest_net_G.pth``), including pre-0.4 files with stale InstanceNorm
  ``running_mean`` / ``running_var`` / ``num_batches_tracked`` keys (a BatchNorm's are kept);
* state dicts saved from DataParallel/DDP (``module.``) or torch.compile (``_orig_mod.``);
* our own generator format (weights + architecture + metadata) and our training states
  (CycleGAN's holds both generators: pick one with ``direction``; pix2pix's holds one).

Two families, one constructor each: the ResNet generators (generator.py) and the U-Nets (unet.py); the
architecture record says which (``family``, absent in files written before U-Nets: ResNet). The
architecture is always inferred from the keys when the file does not carry it, so a user never repeats
training flags. Everything loads with ``weights_only=True``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Union

import torch

from cyclegan_edge import __version__
from cyclegan_edge.atomic import atomic_path, sha256_file
from cyclegan_edge.models.generator import CHANNEL_SLOTS, GeneratorConfig, ResnetGenerator
from cyclegan_edge.models.unet import MIN_DEPTH, UnetConfig, UnetGenerator

GENERATOR_FORMAT = "cyclegan-edge/generator"
TRAIN_STATE_FORMAT = "cyclegan-edge/train-state"
PIX2PIX_STATE_FORMAT = "cyclegan-edge/pix2pix-state"  # one generator under its direction's key
DISTILL_STATE_FORMAT = "cyclegan-edge/distill-state"  # the A->B student
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
STALE_NORM_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
# In a training state, G_A maps A->B and G_B maps B->A (the reference implementation's names).
DIRECTION_KEYS = {"A->B": "G_A", "B->A": "G_B"}
# Where each kind of training state keeps the generator of each direction.
STATE_GENERATOR_KEYS = {TRAIN_STATE_FORMAT: DIRECTION_KEYS, PIX2PIX_STATE_FORMAT: DIRECTION_KEYS,
                        DISTILL_STATE_FORMAT: {"A->B": "student"}}  # fmt: skip

StateDict = Dict[str, torch.Tensor]  # typing.Dict: also imports on Python 3.8 (JetPack 5)
AnyGeneratorConfig = Union[GeneratorConfig, UnetConfig]
Generator = Union[ResnetGenerator, UnetGenerator]


class CheckpointError(ValueError):
    """A file that cannot be used as a generator; the message is one line for the user."""


@dataclass
class LoadedGenerator:
    model: Generator
    config: AnyGeneratorConfig
    meta: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    sha256: str = ""


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: {'a folder, not a checkpoint file' if p.is_dir() else 'no such file'}")
    if p.suffix.lower() == ".onnx":
        raise CheckpointError(f"{p}: an ONNX model holds no trainable checkpoint: give the generator's .pth")
    with open(p, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save's zip, or a legacy pickle
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint (neither a torch.save zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():  # the unpickler's warnings about a damaged file's "protocol"
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/unsafe files
        if "Unsupported global" in str(e):
            raise CheckpointError(f"{p}: holds Python objects besides tensors (pickled code or classes); they are not "
                                  "loaded, for safety. Only weights are read: save the generator's state_dict "
                                  "(torch.save(model.state_dict(), path))") from None  # fmt: skip
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({load_failure(e)})") from None


def load_failure(e: Exception) -> str:
    """torch.load's reason in a few words: its first sentence, never its advice to load unsafely."""
    text = str(e).strip()
    if "Weights only load failed" in text:  # not a class it refused (see above): bytes that do not parse
        return "damaged: its data does not parse"
    first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(e).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def clean_state_dict(sd: StateDict) -> StateDict:
    """Strip wrapper prefixes and drop stale InstanceNorm statistics."""
    stripped: StateDict = {}
    for key, value in sd.items():
        changed = True
        while changed:
            changed = False
            for prefix in STRIPPED_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        stripped[key] = value
    # Running statistics beside an affine weight are a BatchNorm's (U-Nets); without one they belong to
    # pre-0.4 InstanceNorms, which never used them.
    return {k: v for k, v in stripped.items()
            if k.rsplit(".", 1)[-1] not in STALE_NORM_SUFFIXES or k.rsplit(".", 1)[0] + ".weight" in stripped}  # fmt: skip


def describe_state_dict(sd: StateDict) -> str:
    """A short human description of what a state dict seems to hold (for error messages)."""
    convs = [k for k, v in sd.items() if k.endswith("weight") and v.dim() == 4]
    if convs and all(sd[k].shape[-1] == 4 for k in convs):
        return f"a PatchGAN discriminator ({len(convs)} 4x4 conv layers), not a generator"
    first = ", ".join(list(sd)[:3])
    n = len(sd)
    what = f"{n} tensors that do" if n != 1 else "1 tensor that does"
    return f"{what} not form a ResNet or U-Net generator (first keys: {first})"


_BLOCK_KEY = re.compile(r"^model\.(\d+)\.conv_block\.")


def infer_generator_config(sd: StateDict) -> AnyGeneratorConfig:
    """Architecture from the keys and shapes alone (see generator.py and unet.py for the layouts)."""
    if "model.model.0.weight" in sd:
        return infer_unet_config(sd)
    return infer_resnet_config(sd)


def infer_unet_config(sd: StateDict) -> UnetConfig:
    """Depth = the number of nested blocks: the outermost holds the next at ``model.1``, each middle one at
    ``model.3``; a block's down conv sits at ``model.1`` (``model.0`` in the outermost)."""
    try:
        prefix, depth = "model.model.1", 1
        while f"{prefix}.model.1.weight" in sd:
            depth += 1
            prefix += ".model.3"
        first = sd["model.model.0.weight"]
        output_nc = sd["model.model.3.weight"].shape[1]  # ConvTranspose weight: (in, out, k, k)
        norm = "batch" if "model.model.1.model.2.weight" in sd else "instance"
        if depth < MIN_DEPTH:
            raise KeyError("blocks")
    except (KeyError, IndexError):
        raise CheckpointError(describe_state_dict(sd)) from None
    return UnetConfig(depth=depth, ngf=int(first.shape[0]), norm=norm, input_nc=int(first.shape[1]),
                      output_nc=int(output_nc))  # fmt: skip


def infer_resnet_config(sd: StateDict) -> GeneratorConfig:
    try:
        blocks = sorted({int(m.group(1)) for k in sd if (m := _BLOCK_KEY.match(k))})
        if not blocks or blocks != list(range(10, 10 + len(blocks))):
            raise KeyError("residual blocks")
        n_blocks = len(blocks)
        separable = "model.10.conv_block.1.conv.0.weight" in sd
        up1, up2, last = 10 + n_blocks, 13 + n_blocks, 17 + n_blocks
        first_w = sd["model.1.weight"]
        c0, input_nc = first_w.shape[0], first_w.shape[1]
        c1 = sd["model.4.weight"].shape[0] // 2
        c2 = sd["model.7.weight"].shape[0] // 4
        if f"model.{up1}.1.weight" in sd:
            # resize-conv (Conv weight: (out, in, k, k)); nearest and bilinear have the same keys, so a bare
            # state dict is read as nearest: our own files carry the mode in their architecture record
            upsample = "nearest"
            c6 = sd[f"model.{up1}.1.weight"].shape[0] // 2
            c7 = sd[f"model.{up2}.1.weight"].shape[0]
        else:
            upsample = "convtranspose"
            c6 = sd[f"model.{up1}.weight"].shape[1] // 2  # ConvTranspose weight: (in, out, k, k)
            c7 = sd[f"model.{up2}.weight"].shape[1]
        output_nc = sd[f"model.{last}.weight"].shape[0]
        if separable:
            # inner widths of the first block of each third of the trunk
            thirds = [min(b for b in range(n_blocks) if (3 * b) // n_blocks == t) for t in range(3)]
            c3, c4, c5 = (sd[f"model.{10 + b}.conv_block.1.conv.2.weight"].shape[0] // 4 for b in thirds)
            use_dropout = False
        else:
            c3 = c4 = c5 = c2
            use_dropout = "model.10.conv_block.6.weight" in sd
    except (KeyError, IndexError):
        raise CheckpointError(describe_state_dict(sd)) from None
    channels = (c0, c1, c2, c3, c4, c5, c6, c7)
    assert len(channels) == CHANNEL_SLOTS
    return GeneratorConfig(channels=tuple(int(c) for c in channels), n_blocks=n_blocks, separable=separable,
                           use_dropout=use_dropout, input_nc=int(input_nc), output_nc=int(output_nc),
                           upsample=upsample)  # fmt: skip


def config_from_dict(arch: dict[str, Any]) -> AnyGeneratorConfig:
    """An architecture record of ours (``family`` absent: a ResNet, as written before U-Nets)."""
    family = arch.get("family", GeneratorConfig.family)
    if family == UnetConfig.family:
        return UnetConfig.from_dict(arch)
    if family == GeneratorConfig.family:
        return GeneratorConfig.from_dict(arch)
    raise CheckpointError(f"unknown generator family {family!r} (this toolkit knows resnet and unet)")


def build_generator(cfg: AnyGeneratorConfig) -> Generator:
    """The family's constructor for a config."""
    return UnetGenerator(cfg) if isinstance(cfg, UnetConfig) else ResnetGenerator(cfg)


def _extract(obj: Any, path: Path, direction: str) -> tuple[StateDict, dict[str, Any], AnyGeneratorConfig | None]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    fmt = obj.get("format")
    if fmt == GENERATOR_FORMAT:
        return obj["state_dict"], dict(obj.get("meta", {})), config_from_dict(obj["arch"])
    if fmt in STATE_GENERATOR_KEYS:
        keys = STATE_GENERATOR_KEYS[fmt]
        if direction not in DIRECTION_KEYS:
            raise CheckpointError(f"{path}: training state; direction must be one of {list(DIRECTION_KEYS)}")
        if keys.get(direction) not in obj["generators"]:
            held = [d for d, k in keys.items() if k in obj["generators"]]
            raise CheckpointError(f"{path}: training state with no {direction} generator (it holds {', '.join(held)})")
        gen = obj["generators"][keys[direction]]
        meta = dict(obj.get("meta", {}), direction=direction)
        return gen["state_dict"], meta, config_from_dict(gen["arch"])
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: a dict with keys {list(obj)[:5]}, not a generator state dict")
    return obj, {}, None


def load_generator(
    path: str | os.PathLike[str], direction: str = "A->B", device: str | torch.device = "cpu"
) -> LoadedGenerator:
    """Build and load a generator from a checkpoint file alone (strict key match)."""
    p = Path(path)
    raw, meta, cfg = _extract(read_checkpoint(p), p, direction)
    sd = clean_state_dict(raw)
    if not sd:
        raise CheckpointError(f"{p}: empty state dict")
    try:
        cfg = cfg or infer_generator_config(sd)
    except CheckpointError as e:
        raise CheckpointError(f"{p}: {e}") from None
    model = build_generator(cfg)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        detail = ([line.strip() for line in str(e).splitlines()[1:] if line.strip()] or [type(e).__name__])[0]
        raise CheckpointError(f"{p}: keys or shapes do not match {cfg.name}: {detail[:200]}") from None
    model.eval().to(device)
    return LoadedGenerator(model=model, config=cfg, meta=meta, source=p, sha256=sha256_file(p))


def nonfinite_weights(model: torch.nn.Module) -> list[str]:
    """The names of the weight tensors that hold NaN/Inf (a diverged training run's checkpoint)."""
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]


def state_entry(model: Generator) -> dict[str, Any]:
    """A generator as a training state holds it (under "generators"): what load_generator reads back."""
    return {"arch": model.cfg.to_dict(), "state_dict": model.state_dict()}


def generator_payload(model: Generator, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    state = {k: v.detach().cpu().clone() for k, v in clean_state_dict(model.state_dict()).items()}
    return {
        "format": GENERATOR_FORMAT,
        "arch": model.cfg.to_dict(),
        "state_dict": state,
        "meta": {"toolkit_version": __version__, **(meta or {})},
    }


def save_generator(path: str | os.PathLike[str], model: Generator, meta: dict[str, Any] | None = None) -> Path:
    """Our standalone generator file: weights, architecture, metadata (direction, train size...)."""
    save_file(generator_payload(model, meta), path)
    return Path(path)


def save_file(payload: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` into ``path`` whole or not at all (``atomic_path``). A write that fails is an OSError naming
    ``path``: torch's zip writer reports a full disk as "[enforce fail at inline_container.cc] unexpected pos"."""
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as e:
            full = shutil.disk_usage(tmp.parent).free < 16 << 20
            raise OSError(errno.ENOSPC if full else errno.EIO, os.strerror(errno.ENOSPC) if full else
                          f"cannot write it ({str(e).splitlines()[0][:200]})") from None  # fmt: skip
