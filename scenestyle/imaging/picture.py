"""The types reading and writing share: a decoded ``Picture``, and the integer sample buffers
results are quantised into."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Picture:
    """A decoded still image plus what is needed to write it back faithfully."""

    # float32 H×W×C, C = 1 (grey) or 3 (RGB), in [0, 1], upright; or uint8/uint16 samples (a
    # sample_buffer, or read_picture(samples=True))
    pixels: np.ndarray
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


def sample_buffer(height: int, width: int, channels: int, alpha: bool, bits: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Zeroed uint8/uint16 ``(pixels, alpha)`` views for a Picture filled with quantised samples
    (``quantise_into``), which ``write_picture`` encodes without any full-size copy.

    Both are views of one H×W×K buffer: colour then alpha. 8-bit RGB without alpha gets a
    fourth, unused channel (RGBX), the layout Pillow's JPEG encoder reads in place.
    """
    k = channels + alpha + (bits == 8 and channels == 3 and not alpha)
    buf = np.zeros((height, width, k), dtype=np.uint16 if bits == 16 else np.uint8)
    return buf[..., :channels], (buf[..., channels] if alpha else None)


class SampleBands:
    """A ``sample_buffer`` filled band by band: ``write(first_row, colour, alpha)`` as a band writer
    takes them (a band at row 0 again overwrites, as a restarted computation does)."""

    def __init__(self, shape: tuple[int, int, int], bits: int, with_alpha: bool) -> None:
        self.bits, self.with_alpha = bits, with_alpha
        self.pixels, self.alpha = sample_buffer(*shape, with_alpha, bits)

    def write(self, row: int, colour: np.ndarray, alpha: np.ndarray | None) -> None:
        self.pixels[row : row + colour.shape[0]] = colour
        if self.alpha is not None:
            self.alpha[row : row + colour.shape[0]] = alpha


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
    """What a result that keeps the source's ``alpha`` will have: None, "opaque" or "varies" (``band_writer``)."""
    if alpha is None:
        return None
    return "opaque" if alpha.min() >= (1 if alpha.dtype.kind == "f" else np.iinfo(alpha.dtype).max) else "varies"


__all__ = ["Picture", "SampleBands", "alpha_kind", "quantise_into", "sample_buffer", "unit_float"]
