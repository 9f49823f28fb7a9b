"""What a model file is, defined once: its kind by extension, the exported graph's I/O names, the
precision names (the ONNX a precision lives in, the engine built from it) and the generator names the trainer
takes (here, not in models/, so that a command's --help needs no torch)."""

from __future__ import annotations

import argparse

CHECKPOINT_EXTENSIONS = (".pth", ".pt")  # PyTorch: published, GAN Compression or ours (models/checkpoint.py)
ONNX_EXTENSIONS = (".onnx",)
OPENVINO_EXTENSIONS = (".onnx", ".xml")  # .xml: OpenVINO IR
ENGINE_EXTENSIONS = (".plan", ".engine")  # TensorRT / TensorRT-RTX

INPUT_NAME, OUTPUT_NAME = "input", "output"  # NCHW RGB in [-1, 1] in and out, dynamic N, H and W
PRECISIONS = ("fp32", "fp16", "int8")
SIZE_MULTIPLE_KEY = "size_multiple"  # ONNX metadata (and engine sidecar): H and W must be multiples of it (absent: 4)
BASE_MULTIPLE = 4  # every generator: two stride-2 downsamplings
NETG_NAMES = ("resnet_9blocks", "resnet_6blocks", "mobile")  # the trainer's --netG (models.generator.named_config)
UPSAMPLE_MODES = ("convtranspose", "nearest", "bilinear")  # models.generator.ResnetGenerator's upsampling layers
UNET_DEPTHS = {"unet_32": 5, "unet_64": 6, "unet_128": 7, "unet_256": 8}  # pix2pix's U-Nets (models.unet): the
# name is the size 1x1 is reached at
UNET_NORMS = ("batch", "instance")
# A generator's direction: A->B (G_A in a CycleGAN training state) or B->A (G_B); pix2pix's reference spells
# them AtoB / BtoA, which --direction also takes
DIRECTIONS = ("A->B", "B->A")
DIRECTION_ALIASES = {"AtoB": "A->B", "BtoA": "B->A"}


def direction_arg(text: str) -> str:
    """--direction's type: A->B or B->A (AtoB, BtoA taken for them)."""
    direction = DIRECTION_ALIASES.get(text, text)
    if direction not in DIRECTIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: choose A->B or B->A (quoted in a shell: --direction 'B->A')")
    return direction


def metadata_size_multiple(metadata: dict[str, str]) -> int:
    """The size multiple an ONNX's metadata asks for (BASE_MULTIPLE when absent or unreadable)."""
    try:
        return max(BASE_MULTIPLE, int(metadata.get(SIZE_MULTIPLE_KEY, BASE_MULTIPLE)))
    except ValueError:
        return BASE_MULTIPLE


def is_checkpoint(path: object) -> bool:
    return str(path).lower().endswith(CHECKPOINT_EXTENSIONS)
