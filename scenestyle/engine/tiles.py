"""Run a model over an image in tiles that fit memory, and retry with smaller tiles on out-of-memory.

The tile size comes from free memory (:mod:`scenestyle.engine.memory`); the windows and their
feathered blend from :mod:`scenestyle.engine.windows`; models with instance norms get whole-image
statistics first (:mod:`scenestyle.engine.norm_stats`); an OpenVINO model with instance norms is
tiled on its float32 torch twin, which can be given them. This module decides, retries and yields
finished output blocks (``model_blocks``) or gathers them (``run_model``).
The model's geometry (channels, scale, size multiple, halo) comes from its ``ModelMeta``; a
noise-level model (``meta.takes_sigma``) gets the caller's σ in every tile's forward.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from scenestyle.engine.convert import UnitRange
from scenestyle.engine.device import Placement, to_placement
from scenestyle.engine.memory import auto_tile, is_oom
from scenestyle.engine.norm_stats import STATS_MAX_PIXELS, Stats, frozen_instance_norm, instance_norms, whole_image_stats
from scenestyle.engine.openvino_backend import OVModel
from scenestyle.engine.windows import Block, blend_windows, pad_to, padded_side, round_up, unit_tensor
from scenestyle.errors import ScenestyleError, UsageError
from scenestyle.nn.meta import ModelMeta

__all__ = ["has_instance_norms", "model_blocks", "run_model", "run_model_many", "torch_twin"]


def _geometry(meta: ModelMeta, x: Tensor) -> tuple[int, int, int, int, int, int]:
    """(size multiple, scale, halo, output channels, padded height, padded width) of the model on ``x``;
    checks the input's channels."""
    if x.shape[1] != meta.in_channels:
        raise UsageError(f"the model takes {meta.in_channels}-channel images but the input has {x.shape[1]} channels")
    multiple = meta.size_multiple
    h, w = x.shape[-2:]
    return (multiple, meta.scale, round_up(meta.halo, multiple), meta.out_channels, padded_side(h, multiple), padded_side(w, multiple))


def torch_twin(model: nn.Module) -> nn.Module | None:
    """For a compiled OpenVINO model (maybe inside ``UnitRange``) made from a module with instance
    norms: that float32 torch module, wrapped alike; None for any other model."""
    inner = model.model if isinstance(model, UnitRange) else model
    if not isinstance(inner, OVModel) or not instance_norms(inner.reference):
        return None
    return UnitRange(inner.reference, (model.lo, model.hi)) if isinstance(model, UnitRange) else inner.reference


def has_instance_norms(model: nn.Module) -> bool:
    """Whether ``model`` (torch, or compiled by OpenVINO from a torch module) has instance norms."""
    return bool(instance_norms(torch_twin(model) or model))


def _check_input(x: Tensor) -> None:
    kinds = (torch.float32, torch.uint8, torch.uint16)  # integer samples become [0, 1] window by window
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.dtype not in kinds or x.device.type != "cpu":
        got = f"{tuple(x.shape)} {x.dtype} on {x.device}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"run_model needs a float32 (or uint8/uint16) 1xCxHxW tensor on the CPU; got {got}")


def _check_sigma(meta: ModelMeta, given: bool) -> None:
    """A noise-level model needs its σ, and no other model takes one."""
    if meta.takes_sigma and not given:
        raise ValueError(f"{meta.arch} takes a noise level: pass sigma")
    if given and not meta.takes_sigma:
        raise ValueError(f"{meta.arch} takes no noise level, but a sigma was passed")


