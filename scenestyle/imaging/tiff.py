"""16-bit colour TIFF in and out through tifffile (Pillow reads such files at 8 bits only).

Writing: tifffile lays out the file (IFD, strip offsets, ICC profile, IFD0 EXIF tags) and
writes deflate strips that ``TiffWriter`` compresses a band at a time, so a big result is
never held whole. tifffile pulls its strips from an iterator while our callers push bands,
so its write runs on a thread fed through a short queue. tifffile does not write EXIF's
Exif and GPS sub-IFDs: they are appended after the image and IFD0's pointers to them,
written by tifffile as placeholders, are set at the end.
"""

from __future__ import annotations

import queue
import struct
import threading
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image, TiffImagePlugin, TiffTags

from scenestyle.imaging.rows import StripWriter

TIFF_STRIP_BYTES = 1 << 20  # uncompressed bytes per TIFF strip

# Tags tifffile writes itself to describe this file's layout; the source's must not be copied.
_STRUCTURE_TAGS = frozenset(
    {254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338,
     339, 34675}
)  # fmt: skip
_RESOLUTION_TAGS = (282, 283, 296)  # tifffile writes them too: passed as its arguments
_RESOLUTION_UNITS = {1: "NONE", 2: "INCH", 3: "CENTIMETER"}
_SUB_IFDS = {0x8769: "ExifTag", 0x8825: "GPSTag"}
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_END, _ABORT = object(), object()


def is_deep(im: Image.Image) -> bool:
    """True for a 16-bit RGB, RGBA (unassociated alpha) or RGB + unspecified-sample TIFF: the
    files Pillow would reduce to 8 bits."""
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(258, ())
    return (
        im.format == "TIFF"
        and tags.get(262) == 2
        and len(bits) in (3, 4)
        and set(bits) == {16}
        and tags.get(339, (1,))[0] == 1
        and tuple(tags.get(338, (0,)))[:1] in ((0,), (2,))
    )


def read_deep(path: Path) -> tuple[np.ndarray, bool]:
    """(uint16 H×W×C samples of the first page, whether the 4th channel is alpha)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        samples = page.asarray()
        alpha = samples.ndim == 3 and samples.shape[2] == 4 and tuple(page.extrasamples)[:1] != (0,)
    if samples.ndim != 3 or samples.shape[2] not in (3, 4) or samples.dtype != np.uint16:
        raise ValueError(f"expected 16-bit RGB(A) samples, got {samples.shape} {samples.dtype}")
    return (samples if alpha else samples[..., :3]), alpha


class TiffWriter(StripWriter):
    """uint8/uint16 grey, RGB or RGBA (grey+alpha at 8 bits only, which is all Pillow reads
    back) little-endian TIFF, deflate-compressed strips, unassociated alpha. EXIF tags go into
    IFD0 and its Exif/GPS sub-IFDs. ``f`` must be seekable and readable."""

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
        bits = 8 * self.dtype.itemsize
        if self.dtype not in (np.uint8, np.uint16) or channels not in (1, 2, 3, 4) or (channels == 2 and bits == 16):
            raise ValueError(f"TIFF cannot hold {channels} channels of {self.dtype} here")
        self.strip_rows = max(1, TIFF_STRIP_BYTES // max(1, width * channels * bits // 8))
        self.sample = "<u2" if bits == 16 else "u1"
        self.start = f.tell()
        self.exif = _exif_tags(exif)
        options = _layout(height, width, channels, self.dtype, self.strip_rows, icc_profile, self.exif)
        self.strips: queue.Queue = queue.Queue(maxsize=2)  # compressed strips on their way to tifffile
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(options,), daemon=True)
        self.thread.start()

    def _run(self, options: dict) -> None:
        try:
            # named: tifffile takes a file object's name for a path, and os.fdopen's is a number
            with tifffile.TiffWriter(tifffile.FileHandle(self.f, name="output.tif"), byteorder="<") as tif:
                tif.write(self._pulled(), **options)
        except BaseException as exc:  # handed to the pushing thread
            self.error = exc

    def _pulled(self):
        while (item := self.strips.get()) is not _END:
            if item is _ABORT:
                raise RuntimeError("the TIFF write was abandoned")
            yield item

    def _push(self, item: object) -> None:
        while self.thread.is_alive():
            try:
                self.strips.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if self.error is not None:
            raise self.error
        if item is not _END:  # tifffile stops pulling after the last strip, before the end mark
            raise RuntimeError("the TIFF writer stopped before the last strip")

    def _strip(self, rows: np.ndarray) -> None:
        self._push(zlib.compress(np.ascontiguousarray(rows, dtype=self.sample).tobytes(), 6))

    def _finish(self) -> None:
        self._push(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error
        end = self.f.seek(0, 2)
        groups = {k: v for k, v in self.exif.items() if k in _SUB_IFDS}
        if groups:
            end += (end - self.start) % 2  # IFDs start on a word boundary
            self.f.seek(end)
            blob = _serialise(groups, end - self.start)
            self.f.write(blob)
            _point_ifd0_at(self.f, self.start, {tag: value for tag, _, _, value in _entries(blob, end - self.start)})

    def abort(self) -> None:
        if self.thread.is_alive():
            try:
                self.strips.put_nowait(_ABORT)
            except queue.Full:  # it is writing a strip: the queue drains
                self.strips.put(_ABORT)
            self.thread.join()


def _layout(
    height: int, width: int, channels: int, dtype: np.dtype, rows_per_strip: int, icc_profile: bytes | None, exif: dict[int, object]
) -> dict:
    """tifffile's ``write`` arguments, IFD0 EXIF tags included."""
    resolution = (exif.get(282), exif.get(283))
    options: dict = dict(
        shape=(height, width, channels) if channels > 1 else (height, width),
        dtype=dtype,
        photometric="minisblack" if channels <= 2 else "rgb",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib",
        rowsperstrip=rows_per_strip,
        iccprofile=icc_profile or None,
        metadata=None,
        software=False,
    )
    if all(isinstance(r, (int, float, TiffImagePlugin.IFDRational)) for r in resolution):
        options["resolution"] = tuple(float(r) for r in resolution)
        options["resolutionunit"] = _RESOLUTION_UNITS.get(exif.get(296, 2), "INCH")
    plain = {k: v for k, v in exif.items() if k not in _SUB_IFDS and k not in _RESOLUTION_TAGS}
    extratags = [(tag, kind, count, value, True) for tag, kind, count, value in _entries(_serialise(plain, 0), 0)]
    extratags += [(_SUB_IFDS[k], 4, 1, 0, True) for k in exif if k in _SUB_IFDS]  # by name: tifffile drops them by number
    options["extratags"] = extratags
    return options


