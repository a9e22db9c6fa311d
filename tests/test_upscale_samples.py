"""Upscales are quantised block by block, with no float copy of the result: small ones into the
buffer the writer encodes (read in place), big ones band by band into the encoder while they
are computed. Either way the files equal the float path's."""

from __future__ import annotations

import dataclasses
import io
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenestyle.engine.device import Placement
from scenestyle.engine.run import save
from scenestyle.engine.streamed import Streamed
from scenestyle.engine.tasks import Processor
from scenestyle.errors import ScenestyleError
from scenestyle.imaging import Picture, jpeg, png, read_picture, sample_buffer, tiff, write_picture
from scenestyle.imaging.rows import write_array
from scenestyle.nn import ModelMeta, build, describe

FP32 = Placement(torch.device("cpu"), torch.float32, True, None, "test")


def _upscaler(scale: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return build("SRVGGNetCompact", num_feat=8, num_conv=3, upscale=scale).eval()


def _up_meta(scale: int = 2) -> ModelMeta:
    return describe("SRVGGNetCompact", dict(num_feat=8, num_conv=3, upscale=scale))


def _write(path: Path, result: Picture | Streamed, quality: int = 95) -> None:
    """Save a result as ``scenestyle`` does: a Picture whole, a Streamed one band by band."""
    save(path, result, None, quality)


def _shape(result: Picture | Streamed) -> tuple[int, ...]:
    return result.shape if isinstance(result, Streamed) else result.pixels.shape


def _picture(h: int, w: int, channels: int, alpha: bool, bits: int) -> Picture:
    rng = np.random.default_rng(channels + 10 * bits + alpha)
    top = 65535 if bits == 16 else 255
    pixels = np.round(rng.random((h, w, channels)) * top).astype(np.float32) / top
    a = np.round(rng.random((h, w)) * top).astype(np.float32) / top if alpha else None
    return Picture(pixels=pixels, alpha=a, bit_depth=bits, icc_profile=None, exif=None, source_format="PNG")


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    "channels,alpha,bits,fmt",
    [
        (3, False, 8, "png"),
        (3, False, 8, "jpg"),
        (3, True, 8, "png"),
        (1, False, 8, "png"),
        (1, True, 8, "tif"),
        (3, False, 16, "png"),
        (3, True, 16, "tif"),
        (3, False, 16, "jpg"),
        (3, False, 8, "tif"),
        (1, True, 16, "tif"),
        (3, True, 8, "webp"),
        (1, False, 8, "jpg"),
    ],
)
def test_quantised_upscale_writes_the_same_file_as_the_float_path(tmp_path: Path, monkeypatch, streamed, channels, alpha, bits, fmt):
    monkeypatch.setattr(jpeg, "JPEG_STRIP_BYTES", 1)  # a strip per MCU row: many restarts
    monkeypatch.setattr(tiff, "TIFF_STRIP_BYTES", 999)
    monkeypatch.setattr(png, "FILTER_BLOCK_BYTES", 999)
    proc = Processor(model=_upscaler(2), meta=_up_meta(2), placement=FP32, task="upscale", tile=8, stream_pixels=0 if streamed else 10**9)
    pic = _picture(21, 30, channels, alpha, bits)
    quantised = proc(pic)
    assert isinstance(quantised, Streamed) == streamed
    if not streamed:
        assert quantised.pixels.dtype == (np.uint16 if bits == 16 else np.uint8)
    assert _shape(quantised)[:2] == (42, 60)
    floating = proc._finish(pic, proc._run(pic.pixels, proc.model, FP32))  # the path --outscale takes
    assert floating.pixels.dtype == np.float32
    _write(tmp_path / f"q.{fmt}", quantised, quality=95 if channels == 3 else 80)
    write_picture(tmp_path / f"f.{fmt}", floating, quality=95 if channels == 3 else 80)
    q, f = read_picture(tmp_path / f"q.{fmt}"), read_picture(tmp_path / f"f.{fmt}")
    grey_alpha16_tiff = channels == 1 and alpha and bits == 16 and fmt == "tif"  # written as RGBA (see write_picture)
    assert q.pixels.shape == f.pixels.shape == (42, 60, 3 if grey_alpha16_tiff else channels)
    assert np.array_equal(q.pixels, f.pixels)
    assert (q.alpha is None) == (f.alpha is None) == (not alpha or fmt == "jpg")
    if q.alpha is not None:
        assert np.array_equal(q.alpha, f.alpha)


