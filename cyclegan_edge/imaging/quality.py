"""Image-quality and parity metrics (NumPy/OpenCV): PSNR, SSIM, error statistics (export's parity reports,
evaluate's edge SSIM, distill's student-vs-teacher report)."""

from __future__ import annotations

import numpy as np

from cyclegan_edge.imaging.cv import cv2


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def ssim(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5), averaged over channels."""
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    a, b = reference.astype(np.float64), test.astype(np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2().GaussianBlur(x, (11, 11), 1.5, borderType=cv2().BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def error_stats(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    d = np.abs(reference.astype(np.float64) - test.astype(np.float64))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean())}
