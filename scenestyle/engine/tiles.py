"""Tiled inference: seam-free, memory-bounded, with whole-image instance-norm statistics.

Geometry. The input is (virtually) reflect-padded to the model's ``size_multiple``. Along
each axis the padded length is covered by windows of one fixed size ``tile + 2*halo``
(clamped inside the image, so every window has the same shape and tiles can be batched).
Every pixel lies in some window at least ``halo`` pixels from that window's interior
edges. Window outputs are blended with separable feathering weights: zero for the outer
``halo/2`` of an interior edge (the part whose receptive field is cut off), then a
linear ramp over ``halo`` pixels, one elsewhere; the sum of weights is normalised at the
end. Because the weights are separable and the windows form a grid, the weight sum is
the outer product of two 1-D sums, so no full-size weight map is ever allocated.

Instance norm. A CycleGAN generator normalises each feature map by its own mean and
variance; run per tile, every tile gets different statistics and the tiles come out in
different colours. When an image needs more than one window we first run the whole
image once (downscaled to at most ``stats_max_pixels``, an approximation: a smaller image
has slightly less high-frequency energy, so variances are a little lower), record every
``nn.InstanceNorm2d`` input's per-channel mean and variance, and run the tiles with those
statistics frozen (see :func:`frozen_instance_norm`).

Memory. Only partial sums are float32: one window of output (the strip) and the rows
the next window row overlaps (the carry, full width, ~``2*halo*scale`` rows). Finished
blocks go to a ``sink`` as soon as no later window touches them; without one they are
copied into a float32 output. A 20 MP photo through a 4x upscaler is 320 MP x 3 x 4 B =
3.8 GB of float output, so the upscale task passes a sink that quantises straight into
the 8/16-bit buffer the writer encodes.
"""

from __future__ import annotations

import math
import os
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scenestyle.engine.device import Placement
from scenestyle.errors import ScenestyleError, UsageError
from scenestyle.nn import channel_mean_var

__all__ = [
    "run_model",
    "even_core",
    "BlockSink",
    "instance_norm_stats",
    "frozen_instance_norm",
    "window_starts",
    "available_memory",
    "bytes_per_input_pixel",
]

STATS_MAX_PIXELS = 1_500_000
# Above STATS_MAX_PIXELS, the first this many instance norms get exact whole-image statistics from
# tiled passes over the network up to each of them (cheap: the early layers are a few % of the
# MACs); the rest come from a downscaled copy. Measured with random ResNet-9 weights on a real
# 1536x1024 photo, fp32: 29.9 dB from the whole-image output with all from the copy, 37.4 dB
# with the first three exact (21.0 -> 28.9 dB on a synthetic noise-textured image).
EXACT_NORMS = 3
# Pixels of the downscaled copy the other norms' statistics come from. Its live instance norms
# are slow (a 1.5 MP copy took 20 s of a 43 s ResNet-9 run at 1536x1536, bf16, 2 cores).
STATS_COPY_PIXELS = 500_000
_BUDGET_FRACTION = 0.5  # of free memory, for activations of one batch of windows
# CPU convolutions reach full speed with tiles of a few MP, and laptops have other work: the
# activation budget is capped, and shrinks as the photo's own buffers (input + output, 12 bytes per
# RGB pixel each) grow, so a 25 MP photo peaks under 2 GB of RSS instead of using whatever is free.
CPU_WORK_BUDGET = (256 << 20, 1 << 30)  # (floor, ceiling)
_CPU_WORK_TOTAL = 5 << 28  # 1.25 GiB shared by the tiles and four photo-sized float buffers
_CPU_ACTIVATION_FACTOR = 4  # live tensors ~ 4x the largest layer output (input, output, skips, workspace)
_CUDA_SAFETY = 1.5
# Receives finished output blocks: (first row, first column, float32 C×N×M view, valid during the call and
# the sink's to change in place).
BlockSink = Callable[[int, int, Tensor], None]


# ---------------------------------------------------------------- geometry


def window_starts(length: int, window: int, core: int, halo: int) -> list[int]:
    """Starts of equal windows of size ``window`` covering ``[0, length)`` with cores of ``core`` pixels.

    Each core ``[c, c + core)`` lies inside its window at least ``halo`` pixels from any
    edge that is not an image border. ``window >= length`` gives a single window at 0.
    """
    if window >= length:
        return [0]
    starts: list[int] = []
    for c in range(0, length, core):
        s = min(max(c - halo, 0), length - window)
        if not starts or starts[-1] != s:
            starts.append(s)
    return starts


