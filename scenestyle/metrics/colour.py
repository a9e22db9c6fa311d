"""CIELAB conversion (sRGB, D65) and the Reinhard et al. 2001 colour-transfer baseline.

The baseline moves each photo's per-channel Lab mean and standard deviation onto those of the
paintings: it copies the palette and nothing else, so a style result that scores no better than
it has learned colour, not texture.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["srgb_to_lab", "lab_to_srgb", "LabStats", "lab_stats", "colour_transfer"]

# IEC 61966-2-1 sRGB primaries to CIE XYZ, D65.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
# The white point is the image of sRGB white, so white maps to a = b = 0 exactly (D65, ≈ 0.95047, 1, 1.08883).
_WHITE = _RGB_TO_XYZ.sum(axis=1)
_EPS = (6.0 / 29.0) ** 3
_KAPPA = 3.0 * (6.0 / 29.0) ** 2


def _decode(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _encode(c: np.ndarray) -> np.ndarray:
    c = np.maximum(c, 0.0)  # out-of-gamut negatives would give NaN in the power law
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1.0 / 2.4) - 0.055)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 (or N×3) sRGB in [0, 1] → CIELAB (L in [0, 100]), float64."""
    xyz = _decode(np.asarray(rgb, dtype=np.float64)) @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz / _KAPPA + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB → sRGB in [0, 1] nominal, float64, *not* clipped (out-of-gamut colours leave [0, 1])."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, _KAPPA * (f - 4.0 / 29.0)) * _WHITE
    return _encode(xyz @ _XYZ_TO_RGB.T)


@dataclass(frozen=True)
class LabStats:
    """Per-channel mean and (population) standard deviation of L, a, b over a set of pixels."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def lab_stats(images: Iterable[np.ndarray]) -> LabStats:
    """Pooled Lab statistics over every pixel of uint8 H×W×3 images (a big image weighs more)."""
    total, s1, s2 = 0, np.zeros(3), np.zeros(3)
    for img in images:
        lab = srgb_to_lab(np.asarray(img, dtype=np.float64) / 255.0).reshape(-1, 3)
        total += len(lab)
        s1 += lab.sum(axis=0)
        s2 += np.square(lab).sum(axis=0)
    if total == 0:
        raise ValueError("no pixels to compute Lab statistics of")
    mean = s1 / total
    std = np.sqrt(np.maximum(s2 / total - mean * mean, 0.0))
    return LabStats(tuple(float(v) for v in mean), tuple(float(v) for v in std))


def colour_transfer(image: np.ndarray, target: LabStats) -> np.ndarray:
    """Reinhard transfer of a uint8 H×W×3 image onto ``target``: float64 sRGB, clipped to [0, 1].

    Each Lab channel is standardised with the image's own mean/std, then given the target's;
    a flat channel (std 0) simply takes the target mean.
    """
    lab = srgb_to_lab(np.asarray(image, dtype=np.float64) / 255.0)
    mean = lab.mean(axis=(0, 1))
    std = lab.std(axis=(0, 1))
    z = (lab - mean) / np.where(std > 0, std, 1.0)
    out = z * np.asarray(target.std) + np.asarray(target.mean)
    return np.clip(lab_to_srgb(out), 0.0, 1.0)
