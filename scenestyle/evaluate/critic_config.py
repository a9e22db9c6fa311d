"""The critic's settings, apart from the torch code so the CLI can show their defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CriticConfig:
    """Everything that shapes a critic; recorded in the report's protocol."""

    crop: int = 128  # crop side in pixels (after the --max-side downscale): big enough to hold brushwork, not only edges
    width: int = 16  # channels of the first conv (then 2×, 2×)
    steps: int = 2000  # Adam steps per critic
    batch: int = 32  # crops per step, half painting, half photo
    lr: float = 2e-3  # Adam learning rate
    folds: int = 8  # cross-fitting folds, split by image: trains on 7/8 of the few paintings (oils, gray: 0.751 at 4, 0.764 at 8)
    eval_crops: int = 32  # crops per image for held-out accuracy and for scores
    lr_schedule: str = "cosine"  # "constant" or "cosine" (to 0 at the last step)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    scale_jitter: float = 0.0  # training crops cover crop*s pixels, s log-uniform in [1/(1+j), 1+j], resized to crop
    rot90: bool = False  # random quarter turns of training crops
    match_sharpness: bool = True  # blur the sharper side (paintings, or photos and every row) to the other's median sharpness
