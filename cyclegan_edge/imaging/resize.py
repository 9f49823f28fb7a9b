"""Images and frames brought to a size (OpenCV): area interpolation to shrink without aliasing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cyclegan_edge.imaging.cv import cv2


def resize_area(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``image`` at ``hw`` (H, W), area interpolation (no aliasing when shrinking); itself when already that size."""
    if image.shape[:2] == tuple(hw):
        return image
    return cv2().resize(image, (hw[1], hw[0]), interpolation=cv2().INTER_AREA)


def fit_frame(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A video frame at the stream's size ``hw`` (H, W): one whose size changed mid-stream is resized (linear);
    itself when already that size."""
    if frame.shape[:2] == tuple(hw):
        return frame
    return cv2().resize(frame, (hw[1], hw[0]))


def resized(images: Sequence[np.ndarray], hw: tuple[int, int]) -> list[np.ndarray]:
    return [resize_area(i, hw) for i in images]
