"""Multiply-accumulate count of one forward pass, from forward hooks on conv and linear layers.

Convention (torchprofile's, used by GAN Compression and by the published 56.8 GMAC figure for
the CycleGAN ResNet-9 generator at 256x256): every ``Conv2d`` and ``ConvTranspose2d`` costs
``output elements * in_channels / groups * kernel area``, and ``Linear`` costs
``output elements * in_features``. For a stride-s transposed conv that counts the zero-inserted
input, i.e. s**2 times the multiplies really done. Norms, activations, pads, resizes and
additions are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_macs(model: nn.Module, input_shape: Sequence[int], *args: object) -> int:
    """MACs of ``model`` on one input of ``input_shape`` (``(N, C, H, W)``, or ``(C, H, W)`` for N=1);
    ``args`` follow the input into ``forward`` (an FFDNet's noise level).

    The input is a zero tensor on the device and dtype of the model's first parameter, so a
    model built under ``torch.device("meta")`` is counted without computing anything. The
    model runs in eval mode under ``torch.no_grad()``; its training flag is restored.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(shape, device=device, dtype=dtype), *args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)
