"""`eval style`: SWD, Lab colour transfer, structure SSIM and the critic against independent references,
then the command end to end on tiny synthetic folders."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
from _fixtures import TINY_MODELS, save_weights
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.evaluate import critic as C
from scenestyle.metrics import swd as S
from scenestyle.metrics.colour import colour_transfer, lab_stats, lab_to_srgb, srgb_to_lab
from scenestyle.metrics.structure import gaussian_blur, structure_ssim

runner = CliRunner()
_KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256.0  # the reference's gaussian_filter


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int = 4) -> np.ndarray:
    """A smooth random colour field in [40, 215] (no fine texture)."""
    coarse = rng.uniform(0, 1, (cells, cells, 3)).astype(np.float32)
    big = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
    return (40 + big * 175 / 255).astype(np.uint8)


def _stripes(img: np.ndarray, period: int = 4, amp: float = 30.0, phase: int = 0) -> np.ndarray:
    """Add vertical stripes of a short period: a fine texture the photos lack."""
    x = np.arange(img.shape[1])
    s = np.where((x + phase) // (period // 2) % 2, amp, -amp)
    return np.clip(img.astype(np.float64) + s[None, :, None], 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- SWD


def test_pyramid_matches_scipy_reference_and_reconstructs():
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 48)).astype(np.float32)
    down = scipy.ndimage.convolve(x, _KERNEL[None, None], mode="mirror")[:, :, ::2, ::2]
    np.testing.assert_allclose(S.pyr_down(x), down, rtol=0, atol=1e-3)
    up = np.zeros((2, 3, 32, 48), np.float32)
    up[:, :, ::2, ::2] = down
    np.testing.assert_allclose(S.pyr_up(down), scipy.ndimage.convolve(up, _KERNEL[None, None] * 4, mode="mirror"), atol=1e-3)
    img = np.random.default_rng(1).integers(0, 256, (37, 50, 3)).astype(np.uint8)
    pyr = S.laplacian_pyramid(img, 3)
    assert [p.shape for p in pyr] == [(3, 36, 48), (3, 18, 24), (3, 9, 12)]  # cropped to a multiple of 4
    rec = pyr[-1]
    for level in pyr[-2::-1]:
        rec = S.pyr_up(rec) + level
    np.testing.assert_allclose(rec, img[:36, :48].transpose(2, 0, 1), atol=1e-3)


def test_count_levels_as_reference_resolutions():
    assert S.count_levels([(256, 256, 3)]) == 5  # 256, 128, 64, 32, 16
    assert S.count_levels([(512, 384, 3), (300, 200, 3)]) == 4  # the smallest image decides: 200 → 25 at 1/8
    with pytest.raises(ValueError, match="short side"):
        S.count_levels([(10, 64, 3)])


def test_descriptors_are_patches_at_seeded_centres():
    img = np.random.default_rng(2).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    desc = S.set_descriptors([img], 2, seed=7, nhoods_per_image=5)
    rng, pyr = np.random.default_rng(7), S.laplacian_pyramid(img, 2)
    for lod, level in enumerate(pyr):
        xs = rng.integers(3, level.shape[2] - 3, 5)
        ys = rng.integers(3, level.shape[1] - 3, 5)
        for n in range(5):
            np.testing.assert_array_equal(desc[lod][n], level[:, ys[n] - 3 : ys[n] + 4, xs[n] - 3 : xs[n] + 4])


def test_wasserstein_1d_matches_scipy_and_sorted_mean():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (50, 4)), rng.normal(0.5, 2, (73, 4))
    got = S.wasserstein_1d(a, b)
    want = [scipy.stats.wasserstein_distance(a[:, j], b[:, j]) for j in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    c = rng.normal(0, 1, (50, 4))
    np.testing.assert_allclose(S.wasserstein_1d(a, c), np.abs(np.sort(a, 0) - np.sort(c, 0)).mean(0), rtol=1e-10)


def _karras_reference(da, db, rng):
    """Transcription of the reference's finalize_descriptors + sliced_wasserstein (equal-size sets)."""
    out = []
    for a, b in zip(da, db):
        fa, fb = [
            (d - d.mean(axis=(0, 2, 3), keepdims=True)) / d.std(axis=(0, 2, 3), keepdims=True)
            for d in (a.astype(np.float64), b.astype(np.float64))
        ]
        fa, fb = fa.reshape(len(fa), -1), fb.reshape(len(fb), -1)
        res = []
        for _ in range(4):
            dirs = rng.standard_normal((fa.shape[1], 128))
            dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
            res.append(np.mean(np.abs(np.sort(fa @ dirs, axis=0) - np.sort(fb @ dirs, axis=0))))
        out.append(1e3 * np.mean(res))
    return out


