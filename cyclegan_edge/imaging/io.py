"""Image files: listing, decoding with clear errors, atomic writing."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cyclegan_edge.atomic import atomic_path
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.frames import to_bgr

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


class ImageReadError(ValueError):
    pass


def relative_to(path: Path, root: Path) -> Path | None:
    """``path`` below ``root``, or None (Path.is_relative_to needs Python 3.9; JetPack 5 has 3.8)."""
    try:
        return path.relative_to(root)
    except ValueError:
        return None


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_files(paths: Iterable[str | os.PathLike[str]], extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Files with one of ``extensions`` among ``paths`` (files as given, folders recursively, sorted)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return found


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode any 8-bit image file as BGR uint8 HxWx3; ImageReadError with one line otherwise."""
    p = Path(path)
    data = np.fromfile(p, dtype=np.uint8) if p.is_file() else None
    if data is None:
        raise ImageReadError(f"{p}: no such file")
    img = cv2().imdecode(data, cv2().IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageReadError(f"{p}: not a decodable image")
    if img.dtype == np.uint16:  # 16-bit PNG/TIFF
        img = (img >> 8).astype(np.uint8)
    try:
        return to_bgr(img)
    except ValueError as e:
        raise ImageReadError(f"{p}: {e}") from None


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    p = Path(path)
    ok, buf = cv2().imencode(p.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{p}: OpenCV cannot encode this extension")
    with atomic_path(p) as tmp:
        tmp.write_bytes(buf.tobytes())
    return p


def resized(images: Sequence[np.ndarray], hw: tuple[int, int]) -> list[np.ndarray]:
    """Each image resized to ``hw`` (H, W) with area interpolation."""
    return [cv2().resize(i, (hw[1], hw[0]), interpolation=cv2().INTER_AREA) for i in images]


def load_test_images(folder: str | os.PathLike[str], count: int) -> list[np.ndarray]:
    files = list_files([folder])[:count]
    if not files:
        raise ValueError(f"{folder}: no test images")
    return [read_image(p) for p in files]
