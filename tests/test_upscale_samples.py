"""Upscales are quantised block by block into the buffer the writer encodes, with no float copy
of the result: files equal the float path's, and the writers read the buffer in place."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenestyle import _png16
from scenestyle.engine.device import Placement
from scenestyle.engine.tasks import Processor
from scenestyle.errors import ScenestyleError
from scenestyle.imaging import Picture, _pillow_image, _samples, read_picture, sample_buffer, write_picture
from scenestyle.nn import build

FP32 = Placement(torch.device("cpu"), torch.float32, True, None, "test")


def _upscaler(scale: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return build("SRVGGNetCompact", num_feat=8, num_conv=3, upscale=scale).eval()


def _picture(h: int, w: int, channels: int, alpha: bool, bits: int) -> Picture:
    rng = np.random.default_rng(channels + 10 * bits + alpha)
    top = 65535 if bits == 16 else 255
    pixels = np.round(rng.random((h, w, channels)) * top).astype(np.float32) / top
    a = np.round(rng.random((h, w)) * top).astype(np.float32) / top if alpha else None
    return Picture(pixels=pixels, alpha=a, bit_depth=bits, icc_profile=None, exif=None, source_format="PNG")


@pytest.mark.parametrize("channels,alpha,bits,fmt", [(3, False, 8, "png"), (3, False, 8, "jpg"), (3, True, 8, "png"),
                                                     (1, False, 8, "png"), (1, True, 8, "tif"), (3, False, 16, "png"),
                                                     (3, True, 16, "tif"), (3, False, 16, "jpg"), (3, False, 8, "tif")])
def test_quantised_upscale_writes_the_same_file_as_the_float_path(tmp_path: Path, channels, alpha, bits, fmt):
    proc = Processor(model=_upscaler(2), placement=FP32, task="upscale", tile=8)
    pic = _picture(21, 30, channels, alpha, bits)
    quantised = proc(pic)
    assert quantised.pixels.dtype == (np.uint16 if bits == 16 else np.uint8)
    assert quantised.pixels.shape[:2] == (42, 60)
    floating = proc._finish(pic, proc._run(pic.pixels, proc.model, FP32))  # the path --outscale takes
    assert floating.pixels.dtype == np.float32
    write_picture(tmp_path / f"q.{fmt}", quantised)
    write_picture(tmp_path / f"f.{fmt}", floating)
    q, f = read_picture(tmp_path / f"q.{fmt}"), read_picture(tmp_path / f"f.{fmt}")
    assert q.pixels.shape == f.pixels.shape == (42, 60, channels)
    assert np.array_equal(q.pixels, f.pixels)
    assert (q.alpha is None) == (f.alpha is None) == (not alpha or fmt == "jpg")
    if q.alpha is not None:
        assert np.array_equal(q.alpha, f.alpha)


def test_outscale_other_than_the_model_scale_keeps_the_float_path():
    proc = Processor(model=_upscaler(2), placement=FP32, task="upscale", tile=8, outscale=3.0)
    out = proc(_picture(10, 12, 3, False, 8))
    assert out.pixels.dtype == np.float32 and out.pixels.shape == (30, 36, 3)


def test_rgbx_buffer_is_wrapped_by_pillow_without_a_copy():
    pixels, alpha = sample_buffer(5, 7, 3, False, 8)
    assert alpha is None and pixels.shape == (5, 7, 3) and pixels.base.shape == (5, 7, 4)
    im = _pillow_image(pixels)
    assert im.mode == "RGBX"
    pixels[2, 3] = (10, 20, 30)  # written after wrapping: visible only if Pillow reads the buffer in place
    assert im.getpixel((3, 2))[:3] == (10, 20, 30)
    rgb, a = sample_buffer(5, 7, 3, True, 8)
    assert rgb.base.shape == (5, 7, 4) and a is not None and a.base is rgb.base
    assert _samples(rgb, a, 8) is rgb.base  # colour + alpha are encoded from the buffer itself


@pytest.mark.parametrize("dtype,channels", [(np.uint8, 3), (np.uint16, 3), (np.uint8, 2), (np.uint16, 4)])
def test_streamed_png_and_tiff_of_a_strided_view_decode_to_the_samples(monkeypatch, dtype, channels):
    monkeypatch.setattr(_png16, "FILTER_BLOCK_BYTES", 999)  # many blocks: filters cross block edges
    monkeypatch.setattr(_png16, "TIFF_STRIP_BYTES", 999)  # many strips
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    buf = rng.integers(0, top + 1, size=(37, 23, channels + 1), dtype=dtype)
    view = buf[..., :channels]  # not contiguous
    for write in (_png16.write_png, _png16.write_tiff):
        if write is _png16.write_tiff and dtype == np.uint16 and channels == 2:
            continue
        f = io.BytesIO()
        f.write(b"ahead")  # the TIFF writer patches its IFD relative to where it started
        write(f, view)
        path = Path(f"/tmp/scenestyle-stream-{write.__name__}.{'png' if write is _png16.write_png else 'tif'}")
        path.write_bytes(f.getvalue()[5:])
        pic = read_picture(path)
        got = np.concatenate([pic.pixels] + ([pic.alpha[..., None]] if pic.alpha is not None else []), axis=2)
        assert np.array_equal(np.round(got * top).astype(dtype), view), write.__name__
        path.unlink()


def test_nan_from_the_model_is_one_clear_error():
    model = _upscaler(2)

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model
            for k in ("in_channels", "out_channels", "scale", "size_multiple", "halo", "task", "value_range"):
                setattr(self, k, getattr(model, k))

        def forward(self, x):
            return self.inner(x) * float("nan")

    proc = Processor(model=Broken(), placement=FP32, task="upscale", tile=8)
    with pytest.raises(ScenestyleError, match="NaN or infinite"):
        proc(_picture(10, 12, 3, False, 8))


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
