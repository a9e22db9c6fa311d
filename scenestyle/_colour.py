"""Colour constants shared by the networks, engines, metrics and trainers (no scenestyle imports)."""

from __future__ import annotations

# ITU-R BT.601 luma weights of R, G, B (full range). They sum to 1, so grey stays grey.
BT601_LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)
