"""Forward results checked against independent functional re-implementations of the upstream
layouts, computed from the state dict alone (no scenestyle module code involved)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scenestyle.engine.run import _interpolate
from scenestyle.loading import LoadedModel
from scenestyle.nn import build, describe


def _inorm(x):
    return F.instance_norm(x, eps=1e-5)


def resnet_generator_reference(sd: dict, x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """junyanz ResnetGenerator (instance norm, reflect padding, no dropout) as plain functions.

    Sequential indices: 0 pad3, 1 conv7, 2 norm, 3 relu, 4/7 stride-2 convs (+norm, relu),
    10..10+n-1 residual blocks (conv_block.1 and .5 behind reflect pads), then two transposed
    convs at 10+n and 13+n, pad3 and the output conv at 17+n, tanh.
    """

    def conv(h, i, **kw):
        return F.conv2d(h, sd[f"model.{i}.weight"], sd.get(f"model.{i}.bias"), **kw)

    h = F.relu(_inorm(conv(F.pad(x, (3, 3, 3, 3), mode="reflect"), 1)))
    h = F.relu(_inorm(conv(h, 4, stride=2, padding=1)))
    h = F.relu(_inorm(conv(h, 7, stride=2, padding=1)))
    for b in range(n_blocks):
        p = f"model.{10 + b}.conv_block"
        r = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), sd[f"{p}.1.weight"], sd[f"{p}.1.bias"])
        r = F.relu(_inorm(r))
        r = F.conv2d(F.pad(r, (1, 1, 1, 1), mode="reflect"), sd[f"{p}.5.weight"], sd[f"{p}.5.bias"])
        h = h + _inorm(r)
    for i in (10 + n_blocks, 13 + n_blocks):
        h = F.conv_transpose2d(h, sd[f"model.{i}.weight"], sd[f"model.{i}.bias"], stride=2, padding=1, output_padding=1)
        h = F.relu(_inorm(h))
    return torch.tanh(conv(F.pad(h, (3, 3, 3, 3), mode="reflect"), 17 + n_blocks))


def srvgg_reference(sd: dict, x: torch.Tensor, num_conv: int, upscale: int) -> torch.Tensor:
    """Real-ESRGAN SRVGGNetCompact (PReLU): body = conv, prelu, (conv, prelu) x num_conv, conv;
    pixel shuffle; plus the nearest-upsampled input."""
    h = F.prelu(F.conv2d(x, sd["body.0.weight"], sd["body.0.bias"], padding=1), sd["body.1.weight"])
    for k in range(num_conv):
        i = 2 + 2 * k
        h = F.prelu(F.conv2d(h, sd[f"body.{i}.weight"], sd[f"body.{i}.bias"], padding=1), sd[f"body.{i + 1}.weight"])
    last = 2 + 2 * num_conv
    h = F.pixel_shuffle(F.conv2d(h, sd[f"body.{last}.weight"], sd[f"body.{last}.bias"], padding=1), upscale)
    return h + F.interpolate(x, scale_factor=upscale, mode="nearest")


@pytest.mark.parametrize("n_blocks", [1, 6, 9])
def test_resnet_generator_matches_reference(n_blocks):
    torch.manual_seed(n_blocks)
    model = build("ResnetGenerator", ngf=8, n_blocks=n_blocks).eval()
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        ours = model(x)
        ref = resnet_generator_reference(model.state_dict(), x, n_blocks)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


@pytest.mark.parametrize("upscale", [2, 4])
def test_srvgg_matches_reference(upscale):
    torch.manual_seed(upscale)
    model = build("SRVGGNetCompact", num_feat=8, num_conv=3, upscale=upscale).eval()
    with torch.no_grad():  # PReLU slopes start equal; vary them so a mix-up would show
        for name, p in model.named_parameters():
            if p.dim() == 1 and p.numel() == 8 and "body" in name and int(name.split(".")[1]) % 2 == 1:
                p.uniform_(0.0, 0.5)
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        ours = model(x)
        ref = srvgg_reference(model.state_dict(), x, 3, upscale)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_denoise_strength_interpolates_weights_like_real_esrgan():
    torch.manual_seed(0)
    a = build("SRVGGNetCompact", num_feat=8, num_conv=2, upscale=4)
    b = build("SRVGGNetCompact", num_feat=8, num_conv=2, upscale=4)
    wa = {k: v.clone() for k, v in a.state_dict().items()}
    wb = b.state_dict()

    def loaded(m):
        meta = describe("SRVGGNetCompact", dict(num_feat=8, num_conv=2, upscale=4))
        return LoadedModel(module=m, meta=meta, name="x", kwargs={}, sha256="0" * 64, path=None)

    _interpolate(loaded(a), loaded(b), 0.3)
    for k, v in a.state_dict().items():
        assert torch.allclose(v, 0.3 * wa[k] + 0.7 * wb[k], atol=1e-6)
