"""The types reading and writing share: a decoded ``Picture``, a ``RowStream`` computed while it
is written, and the integer sample buffers both are quantised into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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

    def produce(self, bits: int, with_alpha: bool, emit: Callable[[int, np.ndarray, np.ndarray | None], None]) -> None:
        """Compute the picture and call ``emit(first_row, colour, alpha)`` for each band, top to
        bottom: uint8/uint16 (``bits``) r×W×C colour and r×W alpha (None unless ``with_alpha``).
        A band starting at row 0 again means the computation started over (an out-of-memory retry).
        Raises ScenestyleError for a failed computation."""
        raise NotImplementedError


@dataclass(frozen=True)
class Picture:
    """A decoded still image plus what is needed to write it back faithfully."""

    # float32 H×W×C, C = 1 (grey) or 3 (RGB), in [0, 1], upright; or uint8/uint16 samples (a
    # sample_buffer, or read_picture(samples=True)); or computed while written
    pixels: np.ndarray | RowStream
    alpha: np.ndarray | None  # H×W, same kind as pixels, or None
    bit_depth: int  # 8 or 16: what the source had; drives the output depth
    icc_profile: bytes | None  # verbatim
    exif: bytes | None  # b"Exif\0\0" + TIFF data, Orientation reset to 1
    source_format: str  # Pillow's name: "JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", ...
    notes: tuple[str, ...] = ()  # things the user should be told
    noise_level: float | None = None  # σ ([0, 1] units) a noise-level denoiser runs this photo at, once decided (engine.tasks)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def streamed(self) -> bool:
        """True when the pixels are a ``RowStream``: writing the picture computes it."""
        return isinstance(self.pixels, RowStream)


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


def unit_float(samples: np.ndarray) -> np.ndarray:
    """Float32 in [0, 1] of float pixels (as they are) or uint8/uint16 samples (÷ 255 / 65535):
    the inverse of ``quantise_into``, for a band or a whole picture."""
    if samples.dtype.kind == "f":
        return samples if samples.dtype == np.float32 else samples.astype(np.float32)
    out = samples.astype(np.float32)
    out /= np.iinfo(samples.dtype).max
    return out


def alpha_kind(alpha: np.ndarray | None) -> str | None:
    """A ``RowStream``'s ``alpha`` for a result that keeps the source's alpha: None, "opaque" or "varies"."""
    if alpha is None:
        return None
    return "opaque" if alpha.min() >= (1 if alpha.dtype.kind == "f" else np.iinfo(alpha.dtype).max) else "varies"


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


__all__ = ["Picture", "RowStream", "alpha_kind", "materialise", "quantise_into", "sample_buffer", "unit_float"]
