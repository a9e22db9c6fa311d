"""PNG, TIFF and JPEG encoders fed a band of rows at a time.

A ×4 upscale of a 25 MP photo is 400 MP: 1.2 GB as 8-bit RGB, 1.6 GB in Pillow's RGBX.
These writers never hold more than one band, so an upscale can be encoded while it is
computed. PNG and TIFF are small numpy encoders (they also give the 16-bit colour files
Pillow cannot write, and TIFF keeps EXIF in its own IFDs). JPEG is Pillow's own encoder
run on strips whose heights are a multiple of the MCU height; the strips' entropy-coded
segments are joined with restart markers under one header, which decodes to exactly the
pixels of a whole-image encode (the DCT, quantisation and chroma subsampling of a JPEG
never cross an MCU row, and every strip starts its DC prediction afresh as a restart does).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

FILTER_BLOCK_BYTES = 1 << 22  # PNG rows are filtered in blocks this big: bounds the temporaries
TIFF_STRIP_BYTES = 1 << 20  # uncompressed bytes per TIFF strip
JPEG_STRIP_BYTES = 1 << 24  # RGB bytes per JPEG strip handed to Pillow
JPEG_MAX_SIDE = 65535

_TIFF_STRUCTURE_TAGS = frozenset(
    {254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     338, 339, 34675}
)  # fmt: skip


class RowWriter:
    """Base of the band encoders: ``write`` r×W×C sample rows top to bottom, then ``close``."""

    def __init__(self, f: BinaryIO, height: int, width: int, channels: int, dtype: np.dtype) -> None:
        self.f, self.height, self.width, self.channels, self.dtype = f, height, width, channels, np.dtype(dtype)
        self.rows_written = 0

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (r×W×C of the writer's dtype; any strides)."""
        if rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels) or rows.dtype != self.dtype:
            raise ValueError(f"rows of shape {rows.shape} {rows.dtype} do not fit a "
                             f"{self.width}-wide, {self.channels}-channel {self.dtype} image")
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows the image has")
        self._write(rows)
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        """Finish the file; every row must have been written."""
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} of {self.height} rows were written")
        self._close()

    def _write(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


def write_array(writer: RowWriter, samples: np.ndarray, block_bytes: int = 1 << 24) -> None:
    """Feed a whole H×W×C array (possibly a strided view) to ``writer`` in blocks of rows, and close it."""
    row_bytes = max(1, samples.shape[1] * samples.shape[2] * samples.dtype.itemsize)
    step = max(1, block_bytes // row_bytes)
    for start in range(0, samples.shape[0], step):
        writer.write(samples[start : start + step])
    writer.close()


class _StripWriter(RowWriter):
    """A RowWriter whose format is encoded in strips of ``strip_rows`` rows (the last may be
    shorter): rows are gathered, copied, until a strip is whole, then go to ``_strip``."""

    strip_rows: int  # set by the subclass

    def __init__(self, f: BinaryIO, height: int, width: int, channels: int, dtype: np.dtype) -> None:
        super().__init__(f, height, width, channels, dtype)
        self._pending: list[np.ndarray] = []
        self._gathered = 0

    def _write(self, rows: np.ndarray) -> None:
        while rows.shape[0]:
            take = min(rows.shape[0], self.strip_rows - self._gathered)
            self._pending.append(np.array(rows[:take]))  # a copy: the caller reuses its band
            self._gathered += take
            rows = rows[take:]
            if self._gathered == self.strip_rows:
                self._next_strip()

    def _next_strip(self) -> None:
        strip = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._gathered = [], 0
        self._strip(strip)

    def _close(self) -> None:
        if self._gathered:
            self._next_strip()
        self._finish()

    def _strip(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


def jpeg_subsampling(quality: int) -> int:
    """Pillow's JPEG ``subsampling`` for colour at ``quality``: none (4:4:4) from 90 up, else 4:2:0."""
    return 0 if quality >= 90 else 2


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

    def __init__(self, f: BinaryIO, height: int, width: int, channels: int, dtype: np.dtype,
                 icc_profile: bytes | None = None, exif: bytes | None = None) -> None:
        super().__init__(f, height, width, channels, dtype)
        if self.dtype not in (np.uint8, np.uint16) or channels not in (1, 2, 3, 4):
            raise ValueError(f"PNG cannot hold {channels} channels of {self.dtype}")
        self.bits = 8 * self.dtype.itemsize
        color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, self.bits, color_type, 0, 0, 0)))
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


