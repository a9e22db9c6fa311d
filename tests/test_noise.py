"""Blind noise-level estimation (Chen et al. 2015 at half resolution) against noise of known σ."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scenestyle.engine.noise import estimate_noise, patch_noise_std

SIGMAS = (5, 15, 25, 50)  # 8-bit units


def smooth_image(h: int = 96, w: int = 128, channels: int = 3) -> np.ndarray:
    """Clean, smooth content (gradients and a slow wave) in [0.2, 0.8]."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [0.5 + 0.3 * np.sin(3 * xx + 2 * c) * np.cos(2 * yy - c) for c in range(channels)]
    return np.stack(planes, -1).astype(np.float32)


def add_noise(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return (clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape)).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_smooth_image_within_15_percent(sigma, channels):
    estimate = estimate_noise(add_noise(smooth_image(channels=channels), sigma)) * 255
    assert estimate == pytest.approx(sigma, rel=0.15)


def test_clean_smooth_image_has_almost_no_noise():
    assert estimate_noise(smooth_image()) * 255 < 0.5


def test_grey_shapes_agree_and_estimate_is_deterministic():
    noisy = add_noise(smooth_image(channels=1), 20)
    assert estimate_noise(noisy) == estimate_noise(noisy[..., 0]) == estimate_noise(noisy.copy())


def test_tiny_and_invalid_inputs():
    assert estimate_noise(np.full((1, 1, 3), 0.5, np.float32)) == 0.0
    assert estimate_noise(np.full((3, 200), 0.5, np.float32)) == 0.0
    # 40x48: patches shrink so that there are still enough of them for a usable answer
    assert estimate_noise(add_noise(smooth_image(40, 48), 25)) * 255 == pytest.approx(25, rel=0.15)
    with pytest.raises(ValueError, match="H×W"):
        estimate_noise(np.zeros((2, 2, 2, 2)))


def test_caller_array_untouched():
    noisy = add_noise(smooth_image(), 10)
    before = noisy.copy()
    estimate_noise(noisy)
    assert np.array_equal(noisy, before)


# Measured over all 68 CBSD68 photos (noise as in the KAIR protocol: float, unclipped): clean
# photos read median 1.0, max 4.7 (291000.png, fine texture); σ = 5 read median +4 %, max +35 %;
# σ = 15, 25, 50 within 7 %, 2 %, 2 %. Below: a typical photo and a textured one (the Haar MAD
# read 8.9 and 13.3 on them clean), with bounds from those measurements.
CBSD68_PHOTOS = ("101085.png", "175032.png")


@pytest.mark.parametrize("name", CBSD68_PHOTOS)
def test_natural_photos(shared_dir, name):
    clean = np.asarray(Image.open(shared_dir / "data/eval/CBSD68" / name).convert("RGB"), dtype=np.float32) / 255
    assert estimate_noise(clean) * 255 < 3.0  # texture is not mistaken for much noise
    for sigma, rel in zip(SIGMAS, (0.15, 0.10, 0.10, 0.10)):
        assert estimate_noise(add_noise(clean, sigma)) * 255 == pytest.approx(sigma, rel=rel)


def test_correlated_real_noise_is_seen(shared_dir):
    """RNI15 Dog.png is visibly very noisy, but its noise is spatially correlated: the finest
    patch directions hold little of it, so a full-resolution estimate reads almost none."""
    dog = np.asarray(Image.open(shared_dir / "data/eval/RNI15/Dog.png").convert("RGB"), dtype=np.float32) / 255
    assert patch_noise_std(dog) * 255 < 3
    assert estimate_noise(dog) * 255 > 8


@pytest.mark.parametrize("stored", ["gray", "rgb"])
def test_gray_photos(shared_dir, stored):
    """Set12 photos are gray: clean ones must not read as noisy (at half resolution they read 6 to
    22), and a gray photo saved as RGB (three equal channels) must still show its noise."""
    clean = np.asarray(Image.open(shared_dir / "data/eval/Set12/01.png"), dtype=np.float32)[..., None] / 255

    def as_stored(x: np.ndarray) -> np.ndarray:
        return np.repeat(x, 3, axis=2) if stored == "rgb" else x

    assert estimate_noise(as_stored(clean)) * 255 < 8.0
    for sigma, rel in zip((15.0, 25.0, 50.0), (0.15, 0.10, 0.05)):
        assert estimate_noise(as_stored(add_noise(clean, sigma))) * 255 == pytest.approx(sigma, rel=rel)
