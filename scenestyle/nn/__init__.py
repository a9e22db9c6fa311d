"""Network architectures, registered by name.

Importing this package imports every architecture module, so each ``@register`` runs and
``build(name, **kwargs)`` / ``list_archs()`` see them all. Architecture files are pure
``nn.Module`` code (torch only): forward and weights. What the engine needs to know about a
generator (channels, scale, size multiple, halo, value range, task, σ input) is in ``meta.py``:
``describe(name, kwargs)`` gives its :class:`ModelMeta`.
"""

from . import compact, cyclegan, dncnn, ffdnet, inception, rrdbnet, srvgg  # noqa: F401  (registers the architectures)
from ._blocks import InstanceNorm2d, channel_mean_var, instance_norms
from ._registry import ARCHS, build, list_archs, register
from .compact import CompactGenerator
from .cyclegan import NLayerDiscriminator, PixelDiscriminator, ResnetGenerator, UnetGenerator
from .detect import detect_arch
from .discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator  # noqa: F401  (registers them)
from .dncnn import DnCNN
from .ffdnet import FFDNet
from .macs import count_macs
from .meta import ModelMeta, describe
from .rrdbnet import RRDBNet
from .srvgg import SRVGGNetCompact

__all__ = [
    "ARCHS",
    "build",
    "list_archs",
    "register",
    "detect_arch",
    "describe",
    "ModelMeta",
    "count_macs",
    "channel_mean_var",
    "instance_norms",
    "InstanceNorm2d",
    "CompactGenerator",
    "DnCNN",
    "FFDNet",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "RRDBNet",
    "ResnetGenerator",
    "SRVGGNetCompact",
    "UnetGenerator",
]
