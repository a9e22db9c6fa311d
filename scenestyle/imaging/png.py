"""PNG in and out at 8 or 16 bits per sample (Pillow reads 16-bit colour PNG at 8 bits and
cannot write it).

Reading a 16-bit colour file goes through imagecodecs (libpng), once. Writing is a small
band encoder, ``PngWriter``: scanlines are filtered with numpy (libpng's heuristic) and
deflated a band at a time, so a big result is encoded while it is computed; the libraries at
hand encode whole arrays only.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import imagecodecs
import numpy as np

from scenestyle.imaging.rows import RowWriter

FILTER_BLOCK_BYTES = 1 << 22  # PNG rows are filtered in blocks this big: bounds the temporaries
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_deep(path: Path) -> bool:
    """True for a 16-bit grey+alpha, RGB or RGBA PNG: the files Pillow would reduce to 8 bits."""
    with open(path, "rb") as f:
        head = f.read(29)
    # signature, IHDR length and type, width, height, then bit depth and colour type
    return len(head) == 29 and head[:8] == _SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6)


def read_deep(path: Path) -> tuple[np.ndarray, bytes | None]:
    """(uint16 H×W×C samples, C = 2, 3 or 4; the eXIf chunk's EXIF or None), decoding once.
    Raises ``imagecodecs.PngError`` or ValueError for corrupt or truncated data."""
    data = Path(path).read_bytes()
    samples = imagecodecs.png_decode(data)
    if samples.dtype != np.uint16 or samples.ndim != 3:
        raise ValueError(f"expected 16-bit multi-channel samples, got {samples.shape} {samples.dtype}")
    return samples, _exif_chunk(data)


def _exif_chunk(data: bytes) -> bytes | None:
    """The eXIf chunk of a PNG in memory, wherever it is (Pillow reads one after the pixel
    data only by decoding them)."""
    at = len(_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        if kind == b"eXIf":
            return data[at + 8 : at + 8 + length]
        if kind == b"IEND":
            break
        at += 12 + length
    return None


def _strip_exif_header(exif: bytes) -> bytes:
    return exif[6:] if exif.startswith(b"Exif\x00\x00") else exif


def _filter_rows(rows: np.ndarray, bpp: int, prev_row: np.ndarray | None) -> np.ndarray:
    """PNG-filter uint8 scanlines (h×n) choosing per row the filter with the smallest sum of
    absolute signed residuals (the heuristic libpng uses); ``prev_row`` is the scanline
    above the first (None at the top of the image); returns h×(n+1). Residuals are uint8
    arithmetic, which wraps modulo 256 as PNG's does; only Paeth's comparisons need int16."""
    x = rows
    h, n = x.shape
    prev = np.empty_like(x)
    prev[1:] = x[:-1]
    prev[0] = 0 if prev_row is None else prev_row
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = prev[:, :-bpp]
    a, b, c = left.astype(np.int16), prev.astype(np.int16), upleft.astype(np.int16)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)  # |p - left|, |p - up|, |p - upleft|
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
    candidates = np.empty((5, h, n), np.uint8)
    candidates[0] = x
    np.subtract(x, left, out=candidates[1])
    np.subtract(x, prev, out=candidates[2])
    np.subtract(x, (left & prev) + ((left ^ prev) >> 1), out=candidates[3])  # floor((left + up) / 2) in 8 bits
    np.subtract(x, paeth, out=candidates[4])
    cost = np.abs(candidates.view(np.int8)).view(np.uint8).sum(axis=2, dtype=np.uint32)  # |-128| = 128 as uint8
    best = cost.argmin(axis=0)
    out = np.empty((h, n + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(h)]
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _scanlines(rows: np.ndarray, dtype: str, block_bytes: int):
    """Contiguous h×(W·C·bytes) scanline blocks of ``rows`` in ``dtype``, about ``block_bytes`` each."""
    h, w, c = rows.shape
    row_bytes = max(1, w * c * np.dtype(dtype).itemsize)
    step = max(1, block_bytes // row_bytes)
    for start in range(0, h, step):
        block = np.ascontiguousarray(rows[start : start + step], dtype=dtype)
        yield block.view(np.uint8).reshape(block.shape[0], row_bytes)


class PngWriter(RowWriter):
    """uint8/uint16 grey, grey+alpha, RGB or RGBA PNG; each compressed piece is its own IDAT chunk."""

    def __init__(
        self,
        f: BinaryIO,
        height: int,
        width: int,
        channels: int,
        dtype: np.dtype,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
    ) -> None:
        super().__init__(f, height, width, channels, dtype)
        if self.dtype not in (np.uint8, np.uint16) or channels not in (1, 2, 3, 4):
            raise ValueError(f"PNG cannot hold {channels} channels of {self.dtype}")
        self.bits = 8 * self.dtype.itemsize
        color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        f.write(_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, self.bits, color_type, 0, 0, 0)))
        if icc_profile:
            f.write(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
        if exif:
            f.write(_chunk(b"eXIf", _strip_exif_header(exif)))
        self.compressor = zlib.compressobj(6)
        self.previous: np.ndarray | None = None  # the Up/Paeth filters of a block's first row need the row above

    def _write(self, rows: np.ndarray) -> None:
        for lines in _scanlines(rows, ">u2" if self.bits == 16 else "u1", FILTER_BLOCK_BYTES):
            filtered = _filter_rows(lines, self.channels * self.bits // 8, self.previous)
            self.previous = lines[-1].copy()
            data = self.compressor.compress(filtered.tobytes())
            if data:
                self.f.write(_chunk(b"IDAT", data))

    def _close(self) -> None:
        self.f.write(_chunk(b"IDAT", self.compressor.flush()) + _chunk(b"IEND", b""))


__all__ = ["FILTER_BLOCK_BYTES", "PngWriter", "is_deep", "read_deep"]