class TiffWriter(_StripWriter):
    """uint8/uint16 grey, RGB or RGBA (grey+alpha at 8 bits only, which is all Pillow reads
    back) little-endian TIFF, deflate-compressed strips, unassociated alpha. The IFD's size
    does not depend on the strip offsets: a placeholder goes first, the real one over it at
    the end (``f`` must be seekable). EXIF tags go into IFD0 and its Exif/GPS sub-IFDs."""

    def __init__(self, f: BinaryIO, height: int, width: int, channels: int, dtype: np.dtype,
                 icc_profile: bytes | None = None, exif: bytes | None = None) -> None:
        super().__init__(f, height, width, channels, dtype)
        bits = 8 * self.dtype.itemsize
        if self.dtype not in (np.uint8, np.uint16) or channels not in (1, 2, 3, 4) or (channels == 2 and bits == 16):
            raise ValueError(f"TIFF cannot hold {channels} channels of {self.dtype} here")
        self.strip_rows = max(1, TIFF_STRIP_BYTES // max(1, width * channels * bits // 8))
        self.sample = "<u2" if bits == 16 else "u1"
        self.ifd = _tiff_ifd(width, height, channels, bits, self.strip_rows, icc_profile, exif)
        n_strips = -(-height // self.strip_rows)
        self.base = f.tell()
        self.placeholder = self._directory((0,) * n_strips, (0,) * n_strips)
        f.write(b"II*\x00" + struct.pack("<L", 8) + self.placeholder)
        self.offsets: list[int] = []
        self.counts: list[int] = []
        self.at = 0  # bytes of strips so far, counted from the end of the placeholder

    def _directory(self, offsets: tuple[int, ...], counts: tuple[int, ...]) -> bytes:
        # tobytes() adds the end of the IFD and its out-of-line values to every strip offset
        self.ifd[273], self.ifd[279] = offsets, counts
        self.ifd.tagtype[273] = self.ifd.tagtype[279] = TiffTags.LONG
        return self.ifd.tobytes(8)

    def _strip(self, rows: np.ndarray) -> None:
        strip = zlib.compress(np.ascontiguousarray(rows, dtype=self.sample).tobytes(), 6)
        self.offsets.append(self.at)
        self.counts.append(len(strip))
        self.at += len(strip)
        self.f.write(strip)

    def _finish(self) -> None:
        end = self.f.tell()
        final = self._directory(tuple(self.offsets), tuple(self.counts))
        assert len(final) == len(self.placeholder)
        self.f.seek(self.base + 8)
        self.f.write(final)
        self.f.seek(end)


def _tiff_ifd(width: int, height: int, channels: int, bits: int, rows_per_strip: int,
              icc_profile: bytes | None, exif: bytes | None) -> TiffImagePlugin.ImageFileDirectory_v2:
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if exif:
        tags = Image.Exif()
        tags.load(exif)
        for key in tags:
            if key in _TIFF_STRUCTURE_TAGS:  # ours describe this file, not the source
                continue
            ifd[key] = tags.get_ifd(key) if key in TiffTags.TAGS_V2_GROUPS else tags[key]
            info = getattr(tags, "_info", None)  # keeps the source's tag types when known
            if info is not None and key in info.tagtype:
                ifd.tagtype[key] = info.tagtype[key]
    ifd[256] = width
    ifd[257] = height
    ifd[258] = (bits,) * channels
    ifd[259] = 8  # Adobe deflate
    ifd[262] = 1 if channels <= 2 else 2  # BlackIsZero / RGB
    ifd[277] = channels
    ifd[278] = rows_per_strip
    ifd[284] = 1
    ifd[339] = (1,) * channels
    if channels in (2, 4):
        ifd[338] = (2,)  # unassociated alpha
    if icc_profile:
        ifd[34675] = icc_profile
        ifd.tagtype[34675] = TiffTags.UNDEFINED
    return ifd


_SOI, _EOI, _SOF0, _SOS, _DRI = b"\xff\xd8", b"\xff\xd9", 0xC0, 0xDA, b"\xff\xdd"


def _jpeg_parts(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """A baseline JPEG from Pillow → its marker segments up to and including SOS, and the
    entropy-coded data between SOS and EOI."""
    if not (data.startswith(_SOI) and data.endswith(_EOI)):
        raise ValueError("the strip encoder did not produce a whole JPEG")
    segments, i = [], 2
    while True:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        segments.append((marker, data[i : i + 2 + length]))
        i += 2 + length
        if marker == _SOS:
            return segments, data[i:-2]


class JpegWriter(_StripWriter):
    """8-bit grey or RGB baseline JPEG: Pillow encodes strips of whole MCU rows and their
    scans are joined with restart markers (the restart interval is one strip)."""

    def __init__(self, f: BinaryIO, height: int, width: int, channels: int, dtype: np.dtype,
                 icc_profile: bytes | None = None, exif: bytes | None = None, quality: int = 95) -> None:
        super().__init__(f, height, width, channels, dtype)
        if self.dtype != np.uint8 or channels not in (1, 3):
            raise ValueError(f"JPEG cannot hold {channels} channels of {self.dtype}")
        if max(width, height) > JPEG_MAX_SIDE:
            raise ValueError(f"JPEG cannot hold {width}x{height}: its sides stop at {JPEG_MAX_SIDE} px; use PNG or TIFF")
        self.options: dict[str, object] = {"quality": quality}
        if channels == 3:
            self.options["subsampling"] = jpeg_subsampling(quality)
        mcu = 16 if self.options.get("subsampling") == 2 else 8  # 4:2:0 halves chroma both ways
        mcu_columns = -(-width // mcu)
        by_bytes = max(1, JPEG_STRIP_BYTES // max(1, width * channels) // mcu)
        self.mcu_rows = min(by_bytes, max(1, 0xFFFF // mcu_columns))  # the restart interval is 16-bit
        self.interval = self.mcu_rows * mcu_columns
        self.strip_rows = self.mcu_rows * mcu
        self.header_options = {k: v for k, v in (("icc_profile", icc_profile), ("exif", exif)) if v}
        self.tables: list[bytes] | None = None  # the first strip's quantisation and Huffman tables
        self.strips = 0

    def _strip(self, strip: np.ndarray) -> None:
        im = Image.fromarray(strip[..., 0] if self.channels == 1 else strip, "L" if self.channels == 1 else "RGB")
        buf = io.BytesIO()
        im.save(buf, format="JPEG", **self.options, **(self.header_options if self.strips == 0 else {}))
        segments, scan = _jpeg_parts(buf.getvalue())
        tables = [s for m, s in segments if m in (0xDB, 0xC4)]  # DQT, DHT
        if self.tables is None:
            self.tables = tables
            self.f.write(_SOI)
            for marker, seg in segments:
                if marker == _SOF0:  # the strip's height → the image's
                    seg = seg[:5] + struct.pack(">H", self.height) + seg[7:]
                elif marker == _SOS:
                    self.f.write(_DRI + struct.pack(">HH", 4, self.interval))
                elif marker not in (0xE0, 0xE1, 0xE2, 0xDB, 0xC4, 0xFE):
                    raise ValueError(f"the strip encoder wrote an unexpected JPEG marker 0x{marker:02X}")
                self.f.write(seg)
        else:
            if tables != self.tables:  # one header must describe every strip's scan
                raise ValueError("the strip encoder changed its tables between strips")
            self.f.write(bytes((0xFF, 0xD0 + (self.strips - 1) % 8)))  # RST0..RST7 in turn
        self.f.write(scan)
        self.strips += 1

    def _finish(self) -> None:
        self.f.write(_EOI)


WRITERS = {"PNG": PngWriter, "TIFF": TiffWriter, "JPEG": JpegWriter}


__all__ = ["FILTER_BLOCK_BYTES", "JPEG_STRIP_BYTES", "TIFF_STRIP_BYTES", "JpegWriter", "PngWriter",
           "RowWriter", "TiffWriter", "WRITERS", "jpeg_subsampling", "write_array"]
