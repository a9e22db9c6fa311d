"""Read and write photos without losing depth, transparency, colour profile or EXIF.

``read_picture`` turns any still image Pillow can decode into a ``Picture``: float32
pixels in [0, 1], upright (EXIF orientation applied), alpha split off, with the source's
bit depth, ICC profile and EXIF kept for ``write_picture``. Every problem with an input
file becomes one ``InputImageError`` line that names the file; every problem writing
becomes one ``OutputError`` line, and no partial file is left behind.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import tempfile
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from scenestyle import _png16
from scenestyle._writers import JPEG_MAX_SIDE, WRITERS, PngWriter, TiffWriter, jpeg_subsampling, write_array
from scenestyle.errors import InputImageError, OutputError, ScenestyleError, UsageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temp files are then removed unconditionally
    fcntl = None  # type: ignore[assignment]

DEFAULT_MAX_PIXELS = 200_000_000
OUTPUT_FORMATS = ("jpeg", "png", "webp", "tiff")

_FORMAT_NAMES = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF", "tif": "TIFF"}
_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
_ORIENTATION = 0x0112
_EXIF_HEADER = b"Exif\x00\x00"
# Tags that describe a TIFF file's own layout rather than the photo; they must not be
# copied into another file's EXIF.
_TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317,
     320, 322, 323, 324, 325, 338, 339, 340, 341, 530, 531, 532, 34675}
)  # fmt: skip
# Pillow's bomb guard is a module global; it is swapped for ours only while a read holds this.
_PILLOW_LIMIT_LOCK = threading.Lock()


class RowStream:
    """Pixels that are computed while they are written: ``write_picture`` encodes each band of
    rows as it is made, so a big result (a ×4 upscale of 25 MP is 400 MP) is never held whole.

    ``alpha`` says what the result's alpha will be without computing it: None (no alpha),
    "opaque" (1 everywhere; dropped for JPEG) or "varies".
    """

    ndim = 3

    def __init__(self, height: int, width: int, channels: int, alpha: str | None) -> None:
        self.shape = (height, width, channels)
        self.alpha = alpha

    def produce(self, bits: int, with_alpha: bool,
                emit: Callable[[int, np.ndarray, np.ndarray | None], None]) -> None:
        """Compute the picture and call ``emit(first_row, colour, alpha)`` for each band, top to
        bottom: uint8/uint16 (``bits``) r×W×C colour and r×W alpha (None unless ``with_alpha``).
        A band starting at row 0 again means the computation started over (an out-of-memory retry).
        Raises ScenestyleError for a failed computation."""
        raise NotImplementedError


@dataclass(frozen=True)
class Picture:
    """A decoded still image plus what is needed to write it back faithfully."""

    pixels: np.ndarray | RowStream  # float32 H×W×C, C = 1 (grey) or 3 (RGB), in [0, 1], upright; or uint8/uint16 (see sample_buffer); or computed while written
    alpha: np.ndarray | None  # H×W, same kind as pixels, or None
    bit_depth: int  # 8 or 16: what the source had; drives the output depth
    icc_profile: bytes | None  # verbatim
    exif: bytes | None  # b"Exif\0\0" + TIFF data, Orientation reset to 1
    source_format: str  # Pillow's name: "JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", ...
    notes: tuple[str, ...] = ()  # things the user should be told

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def streamed(self) -> bool:
        """True when the pixels are a ``RowStream``: writing the picture computes it."""
        return isinstance(self.pixels, RowStream)


# --------------------------------------------------------------------------- reading


def read_picture(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode the first frame of ``path`` fully (so truncation is caught), upright.

    Raises ``InputImageError`` (one line, naming the file) for a missing, empty, unreadable,
    corrupt or truncated file, one over ``max_pixels``, or an unsupported pixel mode.
    """
    path = Path(path)
    if not path.exists():
        raise InputImageError(f"{path}: no such file")
    if path.is_dir():
        raise InputImageError(f"{path}: is a folder, not an image")
    try:
        if path.stat().st_size == 0:
            raise InputImageError(f"{path}: empty file (0 bytes)")
        with _PILLOW_LIMIT_LOCK:
            saved_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own check below names the flag to raise it
            try:
                return _read(path, max_pixels)
            finally:
                Image.MAX_IMAGE_PIXELS = saved_limit
    except InputImageError:
        raise
    except UnidentifiedImageError:
        raise InputImageError(f"{path}: not an image (Pillow does not recognise its content)") from None
    except PermissionError:
        raise InputImageError(f"{path}: cannot be read (permission denied)") from None
    # Pillow's plugins raise any of these on malformed data, depending on where it breaks.
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
            struct.error, zlib.error, Image.DecompressionBombError) as exc:  # fmt: skip
        raise InputImageError(f"{path}: corrupt or truncated image data ({_one_line(exc)})") from None


