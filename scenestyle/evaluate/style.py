"""``eval style``: weight-free style measures of stylized photos against a folder of paintings.

Four rows are scored the same way — the stylized outputs (from a model or a folder), the
untouched photos, a colour-transfer baseline (Reinhard, Lab mean/std of the paintings) and a crude
posterize + mode-filter baseline — so that a result which only copies the palette or flattens
the photo is seen to do no better than a baseline:

* SWD ×1e3 per Laplacian-pyramid level against the paintings (coarse: colour, fine: texture);
* the share of crops a cross-fitted critic calls "painting", in an RGB and a colour-blind
  variant (``scenestyle.evaluate.critic``);
* structure preservation: SSIM of blurred luma against the photo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from scenestyle.cache import cache_root
from scenestyle.errors import UsageError
from scenestyle.evaluate import critic as C
from scenestyle.evaluate._common import read_u8, to_u8
from scenestyle.evaluate.report import versions
from scenestyle.evaluate.style_inputs import match_outputs, posterize, shrink, stylizer
from scenestyle.image_files import list_images
from scenestyle.metrics import swd as S
from scenestyle.metrics.colour import colour_transfer, lab_stats
from scenestyle.metrics.structure import structure_ssim

STYLIZED, PHOTOS, TRANSFER = "stylized", "photos (untouched)", "colour transfer (Lab)"
POSTER = "posterize + mode filter"  # a crude filter a style must beat: 3-bit levels, 5x5 mode filter
WEAK_CRITIC = 0.75  # below this held-out accuracy the report warns that the critic's shares are noisy
Progress = Callable[[str, int, int], None]  # (stage, done, total)
Panels = Callable[[str, Mapping[str, np.ndarray]], None]  # (photo name, row name → uint8 image)


@dataclass(frozen=True)
class StyleRow:
    """One set's scores against the paintings."""

    name: str
    images: int
    swd: tuple[float, ...]  # ×1e3 per pyramid level, finest first
    swd_mean: float
    critic_rgb: float  # share of crops the RGB critic calls painting
    critic_gray: float  # same for the colour-blind critic
    structure_ssim: float  # mean over images


@dataclass(frozen=True)
class ImageStyle:
    """Per-image scores of one row; ``crop`` is the (y, x) corner of its most painting-like crop."""

    name: str
    row: str
    critic_rgb: float
    critic_gray: float
    structure_ssim: float
    crop: tuple[int, int]


@dataclass(frozen=True)
class StyleReport:
    """Rows, critic held-out accuracies, per-image scores, and what reproduces them."""

    photos: str
    paintings: str
    rows: tuple[StyleRow, ...]
    levels: tuple[str, ...]  # pyramid level labels, finest first ("1/1", "1/2", ...)
    critic_accuracy: Mapping[str, Mapping[str, float]]  # variant → balanced, paintings, photos
    images: tuple[ImageStyle, ...]
    protocol: Mapping[str, Any]
    model: Mapping[str, Any]
    seed: int
    notes: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(versions()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "kind": "style",
            "photos": self.photos,
            "paintings": self.paintings,
            "model": dict(self.model),
            "protocol": dict(self.protocol),
            "seed": self.seed,
            "notes": list(self.notes),
            "versions": dict(self.versions),
            "levels": list(self.levels),
            "critic_accuracy": {k: dict(v) for k, v in self.critic_accuracy.items()},
            "rows": [{**asdict(r), "swd": dict(zip(self.levels, r.swd))} for r in self.rows],
            "images": [{**asdict(i), "crop": list(i.crop)} for i in self.images],
        }


