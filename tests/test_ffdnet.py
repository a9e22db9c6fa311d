"""FFDNet: KAIR layout and forward (against an independent functional re-implementation), σ
inputs, detection, halo and tiling, `denoise` with a noise-level model through the CLI, and
`eval denoise` giving it the test's σ."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_nn import dependency_radius
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine.device import Placement
from scenestyle.engine.noise import GRAY_SIGMA_GAIN, estimate_noise
from scenestyle.engine.tasks import Processor
from scenestyle.engine.tiles import run_model, run_model_many
from scenestyle.imaging import read_picture
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import DnCNN, FFDNet, build, describe, detect_arch

CPU = Placement(torch.device("cpu"), torch.float32, False, None, "test")
runner = CliRunner()


def seeded(seed: int = 0, **kwargs) -> FFDNet:
    torch.manual_seed(seed)
    return FFDNet(**{"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 3, **kwargs}).eval()


META = describe("FFDNet", dict(in_nc=3, out_nc=3))  # what the engine reads: the same for every nb/nc used here but the halo


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


@pytest.mark.parametrize(
    ("name", "kwargs"), [("ffdnet_color", dict(in_nc=3, out_nc=3, nc=96, nb=12)), ("ffdnet_gray", dict(in_nc=1, out_nc=1, nc=64, nb=15))]
)
def test_released_checkpoint_layout(name, kwargs):
    with torch.device("meta"):
        model = build(name)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == kair_shapes(**kwargs)
    meta = describe(name)
    assert (meta.in_channels, meta.out_channels, meta.scale, meta.size_multiple) == (kwargs["in_nc"], kwargs["out_nc"], 1, 2)
    assert meta.takes_sigma is True and meta.task == "denoise" and meta.value_range == (0.0, 1.0)
    assert meta.sigma_max == pytest.approx(75 / 255) and meta.halo == 2 * kwargs["nb"] + 1


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
    with pytest.raises(TypeError):  # σ is an argument of every call, never state of the module
        model(x)


def test_bf16_forward_runs():
    model = seeded().to(torch.bfloat16)
    y = model(torch.rand(1, 3, 10, 10, dtype=torch.bfloat16), torch.tensor([0.1]))
    assert y.dtype == torch.bfloat16 and y.shape == (1, 3, 10, 10)


# --- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_nc=1, out_nc=1, nc=8, nb=2),
        dict(in_nc=3, out_nc=3, nc=6, nb=4),
        dict(in_nc=3, out_nc=1, nc=8, nb=3),
        dict(in_nc=1, out_nc=1, nc=64, nb=15),
    ],
)
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
    kwargs = dict(in_nc=1, out_nc=1, nc=4, nb=nb)
    model, meta = FFDNet(**kwargs), describe("FFDNet", kwargs)
    assert meta.halo == dependency_radius(model, meta, size=2 * meta.halo + 16) == 2 * nb + 1


def test_tiled_equals_whole_image():
    model, meta = seeded(nb=4), describe("FFDNet", dict(in_nc=3, out_nc=3, nb=4))
    x = torch.rand(1, 3, 75, 98, generator=torch.Generator().manual_seed(4))
    whole = run_model(model, meta, x, CPU, tile=0, sigma=30 / 255)
    tiled = run_model(model, meta, x, CPU, tile=32, sigma=30 / 255)
    assert psnr(tiled.numpy(), whole.numpy(), peak=1.0) >= 40
    even = x[..., :74, :]  # (odd sides are padded by the engine, reflecting, and by FFDNet, replicating)
    with torch.no_grad():  # the σ reached the forward
        torch.testing.assert_close(run_model(model, meta, even, CPU, tile=0, sigma=30 / 255), model(even, 30 / 255), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="takes a noise level"):
        run_model(model, meta, x, CPU, tile=0)
    with pytest.raises(ValueError, match="takes no noise level"):
        run_model(DnCNN(in_nc=3, out_nc=3, nc=4, nb=2), describe("DnCNN", dict(in_nc=3, out_nc=3, nb=2)), x, CPU, tile=0, sigma=0.1)


def test_stacked_images_each_get_their_own_sigma():
    model = seeded()
    x = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(5))
    sigmas = [5 / 255, 30 / 255, 60 / 255]
    many = run_model_many(model, META, x, CPU, tile=0, batch_size=3, sigma=sigmas)
    single = torch.cat([run_model(model, META, x[i : i + 1], CPU, tile=0, sigma=s) for i, s in enumerate(sigmas)])
    torch.testing.assert_close(many, single, rtol=1e-5, atol=1e-6)


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


def sigma_sensitive() -> FFDNet:
    """A seeded tiny FFDNet whose σ input weighs 40× more than at initialisation: a random net barely
    reacts to σ (under one 8-bit level between σ 15 and 25), this one by tens of levels."""
    model = seeded(nb=3)
    with torch.no_grad():
        model.model[0].weight[:, -1] *= 40
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
        proc = Processor(model=subtractor(), meta=META, placement=CPU, task="denoise", tile=0, strength=strength)
        annotated = proc.annotate(pic)
        assert annotated.noise_level == pytest.approx(strength * estimate)
        shifts.append(float(np.mean(pic.pixels - proc(annotated).pixels)))
    np.testing.assert_allclose(shifts, [0.0, 0.5 * estimate, estimate], atol=1e-5)  # no blending on top
    proc = Processor(model=subtractor(), meta=META, placement=CPU, task="denoise", tile=0, noise_level=30 / 255)
    assert "30/255" in proc.annotate(pic).notes[-1]
    assert float(np.mean(pic.pixels - proc(pic).pixels)) == pytest.approx(30 / 255, abs=1e-5)


def test_each_picture_carries_its_own_sigma(tmp_path):
    """σ rides on the Picture: photos annotated ahead run at their own σ in any order, alone or batched."""
    pics = [read_picture(noisy_photo(tmp_path / f"n{s}.png", s, seed=s)) for s in (4, 20)]
    proc = Processor(model=subtractor(), meta=META, placement=CPU, task="denoise", tile=0, batch_size=2, stream_pixels=10**9)
    annotated = [proc.annotate(p) for p in pics]
    levels = [a.noise_level for a in annotated]
    assert levels[1] > 3 * levels[0]
    alone = [proc(a) for a in reversed(annotated)][::-1]
    batched = proc.many(annotated)
    for a, one, both, level in zip(annotated, alone, batched, levels):
        assert float(np.mean(a.pixels - one.pixels)) == pytest.approx(level, abs=1e-5)
        np.testing.assert_allclose(both.pixels, one.pixels, atol=1e-6)
    assert not any(isinstance(v, dict) for v in vars(proc).values())  # no per-photo state kept on the processor


def test_estimate_beyond_the_model_range_is_capped():
    pixels = (0.5 + np.random.default_rng(0).normal(0, 100 / 255, (64, 64, 3))).astype(np.float32)
    proc = Processor(model=subtractor(), meta=META, placement=CPU, task="denoise", tile=0)
    level, note = proc.sigma(pixels)
    assert level == pytest.approx(75 / 255) and "capped at the model's maximum 75" in note
    assert "estimate 9" in note or "estimate 10" in note  # the estimate itself (about 100) is reported


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path) -> dict[str, Path]:
    """KAIR-layout .pth files: the hand-built subtractor, a seeded tiny FFDNet, a tiny DnCNN."""
    torch.save(subtractor().state_dict(), tmp_path / "ffdnet_sub.pth")
    torch.save(seeded(nb=3).state_dict(), tmp_path / "ffdnet.pth")
    torch.save(sigma_sensitive().state_dict(), tmp_path / "ffdnet_sigma.pth")
    torch.manual_seed(0)
    torch.save(DnCNN(nc=8, nb=3).state_dict(), tmp_path / "dncnn.pth")
    return {k: tmp_path / f"{k}.pth" for k in ("ffdnet_sub", "ffdnet", "ffdnet_sigma", "dncnn")}


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
        code, output, report = denoise(
            src, "-o", tmp_path / f"s{strength}.png", "--weights", weights["ffdnet_sub"], "--strength", strength, "--manifest", manifest
        )
        assert code == 0, output
        [res] = report["results"]
        assert report["model"]["arch"] == "FFDNet" and report["parameters"]["noise_level"] is None
        assert f"noise level {float(strength) * estimate:.2f}/255" in res["notes"][-1]
        shifts[strength] = _mean_shift(src, tmp_path / f"s{strength}.png")
    assert shifts["1"] == pytest.approx(estimate, abs=0.6)  # 8-bit rounding of the output
    assert shifts["0.5"] == pytest.approx(estimate / 2, abs=0.6)

    code, output, report = denoise(
        src, "-o", tmp_path / "given.png", "--weights", weights["ffdnet_sub"], "--noise-level", "20", "--manifest", manifest
    )
    assert code == 0, output
    assert report["parameters"]["noise_level"] == 20 and "noise level 20/255 from --noise-level" in report["results"][0]["notes"]
    assert _mean_shift(src, tmp_path / "given.png") == pytest.approx(20, abs=0.6)
    lines = [json.loads(s) for s in manifest.read_text().splitlines()]
    assert [ln["notes"][-1].split(" = ")[0].split(" from ")[0] for ln in lines] == [
        f"noise level {estimate:.2f}/255",
        f"noise level {estimate / 2:.2f}/255",
        "noise level 20/255",
    ]


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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--weights", "dncnn", "--noise-level", "15"), "--noise-level needs a model that takes a noise level"),
        (("--weights", "ffdnet", "--noise-level", "80"), "--noise-level"),
        (("--weights", "ffdnet", "--noise-level", "15", "--strength", "0.5"), "not both"),
    ],
)
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


# --- eval denoise: a noise-level model is told the test's σ ------------------------------------------


def _clean_set(folder: Path) -> Path:
    """Two small clean images (smooth gradients, far from 0 and 255: the noise is never clipped much)."""
    folder.mkdir()
    for i, (w, h) in enumerate([(40, 32), (36, 28)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = 100 + 50 * np.stack([xx / w, yy / h, (xx + yy + 7 * i) / (w + h)], -1)
        Image.fromarray(img.round().astype(np.uint8)).save(folder / f"c{i}.png")
    return folder


def _eval_outputs(weights: Path, dataset: Path, sigmas, **kwargs):
    from scenestyle.evaluate.denoise import evaluate_denoise

    panels = {}
    report = evaluate_denoise(
        dataset,
        model=str(weights),
        sigmas=sigmas,
        device="cpu",
        offline=True,
        on_output=lambda name, group, p: panels.__setitem__((name, group), p),
        **kwargs,
    )
    return report, panels


def test_eval_gives_a_noise_level_model_the_true_sigma(tmp_path, weights):
    """KAIR protocol: FFDNet is run at the σ of the test noise (it used to run at 25 whatever the test)."""
    report, panels = _eval_outputs(weights["ffdnet_sigma"], _clean_set(tmp_path / "clean"), (15.0, 50.0))
    assert report.protocol["model_sigma"].startswith("true")
    model = sigma_sensitive()
    for sigma in (15, 50):
        noisy = panels[("c0.png", f"sigma={sigma}")]["noisy"]
        out = panels[("c0.png", f"sigma={sigma}")]["output"]
        # the same noise again (np.random.seed once per σ, c0 first), through the model by hand
        np.random.seed(0)
        clean = np.asarray(Image.open(tmp_path / "clean/c0.png"), dtype=np.float64) / 255
        drawn = clean + np.random.normal(0, sigma / 255, clean.shape)
        assert np.array_equal(np.clip(np.round(drawn * 255), 0, 255).astype(np.uint8), noisy)
        x = torch.from_numpy(drawn.astype(np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            by_sigma = {s: np.round(model(x, s / 255)[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8) for s in (15, 25, 50)}
        assert np.abs(by_sigma[15].astype(int) - by_sigma[50]).mean() > 5  # σ matters to this model
        assert np.abs(out.astype(int) - by_sigma[sigma]).max() <= 1  # eval ran it at the test's σ
        assert np.abs(out.astype(int) - by_sigma[25]).mean() > 2  # not at the old fixed 25


def test_eval_with_blind_estimates(tmp_path, weights):
    report, panels = _eval_outputs(weights["ffdnet_sub"], _clean_set(tmp_path / "clean"), (30.0,), sigma_source="estimate")
    assert report.protocol["model_sigma"].startswith("estimate")
    [note] = report.notes
    assert note.startswith("sigma=30: the model was given blind estimates")
    lo, hi = (float(v) for v in note.split("estimates ")[1].split(" (")[0].split(" to "))
    assert 20 < lo <= hi < 40
    p = panels[("c0.png", "sigma=30")]
    shift = float(np.mean(p["noisy"].astype(float) - p["output"]))  # the subtractor removes exactly its σ
    assert lo - 1.5 < shift < hi + 1.5


def test_eval_runs_a_colour_model_on_gray_images(tmp_path, weights):
    """Set12 is gray: a colour model sees the gray repeated to RGB, is told σ × GRAY_SIGMA_GAIN (the
    noise is the same in the three channels) and is scored on BT.601 luma."""
    folder = _clean_set(tmp_path / "clean")
    for f in folder.iterdir():
        Image.open(f).convert("L").save(f)
    report, panels = _eval_outputs(weights["ffdnet_sub"], folder, (30.0,))
    assert "back to BT.601 luma" in report.protocol["channels"]
    blind, _ = _eval_outputs(weights["ffdnet_sub"], folder, (30.0,), sigma_source="estimate")
    assert blind.notes[0].endswith(f"x {GRAY_SIGMA_GAIN:.2f} on gray images")
    p = panels[("c0.png", "sigma=30")]
    assert p["output"].squeeze().ndim == 2  # scored as gray
    assert float(np.mean(p["noisy"].astype(float).squeeze() - p["output"].squeeze())) == pytest.approx(30 * GRAY_SIGMA_GAIN, abs=1.5)


@pytest.mark.parametrize("stored", ["L", "RGB"])
def test_cli_tells_a_colour_model_more_noise_on_a_gray_photo(tmp_path, weights, stored):
    src = tmp_path / "gray.png"
    Image.open(noisy_photo(tmp_path / "photo.png", 10)).convert("L").convert(stored).save(src)
    code, out, report = denoise(src, "--weights", weights["ffdnet_sub"], "--noise-level", "20", "-o", tmp_path / "out.png")
    assert code == 0, out
    [note] = [n for n in report["results"][0]["notes"] if n.startswith("noise level")]
    assert note.endswith(f"x {GRAY_SIGMA_GAIN:.2f} (gray photo, colour model)")
    assert _mean_shift(src, tmp_path / "out.png") == pytest.approx(20 * GRAY_SIGMA_GAIN, abs=1.5)


def test_eval_sigma_source_usage_errors(tmp_path, weights):
    clean = _clean_set(tmp_path / "clean")
    r = runner.invoke(
        app, ["eval", "denoise", "--dataset", str(clean), "--weights", str(weights["dncnn"]), "--sigma-source", "true", "--device", "cpu"]
    )
    assert r.exit_code == 2 and "--sigma-source needs a model that takes a noise level" in r.output, r.output
    r = runner.invoke(
        app, ["eval", "denoise", "--dataset", str(clean), "--weights", str(weights["ffdnet"]), "--sigma-source", "guess", "--device", "cpu"]
    )
    assert r.exit_code == 2 and "--sigma-source must be true or estimate" in r.output, r.output
    r = runner.invoke(
        app, ["eval", "denoise", "--dataset", str(clean), "--weights", str(weights["dncnn"]), "--sigma", "15", "--device", "cpu", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["protocol"]["model_sigma"].startswith("none")
