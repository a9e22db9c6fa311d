"""Training config schemas: one frozen dataclass per section, one root per trainer.

``CycleGANConfig`` is ``scenestyle train cyclegan``: ``[data]`` (two unpaired folders), ``[model]``,
``[gan]``, ``[optim]``, ``[train]``. ``SRGANConfig`` and ``DenoiseConfig`` are ``train srgan`` and
``train denoise``, which learn a generator from clean photos whose degraded inputs are made on the
fly: ``[data]`` (the photo folder, crops), ``[degradation]`` (srgan: bicubic or Real-ESRGAN) or
``[noise]`` (denoise: the synthetic noise kinds and their ranges), ``[model]``, ``[loss]``,
``[optim]`` and ``[train]``. Every trainer shares the ``[optim]`` and ``[train]`` classes, with its own
defaults. The comment on a field is its documentation. Each root is registered with its validator;
``config.py`` loads, overrides, writes and hashes them (``load_config(path, overrides, root=...)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from scenestyle.errors import UsageError
from scenestyle.train.config import register_root

GanLoss = Literal["vanilla", "lsgan", "wgan-gp", "hinge"]
LrPolicy = Literal["linear", "step", "cosine", "plateau"]
Amp = Literal["auto", "bf16", "fp16", "none"]
Norm = Literal["instance", "batch", "none"]

STYLE_GENERATORS = (
    "resnet_9blocks",
    "resnet_6blocks",
    "ResnetGenerator",
    "unet_128",
    "unet_256",
    "UnetGenerator",
    "CompactGenerator",
    "compact_generator",
)
DISCRIMINATORS = ("NLayerDiscriminator", "PixelDiscriminator")


@dataclass(frozen=True)
class DataConfig:
    """Where the two unpaired image domains are and how crops are drawn from them."""

    a: str = ""  # folder of domain A images (photos), searched recursively
    b: str = ""  # folder of domain B images (paintings), searched recursively
    crop: int = 256  # square training crop in pixels; a multiple of the generator's size_multiple
    scale_jitter: tuple[float, float] = (
        1.0,
        1.5,
    )  # short side resized to crop * U(lo, hi) before the crop (with work_pixels: the side scaled by U(lo, hi))
    work_pixels: int = 0  # > 0: images resized to about this many pixels before the crop (stylize's --work-size)
    effective_pixels: int = (
        0  # > 0 (with work_pixels): larger images first shrunk to this many pixels, one level of detail for both domains
    )
    hflip: bool = True  # random horizontal flips
    vflip: bool = False  # random vertical flips (wrong for scenes with a sky; off by default)
    workers: int = 2  # DataLoader worker processes; 0 loads in the training process
    seed: int = 0  # seeds model init, the data stream and every RNG of the run


@dataclass(frozen=True)
class ModelConfig:
    """Which registered networks to train (see ``scenestyle.nn.list_archs()``)."""

    generator: str = "resnet_9blocks"  # one of STYLE_GENERATORS
    generator_kwargs: dict = field(default_factory=dict)  # constructor kwargs of the generator, e.g. {ngf = 64}
    discriminator: str = "NLayerDiscriminator"  # one of DISCRIMINATORS (PatchGAN 70x70 or per-pixel)
    discriminator_kwargs: dict = field(default_factory=dict)  # constructor kwargs of D, e.g. {ndf = 64, n_layers = 3}
    norm: Norm = "instance"  # norm layer of G and D (passed as their `norm` kwarg)
    discriminator_norm: Literal["same", "instance", "batch", "none"] = "same"  # norm of D ("same" = model.norm); D is not used at inference
    spectral_norm: bool = False  # spectral normalisation on every conv of D
    generator_init: Literal["normal", "kaiming"] = "normal"  # normal: N(0, 0.02) as upstream; kaiming: fan-in scaled, for norm = "none"


@dataclass(frozen=True)
class GanConfig:
    """Losses of the CycleGAN objective (Zhu et al. 2017)."""

    loss: GanLoss = "lsgan"  # adversarial loss; lsgan is the CycleGAN default
    gp_weight: float = 10.0  # gradient-penalty weight (wgan-gp only)
    lambda_cycle: float = 10.0  # weight of the L1 cycle losses A->B->A and B->A->B
    lambda_identity: float = 0.5  # identity loss weight, relative to lambda_cycle (upstream convention)
    lambda_content: float = 1.0  # one_direction only: L1 between content_pool-x-average-pooled a and G_AB(a) (colours)
    content_pool: int = 4  # one_direction only: average-pool factor of the content term (larger = only the scene's palette)
    lambda_structure: float = 0.0  # one_direction only: 1 - correlation of a's and G_AB(a)'s luminance, 4x-pooled (edges, not tones)
    lambda_chroma: float = 0.0  # one_direction only: L1 between chroma_pool-x-pooled chroma (RGB less luma) of a and G_AB(a)
    chroma_pool: int = 4  # one_direction only: pool factor of the chroma term (small = no colour fringes, luma stays free)
    diffaug: str = ""  # DiffAugment on every D input, comma-separated of translation, cutout, color, hue ("" = off)
    pool_size: int = 50  # history of generated images shown to D (0 = only the newest)
    one_direction: bool = False  # train only G_AB + D_B: adversarial + identity + low-frequency content term
    lambda_luma: float = 0.0  # weight of D_L, a second D on per-crop-standardised luma at luma_scale (0 = no D_L)
    luma_scale: float = 0.42  # D_L's view is the crop resized by this: a 1 MP result shrunk to 512 px, as `eval style` judges it
    luma_layers: int = 2  # D_L's strided layers (2: a 34-px receptive field in its view, near the gray critic's 38)


@dataclass(frozen=True)
class OptimConfig:
    """Adam for G and D, and the learning-rate policy (counted in steps, not epochs)."""

    lr: float = 2e-4  # Adam learning rate of G and D
    beta1: float = 0.5  # Adam beta1 (0.5 as upstream CycleGAN)
    beta2: float = 0.999  # Adam beta2
    policy: LrPolicy = "linear"  # lr schedule
    decay_start: float = 0.5  # linear: fraction of the steps at constant lr before the linear decay to 0
    step_size: int = 10000  # step: multiply lr by gamma every step_size steps
    gamma: float = 0.1  # step: the factor
    min_lr_ratio: float = 0.0  # cosine: final lr / lr
    plateau_patience: int = 2000  # plateau: steps without improvement of the G loss before lr * plateau_factor
    plateau_factor: float = 0.5  # plateau: the factor


@dataclass(frozen=True)
class LoopConfig:
    """Length, batch, precision and the cadence of logs, samples and checkpoints."""

    steps: int = 20000  # total optimisation steps (one D step + one G step each)
    batch_size: int = 1  # images per domain per step and per process
    ema_decay: float = 0.0  # EMA of the generator weights (0 = off; 0.999 is typical)
    log_every: int = 50  # steps between metrics lines
    sample_every: int = 1000  # steps between sample sheets in run/samples/ (0 = never)
    checkpoint_every: int = 1000  # steps between checkpoints (one is also written at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    amp: Amp = "auto"  # autocast dtype: auto = bf16 on CUDA when supported, none on CPU
    channels_last: bool = False  # NHWC memory format for models and batches
    compile: bool = False  # torch.compile the networks
    deterministic: bool = False  # torch.use_deterministic_algorithms(True): bitwise-repeatable, slower


@dataclass(frozen=True)
class CycleGANConfig:
    """Everything a CycleGAN run depends on."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)