def _read(path: Path, max_pixels: int) -> Picture:
    with Image.open(path) as im:
        fmt = im.format or path.suffix.lstrip(".").upper()
        width, height = im.size
        if width * height > max_pixels:
            raise InputImageError(
                f"{path}: {width}x{height} = {width * height:,} pixels is over the limit of "
                f"{max_pixels:,} that guards against decompression bombs; if you trust the "
                f"file, raise it with --max-pixels {width * height}"
            )
        notes: list[str] = []
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            what = "multi-page" if fmt == "TIFF" else "animated"
            unit = "pages" if fmt == "TIFF" else "frames"
            notes.append(f"{what} {fmt}: used the first of {frames} {unit}")
        im.seek(0)
        deep = _png16.deep_rawmode(im)
        im.load()  # a full decode: truncated or corrupt data fails here, not later

        icc = im.info.get("icc_profile") or None
        exif, orientation = _exif_of(im, fmt, notes)
        if deep is not None:
            samples = _png16.read_deep(path, deep).astype(np.float32) / 65535
            colour = 1 if samples.shape[2] == 2 else 3  # grey+alpha, RGB or RGBA
            pixels = samples[..., :colour]
            alpha = samples[..., colour] if samples.shape[2] > colour else None
            bit_depth = 16
        else:
            pixels, alpha, bit_depth, icc = _to_arrays(im, path, icc, notes)

    pixels = _orient(pixels, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return Picture(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        bit_depth=bit_depth,
        icc_profile=icc,
        exif=exif,
        source_format=fmt,
        notes=tuple(notes),
    )


def _to_arrays(
    im: Image.Image, path: Path, icc: bytes | None, notes: list[str]
) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    """(pixels H×W×C, alpha H×W or None, bit depth, ICC) for Pillow's 8/16-bit/float modes."""
    mode = im.mode
    has_trns = "transparency" in im.info
    if mode == "CMYK":
        if icc is not None and icc[16:20] == b"CMYK":
            icc = None  # describes ink, not the RGB numbers we now hold
            notes.append("CMYK converted to RGB (its CMYK colour profile was dropped)")
        else:
            notes.append("CMYK converted to RGB")
        im, mode = im.convert("RGB"), "RGB"
    elif mode in ("P", "PA"):
        rgba = mode == "PA" or has_trns or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if rgba else "RGB")
        mode = im.mode
    elif mode in ("L", "RGB") and has_trns:  # tRNS: one colour marked transparent
        im = im.convert("LA" if mode == "L" else "RGBA")
        mode = im.mode
    elif mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode in ("RGBX", "YCbCr"):
        im, mode = im.convert("RGB"), "RGB"
    elif mode in ("La", "RGBa"):  # premultiplied: undo it
        im = im.convert("LA" if mode == "La" else "RGBA")
        mode = im.mode

    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = _unit_float(np.asarray(im), 255)
        if arr.ndim == 2:
            arr = arr[..., None]
        if mode in ("LA", "RGBA"):
            return arr[..., :-1], arr[..., -1], 8, icc
        return arr, None, 8, icc
    if mode.startswith("I;16"):
        arr = _unit_float(np.asarray(im), 65535)
        alpha = None
        if has_trns and isinstance(im.info["transparency"], int):
            alpha = (np.asarray(im) != im.info["transparency"]).astype(np.float32)
        return arr[..., None], alpha, 16, icc
    if mode == "I":
        raw = np.asarray(im)
        if raw.size and (raw.min() < 0 or raw.max() > 65535):
            raise InputImageError(
                f"{path}: 32-bit integer pixels range {raw.min()}..{raw.max()}; "
                "only 0..65535 (16-bit) is supported"
            )
        return (raw.astype(np.float32) / 65535)[..., None], None, 16, icc
    if mode == "F":
        raw = np.asarray(im, dtype=np.float32)
        if raw.size and not (np.isfinite(raw).all() and raw.min() >= 0 and raw.max() <= 1):
            raise InputImageError(
                f"{path}: floating-point pixels range {np.nanmin(raw):g}..{np.nanmax(raw):g}; "
                "only values in [0, 1] are supported"
            )
        notes.append("32-bit float image: outputs keep at most 16 bits per sample")
        return raw[..., None].copy(), None, 16, icc
    raise InputImageError(
        f"{path}: unsupported pixel mode {mode!r}; supported: greyscale, RGB, RGBA, "
        "palette, CMYK, 16-bit and float greyscale, 16-bit RGB(A)"
    )


