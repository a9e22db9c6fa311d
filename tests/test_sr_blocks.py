"""SR discriminators (upstream key layouts, shapes, spectral norm) and SR/denoise training losses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from scenestyle.errors import WeightsError
from scenestyle.nn import build
from scenestyle.nn.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from scenestyle.train.sr_losses import (
    VGG19_LAYERS,
    FeatureMatchingLoss,
    GANLoss,
    PerceptualLoss,
    PixelLoss,
    VGG19Features,
    charbonnier_loss,
)


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- discriminators: key layouts read off the upstream files ----------------------------------


def _vgg_style_expected(num_in_ch: int, f: int, input_size: int) -> dict[str, tuple[int, ...]]:
    """BasicSR ``VGGStyleDiscriminator.__init__`` written out: conv0_0, conv0_1/bn0_1, then per
    stage convS_0/bnS_0 (3x3) and convS_1/bnS_1 (4x4 stride 2), linear1 (f*8*4*4 -> 100), linear2."""

    def bn(name, c):
        return {
            f"{name}.weight": (c,),
            f"{name}.bias": (c,),
            f"{name}.running_mean": (c,),
            f"{name}.running_var": (c,),
            f"{name}.num_batches_tracked": (),
        }

    exp = {"conv0_0.weight": (f, num_in_ch, 3, 3), "conv0_0.bias": (f,), "conv0_1.weight": (f, f, 4, 4), **bn("bn0_1", f)}
    stages = [(1, f, 2 * f), (2, 2 * f, 4 * f), (3, 4 * f, 8 * f), (4, 8 * f, 8 * f)]
    stages += [(5, 8 * f, 8 * f)] if input_size == 256 else []
    for s, cin, cout in stages:
        exp |= {
            f"conv{s}_0.weight": (cout, cin, 3, 3),
            **bn(f"bn{s}_0", cout),
            f"conv{s}_1.weight": (cout, cout, 4, 4),
            **bn(f"bn{s}_1", cout),
        }
    return exp | {"linear1.weight": (100, f * 8 * 4 * 4), "linear1.bias": (100,), "linear2.weight": (1, 100), "linear2.bias": (1,)}


@pytest.mark.parametrize("input_size", [128, 256])
def test_vgg_style_discriminator_upstream_keys(input_size):
    with torch.device("meta"):
        got = shapes(VGGStyleDiscriminator(3, 64, input_size))
    expected = _vgg_style_expected(3, 64, input_size)
    assert list(got) == list(expected)  # same order as upstream's __init__
    assert got == expected
    assert len(got) == (72 if input_size == 256 else 60)


def test_unet_discriminator_sn_upstream_keys():
    """Layout of ``RealESRGAN_x4plus_netD.pth``: plain conv0/conv9, spectral norm on conv1..conv8."""
    got = shapes(UNetDiscriminatorSN(num_in_ch=3, num_feat=64))
    convs = {
        1: (128, 64, 4),
        2: (256, 128, 4),
        3: (512, 256, 4),
        4: (256, 512, 3),
        5: (128, 256, 3),
        6: (64, 128, 3),
        7: (64, 64, 3),
        8: (64, 64, 3),
    }
    expected = {"conv0.weight": (64, 3, 3, 3), "conv0.bias": (64,)}
    for i, (cout, cin, k) in convs.items():
        expected |= {f"conv{i}.weight_orig": (cout, cin, k, k), f"conv{i}.weight_u": (cout,), f"conv{i}.weight_v": (cin * k * k,)}
    expected |= {"conv9.weight": (1, 64, 3, 3), "conv9.bias": (1,)}
    assert got == expected
    assert not any(k.endswith(".bias") for k in got if k[4] in "12345678")  # bias=False under SN


def test_discriminators_are_registered_and_round_trip_state_dicts():
    a, b = build("UNetDiscriminatorSN", num_feat=8), UNetDiscriminatorSN(num_feat=8)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)
    assert isinstance(build("VGGStyleDiscriminator", num_feat=8, input_size=64), VGGStyleDiscriminator)


def test_discriminator_forward_shapes_and_size_errors():
    unet = UNetDiscriminatorSN(num_in_ch=1, num_feat=8)
    assert unet(torch.rand(2, 1, 32, 48)).shape == (2, 1, 32, 48)
    assert UNetDiscriminatorSN(num_feat=8, skip_connection=False)(torch.rand(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        unet(torch.rand(1, 1, 36, 32))
    for size in (32, 64):
        vgg = VGGStyleDiscriminator(num_feat=8, input_size=size)
        assert vgg(torch.rand(3, 3, size, size)).shape == (3, 1, 1, 1)
    with pytest.raises(ValueError, match="needs 32x32"):
        VGGStyleDiscriminator(num_feat=8, input_size=32)(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="128, 256"):
        VGGStyleDiscriminator(input_size=100)


def test_spectral_norm_keeps_largest_singular_value_near_one():
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(num_feat=8).train()
    raw = torch.linalg.matrix_norm(d.conv4.weight_orig.flatten(1), ord=2)
    assert abs(raw - 1) > 0.2  # the unnormalised weight is far from 1, so the check below means something
    with torch.no_grad():
        for _ in range(30):  # one power iteration per forward pass in training mode
            d(torch.rand(1, 3, 16, 16))
    for i in range(1, 9):
        w = getattr(d, f"conv{i}").weight
        sigma = torch.linalg.matrix_norm(w.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.03), f"conv{i}"


# --- pixel and GAN losses ---------------------------------------------------------------------


def test_pixel_losses_zero_at_optimum_and_gradients_flow():
    target = torch.rand(2, 3, 8, 8)
    for kind in ("l1", "charbonnier"):
        loss = PixelLoss(kind)
        assert loss(target, target).item() == pytest.approx(0.0, abs=1e-5)
        pred = (target + 0.1).requires_grad_()
        value = loss(pred, target)
        assert value.item() == pytest.approx(0.1, rel=1e-3)
        value.backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert PixelLoss("l1", loss_weight=2.0)(target + 0.1, target).item() == pytest.approx(0.2, rel=1e-3)
    assert charbonnier_loss(torch.zeros(4), torch.ones(4), reduction="sum").item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="'l1', 'charbonnier'"):
        PixelLoss("l2")


def test_gan_losses_signs_and_optima():
    lsgan = GANLoss("lsgan")
    assert lsgan(torch.ones(2, 1, 4, 4), True, is_disc=True).item() == 0.0
    assert lsgan(torch.zeros(2, 1, 4, 4), False, is_disc=True).item() == 0.0
    assert lsgan(torch.zeros(2, 1, 4, 4), True, is_disc=True).item() == pytest.approx(1.0)

    vanilla = GANLoss("vanilla")
    real_scores = [vanilla(torch.full((1, 1, 2, 2), v), True, is_disc=True).item() for v in (-2.0, 0.0, 2.0)]
    assert real_scores[0] > real_scores[1] > real_scores[2] > 0  # D is rewarded for high logits on reals
    assert vanilla(torch.zeros(1, 1), True).item() == pytest.approx(math.log(2))

    hinge = GANLoss("hinge", loss_weight=0.1)
    assert hinge(torch.full((1, 1, 2, 2), 1.5), True, is_disc=True).item() == 0.0
    assert hinge(torch.full((1, 1, 2, 2), -1.5), False, is_disc=True).item() == 0.0
    assert hinge(torch.full((1, 1, 2, 2), 0.5), True, is_disc=True).item() == pytest.approx(0.5)
    assert hinge(torch.full((1, 1, 2, 2), 2.0), True, is_disc=False).item() == pytest.approx(-0.2)  # weight on G only

    with pytest.raises(ValueError, match="hinge"):
        GANLoss("wgan-gp")


def test_label_smoothing_moves_the_optimum():
    smooth = GANLoss("vanilla", real_label_val=0.9)
    logit = torch.tensor([math.log(0.9 / 0.1)], requires_grad=True)  # sigmoid(logit) = 0.9
    smooth(logit, True, is_disc=True).backward()
    assert abs(logit.grad.item()) < 1e-6
    logit2 = torch.tensor([5.0], requires_grad=True)
    smooth(logit2, True, is_disc=True).backward()
    assert logit2.grad.item() > 0  # an over-confident D is pushed back


def test_gan_loss_gradient_reaches_generator():
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(num_feat=8)
    fake = torch.rand(1, 3, 16, 16, requires_grad=True)
    GANLoss("vanilla", loss_weight=0.1)(d(fake), True).backward()
    assert fake.grad.abs().sum() > 0


# --- feature matching and perceptual losses ---------------------------------------------------


def test_feature_matching_zero_for_identical_inputs_and_positive_otherwise():
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(num_feat=8).train()  # training mode: SN power iterations run
    fm = FeatureMatchingLoss(d)
    x = torch.rand(2, 3, 16, 16)
    assert fm(x, x).item() == 0.0
    fake = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss, pred = fm(fake, x, return_pred=True)
    assert loss.item() > 0 and pred.shape == (2, 1, 16, 16)
    loss.backward()
    assert fake.grad.abs().sum() > 0
    assert not list(fm.parameters()) and not fm.state_dict()  # D is held by reference only


def test_feature_matching_layers_hooks_and_errors():
    d = UNetDiscriminatorSN(num_feat=8)
    fm = FeatureMatchingLoss(d, layers=("conv4", "conv8"))
    pred, feats = fm.extract(torch.rand(1, 3, 16, 16))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 4, 4), (1, 8, 16, 16)]
    assert fm._captured is None  # plain D calls keep nothing
    d(torch.rand(1, 3, 16, 16))
    fm.remove()
    assert not d.conv4._forward_hooks
    with pytest.raises(ValueError, match="conv4"):
        FeatureMatchingLoss(d, layers=("decoder",))
    with pytest.raises(ValueError, match="give the layers"):
        FeatureMatchingLoss(VGGStyleDiscriminator(num_feat=8, input_size=32))
    vfm = FeatureMatchingLoss(VGGStyleDiscriminator(num_feat=8, input_size=32), layers=("bn2_1", "bn4_1"))
    assert vfm(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)).item() > 0


def test_perceptual_loss_without_weights_points_to_feature_matching():
    with pytest.raises(WeightsError, match="FeatureMatchingLoss"):
        PerceptualLoss(None, {"conv5_4": 1.0})


def _tiny_vgg_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "features.0.weight": torch.randn(64, 3, 3, 3) * 0.1,
        "features.0.bias": torch.zeros(64),
        "features.2.weight": torch.randn(64, 64, 3, 3) * 0.05,
        "features.2.bias": torch.zeros(64),
        "classifier.0.weight": torch.zeros(1),
    }  # ignored


def test_vgg19_layer_names_match_torchvision_indices():
    assert len(VGG19_LAYERS) == 37
    assert VGG19_LAYERS.index("conv1_2") == 2 and VGG19_LAYERS.index("conv3_4") == 16
    assert VGG19_LAYERS.index("conv4_4") == 25 and VGG19_LAYERS.index("conv5_4") == 34
    assert VGG19_LAYERS[-1] == "pool5"


def test_perceptual_loss_with_given_weights(tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save(_tiny_vgg_weights(), path)
    extractor = VGG19Features(["conv1_1", "conv1_2"], path)
    assert len(extractor.features) == 3  # cut after the deepest requested layer
    loss = PerceptualLoss(extractor, {"conv1_1": 0.5, "conv1_2": 1.0})
    loss.train()
    assert not extractor.training
    target = torch.rand(1, 3, 16, 16)
    assert loss(target, target).item() == 0.0
    pred = torch.rand(1, 3, 16, 16, requires_grad=True)
    value = loss(pred, target)
    assert value.item() > 0
    value.backward()
    assert pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in extractor.parameters())


def test_vgg19_features_refuse_incomplete_weights():
    with pytest.raises(WeightsError, match="features.5.weight"):
        VGG19Features(["conv2_1"], _tiny_vgg_weights())
    with pytest.raises(ValueError, match="conv5_4"):
        VGG19Features(["conv6_1"], _tiny_vgg_weights())
