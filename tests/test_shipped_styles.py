"""The styles that ship inside the package: pinned, small, fp16, and usable with no network and no --weights."""

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

SHIPPED = ("oil", "ukiyoe", "expressionism", "abstract")  # every style `stylize --style NAME` must reach out of the box
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def _photo(path: Path) -> Path:
    yy, xx = np.mgrid[0:96, 0:128]
    rgb = np.stack([xx * 2, yy * 2, 255 - xx - yy], -1).clip(0, 255).astype(np.uint8)
    rgb[30:60, 40:90] = (200, 60, 40)
    Image.fromarray(rgb).save(path)
    return path


@pytest.mark.parametrize("style", SHIPPED)
def test_a_photo_one_pixel_high_is_stylized_at_its_size(tmp_path, style):
    """The net, its flattening filter, the edges and the strokes all take a side of 1 px."""
    src = tmp_path / "strip.png"
    Image.fromarray(np.linspace(0, 255, 40 * 3).reshape(1, 40, 3).astype(np.uint8)).save(src)
    r = runner.invoke(app, ["stylize", str(src), "--style", style, "--offline", "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out.png").size == (40, 1)


@pytest.mark.parametrize("style", SHIPPED)
def test_lock_entry_points_at_a_small_fp16_file_with_its_sha256(style):
    entry = w.load_lock()[f"style-{style}"]
    assert entry.task == "style"
    assert_bundled_fp16(entry, 2_000_000, "scenestyle train cyclegan")


@pytest.mark.parametrize("style", SHIPPED)
def test_stylize_style_works_offline_without_weights(tmp_path, style):
    src = _photo(tmp_path / "photo.png")
    r = runner.invoke(app, ["stylize", str(src), "--style", style, "--offline", "--json"])
    assert r.exit_code == 0, r.output
    out = tmp_path / f"photo_{style}.png"
    a, b = np.asarray(Image.open(src), np.float32), np.asarray(Image.open(out), np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() > 2  # it painted something
    [res] = json.loads(r.stdout)["results"]
    assert res["status"] == "ok"
    amount = w.load_lock()[f"style-{style}"].strokes.amount  # each shipped style draws its own brush strokes
    assert json.loads(r.stdout)["parameters"]["strokes"] == amount
    r = runner.invoke(app, ["stylize", str(src), "--style", style, "--offline", "--strokes", "0", "-o", str(tmp_path / "bare.png")])
    assert r.exit_code == 0, r.output
    bare = np.asarray(Image.open(tmp_path / "bare.png"), np.float32)
    assert 1 < np.abs(b - bare).mean() < 2 * amount  # the strokes, and only --strokes 0 leaves them out


def test_oil_is_the_default_style(tmp_path):
    src = _photo(tmp_path / "photo.png")
    r = runner.invoke(app, ["stylize", str(src), "--offline"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "photo_oil.png").is_file()


def test_weights_list_shows_the_shipped_styles_as_bundled():
    r = runner.invoke(app, ["weights", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    for style in SHIPPED:
        assert rows[f"style-{style}"]["local"], rows[f"style-{style}"]
