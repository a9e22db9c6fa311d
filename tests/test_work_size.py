"""stylize at a working size: the guided upsampling, and the CLI path that paints small and guides up."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _fixtures import tiny_weights  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine.convert import resize
from scenestyle.engine.guided import BAND_ROWS, GuidedUpsampler, luma, work_shape

runner = CliRunner()


def _scene(h: int, w: int, seed: int = 0, noise: float = 0.03) -> np.ndarray:
    """Blocks with sharp edges, smooth gradients and fine noise texture, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0.3 * np.sin(6 * xx)], -1)
    img[h // 4 : h // 2, w // 5 : w // 2] = (0.9, 0.8, 0.2)
    img[(xx - 0.7) ** 2 + (yy - 0.3) ** 2 < 0.02] = (0.1, 0.2, 0.7)
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 1).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("h,w,px,m", [(3000, 4000, 1_000_000, 4), (4000, 3000, 1_000_000, 4), (480, 640, 100_000, 8)])
def test_work_shape_keeps_aspect_and_multiple(h, w, px, m):
    hs, ws = work_shape(h, w, px, m)
    assert hs % m == 0 and ws % m == 0
    assert abs(hs * ws / px - 1) < 0.05
    assert abs(hs / ws - h / w) < 0.02


def test_guided_upsampling_restores_edges_a_plain_resize_blurs():
    full = _scene(400, 600, noise=0.0)
    small = resize(full, 100, 150)
    up = GuidedUpsampler(small, small, 400, 600)  # the "painting" is the small photo itself
    guided = up.rows(full, 0)
    plain = resize(small, 400, 600)
    sharp = resize(full, 400, 600)  # no-op resize: same clip as the others
    assert guided.shape == full.shape and guided.dtype == np.float32
    assert _psnr(guided, sharp) > _psnr(plain, sharp) + 3  # the photo's edges come back


def test_guided_upsampling_keeps_the_paintings_flat_areas_flat():
    full = _scene(300, 300, seed=1)
    small = resize(full, 75, 75)
    flat = np.full_like(small, 0.5)
    flat[..., 0] = 0.8
    out = GuidedUpsampler(small, flat, 300, 300).rows(full, 0)
    assert np.abs(out - flat[0, 0]).max() < 1e-3  # where the painting ignores the photo, its texture stays out


def test_guided_rows_in_bands_equal_the_whole():
    full = _scene(2 * BAND_ROWS + 37, 200, seed=2)
    small = resize(full, 130, 50)
    styled = np.clip(small[..., ::-1] * 0.8 + 0.1, 0, 1).copy()
    up = GuidedUpsampler(small, styled, *full.shape[:2])
    whole = up.rows(full, 0)
    bands = np.concatenate([up.rows(full[r : r + 100], r) for r in range(0, full.shape[0], 100)])
    np.testing.assert_array_equal(whole, bands)
    assert luma(full).shape == full.shape[:2]


def _save(arr: np.ndarray, path) -> None:
    Image.fromarray((arr * 255 + 0.5).astype(np.uint8)).save(path)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("arch", ["CompactGenerator", "ResnetGenerator"])
def test_big_and_small_photo_of_one_scene_get_the_same_look(tmp_path, tiny_weights, arch):
    """A photo 4x the working size, painted then shrunk, matches the same scene given at the working size."""
    big = _scene(640, 960, seed=3)
    _save(big, tmp_path / "big.png")
    small = resize(big, 320, 480)
    _save(small, tmp_path / "small.png")
    w = tiny_weights[arch]
    for name in ("big", "small"):
        r = runner.invoke(
            app,
            [
                "stylize",
                str(tmp_path / f"{name}.png"),
                "--weights",
                str(w),
                "--work-size",
                "153600",
                "--json",
                "-o",
                str(tmp_path / f"{name}_out.png"),
            ],
        )
        assert r.exit_code == 0, r.output
    out_big = np.asarray(Image.open(tmp_path / "big_out.png"), np.float32) / 255
    out_small = np.asarray(Image.open(tmp_path / "small_out.png"), np.float32) / 255
    assert out_big.shape == big.shape  # full size comes back
    # compared at half the working size: random tiny weights paint pixel-level checkerboards that
    # any resize pair changes; the look (colours, layout, strokes of a few pixels) must agree
    assert _psnr(resize(out_big, 160, 240), resize(out_small, 160, 240)) > 28


