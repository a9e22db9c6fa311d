"""Whole-image instance-norm statistics, frozen into the model while it runs tile by tile.

A CycleGAN generator normalises each feature map by its own mean and variance; run per tile,
every tile gets different statistics and the tiles come out in different colours. So before the
tiles run, every ``nn.InstanceNorm2d`` input's per-channel mean and variance over the whole image
is recorded, and the tiles run with those (:func:`frozen_instance_norm`). Up to
``STATS_MAX_PIXELS`` one whole-image pass gives them exactly. Above, the first ``EXACT_NORMS``
norms get exact statistics from tiled passes over the network up to each of them (the early
layers are cheap), and the rest come from a downscaled copy: an approximation, since a smaller
image has slightly less high-frequency energy, so its variances are a little lower.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scenestyle.engine.device import Placement, to_placement
from scenestyle.engine.memory import is_oom
from scenestyle.engine.windows import even_core, pad_to, padded_side, round_up
from scenestyle.nn import channel_mean_var, instance_norms

__all__ = [
    "Stats",
    "STATS_MAX_PIXELS",
    "EXACT_NORMS",
    "instance_norms",
    "instance_norm_stats",
    "frozen_instance_norm",
    "whole_image_stats",
]

Stats = dict[nn.Module, tuple[Tensor, Tensor]]  # per norm: float32 1xCx1x1 mean and biased variance

STATS_MAX_PIXELS = 1_500_000
# Above STATS_MAX_PIXELS, how many norms get exact statistics; `benchmarks/probe_norm_stats.py`
# measures the agreement with the whole-image output for each choice (benchmarks/README.md).
EXACT_NORMS = 3
# Pixels of the downscaled copy the other norms' statistics come from; its live instance norms are slow.
STATS_COPY_PIXELS = 500_000


def instance_norm_stats(model: nn.Module, x: Tensor) -> Stats:
    """Run ``model`` on ``x`` (already on its device/dtype) and record each InstanceNorm2d input's
    per-channel mean and biased variance, as float32 ``1xCx1x1`` tensors."""
    stats: Stats = {}

    def hook(mod: nn.Module, args: tuple[Tensor, ...]) -> None:
        mean, var = channel_mean_var(args[0][:1])
        stats[mod] = (mean, var)

    handles = [m.register_forward_pre_hook(hook) for m in instance_norms(model)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return stats


def _affine(mod: nn.InstanceNorm2d, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """float32 per-channel (scale, shift) so that the norm is ``x * scale + shift``."""
    scale = torch.rsqrt(var + mod.eps)
    if mod.affine:
        scale = scale * mod.weight.detach().float().view(1, -1, 1, 1)
    shift = -mean * scale
    if mod.affine:
        shift = shift + mod.bias.detach().float().view(1, -1, 1, 1)
    return scale, shift


def _norm_forward(mod: nn.InstanceNorm2d, mean: Tensor, var: Tensor) -> Callable[[Tensor], Tensor]:
    """Instance norm with recorded statistics: the affine map runs in the input's dtype and
    memory format (statistics and coefficients are float32)."""
    scale, shift = _affine(mod, mean, var)

    def forward(inp: Tensor) -> Tensor:
        return torch.addcmul(shift.to(inp.dtype), inp, scale.to(inp.dtype))

    return forward


@contextmanager
def frozen_instance_norm(stats: Stats) -> Iterator[None]:
    """Within the block, each InstanceNorm2d in ``stats`` normalises with the recorded statistics
    instead of its input's own; the original forwards are restored on exit, even on error.
    Norms without recorded statistics keep their own forward (the layout-preserving
    :class:`scenestyle.nn.InstanceNorm2d` on CPU).
    """
    saved: list[tuple[nn.Module, object]] = []
    try:
        for mod, (mean, var) in stats.items():
            saved.append((mod, mod.__dict__.get("forward")))
            mod.forward = _norm_forward(mod, mean, var)  # instance attribute shadows the class method
    except BaseException:
        _restore(saved)
        raise
    try:
        yield
    finally:
        _restore(saved)


def _restore(saved: list[tuple[nn.Module, object]]) -> None:
    for mod, previous in saved:
        if previous is None:
            mod.__dict__.pop("forward", None)
        else:
            mod.forward = previous


def whole_image_stats(
    model: nn.Module, x: Tensor, placement: Placement, tile: int, halo: int, multiple: int, max_pixels: int = STATS_MAX_PIXELS
) -> Stats:
    """Instance-norm statistics of the whole float32 CPU image ``x`` for a run in ``tile`` px tiles:
    one pass when ``x`` has at most ``max_pixels``, else exact for the first ``EXACT_NORMS`` norms
    and from a downscaled copy for the rest."""
    _, _, h, w = x.shape
    big = h * w > max_pixels
    stats = _one_pass_stats(model, x, placement, multiple, min(max_pixels, STATS_COPY_PIXELS) if big else max_pixels)
    if big:
        _exact_first_stats(model, x, placement, stats, tile, halo, multiple)
    return stats


def _stats_input(x: Tensor, multiple: int, max_pixels: int) -> Tensor:
    """The whole image, padded to ``multiple`` or, if larger than ``max_pixels``, downscaled."""
    _, _, h, w = x.shape
    if h * w <= max_pixels:
        return pad_to(x, padded_side(h, multiple), padded_side(w, multiple))
    f = math.sqrt(max_pixels / (h * w))
    hs = max(multiple, int(h * f) // multiple * multiple)
    ws = max(multiple, int(w * f) // multiple * multiple)
    return F.interpolate(x, size=(hs, ws), mode="bilinear", antialias=True, align_corners=False)


def _one_pass_stats(model: nn.Module, x: Tensor, placement: Placement, multiple: int, max_pixels: int) -> Stats:
    """Instance-norm statistics of the whole image from one pass; shrinks the stats image on OOM."""
    while True:
        try:
            return instance_norm_stats(model, to_placement(_stats_input(x, multiple, max_pixels), placement, model))
        except Exception as err:  # noqa: BLE001
            if not is_oom(err) or max_pixels <= 64 * 64:
                raise
            if placement.device.type == "cuda":
                torch.cuda.empty_cache()
            max_pixels //= 4


class _Reached(Exception):
    """Raised by a pre-hook to stop a forward at an instance norm, carrying its input."""


def _stop_here(_mod: nn.Module, args: tuple[Tensor, ...]) -> None:
    raise _Reached(args[0])


def _exact_first_stats(model: nn.Module, x: Tensor, placement: Placement, stats: Stats, tile: int, halo: int, multiple: int) -> None:
    """Replace, in place and in execution order, the first ``EXACT_NORMS`` entries of ``stats``
    with exact whole-image statistics: per norm, one tiled pass up to it (earlier norms frozen
    at their exact values), summing its input over each window's core only."""
    order = list(stats)  # insertion order is the order the norms ran in
    for k, norm in enumerate(order[:EXACT_NORMS]):
        handle = norm.register_forward_pre_hook(_stop_here)
        try:
            with frozen_instance_norm({n: stats[n] for n in order[:k]}):
                total, count = _norm_input_sums(model, x, placement, tile, halo, multiple)
        finally:
            handle.remove()
        mean = total[0] / count
        var = (total[1] / count - mean * mean).clamp_min(0)
        stats[norm] = (mean.float().view(1, -1, 1, 1), var.float().view(1, -1, 1, 1))


