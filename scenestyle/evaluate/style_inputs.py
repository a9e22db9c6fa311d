"""What ``eval style`` scores, prepared: the stylizer that runs a model as ``stylize`` does, outputs
from a folder matched to their photos, the images shrunk to the protocol's size, and the crude
posterize baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scenestyle.errors import UsageError
from scenestyle.evaluate._common import to_u8
from scenestyle.image_files import list_images


def match_outputs(photos: list[Path], outputs_dir: Path) -> list[Path]:
    """The output file of each photo: the one file whose stem starts with the photo's stem.

    An output belongs to the photo with the longest matching stem (``img_10_oil`` is img_10's,
    not img_1's). A photo with no output or with several is a usage error.
    """
    outs = list_images(outputs_dir, "--outputs")
    stems = sorted((p.stem for p in photos), key=len, reverse=True)
    owned: dict[str, list[Path]] = {}
    for o in outs:
        owner = next((s for s in stems if o.stem.startswith(s)), None)
        if owner is not None:
            owned.setdefault(owner, []).append(o)
    result = []
    for p in photos:
        got = owned.get(p.stem, [])
        if not got:
            raise UsageError(f"no output for photo {p.name} in {outputs_dir} (looked for {p.stem}*)")
        if len(got) > 1:
            raise UsageError(f"several outputs for photo {p.name} in {outputs_dir} ({got[0].name}, {got[1].name}); keep one per photo")
        result.append(got[0])
    return result


def style_spec(style: str | None, weights: str | None) -> str | None:
    """The weights spec ``stylize`` would use for ``--style NAME`` / ``--weights FILE`` (None when neither)."""
    if style is None and weights is None:
        return None
    from scenestyle.engine.run import RunOptions, _model_spec

    return _model_spec("style", RunOptions(inputs=(), model=style, weights=weights))


def shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 image with its long side at most ``max_side`` (antialiased bicubic), unchanged if smaller."""
    from scenestyle.engine.convert import resize

    h, w = img.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return to_u8(resize(img.astype(np.float32) / 255.0, max(1, round(h * s)), max(1, round(w * s))))


def posterize(img: np.ndarray) -> np.ndarray:
    """The crude 'painting' filter baseline: 3 bits per channel, then a 5x5 mode filter (Pillow)."""
    from PIL import Image, ImageFilter, ImageOps

    return np.asarray(ImageOps.posterize(Image.fromarray(img), 3).filter(ImageFilter.ModeFilter(5)))


def stylizer(spec: str, arch: str | None, device: str, precision: str, backend: str, tile: int | None, offline: bool):
    """(function uint8 → uint8 running the style model as ``stylize`` does, model info)."""
    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.run import WORK_PIXELS, style_strokes
    from scenestyle.engine.tasks import NEVER, Processor
    from scenestyle.imaging import Picture
    from scenestyle.loading import load_model

    loaded = load_model(spec, arch=arch, task="style", offline=offline)
    placement = choose_placement(device, precision, model=loaded.module, meta=loaded.meta, backend=backend)
    proc = Processor(
        model=prepare(loaded.module, loaded.meta, placement),
        meta=loaded.meta,
        placement=placement,
        task="style",
        tile=tile,
        stream_pixels=NEVER,  # the scores need the result as an array, whatever its size
        work_pixels=WORK_PIXELS,
        strokes=style_strokes(loaded.meta, None),
    )  # as `stylize` runs it

    def run(img: np.ndarray) -> np.ndarray:
        pic = Picture(pixels=img.astype(np.float32) / 255.0, alpha=None, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
        out = proc(pic).pixels
        return out if out.dtype == np.uint8 else to_u8(out)  # a photo over the working size comes back quantised

    info = {"name": loaded.name, "arch": loaded.arch, "sha256": loaded.sha256, "path": str(loaded.path), "placement": placement.as_dict()}
    return run, info