def test_work_size_note_and_full_size_option(tmp_path, tiny_weights):
    src = tmp_path / "p.png"
    _save(_scene(400, 400), src)
    w = str(tiny_weights["CompactGenerator"])
    r = runner.invoke(app, ["stylize", str(src), "--weights", w, "--work-size", "65536", "--json", "-o", str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    [res] = json.loads(r.stdout)["results"]
    assert any("painted at 256x256" in n for n in res["notes"]), res
    r = runner.invoke(app, ["stylize", str(src), "--weights", w, "--work-size", "0", "--json", "-o", str(tmp_path / "b.png")])
    assert r.exit_code == 0, r.output
    [res] = json.loads(r.stdout)["results"]
    assert not any("painted at" in n for n in res["notes"])
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


@pytest.mark.parametrize("args,needle", [(("stylize", "--work-size", "1000"), "--work-size"), (("upscale", "--work-size", "100000"), "")])
def test_work_size_bad_values_are_usage_errors(tmp_path, tiny_weights, args, needle):
    src = tmp_path / "p.png"
    _save(_scene(40, 40), src)
    r = runner.invoke(app, [args[0], str(src), *args[1:], "--weights", str(tiny_weights["CompactGenerator"])])
    assert r.exit_code == 2, r.output
    assert needle in r.output


@pytest.mark.parametrize("strokes", [None, (12, 6)])
def test_big_results_streamed_while_guided_up_equal_the_whole(tmp_path, tiny_weights, strokes):
    """Results big enough to be written while computed go through the same guided rows, band by band
    (brush strokes, drawn at the working size, included)."""
    import torch

    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.run import save
    from scenestyle.engine.streamed import Streamed
    from scenestyle.engine.strokes import Strokes
    from scenestyle.engine.tasks import Processor
    from scenestyle.imaging import Picture
    from scenestyle.loading import load_model

    loaded = load_model(str(tiny_weights["CompactGenerator"]), task="style", offline=True)
    placement = choose_placement("cpu", "fp32", model=loaded.module, meta=loaded.meta)
    model = prepare(loaded.module, loaded.meta, placement)
    photo = _scene(600, 300, seed=4)
    alpha = np.linspace(0, 1, 600 * 300, dtype=np.float32).reshape(600, 300)
    pic = Picture(pixels=photo, alpha=alpha, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    outs = []
    for name, stream_pixels in (("whole", 1 << 40), ("streamed", 1)):
        proc = Processor(
            model=model,
            meta=loaded.meta,
            placement=placement,
            task="style",
            tile=0,
            strength=0.7,
            work_pixels=40_000,
            stream_pixels=stream_pixels,
            strokes=Strokes(*strokes) if strokes else None,
        )
        with torch.inference_mode():
            result = proc(pic)
            assert isinstance(result, Streamed) == (name == "streamed")
            save(tmp_path / f"{name}.png", result, None, 95)
        outs.append(np.asarray(Image.open(tmp_path / f"{name}.png")))
    assert outs[0].shape == (600, 300, 4)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_photo_read_as_samples_paints_the_same_file_without_photo_sized_float_copies(tmp_path, tiny_weights):
    """A style painted at the working size reads the photo as 8-bit samples and writes band by band:
    the same file as from float pixels, and no float copy of the photo (or of the result) is ever made."""
    import tracemalloc

    import torch

    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.tasks import Processor
    from scenestyle.imaging import read_picture, write_picture
    from scenestyle.loading import load_model

    src = tmp_path / "tall.png"
    photo = _scene(4000, 480, seed=5)
    rgba = np.dstack([photo, np.linspace(0.2, 1, 4000 * 480, dtype=np.float32).reshape(4000, 480)])
    Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(src)
    as_float, as_samples = read_picture(src), read_picture(src, samples=True)
    assert as_samples.pixels.dtype == np.uint8 and as_samples.alpha.dtype == np.uint8
    np.testing.assert_array_equal(as_samples.pixels, (as_float.pixels * 255).round())
    np.testing.assert_array_equal(as_samples.alpha, (as_float.alpha * 255).round())

    loaded = load_model(str(tiny_weights["CompactGenerator"]), task="style", offline=True)
    placement = choose_placement("cpu", "fp32", model=loaded.module, meta=loaded.meta)
    proc = Processor(
        model=prepare(loaded.module, loaded.meta, placement), meta=loaded.meta, placement=placement, task="style", work_pixels=60_000
    )
    assert proc.reads_samples
    with torch.inference_mode():
        write_picture(tmp_path / "from_float.png", proc(as_float))
        tracemalloc.start()
        try:
            write_picture(tmp_path / "from_samples.png", proc(as_samples))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    a, b = (np.asarray(Image.open(tmp_path / f"from_{k}.png")) for k in ("float", "samples"))
    assert a.shape == (4000, 480, 4)
    np.testing.assert_array_equal(a, b)
    assert peak < as_float.pixels.nbytes, (
        f"{peak / 2**20:.1f} MiB traced, a float copy of the photo is {as_float.pixels.nbytes / 2**20:.1f}"
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("strength", [1.0, 0.4])
def test_guided_samples_equal_the_float_rows_blended_and_quantised(dtype, strength):
    from scenestyle.engine.convert import blend
    from scenestyle.imaging.picture import quantise_into, unit_float

    top = np.iinfo(dtype).max
    full = np.round(_scene(300, 260, seed=4) * top).astype(dtype)
    small = resize(unit_float(full), 75, 65)
    styled = np.clip(small[..., ::-1] * 0.7 + 0.2, 0, 1).copy()
    up = GuidedUpsampler(small, styled, 300, 260)
    want = np.empty_like(full)
    rows = unit_float(full)
    quantise_into(want, blend(rows, up.rows(rows, 0), strength))
    got = np.concatenate([up.samples(full[r : r + 64], r, strength, dtype) for r in range(0, 300, 64)])
    assert got.dtype == dtype and got.shape == full.shape and got.flags.c_contiguous
    assert np.abs(got.astype(np.int64) - want).max() <= 1  # float32 rounding of the two orders of operations


def test_guided_samples_refuse_non_finite_paintings():
    small = resize(_scene(80, 80, seed=5), 20, 20)
    styled = small.copy()
    styled[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        GuidedUpsampler(small, styled, 80, 80).samples(np.zeros((80, 80, 3), np.uint8), 0, 1.0, np.uint8)
