"""``CompactGenerator``: our own mobile-style stylization generator (not an upstream layout).

Same skeleton as the CycleGAN ``ResnetGenerator`` (7x7 stem, two stride-2 downs, residual
blocks at ``4*ngf`` channels, two x2 ups, 7x7 head, tanh), made cheap:

* residual blocks are depthwise-separable: (reflect pad, depthwise 3x3, pointwise 1x1, norm,
  ReLU) twice, plus the identity;
* ups are resize-convs: x2 resize (``upsample``: ``nearest``, or ``bilinear``, which leaves no
  4-px block pattern for the convs to undo), reflect pad, depthwise 3x3, pointwise 1x1, norm,
  ReLU (no transposed conv, so no checkerboard);
* reflection padding everywhere, tanh output in [-1, 1].

The default (``ngf=32``, ``n_blocks=9``, 0.43 M parameters) costs 2.84 GMAC at 256x256, 1/20
of the CycleGAN ResNet-9 generator (56.8 GMAC counted the same way; see ``macs.count_macs``). Only
plain, 1x1 and depthwise 3x3 convs, which oneDNN runs well on CPU (channels_last helps).

``colour_pool`` > 0 gives the output the photo's colours at that scale: the chroma (colour less
luma) of ``photo - output``, box-blurred over ``colour_pool`` pixels, is added back, so brushwork,
tones and fine colour variation are the net's but the scene's palette stays (no colour cast). The
blur has stride 1, so it is the same in tiles as on the whole image.

``flatten`` > 0 ends the net with a painterly flattening of radius ``flatten`` pixels, run
``flatten_passes`` times: a generalised Kuwahara filter (Papari et al. 2007) with eight windows
around each pixel (four quadrants, four half-squares), blended by weights that fall with the
eighth power of each window's colour standard deviation. Each pixel takes the colour of the
flattest side of its neighbourhood, so texture melts into flat, brush-sized fields while edges
stay crisp. The soft weights round off the classic filter's square blocks (the dabs stay roughly
rectangular: the windows are axis-aligned) and pass gradients, so the net learns to paint for it.
No parameters, stride 1: tiles need ``flatten * flatten_passes`` more halo. It is the net's
``finish`` submodule (``nn.Identity`` without flattening).

``norm``: ``instance`` (affine-free, as CycleGAN; tiles then need whole-image statistics),
``batch`` (local at inference, so tiling is exact; foldable into the convs) or ``none``.
Convs followed by a norm carry a bias only when ``norm == "none"``; depthwise convs never do.

Keys: ``stem.1``, ``down.1``, ``down.5``, ``blocks.N.conv_block.{1,2,6,7}``, ``up.{2,3,8,9}``,
``head.1`` (+ BatchNorm entries at the norm indices for ``norm="batch"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scenestyle._colour import BT601_LUMA

from ._blocks import check_choice, norm_layer
from ._registry import register


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over k×k windows (k odd), stride 1, borders averaged over what is inside: two 1-D passes."""
    x = F.avg_pool2d(x, (k, 1), 1, (k // 2, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, k), 1, (0, k // 2), count_include_pad=False)


def keep_colours(photo: torch.Tensor, painted: torch.Tensor, k: int) -> torch.Tensor:
    """``painted`` plus the box-blurred chroma of ``photo - painted`` (luma untouched)."""
    d = photo - painted
    w = torch.tensor(BT601_LUMA, device=d.device, dtype=d.dtype).view(1, 3, 1, 1)
    chroma = d - (d * w).sum(1, keepdim=True)  # weights sum to 1: no luma left
    return painted + _box(chroma, k)


def _window_means(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Mean over kh×kw windows of an already padded ``x``, stride 1: two 1-D depthwise convs.

    Convs with constant 1/k weights, channels-last, run 2-4× faster on the CPU than ``avg_pool2d``
    (oneDNN kernels); autocast is off so the sums stay float32.
    """
    c = x.shape[1]
    down = torch.full((c, 1, kh, 1), 1.0 / kh, dtype=x.dtype, device=x.device)
    across = torch.full((c, 1, 1, kw), 1.0 / kw, dtype=x.dtype, device=x.device)
    with torch.autocast(x.device.type, enabled=False):
        x = F.conv2d(x.contiguous(memory_format=torch.channels_last), down, groups=c)
        return F.conv2d(x, across, groups=c)


def kuwahara(x: torch.Tensor, radius: int, q: float = 8.0, floor: float = 1e-4, band_rows: int = 0) -> torch.Tensor:
    """Generalised Kuwahara filter of ``x`` (N×C×H×W) over eight windows of radius ``radius``.

    Window i's mean m_i is weighted by (v_i + floor)^(-q/2), v_i its variance summed over the
    channels; ``floor`` (images in [-1, 1]) keeps weights finite where a window is flat. Computed
    in float32 (the weights span 1e16, beyond fp16) and one window at a time, so a 1 MP image
    holds a few image-sized buffers, not eight; ``band_rows`` > 0 computes it that many output
    rows at a time (the same result, a few band-sized buffers: for inference).
    """
    r, h = radius, x.shape[-2]
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"  # reflect needs the pad smaller than the side
    padded = F.pad(x.float(), (r, r, r, r), mode=mode)
    if band_rows <= 0 or band_rows >= h:
        return _kuwahara_padded(padded, r, q, floor).to(x.dtype)
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    for top in range(0, h, band_rows):
        rows = min(band_rows, h - top)
        out[..., top : top + rows, :] = _kuwahara_padded(padded[..., top : top + rows + 2 * r, :], r, q, floor)
    return out.to(x.dtype)


def _kuwahara_padded(padded: torch.Tensor, r: int, q: float, floor: float) -> torch.Tensor:
    """``kuwahara`` of float32 ``padded`` (already padded by ``r`` on each side)."""
    c, h, w = padded.shape[1], padded.shape[-2] - 2 * r, padded.shape[-1] - 2 * r
    padded = torch.cat([padded, padded * padded], 1)
    num = den = None
    # (window height, width, offsets): the four quadrants, then left/right and top/bottom halves
    for kh, kw, offsets in (
        (r + 1, r + 1, ((0, 0), (0, r), (r, 0), (r, r))),
        (2 * r + 1, r + 1, ((0, 0), (0, r))),
        (r + 1, 2 * r + 1, ((0, 0), (r, 0))),
    ):
        means = _window_means(padded, kh, kw)
        for dy, dx in offsets:
            s = means[..., dy : dy + h, dx : dx + w]
            mean = s[:, :c]
            var = (s[:, c:] - mean * mean).clamp_min(0).sum(1, keepdim=True)
            weight = (var + floor).pow(-0.5 * q)
            num = weight * mean if num is None else num + weight * mean
            den = weight if den is None else den + weight
    return num / den


class Flatten(nn.Module):
    """``kuwahara`` of radius ``radius``, ``passes`` times: the painterly flattening (no parameters).

    Without gradients (inference) it runs in bands of ``BAND_ROWS`` rows: a 1 MP image then
    holds band-sized buffers, not image-sized ones.
    """

    BAND_ROWS = 128

    def __init__(self, radius: int, passes: int):
        super().__init__()
        self.radius, self.passes = radius, passes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = 0 if torch.is_grad_enabled() and x.requires_grad else self.BAND_ROWS
        for _ in range(self.passes):
            x = kuwahara(x, self.radius, band_rows=rows)
        return x

    def extra_repr(self) -> str:
        return f"radius={self.radius}, passes={self.passes}"


def _separable(in_nc: int, out_nc: int, norm: str, use_bias: bool) -> list[nn.Module]:
    """reflect pad 1, depthwise 3x3 (no bias), pointwise 1x1, norm."""
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(in_nc, in_nc, kernel_size=3, groups=in_nc, bias=False),
        nn.Conv2d(in_nc, out_nc, kernel_size=1, bias=use_bias),
        norm_layer(norm, out_nc),
    ]


class SeparableResnetBlock(nn.Module):
    """``x + [sep3x3, norm, ReLU, sep3x3, norm](x)`` with depthwise-separable 3x3 convs."""

    def __init__(self, dim: int, norm: str, use_bias: bool):
        super().__init__()
        self.conv_block = nn.Sequential(*_separable(dim, dim, norm, use_bias), nn.ReLU(True), *_separable(dim, dim, norm, use_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register("CompactGenerator")
class CompactGenerator(nn.Module):
    """Cheap image-to-image generator for stylization; input and output in [-1, 1].

    H and W must be multiples of 4 for the output to match the input size.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 32,
        n_blocks: int = 9,
        norm: str = "instance",
        colour_pool: int = 0,
        upsample: str = "nearest",
        flatten: int = 0,
        flatten_passes: int = 2,
    ):
        super().__init__()
        check_choice("norm", norm, ("batch", "instance", "none"))
        check_choice("upsample", upsample, ("nearest", "bilinear"))
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if colour_pool < 0 or (colour_pool and (colour_pool % 2 == 0 or input_nc != 3 or output_nc != 3)):
            raise ValueError(f"colour_pool must be 0 or an odd window on RGB in and out, got {colour_pool}")
        if flatten < 0 or flatten_passes < 1:
            raise ValueError(f"flatten must be >= 0 and flatten_passes >= 1, got {flatten} and {flatten_passes}")
        self.colour_pool, self.flatten, self.flatten_passes = colour_pool, flatten, flatten_passes
        use_bias = norm == "none"
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, bias=use_bias), norm_layer(norm, ngf), nn.ReLU(True)
        )
        self.down = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ngf, 2 * ngf, kernel_size=3, stride=2, bias=use_bias),
            norm_layer(norm, 2 * ngf),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(2 * ngf, 4 * ngf, kernel_size=3, stride=2, bias=use_bias),
            norm_layer(norm, 4 * ngf),
            nn.ReLU(True),
        )
        self.blocks = nn.Sequential(*[SeparableResnetBlock(4 * ngf, norm, use_bias) for _ in range(n_blocks)])
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode=upsample),
            *_separable(4 * ngf, 2 * ngf, norm, use_bias),
            nn.ReLU(True),
            nn.Upsample(scale_factor=2, mode=upsample),
            *_separable(2 * ngf, ngf, norm, use_bias),
            nn.ReLU(True),
        )
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh())
        # parameter-free last stage (see ``scenestyle.nn.meta``): a runtime may run it apart from the convs
        self.finish = Flatten(flatten, flatten_passes) if flatten else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.up(self.blocks(self.down(self.stem(x)))))
        if self.colour_pool:
            y = keep_colours(x, y, self.colour_pool)
        return self.finish(y)


@register("compact_generator")
def compact_generator(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 32,
    n_blocks: int = 9,
    norm: str = "instance",
    colour_pool: int = 0,
    upsample: str = "nearest",
) -> CompactGenerator:
    """Default compact variant: ``ngf=32``, 9 separable blocks, instance norm (2.84 GMAC at 256x256)."""
    return CompactGenerator(
        input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks, norm=norm, colour_pool=colour_pool, upsample=upsample
    )