def test_swd_per_set_equals_reference_and_self_distance_is_zero():
    rng = np.random.default_rng(4)
    xs = [_smooth(rng, 64, 64) for _ in range(3)]
    ys = [_stripes(_smooth(rng, 64, 64)) for _ in range(3)]
    levels = S.count_levels([x.shape for x in xs])
    da, db = S.set_descriptors(xs, levels, seed=1), S.set_descriptors(ys, levels, seed=1)
    got = S.swd(da, db, seed=5, normalize="per_set")
    np.testing.assert_allclose(got.levels, _karras_reference(da, db, np.random.default_rng([5, 1])), rtol=1e-9)
    assert got.mean == pytest.approx(np.mean(got.levels))
    same = S.swd(da, S.set_descriptors(xs, levels, seed=1), seed=5)
    assert max(same.levels) == pytest.approx(0.0, abs=1e-9)
    assert min(S.swd(da, db, seed=5).levels) > 1.0


def test_colour_cast_moves_coarse_level_and_noise_moves_fine_level():
    rng = np.random.default_rng(5)
    base = [_smooth(rng, 128, 128) for _ in range(4)]
    cast = [np.clip(b.astype(int) + [30, 0, -30], 0, 255).astype(np.uint8) for b in base]
    noisy = [np.clip(b + rng.normal(0, 12, b.shape), 0, 255).astype(np.uint8) for b in base]
    levels = S.count_levels([b.shape for b in base])
    ref = S.set_descriptors(base, levels, seed=0)
    by_cast = S.swd(S.set_descriptors(cast, levels, seed=0), ref).levels
    by_noise = S.swd(S.set_descriptors(noisy, levels, seed=0), ref).levels
    assert by_cast[-1] > 5 * by_cast[0]
    assert by_noise[0] > 5 * by_noise[-1]
    # the reference's per-set normalisation hides the cast at the coarse level: why pooled is the default
    per_set = S.swd(S.set_descriptors(cast, levels, seed=0), ref, normalize="per_set").levels
    assert per_set[-1] < by_cast[-1] / 3


# ----------------------------------------------------------------------------------- colour


def test_lab_known_values_and_round_trip():
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 1.0, 1.0])), [100, 0, 0], atol=1e-6)
    np.testing.assert_allclose(srgb_to_lab(np.array([0.0, 0.0, 0.0])), [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 0.0, 0.0])), [53.2408, 80.0925, 67.2032], atol=2e-3)
    np.testing.assert_allclose(srgb_to_lab(np.array([0.0, 0.0, 1.0])), [32.2970, 79.1875, -107.8602], atol=2e-3)
    rgb = np.random.default_rng(6).uniform(0, 1, (500, 3))
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-9)


def test_colour_transfer_gives_target_lab_statistics():
    rng = np.random.default_rng(7)
    photo = _smooth(rng, 48, 64)
    target = lab_stats([np.clip(_smooth(rng, 40, 40).astype(int) + [10, 0, -10], 0, 255).astype(np.uint8)])
    out = colour_transfer(photo, target)
    assert out.min() > 0 and out.max() < 1  # nothing clipped, so the statistics must be exact
    got = lab_stats([out * 255.0])
    np.testing.assert_allclose(got.mean, target.mean, atol=1e-6)
    np.testing.assert_allclose(got.std, target.std, atol=1e-6)
    lab = srgb_to_lab(photo / 255.0).reshape(-1, 3)  # pooled statistics: every pixel counts once
    np.testing.assert_allclose(lab_stats([photo]).std, lab.std(axis=0), rtol=1e-9)