def model_blocks(
    model: nn.Module,
    meta: ModelMeta,
    x: Tensor,
    placement: Placement,
    *,
    tile: int | None = None,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    stats_max_pixels: int = STATS_MAX_PIXELS,
    sigma: float | None = None,
    out_bytes_per_sample: int = 1,
) -> Iterator[Block]:
    """Run a prepared ``model`` over a float32 ``1xCxHxW`` CPU image (or its uint8/uint16 samples) tile by tile, yielding each
    finished output block ``(first_row, first_col, block)`` (float32 ``C'xNxM``, valid until the next
    block is asked for, the receiver's to change in place) window row by window row, left to right.
    No full-size float output is allocated.

    ``meta`` describes ``model``. ``sigma``: the noise level ([0, 1] units) a noise-level
    model (``meta.takes_sigma``) removes, the same in every tile so that they blend seamlessly;
    None for every other model.
    ``tile``: None picks from free memory (whole image when it fits), 0 runs the whole image,
    N runs N x N input cores (a multiple of ``meta.size_multiple``), each seen with
    ``meta.halo`` pixels of context per side. On out-of-memory the tile is halved and the run
    restarts: the blocks start again from the top. ``out_bytes_per_sample``: what the receiver
    keeps per output sample (the memory budget leaves room for it).
    """
    _check_input(x)
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1 (got {batch_size})")
    _check_sigma(meta, sigma is not None)
    args = () if sigma is None else (float(sigma),)
    multiple, scale, halo, out_ch, hp, wp = _geometry(meta, x)
    _, _, h, w = x.shape
    out_shape = (out_ch, h * scale, w * scale)
    out_bytes = math.prod(out_shape) * out_bytes_per_sample
    tile = _resolve_tile(model, meta, placement, tile, hp, wp, halo, batch_size, out_bytes, stats_max_pixels)
    twin = torch_twin(model)
    if twin is not None and _needs_tiles(tile, hp, wp, halo):
        # OpenVINO runs a model with instance norms whole; its tiles need the whole image's
        # statistics, which only the torch module (float32) can be given
        model, placement = twin, dataclasses.replace(placement, dtype=torch.float32, channels_last=False, backend="torch")
    stats: Stats | None = None

    def forward(crops: Tensor) -> Tensor:  # a batch of windows through the model, norms frozen
        # no_grad, not inference_mode: the blocks are the receiver's to change in place
        with torch.no_grad(), frozen_instance_norm(stats or {}):
            y = model(to_placement(crops, placement, model), *args)
        _check_output(y, out_ch, crops.shape[-2], crops.shape[-1], scale)
        return y

    while True:
        try:
            if stats is None and instance_norms(model) and _needs_tiles(tile, hp, wp, halo):
                stats = whole_image_stats(model, unit_tensor(x), placement, tile, halo, multiple, stats_max_pixels)
            yield from blend_windows(x, out_shape, tile, halo, multiple, scale, batch_size, forward, progress)
            return
        except Exception as err:  # noqa: BLE001 - only OOM is retried, the rest re-raised
            if not is_oom(err):
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


def run_model(
    model: nn.Module,
    meta: ModelMeta,
    x: Tensor,
    placement: Placement,
    *,
    tile: int | None = None,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    stats_max_pixels: int = STATS_MAX_PIXELS,
    sigma: float | None = None,
) -> Tensor:
    """``model_blocks`` gathered into the float32 ``1xC'x(H*s)x(W*s)`` CPU result."""
    _check_input(x)
    _, _, h, w = x.shape
    whole = torch.empty((meta.out_channels, h * meta.scale, w * meta.scale), dtype=torch.float32)
    blocks = model_blocks(
        model, meta, x, placement, tile=tile, batch_size=batch_size, progress=progress, stats_max_pixels=stats_max_pixels,
        sigma=sigma, out_bytes_per_sample=4,
    )  # fmt: skip
    for r, c, block in blocks:
        whole[:, r : r + block.shape[1], c : c + block.shape[2]] = block
    return whole.unsqueeze(0)


