"""What a style's brush strokes are (``Strokes``) and their bounds, without torch.

``engine.strokes`` draws them; ``weights.lock`` checks a style's ``strokes`` table against the same
bounds by building a ``Strokes``, and that module is read by commands that never import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AMOUNT = 64.0  # 8-bit levels: a quarter of the range is already heavy texture
MAX_LENGTH = 64  # pixels of half-length
MAX_CHROMA_MEDIAN = 31  # px: the widest chroma median window
MAX_EDGES = 16.0  # gain of the photo's edges: beyond this contours ring


@dataclass(frozen=True)
class Strokes:
    """How strongly and how long a style's brush strokes are drawn."""

    amount: float  # streak strength, 8-bit levels (0 = none); the streaks' std is about 0.8 of it
    length: int  # half-length of a stroke, pixels of the painted (working-size) image
    chroma_median: int = 0  # odd window (px) of a median over the painting's chroma before the streaks (0 = none)
    edges: float = 0.0  # gain of the photo's edges added back where the painting draws them, before the streaks (0 = none)

    def __post_init__(self) -> None:
        c = self.chroma_median
        if (
            not (math.isfinite(self.amount) and 0 <= self.amount <= MAX_AMOUNT)
            or not 1 <= self.length <= MAX_LENGTH
            or not (c == 0 or (c % 2 == 1 and 3 <= c <= MAX_CHROMA_MEDIAN))
            or not (math.isfinite(self.edges) and 0 <= self.edges <= MAX_EDGES)
        ):
            raise ValueError(
                f"strokes need 0 <= amount <= {MAX_AMOUNT:g} (8-bit levels), 1 <= length <= {MAX_LENGTH} (pixels), "
                f"chroma_median 0 or odd in 3-{MAX_CHROMA_MEDIAN} (pixels) and 0 <= edges <= {MAX_EDGES:g}, got {self}"
            )

    @property
    def acts(self) -> bool:
        """True when drawing these changes a painting: streaks, a chroma median, edges or any mix."""
        return self.amount > 0 or self.chroma_median > 0 or self.edges > 0