# ---------------------------------------------------------------------------------- structure


def test_blur_matches_scipy_and_structure_ssim():
    x = np.random.default_rng(8).uniform(0, 255, (30, 41))
    np.testing.assert_allclose(gaussian_blur(x, 2.0), scipy.ndimage.gaussian_filter(x, 2.0, mode="mirror", truncate=3.0), atol=1e-9)
    img = _smooth(np.random.default_rng(9), 64, 64, cells=6)
    assert structure_ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert structure_ssim(img, _stripes(img, amp=20)) > 0.95  # fine texture is blurred away
    assert structure_ssim(img, np.ascontiguousarray(img[:, ::-1])) < 0.8  # a different layout is not
    with pytest.raises(ValueError, match="same size"):
        structure_ssim(img, img[:32])


# ------------------------------------------------------------------------------------- critic


def _heldout_accuracy(paint, photo, variant, cfg, split=4):
    """Train on the first ``split`` images of each domain, report balanced accuracy on the rest."""
    net = C.train_critic(paint[:split], photo[:split], variant, cfg, seed=0)
    rng = np.random.default_rng(11)

    def share(imgs):
        crops = np.concatenate([C.crops_at(im, C.crop_positions(im.shape, 16, cfg.crop, rng), cfg.crop) for im in imgs])
        return float(np.mean(C.logits(net, C.to_input(crops, variant)) > 0))

    return (share(paint[split:]) + 1 - share(photo[split:])) / 2


CFG = C.CriticConfig(crop=32, width=8, steps=60, batch=16)


def test_critic_separates_texture_domains():
    rng = np.random.default_rng(10)
    photos = [_smooth(rng, 48, 48) for _ in range(8)]
    paintings = [_stripes(_smooth(rng, 48, 48), phase=int(rng.integers(4))) for _ in range(8)]
    assert _heldout_accuracy(paintings, photos, "rgb", CFG) > 0.9
    assert _heldout_accuracy(paintings, photos, "gray", CFG) > 0.9


def test_gray_critic_is_blind_to_a_colour_cast():
    rng = np.random.default_rng(12)
    gray = [np.repeat(_smooth(rng, 48, 48)[..., :1], 3, axis=2) for _ in range(16)]  # achromatic textures
    warm = [np.clip(g * np.array([1.15, 1.0, 0.75]), 0, 255).astype(np.uint8) for g in gray[8:]]
    plain = gray[:8]
    assert _heldout_accuracy(warm, plain, "rgb", CFG) > 0.9
    assert abs(_heldout_accuracy(warm, plain, "gray", CFG) - 0.5) < 0.15


