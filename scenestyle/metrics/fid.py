"""FID, KID and Inception Score from Inception features, and the feature extractor itself.

Formulas follow pytorch-fid (``calculate_frechet_distance``), torch-fidelity / clean-fid (KID:
unbiased MMD² with the cubic polynomial kernel over random subsets) and the original Inception
Score (exp of the mean KL between p(y|x) and p(y), over splits).

Resize modes (reported with every figure, since they move FID by whole points):
  "clean"  — each image resized to 299×299 with PIL bicubic per channel in float (clean-fid);
  "legacy" — uint8 image to the network, resized there bilinearly (torch, align_corners=False),
             as pytorch-fid does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "MODES",
    "frechet_distance",
    "feature_stats",
    "kid",
    "inception_score",
    "load_fid_inception",
    "preprocess",
    "extract",
]

MODES = ("clean", "legacy")


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D) and covariance (D×D, ``np.cov`` with N-1) of N×D features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N×D), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(S1·S2)) for covariance matrices, through symmetric eigendecompositions:
    sqrt(S1·S2) is similar to sqrt(A·S2·A) with A = sqrt(S1), which is symmetric PSD, so its trace is
    the sum of the square roots of that matrix's eigenvalues (tiny negative round-off clipped to 0).
    numpy only, and stabler than a general matrix square root."""
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ sigma2 @ root1
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖mu1 − mu2‖² + Tr(S1 + S2 − 2·sqrt(S1·S2)), the Fréchet distance of pytorch-fid."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2))


def kid(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std over ``subsets`` of the unbiased MMD² with k(x, y) = (x·y/d + 1)³."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    n = min(len(f1), len(f2))
    if subset_size < 2 or subset_size > n:
        raise ValueError(f"KID subset size must be between 2 and the smaller set's size {n}, got {subset_size}")
    d = f1.shape[1]
    rng = np.random.RandomState(seed)
    m = subset_size
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        mmds[i] = ((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m
    return float(mmds.mean()), float(mmds.std())


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score mean and std over ``splits`` equal consecutive chunks of the N×K logits."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) < splits:
        raise ValueError(f"need at least {splits} logit rows (N×K) for {splits} splits, got shape {z.shape}")
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    scores = []
    for part_p, part_logp in zip(np.array_split(p, splits), np.array_split(logp, splits)):
        log_py = np.log(part_p.mean(axis=0))
        kl = (part_p * (part_logp - log_py)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


# ------------------------------------------------------------------------- feature extraction


def load_fid_inception(spec: str = "inception-fid", *, offline: bool = False):
    """The FID Inception (``InceptionV3FID``) with every weight of ``spec`` loaded strictly; returns (module, sha256).

    BatchNorm ``num_batches_tracked`` counters are the one thing allowed to be absent from the file
    (they do not affect eval-mode outputs and older checkpoints lack them).
    """
    import torch

    from scenestyle.errors import WeightsError
    from scenestyle.loading import read_state_dict
    from scenestyle.nn.inception import InceptionV3FID
    from scenestyle.weights import resolve

    try:
        rw = resolve(spec, offline=offline, task="eval")
    except WeightsError as exc:
        if spec == "inception-fid" and "weights pull" not in str(exc) and "weights add" not in str(exc):  # no advice yet
            raise WeightsError(
                f"the FID Inception weights are not available ({exc}); get them with `scenestyle weights pull inception-fid`"
            ) from None
        raise
    sd = read_state_dict(rw.path, rw.entry.state_dict_key if rw.entry else None)
    model = InceptionV3FID(num_classes=sd["fc.weight"].shape[0] if "fc.weight" in sd else 1008)
    own = model.state_dict()
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise WeightsError(
            f"{rw.path.name} is not an FID Inception checkpoint: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(bad)} of other shape {bad[:3]}"
        )
    model.load_state_dict(sd, strict=True)
    return model.eval().requires_grad_(False), rw.sha256


def preprocess(rgb_u8: np.ndarray, mode: str) -> np.ndarray:
    """H×W×3 uint8 → float32 3×H'×W' in [0, 1] for the network: 299×299 for "clean", unchanged for "legacy"."""
    if mode not in MODES:
        raise ValueError(f"FID mode must be one of {', '.join(MODES)}, not {mode!r}")
    a = np.asarray(rgb_u8)
    if mode == "clean":
        from PIL import Image

        chans = [np.asarray(Image.fromarray(a[..., c].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC)) for c in range(3)]
        a = np.clip(np.stack(chans, axis=2), 0, 255)
    return (a.astype(np.float32) / 255.0).transpose(2, 0, 1)


def extract(
    model, images: Sequence[np.ndarray], mode: str = "clean", batch_size: int = 16, device: str = "cpu", progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """Pool3 features (N×2048 float64) and logits (N×K) of uint8 RGB images; "legacy" runs one image per batch unless sizes match."""
    import torch

    feats, logits = [], []
    model = model.to(device)
    i = 0
    while i < len(images):
        batch = [preprocess(images[i], mode)]
        while len(batch) < batch_size and i + len(batch) < len(images):
            nxt = preprocess(images[i + len(batch)], mode)
            if nxt.shape != batch[0].shape:
                break
            batch.append(nxt)
        with torch.inference_mode():
            f, z = model.features_and_logits(torch.from_numpy(np.stack(batch)).to(device))
        feats.append(f.double().cpu().numpy())
        logits.append(z.double().cpu().numpy())
        i += len(batch)
        if progress:
            progress(i, len(images))
    return np.concatenate(feats), np.concatenate(logits)


def folder_key(paths: Sequence[Path]) -> str:
    """A short hash of a folder's file list (names, sizes, mtimes): changes when any image changes."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
