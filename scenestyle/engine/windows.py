"""Window geometry and feathered blending for tiled inference.

The input is (virtually) reflect-padded to the model's ``size_multiple`` (``padded_side``). Along each axis the
padded length is covered by as many windows as cores of ``tile`` pixels need, all of one size (so
windows can be batched), each as small as lets every pixel lie in some window at least ``halo``
pixels from that window's interior edges (``axis_windows``). Window outputs are blended
with separable feathering weights: zero for the outer ``halo/2`` of an interior edge (the part
whose receptive field is cut off), then a linear ramp over ``halo`` pixels, one elsewhere; the
weight sum is normalised at the end. The windows form a grid, so the weight sum is the outer
product of two 1-D sums and no full-size weight map is allocated.

Only partial sums are float32: one window of output (the strip) and the rows the next window row
overlaps (the carry). Finished blocks are yielded as soon as no later window touches them, so a
caller that quantises them at once never holds a full-size float output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Block",
    "even_core",
    "axis_windows",
    "grid",
    "fewest_pixels_tile",
    "axis_weights",
    "round_up",
    "pad_to",
    "unit_tensor",
    "blend_windows",
]

# A finished output block: (first row, first column, float32 C×N×M view, valid until the next
# block is asked for and the receiver's to change in place).
Block = tuple[int, int, Tensor]


def even_core(length: int, core: int, multiple: int = 1) -> int:
    """The core size (at most ``core``, a multiple of ``multiple``) that covers ``length`` with as
    many cores as ``core`` needs, spread evenly (the instance-norm statistics visit the image in
    such cores, ``engine.norm_stats``): a last core of a few pixels would cost a whole pass."""
    if core >= length:
        return core
    n = -(-length // core)
    return min(core, round_up(-(-length // n), multiple))


def axis_weights(start: int, size: int, length: int, scale: int, halo: int) -> Tensor:
    """Feathering weights (output pixels) of one window along one axis."""
    n = size * scale
    w = torch.ones(n, dtype=torch.float32)
    ramp = halo * scale
    if ramp == 0:
        return w
    d = torch.arange(n, dtype=torch.float32)
    # zero over the outer halo/2, then linear over halo: two neighbours cross-fade to a sum of 1
    feather = lambda dist: ((dist + 0.5 - ramp / 2) / ramp).clamp(0, 1)  # noqa: E731
    if start > 0:
        w *= feather(d)
    if start + size < length:
        w *= feather(n - 1 - d)
    return w


def axis_windows(length: int, core: int, halo: int, multiple: int) -> tuple[int, list[int]]:
    """(window size, window starts) of the ``ceil(length / core)`` windows that cover ``[0, length)``
    along one axis, every pixel at least ``halo`` from the interior edges of some window.

    A window at the image border needs context on its inner side only: n windows of size W cover
    ``2(W - halo) + (n - 2)(W - 2 halo)`` pixels exactly, so W = ``(length + 2(n - 1) halo) / n``
    (rounded up to ``multiple``), ``2 halo / n`` less than a core of ``length / n`` with a halo on
    both sides: a 1224-px side in two windows with a 108-px halo runs 720 px each, not 828.
    Consecutive windows start ``W - 2 halo`` apart, the last one clamped to the border. ``halo``
    and ``length`` are multiples of ``multiple``, so every start is one too.
    """
    n = -(-length // core) if core > 0 else 1
    window = round_up(-(-(length + 2 * (n - 1) * halo) // n), multiple)
    if n == 1 or window >= length:
        return length, [0]
    step = window - 2 * halo
    return window, sorted({min(i * step, length - window) for i in range(n)})


def grid(hp: int, wp: int, tile: int, halo: int, multiple: int) -> tuple[int, int, list[int], list[int]]:
    """(window height, window width, row starts, column starts) of the windows that cover a padded
    ``hp`` x ``wp`` image with cores of at most ``tile`` pixels (0: one window): ``axis_windows``
    along each axis."""
    core = tile if tile else max(hp, wp)
    win_h, ys = axis_windows(hp, core, halo, multiple)
    win_w, xs = axis_windows(wp, core, halo, multiple)
    return win_h, win_w, ys, xs


def fewest_pixels_tile(h: int, w: int, halo: int, multiple: int, max_window_pixels: int) -> int:
    """The tile whose windows (each at most ``max_window_pixels``, halo included) cover an h x w
    image with the fewest pixels run in all: the halos make small tiles costly (with a 108-px halo,
    512-px tiles run a 1224x816 image's pixels 1.7 times, two windows 1.2 times), one whole window
    may not fit the memory."""
    hp, wp = padded_side(h, multiple), padded_side(w, multiple)
    best, best_cost = multiple, None
    for tile in range(round_up(max(hp, wp), multiple), multiple - 1, -multiple):
        win_h, win_w, ys, xs = grid(hp, wp, tile, halo, multiple)
        if win_h * win_w > max_window_pixels:
            continue
        cost = len(ys) * len(xs) * win_h * win_w
        if best_cost is None or cost < best_cost:
            best, best_cost = tile, cost
    return best


def round_up(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return -(-n // m) * m


def padded_side(n: int, multiple: int) -> int:
    """An image side of ``n`` px as a model runs it: rounded up to ``multiple``, and at least two
    multiples, so the net's deepest feature map has the 2 px a side its reflect padding needs
    (a photo 1-7 px high would stop a net that downsamples 4×)."""
    return max(round_up(n, multiple), 2 * multiple)


def unit_tensor(x: Tensor) -> Tensor:
    """``x`` as it is if float, else its uint8/uint16 samples as float32 in [0, 1]."""
    return x if x.is_floating_point() else x.float().div_(255 if x.dtype == torch.uint8 else 65535)


def pad_to(x: Tensor, h: int, w: int) -> Tensor:
    """``x`` padded at the bottom and right to ``h`` x ``w`` (reflected where the image allows);
    integer samples (a photo kept as uint8/uint16) come out as float32 in [0, 1], window by window."""
    x = unit_tensor(x)
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    # reflect needs the pad smaller than the side; only images thinner than size_multiple miss that
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def blend_windows(
    x: Tensor,
    out_shape: tuple[int, int, int],
    tile: int,
    halo: int,
    multiple: int,
    scale: int,
    batch_size: int,
    forward: Callable[[Tensor], Tensor],
    progress: Callable[[int, int], None] | None,
) -> Iterator[Block]:
    """Run ``forward`` over the windows of ``x`` in row-major order, ``batch_size`` at a time, and
    yield each finished output block as soon as no later window touches it.

    ``forward`` takes a float32 CPU ``NxCxHxW`` batch of windows and returns the model's output
    for it (any device and dtype), ``scale`` times larger. ``tile`` 0 is one window.

    Only partial sums are held in float: a ``strip`` of one window (output columns from the
    current window's left edge) and a ``carry`` of the rows the next window row will add to
    (full width, about ``2 * halo * scale`` rows). After window (i, j) the columns left of
    window j + 1 are final in the rows above window row i + 1; they are normalised and handed
    over, the rows below go to the next carry, and the strip slides right.
    """
    _, _, h, w = x.shape
    out_ch, out_h, out_w = out_shape
    hp, wp = padded_side(h, multiple), padded_side(w, multiple)
    win_h, win_w, ys, xs = grid(hp, wp, tile, halo, multiple)
    wy = [axis_weights(s, win_h, hp, scale, halo) for s in ys]
    wx = [axis_weights(s, win_w, wp, scale, halo) for s in xs]
    sum_y = torch.zeros(hp * scale)
    sum_x = torch.zeros(wp * scale)
    for s, wt in zip(ys, wy):
        sum_y[s * scale : (s + win_h) * scale] += wt
    for s, wt in zip(xs, wx):
        sum_x[s * scale : (s + win_w) * scale] += wt

    sh, sw = win_h * scale, win_w * scale
    if len(ys) == len(xs) == 1:  # one window: nothing to blend
        if progress:
            progress(0, 1)
        y = forward(pad_to(x, win_h, win_w))
        yield 0, 0, y[0, :, :out_h, :out_w].float().cpu()
        if progress:
            progress(1, 1)
        return
    strip = torch.zeros((out_ch, sh, sw))
    carry = torch.zeros((out_ch, 0, out_w))  # partial sums of the rows starting at this window row's top
    next_carry = carry

    def add_carry(k: int, c0: int, c1: int) -> None:
        """Strip columns from ``k`` on get the carried sums of output columns ``[c0, c1)``."""
        c1 = min(c1, out_w)
        if c1 > c0 and carry.shape[1]:
            strip[:, : carry.shape[1], k : k + c1 - c0] += carry[:, :, c0:c1]

    windows = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    total = len(windows)
    if progress:
        progress(0, total)
    for b0 in range(0, total, batch_size):
        batch = windows[b0 : b0 + batch_size]
        crops = [pad_to(x[:, :, ys[i] : min(ys[i] + win_h, h), xs[j] : min(xs[j] + win_w, w)], win_h, win_w) for i, j in batch]
        y = forward(torch.cat(crops)).float().cpu()
        for k, (i, j) in enumerate(batch):
            top, left = ys[i] * scale, xs[j] * scale
            ny, nx = min(sh, out_h - top), min(sw, out_w - left)
            below = ys[i + 1] * scale if i + 1 < len(ys) else out_h  # the next window row's top
            right = xs[j + 1] * scale if j + 1 < len(xs) else out_w
            if j == 0:
                strip.zero_()
                add_carry(0, 0, sw)
                next_carry = torch.zeros((out_ch, max(0, top + ny - below), out_w))
            strip[:, :ny, :nx].addcmul_(y[k, :, :ny, :nx], wy[i][:ny, None] * wx[j][None, :nx])
            done = strip[:, : below - top, : right - left]
            done.div_(sum_y[top:below, None]).div_(sum_x[None, left:right])
            yield top, left, done
            next_carry[:, :, left:right] = strip[:, below - top : ny, : right - left]
            d = right - left
            strip[:, :, : sw - d] = strip[:, :, d:].clone()
            strip[:, :, sw - d :] = 0
            if j + 1 < len(xs):
                add_carry(sw - d, left + sw, right + sw)
            else:
                carry = next_carry
        if progress:
            progress(b0 + len(batch), total)
