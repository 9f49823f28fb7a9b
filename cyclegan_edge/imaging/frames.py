"""Pure, vectorised conversions between OpenCV frames and network tensors (NumPy only).

Frames are BGR uint8 HxWx3 (greyscale HxW / HxWx1 and BGRA HxWx4 are accepted). Tensors are
NCHW float32 RGB in [-1, 1]. A ResNet generator downsamples twice by 2, so H and W must be multiples
of 4; a U-Net of depth d needs multiples of 2**d (256 for unet_256): the model's ``size_multiple``, which
checkpoints and ONNX metadata carry. Other sizes are reflect-padded at the bottom/right and cropped back
after inference, so the output always has the input's size: frames to multiples of 4 here, and a backend
pads the NCHW batch further to its model's multiple (``pad_batch``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from cyclegan_edge.model_files import BASE_MULTIPLE as MULTIPLE

PadMode = Literal["reflect", "symmetric"]


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Any 8-bit greyscale, BGR or BGRA image as BGR uint8 HxWx3 (alpha dropped)."""
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {frame.dtype}")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.ascontiguousarray(frame[:, :, :3])
    raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {frame.shape}")


def padded_size(height: int, width: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_mode(height: int, width: int, multiple: int = MULTIPLE) -> PadMode:
    # "symmetric" repeats the edge pixel when the image is only 1 pixel wide, "reflect" cannot.
    return "reflect" if min(height, width) > multiple else "symmetric"


def pad_to_multiple(image: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Reflect-pad an HxWxC image at the bottom/right up to multiples of ``multiple``."""
    h, w = image.shape[:2]
    ph, pw = padded_size(h, w, multiple)
    if (ph, pw) == (h, w):
        return image
    return np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode=pad_mode(h, w, multiple))


def pad_index(size: int, padded: int, mode: PadMode) -> np.ndarray:
    """Source index of each position along one padded axis (np.pad's rule, also for pads longer than
    ``size``): the same padding as a gather, which PyTorch models use on tensors (models/unet.py)."""
    return np.pad(np.arange(size), (0, padded - size), mode=mode)


def pad_batch(batch: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Reflect-pad an NxCxHxW batch at the bottom/right up to multiples of ``multiple`` (``batch`` itself
    when it already fits): what a backend does before running a model whose size multiple exceeds 4."""
    h, w = batch.shape[2:]
    ph, pw = padded_size(h, w, multiple)
    if (ph, pw) == (h, w):
        return batch
    return np.pad(batch, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode=pad_mode(h, w, multiple))


def run_padded(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, multiple: int) -> np.ndarray:
    """``run(batch)`` with H and W padded to ``multiple`` (``pad_batch``), the output cropped back."""
    h, w = batch.shape[2:]
    out = run(pad_batch(batch, multiple))
    return out if out.shape[2:] == (h, w) else np.ascontiguousarray(out[:, :, :h, :w])


def frames_to_tensor(frames: Sequence[np.ndarray], multiple: int = MULTIPLE) -> np.ndarray:
    """Same-sized frames -> padded NCHW float32 RGB in [-1, 1]."""
    if not frames:
        raise ValueError("no frames")
    bgr = [to_bgr(f) for f in frames]
    shapes = {f.shape for f in bgr}
    if len(shapes) != 1:
        raise ValueError(f"frames of one batch must share a size, got {sorted(shapes)}")
    batch = np.stack([pad_to_multiple(f, multiple) for f in bgr])  # N H W 3 (BGR)
    nchw = batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    nchw *= 1.0 / 127.5
    nchw -= 1.0
    return np.ascontiguousarray(nchw)


def frame_to_tensor(frame: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    return frames_to_tensor([frame], multiple)


def tensor_to_frames(tensor: np.ndarray, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """NCHW RGB in [-1, 1] -> BGR uint8 frames, cropped to ``size`` = (height, width)."""
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"expected an Nx3xHxW tensor, got shape {tensor.shape}")
    h, w = size if size is not None else tensor.shape[2:]
    x = np.asarray(tensor[:, ::-1, :h, :w], dtype=np.float32)  # RGB -> BGR, crop
    x = np.clip((x + 1.0) * 127.5 + 0.5, 0.0, 255.0).astype(np.uint8)
    return [np.ascontiguousarray(f.transpose(1, 2, 0)) for f in x]


def tensor_to_frame(tensor: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    return tensor_to_frames(tensor, size)[0]


def resize_shorter_side(height: int, width: int, shorter: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """(h, w) with the shorter side near ``shorter``, aspect kept, both rounded to ``multiple``."""
    scale = shorter / min(height, width)
    return (
        max(multiple, int(round(height * scale / multiple)) * multiple),
        max(multiple, int(round(width * scale / multiple)) * multiple),
    )
