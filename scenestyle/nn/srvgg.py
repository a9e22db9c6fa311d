"""Real-ESRGAN ``SRVGGNetCompact``, key-for-key with ``realesrgan/archs/srvgg_arch.py``.

``body`` is an ``nn.ModuleList``: conv (``body.0``), activation (``body.1``, a PReLU with one
weight per channel for ``act_type="prelu"``), then ``num_conv`` (conv, activation) pairs, then
the last conv to ``num_out_ch * upscale**2`` channels; a pixel shuffle and the nearest-upsampled
input are added. realesr-general-x4v3: ``num_conv=32``; realesr-animevideov3: ``num_conv=16``.
Input and output in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._blocks import check_choice
from ._registry import register


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


@register("SRVGGNetCompact")
class SRVGGNetCompact(nn.Module):
    """Compact VGG-style SR net: all convs at input resolution, upsampling in the last layer."""

    def __init__(
        self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16, upscale: int = 4, act_type: str = "prelu"
    ):
        super().__init__()
        check_choice("act_type", act_type, ("relu", "prelu", "leakyrelu"))
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        self.num_in_ch, self.num_out_ch, self.num_feat = num_in_ch, num_out_ch, num_feat
        self.num_conv, self.upscale, self.act_type = num_conv, upscale, act_type

        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(_activation(act_type, num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(_activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        # the network learns the residual over the nearest-upsampled input
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
