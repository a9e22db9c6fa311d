"""Stylize at a working size, then bring the painting back to the photo's size, guided by the photo.

A style net paints strokes of a fixed size in pixels: run on a 12 MP photo it paints strokes too
small to see, and its instance norms would need tiles and statistics passes. So the net runs once
on the photo resized to about ``work_pixels`` (whole image: exact statistics), and the painting is
brought back up with a guided filter (He & Sun, "Fast Guided Filter", arXiv:1505.00996): at the
working size each output channel is fitted, per ``2r+1`` window, as ``a * Y + b`` of the photo's
luma ``Y``, and ``a`` is box-averaged. At full size the result is

    up(painting - a * Y_small) + up(a) * Y_full

so it equals the painting at the working size, keeps its brushwork (upsampled, at the scale it
was painted), and adds the photo's own sharp edges in proportion to ``a``: where the painting
follows the photo's edges they come back sharp; where it does not (brushwork over fine texture)
``a`` falls towards 0 and the photo's texture stays out. ``eps`` is that threshold, in variance
of [0, 1] luma.

Upsampling is bilinear and done for bands of output rows: the two fields stay at the working
size and each band is interpolated from the rows it needs, so nothing full-size but the band exists.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from scenestyle._colour import BT601_LUMA

RADIUS = 2  # window radius at the working size (5x5 windows)
EPS = 1e-3  # regularisation: windows whose luma varies less than this follow the painting, not the photo
BAND_ROWS = 256  # full-size rows computed at a time


def work_shape(height: int, width: int, work_pixels: int, multiple: int) -> tuple[int, int]:
    """(h, w) of about ``work_pixels`` pixels with the photo's aspect, each a multiple of ``multiple``."""
    f = math.sqrt(work_pixels / (height * width))
    return (max(multiple, round(height * f / multiple) * multiple), max(multiple, round(width * f / multiple) * multiple))


def luma(pixels: np.ndarray) -> np.ndarray:
    """H×W luma of an H×W×C array (C = 1: the channel itself)."""
    if pixels.shape[2] == 1:
        return pixels[..., 0]
    return pixels @ np.asarray(BT601_LUMA, np.float32)


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over (2r+1)² windows, the window cut at the borders (as He's ``boxfilter``)."""
    return F.avg_pool2d(x, 2 * r + 1, 1, r, count_include_pad=False)


def _axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source indices and weights (``align_corners=False``, as ``F.interpolate``)."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


class GuidedUpsampler:
    """Full-size rows of the painting ``styled`` (h×w×C at the working size of ``photo_small``)."""

    def __init__(
        self, photo_small: np.ndarray, styled: np.ndarray, height: int, width: int, radius: int = RADIUS, eps: float = EPS
    ) -> None:
        guide = torch.from_numpy(np.ascontiguousarray(luma(photo_small)))[None, None]
        p = torch.from_numpy(np.ascontiguousarray(styled.transpose(2, 0, 1)))[None]
        mean_i, mean_p = _box(guide, radius), _box(p, radius)
        cov = _box(guide * p, radius) - mean_i * mean_p
        var = _box(guide * guide, radius) - mean_i * mean_i
        a = _box(cov / (var + eps), radius)
        b = p - a * guide  # the painting less what the photo's luma explains: its brushwork and colours
        self._a, self._b = (np.ascontiguousarray(m[0].numpy()) for m in (a, b))  # C×h×w, the working size
        self._r0, self._r1, self._wr = _axis(height, styled.shape[0])
        self._c0, self._c1, self._wc = _axis(width, styled.shape[1])
        self.shape = (height, width, styled.shape[2])

    def _band(self, field: np.ndarray, rows: slice) -> np.ndarray:
        """Full-size rows ``rows`` of a C×h×w field: rows interpolated at the working width, then
        columns (in place: a band of a 12 MP photo is 13 MB per copy)."""
        wr = self._wr[rows][None, :, None]
        r = field[:, self._r0[rows]] * (1 - wr) + field[:, self._r1[rows]] * wr  # C×rows×w
        out = r[:, :, self._c0]
        out *= 1 - self._wc
        right = r[:, :, self._c1]
        right *= self._wc
        out += right
        return out

    def rows(self, photo_rows: np.ndarray, first: int) -> np.ndarray:
        """Painting rows ``first .. first + len(photo_rows)`` from those full-size photo rows; clipped to [0, 1]."""
        sl = slice(first, first + photo_rows.shape[0])
        out = self._band(self._a, sl)
        out *= luma(photo_rows)[None]
        out += self._band(self._b, sl)  # C×rows×W
        return np.clip(out.transpose(1, 2, 0), 0.0, 1.0, dtype=np.float32)
