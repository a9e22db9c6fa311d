"""The band encoders' common shape: a ``RowWriter`` is fed r×W×C sample rows top to bottom
and never holds more than a band, so a big result (a ×4 upscale of 25 MP is 400 MP, 1.2 GB as
8-bit RGB) is encoded while it is computed. The formats are in ``png``, ``tiff`` and ``jpeg``."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np


class RowWriter:
    """Base of the band encoders: ``write`` r×W×C sample rows top to bottom, then ``close``."""

    def __init__(self, f: BinaryIO, height: int, width: int, channels: int, dtype: np.dtype) -> None:
        self.f, self.height, self.width, self.channels, self.dtype = f, height, width, channels, np.dtype(dtype)
        self.rows_written = 0

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (r×W×C of the writer's dtype; any strides)."""
        if rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels) or rows.dtype != self.dtype:
            raise ValueError(
                f"rows of shape {rows.shape} {rows.dtype} do not fit a {self.width}-wide, {self.channels}-channel {self.dtype} image"
            )
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows the image has")
        self._write(rows)
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        """Finish the file; every row must have been written."""
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} of {self.height} rows were written")
        self._close()

    def abort(self) -> None:
        """Stop without finishing the file, which the caller discards."""

    def _write(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


def write_array(writer: RowWriter, samples: np.ndarray, block_bytes: int = 1 << 24) -> None:
    """Feed a whole H×W×C array (possibly a strided view) to ``writer`` in blocks of rows, and close it."""
    row_bytes = max(1, samples.shape[1] * samples.shape[2] * samples.dtype.itemsize)
    step = max(1, block_bytes // row_bytes)
    try:
        for start in range(0, samples.shape[0], step):
            writer.write(samples[start : start + step])
        writer.close()
    except BaseException:
        writer.abort()
        raise


class StripWriter(RowWriter):
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


__all__ = ["RowWriter", "StripWriter", "write_array"]
