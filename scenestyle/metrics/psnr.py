"""Peak signal-to-noise ratio."""

from __future__ import annotations

import math

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two arrays of the same shape (uint8 or float), computed in float64.

    ``peak`` is the largest possible value (255 for uint8, 1.0 for [0, 1] floats). Identical
    arrays give ``inf``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr needs arrays of the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("psnr of empty arrays")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)
