"""LPIPS v0.1 (Zhang et al. 2018), key-compatible with the ``lpips`` package's full module state dict.

The network is AlexNet or VGG-16 ``features`` cut into ``net.slice1..5`` (the torchvision layer
indices kept as module names), a fixed input scaling, unit-normalised features per layer, squared
differences weighted by ``lin0..4.model.1`` (1×1 convs, no bias) and averaged over space.

No weights ship or download: LPIPS needs ImageNet backbone weights we cannot pin here. Build
the file once where the ``lpips`` package works::

    torch.save(lpips.LPIPS(net="alex").state_dict(), "lpips-alex.pth")

and pass it with ``--lpips-weights``. The ``lins.N`` duplicates that newer ``lpips`` versions
add (a ModuleList over the same layers) are accepted and checked equal.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scenestyle.errors import WeightsError

__all__ = ["NETS", "LPIPS", "load_lpips", "HOW_TO"]

# torchvision ``features`` indices per slice and (out channels) per backbone; convs are (in, out, kernel, stride, pad).
_ALEX = {
    "convs": {0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1), 10: (256, 256, 3, 1, 1)},
    "pools": (2, 5),
    "slices": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "chns": (64, 192, 384, 256, 256),
}
_VGG = {
    "convs": {
        0: (3, 64, 3, 1, 1),
        2: (64, 64, 3, 1, 1),
        5: (64, 128, 3, 1, 1),
        7: (128, 128, 3, 1, 1),
        10: (128, 256, 3, 1, 1),
        12: (256, 256, 3, 1, 1),
        14: (256, 256, 3, 1, 1),
        17: (256, 512, 3, 1, 1),
        19: (512, 512, 3, 1, 1),
        21: (512, 512, 3, 1, 1),
        24: (512, 512, 3, 1, 1),
        26: (512, 512, 3, 1, 1),
        28: (512, 512, 3, 1, 1),
    },
    "pools": (4, 9, 16, 23),
    "slices": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
    "chns": (64, 128, 256, 512, 512),
}
NETS = {"alex": _ALEX, "vgg": _VGG}
HOW_TO = (
    "LPIPS needs its weights as a file: where the lpips package works, run "
    "torch.save(lpips.LPIPS(net='alex').state_dict(), 'lpips-alex.pth') and pass --lpips-weights lpips-alex.pth"
)


def _layer(spec: dict, i: int) -> nn.Module:
    if i in spec["convs"]:
        cin, cout, k, s, p = spec["convs"][i]
        return nn.Conv2d(cin, cout, k, s, p)
    if i in spec["pools"]:
        return nn.MaxPool2d(3, 2) if spec is _ALEX else nn.MaxPool2d(2, 2)
    return nn.ReLU(inplace=False)


class _Backbone(nn.Module):
    def __init__(self, spec: dict):
        super().__init__()
        for n, (a, b) in enumerate(spec["slices"], start=1):
            s = nn.Sequential()
            for i in range(a, b):
                s.add_module(str(i), _layer(spec, i))
            setattr(self, f"slice{n}", s)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for n in range(1, 6):
            x = getattr(self, f"slice{n}")(x)
            out.append(x)
        return out


class _Lin(nn.Module):
    def __init__(self, chn: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(chn, 1, 1, bias=False))


class _Scaling(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])


class LPIPS(nn.Module):
    """LPIPS distance between two N×3×H×W batches in [-1, 1]; returns N values (0 for identical images)."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"LPIPS net must be one of {', '.join(NETS)}, not {net!r}")
        self.net_type = net
        self.scaling_layer = _Scaling()
        self.net = _Backbone(NETS[net])
        for k, c in enumerate(NETS[net]["chns"]):
            setattr(self, f"lin{k}", _Lin(c))

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        s = self.scaling_layer
        f0, f1 = self.net((in0 - s.shift) / s.scale), self.net((in1 - s.shift) / s.scale)
        total = torch.zeros(in0.shape[0], dtype=in0.dtype, device=in0.device)
        for k, (a, b) in enumerate(zip(f0, f1)):
            a = a / (torch.sqrt(torch.sum(a * a, dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt(torch.sum(b * b, dim=1, keepdim=True)) + 1e-10)
            total = total + getattr(self, f"lin{k}").model((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips(path: Path) -> tuple[LPIPS, str]:
    """An eval-mode LPIPS from a user-given full state dict (backbone detected from its keys), and the file's sha256."""
    from scenestyle.loading import read_state_dict
    from scenestyle.weights import file_sha256

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--lpips-weights {path} is not a file; {HOW_TO}")
    sd = dict(read_state_dict(path))
    first = sd.get("net.slice1.0.weight")
    if first is None or "lin0.model.1.weight" not in sd:
        raise WeightsError(f"{path.name} is not a full LPIPS state dict (needs net.slice1..5 and lin0..4.model.1); {HOW_TO}")
    net = "alex" if tuple(first.shape[-2:]) == (11, 11) else "vgg"
    for k in [k for k in sd if k.startswith("lins.")]:
        twin = "lin" + k.removeprefix("lins.")  # lins.0.model.1.weight → lin0.model.1.weight
        if twin not in sd or not torch.equal(sd[twin], sd.pop(k)):
            raise WeightsError(f"{path.name}: {k} differs from {twin}; not an lpips state dict")
    model = LPIPS(net)
    for k, v in model.scaling_layer.state_dict().items():
        sd.setdefault(f"scaling_layer.{k}", v)  # older lpips versions saved no buffers
    missing, unexpected = sorted(model.state_dict().keys() - sd.keys()), sorted(sd.keys() - model.state_dict().keys())
    if missing or unexpected:
        raise WeightsError(f"{path.name} does not fit LPIPS-{net}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path.name} does not fit LPIPS-{net}: {str(exc).strip().splitlines()[-1].strip()}") from None
    return model.eval().requires_grad_(False), file_sha256(path)
