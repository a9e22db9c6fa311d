"""MATLAB-compatible bicubic: kernel, identities, and the official Set5/Set14 LR files bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.metrics.resize import cubic, imresize, resize_weights


def test_cubic_kernel_values():
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    # Keys a = -0.5: 1, 0.5625, 0, -0.0625, 0, 0
    np.testing.assert_allclose(cubic(x), [1, 0.5625, 0, -0.0625, 0, 0], atol=1e-12)


def test_weights_sum_to_one_and_indices_in_range():
    for n_in, n_out in ((10, 3), (7, 28), (64, 16)):
        idx, w = resize_weights(n_in, n_out, n_out / n_in)
        np.testing.assert_allclose(w.sum(axis=1), 1.0)
        assert idx.min() >= 0 and idx.max() < n_in


def test_identity_and_constant():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, 1.0), img)
    flat = np.full((16, 12), 0.3)
    for s in (0.25, 0.5, 3.0):
        out = imresize(flat, s)
        assert out.shape == (int(np.ceil(16 * s)), int(np.ceil(12 * s)))
        np.testing.assert_allclose(out, 0.3)


def test_shrink_differs_from_plain_cubic():
    rng = np.random.default_rng(1)
    img = rng.random((32, 32))
    assert not np.allclose(imresize(img, 0.25), imresize(img, 0.25, antialias=False))


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        imresize(np.zeros((4, 4)), 2.0, size=(8, 8))
    with pytest.raises(ValueError, match="border"):
        imresize(np.zeros((4, 4)), 2.0, border="wrap")


def _pairs(shared, name):
    hr_dir = shared / "data/eval" / name / "HR"
    for hr in sorted(hr_dir.glob("*.png")):
        yield hr, hr_dir.parent / "LR_bicubic/X4" / f"{hr.stem}x4.png"


@pytest.mark.parametrize("name,count", [("Set5", 5), ("Set14", 14)])
def test_downscale_reproduces_official_lr(shared_dir, name, count):
    pairs = list(_pairs(shared_dir, name))
    assert len(pairs) == count
    for hr_path, lr_path in pairs:
        hr = np.asarray(Image.open(hr_path).convert("RGB"))
        lr = np.asarray(Image.open(lr_path).convert("RGB"))
        h, w = hr.shape[:2]
        mine = imresize(hr[: h - h % 4, : w - w % 4], 0.25)
        np.testing.assert_array_equal(mine, lr, err_msg=hr_path.name)


# shared/README.md: PIL bicubic x4 of the given LR, Y channel, crop 4. The literature's Set14
# figure is 26.00 dB, with MATLAB's upsampling; this test pins the PIL figure the README measured.
@pytest.mark.parametrize("name,expected", [("Set5", 28.43), ("Set14", 26.09)])
def test_pil_bicubic_upsampling_baseline(shared_dir, name, expected):
    scores = []
    for hr_path, lr_path in _pairs(shared_dir, name):
        lr = Image.open(lr_path).convert("RGB")
        up = np.asarray(lr.resize((lr.width * 4, lr.height * 4), Image.BICUBIC))
        hr = np.asarray(Image.open(hr_path).convert("RGB"))[: up.shape[0], : up.shape[1]]
        scores.append(psnr(up, hr, crop_border=4, test_y=True))
    assert np.mean(scores) == pytest.approx(expected, abs=0.01)