def even_core(length: int, core: int, multiple: int = 1) -> int:
    """The core size (at most ``core``, a multiple of ``multiple``) that covers ``length`` with as
    many windows as ``core`` needs, spread evenly: a last window clamped inside the image would
    otherwise overlap its neighbour by up to a whole tile (wasted compute, a tall carry band)."""
    if core >= length:
        return core
    n = -(-length // core)
    return min(core, _round_up(-(-length // n), multiple))


def _axis_weights(start: int, size: int, length: int, scale: int, halo: int) -> Tensor:
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


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


# ---------------------------------------------------------------- instance norm


def _instance_norms(model: nn.Module) -> list[nn.InstanceNorm2d]:
    # With running stats in eval mode a norm already uses fixed statistics: nothing to freeze.
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.InstanceNorm2d) and not (m.track_running_stats and not m.training)
    ]


def instance_norm_stats(model: nn.Module, x: Tensor) -> dict[nn.Module, tuple[Tensor, Tensor]]:
    """Run ``model`` on ``x`` (already on its device/dtype) and record each InstanceNorm2d input's
    per-channel mean and biased variance, as float32 ``1xCx1x1`` tensors."""
    stats: dict[nn.Module, tuple[Tensor, Tensor]] = {}

    def hook(mod: nn.Module, args: tuple[Tensor, ...]) -> None:
        mean, var = channel_mean_var(args[0][:1])
        stats[mod] = (mean, var)

    handles = [m.register_forward_pre_hook(hook) for m in _instance_norms(model)]
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
def frozen_instance_norm(stats: dict[nn.Module, tuple[Tensor, Tensor]]) -> Iterator[None]:
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


def _stats_input(x: Tensor, multiple: int, max_pixels: int) -> Tensor:
    """The whole image, padded to ``multiple`` or, if larger than ``max_pixels``, downscaled."""
    _, _, h, w = x.shape
    if h * w <= max_pixels:
        return _pad_to(x, _round_up(h, multiple), _round_up(w, multiple))
    f = math.sqrt(max_pixels / (h * w))
    hs = max(multiple, int(h * f) // multiple * multiple)
    ws = max(multiple, int(w * f) // multiple * multiple)
    return F.interpolate(x, size=(hs, ws), mode="bilinear", antialias=True, align_corners=False)


# ---------------------------------------------------------------- memory


def available_memory(device: torch.device) -> int:
    """Free bytes: CUDA ``mem_get_info``; CPU MemAvailable, capped by a cgroup limit if any."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:  # containers: the cgroup v2 limit is what the kernel kills us at
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(int(free), 0)


_BPP: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, torch.dtype], float]]" = weakref.WeakKeyDictionary()


def bytes_per_input_pixel(model: nn.Module, placement: Placement) -> float:
    """Activation bytes one input pixel costs, from a probe forward on a small input (cached).

    CUDA: measured peak allocation. CPU (no allocator statistics): the largest leaf-module
    output times a factor of 4, covering the layer input, skip connections and workspace.
    """
    per_model = _BPP.setdefault(model, {})
    key = (str(placement.device), placement.dtype)
    if key in per_model:
        return per_model[key]
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    side = _round_up(32, multiple)
    x = _to_placement(torch.rand(1, int(getattr(model, "in_channels", 3)), side, side), placement, model)
    with torch.inference_mode():
        if placement.device.type == "cuda":
            torch.cuda.synchronize(placement.device)
            base = torch.cuda.memory_allocated(placement.device)
            torch.cuda.reset_peak_memory_stats(placement.device)
            model(x)
            peak = torch.cuda.max_memory_allocated(placement.device) - base
            bpp = _CUDA_SAFETY * peak / (side * side)
        else:
            largest = [0]

            def hook(_m: nn.Module, _a: object, out: object) -> None:
                if isinstance(out, Tensor):
                    largest[0] = max(largest[0], out.numel() * out.element_size())

            leaves = [m for m in model.modules() if not list(m.children())]
            handles = [m.register_forward_hook(hook) for m in leaves]
            try:
                model(x)
            finally:
                for h in handles:
                    h.remove()
            bpp = _CPU_ACTIVATION_FACTOR * largest[0] / (side * side)
    per_model[key] = float(bpp)
    return per_model[key]


def _auto_tile(model: nn.Module, placement: Placement, hp: int, wp: int, halo: int, multiple: int, batch_size: int, out_bytes: int) -> int:
    """0 (whole image) if it fits the memory budget, else the largest core tile that does."""
    free = available_memory(placement.device)
    if placement.device.type == "cpu":
        free -= out_bytes  # the CPU output buffer competes for the same memory
    budget = _BUDGET_FRACTION * max(free, 0)
    if placement.device.type == "cpu":
        floor, ceiling = CPU_WORK_BUDGET
        budget = min(budget, max(floor, min(ceiling, _CPU_WORK_TOTAL - 4 * out_bytes)))
    scale = int(getattr(model, "scale", 1) or 1)
    # plus the float32 partial sums of one window of output (the blending strip)
    bpp = bytes_per_input_pixel(model, placement) + 4 * int(getattr(model, "out_channels", 3)) * scale * scale
    if hp * wp * bpp <= budget:
        return 0
    side = int(math.sqrt(budget / (bpp * batch_size)))
    # below ~64 px the halo dominates and time explodes; the OOM retry still goes lower if needed
    return max(_round_up(64, multiple), (side - 2 * halo) // multiple * multiple)


# ---------------------------------------------------------------- running


def _to_placement(x: Tensor, placement: Placement, model: nn.Module | None = None) -> Tensor:
    # a model that maps its input's value range itself (UnitRange) takes float32 and casts after
    x = x.to(device=placement.device, dtype=getattr(model, "input_dtype", None) or placement.dtype)
    return x.contiguous(memory_format=torch.channels_last) if placement.channels_last else x


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    # reflect needs the pad smaller than the side; only images thinner than size_multiple miss that
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)  # CPU allocator


def _geometry(model: nn.Module, x: Tensor) -> tuple[int, int, int, int, int, int]:
    """(size multiple, scale, halo, output channels, padded height, padded width) of ``model`` on ``x``;
    checks the input's channels."""
    in_ch = getattr(model, "in_channels", None)
    if in_ch is not None and x.shape[1] != in_ch:
        raise UsageError(f"the model takes {in_ch}-channel images but the input has {x.shape[1]} channels")
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    halo = _round_up(int(getattr(model, "halo", 0) or 0), multiple)
    h, w = x.shape[-2:]
    return (multiple, int(getattr(model, "scale", 1) or 1), halo, int(getattr(model, "out_channels", x.shape[1])),
            _round_up(h, multiple), _round_up(w, multiple))


def run_model(
    model: nn.Module,
    x: Tensor,
    placement: Placement,
    *,
    tile: int | None = None,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    stats_max_pixels: int = STATS_MAX_PIXELS,
    sink: BlockSink | None = None,
) -> Tensor | None:
    """Run a prepared ``model`` over a float32 ``1xCxHxW`` CPU image, tile by tile; float32 ``1xC'x(H*s)x(W*s)`` CPU result.

    ``tile``: None picks from free memory (whole image when it fits), 0 runs the whole image,
    N runs N x N input cores (a multiple of the model's ``size_multiple``), each seen with
    ``model.halo`` pixels of context per side. On out-of-memory the tile is halved and the
    run restarts. ``sink``: instead of returning the result, hand each finished output block
    over as ``sink(first_row, first_col, block)`` (float32 ``C'xNxM``, a view valid only during
    the call, which the sink may change in place; blocks come window row by window row, left to right), so no full-size float
    output is ever allocated; returns None. After an out-of-memory restart the blocks start
    again from the top.
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.dtype != torch.float32 or x.device.type != "cpu":
        got = f"{tuple(x.shape)} {x.dtype} on {x.device}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"run_model needs a float32 1xCxHxW tensor on the CPU; got {got}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1 (got {batch_size})")
    multiple, scale, halo, out_ch, hp, wp = _geometry(model, x)
    _, _, h, w = x.shape
    out_shape = (out_ch, h * scale, w * scale)
    # a sink's owner keeps a byte or two per output sample; without one the output is float32
    out_bytes = math.prod(out_shape) * (1 if sink else 4)
    tile = _resolve_tile(model, placement, tile, hp, wp, halo, multiple, batch_size, out_bytes, stats_max_pixels)
    whole = torch.empty(out_shape, dtype=torch.float32) if sink is None else None

    def fill(r: int, c: int, block: Tensor) -> None:  # without a sink: the float32 output, block by block
        whole[:, r : r + block.shape[1], c : c + block.shape[2]] = block

    stats: dict[nn.Module, tuple[Tensor, Tensor]] | None = None
    while True:
        try:
            with torch.inference_mode():
                if stats is None and _instance_norms(model) and _needs_tiles(tile, hp, wp, halo):
                    big = h * w > stats_max_pixels
                    stats = _whole_image_stats(model, x, placement, multiple,
                                               min(stats_max_pixels, STATS_COPY_PIXELS) if big else stats_max_pixels)
                    if big:
                        _exact_first_stats(model, x, placement, stats, tile, halo, multiple)
                _run_tiles(model, x, placement, out_shape, tile, halo, multiple, scale, batch_size, progress,
                           stats or {}, sink or fill)
            return None if whole is None else whole.unsqueeze(0)
        except Exception as err:  # noqa: BLE001 - only OOM is retried, the rest re-raised
            if not _is_oom(err):
                raise
            if placement.device.type == "cuda":
                torch.cuda.empty_cache()
            smaller = (tile if tile else max(hp, wp)) // 2 // multiple * multiple
            if smaller < max(multiple, 16):
                raise ScenestyleError(
                    f"out of memory on {placement.device} even with {tile or max(hp, wp)} px tiles; "
                    "use --device cpu, a smaller --batch-size, or a smaller image"
                ) from err
            tile = smaller


def _resolve_tile(model: nn.Module, placement: Placement, tile: int | None, hp: int, wp: int, halo: int,
                  multiple: int, batch_size: int, out_bytes: int, stats_max_pixels: int) -> int:
    """The core tile size to run with: ``tile`` checked, or chosen from free memory when None."""
    if tile is None:
        if _instance_norms(model) and hp * wp <= stats_max_pixels:
            # the exact statistics pass is a whole-image forward already: tiling after it would
            # only add a second pass (out-of-memory still halves from here)
            return 0
        return _auto_tile(model, placement, hp, wp, halo, multiple, batch_size, out_bytes)
    if tile < 0 or tile % multiple:
        hint = f"; try {max(multiple, tile // multiple * multiple)}" if tile > 0 else ""
        raise UsageError(f"tile must be 0 (whole image) or a positive multiple of {multiple} for this model (got {tile}){hint}")
    return tile


def run_model_many(
    model: nn.Module,
    x: Tensor,
    placement: Placement,
    *,
    tile: int | None = None,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """``run_model`` over ``N×C×H×W`` same-size images: up to ``batch_size`` whole images per forward pass.

    Images that need tiles, and a stacked batch that runs out of memory, go one at a time
    through ``run_model`` (tiles are then what gets batched).
    """
    n = x.shape[0]
    if x.dim() != 4 or n == 0:
        raise ValueError(f"run_model_many needs an NxCxHxW tensor; got {tuple(x.shape)}")
    _, c, h, w = x.shape
    one_by_one = lambda: torch.cat([run_model(model, x[i : i + 1], placement, tile=tile, batch_size=batch_size,
                                              progress=progress) for i in range(n)])
    if n == 1 or batch_size == 1:
        return one_by_one()
    multiple, scale, halo, out_ch, hp, wp = _geometry(model, x)
    k = min(n, batch_size)
    out_bytes = 4 * n * out_ch * h * scale * w * scale
    # auto: a stacked batch of k images must fit whole, judged as one k-times-taller image
    chosen = _resolve_tile(model, placement, tile, hp * k if tile is None else hp, wp, halo, multiple, 1,
                           out_bytes, STATS_MAX_PIXELS * k)
    if _needs_tiles(chosen, hp, wp, halo) or (tile is None and chosen != 0):
        return one_by_one()
    out = torch.empty((n, out_ch, h * scale, w * scale), dtype=torch.float32)
    try:
        with torch.inference_mode():
            if progress:
                progress(0, n)
            for b0 in range(0, n, batch_size):
                y = model(_to_placement(_pad_to(x[b0 : b0 + batch_size], hp, wp), placement, model))
                _check_output(y, out_ch, hp, wp, scale)
                out[b0 : b0 + batch_size] = y[:, :, : h * scale, : w * scale].float().cpu()
                if progress:
                    progress(min(n, b0 + batch_size), n)
        return out
    except Exception as err:  # noqa: BLE001 - only OOM falls back, the rest re-raised
        if not _is_oom(err):
            raise
        if placement.device.type == "cuda":
            torch.cuda.empty_cache()
        return one_by_one()


def _needs_tiles(tile: int, hp: int, wp: int, halo: int) -> bool:
    return tile != 0 and tile + 2 * halo < max(hp, wp)


def _whole_image_stats(model: nn.Module, x: Tensor, placement: Placement, multiple: int, max_pixels: int) -> dict:
    """Instance-norm statistics of the whole image; shrinks the stats image on OOM."""
    while True:
        try:
            return instance_norm_stats(model, _to_placement(_stats_input(x, multiple, max_pixels), placement, model))
        except Exception as err:  # noqa: BLE001
            if not _is_oom(err) or max_pixels <= 64 * 64:
                raise
            if placement.device.type == "cuda":
                torch.cuda.empty_cache()
            max_pixels //= 4


class _Reached(Exception):
    """Raised by a pre-hook to stop a forward at an instance norm, carrying its input."""


def _stop_here(_mod: nn.Module, args: tuple[Tensor, ...]) -> None:
    raise _Reached(args[0])


def _exact_first_stats(model: nn.Module, x: Tensor, placement: Placement, stats: dict,
                       tile: int, halo: int, multiple: int) -> None:
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


def _norm_input_sums(model: nn.Module, x: Tensor, placement: Placement, tile: int, halo: int,
                     multiple: int) -> tuple[Tensor, int]:
    """Per-channel (sum, sum of squares) as float64 ``2xC`` and the pixel count of the input of
    the norm whose pre-hook raises ``_Reached``, over the image's tile cores."""
    _, _, h, w = x.shape
    core_h, core_w = even_core(h, tile, multiple), even_core(w, tile, multiple)
    total, count = None, 0
    for r0 in range(0, h, core_h):
        for c0 in range(0, w, core_w):
            r1, c1 = min(h, r0 + core_h), min(w, c0 + core_w)
            wr0, wc0, wr1, wc1 = max(0, r0 - halo), max(0, c0 - halo), min(h, r1 + halo), min(w, c1 + halo)
            padded = _pad_to(x[..., wr0:wr1, wc0:wc1], _round_up(wr1 - wr0, multiple), _round_up(wc1 - wc0, multiple))
            try:
                model(_to_placement(padded, placement, model))
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


def _check_output(y: Tensor, out_ch: int, win_h: int, win_w: int, scale: int) -> None:
    if tuple(y.shape[1:]) != (out_ch, win_h * scale, win_w * scale):
        raise ValueError(f"model output {tuple(y.shape[1:])} for a {win_h}x{win_w} input does not match its "
                         f"declared out_channels={out_ch}, scale={scale}")


def _run_tiles(
    model: nn.Module,
    x: Tensor,
    placement: Placement,
    out_shape: tuple[int, int, int],
    tile: int,
    halo: int,
    multiple: int,
    scale: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    stats: dict[nn.Module, tuple[Tensor, Tensor]],
    sink: BlockSink,
) -> None:
    """Windows in row-major order; each finished output block goes to ``sink`` as soon as no later
    window touches it.

    Only partial sums are held in float: a ``strip`` of one window (output columns from the
    current window's left edge) and a ``carry`` of the rows the next window row will add to
    (full width, about ``2 * halo * scale`` rows). After window (i, j) the columns left of
    window j + 1 are final in the rows above window row i + 1; they are normalised and handed
    over, the rows below go to the next carry, and the strip slides right.
    """
    _, _, h, w = x.shape
    out_ch, out_h, out_w = out_shape
    hp, wp = _round_up(h, multiple), _round_up(w, multiple)
    core = tile if tile else max(hp, wp)
    core_h, core_w = even_core(hp, core, multiple), even_core(wp, core, multiple)
    win_h, win_w = min(core_h + 2 * halo, hp), min(core_w + 2 * halo, wp)
    ys = window_starts(hp, win_h, core_h, halo)
    xs = window_starts(wp, win_w, core_w, halo)
    wy = [_axis_weights(s, win_h, hp, scale, halo) for s in ys]
    wx = [_axis_weights(s, win_w, wp, scale, halo) for s in xs]
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
        with frozen_instance_norm(stats):
            y = model(_to_placement(_pad_to(x, win_h, win_w), placement, model))
        _check_output(y, out_ch, win_h, win_w, scale)
        sink(0, 0, y[0, :, :out_h, :out_w].float().cpu())
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
    with frozen_instance_norm(stats):
        for b0 in range(0, total, batch_size):
            batch = windows[b0 : b0 + batch_size]
            crops = [_pad_to(x[:, :, ys[i] : min(ys[i] + win_h, h), xs[j] : min(xs[j] + win_w, w)], win_h, win_w) for i, j in batch]
            y = model(_to_placement(torch.cat(crops), placement, model))
            _check_output(y, out_ch, win_h, win_w, scale)
            y = y.float().cpu()
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
                sink(top, left, done)
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
