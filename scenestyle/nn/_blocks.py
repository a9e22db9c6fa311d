"""Small building blocks shared by the architecture files: norm, padding and size helpers.

Only ``torch`` is imported here, so every architecture file stays pure ``nn.Module`` code.
"""

from __future__ import annotations

from torch import nn

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
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


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
