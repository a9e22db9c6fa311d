"""Evaluation engines behind ``scenestyle eval``: plain typed arguments in, frozen report records out.

Nothing here prints or exits; the CLI (``scenestyle.cli.eval``) renders the reports.
"""

from .denoise import evaluate_denoise
from .report import EvalReport, ImageScore
from .sr import evaluate_sr
from .style import StyleReport, evaluate_style

__all__ = ["EvalReport", "ImageScore", "evaluate_sr", "evaluate_denoise", "StyleReport", "evaluate_style"]