def _match_sharpness(paintings, rows, cfg: C.CriticConfig):
    """(paintings, rows, record): with ``cfg.match_sharpness`` the sharper side is blurred until its median
    sharpness equals the other's: the paintings, or the photos and every row made from them alike."""
    prof = {"paintings": [C.sharpness_profile(p) for p in paintings], "photos": [C.sharpness_profile(p) for p in rows[PHOTOS]]}
    before = {k: float(np.median([C.sharpness(p) for p in v])) for k, v in prof.items()}
    side = max(before, key=before.get)
    other = "photos" if side == "paintings" else "paintings"
    sigma = C.matching_blur(prof[side], before[other]) if cfg.match_sharpness else 0.0
    after = {**before, side: float(np.median([C.sharpness(p, sigma) for p in prof[side]]))}
    if sigma > 0 and side == "paintings":
        paintings = [C.blur(p, sigma) for p in paintings]
    elif sigma > 0:
        rows = {name: [C.blur(im, sigma) for im in imgs] for name, imgs in rows.items()}
    record = {
        "paintings": round(before["paintings"], 3),
        "photos": round(before["photos"], 3),
        "blurred": side if sigma > 0 else "none",
        "sigma_px": round(sigma, 3),
        "after": {k: round(v, 3) for k, v in after.items()},
    }
    return paintings, rows, record


def critic_cache_dir() -> Path:
    """Where trained critics are kept: ``critics`` under scenestyle's cache (``scenestyle.cache.cache_root``)."""
    return cache_root() / "critics"


def _critic_scores(paintings, photos, rows, cfg: C.CriticConfig, seed: int, progress: Progress | None, cache: Path | None):
    """Cross-fitted critics: per variant the held-out accuracies and, per row, per-image (share, best crop).

    ``photos`` must be ``rows[PHOTOS]``; the record of the sharpness matching is returned third, the
    number of critics read from ``cache`` fourth."""
    paintings, rows, sharp = _match_sharpness(paintings, rows, cfg)
    photos = rows[PHOTOS]
    fold_photo = C.fold_of(len(photos), cfg.folds, np.random.default_rng([seed, 5]))
    fold_paint = C.fold_of(len(paintings), cfg.folds, np.random.default_rng([seed, 6]))
    # one set of crop positions per photo, used for every row made from it: a paired comparison
    pos = [C.crop_positions(p.shape, cfg.eval_crops, cfg.crop, np.random.default_rng([seed, 2, i])) for i, p in enumerate(photos)]
    pos_paint = [C.crop_positions(p.shape, cfg.eval_crops, cfg.crop, np.random.default_rng([seed, 4, j])) for j, p in enumerate(paintings)]
    accuracy, scores, reused = {}, {name: [[None, None, None] for _ in photos] for name in rows}, 0
    for v, variant in enumerate(C.VARIANTS):
        paint_hits, photo_hits = [], []
        for k in range(cfg.folds):
            stage = f"critic {variant} {k + 1}/{cfg.folds}"
            net, hit = C.cached_critic(
                [p for p, f in zip(paintings, fold_paint) if f != k],
                [p for p, f in zip(photos, fold_photo) if f != k],
                variant,
                cfg,
                seed=int(np.random.default_rng([seed, v, k]).integers(2**31)),
                cache=cache,
                progress=(lambda d, t, s=stage: progress(s, d, t)) if progress else None,
            )
            reused += hit
            for j in np.flatnonzero(fold_paint == k):
                paint_hits.append(C.logits(net, C.to_input(C.crops_at(paintings[j], pos_paint[j], cfg.crop), variant)) > 0)
            for i in np.flatnonzero(fold_photo == k):
                for name, imgs in rows.items():
                    z = C.logits(net, C.to_input(C.crops_at(imgs[i], pos[i], cfg.crop), variant))
                    if name == PHOTOS:
                        photo_hits.append(z <= 0)
                    scores[name][i][v] = float(np.mean(z > 0))
                    if variant == "gray":
                        scores[name][i][2] = tuple(int(c) for c in pos[i][int(np.argmax(z))])
        a_paint, a_photo = float(np.mean(np.concatenate(paint_hits))), float(np.mean(np.concatenate(photo_hits)))
        accuracy[variant] = MappingProxyType({"balanced": (a_paint + a_photo) / 2, "paintings": a_paint, "photos": a_photo})
    return accuracy, scores, sharp, reused


