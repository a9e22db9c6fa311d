"""scenestyle.imaging: every input quirk read right, every output written whole or not at all."""

from __future__ import annotations

import errno
import io
import os
import struct
import zlib
from pathlib import Path

import _images as mk
import numpy as np
import pytest
import tifffile
from PIL import Image

from scenestyle.errors import InputImageError, OutputError, UsageError
from scenestyle.imaging import Picture, atomic, output_format_for, png, read_picture, tiff, write_picture
from scenestyle.imaging.rows import write_array


def as8(a: np.ndarray) -> np.ndarray:
    return np.round(a * 255).astype(np.int32)


def as16(a: np.ndarray) -> np.ndarray:
    return np.round(a * 65535).astype(np.int64)


def exif_tags_of(exif: bytes) -> tuple[dict[int, object], dict[int, object]]:
    """(IFD0 tags, Exif sub-IFD tags) of an EXIF block."""
    tags = Image.Exif()
    tags.load(exif)
    return dict(tags), dict(tags.get_ifd(0x8769))


def exif_tags(path: Path) -> tuple[dict[int, object], dict[int, object]]:
    """(IFD0 tags, Exif sub-IFD tags) of the file at ``path``."""
    with Image.open(path) as im:
        tags = im.getexif()
        return dict(tags), dict(tags.get_ifd(0x8769))


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_reads_upright(tmp_path: Path, orientation: int) -> None:
    src = tmp_path / f"o{orientation}.png"
    upright = mk.make_exif_oriented(src, orientation)
    pic = read_picture(src)
    assert pic.pixels.shape == upright.shape
    np.testing.assert_array_equal(as8(pic.pixels), upright)
    tags = Image.Exif()
    tags.load(pic.exif)
    assert tags[0x0112] == 1


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_in_jpeg(tmp_path: Path, orientation: int) -> None:
    src = tmp_path / "o.jpg"
    upright = mk.make_exif_oriented_jpeg(src, orientation)
    pic = read_picture(src)
    assert pic.pixels.shape == upright.shape
    assert np.abs(as8(pic.pixels) - upright).max() <= 6


def test_only_the_orientation_bytes_of_exif_change(tmp_path: Path) -> None:
    src = tmp_path / "o.jpg"
    mk.make_exif_oriented_jpeg(src, 6)
    with Image.open(src) as im:
        original = im.info["exif"]
    pic = read_picture(src)
    assert len(pic.exif) == len(original)
    assert sum(a != b for a, b in zip(pic.exif, original)) == 1  # 6 -> 1 in one byte


def test_invalid_orientation_is_ignored_with_a_note(tmp_path: Path) -> None:
    src = tmp_path / "o.png"
    Image.fromarray(mk.pattern()).save(src, exif=mk.exif_bytes(orientation=9))
    pic = read_picture(src)
    np.testing.assert_array_equal(as8(pic.pixels), mk.pattern())
    assert any("orientation 9" in n for n in pic.notes)


