"""Baseline JPEG written a band at a time with Pillow's own encoder.

Pillow encodes strips whose heights are a multiple of the MCU height; the strips'
entropy-coded segments are joined with restart markers under one header, which decodes to
exactly the pixels of a whole-image encode (the DCT, quantisation and chroma subsampling of a
JPEG never cross an MCU row, and every strip starts its DC prediction afresh as a restart does).
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image

from scenestyle.imaging.rows import StripWriter

JPEG_STRIP_BYTES = 1 << 24  # RGB bytes per JPEG strip handed to Pillow
JPEG_MAX_SIDE = 65535


def jpeg_subsampling(quality: int) -> int:
    """Pillow's JPEG ``subsampling`` for colour at ``quality``: none (4:4:4) from 90 up, else 4:2:0."""
    return 0 if quality >= 90 else 2


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


class JpegWriter(StripWriter):
    """8-bit grey or RGB baseline JPEG: Pillow encodes strips of whole MCU rows and their
    scans are joined with restart markers (the restart interval is one strip)."""

    def __init__(
        self,
        f: BinaryIO,
        height: int,
        width: int,
        channels: int,
        dtype: np.dtype,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
        quality: int = 95,
    ) -> None:
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


__all__ = ["JPEG_MAX_SIDE", "JPEG_STRIP_BYTES", "JpegWriter", "jpeg_subsampling"]
