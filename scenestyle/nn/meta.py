"""What the engine, the trainers and evaluation need to know about a generator, in one table.

Architecture files hold a network's forward and weights only. Everything else about a model —
its channels, scale, the size its input is padded to, the halo its tiles need, its value range,
its task, whether its forward takes a noise level σ — is computed here, once, from the
registered name and the constructor kwargs (as ``weights.lock``, the exported metadata or
``detect_arch`` give them). ``scenestyle.loading.load_model`` returns the :class:`ModelMeta`
beside the module; the trainers call :func:`describe` for the generator they build.

Adding a generator: register its builder in its file, then add one entry to ``TABLE``
(``tests/test_nn.py`` checks every registered generator has one and that halos cover the
measured receptive field).

A generator whose last stage is a fixed image filter (no parameters, stride 1) may hold it as its
``finish`` submodule (``nn.Identity`` when there is none): :func:`split_finish` parts it from the
layers before, so a runtime can run the two apart (OpenVINO compiles the convs and leaves the
filter to PyTorch, which runs it in bands and frees its buffers as it goes).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from scenestyle._strokes import Strokes

from ._blocks import round_up
from ._registry import ARCHS

__all__ = ["ModelMeta", "TABLE", "describe", "split_finish", "UNIT", "SIGNED"]

UNIT = (0.0, 1.0)  # restoration networks: images in [0, 1]
SIGNED = (-1.0, 1.0)  # CycleGAN-style generators: tanh heads


@dataclass(frozen=True, kw_only=True)
class ModelMeta:
    """The facts about a model that its forward does not say; one per loaded or built generator."""

    arch: str  # registered architecture name
    task: str  # "style" | "upscale" | "denoise"
    in_channels: int
    out_channels: int
    scale: int  # output side / input side
    size_multiple: int  # input height and width are padded to a multiple of this
    halo: int  # receptive-field margin (input pixels) a tile needs per side to match the whole image
    value_range: tuple[float, float]  # what forward takes and returns
    takes_sigma: bool = False  # forward(x, sigma): a noise-level-conditioned denoiser (FFDNet)
    sigma_max: float | None = None  # takes_sigma: the largest σ ([0, 1] units) it was trained for
    fixed_sigma: float | None = None  # a fixed-σ denoiser's σ from weights.lock (set by the loader, per weights)
    strokes: Strokes | None = None  # a style's strokes from weights.lock: amount, length, chroma median, edges


# ---- one function per architecture family: (registered name, full constructor kwargs) -> ModelMeta


def _resnet(arch: str, *, input_nc: int, output_nc: int, n_blocks: int, **_: Any) -> ModelMeta:
    # Receptive-field radius: 11 + 8 per block (two 3x3 convs at stride 4), as measured from
    # gradients in tests/test_nn.py; 9 blocks -> 84. With instance norm a tile also needs
    # whole-image statistics to match whole-image output (engine.norm_stats).
    return ModelMeta(
        arch=arch,
        task="style",
        in_channels=input_nc,
        out_channels=output_nc,
        scale=1,
        size_multiple=4,
        halo=round_up(11 + 8 * n_blocks, 4),
        value_range=SIGNED,
    )


def _unet(arch: str, *, input_nc: int, output_nc: int, num_downs: int, **_: Any) -> ModelMeta:
    # The bottleneck sees (nearly) the whole input, so tiles can never match the whole image
    # exactly: the halo is a guess.
    return ModelMeta(
        arch=arch,
        task="style",
        in_channels=input_nc,
        out_channels=output_nc,
        scale=1,
        size_multiple=2**num_downs,
        halo=2**num_downs,
        value_range=SIGNED,
    )


def _compact(
    arch: str,
    *,
    input_nc: int,
    output_nc: int,
    n_blocks: int,
    colour_pool: int,
    upsample: str,
    flatten: int = 0,
    flatten_passes: int = 2,
    **_: Any,
) -> ModelMeta:
    # 15 + 8 per block (two 3x3 convs at stride 4), as measured from gradients in
    # tests/test_nn.py (9 blocks -> 88); the colour pool's blur, bilinear ups and each
    # flattening pass reach further.
    halo = 15 + 8 * n_blocks + colour_pool // 2 + 3 * (upsample == "bilinear") + flatten * flatten_passes
    return ModelMeta(
        arch=arch,
        task="style",
        in_channels=input_nc,
        out_channels=output_nc,
        scale=1,
        size_multiple=4,
        halo=round_up(halo, 4),
        value_range=SIGNED,
    )


# Tile overlap (input pixels) for deep RRDB bodies: the theoretical receptive field of 23 RRDBs
# is hundreds of pixels, the effective one far smaller. Estimates by scale.
_RRDB_HALO_CAP = {4: 24, 2: 40, 1: 64}


def _rrdbnet(arch: str, *, num_in_ch: int, num_out_ch: int, scale: int, num_block: int, **_: Any) -> ModelMeta:
    # The body runs at a stride of 4/scale input pixels (scales 2 and 1 pixel-unshuffle first),
    # each RRDB chains 15 3x3 convs and the rest adds 4 (measured in tests/test_nn.py).
    multiple = {4: 1, 2: 2, 1: 4}[scale]
    theoretical = 4 // scale * (15 * num_block + 4)
    return ModelMeta(
        arch=arch,
        task="upscale" if scale > 1 else "denoise",
        in_channels=num_in_ch,
        out_channels=num_out_ch,
        scale=scale,
        size_multiple=multiple,
        halo=round_up(min(theoretical, _RRDB_HALO_CAP[scale]), multiple),
        value_range=UNIT,
    )


def _srvgg(arch: str, *, num_in_ch: int, num_out_ch: int, num_conv: int, upscale: int, **_: Any) -> ModelMeta:
    # num_conv + 2 chained 3x3 convs at input resolution: exact
    return ModelMeta(
        arch=arch,
        task="upscale" if upscale > 1 else "denoise",
        in_channels=num_in_ch,
        out_channels=num_out_ch,
        scale=upscale,
        size_multiple=1,
        halo=num_conv + 2,
        value_range=UNIT,
    )


def _dncnn(arch: str, *, in_nc: int, out_nc: int, nb: int, **_: Any) -> ModelMeta:
    # nb chained 3x3 convs: exact receptive-field radius
    return ModelMeta(arch=arch, task="denoise", in_channels=in_nc, out_channels=out_nc, scale=1, size_multiple=1, halo=nb, value_range=UNIT)


def _ffdnet(arch: str, *, in_nc: int, out_nc: int, nb: int, **_: Any) -> ModelMeta:
    # nb chained 3x3 convs at half resolution reach nb half-pixels, i.e. 2·nb input pixels, plus
    # one for the far pixel of the 2×2 block the output pixel shares. σ: KAIR trained 0..75.
    return ModelMeta(
        arch=arch,
        task="denoise",
        in_channels=in_nc,
        out_channels=out_nc,
        scale=1,
        size_multiple=2,
        halo=2 * nb + 1,
        value_range=UNIT,
        takes_sigma=True,
        sigma_max=75 / 255,
    )


# Registered name -> family function. Named variants fix what their builder fixes (n_blocks=9, ...).
TABLE: dict[str, Callable[..., ModelMeta]] = {
    "ResnetGenerator": _resnet,
    "resnet_9blocks": lambda arch, **kw: _resnet(arch, n_blocks=9, **kw),
    "resnet_6blocks": lambda arch, **kw: _resnet(arch, n_blocks=6, **kw),
    "UnetGenerator": _unet,
    "unet_128": lambda arch, **kw: _unet(arch, num_downs=7, **kw),
    "unet_256": lambda arch, **kw: _unet(arch, num_downs=8, **kw),
    "CompactGenerator": _compact,
    "compact_generator": _compact,
    "RRDBNet": _rrdbnet,
    "SRVGGNetCompact": _srvgg,
    "DnCNN": _dncnn,
    "FFDNet": _ffdnet,
    "ffdnet_color": lambda arch, **kw: _ffdnet(arch, in_nc=3, out_nc=3, **kw),
    "ffdnet_gray": lambda arch, **kw: _ffdnet(arch, in_nc=1, out_nc=1, **kw),
}


def describe(arch: str, kwargs: Mapping[str, Any] | None = None) -> ModelMeta:
    """The :class:`ModelMeta` of ``build(arch, **kwargs)``; KeyError for an architecture that is
    not a generator the engine runs (discriminators, feature extractors, unknown names)."""
    if arch not in TABLE:
        raise KeyError(f"{arch!r} is not an image model scenestyle can run; choose one of: {', '.join(sorted(TABLE))}")
    # the builder's defaults fill in what the kwargs leave out (weights.lock entries give few)
    bound = inspect.signature(ARCHS[arch]).bind(**(kwargs or {}))
    bound.apply_defaults()
    return TABLE[arch](arch, **bound.arguments)


def split_finish(module: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """``(body, finish)`` with ``finish(body(x)) == module(x)``: ``finish`` the module's
    parameter-free last stage, ``body`` a copy of the module without it; ``(module, None)`` when
    it has none."""
    finish = getattr(module, "finish", None)
    if not isinstance(finish, nn.Module) or isinstance(finish, nn.Identity) or any(True for _ in finish.parameters()):
        return module, None
    body = copy.deepcopy(module)
    body.finish = nn.Identity()
    return body, finish