def validate_loop(t: LoopConfig) -> None:
    """Range checks of a ``[train]`` section (shared by every trainer)."""
    checks = [
        ("train.steps", t.steps, 1),
        ("train.batch_size", t.batch_size, 1),
        ("train.log_every", t.log_every, 1),
        ("train.checkpoint_every", t.checkpoint_every, 1),
        ("train.keep_checkpoints", t.keep_checkpoints, 1),
        ("train.sample_every", t.sample_every, 0),
    ]
    for key, value, least in checks:
        if value < least:
            raise UsageError(f"{key} must be >= {least}, not {value}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise UsageError(f"train.ema_decay must be in [0, 1), not {t.ema_decay}")


def validate_optim(o: OptimConfig) -> None:
    """Range checks of an ``[optim]`` section (shared by every trainer)."""
    for key, value, least in (("optim.step_size", o.step_size, 1), ("optim.plateau_patience", o.plateau_patience, 0)):
        if value < least:
            raise UsageError(f"{key} must be >= {least}, not {value}")
    if not 0.0 <= o.decay_start <= 1.0:
        raise UsageError(f"optim.decay_start must be in [0, 1], not {o.decay_start}")
    if o.lr <= 0:
        raise UsageError(f"optim.lr must be > 0, not {o.lr}")


def validate_cyclegan(cfg: CycleGANConfig) -> None:
    """Checks that span fields of a CycleGAN config."""
    d, m, g = cfg.data, cfg.model, cfg.gan
    if m.generator not in STYLE_GENERATORS:
        raise UsageError(f"model.generator must be one of {', '.join(STYLE_GENERATORS)}, not {m.generator!r}")
    if m.discriminator not in DISCRIMINATORS:
        raise UsageError(f"model.discriminator must be one of {', '.join(DISCRIMINATORS)}, not {m.discriminator!r}")
    for name, kw in (("generator_kwargs", m.generator_kwargs), ("discriminator_kwargs", m.discriminator_kwargs)):
        if "norm" in kw:
            raise UsageError(f"model.{name} must not set norm; use model.norm (instance, batch, none)")
    if d.crop < 16 or d.crop % 4:
        raise UsageError(f"data.crop must be a multiple of 4 and >= 16, not {d.crop}")
    lo, hi = d.scale_jitter
    least = 0.25 if d.work_pixels else 1.0  # work_pixels scales the image, not the crop: it may shrink it
    if not least <= lo <= hi:
        raise UsageError(f"data.scale_jitter must be [lo, hi] with {least} <= lo <= hi, not {list(d.scale_jitter)}")
    if d.work_pixels < 0 or d.effective_pixels < 0:
        raise UsageError("data.work_pixels and data.effective_pixels must be >= 0")
    if g.content_pool < 1 or g.chroma_pool < 1:
        raise UsageError(f"gan.content_pool and gan.chroma_pool must be >= 1, not {g.content_pool} and {g.chroma_pool}")
    from scenestyle.train.diffaug import check_policy

    check_policy(g.diffaug)
    if d.workers < 0:
        raise UsageError(f"data.workers must be >= 0, not {d.workers}")
    if g.pool_size < 0:
        raise UsageError(f"gan.pool_size must be >= 0, not {g.pool_size}")
    if g.lambda_luma < 0 or not 0 < g.luma_scale <= 1 or g.luma_layers < 1:
        raise UsageError(
            f"gan.lambda_luma must be >= 0, gan.luma_scale in (0, 1] and gan.luma_layers >= 1 "
            f"(got {g.lambda_luma}, {g.luma_scale}, {g.luma_layers})"
        )
    if g.lambda_luma > 0 and round(d.crop * g.luma_scale) < 2 ** (g.luma_layers + 2):
        raise UsageError(
            f"D_L sees {d.crop}-px crops at x{g.luma_scale}: {round(d.crop * g.luma_scale)} px, too small for "
            f"gan.luma_layers={g.luma_layers}; raise data.crop or gan.luma_scale, or lower gan.luma_layers"
        )
    validate_loop(cfg.train)
    validate_optim(cfg.optim)


# --- SR-GAN and denoise ---------------------------------------------------------------------------

SR_GENERATORS = ("SRVGGNetCompact", "RRDBNet")
DENOISE_GENERATORS = ("ffdnet_color", "ffdnet_gray", "FFDNet", "DnCNN", "SRVGGNetCompact", "RRDBNet")
SR_DISCRIMINATORS = ("UNetDiscriminatorSN", "VGGStyleDiscriminator")

SRDegradationKind = Literal["bicubic", "realesrgan"]
NoiseKind = Literal["gaussian", "poisson_gaussian", "jpeg", "camera"]
PixelKind = Literal["l1", "charbonnier"]
SRGanLoss = Literal["vanilla", "lsgan", "hinge"]


@dataclass(frozen=True)
class HRDataConfig:
    """Where the clean photos are and how training crops are cut from them."""

    hr: str = ""  # folder of clean photos (the targets), searched recursively; --hr / --clean set it
    crop: int = 128  # square target crop in pixels (srgan: the HR crop; the input is crop / scale)
    scale_range: tuple[float, float] = (1.0, 1.0)  # photo scaled by U(lo, hi) <= 1 before cropping (1 = native pixels)
    hflip: bool = True  # random horizontal flips
    vflip: bool = True  # random vertical flips (BasicSR flips and rotates SR crops too)
    workers: int = 2  # DataLoader worker processes (they also run the degradations); 0 = in the training process
    seed: int = 0  # seeds model init, the crop stream, the degradations and every RNG of the run


@dataclass(frozen=True)
class SRDegradationConfig:
    """How low-resolution inputs are made from HR crops (the scale comes from the generator)."""

    kind: SRDegradationKind = "bicubic"  # bicubic: MATLAB-bicubic LR (benchmark protocol); realesrgan: second-order pipeline
    realesrgan: dict = field(default_factory=dict)  # overrides of RealESRGANDegradation fields, e.g. {noise_range = [1.0, 20.0]}
    usm_target: bool = True  # realesrgan only: pixel/perceptual losses against the unsharp-masked HR, as Real-ESRGAN


@dataclass(frozen=True)
class NoiseConfig:
    """Synthetic noise for blind denoising; one kind drawn per image, its strength drawn per image."""

    kinds: tuple[NoiseKind, ...] = ("gaussian", "poisson_gaussian", "jpeg", "camera")  # noise kinds to mix
    probs: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)  # probability of each kind (same order, sums to 1)
    sigma_range: tuple[float, float] = (0.0, 50.0)  # gaussian: σ in 0-255 units
    clip: bool = False  # gaussian: clip the noisy input to [0, 1] (the KAIR evaluation protocol does not)
    shot_range: tuple[float, float] = (1e-4, 1e-2)  # poisson_gaussian: shot-noise gain a (variance a·x), log-uniform
    read_range: tuple[float, float] = (0.0, 0.04)  # poisson_gaussian: read-noise std b in [0, 1] units
    jpeg_quality: tuple[float, float] = (10.0, 95.0)  # jpeg: quality range (1-100)
    camera_shot_range: tuple[float, float] = (1e-4, 1e-2)  # camera: shot gain in linear raw space
    camera_read_range: tuple[float, float] = (1e-3, 2e-2)  # camera: read-noise std in linear raw space
    camera_offdiag_range: tuple[float, float] = (-0.4, 0.05)  # camera: off-diagonals of the random colour matrix


