"""Losses for SR and denoise training, after BasicSR ``basicsr/losses/basic_loss.py`` / ``gan_loss.py``.

* ``PixelLoss``: L1 or Charbonnier.
* ``GANLoss``: vanilla (BCE with logits), lsgan (MSE), hinge; one-sided label smoothing through
  ``real_label_val`` (e.g. 0.9) as BasicSR. ``loss_weight`` applies to the generator side only.
* ``FeatureMatchingLoss``: L1 between the discriminator's intermediate features of real and fake
  images (forward hooks; for ``UNetDiscriminatorSN`` the decoder ``conv4``…``conv8``), the
  perceptual signal available when no pretrained VGG weights are.
* ``PerceptualLoss``: feature distances through a *given* frozen extractor (``VGG19Features``
  loaded from a torchvision ``vgg19`` state dict, or any module returning named features). There
  is no default: without weights it raises and points to ``FeatureMatchingLoss``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from scenestyle.errors import WeightsError

__all__ = [
    "FeatureMatchingLoss",
    "GANLoss",
    "PerceptualLoss",
    "PixelLoss",
    "VGG19Features",
    "VGG19_LAYERS",
    "charbonnier_loss",
    "UNET_D_DECODER_LAYERS",
]

REDUCTIONS = ("mean", "sum")


def _check(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12, reduction: str = "mean") -> torch.Tensor:
    """sqrt((pred - target)² + eps): a smooth L1 (BasicSR ``CharbonnierLoss``, same ``eps``)."""
    loss = torch.sqrt((pred - target) ** 2 + eps)
    return loss.mean() if reduction == "mean" else loss.sum()


class PixelLoss(nn.Module):
    """``loss_weight`` × L1 or Charbonnier distance between prediction and target."""

    def __init__(self, kind: str = "l1", loss_weight: float = 1.0, reduction: str = "mean", eps: float = 1e-12):
        super().__init__()
        _check("kind", kind, ("l1", "charbonnier"))
        _check("reduction", reduction, REDUCTIONS)
        self.kind, self.loss_weight, self.reduction, self.eps = kind, loss_weight, reduction, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "l1":
            loss = F.l1_loss(pred, target, reduction=self.reduction)
        else:
            loss = charbonnier_loss(pred, target, self.eps, self.reduction)
        return self.loss_weight * loss


class GANLoss(nn.Module):
    """Adversarial loss on discriminator outputs (logits), as BasicSR ``GANLoss``.

    ``forward(pred, target_is_real, is_disc)``: for the discriminator (``is_disc=True``) real and
    fake terms are called separately; for the generator, ``target_is_real=True`` on its fakes.
    Hinge: D minimises relu(1 - real) + relu(1 + fake), G minimises -mean(D(fake)).
    """

    def __init__(self, gan_type: str = "vanilla", real_label_val: float = 1.0, fake_label_val: float = 0.0, loss_weight: float = 1.0):
        super().__init__()
        _check("gan_type", gan_type, ("vanilla", "lsgan", "hinge"))
        self.gan_type, self.loss_weight = gan_type, loss_weight
        self.real_label_val, self.fake_label_val = real_label_val, fake_label_val

    def forward(self, pred: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        if self.gan_type == "hinge":
            if is_disc:
                loss = F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()
            else:
                loss = -pred.mean()
        else:
            target = torch.full_like(pred, self.real_label_val if target_is_real else self.fake_label_val)
            if self.gan_type == "vanilla":
                loss = F.binary_cross_entropy_with_logits(pred, target)
            else:
                loss = F.mse_loss(pred, target)
        return loss if is_disc else loss * self.loss_weight


# Decoder feature maps of ``UNetDiscriminatorSN``; their hooked outputs are post-activation because
# the upstream forward applies ``leaky_relu(inplace=True)`` to them before anything else reads them.
UNET_D_DECODER_LAYERS = ("conv4", "conv5", "conv6", "conv7", "conv8")


class FeatureMatchingLoss(nn.Module):
    """Mean over ``layers`` of L1(D features of fake, D features of real), times ``loss_weight``.

    The discriminator is held by reference (not a submodule, so it does not enter this loss's
    ``state_dict`` or parameters). Real features are detached; the gradient flows to the fake
    image through D. ``forward(..., return_pred=True)`` also gives D's prediction on the fakes,
    so a generator step needs one D forward for both the GAN and the feature-matching terms.
    Call ``remove()`` to drop the hooks.
    """

    def __init__(self, discriminator: nn.Module, layers: Sequence[str] | None = None, loss_weight: float = 1.0):
        super().__init__()
        if layers is None:
            if type(discriminator).__name__ != "UNetDiscriminatorSN":
                raise ValueError(
                    f"give the layers to match for {type(discriminator).__name__}; defaults exist "
                    f"only for UNetDiscriminatorSN ({', '.join(UNET_D_DECODER_LAYERS)})"
                )
            layers = UNET_D_DECODER_LAYERS
        modules = dict(discriminator.named_modules())
        missing = [name for name in layers if name not in modules]
        if missing or not layers:
            raise ValueError(f"discriminator has no layers {missing or '(none given)'}; its modules: {', '.join(n for n in modules if n)}")
        self._d = [discriminator]  # a list hides it from nn.Module registration
        self.layers = tuple(layers)
        self.loss_weight = loss_weight
        self._captured: dict[str, torch.Tensor] | None = None
        self._handles = [modules[name].register_forward_hook(self._hook(name)) for name in self.layers]

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
            if self._captured is not None:  # only while ``extract`` runs: other D calls keep nothing
                self._captured[name] = output

        return hook

    def extract(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """D(x) and the hooked feature maps, in ``layers`` order."""
        self._captured = {}
        try:
            pred = self._d[0](x)
            feats = [self._captured[name] for name in self.layers]
        finally:
            self._captured = None
        return pred, feats

    def loss_from_features(self, fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss from features already extracted (real ones are detached here)."""
        terms = [F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats, strict=True)]
        return self.loss_weight * torch.stack(terms).mean()

    def forward(
        self, fake: torch.Tensor, real: torch.Tensor, return_pred: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The loss (and, with ``return_pred``, D's prediction on ``fake`` for the GAN term).

        Fake and real go through D as one batch (as SPADE does): a spectral-norm D in training
        mode runs a power iteration per call, so two calls would compare features under two
        slightly different weights and identical images would not give 0.
        """
        n = fake.shape[0]
        pred, feats = self.extract(torch.cat([fake, real.detach()]))
        loss = self.loss_from_features([f[:n] for f in feats], [f[n:] for f in feats])
        return (loss, pred[:n]) if return_pred else loss

    def remove(self) -> None:
        """Detach the hooks from the discriminator."""
        for h in self._handles:
            h.remove()
        self._handles = []


# torchvision ``vgg19().features`` indices under BasicSR's layer names (``VGGFeatureExtractor``).
_VGG19_CFG = (("1", 2), ("2", 2), ("3", 4), ("4", 4), ("5", 4))


def _vgg19_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in _VGG19_CFG:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


VGG19_LAYERS = _vgg19_names()
_VGG19_CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features``, cut after the deepest requested layer, returning the
    requested layers by BasicSR name (``conv3_4``, ``relu5_4``…). Frozen and in eval mode.

    ``weights``: a torchvision ``vgg19`` state dict (or a path to one); ``classifier.*`` entries
    and layers past the cut are ignored, every needed ``features.N.*`` entry must be present.
    """

    def __init__(self, layers: Sequence[str], weights: Mapping[str, torch.Tensor] | str | Path):
        super().__init__()
        bad = [name for name in layers if name not in VGG19_LAYERS]
        if bad or not layers:
            raise ValueError(f"unknown VGG19 layers {bad or '(none given)'}; choose from {', '.join(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        last = max(VGG19_LAYERS.index(name) for name in layers)
        mods: list[nn.Module] = []
        cin = 3
        for name in VGG19_LAYERS[: last + 1]:
            if name.startswith("conv"):
                cout = _VGG19_CHANNELS[name[4]]
                mods.append(nn.Conv2d(cin, cout, 3, 1, 1))
                cin = cout
            elif name.startswith("relu"):
                mods.append(nn.ReLU(inplace=False))  # in-place would overwrite hooked conv outputs
            else:
                mods.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*mods)
        if isinstance(weights, (str, Path)):  # the shared reader: tensors only, and one-line errors on any other file
            from scenestyle.loading import read_state_dict

            weights = read_state_dict(Path(weights))
        sd = weights
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        own = self.state_dict()
        missing = [k for k in own if k not in sd]
        if missing:
            raise WeightsError(
                f"VGG19 weights lack {', '.join(missing[:4])}{'…' if len(missing) > 4 else ''}; "
                f"expected a torchvision vgg19 state dict with features.N.weight/bias keys"
            )
        wrong = [k for k in own if tuple(sd[k].shape) != tuple(own[k].shape)]
        if wrong:
            raise WeightsError(f"VGG19 weights have wrong shapes for {', '.join(wrong[:4])}; is this vgg19 (not vgg16)?")
        self.load_state_dict({k: sd[k] for k in own})
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # frozen feature extractor: never in training mode

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)
        for name, module in zip(VGG19_LAYERS, self.features):
            x = module(x)
            if name in wanted:
                out[name] = x
        return out


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """Σ weight × distance(extractor(pred)[layer], extractor(target)[layer]), BasicSR-style.

    ``extractor`` is a frozen module returning a dict of named features (``VGG19Features`` or,
    e.g., a ``torchvision.models.feature_extraction`` model) and is required: no pretrained
    weights ship with scenestyle, so without one this raises and names ``FeatureMatchingLoss``.
    Inputs in [0, 1] (``range_norm=True`` for [-1, 1]) are ImageNet-normalised when
    ``use_input_norm``. ``criterion``: ``l1``, ``l2`` or ``fro`` (BasicSR's Frobenius norm).
    """

    def __init__(
        self,
        extractor: nn.Module | None,
        layer_weights: Mapping[str, float],
        criterion: str = "l1",
        use_input_norm: bool = True,
        range_norm: bool = False,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if extractor is None:
            raise WeightsError(
                "PerceptualLoss needs a pretrained feature extractor (e.g. VGG19Features with "
                "torchvision vgg19 weights) and none is available; train with FeatureMatchingLoss "
                "(discriminator feature matching) instead"
            )
        _check("criterion", criterion, ("l1", "l2", "fro"))
        if not layer_weights:
            raise ValueError("layer_weights must name at least one layer, e.g. {'conv5_4': 1.0}")
        self.extractor = extractor.requires_grad_(False).eval()
        self.layer_weights = dict(layer_weights)
        self.criterion, self.use_input_norm, self.range_norm = criterion, use_input_norm, range_norm
        self.loss_weight = loss_weight
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.extractor.eval()  # the extractor stays frozen (batch norm, dropout) whatever the trainer sets
        return self

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        feats = self.extractor(x)
        missing = [k for k in self.layer_weights if k not in feats]
        if missing:
            raise ValueError(f"feature extractor gives no {missing}; it gives {', '.join(feats)}")
        return feats

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion == "l1":
            return F.l1_loss(a, b)
        if self.criterion == "l2":
            return F.mse_loss(a, b)
        return torch.linalg.vector_norm(a - b)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self._features(pred)
        with torch.no_grad():
            ft = self._features(target)
        total = sum(w * self._distance(fp[k], ft[k]) for k, w in self.layer_weights.items())
        return self.loss_weight * total
