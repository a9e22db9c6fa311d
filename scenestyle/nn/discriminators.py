"""SR discriminators, key-for-key with their upstream files.

``VGGStyleDiscriminator``: BasicSR ``basicsr/archs/discriminator_arch.py`` (SRGAN/ESRGAN), a VGG
stack that halves the size five times (six for ``input_size=256``) down to 4×4, then two linear
layers. Upstream accepts only 128 and 256; 32 and 64 are allowed here too (same layout, the
first linear layer sees a 1×1 or 2×2 map) so tests and small crops can use it. Upstream returns
N×1; this returns N×1×1×1 so that every discriminator here gives an N×1×h×w score map.

``UNetDiscriminatorSN``: Real-ESRGAN ``realesrgan/archs/discriminator_arch.py``, a U-Net with
spectral norm on ``conv1``…``conv8`` (``torch.nn.utils.spectral_norm``, so the state dict holds
``convN.weight_orig``, ``convN.weight_u``, ``convN.weight_v`` as in ``RealESRGAN_x4plus_netD.pth``)
and a per-pixel score map of the input size; the input side must be a multiple of 8.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from ._registry import register

VGG_INPUT_SIZES = (32, 64, 128, 256)


@register("VGGStyleDiscriminator")
class VGGStyleDiscriminator(nn.Module):
    """BasicSR's VGG-style discriminator for fixed-size square crops (one score per image)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128):
        super().__init__()
        if input_size not in VGG_INPUT_SIZES:
            raise ValueError(f"input_size must be one of {', '.join(map(str, VGG_INPUT_SIZES))}, got {input_size}")
        self.input_size = input_size
        f = num_feat
        self.conv0_0 = nn.Conv2d(num_in_ch, f, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(f, f, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(f, affine=True)
        # (stage, in, out) of the stages 1..4 (and 5 for 256): 3x3 conv + BN, 4x4 stride-2 conv + BN
        stages = [(1, f, f * 2), (2, f * 2, f * 4), (3, f * 4, f * 8), (4, f * 8, f * 8)]
        if input_size == 256:
            stages.append((5, f * 8, f * 8))
        self._stages = [s for s, _, _ in stages]
        for s, cin, cout in stages:
            setattr(self, f"conv{s}_0", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            setattr(self, f"bn{s}_0", nn.BatchNorm2d(cout, affine=True))
            setattr(self, f"conv{s}_1", nn.Conv2d(cout, cout, 4, 2, 1, bias=False))
            setattr(self, f"bn{s}_1", nn.BatchNorm2d(cout, affine=True))
        side = input_size // 2 ** (len(stages) + 1)
        self.linear1 = nn.Linear(f * 8 * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) needs "
                f"{self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for s in self._stages:
            feat = self.lrelu(getattr(self, f"bn{s}_0")(getattr(self, f"conv{s}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{s}_1")(getattr(self, f"conv{s}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat).view(-1, 1, 1, 1)


@register("UNetDiscriminatorSN")
class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm: a realness score per pixel."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        self.skip_connection = skip_connection
        f, sn = num_feat, spectral_norm
        self.conv0 = nn.Conv2d(num_in_ch, f, kernel_size=3, stride=1, padding=1)
        self.conv1 = sn(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:  # three stride-2 convs, then three x2 upsamplings added to the skips
            raise ValueError(f"UNetDiscriminatorSN needs height and width divisible by 8, got {tuple(x.shape[-2:])}")
        act = lambda t: F.leaky_relu(t, negative_slope=0.2, inplace=True)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