def test_same_size_big_upscales_stream_one_by_one_instead_of_sharing_a_float_batch():
    pics = [_picture(10, 12, 3, False, 8) for _ in range(3)]
    small = Processor(model=_upscaler(2), meta=_up_meta(2), placement=FP32, task="upscale", tile=0, batch_size=4, stream_pixels=10**9)
    big = Processor(
        model=_upscaler(2), meta=_up_meta(2), placement=FP32, task="upscale", tile=0, batch_size=4, stream_pixels=480
    )  # 20×24 results are "big"
    batched, streamed = small.many(pics), big.many(pics)
    assert [isinstance(p, Streamed) for p in batched] == [False] * 3 and [isinstance(p, Streamed) for p in streamed] == [True] * 3


@pytest.mark.parametrize(
    "task,arch,kwargs,channels,alpha,strength",
    [
        ("style", "ResnetGenerator", dict(ngf=8, n_blocks=1), 3, True, 0.7),  # instance norms: whole-image statistics
        ("style", "ResnetGenerator", dict(ngf=8, n_blocks=1), 1, False, 1.0),  # grey photo, colour model
        ("denoise", "DnCNN", dict(in_nc=3, out_nc=3, nc=8, nb=3), 3, False, 0.5),
        ("denoise", "FFDNet", dict(in_nc=3, out_nc=3, nc=8, nb=3), 3, True, 0.8),  # strength scales σ instead
    ],
)
def test_big_stylize_and_denoise_results_stream_to_the_float_paths_file(tmp_path: Path, task, arch, kwargs, channels, alpha, strength):
    torch.manual_seed(0)
    model = build(arch, **kwargs).eval()
    pic = _picture(40, 52, channels, alpha, 8)
    whole, streamed = (
        Processor(model=model, meta=describe(arch, kwargs), placement=FP32, task=task, tile=16, strength=strength, stream_pixels=n)(pic)
        for n in (10**9, 0)
    )
    assert not isinstance(whole, Streamed) and isinstance(streamed, Streamed) and streamed.shape == pic.pixels.shape
    _write(tmp_path / "whole.png", whole)
    _write(tmp_path / "streamed.png", streamed)
    a, b = read_picture(tmp_path / "whole.png"), read_picture(tmp_path / "streamed.png")
    assert np.array_equal(a.pixels, b.pixels) and a.pixels.shape[2] == channels
    assert (a.alpha is None) == (b.alpha is None) == (not alpha)
    if alpha:
        assert np.array_equal(a.alpha, b.alpha)
    if strength < 1 and task != "denoise" or arch == "DnCNN":  # the blend really happened on the streamed path
        plain = Processor(model=model, meta=describe(arch, kwargs), placement=FP32, task=task, tile=16, stream_pixels=10**9)(pic)
        assert not np.allclose(plain.pixels, a.pixels, atol=1 / 255)


@pytest.mark.parametrize("outscale", [3.0, 1.5, 0.7])
@pytest.mark.parametrize("streamed", [False, True])
def test_outscale_is_resized_band_by_band_like_the_whole_result(tmp_path: Path, outscale, streamed):
    proc = Processor(
        model=_upscaler(2),
        meta=_up_meta(2),
        placement=FP32,
        task="upscale",
        tile=8,
        outscale=outscale,
        stream_pixels=0 if streamed else 10**9,
    )
    pic = _picture(21, 30, 3, True, 8)
    out = proc(pic)
    th, tw = round(21 * outscale), round(30 * outscale)
    assert isinstance(out, Streamed) == streamed and _shape(out) == (th, tw, 3)
    _write(tmp_path / "banded.png", out)
    whole = proc._finish(pic, proc._run(pic.pixels, proc.model, FP32))  # model output whole, then F.interpolate
    write_picture(tmp_path / "whole.png", whole)
    a, b = read_picture(tmp_path / "banded.png"), read_picture(tmp_path / "whole.png")
    for x, y in ((a.pixels, b.pixels), (a.alpha, b.alpha)):
        diff = np.abs(x - y) * 255
        assert diff.max() <= 1.01 and (diff > 0.5).mean() < 0.01  # float rounding may flip a rare sample by one level