def _resolve_tile(
    model: nn.Module,
    meta: ModelMeta,
    placement: Placement,
    tile: int | None,
    hp: int,
    wp: int,
    halo: int,
    batch_size: int,
    out_bytes: int,
    stats_max_pixels: int,
) -> int:
    """The core tile size to run with: ``tile`` checked, or chosen from free memory when None."""
    multiple = meta.size_multiple
    if tile is None:
        if has_instance_norms(model) and hp * wp <= stats_max_pixels:
            # the exact statistics pass is a whole-image forward already: tiling after it would
            # only add a second pass (out-of-memory still halves from here)
            return 0
        return auto_tile(model, meta, placement, hp, wp, halo, batch_size, out_bytes)
    if tile < 0 or tile % multiple:
        hint = f"; try {max(multiple, tile // multiple * multiple)}" if tile > 0 else ""
        raise UsageError(f"tile must be 0 (whole image) or a positive multiple of {multiple} for this model (got {tile}){hint}")
    return tile


def run_model_many(
    model: nn.Module,
    meta: ModelMeta,
    x: Tensor,
    placement: Placement,
    *,
    tile: int | None = None,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    sigma: Sequence[float] | None = None,
) -> Tensor:
    """``run_model`` over ``N×C×H×W`` same-size images: up to ``batch_size`` whole images per forward pass.

    ``sigma``: a noise-level model's σ for each image (N floats), None for other models.
    Images that need tiles, and a stacked batch that runs out of memory, go one at a time
    through ``run_model`` (tiles are then what gets batched).
    """
    n = x.shape[0]
    if x.dim() != 4 or n == 0:
        raise ValueError(f"run_model_many needs an NxCxHxW tensor; got {tuple(x.shape)}")
    _check_sigma(meta, sigma is not None)
    if sigma is not None and len(sigma) != n:
        raise ValueError(f"run_model_many got {len(sigma)} sigmas for {n} images")
    _, c, h, w = x.shape
    one_by_one = lambda: torch.cat(
        [
            run_model(
                model,
                meta,
                x[i : i + 1],
                placement,
                tile=tile,
                batch_size=batch_size,
                progress=progress,
                sigma=None if sigma is None else sigma[i],
            )
            for i in range(n)
        ]
    )
    if n == 1 or batch_size == 1:
        return one_by_one()
    multiple, scale, halo, out_ch, hp, wp = _geometry(meta, x)
    k = min(n, batch_size)
    out_bytes = 4 * n * out_ch * h * scale * w * scale
    # auto: a stacked batch of k images must fit whole, judged as one k-times-taller image
    chosen = _resolve_tile(model, meta, placement, tile, hp * k if tile is None else hp, wp, halo, 1, out_bytes, STATS_MAX_PIXELS * k)
    if _needs_tiles(chosen, hp, wp, halo) or (tile is None and chosen != 0):
        return one_by_one()
    out = torch.empty((n, out_ch, h * scale, w * scale), dtype=torch.float32)
    try:
        with torch.inference_mode():
            if progress:
                progress(0, n)
            for b0 in range(0, n, batch_size):
                # one σ per stacked image: FFDNet takes an (N,) tensor
                args = () if sigma is None else (torch.tensor(sigma[b0 : b0 + batch_size], dtype=torch.float32),)
                y = model(to_placement(pad_to(x[b0 : b0 + batch_size], hp, wp), placement, model), *args)
                _check_output(y, out_ch, hp, wp, scale)
                out[b0 : b0 + batch_size] = y[:, :, : h * scale, : w * scale].float().cpu()
                if progress:
                    progress(min(n, b0 + batch_size), n)
        return out
    except Exception as err:  # noqa: BLE001 - only OOM falls back, the rest re-raised
        if not is_oom(err):
            raise
        if placement.device.type == "cuda":
            torch.cuda.empty_cache()
        return one_by_one()


def _needs_tiles(tile: int, hp: int, wp: int, halo: int) -> bool:
    return tile != 0 and tile + 2 * halo < max(hp, wp)


def _check_output(y: Tensor, out_ch: int, win_h: int, win_w: int, scale: int) -> None:
    if tuple(y.shape[1:]) != (out_ch, win_h * scale, win_w * scale):
        raise ValueError(
            f"model output {tuple(y.shape[1:])} for a {win_h}x{win_w} input does not match its "
            f"declared out_channels={out_ch}, scale={scale}"
        )
