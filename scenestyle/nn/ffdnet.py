"""KAIR ``FFDNet`` (``models/network_ffdnet.py``), key-for-key with KAIR's released weights.

FFDNet (Zhang, Zuo and Zhang, IEEE TIP 2018) is a non-blind denoiser: besides the noisy image
it takes the noise standard deviation σ as an input map, so one network covers σ from 0 to 75
(in 8-bit units) and the caller chooses how much to remove. The image is pixel-unshuffled 2×
(``C·4`` channels at half resolution), the σ map (one channel at half resolution) is
concatenated, ``model`` — conv + ReLU, ``nb - 2`` × (conv + ReLU), conv to ``out_nc·4`` — runs
at half resolution and a pixel shuffle brings the result back. ``model`` is one flat
``nn.Sequential``, so the keys are ``model.0.weight`` ... ``model.{2*(nb-1)}.bias`` as in
KAIR's ``ffdnet_color.pth`` / ``ffdnet_gray.pth``. Unlike DnCNN it predicts the clean image
itself, not the noise. Odd sizes are replicate-padded to even and cropped back, as upstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register

SF = 2  # pixel-unshuffle factor, fixed in the published architecture


@register("FFDNet")
class FFDNet(nn.Module):
    """Noise-level-conditioned denoiser of ``nb`` 3×3 convs with ``nc`` channels at half resolution."""

    def __init__(self, in_nc: int = 1, out_nc: int = 1, nc: int = 64, nb: int = 15):
        super().__init__()
        if nb < 2:
            raise ValueError(f"nb must be >= 2, got {nb}")
        layers: list[nn.Module] = [nn.Conv2d(in_nc * SF * SF + 1, nc, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nc, nc, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, out_nc * SF * SF, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def _sigma_map(sigma: Tensor | float, x: Tensor, h: int, w: int) -> Tensor:
        """σ as an N×1×(H/2)×(W/2) map in ``x``'s dtype; ``x`` is padded to even size, ``h``×``w`` is the input size."""
        n, _, hp, wp = x.shape
        if not isinstance(sigma, Tensor):
            return x.new_full((n, 1, hp // SF, wp // SF), float(sigma))
        s = sigma.to(device=x.device, dtype=x.dtype)
        if s.shape == (n, 1, h, w):  # a per-pixel map: padded like the image, then averaged per 2×2 block
            return F.avg_pool2d(F.pad(s, (0, wp - w, 0, hp - h), mode="replicate"), SF)
        if s.numel() == 1 or s.shape in ((n,), (n, 1, 1, 1)):
            return s.reshape(-1, 1, 1, 1).expand(n, 1, hp // SF, wp // SF)
        raise ValueError(
            f"sigma must be a float, an (N,) or (N,1,1,1) tensor or an (N,1,H,W) map; "
            f"got shape {tuple(sigma.shape)} for an input of {n}×{x.shape[1]}×{h}×{w}"
        )

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Denoised ``x`` (N×C×H×W in [0, 1]) for noise std ``sigma`` in [0, 1] units: one float for
        the batch, an (N,) or (N,1,1,1) tensor per image, or an (N,1,H,W) map (training's noise maps)."""
        h, w = x.shape[-2:]
        ph, pw = -h % SF, -w % SF
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        m = self._sigma_map(sigma, x, h, w)
        y = self.model(torch.cat((F.pixel_unshuffle(x, SF), m), 1))
        return F.pixel_shuffle(y, SF)[..., :h, :w]


@register("ffdnet_color")
def ffdnet_color(nc: int = 96, nb: int = 12) -> FFDNet:
    """KAIR's colour FFDNet (``ffdnet_color.pth``): RGB in and out, 96 channels, 12 convs."""
    return FFDNet(in_nc=3, out_nc=3, nc=nc, nb=nb)


@register("ffdnet_gray")
def ffdnet_gray(nc: int = 64, nb: int = 15) -> FFDNet:
    """KAIR's grayscale FFDNet (``ffdnet_gray.pth``): one channel, 64 channels, 15 convs."""
    return FFDNet(in_nc=1, out_nc=1, nc=nc, nb=nb)
