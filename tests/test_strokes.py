"""Brush strokes over a painting: streaks along its edges, luma only, drawn by stylize at the working size."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from _fixtures import tiny_weights  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine.run import style_strokes
from scenestyle.engine.strokes import Strokes, clean_chroma, draw_strokes, stroke_texture
from scenestyle.nn import describe

runner = CliRunner()


def _rings(h: int = 160, w: int = 200) -> np.ndarray:
    """Concentric rings: the edge direction turns all the way round."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(yy - h / 2, xx - w / 2)
    v = 0.5 + 0.4 * np.sin(r / 3)
    return np.repeat(v[..., None], 3, axis=2)


def _corr(t: np.ndarray, dy: int, dx: int) -> float:
    """Correlation of the texture with itself shifted by (dy, dx)."""
    a = t[max(dy, 0) : t.shape[0] + min(dy, 0), max(dx, 0) : t.shape[1] + min(dx, 0)]
    b = t[max(-dy, 0) : t.shape[0] + min(-dy, 0), max(-dx, 0) : t.shape[1] + min(-dx, 0)]
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("axis", [0, 1])
def test_streaks_run_along_the_edges(axis):
    h, w = 120, 160
    stripes = np.sin(np.arange(w if axis == 1 else h, dtype=np.float32) / 2)  # varies across axis `axis`
    img = np.broadcast_to(stripes[None, :] if axis == 1 else stripes[:, None], (h, w)).astype(np.float32)
    img = np.repeat((0.5 + 0.3 * img)[..., None], 3, axis=2)
    t = stroke_texture(img, 6)
    along, across = ((3, 0), (0, 3)) if axis == 1 else ((0, 3), (3, 0))  # vertical stripes: streaks run vertically
    assert _corr(t, *along) > 0.5 > 0.1 > _corr(t, *across)
    assert abs(float(t.mean())) < 0.05 and 0.3 < float(t.std()) < 1.5


