"""Test and training images for evaluation: an even spread of a folder's files, squared and resized.

A file that does not decode (not an image, corrupt data) or is too small to judge from (under 16 px a side) is
skipped with a warning naming it, as training does; a folder with no usable image is one error line naming it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cyclegan_edge.imaging.files import DataError
from cyclegan_edge.imaging.io import decoded_images
from cyclegan_edge.imaging.resize import resize_area


def square(frame: np.ndarray, side: int) -> np.ndarray:
    """The centred square of a BGR frame, resized to side x side (area interpolation)."""
    h, w = frame.shape[:2]
    s = min(h, w)
    sq = frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.ascontiguousarray(resize_area(sq, (side, side)))


def usable_images(files: Sequence[Path], folder: str | os.PathLike[str], what: str = "images") -> list[np.ndarray]:
    """The decoded files (BGR uint8; see imaging.io.decoded_images); DataError naming ``folder`` when none is."""
    good = [image for _, image in decoded_images(files, folder)]
    if not good:
        raise DataError(f"{folder}: no usable images ({len(files)} image files, none decodable and large enough); it "
                        f"should hold {what}")  # fmt: skip
    return good


def load_squares(files: Sequence[Path], side: int, folder: str | os.PathLike[str] = "", what: str = "images",
                 ) -> list[np.ndarray]:  # fmt: skip
    """The usable files (see ``usable_images``), squared and resized to side x side."""
    where = folder or (files[0].parent if files else "")
    return [square(f, side) for f in usable_images(files, where, what)]