# --------------------------------------------------------------------------- metadata round trips


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_icc_and_exif_survive_with_orientation_reset(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "src.jpg"
    icc = mk.srgb_profile()
    upright = mk.make_exif_oriented(src, 6, format="JPEG", quality=100, icc_profile=icc)
    out = tmp_path / f"out{ext}"
    write_picture(out, read_picture(src))

    back = read_picture(out)
    assert back.icc_profile == icc
    assert back.pixels.shape == upright.shape  # written upright, so no rotation on reading
    ifd0, exif_ifd = exif_tags(out)
    assert ifd0.get(0x0112) == 1
    assert ifd0.get(0x010F) == "ScenestyleCam"
    assert exif_ifd.get(0x9003) == "2021:06:01 12:00:00"


def test_exif_carried_from_tiff_ifd0_into_jpeg(tmp_path: Path) -> None:
    src = tmp_path / "src.jpg"
    mk.make_exif_oriented(src, 6, format="JPEG")
    write_picture(tmp_path / "mid.tif", read_picture(src))
    write_picture(tmp_path / "out.jpg", read_picture(tmp_path / "mid.tif"))
    ifd0, exif_ifd = exif_tags(tmp_path / "out.jpg")
    assert ifd0.get(0x010F) == "ScenestyleCam" and ifd0.get(0x0112) == 1
    assert exif_ifd.get(0x9003) == "2021:06:01 12:00:00"
    assert 256 not in ifd0  # the TIFF's own layout tags are not EXIF


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_rgba_alpha_round_trip(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "a.png"
    arr = mk.make_rgb(src, mode="RGBA")
    pic = read_picture(src)
    assert pic.alpha is not None and pic.pixels.shape[2] == 3
    np.testing.assert_array_equal(as8(pic.alpha), arr[..., 3])
    out = tmp_path / f"out{ext}"
    write_picture(out, pic)
    back = read_picture(out)
    np.testing.assert_array_equal(as8(back.alpha), arr[..., 3])
    if ext != ".webp":  # lossy colour
        np.testing.assert_array_equal(as8(back.pixels), arr[..., :3])


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_grayscale_in_grayscale_out(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "g.png"
    arr = mk.make_rgb(src, mode="L")
    pic = read_picture(src)
    assert pic.pixels.shape[2] == 1 and pic.bit_depth == 8
    out = tmp_path / f"out{ext}"
    write_picture(out, pic)
    with Image.open(out) as im:
        assert im.mode == "L"
    tol = 2 if ext == ".jpg" else 0
    assert np.abs(as8(read_picture(out).pixels) - arr).max() <= tol


@pytest.mark.parametrize(
    ("mode", "channels", "has_alpha"),
    [("1", 1, False), ("L", 1, False), ("LA", 1, True), ("P", 3, False), ("RGB", 3, False), ("RGBA", 3, True)],
)
def test_pillow_modes_map_to_channels_and_alpha(tmp_path: Path, mode: str, channels: int, has_alpha: bool) -> None:
    src = tmp_path / "m.png"
    Image.fromarray(mk.pattern()).convert(mode).save(src)
    pic = read_picture(src)
    assert pic.pixels.dtype == np.float32 and pic.pixels.shape == (16, 24, channels)
    assert (pic.alpha is not None) == has_alpha
    assert 0.0 <= pic.pixels.min() and pic.pixels.max() <= 1.0


def _samples_source(kind: str, path: Path) -> Path:
    if kind.startswith("16-"):
        channels = int(kind[3:])
        mk.make_16bit_png(path.with_suffix(".png"), channels=channels)
        return path.with_suffix(".png")
    if kind == "trns-palette":
        mk.make_palette_png_with_transparency(path.with_suffix(".png"))
        return path.with_suffix(".png")
    Image.fromarray(mk.pattern()).convert(kind).save(path.with_suffix(".png"))
    return path.with_suffix(".png")


@pytest.mark.parametrize("kind", ["L", "LA", "P", "RGB", "RGBA", "trns-palette", "16-1", "16-2", "16-3", "16-4"])
def test_samples_are_the_integers_the_float_pixels_scale(tmp_path: Path, kind: str) -> None:
    """read_picture(samples=True) keeps 8/16-bit sources as uint8/uint16; the float read is them / 255 or / 65535."""
    src = _samples_source(kind, tmp_path / "s")
    f, s = read_picture(src), read_picture(src, samples=True)
    top = 65535 if f.bit_depth == 16 else 255
    assert s.pixels.dtype == (np.uint16 if top == 65535 else np.uint8) and s.bit_depth == f.bit_depth
    np.testing.assert_array_equal(s.pixels, (f.pixels.astype(np.float64) * top).round())
    assert (s.alpha is None) == (f.alpha is None)
    if s.alpha is not None:
        assert s.alpha.dtype == s.pixels.dtype
        np.testing.assert_array_equal(s.alpha, (f.alpha.astype(np.float64) * top).round())


# --------------------------------------------------------------------------- 16 bits


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_png_round_trips_exactly(tmp_path: Path, channels: int, ext: str) -> None:
    src = tmp_path / "deep.png"
    arr = mk.make_16bit_png(src, channels=channels)
    pic = read_picture(src)
    assert pic.bit_depth == 16
    colour = 1 if channels <= 2 else 3
    np.testing.assert_array_equal(as16(pic.pixels), arr[..., :colour])
    assert as16(pic.pixels)[-1, -1, 0] == 1234
    if channels in (2, 4):
        np.testing.assert_array_equal(as16(pic.alpha), arr[..., -1])

    out = tmp_path / f"out{ext}"
    write_picture(out, pic)
    back = read_picture(out)
    assert back.bit_depth == 16
    if ext == ".tif" and channels == 2:  # documented: 16-bit grey+alpha TIFF goes out as RGBA
        back = Picture(back.pixels[..., :1], back.alpha, 16, None, None, "TIFF")
    np.testing.assert_array_equal(as16(back.pixels), arr[..., :colour])
    if channels in (2, 4):
        np.testing.assert_array_equal(as16(back.alpha), arr[..., -1])


def test_16bit_tiff_round_trips_exactly(tmp_path: Path) -> None:
    src = tmp_path / "deep.tif"
    arr = mk.make_16bit_tiff(src)
    pic = read_picture(src)
    assert pic.bit_depth == 16 and pic.pixels.shape[2] == 1
    out = tmp_path / "out.tif"
    write_picture(out, pic)
    with Image.open(out) as im:
        assert im.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(im), arr[..., 0])


def test_tiff_writer_puts_exif_sub_ifds_and_resolution_where_pillow_finds_them() -> None:
    exif = Image.Exif()
    exif[282], exif[283], exif[296], exif[0x010F] = 300.0, 300.0, 2, "ScenestyleCam"
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 12:00:00"
    exif.get_ifd(0x8825)[1] = "N"
    f = io.BytesIO()
    f.write(b"ahead")  # offsets are relative to where the TIFF starts
    write_array(tiff.TiffWriter(f, 9, 7, 3, np.uint16, b"profile" * 9, exif.tobytes()), np.ones((9, 7, 3), np.uint16))
    with Image.open(io.BytesIO(f.getvalue()[5:])) as im:
        tags = im.getexif()
        assert im.info["icc_profile"] == b"profile" * 9
        assert (tags[282], tags[296], tags[0x010F]) == (300.0, 2, "ScenestyleCam")
        assert tags.get_ifd(0x8769)[0x9003] == "2021:06:01 12:00:00" and tags.get_ifd(0x8825)[1] == "N"


def test_16bit_png_written_by_us_is_read_by_pillow_as_16bit_grey(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    arr = mk.make_16bit_png(src, channels=1)
    out = tmp_path / "out.png"
    write_picture(out, read_picture(src))
    with Image.open(out) as im:
        assert im.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(im), arr[..., 0])


def test_16bit_png_encoder_filters_survive_noise_and_block_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(png, "FILTER_BLOCK_BYTES", 240 * 64)  # 64 rows of 40 RGB16 pixels
    rng = np.random.default_rng(1)
    noisy = rng.random((700, 40, 3)).astype(np.float32)
    noisy[:300] = np.linspace(0, 1, 40, dtype=np.float32)[None, :, None]  # smooth rows
    pic = Picture(noisy, None, 16, None, None, "PNG")
    out = tmp_path / "n.png"
    write_picture(out, pic)
    np.testing.assert_array_equal(as16(read_picture(out).pixels), as16(noisy))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_16bit_png_exif_after_the_pixels_is_read_and_applied(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    arr = mk.make_16bit_png(src, channels=3)
    data = src.read_bytes()  # eXIf goes just before IEND, after IDAT (allowed by the PNG spec)
    src.write_bytes(data[:-12] + _png_chunk(b"eXIf", mk.exif_bytes(orientation=3)) + data[-12:])
    pic = read_picture(src)
    assert pic.bit_depth == 16
    np.testing.assert_array_equal(as16(pic.pixels), arr[::-1, ::-1])  # orientation 3: turned 180°
    ifd0, exif_ifd = exif_tags_of(pic.exif)
    assert ifd0[0x0112] == 1 and ifd0[0x010F] == "ScenestyleCam" and exif_ifd[0x9003] == "2021:06:01 12:00:00"


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("extra", [None, "unspecified", "unassalpha"])
def test_16bit_tiff_from_another_writer_reads_exactly(tmp_path: Path, byteorder: str, extra: str | None) -> None:
    src = tmp_path / "deep.tif"
    arr = mk.pattern(channels=3 if extra is None else 4, bits=16)
    tifffile.imwrite(
        src,
        arr,
        byteorder=byteorder,
        photometric="rgb",
        compression="zlib",
        predictor=True,
        rowsperstrip=5,
        extrasamples=None if extra is None else (extra,),
    )
    pic = read_picture(src)
    assert pic.bit_depth == 16
    np.testing.assert_array_equal(as16(pic.pixels), arr[..., :3])
    assert (pic.alpha is not None) == (extra == "unassalpha")
    if pic.alpha is not None:
        np.testing.assert_array_equal(as16(pic.alpha), arr[..., 3])


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_truncated_16bit_colour_file_is_one_line(tmp_path: Path, ext: str) -> None:
    rng = np.random.default_rng(0)
    pic = Picture(rng.random((64, 48, 3), dtype=np.float32), None, 16, None, None, "PNG")
    src = tmp_path / f"half{ext}"
    write_picture(src, pic)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # inside the pixel data (noise: it fills most of the file)
    with pytest.raises(InputImageError) as info:
        read_picture(src)
    assert "\n" not in str(info.value) and str(src) in str(info.value) and "corrupt or truncated" in str(info.value)


def test_16bit_source_to_jpeg_is_quantised_to_8bit(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    arr = mk.make_16bit_png(src, channels=1)
    out = tmp_path / "out.jpg"
    write_picture(out, read_picture(src), quality=100)
    with Image.open(out) as im:
        assert im.mode == "L"
    back = read_picture(out)
    assert back.bit_depth == 8
    assert np.abs(back.pixels[..., 0] - arr[..., 0] / 65535).max() < 3 / 255


def test_float_tiff_reads_in_range_and_refuses_out_of_range(tmp_path: Path) -> None:
    ok, bad = tmp_path / "ok.tif", tmp_path / "bad.tif"
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(values, mode="F").save(ok)
    Image.fromarray(values * 255, mode="F").save(bad)
    pic = read_picture(ok)
    assert pic.bit_depth == 16 and np.allclose(pic.pixels[..., 0], values)
    assert any("float" in n for n in pic.notes)
    with pytest.raises(InputImageError, match="bad.tif.*0..255"):
        read_picture(bad)


# --------------------------------------------------------------------------- colour models, frames


def test_cmyk_jpeg_becomes_rgb_with_a_note(tmp_path: Path) -> None:
    src = tmp_path / "cmyk.jpg"
    expected = mk.make_cmyk_jpeg(src)
    pic = read_picture(src)
    assert pic.pixels.shape[2] == 3
    assert np.abs(as8(pic.pixels) - expected.astype(np.int32)).max() <= 8
    assert any("CMYK" in n for n in pic.notes)


def test_palette_png_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    src = tmp_path / "p.png"
    expected = mk.make_palette_png_with_transparency(src)
    pic = read_picture(src)
    assert pic.alpha is not None
    np.testing.assert_array_equal(as8(pic.pixels), expected[..., :3])
    np.testing.assert_array_equal(as8(pic.alpha), expected[..., 3])


def test_animated_gif_uses_first_frame_and_says_so(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    first = mk.make_animated_gif(src, frames=12)
    pic = read_picture(src)
    np.testing.assert_array_equal(as8(pic.pixels), first)
    assert "animated GIF: used the first of 12 frames" in pic.notes


# --------------------------------------------------------------------------- bad inputs


def _bad(kind: str, folder: Path) -> Path:
    if kind == "missing":
        return folder / "nope.jpg"
    if kind == "zero-byte":
        p = folder / "empty.png"
        p.write_bytes(b"")
        return p
    if kind == "truncated-jpeg":
        return mk.make_truncated(folder / "half.jpg", format="JPEG")
    if kind == "truncated-png":
        return mk.make_truncated(folder / "half.png", format="PNG")
    if kind == "random-bytes":
        return mk.make_random_bytes(folder / "noise.bin")
    if kind == "text-as-jpg":
        return mk.make_text_file(folder / "notes.jpg")
    if kind == "bomb":
        return mk.make_bomb(folder / "bomb.png")
    if kind == "folder":
        (folder / "dir.png").mkdir()
        return folder / "dir.png"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "no such file"),
        ("zero-byte", "empty"),
        ("truncated-jpeg", "truncated"),
        ("truncated-png", "truncated"),
        ("random-bytes", "not an image"),
        ("text-as-jpg", "not an image"),
        ("bomb", "--max-pixels 10000000000"),
        ("folder", "folder"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, kind: str, says: str) -> None:
    path = _bad(kind, tmp_path)
    with pytest.raises(InputImageError) as info:
        read_picture(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert says in message


def test_max_pixels_limit_applies_and_can_be_raised(tmp_path: Path) -> None:
    src = tmp_path / "small.png"
    mk.make_rgb(src, size=(24, 16))
    with pytest.raises(InputImageError, match="384 pixels.*--max-pixels 384"):
        read_picture(src, max_pixels=383)
    assert read_picture(src, max_pixels=384).size == (24, 16)


def test_pillow_bomb_guard_does_not_undercut_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "small.png"
    mk.make_rgb(src)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow alone would refuse this
    assert read_picture(src).size == (24, 16)
    assert Image.MAX_IMAGE_PIXELS == 10  # and its setting is given back


# --------------------------------------------------------------------------- writing


def test_jpeg_refuses_transparency_but_takes_opaque_alpha(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    mk.make_rgb(src, mode="RGBA")
    pic = read_picture(src)
    with pytest.raises(OutputError, match="--format png"):
        write_picture(tmp_path / "a.jpg", pic)
    assert not (tmp_path / "a.jpg").exists()
    opaque = Picture(pic.pixels, np.ones_like(pic.alpha), 8, None, None, "PNG")
    write_picture(tmp_path / "b.jpg", opaque)
    assert read_picture(tmp_path / "b.jpg").alpha is None


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "is not writable"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    ],
)
@pytest.mark.parametrize("where", ["os.replace", "os.fsync", "tempfile.mkstemp"])
def test_write_failure_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, says: str, where: str
) -> None:
    mk.make_rgb(tmp_path / "in.png")
    pic = read_picture(tmp_path / "in.png")
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    module, name = where.split(".")
    monkeypatch.setattr(getattr(atomic, module), name, fail)
    with pytest.raises(OutputError) as info:
        write_picture(out, pic)
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert says in str(info.value)
    assert _leftovers(tmp_path) == []
    assert out.read_bytes() == b"previous result"  # untouched, not half-written


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX folder permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    mk.make_rgb(tmp_path / "in.png")
    pic = read_picture(tmp_path / "in.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root, which a 0o555 folder does not stop from writing")
        with pytest.raises(OutputError, match="not writable"):
            write_picture(locked / "out.png", pic)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_missing_output_folder(tmp_path: Path) -> None:
    pic = Picture(np.zeros((4, 4, 3), np.float32), None, 8, None, None, "PNG")
    with pytest.raises(OutputError, match="does not exist"):
        write_picture(tmp_path / "no" / "out.png", pic)


def test_written_file_gets_normal_permissions(tmp_path: Path) -> None:
    pic = Picture(np.zeros((4, 4, 3), np.float32), None, 8, None, None, "PNG")
    out = tmp_path / "out.png"
    write_picture(out, pic)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_out_of_range_values_are_clipped_and_nan_refused(tmp_path: Path) -> None:
    px = np.array([[[-0.5], [0.5], [1.5]]], np.float32)
    write_picture(tmp_path / "c.png", Picture(px, None, 8, None, None, "PNG"))
    assert as8(read_picture(tmp_path / "c.png").pixels).ravel().tolist() == [0, 128, 255]
    px[0, 0, 0] = np.nan
    with pytest.raises(OutputError, match="NaN"):
        write_picture(tmp_path / "n.png", Picture(px, None, 8, None, None, "PNG"))


def test_unicode_and_spaces_in_paths(tmp_path: Path) -> None:
    folder = tmp_path / "ünï cødé dir"
    folder.mkdir()
    src = folder / "фото 1.png"
    arr = mk.make_rgb(src)
    out = folder / "résultat final.jpg"
    write_picture(out, read_picture(src), quality=100)
    assert np.abs(as8(read_picture(out).pixels) - arr).max() <= 3


# --------------------------------------------------------------------------- output format


@pytest.mark.parametrize(
    ("name", "requested", "expected"),
    [
        ("a.jpg", None, "JPEG"),
        ("a.JPEG", None, "JPEG"),
        ("a.png", None, "PNG"),
        ("a.webp", None, "WEBP"),
        ("a.tif", None, "TIFF"),
        ("a.tiff", "tiff", "TIFF"),
        ("a.png", "PNG", "PNG"),
        ("a.jpg", "jpg", "JPEG"),
        ("result", "webp", "WEBP"),
    ],
)
def test_output_format_for_accepts(name: str, requested: str | None, expected: str) -> None:
    assert output_format_for(Path(name), requested) == expected


@pytest.mark.parametrize(
    ("name", "requested", "says"),
    [
        ("a.bmp", None, "'.bmp'"),
        ("noext", None, "no extension"),
        ("a.png", "gif", "jpeg, png, webp, tiff"),
        ("a.png", "jpeg", "'.png' says PNG but --format says JPEG"),
        ("a.gif", "png", "'.gif' says GIF"),
    ],
)
def test_output_format_for_rejects(name: str, requested: str | None, says: str) -> None:
    with pytest.raises(UsageError) as info:
        output_format_for(Path(name), requested)
    assert says in str(info.value) and "\n" not in str(info.value)
