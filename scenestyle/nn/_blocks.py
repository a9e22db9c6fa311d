"""Small building blocks shared by the architecture files: norm, padding and size helpers.

Only ``torch`` is imported here, so every architecture file stays pure ``nn.Module`` code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "instance", "none")
PADDINGS = ("reflect", "replicate", "zero")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ``ValueError`` naming them."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The pytorch-CycleGAN-and-pix2pix ``get_norm_layer`` choices, as one module.

    ``batch``: ``BatchNorm2d(affine=True, track_running_stats=True)``; ``instance``:
    ``InstanceNorm2d(affine=False, track_running_stats=False)`` (no state-dict entries);
    ``none``: ``nn.Identity()`` (keeps the ``nn.Sequential`` indices of the upstream layout).
    """
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def _channel_means(x: Tensor) -> Tensor:
    """float32 N×C×1×1 means of a channels_last N×C×H×W tensor, read in its own layout.

    Why a matmul: a reduction over H and W of a channels_last tensor runs at a fraction of
    memory speed on CPU, while ``ones(1, W) @ rows`` (one row sum per image row, N×H×1×C) runs
    at GEMM speed. The row sums are rounded to the tensor's dtype one row at a time and then
    summed in float32, so bf16 rounding does not build up over the image.
    """
    n, c, h, w = x.shape
    rows = torch.matmul(torch.ones(1, w, dtype=x.dtype, device=x.device), x.permute(0, 2, 3, 1))
    return rows.float().sum(dim=1).view(n, c, 1, 1) / (h * w)


def _is_channels_last(x: Tensor) -> bool:
    """True for a 4-D tensor laid out channels_last that is not also plain contiguous."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def instance_norms(model: nn.Module) -> list[nn.InstanceNorm2d]:
    """The model's instance norms that normalise by their input's own statistics."""
    # With running stats in eval mode a norm already uses fixed statistics: nothing to freeze.
    return [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d) and not (m.track_running_stats and not m.training)]


def channel_mean_var(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image, per-channel mean and biased variance of an N×C×H×W tensor, float32 N×C×1×1.

    A channels_last tensor is read in its own layout (:func:`_channel_means`), with the variance
    taken around a first estimate of the mean (two passes): a bf16 input with a large mean then
    gets statistics as accurate as float32 ones.
    """
    if not _is_channels_last(x):
        var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
        return mean, var
    first = _channel_means(x).to(x.dtype)
    centred = x - first
    shift = _channel_means(centred)  # what the first estimate missed (its rounding)
    var = (_channel_means(centred * centred) - shift * shift).clamp_min(0)
    return first.float() + shift, var


def layout_instance_norm(x: Tensor, eps: float, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """Instance norm of a channels_last N×C×H×W tensor whose output stays channels_last.

    ``F.instance_norm`` copies a channels_last input to NCHW and returns NCHW, so the next conv
    copies it back: on a bf16 CycleGAN ResNet-9 at 512², those copies were a third of the run.
    For one image, instance norm is batch norm with batch statistics, and torch's CPU batch
    norm has a channels_last kernel (4x faster than ``F.instance_norm`` on bf16 at 256x256x256).
    """
    parts = [F.batch_norm(x[i : i + 1], None, None, weight, bias, training=True, eps=eps) for i in range(x.shape[0])]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same arguments, same state dict) that, in eval mode on CPU,
    keeps a channels_last input channels_last (see :func:`layout_instance_norm`)."""

    def forward(self, x: Tensor) -> Tensor:
        fast = (
            not self.training and not self.track_running_stats and x.device.type == "cpu" and x.is_floating_point() and _is_channels_last(x)
        )
        return layout_instance_norm(x, self.eps, self.weight, self.bias) if fast else super().forward(x)


def padding(padding_type: str, amount: int) -> tuple[list[nn.Module], int]:
    """Padding modules to put before a conv, and the ``padding=`` that conv then takes."""
    check_choice("padding_type", padding_type, PADDINGS)
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    return [], amount


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // multiple) * multiple
