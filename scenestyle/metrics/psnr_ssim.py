"""PSNR and SSIM exactly as BasicSR computes them (``basicsr/metrics/psnr_ssim.py``).

Inputs are uint8 (or integer-valued float) H×W or H×W×C arrays in [0, 255], **RGB** order.
BasicSR reads images with OpenCV (BGR) and weighs the channels accordingly; the same BT.601
weights applied to RGB give the same Y. The Y channel follows BasicSR's float32 path
(``to_y_channel``) so figures agree with published BasicSR tables to the last digit.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["rgb_to_y", "psnr", "ssim", "gaussian_window"]

# ITU-R BT.601 "studio swing" luma for RGB in [0, 1], giving Y in [16, 235].
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of BT.601 YCbCr in [0, 255] (float32, not rounded) for an H×W×3 RGB array in [0, 255].

    A single-channel (H×W or H×W×1) input is returned as float32 [0, 255] unchanged.
    """
    a = np.asarray(img).astype(np.float32) / 255.0
    if a.ndim == 3 and a.shape[2] == 3:
        # float64 dot then float32, as BasicSR's bgr2ycbcr(y_only=True) does
        y = (np.dot(a, _Y_WEIGHTS) + 16.0) / 255.0
        a = y.astype(np.float32)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    elif a.ndim != 2:
        raise ValueError(f"expected an H×W, H×W×1 or H×W×3 image, got shape {a.shape}")
    return a * np.float32(255.0)


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"{what} needs images of the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError(f"{what} of empty arrays")
    return a, b


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int, test_y: bool, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _same_shape(a, b, what)
    if a.ndim not in (2, 3):
        raise ValueError(f"{what} needs H×W or H×W×C images, got shape {a.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {a.shape[1]}×{a.shape[0]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border, ...]
        b = b[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y:
        a, b = rgb_to_y(a), rgb_to_y(b)
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0, test_y: bool = False, *, peak: float = 255.0) -> float:
    """PSNR in dB of two [0, 255] images, as BasicSR's ``calculate_psnr``; ``inf`` if equal.

    ``peak`` is the largest possible value (1.0 for [0, 1] floats, 2.0 for [-1, 1]). Without
    ``crop_border`` and ``test_y`` any two arrays of one shape are compared (e.g. N×C×H×W batches),
    in float64 (no uint8 wrap-around).
    """
    if crop_border or test_y:
        a, b = _prepare(a, b, crop_border, test_y, "psnr")
    else:
        a, b = _same_shape(a, b, "psnr")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised 1-D Gaussian of ``cv2.getGaussianKernel(size, sigma)`` (float64)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    # separable 11x11 Gaussian, keeping only positions where the window fits (BasicSR's [5:-5, 5:-5]),
    # so the border mode never matters
    windows = np.lib.stride_tricks.sliding_window_view
    rows = windows(img, len(g), axis=0) @ g  # (H - k + 1) x W
    return windows(rows, len(g), axis=1) @ g


def _ssim_channel(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, test_y: bool = False) -> float:
    """SSIM (11×11 Gaussian, σ 1.5, valid window, mean over channels) as BasicSR's ``calculate_ssim``."""
    a, b = _prepare(a, b, crop_border, test_y, "ssim")
    if min(a.shape[:2]) < 11:
        raise ValueError(f"ssim needs images of at least 11×11 pixels after cropping, got {a.shape[1]}×{a.shape[0]}")
    g = gaussian_window()
    return float(np.mean([_ssim_channel(a[..., i], b[..., i], g) for i in range(a.shape[2])]))