def _exif_of(im: Image.Image, fmt: str, notes: list[str]) -> tuple[bytes | None, int]:
    """(EXIF bytes with Orientation reset to 1, the orientation to apply)."""
    try:
        tags = im.getexif()
    except Exception:  # a broken EXIF block must not cost the pixels
        notes.append("EXIF data is unreadable and was dropped")
        return None, 1
    orientation = tags.get(_ORIENTATION, 1)
    if orientation not in range(1, 9):
        notes.append(f"EXIF orientation {orientation!r} is not 1-8; the image was left as stored")
        orientation = 1
    raw = im.info.get("exif")
    if isinstance(raw, bytes) and raw and fmt != "TIFF":
        raw = raw if raw.startswith(_EXIF_HEADER) else _EXIF_HEADER + raw
        return _reset_orientation(raw), orientation
    if fmt == "TIFF":  # TIFF metadata lives in the file's own IFD0, beside its layout tags
        for tag in [t for t in tags if t in _TIFF_LAYOUT_TAGS]:
            del tags[tag]
        if _ORIENTATION in tags:
            tags[_ORIENTATION] = 1
        if len(tags):
            return tags.tobytes(), orientation
    return None, orientation


def _reset_orientation(exif: bytes) -> bytes:
    """Set IFD0's Orientation to 1 in place, leaving every other byte as it was (maker
    notes hold absolute offsets that re-serialising would break)."""
    tiff = len(_EXIF_HEADER)
    order = exif[tiff : tiff + 2]
    if order not in (b"II", b"MM") or len(exif) < tiff + 8:
        return exif
    end = "<" if order == b"II" else ">"
    try:
        ifd = tiff + struct.unpack_from(end + "I", exif, tiff + 4)[0]
        (count,) = struct.unpack_from(end + "H", exif, ifd)
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind, n = struct.unpack_from(end + "HHI", exif, entry)
            if tag == _ORIENTATION and kind == 3 and n == 1:
                return exif[: entry + 8] + struct.pack(end + "H", 1) + exif[entry + 10 :]
    except struct.error:
        pass
    return exif


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation like ``PIL.ImageOps.exif_transpose`` (axes 0, 1 = rows, cols)."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# --------------------------------------------------------------------------- writing


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
        raise UsageError(
            f"{path}: the extension {suffix!r} says {other} but --format says {fmt}; "
            "make them agree or drop one"
        )
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
    _atomic_write(path, lambda f: _encode(samples, pic, fmt, quality, f))


_NO_JPEG_ALPHA = ("cannot write {path}: JPEG has no transparency and this image has some; "
                  "use --format png (or webp, tiff) to keep it")


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
        raise OutputError(f"cannot write {path}: JPEG sides stop at {JPEG_MAX_SIDE} px and this image is "
                          f"{w}x{h}; use --format png or tiff")
    bits = _output_bits(pic, fmt)
    if fmt not in WRITERS:
        pixels, alpha = materialise(stream, bits)
        write_picture(path, Picture(pixels, alpha, pic.bit_depth, pic.icc_profile, pic.exif, pic.source_format, pic.notes),
                      format=fmt, quality=quality)
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

        # One band is encoded on a thread while the next is computed (zlib, numpy and Pillow's
        # encoder release the GIL); at most one is in flight, so memory grows by one band.
        with ThreadPoolExecutor(max_workers=1) as pool:

            def emit(row: int, colour: np.ndarray, alpha: np.ndarray | None) -> None:
                nonlocal writer, handed, pending
                if row != handed:
                    if row != 0:
                        raise ValueError(f"rows from {row} came after {handed} rows")
                    settle()
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

    _atomic_write(path, encode)


