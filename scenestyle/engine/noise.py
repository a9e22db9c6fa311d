"""Blind noise-level estimation: the std of the noise a photo carries, in [0, 1] units.

Method: Chen, Zhu and Heng, "An Efficient Statistical Method for Image Noise Level
Estimation", ICCV 2015, run on the photo averaged over 2×2 blocks. Every r×r×C patch of a
clean natural image lies close to a low-dimensional subspace, while white noise of std σ
adds σ² to *every* eigenvalue of the patch covariance. Sorting the eigenvalues in decreasing
order and dropping the largest ones (image structure) until the mean of the rest no longer
exceeds their median leaves the eigenvalues that are noise alone; their mean is σ².

Why half resolution: camera noise is spatially correlated (demosaicing, JPEG) and has little
energy in the finest directions, which are exactly the ones the method reads. On RNI15's
visibly noisy ``Dog.png`` the full-resolution estimate was 1.1 (8-bit units), the 2×2-averaged
one 11.3. Averaging 2×2 blocks halves white noise exactly, so twice the half-resolution
estimate is still σ for white noise; the price is a little more texture read as noise.

Measured on all 68 CBSD68 photos, 8-bit units, white Gaussian noise added in float
(clean photos read | error at σ = 5 | worst error at σ = 15, 25, 50):

- this estimator (half resolution): median 1.0, max 4.7 | median +4 %, max +35 % | 7 %, 2 %, 2 %
- Chen et al. at full resolution:    median 0.5, max 1.2 | median +1 %, max +3 %  | under 1.5 %
- Haar wavelet MAD (Donoho and Johnstone 1994, median |HH| / 0.6745 of the finest diagonal
  band): median 2.2, max 13.3 | median +33 %, max +193 % | 42 %, 21 %, 7 %

Gray photos are read at full resolution: an 8×8 patch of one channel at half resolution holds
too little to tell texture from noise (Set12's clean photos read 6 to 22, σ = 15 read 17 to 26);
at full resolution clean ones read 2 to 8.5 and σ = 15 / 25 / 50 within +13 / +6 / +2 %.
A gray photo stored as RGB (three equal channels) is read as gray.

The wavelet MAD, like Immerkær's 1996 Laplacian-difference filter, reads texture as noise, and
an overestimate makes the denoiser smooth away the texture of clean photos.

Patches are a fixed-seed random sample, so the estimate is deterministic and takes about the
same time (0.1 to 0.3 s measured) for a 0.1 MP and a 25 MP photo.
"""

from __future__ import annotations

import numpy as np

from scenestyle._colour import BT601_LUMA

PATCH = 8  # patch side r (the paper's choice)
# A fixed-σ denoiser (DnCNN-25) run on a photo whose noise is under a third of its σ smooths
# texture it takes for noise: clean photos read 0.5 to 4.7 (8-bit), a third of 25 is 8.3.
FAR_BELOW = 1 / 3
# A gray photo through a colour model carries the same noise in its three channels, so its luma
# holds all of it; a colour model learns σ from independent channel noise, whose BT.601 luma has
# std σ·|(0.299, 0.587, 0.114)| = 0.668σ. Telling it σ / 0.668 = 1.50σ asks for the luma noise the
# photo has (Set12 through ffdnet-color: scenestyle/models/ffdnet-color.md).
GRAY_SIGMA_GAIN = 1 / float(np.linalg.norm(BT601_LUMA))
SAMPLES = 20_000  # patches drawn; 20k and 60k agreed within 1 % on CBSD68
_SEED = 0


def _tail_variance(eigenvalues: np.ndarray) -> float:
    """Chen et al.'s rule on eigenvalues sorted in decreasing order: the mean of the longest
    tail whose mean does not exceed its median."""
    for i in range(len(eigenvalues)):
        tail = eigenvalues[i:]
        tau = tail.mean()
        if np.count_nonzero(tail > tau) >= np.count_nonzero(tail < tau):
            return float(tau)
    return 0.0


