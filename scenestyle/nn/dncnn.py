"""KAIR ``DnCNN`` (``models/network_dncnn.py``), key-for-key with KAIR's released weights.

``model`` is one flat ``nn.Sequential``: conv + act, ``nb - 2`` times conv [+ BN] + act, conv.
With the default ``act_mode="R"`` (BN merged into the convs, as in KAIR's ``dncnn_25.pth``)
the keys are ``model.0.weight`` ... ``model.{2*(nb-1)}.bias``; every conv has a bias.
``act_mode="BR"`` is KAIR's training layout (BatchNorm2d(momentum=0.9, eps=1e-4) after each
body conv); ``"L"``/``"BL"`` use LeakyReLU(0.2). DnCNN predicts the noise: ``forward`` returns
``x - model(x)``. Input and output in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import check_choice
from ._registry import register


def _conv_block(in_nc: int, out_nc: int, mode: str) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_nc, out_nc, 3, 1, 1, bias=True)]
    for t in mode:
        if t == "B":
            layers.append(nn.BatchNorm2d(out_nc, momentum=0.9, eps=1e-04, affine=True))
        elif t == "R":
            layers.append(nn.ReLU(inplace=True))
        elif t == "L":
            layers.append(nn.LeakyReLU(negative_slope=0.2, inplace=True))
    return layers


@register("DnCNN")
class DnCNN(nn.Module):
    """Residual denoiser of ``nb`` 3x3 convs with ``nc`` channels (Zhang et al. 2017)."""

    def __init__(self, in_nc: int = 1, out_nc: int = 1, nc: int = 64, nb: int = 17, act_mode: str = "R"):
        super().__init__()
        check_choice("act_mode", act_mode, ("R", "L", "BR", "BL"))
        if nb < 2:
            raise ValueError(f"nb must be >= 2, got {nb}")
        if in_nc != out_nc:
            raise ValueError(f"DnCNN subtracts its output from its input: in_nc ({in_nc}) must equal out_nc ({out_nc})")
        layers = _conv_block(in_nc, nc, act_mode[-1])
        for _ in range(nb - 2):
            layers += _conv_block(nc, nc, act_mode)
        layers += _conv_block(nc, out_nc, "")
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)
