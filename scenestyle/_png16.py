"""Reading 16-bit colour PNG and TIFF, which Pillow lacks (the writers are in ``_writers``).

Pillow has no 16-bit RGB(A) image mode: it opens such files at 8 bits and cannot save
them. Reading reuses Pillow's own decoders twice on the same file, once with an unpacker
that keeps the high byte of every sample and once with one that keeps the low byte (the
filters, interlacing and compression stay Pillow's).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

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


__all__ = ["deep_rawmode", "read_deep"]
