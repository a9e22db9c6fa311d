"""FFDNet: KAIR layout and forward (against an independent functional re-implementation), σ
inputs, detection, halo and tiling, and `denoise` with a noise-level model through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine.device import Placement
from scenestyle.engine.noise import estimate_noise
from scenestyle.engine.tasks import Processor
from scenestyle.engine.tiles import run_model
from scenestyle.imaging import read_picture
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import DnCNN, FFDNet, build, detect_arch

from test_nn import dependency_radius

CPU = Placement(torch.device("cpu"), torch.float32, False, None, "test")
runner = CliRunner()


def seeded(seed: int = 0, **kwargs) -> FFDNet:
    torch.manual_seed(seed)
    return FFDNet(**{"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3, **kwargs}).eval()


# --- KAIR layout and forward ----------------------------------------------------------------

def kair_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KAIR ``FFDNet.forward`` written out over the state dict: replicate pad to even, KAIR's
    own pixel_unshuffle (view + permute), ``sigma.repeat`` to a half-resolution map, conv+ReLU
    chain, pixel shuffle, crop. ``sigma`` is N×1×1×1 as in KAIR's main_test_ffdnet.py."""
    h, w = x.shape[-2:]
    x = torch.nn.ReplicationPad2d((0, int(np.ceil(w / 2) * 2 - w), 0, int(np.ceil(h / 2) * 2 - h)))(x)
    b, c, hh, ww = x.shape
    x = x.contiguous().view(b, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 3, 5, 2, 4).contiguous().view(b, c * 4, hh // 2, ww // 2)
    x = torch.cat((x, sigma.repeat(1, 1, hh // 2, ww // 2)), 1)
    convs = sorted(int(k.split(".")[1]) for k in sd if k.endswith(".weight"))
    for i, idx in enumerate(convs):
        x = F.conv2d(x, sd[f"model.{idx}.weight"], sd[f"model.{idx}.bias"], padding=1)
        if i < len(convs) - 1:
            x = F.relu(x)
    return F.pixel_shuffle(x, 2)[..., :h, :w]


def kair_shapes(in_nc: int, out_nc: int, nc: int, nb: int) -> dict[str, tuple[int, ...]]:
    """Key → shape of KAIR's FFDNet (B.sequential flattens conv/ReLU pairs: convs at even indices)."""
    chans = [in_nc * 4 + 1] + [nc] * (nb - 1) + [out_nc * 4]
    out = {}
    for i in range(nb):
        out[f"model.{2 * i}.weight"] = (chans[i + 1], chans[i], 3, 3)
        out[f"model.{2 * i}.bias"] = (chans[i + 1],)
    return out


@pytest.mark.parametrize(("name", "kwargs"), [("ffdnet_color", dict(in_nc=3, out_nc=3, nc=96, nb=12)),
                                              ("ffdnet_gray", dict(in_nc=1, out_nc=1, nc=64, nb=15))])
def test_released_checkpoint_layout(name, kwargs):
    with torch.device("meta"):
        model = build(name)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == kair_shapes(**kwargs)
    assert (model.in_channels, model.out_channels, model.scale, model.size_multiple) == (kwargs["in_nc"], kwargs["out_nc"], 1, 2)
    assert model.noise_level_input is True and model.task == "denoise" and model.value_range == (0.0, 1.0)
    assert model.sigma_max == pytest.approx(75 / 255) and model.noise_level == pytest.approx(25 / 255)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(16, 16), (17, 21), (1, 3)])
def test_forward_matches_kair_reference(channels, size):
    model = seeded(in_nc=channels, out_nc=channels, nb=4)
    x = torch.rand(2, channels, *size, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([15.0, 50.0]).view(2, 1, 1, 1) / 255
    with torch.no_grad():
        y = model(x, sigma)
        ref = kair_forward(model.state_dict(), x, sigma)
    assert y.shape == x.shape
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)


def test_sigma_forms_agree():
    model = seeded()
    x = torch.rand(2, 3, 13, 18, generator=torch.Generator().manual_seed(2))
    s = 20 / 255
    with torch.no_grad():
        ref = model(x, s)
        model.noise_level = s
        assert torch.equal(model(x), ref)
        for form in (torch.tensor(s), torch.full((2,), s), torch.full((2, 1, 1, 1), s), torch.full((2, 1, 13, 18), s)):
            torch.testing.assert_close(model(x, form), ref, rtol=0, atol=1e-7)
        # per-image σ in one batch == each image on its own
        both = model(x, torch.tensor([5 / 255, 40 / 255]))
        torch.testing.assert_close(both[:1], model(x[:1], 5 / 255), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(both[1:], model(x[1:], 40 / 255), rtol=1e-5, atol=1e-6)
        # a map is averaged over each 2×2 block (the odd last row/column replicated first)
        m = torch.rand(2, 1, 13, 18, generator=torch.Generator().manual_seed(3)) * 0.2
        half = F.avg_pool2d(F.pad(m, (0, 0, 0, 1), mode="replicate"), 2)
        up = half.repeat_interleave(2, 2).repeat_interleave(2, 3)[..., :13, :18]
        torch.testing.assert_close(model(x, m), model(x, up), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(model(x, 0.0), ref)  # σ matters
    with pytest.raises(ValueError, match="sigma must be"):
        model(x, torch.zeros(3))


def test_bf16_forward_runs():
    model = seeded().to(torch.bfloat16)
    y = model(torch.rand(1, 3, 10, 10, dtype=torch.bfloat16), torch.tensor([0.1]))
    assert y.dtype == torch.bfloat16 and y.shape == (1, 3, 10, 10)


# --- detection --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(in_nc=1, out_nc=1, nc=8, nb=2), dict(in_nc=3, out_nc=3, nc=6, nb=4),
                                    dict(in_nc=3, out_nc=1, nc=8, nb=3), dict(in_nc=1, out_nc=1, nc=64, nb=15)])
def test_detect_ffdnet(kwargs):
    sd = FFDNet(**kwargs).state_dict()
    assert detect_arch(sd) == ("FFDNet", kwargs)


@pytest.mark.parametrize("ch", [1, 3, 5])
def test_dncnn_is_not_mistaken_for_ffdnet(ch):
    assert detect_arch(DnCNN(in_nc=ch, out_nc=ch, nc=8, nb=3).state_dict())[0] == "DnCNN"


# --- halo and tiles ---------------------------------------------------------------------------

@pytest.mark.parametrize("nb", [2, 3, 5])
def test_halo_is_the_receptive_field(nb):
    torch.manual_seed(0)
    model = FFDNet(in_nc=1, out_nc=1, nc=4, nb=nb)
    assert model.halo == dependency_radius(model, size=2 * model.halo + 16) == 2 * nb + 1


def test_tiled_equals_whole_image():
    model = seeded(nb=4)
    model.noise_level = 30 / 255
    x = torch.rand(1, 3, 75, 98, generator=torch.Generator().manual_seed(4))
    whole = run_model(model, x, CPU, tile=0)
    tiled = run_model(model, x, CPU, tile=32)
    assert psnr(tiled.numpy(), whole.numpy(), peak=1.0) >= 40


# --- the engine: σ per photo --------------------------------------------------------------------

def subtractor(channels: int = 3) -> FFDNet:
    """An FFDNet built by hand whose output is exactly ``x - σ`` (inputs are non-negative, so the
    ReLU passes them): wiring tests then read σ straight off the output."""
    n = channels * 4
    model = FFDNet(in_nc=channels, out_nc=channels, nc=n + 1, nb=2).eval()
    with torch.no_grad():
        first, last = model.model[0], model.model[2]
        first.weight.zero_(), first.bias.zero_(), last.weight.zero_(), last.bias.zero_()
        for c in range(n + 1):
            first.weight[c, c, 1, 1] = 1.0
        for c in range(n):
            last.weight[c, c, 1, 1] = 1.0
            last.weight[c, n, 1, 1] = -1.0
    return model


def noisy_photo(path: Path, sigma: float, size=(64, 48), seed: int = 0) -> Path:
    """A smooth mid-grey gradient plus Gaussian noise of ``sigma`` (8-bit units), saved as PNG."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    clean = 110 + 60 * np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
    Image.fromarray(noisy.round().clip(0, 255).astype(np.uint8)).save(path)
    return path


def test_processor_sigma_is_strength_times_estimate(tmp_path):
    pic = read_picture(noisy_photo(tmp_path / "n.png", 12))
    estimate = estimate_noise(pic.pixels)
    assert estimate * 255 == pytest.approx(12, rel=0.15)
    shifts = []
    for strength in (0.0, 0.5, 1.0):
        proc = Processor(model=subtractor(), placement=CPU, task="denoise", tile=0, strength=strength)
        out = proc(proc.annotate(pic)).pixels
        assert proc.net.noise_level == pytest.approx(strength * estimate)
        shifts.append(float(np.mean(pic.pixels - out)))
    np.testing.assert_allclose(shifts, [0.0, 0.5 * estimate, estimate], atol=1e-5)  # no blending on top
    proc = Processor(model=subtractor(), placement=CPU, task="denoise", tile=0, noise_level=30 / 255)
    assert "30/255" in proc.annotate(pic).notes[-1]
    assert float(np.mean(pic.pixels - proc(pic).pixels)) == pytest.approx(30 / 255, abs=1e-5)


def test_estimate_beyond_the_model_range_is_capped():
    pixels = (0.5 + np.random.default_rng(0).normal(0, 100 / 255, (64, 64, 3))).astype(np.float32)
    proc = Processor(model=subtractor(), placement=CPU, task="denoise", tile=0)
    level, note = proc.sigma(pixels)
    assert level == pytest.approx(75 / 255) and "capped at the model's maximum 75" in note
    assert "estimate 9" in note or "estimate 10" in note  # the estimate itself (about 100) is reported


# --- the CLI --------------------------------------------------------------------------------------

@pytest.fixture
def weights(tmp_path) -> dict[str, Path]:
    """KAIR-layout .pth files: the hand-built subtractor, a seeded tiny FFDNet, a tiny DnCNN."""
    torch.save(subtractor().state_dict(), tmp_path / "ffdnet_sub.pth")
    torch.save(seeded(nb=3).state_dict(), tmp_path / "ffdnet.pth")
    torch.manual_seed(0)
    torch.save(DnCNN(nc=8, nb=3).state_dict(), tmp_path / "dncnn.pth")
    return {k: tmp_path / f"{k}.pth" for k in ("ffdnet_sub", "ffdnet", "dncnn")}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def denoise(*args) -> tuple[int, str, dict]:
    r = runner.invoke(app, ["denoise", *map(str, args), "--json"])
    return r.exit_code, r.output, (json.loads(r.stdout) if r.exit_code in (0, 1) else {})


def _mean_shift(src: Path, out: Path) -> float:
    a = np.asarray(Image.open(src), dtype=np.float64)
    return float(np.mean(a - np.asarray(Image.open(out), dtype=np.float64)))


def test_cli_estimated_and_given_noise_level(tmp_path, weights):
    src = noisy_photo(tmp_path / "photo.png", 10)
    estimate = estimate_noise(np.asarray(Image.open(src), dtype=np.float32) / 255) * 255
    shifts, manifest = {}, tmp_path / "runs.jsonl"  # one manifest for the three runs (appended)
    for strength in ("1", "0.5"):
        code, output, report = denoise(src, "-o", tmp_path / f"s{strength}.png", "--weights", weights["ffdnet_sub"],
                                       "--strength", strength, "--manifest", manifest)
        assert code == 0, output
        [res] = report["results"]
        assert report["model"]["arch"] == "FFDNet" and report["parameters"]["noise_level"] is None
        assert f"noise level {float(strength) * estimate:.2f}/255" in res["notes"][-1]
        shifts[strength] = _mean_shift(src, tmp_path / f"s{strength}.png")
    assert shifts["1"] == pytest.approx(estimate, abs=0.6)  # 8-bit rounding of the output
    assert shifts["0.5"] == pytest.approx(estimate / 2, abs=0.6)

    code, output, report = denoise(src, "-o", tmp_path / "given.png", "--weights", weights["ffdnet_sub"], "--noise-level", "20",
                                   "--manifest", manifest)
    assert code == 0, output
    assert report["parameters"]["noise_level"] == 20 and "noise level 20/255 from --noise-level" in report["results"][0]["notes"]
    assert _mean_shift(src, tmp_path / "given.png") == pytest.approx(20, abs=0.6)
    lines = [json.loads(s) for s in manifest.read_text().splitlines()]
    assert [ln["notes"][-1].split(" = ")[0].split(" from ")[0] for ln in lines] == [
        f"noise level {estimate:.2f}/255", f"noise level {estimate / 2:.2f}/255", "noise level 20/255"]


def test_cli_seeded_ffdnet_grayscale_and_tiled(tmp_path, weights):
    src = noisy_photo(tmp_path / "photo.png", 15, size=(70, 45))
    Image.open(src).convert("L").save(tmp_path / "grey.png")
    for name in ("photo.png", "grey.png"):
        code, output, _ = denoise(tmp_path / name, "-o", tmp_path / "out", "--weights", weights["ffdnet"], "--tile", "0")
        assert code == 0, output
    assert Image.open(tmp_path / "out/grey_denoised.png").mode == "L"
    code, output, _ = denoise(src, "-o", tmp_path / "tiled.png", "--weights", weights["ffdnet"], "--tile", "32")
    assert code == 0, output
    whole = np.asarray(Image.open(tmp_path / "out/photo_denoised.png"))
    assert psnr(np.asarray(Image.open(tmp_path / "tiled.png")), whole) >= 40


@pytest.mark.parametrize(("extra", "message"), [
    (("--weights", "dncnn", "--noise-level", "15"), "--noise-level needs a model that takes a noise level"),
    (("--weights", "ffdnet", "--noise-level", "80"), "--noise-level"),
    (("--weights", "ffdnet", "--noise-level", "15", "--strength", "0.5"), "not both"),
])
def test_cli_noise_level_usage_errors(tmp_path, weights, extra, message):
    src = noisy_photo(tmp_path / "photo.png", 5)
    args = [weights[a] if a in weights else a for a in extra]
    r = runner.invoke(app, ["denoise", str(src), *map(str, args)])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert not (tmp_path / "photo_denoised.png").exists()


def test_dncnn_strength_still_blends(tmp_path, weights):
    src = noisy_photo(tmp_path / "photo.png", 5)
    full = denoise(src, "-o", tmp_path / "full.png", "--weights", weights["dncnn"])
    none = denoise(src, "-o", tmp_path / "none.png", "--weights", weights["dncnn"], "--strength", "0")
    assert full[0] == 0 and none[0] == 0, full[1] + none[1]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "none.png")), np.asarray(Image.open(src)))
    assert not any("noise level" in n for n in full[2]["results"][0]["notes"])
