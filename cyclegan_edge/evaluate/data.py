"""Test and training images for evaluation: an even spread of a folder's files, squared and resized."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cyclegan_edge.imaging.io import list_files, read_image, resize_area


def spread(items: Sequence[Path], count: int) -> list[Path]:
    """At most ``count`` items spread evenly over the list, first and last included (0 = all)."""
    if not count or count >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def image_files(folder: str | os.PathLike[str], max_images: int = 0) -> list[Path]:
    files = list_files([folder])
    if not files:
        raise FileNotFoundError(f"{folder}: no images")
    return spread(files, max_images)


def square(frame: np.ndarray, side: int) -> np.ndarray:
    """The centred square of a BGR frame, resized to side x side (area interpolation)."""
    h, w = frame.shape[:2]
    s = min(h, w)
    sq = frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.ascontiguousarray(resize_area(sq, (side, side)))


def load_squares(files: Sequence[Path], side: int) -> list[np.ndarray]:
    return [square(read_image(p), side) for p in files]
