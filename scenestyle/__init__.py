"""scenestyle: turn scene photos into paintings with GANs; upscale and denoise them.

The small public API mirrors the CLI::

    import scenestyle
    report = scenestyle.upscale(["photo.jpg"], out="out/", model="realesr-general-x4v3")
    model = scenestyle.load_model("realesrgan-x4plus")  # LoadedModel(module, meta, name, sha256, ...)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy imports stay lazy so `scenestyle --help` is fast
    from scenestyle.engine.batch import BatchReport
    from scenestyle.loading import LoadedModel

__version__ = "0.1.0"
__all__ = ["load_model", "stylize", "upscale", "denoise", "__version__"]


def load_model(spec: str, *, arch: str | None = None, task: str | None = None, offline: bool = False) -> LoadedModel:
    """Resolve, verify and load weights by lock name, path or ``hf://REPO/FILE[@REV]``."""
    from scenestyle.loading import load_model as _load

    return _load(spec, arch=arch, task=task, offline=offline)


def _process(task: str, inputs: Iterable[str | Path], out: str | Path | None, **options) -> BatchReport:
    from scenestyle.engine.run import RunOptions, process

    opts = RunOptions(inputs=tuple(str(i) for i in inputs), out=Path(out) if out is not None else None, **options)
    return process(task, opts)


def stylize(inputs: Iterable[str | Path], out: str | Path | None = None, **options) -> BatchReport:
    """Stylize photos; ``options`` are RunOptions fields (``model`` = style name, ``weights``, ``strength``...)."""
    return _process("style", inputs, out, **options)


def upscale(inputs: Iterable[str | Path], out: str | Path | None = None, **options) -> BatchReport:
    """Upscale photos; ``options`` are RunOptions fields (``model``, ``scale``, ``outscale``, ``denoise``...)."""
    return _process("upscale", inputs, out, **options)


def denoise(inputs: Iterable[str | Path], out: str | Path | None = None, **options) -> BatchReport:
    """Denoise photos; ``options`` are RunOptions fields (``model``, ``weights``, ``strength``...)."""
    return _process("denoise", inputs, out, **options)
