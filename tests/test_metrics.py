"""PSNR/SSIM equal BasicSR's formulas, checked against an independent direct implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import correlate2d

from scenestyle.metrics.psnr_ssim import gaussian_window, psnr, rgb_to_y, ssim


def _ref_y(rgb_u8: np.ndarray) -> np.ndarray:
    # BasicSR: BGR image, float32 / 255, dot with (B, G, R) weights, + 16, / 255, float32, * 255
    bgr = rgb_u8[..., ::-1].astype(np.float32) / 255.0
    y = ((bgr @ np.array([24.966, 128.553, 65.481])) + 16.0) / 255.0
    return (y.astype(np.float32) * np.float32(255.0)).astype(np.float64)


def _ref_ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    x = np.arange(11) - 5.0
    k = np.exp(-x * x / (2 * 1.5**2))
    k /= k.sum()
    win = np.outer(k, k)
    f = lambda im: correlate2d(im, win, mode="valid")  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m1, m2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - m1**2, f(b * b) - m2**2, f(a * b) - m1 * m2
    return float((((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2))).mean())


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    noise = rng.normal(0, 12, a.shape)
    b = np.clip(a + noise, 0, 255).round().astype(np.uint8)
    return a, b


def test_gaussian_window_matches_formula():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0)
    assert g[5] / g[6] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


def test_y_channel_is_bt601(pair):
    a, _ = pair
    np.testing.assert_array_equal(rgb_to_y(a).astype(np.float64), _ref_y(a))
    white = np.full((2, 2, 3), 255, np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0, abs=1e-4)
    assert rgb_to_y(np.zeros((2, 2, 3), np.uint8))[0, 0] == pytest.approx(16.0)


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_rgb_and_y(pair, crop):
    a, b = pair
    c = slice(crop, -crop) if crop else slice(None)
    mse_rgb = np.mean((a[c, c].astype(np.float64) - b[c, c]) ** 2)
    assert psnr(a, b, crop) == pytest.approx(10 * math.log10(255**2 / mse_rgb), abs=1e-10)
    mse_y = np.mean((_ref_y(a[c, c]) - _ref_y(b[c, c])) ** 2)
    assert psnr(a, b, crop, test_y=True) == pytest.approx(10 * math.log10(255**2 / mse_y), abs=1e-10)


def test_psnr_identical_is_inf(pair):
    assert psnr(pair[0], pair[0]) == math.inf


@pytest.mark.parametrize("crop", [0, 3])
def test_ssim_rgb_and_y(pair, crop):
    a, b = pair
    c = slice(crop, -crop) if crop else slice(None)
    af, bf = a[c, c].astype(np.float64), b[c, c].astype(np.float64)
    expect_rgb = np.mean([_ref_ssim_2d(af[..., i], bf[..., i]) for i in range(3)])
    assert ssim(a, b, crop) == pytest.approx(expect_rgb, abs=1e-10)
    expect_y = _ref_ssim_2d(_ref_y(a[c, c]), _ref_y(b[c, c]))
    assert ssim(a, b, crop, test_y=True) == pytest.approx(expect_y, abs=1e-10)
    assert ssim(a, a) == pytest.approx(1.0)


def test_grayscale_inputs(pair):
    a, b = pair[0][..., 0], pair[1][..., 0]
    assert psnr(a, b, test_y=True) == pytest.approx(psnr(a, b))
    assert ssim(a, b) == pytest.approx(_ref_ssim_2d(a.astype(float), b.astype(float)), abs=1e-10)


def test_psnr_peak_and_any_shape():
    a = np.zeros((4, 4), np.uint8)
    assert psnr(a, np.full((4, 4), 255, np.uint8)) == pytest.approx(0.0)  # no uint8 wrap-around
    assert psnr(np.zeros(8), np.ones(8)) == pytest.approx(20 * np.log10(255))
    assert psnr(np.zeros(8), np.full(8, 0.1), peak=1.0) == pytest.approx(20.0)
    batch = np.zeros((2, 3, 4, 4), np.float32)
    assert psnr(batch, batch + 0.5, peak=2.0) == pytest.approx(20 * np.log10(4))
    with pytest.raises(ValueError, match="empty"):
        psnr(np.zeros(0), np.zeros(0))


def test_shape_mismatch_and_bad_crop_raise(pair):
    a, _ = pair
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, a[:-1])
    with pytest.raises(ValueError, match="crop_border"):
        ssim(a, a, crop_border=20)