def patch_noise_std(arr: np.ndarray, *, patch: int = PATCH, samples: int = SAMPLES) -> float:
    """Chen et al.'s white-noise std of an H×W×C float image, from r×r×C patches (all of them,
    or ``samples`` drawn with a fixed seed when there are more). Images under 2 px on a side read 0."""
    h, w, c = arr.shape
    r = min(patch, h, w)
    # Fewer patches than ~40x their dimension skews the noise eigenvalues (their spread grows with
    # sqrt(d/N)) and the rule then cuts into them: small images use smaller patches, down to 3x3.
    while r > 3 and (h - r + 1) * (w - r + 1) < 40 * r * r * c:
        r -= 1
    if r < 2:  # a single pixel or line: no patch structure to tell noise from content
        return 0.0
    windows = np.lib.stride_tricks.sliding_window_view(arr, (r, r), axis=(0, 1))  # H'×W'×C×r×r view
    ny, nx = windows.shape[:2]
    if ny * nx <= samples:
        x = windows.reshape(ny * nx, -1)
    else:
        rng = np.random.default_rng(_SEED)
        x = windows[rng.integers(0, ny, samples), rng.integers(0, nx, samples)].reshape(samples, -1)
    x = x.astype(np.float32)  # a copy (never the caller's array); float32 products measured equal to float64
    x -= x.mean(axis=0)
    cov = (x.T @ x).astype(np.float64) / len(x)
    eigenvalues = np.linalg.eigvalsh(cov)[::-1]
    return float(np.sqrt(max(_tail_variance(eigenvalues), 0.0)))


def estimate_noise(pixels: np.ndarray) -> float:
    """Estimated noise std of ``pixels`` (H×W or H×W×C floats in [0, 1]) in the same units:
    25/255 ≈ 0.098 is "σ = 25" in 8-bit terms. Colour: twice the white-noise std of the image
    averaged over 2×2 blocks; gray: the std at full resolution (see the module docstring). Below
    about 32×32 px there are too few patches for a reliable answer; under 4 px on a side it is 0."""
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.size == 0:
        raise ValueError(f"estimate_noise needs an H×W or H×W×C image; got shape {np.shape(pixels)}")
    if is_gray(arr):
        arr = arr[..., :1]  # a gray photo stored as RGB: repeated channels would hide the noise (zero eigenvalues)
    if arr.shape[2] == 1:
        return patch_noise_std(arr)  # gray: full resolution (module docstring)
    h, w = arr.shape[0] // 2 * 2, arr.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    half = arr[0:h:2, 0:w:2].astype(np.float32)  # quarter-size buffers only: a 25 MP photo is 300 MB per float copy
    half += arr[0:h:2, 1:w:2]
    half += arr[1:h:2, 0:w:2]
    half += arr[1:h:2, 1:w:2]
    half *= 0.25
    return 2.0 * patch_noise_std(half)


def is_gray(pixels: np.ndarray) -> bool:
    """True for an H×W×1 image, or one whose channels are all equal (a gray photo stored as RGB)."""
    c = pixels.shape[2]
    return c == 1 or all(np.array_equal(pixels[..., 0], pixels[..., i]) for i in range(1, c))


def gray_gain(pixels: np.ndarray, in_channels: int) -> float:
    """Factor on the σ a colour noise-level model is told for ``pixels``: ``GRAY_SIGMA_GAIN`` for a
    gray photo (see there), else 1."""
    return GRAY_SIGMA_GAIN if in_channels == 3 and is_gray(pixels) else 1.0


def gain_note(gain: float) -> str:
    """What a note adds when :func:`gray_gain` scaled σ (nothing when it did not)."""
    return f" x {gain:.2f} (gray photo, colour model)" if gain != 1.0 else ""


def sigma_from_estimate(pixels: np.ndarray, strength: float = 1.0, cap: float | None = None, gain: float = 1.0) -> tuple[float, str]:
    """``strength`` × the estimated noise std of ``pixels`` × ``gain`` (:func:`gray_gain`): a
    noise-level denoiser's σ, [0, 1] units, capped at ``cap`` (the model's trained range: beyond it
    its output is undefined), and a note that says how it was reached."""
    estimate = estimate_noise(pixels)
    level = strength * estimate * gain
    note = f"noise level {level * 255:.2f}/255 = estimate {estimate * 255:.2f} x strength {strength:g}" + gain_note(gain)
    if cap is not None and level > cap:
        level = float(cap)
        note += f", capped at the model's maximum {cap * 255:.3g}"
    return level, note


def fixed_sigma_note(pixels: np.ndarray, sigma: float, strength: float = 1.0) -> str | None:
    """A one-line warning when ``pixels`` carry far less noise than ``sigma`` (both in [0, 1]
    units), the noise a fixed-σ denoiser removes from every photo, of which a blend at
    ``strength`` keeps that share; None when they are comparable."""
    estimate = estimate_noise(pixels)
    if estimate >= FAR_BELOW * sigma * strength:
        return None
    return (
        f"warning: photo noise ~{estimate * 255:.1f}/255 is far below the model's fixed σ {sigma * 255:.3g}/255: "
        "texture may be smoothed away; try --strength 0.5 or an FFDNet model"
    )