@dataclass(frozen=True)
class RestoreModelConfig:
    """Which registered networks to train (``scenestyle.nn.list_archs()``)."""

    generator: str = "SRVGGNetCompact"  # srgan: one of SR_GENERATORS; denoise: one of DENOISE_GENERATORS
    generator_kwargs: dict = field(default_factory=dict)  # constructor kwargs of G, e.g. {upscale = 4, num_conv = 16}
    init_weights: str = (
        ""  # start G from this .safetensors/.pth state dict (a GAN fine-tuned from an L1 model, as Real-ESRGAN); "" = random
    )
    discriminator: str = "UNetDiscriminatorSN"  # one of SR_DISCRIMINATORS
    discriminator_kwargs: dict = field(default_factory=dict)  # constructor kwargs of D, e.g. {num_feat = 64}
    spectral_norm: bool = False  # spectral norm on every conv/linear of VGGStyleDiscriminator (UNetDiscriminatorSN has it built in)


@dataclass(frozen=True)
class RestoreLossConfig:
    """Loss terms of the generator; the discriminator always gets the plain GAN loss."""

    pixel: PixelKind = "l1"  # pixel loss against the target
    pixel_weight: float = 1.0  # its weight
    gan: SRGanLoss = "vanilla"  # adversarial loss (BasicSR GANLoss)
    gan_weight: float = 0.1  # weight of the generator's adversarial term (Real-ESRGAN: 0.1)
    feature_matching_weight: float = 1.0  # L1 between D's features of output and target (needs no pretrained weights)
    perceptual_weight: float = 0.0  # VGG19 perceptual loss; > 0 only when weights.lock pins vgg_weights
    vgg_weights: str = "vgg19"  # weights.lock name of torchvision VGG19 weights for the perceptual loss
    pretrain_steps: int = 1000  # first steps: pixel (+ perceptual) loss only, D not trained