def test_critic_is_deterministic_and_leaves_global_rng_alone():
    rng = np.random.default_rng(13)
    a, b = [_smooth(rng, 40, 40) for _ in range(2)], [_stripes(_smooth(rng, 40, 40)) for _ in range(2)]
    cfg = C.CriticConfig(crop=32, width=4, steps=3, batch=4)
    state = torch.random.get_rng_state()
    w1 = C.train_critic(b, a, "rgb", cfg, seed=3).state_dict()
    w2 = C.train_critic(b, a, "rgb", cfg, seed=3).state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_cached_critic_reuses_weights_only_for_the_same_inputs(tmp_path):
    rng = np.random.default_rng(15)
    a, b = [_smooth(rng, 40, 40) for _ in range(2)], [_stripes(_smooth(rng, 40, 40)) for _ in range(2)]
    cfg = C.CriticConfig(crop=32, width=4, steps=3, batch=4)
    net, hit = C.cached_critic(b, a, "gray", cfg, seed=1, cache=tmp_path)
    assert not hit and len(list(tmp_path.glob("*.safetensors"))) == 1
    again, hit = C.cached_critic(b, a, "gray", cfg, seed=1, cache=tmp_path)
    assert hit and all(torch.equal(v, again.state_dict()[k]) for k, v in net.state_dict().items())
    # one changed pixel, another seed or another setting: another critic
    a2 = [a[0].copy(), a[1]]
    a2[0][0, 0, 0] ^= 1
    for args in ((b, a2, "gray", cfg, 1), (b, a, "gray", cfg, 2), (b, a, "gray", C.CriticConfig(crop=32, width=4, steps=4, batch=4), 1)):
        assert not C.cached_critic(*args[:4], seed=args[4], cache=tmp_path)[1]
    assert len(list(tmp_path.glob("*.safetensors"))) == 4
    # a damaged entry is trained again and rewritten, not trusted
    entry = tmp_path / f"{C.critic_key(b, a, 'gray', cfg, 1)}.safetensors"
    entry.write_bytes(b"not a safetensors file")
    fresh, hit = C.cached_critic(b, a, "gray", cfg, seed=1, cache=tmp_path)
    assert not hit and all(torch.equal(v, fresh.state_dict()[k]) for k, v in net.state_dict().items())
    assert C.cached_critic(b, a, "gray", cfg, seed=1, cache=tmp_path)[1]


# ---------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """photos (smooth), paintings (smooth + stripes), outputs (each photo + stripes, named {stem}_oil)."""
    d = tmp_path_factory.mktemp("style")
    rng = np.random.default_rng(14)
    for sub in ("photos", "paintings", "outputs"):
        (d / sub).mkdir()
    for i in range(6):
        photo = _smooth(rng, 64, 72)
        Image.fromarray(photo).save(d / "photos" / f"img_{i}.png")
        Image.fromarray(_stripes(photo, phase=i)).save(d / "outputs" / f"img_{i}_oil.png")
        Image.fromarray(_stripes(_smooth(rng, 68, 64), phase=i)).save(d / "paintings" / f"p{i}.png")
    return d


FAST = ("--critic-steps", "60", "--crop", "32", "--max-side", "0", "--critic-folds", "4")


def _style(folders, *args):
    return runner.invoke(
        app, ["eval", "style", "--photos", str(folders / "photos"), "--paintings", str(folders / "paintings"), *FAST, *args]
    )


@pytest.fixture(scope="module")
def outputs_run(folders, tmp_path_factory):
    sheet = tmp_path_factory.mktemp("sheet") / "sheet"
    # the synthetic paintings differ from the photos by fine stripes, which sharpness matching would blur away
    r = _style(folders, "--outputs", str(folders / "outputs"), "--json", "--sheet", str(sheet), "--no-match-sharpness")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), sheet


def test_cli_outputs_json_and_sheet(folders, outputs_run):
    rep, sheet = outputs_run
    rows = {row["name"]: row for row in rep["rows"]}
    assert list(rows) == ["stylized", "photos (untouched)", "colour transfer (Lab)", "posterize + mode filter"]
    assert rep["levels"] == ["1/1", "1/2", "1/4"] and list(rows["stylized"]["swd"]) == rep["levels"]
    assert rows["photos (untouched)"]["structure_ssim"] == pytest.approx(1.0, abs=1e-12)
    assert rows["stylized"]["structure_ssim"] > 0.9  # stripes are texture: blurred away
    assert rows["stylized"]["critic_gray"] > rows["photos (untouched)"]["critic_gray"] + 0.5
    assert rows["stylized"]["swd"]["1/1"] < rows["photos (untouched)"]["swd"]["1/1"]  # the fine level sees the stripes
    assert rep["critic_accuracy"]["gray"]["balanced"] > 0.9
    assert rep["seed"] == 0 and {"torch", "numpy", "scenestyle"} <= set(rep["versions"])
    assert rep["protocol"]["critic"]["steps"] == 60 and rep["model"]["outputs"] == str(folders / "outputs")
    assert rep["protocol"]["critic"]["match_sharpness"] is False and rep["protocol"]["critic"]["sharpness"]["blurred"] == "none"
    assert len(rep["images"]) == 24  # 6 photos x 4 rows
    assert sheet.with_suffix(".png").is_file() and "eval style" in sheet.with_suffix(".html").read_text()


