"""Image-set metrics: the normalised domain score with a bootstrap interval, cycle L1, edge SSIM.

Content preservation is the SSIM of the input's and the output's *luminance edge maps* (Gaussian
sigma 1, then Sobel gradient magnitude). A season model should repaint surfaces (foliage to snow, green to
white) but keep the scene: ridge lines, tree trunks, buildings, the horizon. Pixel SSIM or L1 between input
and output penalise exactly the colour and brightness change the model is asked to make; luminance edges
are unchanged by a global colour, tint or brightness change, the light blur ignores JPEG noise and fine
texture, and SSIM's local normalisation compares *where* the edges are more than how strong they are. A
colour filter scores near 1, a blur or a hallucinated scene low; a model that draws a checkerboard over
everything also loses (new edges everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.quality import ssim


def domain_score(out: np.ndarray, source: np.ndarray, target: np.ndarray) -> float:
    """(share of outputs judged target - share of real source photos judged target) / (share of real target
    photos judged target - that of real source photos): 0 = looks like the source set, 1 = like real target
    photos (../shared/NOTES.md). Inputs are 0/1 decisions per image."""
    lo, hi = float(np.mean(source)), float(np.mean(target))
    if hi <= lo:
        return float("nan")  # the classifier cannot tell the test sets apart
    return (float(np.mean(out)) - lo) / (hi - lo)


def domain_score_ci(out: np.ndarray, source: np.ndarray, target: np.ndarray, paired: bool, n_boot: int = 2000,
                    seed: int = 0, level: float = 0.95) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval over images: the three sets are resampled, ``out`` and ``source`` with
    the same indices when ``paired`` (the outputs are translations of the source images)."""
    rng = np.random.default_rng(seed)
    out, source, target = (np.asarray(a, dtype=np.float64) for a in (out, source, target))
    i_out = rng.integers(0, len(out), (n_boot, len(out)))
    i_src = i_out if paired else rng.integers(0, len(source), (n_boot, len(source)))
    i_tgt = rng.integers(0, len(target), (n_boot, len(target)))
    lo, hi = source[i_src].mean(1), target[i_tgt].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (out[i_out].mean(1) - lo) / (hi - lo)
    scores = scores[np.isfinite(scores) & (hi > lo)]
    if not len(scores):
        return float("nan"), float("nan")
    q = (1 - level) / 2
    return float(np.quantile(scores, q)), float(np.quantile(scores, 1 - q))


def cycle_l1(inputs: Sequence[np.ndarray], cycled: Sequence[np.ndarray]) -> float:
    """Mean absolute difference in the networks' [-1, 1] units (uint8 frames; 1 grey level = 0.0078)."""
    return float(np.mean([np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() for a, b in zip(inputs, cycled)]) / 127.5)


def edge_map(frame: np.ndarray) -> np.ndarray:
    luma = cv2().cvtColor(frame, cv2().COLOR_BGR2GRAY).astype(np.float32) / 255.0
    luma = cv2().GaussianBlur(luma, (0, 0), 1.0)
    gx = cv2().Sobel(luma, cv2().CV_32F, 1, 0, ksize=3)
    gy = cv2().Sobel(luma, cv2().CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def edge_ssim(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Mean SSIM of input and output luminance edge maps (see the module docstring); the data range is the
    input edge map's 99th percentile, so the constants scale with the picture's own edge contrast."""
    scores = []
    for x, y in zip(inputs, outputs):
        ex, ey = edge_map(x), edge_map(y)
        scores.append(ssim(ex, ey, peak=max(float(np.percentile(ex, 99)), 1e-3)))
    return float(np.mean(scores))
