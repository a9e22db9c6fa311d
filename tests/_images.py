"""Synthesize test images on disk (tiny, deterministic) for the imaging and CLI tests.

Every ``make_*`` writes ``path`` and returns what a correct reader should see, so a test
reads: ``expected = make_x(tmp_path / "x.png"); assert read(...) == expected``. These
helpers use Pillow and numpy only, never scenestyle, so they check it independently.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

# Pillow transpose that, applied on reading (ImageOps.exif_transpose), undoes each
# orientation; saving the upright image through its inverse gives a correctly tagged file.
_READ_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
}


def pattern(size: tuple[int, int] = (24, 16), channels: int = 3, bits: int = 8) -> np.ndarray:
    """An H×W×C array (size is (width, height)) with no symmetry, so any flip or
    rotation changes it: gradients along both axes plus a bright corner block."""
    w, h = size
    top = 65535 if bits == 16 else 255
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 7 + y * 3 + 11 * c) / (w * 7 + h * 3 + 11 * channels) for c in range(channels)]
    a = np.stack(planes, axis=2)
    a[: h // 4, : w // 3] = 1.0  # top-left only
    out = np.round(a * top).astype(np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        out[-1, -1] = 1234  # a value that does not survive a trip through 8 bits
    return out


def _save(arr: np.ndarray, path: Path, mode: str, **save) -> None:
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode=mode).save(path, **save)


def make_rgb(path: Path, size: tuple[int, int] = (24, 16), mode: str = "RGB", **save) -> np.ndarray:
    """Save ``pattern`` in mode L, LA, RGB or RGBA; returns the uint8 H×W×C array saved."""
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = pattern(size, channels)
    if mode in ("LA", "RGBA"):
        arr[..., -1] = np.linspace(0, 255, size[0]).round().astype(np.uint8)[None, :]
    _save(arr, Path(path), mode, **save)
    return arr


def srgb_profile() -> bytes:
    """A real ICC profile (sRGB) to check it survives verbatim."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int = 1, make: str = "ScenestyleCam", date: str = "2021:06:01 12:00:00") -> bytes:
    """EXIF with Orientation, Make in IFD0 and DateTimeOriginal in the Exif sub-IFD."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = make
    exif.get_ifd(0x8769)[0x9003] = date
    return exif.tobytes()


def make_exif_oriented(path: Path, orientation: int, size: tuple[int, int] = (24, 16), format: str = "PNG", **save) -> np.ndarray:
    """Store the upright ``pattern`` so that a viewer honouring ``orientation`` shows it
    upright; returns the upright uint8 array."""
    upright = pattern(size, 3)
    im = Image.fromarray(upright)
    if orientation in _READ_TRANSPOSE:
        method = _READ_TRANSPOSE[orientation]
        im = im.transpose(_INVERSE.get(method, method))
    im.save(path, format=format, exif=exif_bytes(orientation), **save)
    return upright


def make_exif_oriented_jpeg(path: Path, orientation: int, size: tuple[int, int] = (24, 16)) -> np.ndarray:
    """JPEG variant of ``make_exif_oriented`` (lossy: compare with a tolerance)."""
    return make_exif_oriented(path, orientation, size, format="JPEG", quality=100, subsampling=0)


def _png(width: int, height: int, bit_depth: int, color_type: int, scanlines: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(scanlines))
            + chunk(b"IEND", b""))  # fmt: skip


def make_16bit_png(path: Path, size: tuple[int, int] = (24, 16), channels: int = 3) -> np.ndarray:
    """A 16-bit PNG (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), written by a minimal encoder
    (filter 0) so that it does not depend on the code under test; returns uint16 H×W×C."""
    arr = pattern(size, channels, bits=16)
    h, w = arr.shape[:2]
    rows = arr.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    Path(path).write_bytes(_png(w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], raw))
    return arr


def make_16bit_tiff(path: Path, size: tuple[int, int] = (24, 16)) -> np.ndarray:
    """A 16-bit greyscale TIFF (Pillow mode I;16); returns uint16 H×W×1."""
    arr = pattern(size, 1, bits=16)
    im = Image.fromarray(arr[..., 0])
    assert im.mode == "I;16", im.mode
    im.save(path, format="TIFF")
    return arr


def make_cmyk_jpeg(path: Path, size: tuple[int, int] = (24, 16), icc_profile: bytes | None = None) -> np.ndarray:
    """A CMYK JPEG (Pillow writes Adobe-style inverted CMYK); returns the RGB uint8 a naive
    CMYK->RGB conversion of the exact source gives."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    cmyk = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h), np.full_like(x, 40)], axis=2)
    im = Image.fromarray(cmyk.astype(np.uint8), mode="CMYK")
    options = {"icc_profile": icc_profile} if icc_profile else {}
    im.save(path, format="JPEG", quality=100, **options)
    return np.asarray(im.convert("RGB"))


def make_palette_png_with_transparency(path: Path, size: tuple[int, int] = (24, 16)) -> np.ndarray:
    """A palette PNG whose index 0 is fully transparent and index 1 half; returns RGBA uint8."""
    w, h = size
    idx = (np.arange(w)[None, :] + np.arange(h)[:, None]) % 4
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 10)]
    im = Image.fromarray(idx.astype(np.uint8), mode="P")
    im.putpalette([v for rgb in palette for v in rgb])
    im.save(path, format="PNG", transparency=bytes([0, 128, 255, 255]))
    alphas = np.array([0, 128, 255, 255], np.uint8)
    rgb = np.array(palette, np.uint8)[idx]
    return np.concatenate([rgb, alphas[idx][..., None]], axis=2)


def make_animated_gif(path: Path, frames: int = 12, size: tuple[int, int] = (16, 16)) -> np.ndarray:
    """An animated GIF of flat-colour frames; returns the first frame as RGB uint8."""
    colours = [(255 * (i % 2), 20 * i % 256, 255 - 20 * i % 256) for i in range(frames)]
    ims = [Image.new("RGB", size, c) for c in colours]
    ims[0].save(path, format="GIF", save_all=True, append_images=ims[1:], duration=50, loop=0)
    return np.asarray(ims[0])


def make_truncated(path: Path, fraction: float = 0.5, format: str = "JPEG", size: tuple[int, int] = (64, 48)) -> Path:
    """An image of ``format`` cut to ``fraction`` of its bytes (noise, so it does not
    compress into a few bytes)."""
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    im.save(path, format=format)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return Path(path)


def make_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb shape)."""
    Path(path).write_bytes(_png(width, height, 8, 0, b"\x00" * 16))
    return Path(path)


def make_random_bytes(path: Path, n: int = 4096) -> Path:
    """Random bytes (no image signature)."""
    Path(path).write_bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes())
    return Path(path)


def make_text_file(path: Path, text: str = "this is not a photo\n") -> Path:
    """A text file, whatever its name says."""
    Path(path).write_text(text)
    return Path(path)
