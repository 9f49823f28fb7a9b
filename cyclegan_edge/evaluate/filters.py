"""Trivial colour-filter baselines: what a domain score must beat.

A season classifier that a desaturation or a pale tint can fool measures colour, not the model. Every
report scores these filters, applied to the same source test images, beside the model.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

LUMA_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)
PALE_BLUE_BGR = np.array([255.0, 235.0, 225.0], dtype=np.float32)


def saturation(frame: np.ndarray, factor: float) -> np.ndarray:
    """Scale a BGR uint8 frame's saturation about its luma (0 = greyscale, 1 = unchanged)."""
    x = frame.astype(np.float32)
    grey = (x @ LUMA_BGR)[:, :, None]
    return np.clip(grey + factor * (x - grey) + 0.5, 0, 255).astype(np.uint8)


def bright_pale_tint(frame: np.ndarray) -> np.ndarray:
    """A "winter look" filter: most colour removed, 10% brighter, 30% blended toward a pale blue-white."""
    x = saturation(frame, 0.3).astype(np.float32) * 1.1
    return np.clip(0.7 * x + 0.3 * PALE_BLUE_BGR + 0.5, 0, 255).astype(np.uint8)


BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "input": lambda f: f,
    "desaturate": lambda f: saturation(f, 0.4),
    "greyscale": lambda f: saturation(f, 0.0),
    "bright_pale_tint": bright_pale_tint,
}