def test_streaks_follow_curved_forms_and_are_the_same_every_run():
    img = _rings()
    t = stroke_texture(img, 6)
    assert np.array_equal(t, stroke_texture(img, 6))  # a fixed seed: the same picture every run
    assert not np.allclose(t, stroke_texture(img, 6, seed=1))
    h, w = t.shape
    right, top = t[h // 2 - 10 : h // 2 + 10, w - 40 : w - 10], t[10:40, w // 2 - 10 : w // 2 + 10]
    # right of the centre the rings run vertically, above it horizontally
    assert _corr(right, 3, 0) > _corr(right, 0, 3) + 0.3
    assert _corr(top, 0, 3) > _corr(top, 3, 0) + 0.3


def test_strokes_change_luma_only_and_stay_in_range():
    img = _rings() * np.array([1.0, 0.8, 0.6], np.float32)
    out = draw_strokes(img, Strokes(amount=12, length=6), img)
    assert out.dtype == np.float32 and out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    d = out - img
    inside = (out > 0).all(-1) & (out < 1).all(-1)
    assert np.allclose(d[inside, 0], d[inside, 1], atol=1e-6) and np.allclose(d[inside, 0], d[inside, 2], atol=1e-6)
    assert 6 / 255 < float(d[inside, 0].std()) < 24 / 255
    assert draw_strokes(img, Strokes(amount=0, length=6), img) is img


@pytest.mark.parametrize("amount, length", [(-1, 6), (65, 6), (float("nan"), 6), (12, 0), (12, 65)])
def test_bad_strokes_are_refused(amount, length):
    with pytest.raises(ValueError, match="strokes"):
        Strokes(amount, length)


def test_the_styles_own_strokes_unless_the_flag_says_otherwise():
    meta = describe("CompactGenerator", {})
    assert style_strokes(meta, None) is None  # a model of one's own draws none unless asked
    assert style_strokes(meta, 10) == Strokes(10, 6)
    own = dataclasses.replace(meta, strokes=Strokes(12.0, 5, 0, 0.0))  # as the loader sets it from weights.lock
    assert style_strokes(own, None) == Strokes(12.0, 5)
    assert style_strokes(own, 0) is None and style_strokes(own, 4) == Strokes(4, 5)
    cleaned = dataclasses.replace(meta, strokes=Strokes(12.0, 5, 9, 6.0))
    assert style_strokes(cleaned, None) == Strokes(12.0, 5, 9, 6.0)
    assert style_strokes(cleaned, 0) == Strokes(0, 5, 9, 6.0)  # --strokes 0: no streaks; chroma cleaned, edges restored
    edged = dataclasses.replace(meta, strokes=Strokes(0.0, 5, 0, 6.0))
    assert style_strokes(edged, None) == Strokes(0, 5, 0, 6.0) and Strokes(0, 5, 0, 6.0).acts


def test_chroma_median_removes_thin_colour_fringes_and_keeps_fields_and_luma():
    h, w = 64, 96
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    chroma = lambda x: x - (x @ luma)[..., None]  # noqa: E731
    img = np.full((h, w, 3), 0.3, np.float32)
    img[:, 48:] = 0.7  # a contour: dark and light of one hue
    fringed = img.copy()
    fringed[:, 46:48] += np.array([0.1, -0.1, 0.1], np.float32)  # a 2-px magenta fringe along it
    out = clean_chroma(fringed, 9)
    np.testing.assert_allclose(out @ luma, fringed @ luma, atol=1e-5)  # luma untouched: the contour stays
    assert np.abs(chroma(fringed) - chroma(img)).max() > 0.09  # the fringe was there ...
    assert np.abs(chroma(out) - chroma(img)).max() < 1e-5  # ... and is gone
    fields = np.full((h, w, 3), 0.5, np.float32)
    fields[:, 48:] = (0.8, 0.3, 0.2)  # two colour fields: the median keeps them and their edge
    kept = clean_chroma(fields, 9)
    np.testing.assert_allclose(kept @ luma, fields @ luma, atol=1e-5)
    np.testing.assert_allclose(kept[:, np.r_[:46, 50:w]], fields[:, np.r_[:46, 50:w]], atol=1e-5)  # at most 2 px of softening
    assert np.array_equal(draw_strokes(fringed, Strokes(0, 6, 9), fringed), out)  # drawn first, with or without streaks
    assert np.array_equal(draw_strokes(fringed, Strokes(0, 6), fringed), fringed)
    with pytest.raises(ValueError, match="chroma_median"):
        Strokes(12, 6, 4)


def _photo(path, h=96, w=128):
    Image.fromarray((_rings(h, w) * 255).astype(np.uint8)).save(path)
    return path


def test_stylize_draws_strokes_at_the_working_size_only(tmp_path, tiny_weights):
    src, w = _photo(tmp_path / "p.png"), str(tiny_weights["CompactGenerator"])

    def run(name, *extra):
        r = runner.invoke(app, ["stylize", str(src), "--weights", w, *extra, "--json", "-o", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        return np.asarray(Image.open(tmp_path / name), np.float32), json.loads(r.stdout)

    plain, report = run("plain.png")
    assert report["parameters"]["strokes"] is None
    streaked, report = run("streaked.png", "--strokes", "12")
    assert report["parameters"]["strokes"] == 12
    assert 4 < float(np.abs(streaked - plain).mean()) < 20  # drawn, about as strong as asked
    full, _ = run("full.png", "--strokes", "12", "--work-size", "0")
    assert np.array_equal(full, plain)  # full-size painting: no strokes


@pytest.mark.parametrize(
    "args, needle",
    [
        (("stylize", "--strokes", "-1"), "--strokes must be between 0"),
        (("stylize", "--strokes", "100"), "--strokes must be between 0"),
        (("upscale", "--strokes", "5"), "No such option"),
    ],
)
def test_bad_strokes_flags_are_one_line_usage_errors(tmp_path, tiny_weights, args, needle):
    src = _photo(tmp_path / "p.png")
    r = runner.invoke(app, [args[0], str(src), *args[1:], "--weights", str(tiny_weights["CompactGenerator"])])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert not list(tmp_path.glob("p_*"))  # nothing written


def test_edges_come_back_where_the_painting_draws_them_and_texture_stays_out():
    h, w = 64, 96
    rng = np.random.default_rng(0)
    photo = np.full((h, w, 3), 0.3, np.float32)
    photo[:, 48:] = 0.7  # a sharp contour
    photo[:, :24] += rng.normal(0, 0.02, (h, 24, 1)).astype(np.float32)  # fine texture (grass) away from it
    ramp = np.clip((np.arange(w, dtype=np.float32) - 44) / 8, 0, 1)  # the net's soft version of the contour
    painted = np.broadcast_to((0.3 + 0.4 * ramp)[None, :, None], (h, w, 3)).copy()
    painted[:, :24] = 0.35  # and a flat field over the texture
    out = draw_strokes(painted, Strokes(0, 6, 0, 6.0), photo)
    step = lambda x: np.abs(np.diff(x[h // 2, 40:56, 0])).max()  # noqa: E731  the steepest step across the contour
    assert step(out) > 2 * step(painted)  # the contour is crisper ...
    np.testing.assert_allclose(out[:, :20], painted[:, :20], atol=0.01)  # ... the flat field gets none of the texture
    assert np.array_equal(draw_strokes(painted, Strokes(0, 6), photo), painted)
    with pytest.raises(ValueError, match="edges"):
        Strokes(12, 6, 0, 17.0)
