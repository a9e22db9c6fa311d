"""CycleGAN / pix2pix networks, key-for-key with junyanz/pytorch-CycleGAN-and-pix2pix.

Layouts follow upstream ``models/networks.py`` (master): ``ResnetGenerator`` is one
``nn.Sequential`` named ``model`` (``model.1.weight`` is the 7x7 stem, ``model.10`` the first
``ResnetBlock`` and, for 9 blocks, ``model.26`` the 7x7 output conv); ``UnetGenerator`` nests
``UnetSkipConnectionBlock`` modules (``model.model.1.model.3.model...``). Norm choices are the
upstream ``get_norm_layer`` ones (see ``_blocks.norm_layer``); as upstream, convs followed by a
norm carry a bias only when ``norm == "instance"``.

Official checkpoints saved by old PyTorch versions may contain ``running_mean``/``running_var``
entries for InstanceNorm layers; upstream drops them before loading
(``__patch_instance_norm_state_dict``) and so must the weights loader.
"""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import check_choice, norm_layer, padding
from ._registry import register


class ResnetBlock(nn.Module):
    """Residual block: pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm; plus identity."""

    def __init__(self, dim: int, padding_type: str, norm: str, use_dropout: bool, use_bias: bool):
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm, use_dropout, use_bias)

    @staticmethod
    def build_conv_block(dim: int, padding_type: str, norm: str, use_dropout: bool, use_bias: bool) -> nn.Sequential:
        pad, p = padding(padding_type, 1)
        block: list[nn.Module] = [*pad, nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(norm, dim), nn.ReLU(True)]
        if use_dropout:
            block.append(nn.Dropout(0.5))
        pad, p = padding(padding_type, 1)
        block += [*pad, nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(norm, dim)]
        return nn.Sequential(*block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register("ResnetGenerator")
class ResnetGenerator(nn.Module):
    """Johnson et al. / CycleGAN ResNet generator: 7x7 stem, 2 stride-2 downs, ``n_blocks``
    residual blocks at ``4*ngf`` channels, 2 transposed-conv ups, 7x7 conv, tanh.

    Input and output in [-1, 1]; H and W must be multiples of 4 for the output to match the
    input size.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
    ):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        check_choice("norm", norm, ("batch", "instance", "none"))
        check_choice("padding_type", padding_type, ("reflect", "replicate", "zero"))
        use_bias = norm == "instance"

        model: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_downsampling
        for _ in range(n_blocks):
            model += [ResnetBlock(ngf * mult, padding_type=padding_type, norm=norm, use_dropout=use_dropout, use_bias=use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [
                nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias),
                norm_layer(norm, int(ngf * mult / 2)),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: ``x -> [down, submodule, up]``, concatenated with ``x`` unless outermost."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        use_bias = norm == "instance"
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(norm, inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(norm, outer_nc)

        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


@register("UnetGenerator")
class UnetGenerator(nn.Module):
    """pix2pix U-Net: ``num_downs`` stride-2 levels (7 for 128x128 inputs, 8 for 256x256).

    H and W must be multiples of ``2**num_downs``. The bottleneck sees (nearly) the whole
    input, so tiled output can never match whole-image output exactly; ``halo`` is a guess.
    """

    def __init__(
        self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64, norm: str = "batch", use_dropout: bool = False
    ):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (the upstream layout has 5 fixed levels), got {num_downs}")
        check_choice("norm", norm, ("batch", "instance", "none"))
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=None, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register("NLayerDiscriminator")
class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (70x70 receptive field for ``n_layers=3``)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        check_choice("norm", norm, ("batch", "instance", "none"))
        use_bias = norm == "instance"
        kw, padw = 4, 1
        sequence: list[nn.Module] = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias),
                norm_layer(norm, ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias),
            norm_layer(norm, ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
        ]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register("PixelDiscriminator")
class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (per-pixel) discriminator."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "instance"):
        super().__init__()
        check_choice("norm", norm, ("batch", "instance", "none"))
        use_bias = norm == "instance"
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=use_bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=use_bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# Upstream ``define_G`` names; the variant-defining setting is fixed, the rest can be given.


@register("resnet_9blocks")
def resnet_9blocks(
    input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "instance", use_dropout: bool = False, padding_type: str = "reflect"
) -> ResnetGenerator:
    """``ResnetGenerator`` with ``n_blocks=9`` (CycleGAN, 256x256 training crops)."""
    return ResnetGenerator(
        input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm, use_dropout=use_dropout, n_blocks=9, padding_type=padding_type
    )


@register("resnet_6blocks")
def resnet_6blocks(
    input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "instance", use_dropout: bool = False, padding_type: str = "reflect"
) -> ResnetGenerator:
    """``ResnetGenerator`` with ``n_blocks=6`` (CycleGAN, 128x128 training crops)."""
    return ResnetGenerator(
        input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm, use_dropout=use_dropout, n_blocks=6, padding_type=padding_type
    )


@register("unet_128")
def unet_128(input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch", use_dropout: bool = False) -> UnetGenerator:
    """``UnetGenerator`` with ``num_downs=7`` (128x128 inputs reach 1x1 at the bottleneck)."""
    return UnetGenerator(input_nc=input_nc, output_nc=output_nc, num_downs=7, ngf=ngf, norm=norm, use_dropout=use_dropout)


@register("unet_256")
def unet_256(input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch", use_dropout: bool = False) -> UnetGenerator:
    """``UnetGenerator`` with ``num_downs=8`` (pix2pix default, 256x256 inputs)."""
    return UnetGenerator(input_nc=input_nc, output_nc=output_nc, num_downs=8, ngf=ngf, norm=norm, use_dropout=use_dropout)