def test_cli_baselines_only_reproduces_the_baseline_rows(folders, outputs_run):
    r = _style(folders, "--baselines-only", "--json", "--no-match-sharpness")
    assert r.exit_code == 0, r.output
    rep, full = json.loads(r.stdout), outputs_run[0]
    # same seed, and the baselines never depend on the stylized set: identical numbers
    assert rep["rows"] == full["rows"][1:] and rep["critic_accuracy"] == full["critic_accuracy"]
    assert rep["images"] == [i for i in full["images"] if i["row"] != "stylized"]
    assert "no stylized source given: baselines only" in rep["notes"]
    # the critics never depend on the stylized set either: all eight came from the first run's cache
    assert rep["protocol"]["critic"]["from_cache"] == "8 of 8" and full["protocol"]["critic"]["from_cache"] == "0 of 8"


def test_cli_no_cache_retrains_the_critics_to_the_same_numbers(folders, outputs_run):
    r = _style(folders, "--outputs", str(folders / "outputs"), "--json", "--no-match-sharpness", "--no-cache")
    assert r.exit_code == 0, r.output
    rep, full = json.loads(r.stdout), outputs_run[0]
    assert rep["protocol"]["critic"]["from_cache"] == "0 of 8"
    assert rep["rows"] == full["rows"] and rep["critic_accuracy"] == full["critic_accuracy"]


def test_cli_weights_table_records_sha256(folders, tmp_path):
    from scenestyle.nn import build

    torch.manual_seed(0)
    path = save_weights(build("ResnetGenerator", **TINY_MODELS["ResnetGenerator"]), tmp_path / "style.safetensors")
    r = _style(folders, "--weights", str(path), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}" in r.stdout
    lines = [line.split() for line in r.stdout.splitlines()]
    assert any(cells[:1] == ["stylized"] and len(cells) == 8 for cells in lines)  # name, 3 levels, avg, rgb, gray, struct
    assert "colour transfer (Lab)" in r.stdout and "held-out accuracy" in r.stdout


def test_cli_errors(folders, tmp_path):
    r = _style(folders)
    assert r.exit_code == 2 and "--baselines-only" in r.output
    r = _style(folders, "--outputs", str(folders / "outputs"), "--baselines-only")
    assert r.exit_code == 2 and "not --outputs and --baselines-only" in r.output
    r = runner.invoke(
        app, ["eval", "style", "--photos", str(tmp_path / "nope"), "--paintings", str(folders / "paintings"), "--baselines-only"]
    )
    assert r.exit_code == 2 and "nope" in r.output
    few = ["--photos", str(folders / "photos"), "--paintings", str(folders / "paintings"), "--baselines-only"]
    r = runner.invoke(app, ["eval", "style", *few])  # the default 8 folds need 8 images a side
    assert r.exit_code == 2 and "at least 8 photos and 8 paintings (got 6 and 6)" in r.output and "--critic-folds 2 to 6" in r.output
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(6):
        Image.fromarray(np.zeros((60, 72, 3), np.uint8)).save(bad / f"img_{i}.png")
    r = _style(folders, "--outputs", str(bad))
    assert r.exit_code == 2 and "72×60" in r.output and "72×64" in r.output
    (bad / "img_3.png").unlink()
    r = _style(folders, "--outputs", str(bad))
    assert r.exit_code == 2 and "img_3" in r.output


# ------------------------------------------------------------------------- sharpness matching


