"""Write a ``Picture`` in JPEG, PNG, WebP or TIFF without losing depth, transparency, colour
profile or EXIF, atomically: every problem becomes one ``OutputError`` line and no partial
file is left behind. A streamed picture (``RowStream``) is encoded band by band while it is
computed.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from scenestyle.errors import OutputError, UsageError
from scenestyle.imaging.atomic import atomic_write
from scenestyle.imaging.jpeg import JPEG_MAX_SIDE, JpegWriter, jpeg_subsampling
from scenestyle.imaging.picture import Picture, RowStream, materialise, quantise_into
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
    if pic.streamed:
        _write_stream(path, pic, fmt, quality)
        return
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


def _write_stream(path: Path, pic: Picture, fmt: str, quality: int) -> None:
    """``write_picture`` of a ``RowStream``: checks first (the computation may take minutes),
    then each band is encoded as it is computed. WebP has no band encoder (and no side over
    16383 px), so it is computed whole first."""
    stream: RowStream = pic.pixels  # type: ignore[assignment]
    h, w, c = stream.shape
    if fmt == "JPEG" and stream.alpha == "varies":
        raise OutputError(_NO_JPEG_ALPHA.format(path=path))
    if fmt == "JPEG" and max(h, w) > JPEG_MAX_SIDE:
        raise OutputError(f"cannot write {path}: JPEG sides stop at {JPEG_MAX_SIDE} px and this image is {w}x{h}; use --format png or tiff")
    bits = _output_bits(pic, fmt)
    if fmt not in WRITERS:
        pixels, alpha = materialise(stream, bits)
        write_picture(
            path,
            Picture(pixels, alpha, pic.bit_depth, pic.icc_profile, pic.exif, pic.source_format, pic.notes),
            format=fmt,
            quality=quality,
        )
        return
    keep_alpha = stream.alpha is not None and fmt != "JPEG"
    dtype = np.uint16 if bits == 16 else np.uint8
    channels = 4 if fmt == "TIFF" and bits == 16 and c + keep_alpha == 2 else c + keep_alpha  # see _tiff_ready
    options = {"quality": quality} if fmt == "JPEG" else {}

    def encode(f: BinaryIO) -> None:
        start = f.tell()
        writer = WRITERS[fmt](f, h, w, channels, dtype, pic.icc_profile, pic.exif, **options)
        handed = 0  # rows handed to the writer so far (it may still be encoding the last band)
        pending: Future | None = None

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                done, pending = pending, None
                done.result()

        try:
            # One band is encoded on a thread while the next is computed (zlib, numpy and Pillow's
            # encoder release the GIL); at most one is in flight, so memory grows by one band.
            with ThreadPoolExecutor(max_workers=1) as pool:

                def emit(row: int, colour: np.ndarray, alpha: np.ndarray | None) -> None:
                    nonlocal writer, handed, pending
                    if row != handed:
                        if row != 0:
                            raise ValueError(f"rows from {row} came after {handed} rows")
                        settle()
                        writer.abort()
                        f.seek(start)  # the computation started over
                        f.truncate()
                        writer = WRITERS[fmt](f, h, w, channels, dtype, pic.icc_profile, pic.exif, **options)
                    # a copy: the producer reuses its band for the next rows
                    samples = np.concatenate([colour, alpha[..., None]], axis=2) if keep_alpha else colour.copy()
                    settle()
                    pending = pool.submit(writer.write, _tiff_ready(samples) if fmt == "TIFF" else samples)
                    handed = row + samples.shape[0]

                stream.produce(bits, keep_alpha, emit)
                settle()
            writer.close()
        except BaseException:
            writer.abort()  # a writer with a thread of its own must not be left waiting
            raise

    atomic_write(path, encode)


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