def materialise(stream: RowStream, bits: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Compute a ``RowStream`` into a ``sample_buffer``: (pixels, alpha) for a Picture."""
    h, w, c = stream.shape
    pixels, alpha = sample_buffer(h, w, c, stream.alpha is not None, bits)

    def emit(row: int, colour: np.ndarray, a: np.ndarray | None) -> None:
        pixels[row : row + colour.shape[0]] = colour
        if alpha is not None:
            alpha[row : row + colour.shape[0]] = a

    stream.produce(bits, alpha is not None, emit)
    return pixels, alpha


def _tiff_ready(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.uint16 and samples.shape[2] == 2:
        return samples[..., [0, 0, 0, 1]]  # Pillow cannot read 16-bit grey+alpha TIFF back
    return samples


def sample_buffer(height: int, width: int, channels: int, alpha: bool, bits: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Zeroed uint8/uint16 ``(pixels, alpha)`` views for a Picture filled with quantised samples
    (``quantise_into``), which ``write_picture`` encodes without any full-size copy.

    Both are views of one H×W×K buffer: colour then alpha. 8-bit RGB without alpha gets a
    fourth, unused channel (RGBX), the layout Pillow's JPEG encoder reads in place.
    """
    k = channels + alpha + (bits == 8 and channels == 3 and not alpha)
    buf = np.zeros((height, width, k), dtype=np.uint16 if bits == 16 else np.uint8)
    return buf[..., :channels], (buf[..., channels] if alpha else None)


def quantise_into(dst: np.ndarray, src: np.ndarray, rows: int = 256) -> None:
    """Float [0, 1] ``src`` → the integer array ``dst`` (same shape; 0..255 or 0..65535), a band
    of rows at a time. Raises ValueError on NaN or infinity."""
    top = np.iinfo(dst.dtype).max
    for r in range(0, src.shape[0], rows):
        y = np.array(src[r : r + rows], dtype=np.float32)
        if not np.isfinite(y).all():
            raise ValueError("non-finite values")
        np.clip(y, 0, 1, out=y)
        y *= top
        np.round(y, out=y)
        dst[r : r + rows] = y


def _unit_float(arr: np.ndarray, top: int) -> np.ndarray:
    """Integers → float32 in [0, 1], dividing in place: a 25 MP photo is 300 MB per float copy."""
    out = arr.astype(np.float32)
    np.divide(out, top, out=out)
    return out


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


TEMP_SUFFIX = ".tmp"
# tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX): eight characters of its alphabet in between.
_TEMP_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX), re.DOTALL)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(f)`` into a temp file beside ``path``, fsync, rename; no partial file on any failure."""
    folder = path.parent
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=folder)
        if fcntl is not None:  # held until closed or the process dies: marks the temp file as live
            fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise OutputError(_write_error(path, exc)) from None
        if isinstance(exc, ScenestyleError):  # e.g. a streamed computation that failed: its own words
            raise
        if isinstance(exc, Exception):
            raise OutputError(f"cannot write {path}: {_one_line(exc)}") from None
        raise


def remove_stale_temps(folder: Path, names: set[str]) -> list[Path]:
    """Delete the temp files that ``_atomic_write`` left in ``folder`` for outputs named ``names``
    when its process was killed (SIGKILL, power loss); returns those removed.

    Only our exact pattern (``.NAME.XXXXXXXX.tmp``, NAME one of ``names``) is touched, and only
    when no process holds its lock, so a temp file another run is still writing is kept.
    """
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return removed  # an unreadable folder fails later, per output, with its own message
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None or m.group(1) not in names or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer holds it
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _new_file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777  # replacing a file keeps its permissions
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_error(path: Path, exc: OSError) -> str:
    folder = path.parent
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: the folder {folder} is not writable"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: no space left on the device holding {folder}"
    if isinstance(exc, FileNotFoundError) and not folder.is_dir():
        return f"cannot write {path}: the folder {folder} does not exist"
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return f"cannot write {path}: a folder of that name is in the way"
    return f"cannot write {path}: {exc.strerror or _one_line(exc)}"
