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
A band is computed in torch (its kernels use every core) straight to the output's integer samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from scenestyle._colour import BT601_LUMA
from scenestyle.engine.windows import unit_tensor

RADIUS = 2  # window radius at the working size (5x5 windows)
EPS = 1e-3  # regularisation: windows whose luma varies less than this follow the painting, not the photo
EDGE_EPS = 5e-3  # restore_edges: windows whose luma varies less than this (texture, not contours) get none of the photo's detail
# Full-size rows computed at a time. A band's largest temporary (the upsampled a and b, 6 floats a
# pixel) is 13 MB for a 12 MP photo; at 256 rows it was 26 MB, and where the allocator put such
# buffers moved a 12 MP stylize's peak RSS by up to 70 MiB from run to run, at no gain in speed.
BAND_ROWS = 128


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
    """Mean over (2r+1)² windows, the window cut at the borders (as He's ``boxfilter``): two 1-D
    passes on channels-last memory, about twice as fast on the CPU as one 2-D pass."""
    k = 2 * r + 1
    x = F.avg_pool2d(x.contiguous(memory_format=torch.channels_last), (k, 1), 1, (r, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, k), 1, (0, r), count_include_pad=False).contiguous()


def _rows_axis(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear source rows and weights (``align_corners=False``, as ``F.interpolate``)."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return torch.from_numpy(i0), torch.from_numpy(i1), torch.from_numpy((src - i0).astype(np.float32))


def _follow(guide: torch.Tensor, p: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(``a``, the guide's window means): the guided filter's ``a``, box-averaged, is per channel of
    ``p`` (1×C×h×w) how much of the photo's luma ``guide`` (1×1×h×w) each window of the painting
    follows. The four window means are taken in one pass."""
    c = p.shape[1]
    m = _box(torch.cat([guide, p, guide * p, guide * guide], 1), radius)
    mean_i, mean_p, mean_ip, mean_ii = m[:, :1], m[:, 1 : 1 + c], m[:, 1 + c : 1 + 2 * c], m[:, -1:]
    return _box((mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps), radius), mean_i


def restore_edges(photo: np.ndarray, painted: np.ndarray, gain: float, radius: int = RADIUS, eps: float = EDGE_EPS) -> np.ndarray:
    """``painted`` (h×w×C float in [0, 1]) with ``gain`` × the photo's fine luma detail (its
    difference from a ``2r+1`` box mean) added to every channel where the painting's luma follows
    the photo's (``a``), clipped.

    A style net paints contours softer than a painter does: the finest scales of a painting hold
    crisp edges that its result lacks. The photo at the same size has them; ``a`` brings them back
    only where the painting already draws that edge, and ``eps`` keeps the photo's texture out
    (a window of grass or gravel varies less than a contour). Luma only, as the brush streaks:
    the palette stays the net's."""
    guide = torch.from_numpy(np.ascontiguousarray(luma(photo)))[None, None]
    a, mean_i = _follow(guide, torch.from_numpy(np.ascontiguousarray(luma(painted)))[None, None], radius, eps)
    detail = a.mul_(guide - mean_i).mul_(gain)[0, 0, ..., None].numpy()
    return np.clip(painted + detail, 0.0, 1.0, dtype=np.float32)


class GuidedUpsampler:
    """Full-size rows of the painting ``styled`` (h×w×C at the working size of ``photo_small``)."""

    def __init__(
        self, photo_small: np.ndarray, styled: np.ndarray, height: int, width: int, radius: int = RADIUS, eps: float = EPS
    ) -> None:
        guide = torch.from_numpy(np.ascontiguousarray(luma(photo_small)))[None, None]
        p = torch.from_numpy(np.ascontiguousarray(styled.transpose(2, 0, 1)))[None]
        a = _follow(guide, p, radius, eps)[0]
        b = p - a * guide  # the painting less what the photo's luma explains: its brushwork and colours
        self._fields = torch.cat([a[0], b[0]])  # 2C×h×w at the working size: a's channels, then b's
        self._r0, self._r1, self._wr = _rows_axis(height, styled.shape[0])
        self.shape = (height, width, styled.shape[2])

    def _band(self, photo: torch.Tensor, first: int, strength: float) -> torch.Tensor:
        """C×n×W float32 painting rows ``first ..`` for the n×W×C float photo rows ``photo``: clipped
        to [0, 1], then blended over the photo by ``strength``. In torch, whose kernels use every core:
        a band of a 12 MP photo is 6.5 MB per channel set."""
        n, c = photo.shape[0], self.shape[2]
        rows = slice(first, first + n)
        f = self._fields
        r = torch.lerp(f[:, self._r0[rows]], f[:, self._r1[rows]], self._wr[rows][None, :, None])  # 2C×n×w
        up = F.interpolate(r[None], size=(n, self.shape[1]), mode="bilinear", align_corners=False)[0]  # rows: identity
        y = photo[..., 0] if c == 1 else photo @ torch.tensor(BT601_LUMA, dtype=torch.float32)
        out = torch.addcmul(up[c:], up[:c], y).clamp_(0.0, 1.0)  # b + a·Y
        if strength < 1.0:
            out = torch.lerp(photo.permute(2, 0, 1), out, strength)
        return out

    def rows(self, photo_rows: np.ndarray, first: int) -> np.ndarray:
        """Painting rows ``first .. first + len(photo_rows)`` from those full-size float photo rows; clipped to [0, 1]."""
        photo = torch.from_numpy(np.ascontiguousarray(photo_rows, dtype=np.float32))
        return self._band(photo, first, 1.0).permute(1, 2, 0).contiguous().numpy()

    def samples(self, photo_rows: np.ndarray, first: int, strength: float, dtype: np.dtype) -> np.ndarray:
        """Integer ``dtype`` samples (n×W×C) of the painting rows for these full-size photo rows
        (samples or float), blended over them by ``strength``. Raises ValueError on NaN or infinity."""
        photo = unit_tensor(torch.from_numpy(np.ascontiguousarray(photo_rows))).float()
        out = self._band(photo, first, strength)
        if not torch.isfinite(out).all():
            raise ValueError("non-finite values")
        samples = np.empty(out.shape[1:] + out.shape[:1], dtype)
        torch.from_numpy(samples).copy_(out.mul_(np.iinfo(dtype).max).round_().permute(1, 2, 0))
        return samples