@dataclass(frozen=True)
class SRGANConfig:
    """Everything an SR-GAN run depends on."""

    data: HRDataConfig = field(default_factory=HRDataConfig)
    degradation: SRDegradationConfig = field(default_factory=SRDegradationConfig)
    model: RestoreModelConfig = field(default_factory=RestoreModelConfig)
    loss: RestoreLossConfig = field(default_factory=RestoreLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.9, beta2=0.99, policy="cosine", min_lr_ratio=0.1))
    train: LoopConfig = field(default_factory=lambda: LoopConfig(batch_size=4))


@dataclass(frozen=True)
class DenoiseConfig:
    """Everything a denoise run depends on."""

    data: HRDataConfig = field(default_factory=HRDataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: RestoreModelConfig = field(default_factory=lambda: RestoreModelConfig(generator="ffdnet_color"))
    loss: RestoreLossConfig = field(default_factory=lambda: RestoreLossConfig(feature_matching_weight=0.0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.9, beta2=0.99, policy="cosine", min_lr_ratio=0.1))
    train: LoopConfig = field(default_factory=lambda: LoopConfig(batch_size=4))


def _range(key: str, value: tuple[float, float], lo: float, hi: float | None = None) -> None:
    a, b = value
    if not (lo <= a <= b and (hi is None or b <= hi)):
        bound = f"{lo} <= low <= high" + (f" <= {hi}" if hi is not None else "")
        raise UsageError(f"{key} must be [low, high] with {bound}, not {list(value)}")


def _validate_common(cfg: SRGANConfig | DenoiseConfig, generators: tuple[str, ...]) -> None:
    d, m, ls = cfg.data, cfg.model, cfg.loss
    if m.generator not in generators:
        raise UsageError(f"model.generator must be one of {', '.join(generators)}, not {m.generator!r}")
    if m.discriminator not in SR_DISCRIMINATORS:
        raise UsageError(f"model.discriminator must be one of {', '.join(SR_DISCRIMINATORS)}, not {m.discriminator!r}")
    if m.spectral_norm and m.discriminator == "UNetDiscriminatorSN":
        raise UsageError("UNetDiscriminatorSN has spectral norm built in; model.spectral_norm is for VGGStyleDiscriminator")
    if d.crop < 16 or d.crop % 8:
        raise UsageError(f"data.crop must be a multiple of 8 and >= 16, not {d.crop}")
    if not 0.0 < d.scale_range[0] <= d.scale_range[1] <= 1.0:
        raise UsageError(f"data.scale_range must be [lo, hi] with 0 < lo <= hi <= 1, not {list(d.scale_range)}")
    if d.workers < 0:
        raise UsageError(f"data.workers must be >= 0, not {d.workers}")
    for key in ("pixel_weight", "gan_weight", "feature_matching_weight", "perceptual_weight", "pretrain_steps"):
        if getattr(ls, key) < 0:
            raise UsageError(f"loss.{key} must be >= 0, not {getattr(ls, key)}")
    validate_loop(cfg.train)
    validate_optim(cfg.optim)


def realesrgan_settings(cfg: SRDegradationConfig):
    """``RealESRGANDegradation`` with the config's overrides (lists become tuples); UsageError if invalid."""
    from scenestyle.train.degradations import RealESRGANDegradation

    names = [f.name for f in dataclasses.fields(RealESRGANDegradation)]
    unknown = [k for k in cfg.realesrgan if k not in names]
    if unknown:
        raise UsageError(f"unknown key degradation.realesrgan.{unknown[0]}; valid keys: {', '.join(names)}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.realesrgan.items()}
    try:
        return RealESRGANDegradation(**kw)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"degradation.realesrgan: {exc}") from None


def validate_srgan(cfg: SRGANConfig) -> None:
    """Checks that span fields of an SR-GAN config."""
    _validate_common(cfg, SR_GENERATORS)
    realesrgan_settings(cfg.degradation)


def validate_denoise(cfg: DenoiseConfig) -> None:
    """Checks that span fields of a denoise config."""
    _validate_common(cfg, DENOISE_GENERATORS)
    n = cfg.noise
    if len(set(n.kinds)) != len(n.kinds):
        raise UsageError(f"noise.kinds lists a kind twice: {list(n.kinds)}")
    if len(n.probs) != len(n.kinds) or any(p < 0 for p in n.probs) or abs(sum(n.probs) - 1.0) > 1e-6:
        raise UsageError(
            f"noise.probs must give one non-negative probability per noise.kinds entry ({len(n.kinds)}), summing to 1; got {list(n.probs)}"
        )
    _range("noise.sigma_range", n.sigma_range, 0.0, 255.0)
    _range("noise.jpeg_quality", n.jpeg_quality, 1.0, 100.0)
    for key in ("shot_range", "read_range", "camera_shot_range", "camera_read_range"):
        _range(f"noise.{key}", getattr(n, key), 0.0, 1.0)
    _range("noise.camera_offdiag_range", n.camera_offdiag_range, -1.0, 1.0)


def noise_params(n: NoiseConfig) -> dict[str, dict]:
    """``add_noise`` keyword arguments of each kind."""
    return {
        "gaussian": dict(sigma_range=n.sigma_range, clip=n.clip),
        "poisson_gaussian": dict(shot_range=n.shot_range, read_range=n.read_range),
        "jpeg": dict(quality_range=n.jpeg_quality),
        "camera": dict(shot_range=n.camera_shot_range, read_range=n.camera_read_range, offdiag_range=n.camera_offdiag_range),
    }


register_root(CycleGANConfig, "cyclegan", validate_cyclegan)
register_root(SRGANConfig, "srgan", validate_srgan)
register_root(DenoiseConfig, "denoise", validate_denoise)
