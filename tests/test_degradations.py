"""Degradations for SR training (kernels, bicubic protocol, Real-ESRGAN pipeline) and denoise noise synthesis."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from scenestyle.train.blur_kernels import (
    filter2d,
    gaussian_kernel,
    generalized_gaussian_kernel,
    plateau_kernel,
    random_kernel,
    sinc_kernel,
    usm_sharp,
)
from scenestyle.train.degradations import RealESRGANDegradation, bicubic_pair, degrade, jpeg
from scenestyle.train.noise_synthesis import NOISE_KINDS, add_noise


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def photo_like(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth gradients plus a few edges: something blur and JPEG visibly change."""
    g = gen(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])[None].repeat(n, 1, 1, 1)
    edges = (torch.rand(n, 3, size // 8, size // 8, generator=g) > 0.5).float()
    edges = torch.nn.functional.interpolate(edges, size=(size, size), mode="nearest")
    return (0.6 * base + 0.4 * edges).clamp(0, 1)


# --- kernels ----------------------------------------------------------------------------------


def test_kernels_sum_to_one_and_have_their_shape():
    ks = {
        "iso": gaussian_kernel(21, 2.0),
        "aniso": gaussian_kernel(21, 3.0, 0.5, 0.7),
        "generalized": generalized_gaussian_kernel(15, 2.0, 1.0, 0.3, 0.6),
        "plateau": plateau_kernel(13, 2.0, None, 0.0, 1.5),
        "sinc": sinc_kernel(math.pi / 3, 11),
        "sinc_padded": sinc_kernel(math.pi / 2, 7, pad_to=21),
    }
    for name, k in ks.items():
        assert k.dtype == torch.float32
        assert k.sum().item() == pytest.approx(1.0, abs=1e-5), name
        c = k.shape[-1] // 2
        assert k[c, c] == k.max(), name  # centred
    assert ks["sinc_padded"].shape == (21, 21) and ks["sinc_padded"][:7].abs().sum() == 0
    assert (ks["sinc"] < 0).any()  # ringing lobes
    iso = ks["iso"]
    torch.testing.assert_close(iso, iso.T)
    # rotating an anisotropic kernel by 90° transposes it
    torch.testing.assert_close(gaussian_kernel(21, 3.0, 1.0, math.pi / 2), gaussian_kernel(21, 3.0, 1.0, 0.0).T, atol=1e-6, rtol=0)
    assert not torch.allclose(ks["aniso"], ks["aniso"].T)
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(20, 1.0)


def test_gaussian_kernel_matches_its_sigma():
    k = gaussian_kernel(41, 3.0).double()
    ax = torch.arange(41, dtype=torch.float64) - 20
    var_x = (k.sum(0) * ax * ax).sum().item()
    assert math.sqrt(var_x) == pytest.approx(3.0, rel=1e-3)


def test_random_kernel_is_padded_normalised_and_seeded():
    cfg = RealESRGANDegradation()
    draw = lambda g: random_kernel(
        g,
        cfg.kernel_list,
        cfg.kernel_prob,
        cfg.kernel_sizes,
        cfg.blur_sigma,  # noqa: E731
        cfg.betag_range,
        cfg.betap_range,
        cfg.sinc_prob,
    )
    g = gen(3)
    kernels = [draw(g) for _ in range(20)]
    for k in kernels:
        assert k.shape == (21, 21) and k.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert len({round(k.max().item(), 6) for k in kernels}) > 15  # varied
    torch.testing.assert_close(draw(gen(7)), draw(gen(7)), rtol=0, atol=0)


def test_filter2d_per_image_kernels():
    x = torch.rand(2, 3, 24, 24)
    pulse = torch.zeros(21, 21)
    pulse[10, 10] = 1
    blur = gaussian_kernel(21, 2.0)
    out = filter2d(x, torch.stack([pulse, blur]))
    torch.testing.assert_close(out[0], x[0])
    assert out[1].std() < x[1].std() * 0.6
    torch.testing.assert_close(filter2d(x, blur)[1], out[1])
    small = filter2d(torch.rand(1, 1, 6, 6), blur)  # smaller than the padding: replicate borders
    assert small.shape == (1, 1, 6, 6) and torch.isfinite(small).all()


def test_usm_sharp_keeps_flat_areas_and_boosts_edges():
    flat = torch.full((1, 3, 32, 32), 0.4)
    torch.testing.assert_close(usm_sharp(flat), flat)
    step = torch.zeros(1, 1, 32, 32)
    step[..., 16:] = 0.6
    sharp = usm_sharp(step)
    assert sharp.max() > 0.6 and sharp.min() >= 0  # overshoot on the bright side, clamped at 0
    assert sharp[..., 17].mean() > sharp[..., 30].mean() >= 0.6  # strongest next to the edge


# --- JPEG -------------------------------------------------------------------------------------


def test_jpeg_low_quality_changes_the_image_high_quality_barely():
    x = photo_like(2, 48)
    low = jpeg(x, 10)
    high = jpeg(x, 100)
    assert low.shape == x.shape and low.dtype == torch.float32
    assert (low - x).abs().mean() > 0.02
    assert (high - x).abs().mean() < (low - x).abs().mean() / 3
    per_image = jpeg(x, [10, 100])
    torch.testing.assert_close(per_image[0], low[0])
    torch.testing.assert_close(per_image[1], high[1])
    assert jpeg(x[:, :1], 30).shape == (2, 1, 48, 48)
    with pytest.raises(ValueError, match="1..100"):
        jpeg(x, 0)
    with pytest.raises(ValueError, match="one per image"):
        jpeg(x, [50, 60, 70])


# --- bicubic protocol -------------------------------------------------------------------------


def test_bicubic_pair_crops_to_a_multiple_of_the_scale():
    hr = torch.rand(2, 3, 67, 70)
    cropped, lr = bicubic_pair(hr, 4)
    assert cropped.shape == (2, 3, 64, 68) and lr.shape == (2, 3, 16, 17)
    torch.testing.assert_close(cropped, hr[:, :, :64, :68])
    assert torch.equal(lr, (lr * 255).round() / 255)  # 8-bit values like the protocol's PNGs
    flat = torch.full((1, 3, 32, 32), 100 / 255)
    torch.testing.assert_close(bicubic_pair(flat, 2)[1], torch.full((1, 3, 16, 16), 100 / 255))
    with pytest.raises(ValueError, match="positive integer"):
        bicubic_pair(hr, 0)


def test_bicubic_pair_reproduces_set5_lr(shared_dir):
    root = shared_dir / "data/eval/Set5"
    hr = np.asarray(Image.open(root / "HR/baby.png").convert("RGB"))
    lr_ref = np.asarray(Image.open(root / "LR_bicubic/X4/babyx4.png").convert("RGB"))
    t = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255
    _, lr = bicubic_pair(t, 4)
    got = (lr[0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert got.shape == lr_ref.shape
    assert np.array_equal(got, lr_ref)


# --- Real-ESRGAN second-order pipeline -------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_degrade_shapes_range_and_quantisation(scale):
    hr = photo_like(3, 64)
    lr = degrade(hr, scale, RealESRGANDegradation(), gen(0))
    assert lr.shape == (3, 3, 64 // scale, 64 // scale) and lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr, (lr * 255).round() / 255)


def test_degrade_is_reproducible_from_the_generator_state():
    hr, cfg = photo_like(2, 64), RealESRGANDegradation()
    a = degrade(hr, 4, cfg, gen(11))
    b = degrade(hr, 4, cfg, gen(11))
    assert torch.equal(a, b)
    g = gen(11)
    degrade(hr, 4, cfg, g)
    state = g.get_state()  # checkpoint mid-run, resume later
    nxt = degrade(hr, 4, cfg, g)
    g2 = torch.Generator()
    g2.set_state(state)
    assert torch.equal(degrade(hr, 4, cfg, g2), nxt)
    assert not torch.equal(nxt, a)  # the generator advanced
    others = [degrade(hr, 4, cfg, gen(s)) for s in (12, 13, 14)]
    assert all(not torch.equal(o, a) for o in others)


def test_degrade_actually_degrades():
    hr = photo_like(4, 64)
    _, clean_lr = bicubic_pair(hr, 4)
    lr = degrade(hr, 4, RealESRGANDegradation(), gen(5))
    diff = (lr - clean_lr).abs().mean(dim=(1, 2, 3))
    assert (diff > 0.005).all()
    # and keeps the content: the degraded LR is much closer to its own clean LR than to a shuffled one
    assert (lr - clean_lr).abs().mean() < (lr - clean_lr.roll(1, dims=0)).abs().mean() * 0.8


def test_degrade_does_not_touch_global_rngs():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    degrade(photo_like(1, 32), 4, RealESRGANDegradation(), gen(0))
    assert torch.equal(torch.rand(3), before)


def test_degrade_refuses_bad_input():
    with pytest.raises(ValueError, match="divisible by the scale 4"):
        degrade(torch.rand(1, 3, 30, 32), 4, RealESRGANDegradation(), gen(0))
    with pytest.raises(ValueError, match="N×C×H×W"):
        degrade(torch.rand(3, 32, 32), 4, RealESRGANDegradation(), gen(0))


def test_config_is_frozen_and_validated():
    cfg = RealESRGANDegradation()
    assert cfg.resize_prob == (0.2, 0.7, 0.1) and cfg.final_sinc_prob == 0.8 and cfg.noise_range2 == (1.0, 25.0)
    with pytest.raises(AttributeError):
        cfg.sinc_prob = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="kernel_prob .*sum to 1"):
        replace(cfg, kernel_prob=(0.5, 0.5, 0.5, 0, 0, 0))
    with pytest.raises(ValueError, match="unknown kernels"):
        replace(cfg, kernel_list=("iso", "box"), kernel_prob=(0.5, 0.5))
    with pytest.raises(ValueError, match="jpeg_range"):
        replace(cfg, jpeg_range=(30.0, 120.0))
    with pytest.raises(ValueError, match="odd"):
        replace(cfg, kernel_sizes=(7, 8))


# --- denoise noise synthesis ----------------------------------------------------------------


def test_gaussian_noise_sigma_matches_request_and_map():
    flat = torch.full((2, 3, 64, 64), 0.5)
    noisy, sigma_map = add_noise(flat, "gaussian", gen(0), sigma_range=(25.0, 25.0))
    assert sigma_map.shape == (2, 1, 64, 64)
    torch.testing.assert_close(sigma_map, torch.full_like(sigma_map, 25 / 255))
    est = (noisy - flat).std(dim=(1, 2, 3))
    assert ((est - 25 / 255).abs() < 0.1 * 25 / 255).all()
    # per-image sigma from a range: each image's map says its own level
    noisy, sigma_map = add_noise(torch.full((4, 3, 64, 64), 0.5), "gaussian", gen(1), sigma_range=(5.0, 50.0))
    levels = sigma_map[:, 0, 0, 0]
    assert levels.unique().numel() == 4 and (levels >= 5 / 255).all() and (levels <= 50 / 255).all()
    est = (noisy - 0.5).std(dim=(1, 2, 3))
    assert ((est - levels).abs() < 0.1 * levels).all()
    dark = torch.full((1, 3, 32, 32), 0.02)
    assert add_noise(dark, "gaussian", gen(0), sigma_range=(25.0, 25.0))[0].min() < 0  # unclipped (KAIR protocol)
    clipped, _ = add_noise(dark, "gaussian", gen(0), sigma_range=(25.0, 25.0), clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_poisson_gaussian_noise_is_signal_dependent():
    x = torch.cat([torch.full((1, 3, 64, 64), 0.1), torch.full((1, 3, 64, 64), 0.9)])
    params = dict(shot_range=(4e-3, 4e-3), read_range=(0.01, 0.01))
    noisy, sigma_map = add_noise(x, "poisson_gaussian", gen(2), **params)
    est = (noisy - x).std(dim=(1, 2, 3))
    expected = torch.sqrt(4e-3 * torch.tensor([0.1, 0.9]) + 0.01**2)
    assert est[1] > 2 * est[0]
    assert ((est - expected).abs() < 0.1 * expected).all()
    torch.testing.assert_close(sigma_map[:, 0, 0, 0], expected, rtol=1e-5, atol=1e-6)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_camera_noise_is_channel_correlated_and_its_map_tracks_it():
    x = torch.full((2, 3, 64, 64), 0.45)
    noisy, sigma_map = add_noise(x, "camera", gen(4), shot_range=(2e-3, 2e-3), read_range=(5e-3, 5e-3))
    res = (noisy - x)[0].flatten(1)
    corr = torch.corrcoef(res)
    off_diag = corr[~torch.eye(3, dtype=torch.bool)].abs()
    assert off_diag.max() > 0.1  # the colour matrix mixes the raw channels' noise
    est = (noisy - x).std(dim=(1, 2, 3))
    level = sigma_map.mean(dim=(1, 2, 3))
    assert ((est - level).abs() < 0.15 * level).all()
    assert noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(ValueError, match="RGB"):
        add_noise(torch.rand(1, 1, 16, 16), "camera", gen(0))


def test_jpeg_noise_map_is_its_rms_error():
    x = photo_like(2, 48)
    noisy, sigma_map = add_noise(x, "jpeg", gen(0), quality_range=(10.0, 10.0))
    assert (noisy - x).abs().mean() > 0.01
    rms = (noisy - x).pow(2).mean(dim=(1, 2, 3)).sqrt()
    torch.testing.assert_close(sigma_map[:, 0, 0, 0], rms)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_add_noise_is_seeded_and_shaped(kind):
    x = photo_like(2, 32)
    a, ma = add_noise(x, kind, gen(9))
    b, mb = add_noise(x, kind, gen(9))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    c, _ = add_noise(x, kind, gen(10))
    assert not torch.equal(a, c)
    assert a.shape == x.shape and ma.shape == (2, 1, 32, 32)
    assert (ma >= 0).all() and (ma <= 1).all()


def test_add_noise_errors_name_the_choices():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="gaussian, poisson_gaussian, jpeg, camera"):
        add_noise(x, "speckle", gen(0))
    with pytest.raises(ValueError, match="sigma_range"):
        add_noise(x, "gaussian", gen(0), sigma=25)
    with pytest.raises(ValueError, match="low <= high"):
        add_noise(x, "gaussian", gen(0), sigma_range=(30.0, 10.0))
