"""Sample grids a reader can tell apart without the documentation: rows of images under strips naming their
columns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cyclegan_edge.imaging.cv import cv2

MIN_TILE_SIDE = 128  # px: smaller training crops are shown enlarged (whole pixels), with labels that can be read


def labeled_grid(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]]) -> np.ndarray:
    """Rows of BGR images, each shown at the first image's size (enlarged a whole number of times, pixels kept
    sharp, when under MIN_TILE_SIDE), each row under a dark strip naming its columns (a sample grid a reader can
    tell apart without the documentation)."""
    c = cv2()
    h, w = rows[0][0].shape[:2]
    k = -(-MIN_TILE_SIDE // min(h, w))  # ceiling: 64 px crops show at 2x, 32 px at 4x
    h, w = h * k, w * k

    def tile(img: np.ndarray) -> np.ndarray:  # straight to the tile size: nearest when enlarging (sharp pixels)
        if img.shape[:2] == (h, w):
            return img
        enlarge = img.shape[0] < h or img.shape[1] < w
        return np.asarray(c.resize(img, (w, h), interpolation=c.INTER_NEAREST if enlarge else c.INTER_AREA))
    font, scale = c.FONT_HERSHEY_SIMPLEX, min(0.5, max(0.3, w / 512))
    (_, text_h), base = c.getTextSize("Ag", font, scale, 1)
    strip_h = text_h + base + 6
    parts = []
    for row, names in zip(rows, labels):
        strip = np.full((strip_h, w * len(row), 3), 40, np.uint8)
        for i, name in enumerate(names):
            c.putText(strip, name, (i * w + 4, strip_h - base - 3), font, scale, (255, 255, 255), 1, c.LINE_AA)
        parts += [strip, np.hstack([tile(img) for img in row])]
    return np.vstack(parts)
