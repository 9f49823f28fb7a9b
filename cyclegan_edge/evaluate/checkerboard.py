"""Checkerboard score: how much of an output's spectrum sits at the upsampling alias frequencies.

A stride-2 transposed convolution stamps its kernel on every second pixel, so an uneven overlap leaves a
pattern of period 2 (one upsampling stage) or 4 (two stages, the generator's layout) on the output grid
(Odena et al. 2016). In the 2-D spectrum of an N x M image such a pattern is a set of peaks on the lattice
(k N/4, l M/4), k, l in 0..3, (0, 0) excluded: (0, N/2), (N/2, 0), (N/2, N/2) for period 2, the
quarter frequencies for period 4. Natural photos have little energy there (a 1/f^2 spectrum), JPEG's 8x8
blocks some.

For one image: subtract each channel's mean, apply a Hann window (so the image border does not leak
energy along the axes), take the power spectrum summed over channels, and compute the *alias share*: the
power in the 3x3 bins around each lattice point over the total power. Dividing by the total makes the
share independent of contrast. The score of a model is

    mean alias share of its outputs / mean alias share of their inputs

over the test images: 1 = no more periodic high-frequency energy than the input, below 1 = smoother
(a blur scores well under 1), above 1 = an added grid pattern (an untrained ConvTranspose generator
scores far above 1, a resize-convolution one does not).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERIOD = 4  # two x2 upsampling stages: patterns of period 2 and 4


def alias_bins(n: int, period: int = PERIOD) -> list[int]:
    """Frequency indices (of an n-point FFT) of period-``period`` patterns, each with its +-1 neighbours."""
    if n % period:
        raise ValueError(f"image side {n} is not a multiple of {period}")
    return [k * n // period for k in range(period)]


def alias_mask(height: int, width: int, period: int = PERIOD) -> np.ndarray:
    """Boolean HxW mask of the 3x3 neighbourhoods of the alias lattice, DC's neighbourhood excluded."""
    mask = np.zeros((height, width), dtype=bool)
    for fy in alias_bins(height, period):
        for fx in alias_bins(width, period):
            if fy == 0 and fx == 0:
                continue
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    mask[(fy + dy) % height, (fx + dx) % width] = True
    return mask


def power_spectrum(image: np.ndarray) -> np.ndarray:
    """HxW power spectrum (summed over channels) of an HxWxC (or HxW) image, mean removed, Hann window."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    x = x - x.mean(axis=(0, 1), keepdims=True)
    h, w = x.shape[:2]
    window = np.outer(np.hanning(h), np.hanning(w))[:, :, None]
    return (np.abs(np.fft.fft2(x * window, axes=(0, 1))) ** 2).sum(axis=2)


def alias_share(image: np.ndarray, period: int = PERIOD) -> float:
    """Fraction of the image's (windowed, mean-free) spectral power at the alias lattice."""
    p = power_spectrum(image)
    total = float(p.sum())
    if total <= 0.0:
        return 0.0  # a flat image has no pattern
    return float(p[alias_mask(p.shape[0], p.shape[1], period)].sum()) / total


def checkerboard_score(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], period: int = PERIOD) -> dict[str, float]:
    """Mean alias share of ``outputs`` over that of ``inputs`` (same-sized image pairs, any dtype)."""
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"need matching, non-empty input/output lists, got {len(inputs)} and {len(outputs)}")
    share_in = float(np.mean([alias_share(i, period) for i in inputs]))
    share_out = float(np.mean([alias_share(o, period) for o in outputs]))
    score = share_out / share_in if share_in > 0 else float("inf")
    return {"score": score, "output_alias_share": share_out, "input_alias_share": share_in, "n": len(inputs)}