@pytest.mark.parametrize("channels", [3, 1])
def test_colour_and_alpha_in_one_sample_buffer_are_written_without_a_copy(tmp_path: Path, channels):
    h, w = 1000, 1200
    pixels, alpha = sample_buffer(h, w, channels, True, 8)
    assert alpha is not None and alpha.base is pixels.base  # views of one H×W×(C+1) buffer
    rng = np.random.default_rng(4)
    pixels[:] = rng.integers(0, 256, pixels.shape, dtype=np.uint8)
    alpha[:] = rng.integers(1, 256, alpha.shape, dtype=np.uint8)
    pic = Picture(pixels=pixels, alpha=alpha, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    tracemalloc.start()  # numpy's allocations are traced: a copy of the samples would show here
    try:
        write_picture(tmp_path / "out.png", pic)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (pixels.nbytes + alpha.nbytes) / 4, peak
    back = read_picture(tmp_path / "out.png")
    assert np.array_equal(np.round(back.pixels * 255), pixels) and np.array_equal(np.round(back.alpha * 255), alpha)


@pytest.mark.parametrize("dtype,channels", [(np.uint8, 3), (np.uint16, 3), (np.uint8, 2), (np.uint16, 4)])
def test_png_and_tiff_band_writers_of_a_strided_view_decode_to_the_samples(tmp_path: Path, monkeypatch, dtype, channels):
    monkeypatch.setattr(png, "FILTER_BLOCK_BYTES", 999)  # many blocks: filters cross block edges
    monkeypatch.setattr(tiff, "TIFF_STRIP_BYTES", 999)  # many strips
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    buf = rng.integers(0, top + 1, size=(37, 23, channels + 1), dtype=dtype)
    view = buf[..., :channels]  # not contiguous
    for kind, ext in ((png.PngWriter, "png"), (tiff.TiffWriter, "tif")):
        if kind is tiff.TiffWriter and dtype == np.uint16 and channels == 2:
            continue
        f = io.BytesIO()
        f.write(b"ahead")  # the TIFF writer patches its IFD relative to where it started
        write_array(kind(f, 37, 23, channels, dtype), view, block_bytes=500)  # bands of a few rows
        path = tmp_path / f"band.{ext}"
        path.write_bytes(f.getvalue()[5:])
        pic = read_picture(path)
        got = np.concatenate([pic.pixels] + ([pic.alpha[..., None]] if pic.alpha is not None else []), axis=2)
        assert np.array_equal(np.round(got * top).astype(dtype), view), ext


@pytest.mark.parametrize("shape,quality", [((70, 53, 3), 95), ((70, 53, 3), 75), ((41, 90, 1), 80), ((45, 16, 3), 50)])
def test_jpeg_strips_joined_by_restarts_decode_to_the_pixels_of_a_whole_image_encode(monkeypatch, shape, quality):
    monkeypatch.setattr(jpeg, "JPEG_STRIP_BYTES", 1)  # one MCU row per strip
    rng = np.random.default_rng(2)
    smooth = np.cumsum(rng.random(shape), axis=1)
    samples = (smooth / smooth.max() * 255).astype(np.uint8)
    f = io.BytesIO()
    icc, exif = b"profile" * 20_000, Image.Exif()  # a 140 kB profile spans several APP2 markers
    exif[0x010F] = "scenestyle-test"
    w = jpeg.JpegWriter(f, shape[0], shape[1], shape[2], np.uint8, icc, exif.tobytes(), quality=quality)
    write_array(w, samples, block_bytes=7 * shape[1] * shape[2])  # bands not aligned to strips
    assert w.strips == -(-shape[0] // w.strip_rows) > 1
    whole = io.BytesIO()
    options = {"subsampling": 0 if quality >= 90 else 2} if shape[2] == 3 else {}
    Image.fromarray(samples.squeeze(2) if shape[2] == 1 else samples).save(whole, format="JPEG", quality=quality, **options)
    joined = Image.open(io.BytesIO(f.getvalue()))
    assert joined.size == (shape[1], shape[0])
    assert joined.info["icc_profile"] == icc and joined.getexif()[0x010F] == "scenestyle-test"
    assert np.array_equal(np.asarray(joined), np.asarray(Image.open(whole)))


class _Bands:
    """Test bands: fixed samples in bands of ``step`` rows, optionally starting over once after
    ``restart_after`` rows (as an out-of-memory retry does)."""

    def __init__(self, samples: np.ndarray, step: int, restart_after: int | None = None, alpha: str | None = None):
        self.shape, self.alpha = samples.shape, alpha
        self.samples, self.step, self.restart_after, self.calls = samples, step, restart_after, 0

    def bands(self, bits, with_alpha):
        self.calls += 1
        rows = list(range(0, self.shape[0], self.step))
        if self.restart_after is not None:
            rows = [r for r in rows if r < self.restart_after] + rows
        for r in rows:
            band = self.samples[r : r + self.step]
            yield r, band, np.full(band.shape[:2], 255, np.uint8) if with_alpha else None


def _streamed(bands: _Bands) -> Streamed:
    source = Picture(pixels=np.zeros((1, 1, 3), np.uint8), alpha=None, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    return Streamed(source, bands.shape, bands.alpha, bands.bands)


@pytest.mark.parametrize("fmt", ["png", "tif", "jpg"])
def test_a_stream_that_starts_over_writes_the_file_once(tmp_path: Path, fmt):
    samples = np.random.default_rng(3).integers(0, 256, size=(40, 24, 3), dtype=np.uint8)
    _write(tmp_path / f"once.{fmt}", _streamed(_Bands(samples, 8)))
    _write(tmp_path / f"over.{fmt}", _streamed(_Bands(samples, 8, restart_after=24)))
    assert (tmp_path / f"once.{fmt}").read_bytes() == (tmp_path / f"over.{fmt}").read_bytes()
    if fmt != "jpg":
        assert np.array_equal(np.round(read_picture(tmp_path / f"once.{fmt}").pixels * 255), samples)


def test_a_stream_with_a_gap_leaves_no_file(tmp_path: Path):
    class Gap(_Bands):
        def bands(self, bits, with_alpha):
            yield 0, self.samples[:8], None
            yield 16, self.samples[16:24], None

    samples = np.zeros((40, 24, 3), np.uint8)
    with pytest.raises(ScenestyleError, match="cannot write"):
        _write(tmp_path / "gap.png", _streamed(Gap(samples, 8)))
    assert list(tmp_path.iterdir()) == []


def test_streamed_jpeg_is_refused_before_computing_when_it_cannot_hold_the_result(tmp_path: Path):
    transparent = _Bands(np.zeros((16, 16, 3), np.uint8), 8, alpha="varies")
    with pytest.raises(ScenestyleError, match="no transparency"):
        _write(tmp_path / "a.jpg", _streamed(transparent))
    too_tall = _Bands(np.zeros((70_000, 1, 3), np.uint8), 8)
    with pytest.raises(ScenestyleError, match="JPEG sides stop at 65535"):
        _write(tmp_path / "b.jpg", _streamed(too_tall))
    assert transparent.calls == too_tall.calls == 0 and list(tmp_path.iterdir()) == []
    opaque = _Bands(np.full((16, 16, 3), 9, np.uint8), 8, alpha="opaque")
    _write(tmp_path / "c.jpg", _streamed(opaque))  # opaque alpha: nothing lost
    _write(tmp_path / "c.png", _streamed(opaque))
    assert Image.open(tmp_path / "c.jpg").mode == "RGB" and Image.open(tmp_path / "c.png").mode == "RGBA"


def test_nan_from_the_model_is_one_clear_error():
    model = _upscaler(2)

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(x) * float("nan")

    proc = Processor(model=Broken(), meta=_up_meta(2), placement=FP32, task="upscale", tile=8)
    with pytest.raises(ScenestyleError, match="NaN or infinite"):
        proc(_picture(10, 12, 3, False, 8))
    streamed = Processor(model=Broken(), meta=_up_meta(2), placement=FP32, task="upscale", tile=8, stream_pixels=0)(
        _picture(10, 12, 3, False, 8)
    )
    with pytest.raises(ScenestyleError, match="^the model produced NaN"):  # its own words, not "cannot write"
        _write(Path("/tmp") / "scenestyle-nan-test.png", streamed)
    assert not list(Path("/tmp").glob("*scenestyle-nan-test.png*"))


def test_opaque_integer_alpha_is_dropped_for_jpeg_and_transparent_refused(tmp_path: Path):
    pixels, alpha = sample_buffer(6, 8, 3, True, 8)
    alpha[:] = 255
    pic = Picture(pixels=pixels, alpha=alpha, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    write_picture(tmp_path / "ok.jpg", pic)
    assert Image.open(tmp_path / "ok.jpg").mode == "RGB"
    alpha[0, 0] = 254
    with pytest.raises(ScenestyleError, match="no transparency"):
        write_picture(tmp_path / "no.jpg", dataclasses.replace(pic))
    assert not (tmp_path / "no.jpg").exists()


@pytest.mark.parametrize("kind", ["PngWriter", "TiffWriter", "JpegWriter"])
def test_disk_full_in_the_middle_of_a_stream_is_one_line_and_leaves_the_old_file(tmp_path: Path, monkeypatch, kind):
    import errno

    writer = {"PngWriter": png.PngWriter, "TiffWriter": tiff.TiffWriter, "JpegWriter": jpeg.JpegWriter}[kind]
    real, calls = writer._write, []

    def full_on_second_band(self, rows):
        calls.append(rows.shape[0])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, rows)

    monkeypatch.setattr(writer, "_write", full_on_second_band)
    out = tmp_path / f"out.{ {'PngWriter': 'png', 'TiffWriter': 'tif', 'JpegWriter': 'jpg'}[kind] }"
    out.write_bytes(b"previous result")
    samples = np.zeros((40, 24, 3), np.uint8)
    with pytest.raises(ScenestyleError) as info:
        _write(out, _streamed(_Bands(samples, 8)))
    assert "no space left" in str(info.value) and "\n" not in str(info.value) and len(calls) == 2
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


class _OOMOnce(torch.nn.Module):
    """Wraps a model and raises CUDA out-of-memory on its ``fail_on``-th forward, once."""

    def __init__(self, inner: torch.nn.Module, fail_on: int):
        super().__init__()
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_on:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


@pytest.mark.parametrize("outscale", [None, 1.5])
def test_a_stream_that_restarts_after_out_of_memory_writes_the_clean_runs_file(tmp_path: Path, outscale):
    inner = _upscaler(2)
    flaky = _OOMOnce(inner, fail_on=5)  # in the second window row of 32-px tiles: rows were already written
    pic = _picture(72, 80, 3, True, 8)
    streamed = Processor(model=flaky, meta=_up_meta(2), placement=FP32, task="upscale", tile=32, outscale=outscale, stream_pixels=0)(pic)
    _write(tmp_path / "restarted.png", streamed)
    assert flaky.calls > 5  # it failed, then ran again with 16-px tiles
    clean = Processor(model=inner, meta=_up_meta(2), placement=FP32, task="upscale", tile=16, outscale=outscale, stream_pixels=0)(pic)
    _write(tmp_path / "clean.png", clean)
    assert (tmp_path / "restarted.png").read_bytes() == (tmp_path / "clean.png").read_bytes()


@pytest.mark.parametrize("bits,alpha,streamed", [(8, True, True), (16, False, True), (8, False, False), (16, True, False)])
def test_upscale_from_samples_writes_the_float_photos_file_with_no_float_copy(tmp_path: Path, monkeypatch, bits, alpha, streamed):
    """Upscale reads photos as their 8/16-bit samples (``Processor.reads_samples``) and scales them
    window by window: the same file as from float pixels, and no float copy of the photo."""
    import tracemalloc

    monkeypatch.setattr(png, "FILTER_BLOCK_BYTES", 1 << 16)  # the encoder's own temporaries stay small
    pic = _picture(2400, 400, 3, alpha, bits)
    top = 65535 if bits == 16 else 255
    src = tmp_path / "src.png"
    write_picture(src, pic)
    proc = Processor(model=_upscaler(2), meta=_up_meta(2), placement=FP32, task="upscale", tile=64, stream_pixels=0 if streamed else 10**9)
    assert proc.reads_samples
    as_float, as_samples = read_picture(src), read_picture(src, samples=True)
    assert as_samples.pixels.dtype == (np.uint16 if bits == 16 else np.uint8)
    _write(tmp_path / "from_float.png", proc(as_float))
    assert as_samples.pixels.flags.writeable  # torch warns about tensors made from read-only arrays
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _write(tmp_path / "from_samples.png", proc(as_samples))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "from_float.png").read_bytes() == (tmp_path / "from_samples.png").read_bytes()
    if streamed:  # bands only: less than one float copy of the photo (the result is 4x its size)
        assert peak < as_float.pixels.nbytes, (peak, as_float.pixels.nbytes, top)
