"""Structure preservation: SSIM between Gaussian-blurred grayscale versions of two images.

Blurring first removes brush texture and noise, so what is left to compare is layout and
large edges: a stylization that keeps the scene scores close to 1, one that invents a new
scene scores low, whatever the palette.
"""

from __future__ import annotations

import numpy as np

from scenestyle._colour import BT601_LUMA
from scenestyle.metrics.psnr_ssim import ssim

__all__ = ["luma", "gaussian_blur", "structure_ssim"]

_LUMA = np.array(BT601_LUMA)


def luma(image: np.ndarray) -> np.ndarray:
    """H×W×3 (or H×W×1, H×W) image → float64 H×W BT.601 luma on the image's own scale."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] == 3:
        return a @ _LUMA
    return a[..., 0] if a.ndim == 3 else a


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian of a 2-D array, radius ``int(3σ + 0.5)``, mirror borders.

    Same result as ``scipy.ndimage.gaussian_filter(x, sigma, mode="mirror", truncate=3)``.
    """
    if sigma <= 0:
        return np.asarray(image, dtype=np.float64)
    r = int(3.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    a = np.asarray(image, dtype=np.float64)
    if min(a.shape) <= r:
        raise ValueError(f"a {a.shape[1]}×{a.shape[0]} image is too small for a Gaussian blur of sigma {sigma}")
    windows = np.lib.stride_tricks.sliding_window_view
    a = windows(np.pad(a, ((r, r), (0, 0)), mode="reflect"), len(g), axis=0) @ g
    return windows(np.pad(a, ((0, 0), (r, r)), mode="reflect"), len(g), axis=1) @ g


def structure_ssim(a: np.ndarray, b: np.ndarray, sigma: float = 2.0) -> float:
    """SSIM (BasicSR window, [0, 255] constants) of the blurred luma of two same-sized uint8 images."""
    if np.shape(a)[:2] != np.shape(b)[:2]:
        raise ValueError(f"structure SSIM needs images of the same size, got {np.shape(a)[:2]} and {np.shape(b)[:2]}")
    return ssim(gaussian_blur(luma(a), sigma), gaussian_blur(luma(b), sigma))
