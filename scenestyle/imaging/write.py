"""Write a ``Picture`` in JPEG, PNG, WebP or TIFF without losing depth, transparency, colour
profile or EXIF, atomically: every problem becomes one ``OutputError`` line and no partial
file is left behind. ``band_writer`` encodes a picture band by band while its caller computes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from scenestyle.errors import OutputError, UsageError
from scenestyle.imaging.atomic import atomic_file, atomic_write
from scenestyle.imaging.jpeg import JPEG_MAX_SIDE, JpegWriter, jpeg_subsampling
from scenestyle.imaging.picture import Picture, SampleBands, quantise_into
from scenestyle.imaging.png import PngWriter
from scenestyle.imaging.rows import RowWriter, write_array
from scenestyle.imaging.tiff import TiffWriter

OUTPUT_FORMATS = ("jpeg", "png", "webp", "tiff")
WRITERS: dict[str, type[RowWriter]] = {"PNG": PngWriter, "TIFF": TiffWriter, "JPEG": JpegWriter}

_FORMAT_NAMES = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF", "tif": "TIFF"}
_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def output_format_for(path: Path, requested: str | None) -> str:
    """The Pillow format name ("JPEG", "PNG", "WEBP", "TIFF") to write ``path`` in.

    ``requested`` is the ``--format`` value (jpeg, png, webp, tiff; jpg and tif accepted,
    any case); without it the extension decides. Raises ``UsageError`` for an unknown
    format, an extension that names none of them, or an extension that contradicts
    ``requested``.
    """
    suffix = Path(path).suffix.lower()
    from_ext = _EXTENSIONS.get(suffix)
    if requested is None:
        if from_ext is None:
            shown = f"extension {suffix!r}" if suffix else "no extension"
            raise UsageError(
                f"{path}: cannot tell the output format from {shown}; use .jpg, .png, .webp "
                "or .tif, or pass --format (jpeg, png, webp, tiff)"
            )
        return from_ext
    fmt = _FORMAT_NAMES.get(requested.strip().lower())
    if fmt is None:
        raise UsageError(f"--format {requested!r} is not supported; choose one of: {', '.join(OUTPUT_FORMATS)}")
    other = from_ext or Image.registered_extensions().get(suffix)
    if other is not None and other != fmt:
        raise UsageError(f"{path}: the extension {suffix!r} says {other} but --format says {fmt}; make them agree or drop one")
    return fmt


def write_picture(path: Path, pic: Picture, format: str | None = None, quality: int = 95) -> None:
    """Write ``pic`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    Depth: a 16-bit source gives 16-bit PNG/TIFF; JPEG and WebP are 8-bit, so they are
    quantised. Greyscale stays greyscale (L / 16-bit grey) except in WebP, which has no
    grey mode. Alpha is kept (LA/RGBA); 16-bit grey+alpha TIFF is written as RGBA because
    Pillow cannot read 16-bit grey+alpha TIFF back. JPEG has no alpha: a picture with any
    transparency raises ``OutputError`` suggesting ``--format png`` rather than silently
    flattening it; a fully opaque alpha is dropped since nothing is lost. ICC profile and
    EXIF (Orientation 1) are written to every format. ``quality`` (1-100) is for JPEG
    and WebP; JPEG at quality >= 90 is written without chroma subsampling.
    Raises ``OutputError`` (one line) on any failure, leaving no partial file.
    """
    path = Path(path)
    fmt = output_format_for(path, format)
    if not 1 <= quality <= 100:
        raise UsageError(f"--quality must be between 1 and 100, got {quality}")
    pixels, alpha = pic.pixels, pic.alpha
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"Picture.pixels must be H×W×1 or H×W×3, got shape {pixels.shape}")
    if fmt == "JPEG" and alpha is not None:
        if alpha.min() < (1 if alpha.dtype.kind == "f" else np.iinfo(alpha.dtype).max):
            raise OutputError(_NO_JPEG_ALPHA.format(path=path))
        alpha = None
    bits = _output_bits(pic, fmt)
    try:
        samples = _samples(pixels, alpha, bits)
    except ValueError:
        raise OutputError(f"cannot write {path}: the image contains NaN or infinite values") from None
    atomic_write(path, lambda f: _encode(samples, pic, fmt, quality, f))


_NO_JPEG_ALPHA = "cannot write {path}: JPEG has no transparency and this image has some; use --format png (or webp, tiff) to keep it"


def _output_bits(pic: Picture, fmt: str) -> int:
    return 16 if pic.bit_depth == 16 and fmt in ("PNG", "TIFF") else 8


class BandWriter:
    """The open file of ``band_writer``: ``write(first_row, colour, alpha)`` takes uint8/uint16
    (``bits``) r×W×C colour and r×W alpha (None unless ``with_alpha``) top to bottom; a band at
    row 0 again starts the file over (the computation restarted, e.g. after out-of-memory)."""

    def __init__(self, f: BinaryIO, fmt: str, shape: tuple[int, int, int], like: Picture, bits: int, with_alpha: bool, quality: int):
        h, w, c = shape
        self.bits, self.with_alpha = bits, with_alpha
        self._f, self._fmt, self._start = f, fmt, f.tell()
        channels = 4 if fmt == "TIFF" and bits == 16 and c + with_alpha == 2 else c + with_alpha  # see _tiff_ready
        options = {"quality": quality} if fmt == "JPEG" else {}
        dtype = np.uint16 if bits == 16 else np.uint8
        self._new = lambda: WRITERS[fmt](f, h, w, channels, dtype, like.icc_profile, like.exif, **options)
        self.writer = self._new()
        self.pool: ThreadPoolExecutor | None = None
        self._handed = 0  # rows handed to the encoder so far (it may still be encoding the last band)
        self._pending: Future | None = None

    def write(self, row: int, colour: np.ndarray, alpha: np.ndarray | None) -> None:
        """Encode one band, on a thread while the caller computes the next (zlib, numpy and Pillow's
        encoder release the GIL); at most one band is in flight, so memory grows by one band."""
        if row != self._handed:
            if row != 0:
                raise ValueError(f"rows from {row} came after {self._handed} rows")
            self.settle()
            self.writer.abort()
            self._f.seek(self._start)  # the computation started over
            self._f.truncate()
            self.writer = self._new()
        # a copy: the caller reuses its band for the next rows
        samples = np.concatenate([colour, alpha[..., None]], axis=2) if self.with_alpha else colour.copy()
        self.settle()
        self._pending = self.pool.submit(self.writer.write, _tiff_ready(samples) if self._fmt == "TIFF" else samples)
        self._handed = row + samples.shape[0]

    def settle(self) -> None:
        """Wait for the band in flight (and raise its error)."""
        if self._pending is not None:
            done, self._pending = self._pending, None
            done.result()


@contextmanager
def band_writer(
    path: Path, shape: tuple[int, int, int], alpha: str | None, like: Picture, format: str | None = None, quality: int = 95
) -> Iterator[BandWriter | SampleBands]:
    """Write a picture of ``shape`` band by band as the caller computes it, atomically: the file
    appears when the ``with`` body ends and nothing is left if it fails. ``alpha`` says what the
    picture's alpha will be (None, "opaque" or "varies"); ``like`` gives its source depth, ICC
    profile and EXIF. Checks that need no pixels come first (the computation may take minutes).
    WebP has no band encoder (and no side over 16383 px): its bands are gathered, then written."""
    path = Path(path)
    h, w, _ = shape
    fmt = output_format_for(path, format)
    if not 1 <= quality <= 100:
        raise UsageError(f"--quality must be between 1 and 100, got {quality}")
    if fmt == "JPEG" and alpha == "varies":
        raise OutputError(_NO_JPEG_ALPHA.format(path=path))
    if fmt == "JPEG" and max(h, w) > JPEG_MAX_SIDE:
        raise OutputError(f"cannot write {path}: JPEG sides stop at {JPEG_MAX_SIDE} px and this image is {w}x{h}; use --format png or tiff")
    bits = _output_bits(like, fmt)
    with_alpha = alpha is not None and fmt != "JPEG"
    if fmt not in WRITERS:
        gathered = SampleBands(shape, bits, with_alpha)
        yield gathered
        whole = Picture(gathered.pixels, gathered.alpha, like.bit_depth, like.icc_profile, like.exif, like.source_format, like.notes)
        write_picture(path, whole, format=fmt, quality=quality)
        return
    with atomic_file(path) as f:
        out = BandWriter(f, fmt, shape, like, bits, with_alpha, quality)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                out.pool = pool
                yield out
                out.settle()
            out.writer.close()
        except BaseException:
            out.writer.abort()  # a writer with a thread of its own must not be left waiting
            raise


def _tiff_ready(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.uint16 and samples.shape[2] == 2:
        return samples[..., [0, 0, 0, 1]]  # Pillow cannot read 16-bit grey+alpha TIFF back
    return samples


def _samples(pixels: np.ndarray, alpha: np.ndarray | None, bits: int) -> np.ndarray:
    """Colour (+ alpha) as one uint8/uint16 H×W×(C+1) array to encode: float pixels are
    quantised a band at a time (a ×4 upscale of a 20 MP photo is 3.8 GB per float copy);
    a ``sample_buffer`` of the right depth is used as it is. Raises ValueError on NaN."""
    h, w, c = pixels.shape
    dtype = np.uint16 if bits == 16 else np.uint8
    if pixels.dtype == dtype:
        buf = pixels.base if isinstance(pixels.base, np.ndarray) and pixels.base.ndim == 3 else None
        if alpha is None:
            return pixels
        if buf is not None and buf.shape[2] == c + 1 and _same_memory(pixels, buf[..., :c]) and _same_memory(alpha, buf[..., c]):
            return buf
    out = np.empty((h, w, c + (alpha is not None)), dtype=dtype)
    planes = [(pixels, slice(0, c))] + ([(alpha[..., None], slice(c, c + 1))] if alpha is not None else [])
    for src, chans in planes:
        if src.dtype.kind == "f":
            quantise_into(out[..., chans], src)
        elif src.dtype == dtype:
            out[..., chans] = src
        else:  # 16-bit samples into an 8-bit format: rescale with rounding, a band at a time
            for r in range(0, h, 256):
                out[r : r + 256, :, chans] = (src[r : r + 256].astype(np.uint32) * 255 + 32767) // 65535
    return out


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.strides == b.strides and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def _pillow_image(samples: np.ndarray) -> Image.Image:
    """A Pillow image of uint8 H×W×C samples, wrapping them in place where Pillow allows it
    (grey, RGBA, and RGB that is the first three channels of an RGBX buffer)."""
    h, w, c = samples.shape
    base = samples.base if isinstance(samples.base, np.ndarray) else None
    if c == 3 and base is not None and base.shape == (h, w, 4) and base.flags.c_contiguous and _same_memory(samples, base[..., :3]):
        return Image.frombuffer("RGBX", (w, h), base, "raw", "RGBX", 0, 1)
    if c in (1, 4) and samples.flags.c_contiguous:
        mode = "L" if c == 1 else "RGBA"
        return Image.frombuffer(mode, (w, h), samples, "raw", mode, 0, 1)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    return Image.fromarray(samples[..., 0] if mode == "L" else samples, mode=mode)


def _encode(samples: np.ndarray, pic: Picture, fmt: str, quality: int, f: BinaryIO) -> None:
    """Write quantised samples (H×W×1..4, possibly a strided view) to the open file ``f`` in ``fmt``."""
    h, w, _ = samples.shape
    if fmt == "TIFF":
        samples = _tiff_ready(samples)
        write_array(TiffWriter(f, h, w, samples.shape[2], samples.dtype, pic.icc_profile, pic.exif), samples)
        return
    if fmt == "PNG" and (samples.dtype == np.uint16 or not samples.flags.c_contiguous):
        # Pillow: no 16-bit RGB, and it copies views
        write_array(PngWriter(f, h, w, samples.shape[2], samples.dtype, pic.icc_profile, pic.exif), samples)
        return
    im = _pillow_image(samples)
    mode = im.mode
    options: dict[str, object] = {}
    if pic.icc_profile:
        options["icc_profile"] = pic.icc_profile
    if pic.exif:
        options["exif"] = pic.exif
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=jpeg_subsampling(quality))
    elif fmt == "WEBP":
        options.update(quality=quality)
        if mode in ("L", "LA", "RGBX"):
            im = im.convert("RGBA" if mode == "LA" else "RGB")
    im.save(f, format=fmt, **options)


__all__ = ["OUTPUT_FORMATS", "WRITERS", "output_format_for", "write_picture"]
