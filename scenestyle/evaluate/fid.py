"""FID (and optionally KID, IS) between two image folders, with per-folder feature caching."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from scenestyle.cache import cache_root
from scenestyle.errors import UsageError
from scenestyle.evaluate._common import read_u8
from scenestyle.evaluate.report import versions
from scenestyle.image_files import list_images
from scenestyle.metrics import fid as F


@dataclass(frozen=True)
class FIDReport:
    """FID between folders A and B; KID (mean, std) and IS of each folder when asked for."""

    dir_a: str
    dir_b: str
    count_a: int
    count_b: int
    fid: float
    mode: str
    model_sha256: str
    kid: tuple[float, float] | None = None
    kid_subset_size: int | None = None
    inception_score: Mapping[str, tuple[float, float]] | None = None
    cached: tuple[bool, bool] = (False, False)
    versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(versions()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "kind": "fid",
            "dir_a": self.dir_a,
            "dir_b": self.dir_b,
            "count_a": self.count_a,
            "count_b": self.count_b,
            "fid": self.fid,
            "kid": list(self.kid) if self.kid else None,
            "kid_subset_size": self.kid_subset_size,
            "inception_score": {k: list(v) for k, v in self.inception_score.items()} if self.inception_score else None,
            "protocol": {
                "mode": self.mode,
                "resize": _MODE_TEXT[self.mode],
                "features": "pool3 2048-d, pytorch-fid Inception (TF 2015-12-05)",
            },
            "model": {"name": "inception-fid", "sha256": self.model_sha256},
            "cached": list(self.cached),
            "versions": dict(self.versions),
        }


_MODE_TEXT = {
    "clean": "PIL bicubic to 299x299 per channel in float (clean-fid 'clean')",
    "legacy": "torch bilinear to 299x299 inside the network, align_corners=False (pytorch-fid)",
}


def cache_dir() -> Path:
    """Where folder features are cached: ``fid`` under scenestyle's cache (``scenestyle.cache.cache_root``)."""
    return cache_root() / "fid"


def folder_features(
    folder: Path, model, sha256: str, mode: str, *, use_cache: bool = True, device: str = "cpu", batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(features, logits, came_from_cache) of every image in ``folder``; cached per folder content + model sha256 + mode."""
    paths = list_images(folder, "image")
    path = cache_dir() / f"{F.folder_key(paths)}-{sha256[:16]}-{mode}.npz"
    if use_cache and path.is_file():
        with np.load(path) as z:
            return z["features"], z["logits"], True
    feats, logits = F.extract(model, [read_u8(p, "rgb") for p in paths], mode, batch_size=batch_size, device=device)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, features=feats, logits=logits)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return feats, logits, False


def evaluate_fid(
    dir_a: Path,
    dir_b: Path,
    *,
    mode: str = "clean",
    with_kid: bool = False,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    with_is: bool = False,
    is_splits: int = 10,
    weights: str = "inception-fid",
    offline: bool = False,
    use_cache: bool = True,
    device: str = "cpu",
    model_and_sha=None,
) -> FIDReport:
    """FID between the images of two folders (each needs >= 2 images); ``model_and_sha`` injects a loaded extractor."""
    if mode not in F.MODES:
        raise UsageError(f"--mode must be one of {', '.join(F.MODES)}, not {mode!r}")
    # fail on bad folders before loading weights
    list_images(dir_a, "DIR_A")
    list_images(dir_b, "DIR_B")
    model, sha = model_and_sha or F.load_fid_inception(weights, offline=offline)
    fa, la, ca = folder_features(Path(dir_a), model, sha, mode, use_cache=use_cache, device=device)
    fb, lb, cb = folder_features(Path(dir_b), model, sha, mode, use_cache=use_cache, device=device)
    if min(len(fa), len(fb)) < 2:
        raise UsageError(f"FID needs at least 2 images per folder ({dir_a}: {len(fa)}, {dir_b}: {len(fb)})")
    fid = F.frechet_distance(*F.feature_stats(fa), *F.feature_stats(fb))
    kid_val = subset = None
    if with_kid:
        subset = min(kid_subset_size, len(fa), len(fb))  # stated in the report
        kid_val = F.kid(fa, fb, subsets=kid_subsets, subset_size=subset)
    is_val = None
    if with_is:
        splits = max(1, min(is_splits, len(la), len(lb)))
        is_val = MappingProxyType({"a": F.inception_score(la, splits), "b": F.inception_score(lb, splits)})
    return FIDReport(str(dir_a), str(dir_b), len(fa), len(fb), fid, mode, sha, kid_val, subset, is_val, (ca, cb))
