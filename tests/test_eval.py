"""`scenestyle eval sr | denoise | pair` through the CLI with real files; reference figures on ../shared."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _fixtures import tiny_weights  # noqa: F401  (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.evaluate.sr import evaluate_sr
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.metrics.resize import imresize

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["eval", *args])


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def hr_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "hr"
    d.mkdir()
    base = np.kron(rng.integers(0, 256, (12, 12, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # blocky, so resizing has structure
    for i in range(3):
        Image.fromarray(np.roll(base, 5 * i, axis=1)[:46, :48]).save(d / f"img{i}.png")  # 46 rows: modcrop to 44 at x4
    return d


def test_sr_bicubic_baseline_json(hr_dir):
    out = _json(_invoke("sr", "--dataset", str(hr_dir), "--model", "bicubic", "--scale", "4", "--json"))
    assert out["kind"] == "sr" and len(out["images"]) == 3
    assert out["protocol"]["crop_border"] == 4 and out["protocol"]["channel"].startswith("Y")
    assert "MATLAB-compatible bicubic" in out["notes"][0]
    assert {"torch", "numpy", "scenestyle"} <= set(out["versions"])
    # independent: degrade + upsample by hand and score
    hr = np.asarray(Image.open(hr_dir / "img0.png"))[:44]
    expect = psnr(imresize(imresize(hr, 0.25), 4.0), hr, 4, test_y=True)
    assert out["images"][0]["psnr"] == pytest.approx(expect, abs=1e-9)


def test_sr_tiny_model_records_sha(hr_dir, tiny_weights):
    out = _json(
        _invoke(
            "sr", "--dataset", str(hr_dir), "--weights", str(tiny_weights["SRVGGNetCompact"]), "--scale", "2", "--json", "--device", "cpu"
        )
    )
    assert len(out["model"]["sha256"]) == 64 and out["model"]["arch"] == "SRVGGNetCompact"
    assert np.isfinite(out["means"][""]["psnr"])


def test_sr_scale_mismatch_and_missing_model(hr_dir, tiny_weights):
    r = _invoke("sr", "--dataset", str(hr_dir), "--weights", str(tiny_weights["SRVGGNetCompact"]), "--scale", "4")
    assert r.exit_code == 2 and "x2" in r.output
    r = _invoke("sr", "--dataset", str(hr_dir))
    assert r.exit_code == 2 and "--model" in r.output
    r = _invoke("sr", "--dataset", str(hr_dir / "nope"), "--model", "bicubic")
    assert r.exit_code == 2 and "nope" in r.output


def test_sr_uses_given_lr_layout(tmp_path, hr_dir):
    ds = tmp_path / "Set"
    (ds / "LR_bicubic" / "X4").mkdir(parents=True)
    hr_dir.rename(ds / "HR")
    for p in (ds / "HR").glob("*.png"):
        lr = np.zeros((11, 12, 3), np.uint8)  # black LR: scores must differ from the degraded-HR path
        Image.fromarray(lr).save(ds / "LR_bicubic" / "X4" / f"{p.stem}x4.png")
    rep = evaluate_sr(ds, scale=4)
    assert "LR_bicubic" in rep.notes[0]
    assert rep.means()[""]["psnr"] < evaluate_sr(ds / "HR", scale=4).means()[""]["psnr"] - 5


def test_denoise_tiny_model_two_sigmas(tmp_path, tiny_weights):
    d = tmp_path / "clean"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 20), dtype=np.uint8)).save(d / f"{i}.png")
    out = _json(
        _invoke("denoise", "--dataset", str(d), "--weights", str(tiny_weights["DnCNN"]), "--sigma", "15,50", "--json", "--device", "cpu")
    )
    assert list(out["means"]) == ["sigma=15", "sigma=50"] and out["seed"] == 0
    again = _json(
        _invoke("denoise", "--dataset", str(d), "--weights", str(tiny_weights["DnCNN"]), "--sigma", "15,50", "--json", "--device", "cpu")
    )
    assert [i["psnr"] for i in again["images"]] == [i["psnr"] for i in out["images"]]  # seeded: reproducible
    r = _invoke("denoise", "--dataset", str(d), "--weights", str(tiny_weights["DnCNN"]), "--sigma", "x")
    assert r.exit_code == 2 and "--sigma" in r.output


def test_pair_rgb_y_and_mismatch(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-9, 10, x.shape), 0, 255).astype(np.uint8)
    Image.fromarray(x).save(a / "p.png"), Image.fromarray(y).save(b / "p.png"), Image.fromarray(x).save(a / "only.png")
    out = _json(_invoke("pair", str(a), str(b), "--json"))
    assert out["images"][0]["psnr"] == pytest.approx(psnr(y, x), abs=1e-9)
    assert "only" in out["notes"][0]
    out_y = _json(_invoke("pair", str(a), str(b), "--y", "--crop-border", "2", "--json"))
    assert out_y["images"][0]["psnr"] == pytest.approx(psnr(y, x, 2, test_y=True), abs=1e-9)
    Image.fromarray(x[:10]).save(b / "only.png")
    r = _invoke("pair", str(a), str(b))
    assert r.exit_code == 2 and "only.png" in r.output


# shared/README.md reference figures, bicubic x4 of the given LR, Y channel, crop 4. The literature
# has Set14 at 26.00 dB; shared/README.md measured 26.09 with PIL upsampling and puts the gap on
# MATLAB's own upsampling. Our MATLAB-compatible upsampling also gives 26.09, so the figure pins
# this protocol on these files, not the published number.
BICUBIC_X4_DB = {"Set5": 28.43, "Set14": 26.09}
# shared/README.md, KAIR protocol: dncnn_25.pth on Set12 at sigma 25, seed 0.
DNCNN25_SET12_DB = 30.44


@pytest.mark.parametrize("name", sorted(BICUBIC_X4_DB))
def test_bicubic_reference_on_shared(shared_dir, name):
    out = _json(_invoke("sr", "--dataset", str(shared_dir / "data/eval" / name), "--model", "bicubic", "--json"))
    assert "LR_bicubic" in out["notes"][0]
    assert out["means"][""]["psnr"] == pytest.approx(BICUBIC_X4_DB[name], abs=0.01)  # the README's two decimals


@pytest.mark.slow
def test_dncnn25_set12_sigma25_reference(shared_dir):
    weights = shared_dir / "weights/kair_dncnn/dncnn_25.pth"
    out = _json(
        _invoke(
            "denoise",
            "--dataset",
            str(shared_dir / "data/eval/Set12"),
            "--weights",
            str(weights),
            "--sigma",
            "25",
            "--seed",
            "0",
            "--json",
            "--device",
            "cpu",
        )
    )
    assert out["model"]["name"] == "dncnn-25" and out["means"]["sigma=25"]["images"] == 12
    assert out["means"]["sigma=25"]["psnr"] == pytest.approx(DNCNN25_SET12_DB, abs=0.01)


def test_denoise_contact_sheet(tmp_path, tiny_weights):
    d = tmp_path / "clean"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(d / f"{i}.png")
    sheet = tmp_path / "out" / "sheet"
    r = _invoke("denoise", "--dataset", str(d), "--weights", str(tiny_weights["DnCNN"]), "--device", "cpu", "--sheet", str(sheet))
    assert r.exit_code == 0, r.output
    page = (tmp_path / "out" / "sheet.html").read_text()
    assert "worst" in page and "best" in page and "sheet.png" in page
    png = Image.open(tmp_path / "out" / "sheet.png")
    assert png.width == 3 * (36 * 2 + 4)  # noisy | output | reference, 36 px crops zoomed x2 (image narrower than 96)