def evaluate_style(
    photos_dir: Path,
    paintings_dir: Path,
    *,
    outputs_dir: Path | None = None,
    model_spec: str | None = None,
    arch: str | None = None,
    seed: int = 0,
    max_side: int = 512,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",  # auto | torch | openvino (engine/device.py: choose_placement)
    tile: int | None = 0,
    offline: bool = False,
    critic: C.CriticConfig = C.CriticConfig(),
    descriptors_per_image: int = S.NHOODS_PER_IMAGE,
    min_res: int = S.MIN_RES,
    normalize: str = "pooled",
    blur_sigma: float = 2.0,
    use_cache: bool = True,
    on_progress: Progress | None = None,
    on_panels: Panels | None = None,
) -> StyleReport:
    """Score stylized photos (``model_spec`` run in memory, or ``outputs_dir`` matched by stem) and the baselines.

    With neither, only the baseline rows are scored. Critics are kept in ``critic_cache_dir()`` (unless
    ``use_cache`` is False) keyed by their exact inputs, so scoring another model of the same style
    against the same photos and paintings trains none. ``on_panels(name, images)`` receives each
    photo's row images (uint8, after the ``max_side`` downscale) for a contact sheet.
    """
    if outputs_dir is not None and model_spec is not None:
        raise UsageError("give either a model (--style/--weights) or --outputs DIR, not both")
    if max_side < 0:
        raise UsageError(f"--max-side must be 0 (no downscale) or a size in pixels, not {max_side}")
    if critic.folds < 2:
        raise UsageError(f"the critic needs at least 2 folds to hold images out, not {critic.folds}")
    photo_paths = list_images(Path(photos_dir), "--photos")
    paint_paths = list_images(Path(paintings_dir), "--paintings")
    if (fewest := min(len(photo_paths), len(paint_paths))) < critic.folds:
        raise UsageError(
            f"eval style needs at least {critic.folds} photos and {critic.folds} paintings "
            f"(got {len(photo_paths)} and {len(paint_paths)}): the critic holds images out"
            + (f"; --critic-folds 2 to {fewest} needs fewer" if fewest >= 2 else "")
        )
    out_paths = match_outputs(photo_paths, Path(outputs_dir)) if outputs_dir is not None else None
    step = on_progress or (lambda stage, done, total: None)

    stylize, model_info = None, {}
    if model_spec is not None:
        stylize, model_info = stylizer(model_spec, arch, device, precision, backend, tile, offline)
    elif outputs_dir is not None:
        model_info = {"outputs": str(outputs_dir)}

    total, reading = len(photo_paths) + len(paint_paths), "reading" + (" and stylizing" if stylize else "")
    photos, paintings, stylized = [], [], []
    for i, p in enumerate(photo_paths):
        full = read_u8(p, "rgb")
        photos.append(shrink(full, max_side))
        if out_paths is not None:
            o = read_u8(out_paths[i], "rgb")
            if o.shape != full.shape:
                raise UsageError(
                    f"output {out_paths[i].name} is {o.shape[1]}×{o.shape[0]} but photo {p.name} is "
                    f"{full.shape[1]}×{full.shape[0]}; eval style compares each output with its photo"
                )
            stylized.append(shrink(o, max_side))
        elif stylize is not None:  # the photo as a user gives it, then shrunk like the others
            stylized.append(shrink(stylize(full), max_side))
            if stylized[-1].shape != photos[-1].shape:
                raise UsageError(
                    f"the model turned {p.name} ({photos[-1].shape[1]}×{photos[-1].shape[0]}) into "
                    f"{stylized[-1].shape[1]}×{stylized[-1].shape[0]}; eval style needs same-size outputs"
                )
        step(reading, i + 1, total)
    for j, p in enumerate(paint_paths):
        paintings.append(shrink(read_u8(p, "rgb"), max_side))
        step(reading, len(photo_paths) + j + 1, total)

    target = lab_stats(paintings)
    transfer = []
    for i, p in enumerate(photos):
        transfer.append(to_u8(colour_transfer(p, target)))
        step("colour transfer", i + 1, len(photos))
    rows = {STYLIZED: stylized} if stylized else {}
    rows.update({PHOTOS: photos, TRANSFER: transfer, POSTER: [posterize(p) for p in photos]})

    try:
        levels = S.count_levels([im.shape for im in photos + paintings], min_res=min_res)
        if critic.crop > min(min(im.shape[:2]) for im in photos + paintings):
            raise ValueError(f"every image needs a short side of at least the {critic.crop}-pixel critic crop (after --max-side)")
    except ValueError as exc:
        raise UsageError(f"{exc}") from None
    ref = S.set_descriptors(paintings, levels, seed=seed, nhoods_per_image=descriptors_per_image)
    swds = {}
    for n, (name, imgs) in enumerate(rows.items()):
        desc = S.set_descriptors(imgs, levels, seed=seed, nhoods_per_image=descriptors_per_image)
        swds[name] = S.swd(desc, ref, seed=seed, normalize=normalize)
        step("SWD", n + 1, len(rows))

    cache = critic_cache_dir() if use_cache else None
    accuracy, critic_scores, sharp, reused = _critic_scores(paintings, photos, rows, critic, seed, on_progress, cache)

    images, table = [], []
    for name, imgs in rows.items():
        per = []
        for i, p in enumerate(photo_paths):
            rgb, gray, crop = critic_scores[name][i]
            per.append(ImageStyle(p.name, name, rgb, gray, structure_ssim(photos[i], imgs[i], blur_sigma), crop))
        images += per
        table.append(
            StyleRow(
                name,
                len(imgs),
                swds[name].levels,
                swds[name].mean,
                float(np.mean([s.critic_rgb for s in per])),
                float(np.mean([s.critic_gray for s in per])),
                float(np.mean([s.structure_ssim for s in per])),
            )
        )
    if on_panels:
        for i, p in enumerate(photo_paths):
            on_panels(p.name, {name: imgs[i] for name, imgs in ((PHOTOS, photos), (TRANSFER, transfer), (STYLIZED, stylized)) if imgs})

    notes = [
        f"critic {v}: held-out accuracy {a['balanced']:.2f} is below {WEAK_CRITIC}; it tells these paintings from these photos "
        "only weakly, so read its shares as noisy"
        for v, a in accuracy.items()
        if a["balanced"] < WEAK_CRITIC
    ]
    if not stylized:
        notes.append("no stylized source given: baselines only")
    protocol = {
        "max_side": max_side,
        "resize": "antialiased bicubic (torch), long side to max_side, before everything else",
        "swd": (
            f"Karras et al. 2018 Laplacian pyramid, {levels} levels down to >= {min_res} px, {S.NHOOD_SIZE}x{S.NHOOD_SIZE} "
            f"neighbourhoods, {descriptors_per_image} per image and level, {S.DIR_REPEATS}x{S.DIRS_PER_REPEAT} directions, x1e3, "
            f"descriptors normalised per channel ({normalize}), exact 1-D W1 for unequal counts, images cropped to a multiple of "
            f"{2 ** (levels - 1)}"
        ),
        "critic": {
            **asdict(critic),
            "variants": "rgb; gray = BT.601 luma standardised per crop",
            "split": "by image, cross-fitted: each photo (and what was made from it) judged by the critic that held it out",
            "sharpness": sharp,
            "from_cache": f"{reused} of {len(C.VARIANTS) * critic.folds}",
        },
        "structure": f"SSIM (BasicSR window) of BT.601 luma blurred with a Gaussian sigma {blur_sigma} px, output vs photo",
        "colour_transfer": "Reinhard et al. 2001 in CIELAB (sRGB D65): per-channel mean/std of all painting pixels, clipped",
        "posterize": "Pillow ImageOps.posterize(3 bits) then ImageFilter.ModeFilter(5), on the shrunk photo",
        "photos": len(photos),
        "paintings": len(paintings),
        "stylized": "model in memory, on the full photo as `stylize` runs it, then shrunk"
        if stylize
        else (f"files from {outputs_dir}" if stylized else "none"),
        "precision": precision if stylize else None,
        "backend": backend if stylize else None,
        "tile": tile if stylize else None,
    }
    return StyleReport(
        photos=str(photos_dir),
        paintings=str(paintings_dir),
        rows=tuple(table),
        levels=tuple(f"1/{2**k}" for k in range(levels)),
        critic_accuracy=MappingProxyType(accuracy),
        images=tuple(images),
        protocol=MappingProxyType(protocol),
        model=MappingProxyType(model_info),
        seed=seed,
        notes=tuple(notes),
    )
