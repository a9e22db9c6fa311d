"""16-bit colour PNG and TIFF codecs that Pillow lacks (and a TIFF writer that keeps EXIF).

Pillow has no 16-bit RGB(A) image mode: it opens such files at 8 bits and cannot save
them. Reading reuses Pillow's own decoders twice on the same file, once with an unpacker
that keeps the high byte of every sample and once with one that keeps the low byte (the
filters, interlacing and compression stay Pillow's). Writing is a small numpy encoder.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

# Pillow rawmode of a 16-bit multi-sample file -> (mode, rawmode for the high bytes,
# rawmode for the low bytes, channels kept). For big-endian data the "16L" unpacker
# picks bytes 1, 3, 5..., i.e. the low bytes, and the other way round for little-endian.
_DEEP_RAWMODES: dict[str, tuple[str, str, str, int]] = {
    "RGB;16B": ("RGB", "RGB;16B", "RGB;16L", 3),
    "RGB;16L": ("RGB", "RGB;16L", "RGB;16B", 3),
    "RGBA;16B": ("RGBA", "RGBA;16B", "RGBA;16L", 4),
    "RGBA;16L": ("RGBA", "RGBA;16L", "RGBA;16B", 4),
    # RGB plus one unspecified extra sample (TIFF): decode 4 samples, keep 3.
    "RGBX;16B": ("RGBA", "RGBA;16B", "RGBA;16L", 3),
    "RGBX;16L": ("RGBA", "RGBA;16L", "RGBA;16B", 3),
}
# libtiff hands Pillow samples already in native byte order.
_N = "L" if sys.byteorder == "little" else "B"
for _kind in ("RGB", "RGBA", "RGBX"):
    _DEEP_RAWMODES[f"{_kind};16N"] = _DEEP_RAWMODES[f"{_kind};16{_N}"]
# 16-bit grey + alpha PNG: 4 bytes per pixel, so 8-bit RGBA copies them verbatim.
_LA16_PNG = "LA;16B"

_TIFF_STRUCTURE_TAGS = frozenset(
    {254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     338, 339, 34675}
)  # fmt: skip


def deep_rawmode(im: Image.Image) -> str | None:
    """The rawmode of ``im`` if it is 16-bit multi-sample data Pillow would reduce to 8 bits."""
    if im.format not in ("PNG", "TIFF") or len(getattr(im, "tile", ())) == 0:
        return None
    args = im.tile[0].args
    rawmode = args if isinstance(args, str) else (args[0] if args else None)
    if rawmode in _DEEP_RAWMODES or (rawmode == _LA16_PNG and im.format == "PNG"):
        return rawmode
    return None


def _decode_with(path: Path, mode: str, rawmode: str) -> np.ndarray:
    with Image.open(path) as im:
        tiles = []
        for tile in im.tile:
            args = tile.args
            args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
            tiles.append(tile._replace(args=args))
        im.tile = tiles
        im._mode = mode
        im.load()
        return np.asarray(im)


def read_deep(path: Path, rawmode: str) -> np.ndarray:
    """Decode the first frame of a 16-bit RGB(A)/LA file as uint16 H×W×C (C = 2, 3 or 4)."""
    if rawmode == _LA16_PNG:
        raw = _decode_with(path, "RGBA", "RGBA").astype(np.uint16)
        return (raw[..., 0::2] << 8) | raw[..., 1::2]
    mode, hi_raw, lo_raw, channels = _DEEP_RAWMODES[rawmode]
    hi = _decode_with(path, mode, hi_raw)[..., :channels].astype(np.uint16)
    lo = _decode_with(path, mode, lo_raw)[..., :channels].astype(np.uint16)
    return (hi << 8) | lo


def _strip_exif_header(exif: bytes) -> bytes:
    return exif[6:] if exif.startswith(b"Exif\x00\x00") else exif


FILTER_BLOCK_BYTES = 1 << 22  # rows are filtered in blocks this big: bounds the temporaries


def _filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter uint8 scanlines (h×n) choosing per row the filter with the smallest
    sum of absolute signed residuals (the heuristic libpng uses); returns h×(n+1)."""
    x = rows.astype(np.int16)
    prev = np.zeros_like(x)
    prev[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = prev[:, :-bpp]
    p = left + prev - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
    candidates = np.stack(
        [x, x - left, x - prev, x - (left + prev) // 2, x - paeth]
    ).astype(np.uint8)
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
    best = cost.argmin(axis=0)
    out = np.empty((x.shape[0], x.shape[1] + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(x.shape[0])]
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _row_blocks(samples: np.ndarray, dtype: str, block_bytes: int):
    """(start row, contiguous h×(w·c) rows in ``dtype``) blocks of about ``block_bytes``: the
    source may be a strided view (e.g. RGB of an RGBX buffer) and is never copied whole."""
    h, w, c = samples.shape
    row_bytes = max(1, w * c * np.dtype(dtype).itemsize)
    block = max(1, block_bytes // row_bytes)
    for start in range(0, h, block):
        rows = np.ascontiguousarray(samples[start : start + block], dtype=dtype)
        yield start, rows.view(np.uint8).reshape(rows.shape[0], row_bytes)


def write_png(
    f: BinaryIO, samples: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None
) -> None:
    """Write uint8 or uint16 H×W×C (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) to ``f`` as a PNG,
    a block of rows at a time (each compressed piece is its own IDAT chunk)."""
    h, w, c = samples.shape
    bits = 16 if samples.dtype == np.uint16 else 8
    if samples.dtype not in (np.uint8, np.uint16) or c not in (1, 2, 3, 4):
        raise ValueError(f"write_png cannot write {c} channels of {samples.dtype}")
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, color_type, 0, 0, 0)))
    if icc_profile:
        f.write(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        f.write(_chunk(b"eXIf", _strip_exif_header(exif)))
    compressor = zlib.compressobj(6)
    previous = None  # the Up/Paeth filters of a block's first row need the previous block's last row
    for _, rows in _row_blocks(samples, ">u2" if bits == 16 else "u1", FILTER_BLOCK_BYTES):
        if previous is None:
            filtered = _filter_rows(rows, c * bits // 8)
        else:
            filtered = _filter_rows(np.concatenate([previous, rows]), c * bits // 8)[1:]
        previous = rows[-1:]
        data = compressor.compress(filtered.tobytes())
        if data:
            f.write(_chunk(b"IDAT", data))
    f.write(_chunk(b"IDAT", compressor.flush()) + _chunk(b"IEND", b""))


TIFF_STRIP_BYTES = 1 << 20  # uncompressed bytes per strip


def write_tiff(
    f: BinaryIO, samples: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None
) -> None:
    """Write uint8 or uint16 H×W×C (C = 1 grey, 3 RGB, 4 RGBA; 2 grey+alpha at 8 bits only,
    which is all Pillow reads back) to the seekable ``f`` as a deflate-compressed
    little-endian TIFF with unassociated alpha: strips first, then the IFD. EXIF tags go into
    IFD0 and its Exif/GPS sub-IFDs, which Pillow's libtiff-backed writer cannot do."""
    h, w, c = samples.shape
    bits = 16 if samples.dtype == np.uint16 else 8
    if samples.dtype not in (np.uint8, np.uint16) or c not in (1, 2, 3, 4) or (c == 2 and bits == 16):
        raise ValueError(f"write_tiff cannot write {c} channels of {samples.dtype}")
    rows_per_strip = max(1, TIFF_STRIP_BYTES // max(1, w * c * bits // 8))
    n_strips = -(-h // rows_per_strip)

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if exif:
        tags = Image.Exif()
        tags.load(exif)
        for key in tags:
            if key in _TIFF_STRUCTURE_TAGS:  # ours describe this file, not the source
                continue
            if key in TiffTags.TAGS_V2_GROUPS:
                ifd[key] = tags.get_ifd(key)
            else:
                ifd[key] = tags[key]
            info = getattr(tags, "_info", None)  # keeps the source's tag types when known
            if info is not None and key in info.tagtype:
                ifd.tagtype[key] = info.tagtype[key]
    ifd[256] = w
    ifd[257] = h
    ifd[258] = (bits,) * c
    ifd[259] = 8  # Adobe deflate
    ifd[262] = 1 if c <= 2 else 2  # BlackIsZero / RGB
    ifd[277] = c
    ifd[278] = rows_per_strip
    ifd[284] = 1
    ifd[339] = (1,) * c
    if c in (2, 4):
        ifd[338] = (2,)  # unassociated alpha
    if icc_profile:
        ifd[34675] = icc_profile
        ifd.tagtype[34675] = TiffTags.UNDEFINED

    def directory(offsets: tuple[int, ...], counts: tuple[int, ...]) -> bytes:
        # tobytes() adds the end of the IFD and its out-of-line values to every strip offset
        ifd[273], ifd[279] = offsets, counts
        ifd.tagtype[273] = ifd.tagtype[279] = TiffTags.LONG
        return ifd.tobytes(8)

    # The IFD's size does not depend on the offset values: write a placeholder, the strips
    # (compressed one at a time), then the real IFD over the placeholder.
    base = f.tell()
    placeholder = directory((0,) * n_strips, (0,) * n_strips)
    f.write(b"II*\x00" + struct.pack("<L", 8) + placeholder)
    offsets, counts, at = [], [], 0
    for _, rows in _row_blocks(samples, "<u2" if bits == 16 else "u1", rows_per_strip * w * c * bits // 8):
        strip = zlib.compress(rows.tobytes(), 6)
        offsets.append(at)
        counts.append(len(strip))
        at += len(strip)
        f.write(strip)
    end = f.tell()
    final = directory(tuple(offsets), tuple(counts))
    assert len(final) == len(placeholder)
    f.seek(base + 8)
    f.write(final)
    f.seek(end)


__all__ = ["deep_rawmode", "read_deep", "write_png", "write_tiff"]