def _exif_tags(exif: bytes | None) -> dict[int, object]:
    """EXIF's IFD0 tags, sub-IFDs as dicts, without the tags that describe the source's layout."""
    if not exif:
        return {}
    tags = Image.Exif()
    tags.load(exif)
    out: dict[int, object] = {}
    for key in tags:
        if key in _SUB_IFDS:
            if sub := tags.get_ifd(key):
                out[key] = sub
        elif key not in _STRUCTURE_TAGS and key not in TiffTags.TAGS_V2_GROUPS:
            out[key] = tags[key]
    return out


def _serialise(tags: dict[int, object], offset: int) -> bytes:
    """Pillow's little-endian encoding of one IFD (sub-IFDs after it) placed at ``offset``."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for key, value in tags.items():
        ifd[key] = value
    return ifd.tobytes(offset)


def _entries(blob: bytes, offset: int) -> list[tuple[int, int, int, bytes | int]]:
    """(tag, type, count, raw value bytes) of each entry of the IFD ``blob`` placed at ``offset``;
    a sub-IFD pointer's value is its offset instead."""
    (n,) = struct.unpack_from("<H", blob, 0)
    out: list[tuple[int, int, int, bytes | int]] = []
    for i in range(n):
        tag, kind, count, inline = struct.unpack_from("<HHL4s", blob, 2 + 12 * i)
        size = _TYPE_SIZES.get(kind, 1) * count
        if tag in _SUB_IFDS:
            out.append((tag, kind, count, struct.unpack("<L", inline)[0]))
            continue
        where = struct.unpack("<L", inline)[0] - offset
        out.append((tag, kind, count, inline[:size] if size <= 4 else blob[where : where + size]))
    return out


def _point_ifd0_at(f: BinaryIO, start: int, offsets: dict[int, int]) -> None:
    """Set the values of IFD0's entries for ``offsets``' tags (tifffile's placeholders)."""
    f.seek(start + 4)
    (ifd0,) = struct.unpack("<L", f.read(4))
    f.seek(start + ifd0)
    (n,) = struct.unpack("<H", f.read(2))
    entries = f.read(12 * n)
    for i in range(n):
        tag = struct.unpack_from("<H", entries, 12 * i)[0]
        if tag in offsets:
            f.seek(start + ifd0 + 2 + 12 * i + 8)
            f.write(struct.pack("<L", offsets[tag]))
    f.seek(0, 2)


__all__ = ["TIFF_STRIP_BYTES", "TiffWriter", "is_deep", "read_deep"]