def _norm_input_sums(model: nn.Module, x: Tensor, placement: Placement, tile: int, halo: int, multiple: int) -> tuple[Tensor, int]:
    """Per-channel (sum, sum of squares) as float64 ``2xC`` and the pixel count of the input of
    the norm whose pre-hook raises ``_Reached``, over the image's tile cores."""
    _, _, h, w = x.shape
    core_h, core_w = even_core(h, tile, multiple), even_core(w, tile, multiple)
    total, count = None, 0
    for r0 in range(0, h, core_h):
        for c0 in range(0, w, core_w):
            r1, c1 = min(h, r0 + core_h), min(w, c0 + core_w)
            wr0, wc0, wr1, wc1 = max(0, r0 - halo), max(0, c0 - halo), min(h, r1 + halo), min(w, c1 + halo)
            padded = pad_to(x[..., wr0:wr1, wc0:wc1], round_up(wr1 - wr0, multiple), round_up(wc1 - wc0, multiple))
            try:
                model(to_placement(padded, placement, model))
                raise RuntimeError("an instance norm in the statistics was not reached")
            except _Reached as reached:
                act = reached.args[0]
            f = act.shape[-1] / padded.shape[-1]  # this layer's resolution relative to the input
            core = act[..., round((r0 - wr0) * f) : round((r1 - wr0) * f), round((c0 - wc0) * f) : round((c1 - wc0) * f)]
            if act.is_contiguous(memory_format=torch.channels_last):  # keep the fast channels_last statistics
                core = core.contiguous(memory_format=torch.channels_last)
            mean, var = channel_mean_var(core)
            pixels = core.shape[2] * core.shape[3]
            mean, var = mean.double().flatten(1), var.double().flatten(1)  # N×C; float64 sums over the whole photo
            part = torch.stack([mean.sum(0), (var + mean * mean).sum(0)]) * pixels
            total = part if total is None else total + part
            count += core.shape[0] * pixels
    return total, count
