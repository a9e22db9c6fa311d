"""Read any still image Pillow can decode into a ``Picture``: float32 pixels in [0, 1],
upright (EXIF orientation applied), alpha split off, with the source's bit depth, ICC profile
and EXIF kept for ``write_picture``. 16-bit colour PNG and TIFF, which Pillow reduces to 8
bits, are decoded by imagecodecs and tifffile. Every problem with an input file becomes one
``InputImageError`` line that names the file.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from scenestyle._text import exception_line
from scenestyle.errors import InputImageError
from scenestyle.imaging import png, tiff
from scenestyle.imaging.picture import Picture, unit_float

DEFAULT_MAX_PIXELS = 200_000_000

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


def read_picture(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, samples: bool = False) -> Picture:
    """Decode the first frame of ``path`` fully (so truncation is caught), upright: float32 pixels
    in [0, 1], or with ``samples`` the 8/16-bit sources' integer samples as they are (a quarter or
    half of the memory; ``picture.unit_float`` converts them band by band).

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
                return _read(path, max_pixels, samples)
            finally:
                Image.MAX_IMAGE_PIXELS = saved_limit
    except InputImageError:
        raise
    except UnidentifiedImageError:
        raise InputImageError(f"{path}: not an image (Pillow does not recognise its content)") from None
    except PermissionError:
        raise InputImageError(f"{path}: cannot be read (permission denied)") from None
    # Pillow's plugins raise any of these on malformed data, depending on where it breaks;
    # imagecodecs' and tifffile's decoders raise RuntimeError and ValueError subclasses.
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, RuntimeError,
            struct.error, zlib.error, Image.DecompressionBombError) as exc:  # fmt: skip
        raise InputImageError(f"{path}: corrupt or truncated image data ({exception_line(exc)})") from None


def _read(path: Path, max_pixels: int, samples: bool) -> Picture:
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
        icc = im.info.get("icc_profile") or None
        deep: np.ndarray | None = None
        if fmt == "PNG" and png.is_deep(path):
            deep, raw_exif = png.read_deep(path)
            exif, orientation = _exif_of(lambda: _exif_tags(raw_exif), raw_exif, fmt, notes)
        else:
            if fmt == "TIFF" and tiff.is_deep(im):
                deep, _ = tiff.read_deep(path)
            else:
                im.load()  # a full decode: truncated or corrupt data fails here, not later
            exif, orientation = _exif_of(im.getexif, im.info.get("exif"), fmt, notes)
        if deep is not None:
            colour = 1 if deep.shape[2] == 2 else 3  # grey+alpha, RGB or RGBA
            pixels = _unit(deep[..., :colour], 65535, samples)
            alpha = _unit(deep[..., colour], 65535, samples) if deep.shape[2] > colour else None
            bit_depth = 16
        else:
            pixels, alpha, bit_depth, icc = _to_arrays(im, path, icc, notes, samples)

    pixels = _orient(pixels, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return Picture(
        pixels=np.ascontiguousarray(pixels, dtype=None if pixels.dtype.kind == "u" else np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=pixels.dtype),
        bit_depth=bit_depth,
        icc_profile=icc,
        exif=exif,
        source_format=fmt,
        notes=tuple(notes),
    )


def _to_arrays(
    im: Image.Image, path: Path, icc: bytes | None, notes: list[str], samples: bool
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
        arr = _unit(np.asarray(im), 255, samples)
        if arr.ndim == 2:
            arr = arr[..., None]
        if mode in ("LA", "RGBA"):
            return arr[..., :-1], arr[..., -1], 8, icc
        return arr, None, 8, icc
    if mode.startswith("I;16"):
        arr = _unit(np.asarray(im), 65535, samples)
        alpha = None
        if has_trns and isinstance(im.info["transparency"], int):
            alpha = _unit((np.asarray(im) != im.info["transparency"]) * np.uint16(65535), 65535, samples)
        return arr[..., None], alpha, 16, icc
    if mode == "I":
        raw = np.asarray(im)
        if raw.size and (raw.min() < 0 or raw.max() > 65535):
            raise InputImageError(f"{path}: 32-bit integer pixels range {raw.min()}..{raw.max()}; only 0..65535 (16-bit) is supported")
        return _unit(raw.astype(np.uint16), 65535, samples)[..., None], None, 16, icc
    if mode == "F":
        raw = np.asarray(im, dtype=np.float32)
        if raw.size and not (np.isfinite(raw).all() and raw.min() >= 0 and raw.max() <= 1):
            raise InputImageError(
                f"{path}: floating-point pixels range {np.nanmin(raw):g}..{np.nanmax(raw):g}; only values in [0, 1] are supported"
            )
        notes.append("32-bit float image: outputs keep at most 16 bits per sample")
        return raw[..., None].copy(), None, 16, icc
    raise InputImageError(
        f"{path}: unsupported pixel mode {mode!r}; supported: greyscale, RGB, RGBA, "
        "palette, CMYK, 16-bit and float greyscale, 16-bit RGB(A)"
    )


def _exif_of(read_tags: Callable[[], Image.Exif], raw: object, fmt: str, notes: list[str]) -> tuple[bytes | None, int]:
    """(EXIF bytes with Orientation reset to 1, the orientation to apply), from the parsed
    tags ``read_tags()`` and the file's raw EXIF block ``raw`` (if any)."""
    try:
        tags = read_tags()
    except Exception:  # a broken EXIF block must not cost the pixels
        notes.append("EXIF data is unreadable and was dropped")
        return None, 1
    orientation = tags.get(_ORIENTATION, 1)
    if orientation not in range(1, 9):
        notes.append(f"EXIF orientation {orientation!r} is not 1-8; the image was left as stored")
        orientation = 1
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


def _exif_tags(raw: bytes | None) -> Image.Exif:
    tags = Image.Exif()
    if raw:
        tags.load(raw)
    return tags


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


def _unit(arr: np.ndarray, top: int, samples: bool) -> np.ndarray:
    """Integers (0..``top``) as native uint8/uint16 samples (``samples``; a copy: Pillow's array is
    read-only, and torch warns on every tensor made from one), else as float32 in [0, 1]."""
    dtype = np.uint8 if top == 255 else np.uint16
    return np.array(arr, dtype=dtype) if samples else unit_float(np.asarray(arr, dtype=dtype))


__all__ = ["DEFAULT_MAX_PIXELS", "read_picture"]
