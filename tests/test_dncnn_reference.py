"""KAIR DnCNN-25 on Set12 at sigma 25 reproduces the reference PSNR (shared/README.md protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import DnCNN

REFERENCE_DB = 30.44  # measured in shared/README.md; we accept 30.42 +- 0.05


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_dncnn25_set12_psnr(shared_dir, two_threads):
    weights = shared_dir / "weights/kair_dncnn/dncnn_25.pth"
    images = sorted((shared_dir / "data/eval/Set12").glob("*.png"))
    assert len(images) == 12
    model = DnCNN()  # in_nc=1, out_nc=1, nc=64, nb=17, act_mode="R": BN merged
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    model.eval()

    sigma = 25.0
    np.random.seed(0)  # once, before the first image
    scores = []
    with torch.inference_mode():
        for path in images:
            clean_u8 = np.asarray(Image.open(path).convert("L"))
            clean = clean_u8.astype(np.float64) / 255.0
            noisy = clean + np.random.normal(0, sigma / 255.0, clean.shape)  # float64, not clipped
            x = torch.from_numpy(noisy.astype(np.float32))[None, None]
            denoised = model(x)[0, 0].numpy()  # forward returns noisy - predicted noise
            denoised_u8 = np.uint8((np.clip(denoised, 0.0, 1.0) * 255.0).round())
            scores.append(psnr(denoised_u8, clean_u8))
    mean = float(np.mean(scores))
    print(f"\nDnCNN-25 Set12 sigma 25: {mean:.3f} dB (reference {REFERENCE_DB})")
    assert mean == pytest.approx(30.42, abs=0.05)