def _fractal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random grey texture with a natural 1/f amplitude spectrum: detail at every scale down to the pixel."""
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None])
    spec = np.fft.rfft2(rng.normal(0, 1, (h, w))) / np.maximum(f, 1.0 / max(h, w))
    y = np.fft.irfft2(spec, s=(h, w))
    y = 128 + 45 * (y - y.mean()) / y.std()
    return np.repeat(np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_blur_is_the_gaussian_that_sharpness_assumes():
    img = _fractal(np.random.default_rng(20), 64, 80)
    np.testing.assert_array_equal(C.blur(img, 0.0), img)
    prof = C.sharpness_profile(img)
    for sigma in (0.4, 0.8, 1.5):
        blurred = C.blur(img, sigma)
        if sigma >= 0.8:  # a sampled Gaussian is close to the exact one from about 0.8 px up
            ref = scipy.ndimage.gaussian_filter(img.astype(np.float64), (sigma, sigma, 0), mode="reflect", truncate=8.0)
            assert np.abs(blurred.astype(np.float64) - ref).max() <= 1.0  # half-sample symmetric borders, rounding
        assert C.sharpness(C.sharpness_profile(blurred)) == pytest.approx(C.sharpness(prof, sigma), abs=0.05)
    assert C.sharpness(prof, 0.5) < C.sharpness(prof) - 0.5  # blur lowers it ...
    brighter = np.clip(img.astype(np.float64) * 0.5 + 60, 0, 255).astype(np.uint8)
    assert C.sharpness(C.sharpness_profile(brighter)) == pytest.approx(C.sharpness(prof), abs=0.05)  # ... contrast does not


def test_matching_blur_recovers_a_known_blur():
    rng = np.random.default_rng(21)
    sharp = [_fractal(rng, 64, 64) for _ in range(7)]
    soft = [C.blur(_fractal(rng, 64, 64), 0.7) for _ in range(7)]
    target = float(np.median([C.sharpness(C.sharpness_profile(s)) for s in soft]))
    assert C.matching_blur([C.sharpness_profile(s) for s in sharp], target) == pytest.approx(0.7, abs=0.08)
    assert C.matching_blur([C.sharpness_profile(s) for s in soft], target + 1.0) == 0.0  # already softer: untouched


@pytest.mark.parametrize("soft_side", ["paintings", "photos"])
def test_sharpness_matching_removes_the_sharpness_shortcut(soft_side):
    """Two sets that differ only in sharpness: a critic tells them apart; after matching it cannot."""
    from dataclasses import replace

    from scenestyle.evaluate.style import PHOTOS, _match_sharpness

    rng = np.random.default_rng(22)
    sharp, soft = [_fractal(rng, 48, 48) for _ in range(12)], [C.blur(_fractal(rng, 48, 48), 1.0) for _ in range(12)]
    paint, photo = (soft, sharp) if soft_side == "paintings" else (sharp, soft)
    cfg = replace(CFG, match_sharpness=False)
    assert _heldout_accuracy(paint, photo, "gray", cfg, split=8) > 0.9
    m_paint, rows, record = _match_sharpness(paint, {PHOTOS: photo, "other": photo}, replace(CFG, match_sharpness=True))
    sharper = "photos" if soft_side == "paintings" else "paintings"
    assert record["blurred"] == sharper and record["sigma_px"] == pytest.approx(1.0, abs=0.15)
    assert record["after"]["paintings"] == pytest.approx(record["after"]["photos"], abs=0.01)
    if sharper == "photos":  # every row made from the photos is blurred alike; the paintings are left alone
        assert rows["other"][0] is not photo[0] and np.array_equal(rows["other"][0], rows[PHOTOS][0]) and m_paint is paint
    else:
        assert rows[PHOTOS] is photo and not np.array_equal(m_paint[0], paint[0])
    assert abs(_heldout_accuracy(m_paint, rows[PHOTOS], "gray", cfg, split=8) - 0.5) < 0.15
