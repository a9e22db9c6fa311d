"""Training configuration: typed frozen dataclasses, loaded from TOML and ``--set key=value``.

The machinery here works for any *root* config (a frozen dataclass whose fields are sections)
registered with ``register_root``: ``CycleGANConfig`` below, ``SRGANConfig`` / ``DenoiseConfig``
in ``restore_config.py``. A config file has one table per section (``[data]``, ``[model]``,
``[gan]``, ``[optim]``, ``[train]`` for CycleGAN); every key is optional and defaults to the
root's default for that section. ``--set gan.loss=lsgan``
overrides one field (``--set model.generator_kwargs.ngf=32`` one entry of a dict field); the value
is parsed by the field's type. An unknown key or a bad value is a ``UsageError`` that lists the
valid keys or choices. The resolved config is written as TOML into the run folder and its hash
(``config_hash``: everything but the ``train.*`` cadence keys a resumed run may change) goes
into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from scenestyle.errors import UsageError

GanLoss = Literal["vanilla", "lsgan", "wgan-gp", "hinge"]
LrPolicy = Literal["linear", "step", "cosine", "plateau"]
Amp = Literal["auto", "bf16", "fp16", "none"]
Norm = Literal["instance", "batch", "none"]

STYLE_GENERATORS = ("resnet_9blocks", "resnet_6blocks", "ResnetGenerator", "unet_128", "unet_256", "UnetGenerator",
                    "CompactGenerator", "compact_generator")
DISCRIMINATORS = ("NLayerDiscriminator", "PixelDiscriminator")


@dataclass(frozen=True)
class DataConfig:
    """Where the two unpaired image domains are and how crops are drawn from them."""

    a: str = ""  # folder of domain A images (photos), searched recursively
    b: str = ""  # folder of domain B images (paintings), searched recursively
    crop: int = 256  # square training crop in pixels; a multiple of the generator's size_multiple
    scale_jitter: tuple[float, float] = (1.0, 1.5)  # short side resized to crop * U(lo, hi) before the crop (with work_pixels: the side scaled by U(lo, hi))
    work_pixels: int = 0  # > 0: images resized to about this many pixels before the crop (stylize's --work-size)
    effective_pixels: int = 0  # > 0 (with work_pixels): larger images first shrunk to this many pixels, one level of detail for both domains
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
    spectral_norm: bool = False  # spectral normalisation on every conv of D


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
    diffaug: str = ""  # DiffAugment on every D input, comma-separated of translation, cutout, color, hue ("" = off)
    pool_size: int = 50  # history of generated images shown to D (0 = only the newest)
    one_direction: bool = False  # train only G_AB + D_B: adversarial + identity + low-frequency content term


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


def _keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """``value`` (from TOML, or a string from ``--set``) as type ``tp``; UsageError otherwise."""
    from_cli = isinstance(value, str)

    def bad(why: str = "") -> UsageError:
        return UsageError(f"{key}: {value!r} is not a valid {_type_name(tp)}{why}")

    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UsageError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_cli and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise bad(" (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_cli:
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_cli:
            try:
                return float(value)
            except ValueError:
                pass
        raise bad()
    if tp is str:
        if from_cli and value[:1] in ('"', "'"):
            value = _toml_value(value)  # a quoted TOML string
        if isinstance(value, str):
            return value
        raise bad()
    if origin is tuple:
        items = _toml_value(value if value.startswith("[") else f"[{value}]") if from_cli else value
        if isinstance(items, str):  # bare words, e.g. [gaussian, jpeg]: split them as strings
            items = [w.strip() for w in items.strip().removeprefix("[").removesuffix("]").split(",") if w.strip()]
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any number of X
            if not isinstance(items, (list, tuple)) or not items:
                raise bad(" (give one or more values, e.g. [a, b])")
            args = (args[0],) * len(items)
        if not isinstance(items, (list, tuple)) or len(items) != len(args):
            raise bad(f" (give {len(args)} values, e.g. [1.0, 1.5])")
        return tuple(_coerce(f"{key}[{i}]", t, v) for i, (t, v) in enumerate(zip(args, items)))
    if tp is dict or origin is dict:
        obj = _toml_value(value) if from_cli else value
        if not isinstance(obj, dict):
            raise bad(" (a TOML inline table such as {ngf = 32})")
        return dict(obj)
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# root config class -> (trainer name, validator); see register_root
_ROOTS: dict[type, tuple[str, Callable[[Any], None]]] = {}

# train.* keys a resumed run may change (``--resume RUN --set train.steps=N``); not in config_hash
CADENCE_KEYS = ("steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints")


def register_root(cls: type, kind: str, validator: Callable[[Any], None]) -> None:
    """Make ``cls`` (a frozen dataclass of sections) loadable as the config of ``scenestyle train KIND``."""
    _ROOTS[cls] = (kind, validator)


def kind_of(cfg_or_cls: Any) -> str:
    """The trainer name of a root config (``cyclegan``, ``srgan``, ``denoise``)."""
    cls = cfg_or_cls if isinstance(cfg_or_cls, type) else type(cfg_or_cls)
    return _ROOTS[cls][0]


def _section(default: Any, name: str, raw: Mapping[str, Any]) -> Any:
    cls = type(default)
    if not isinstance(raw, Mapping):
        raise UsageError(f"[{name}] must be a table of keys; valid keys: {', '.join(_keys(cls))}")
    hints = _hints(cls)
    unknown = [k for k in raw if k not in hints]
    if unknown:
        raise UsageError(f"unknown key {name}.{unknown[0]}; valid keys of [{name}]: {', '.join(_keys(cls))}")
    # start from the root's default section: roots may give a shared section class other defaults
    return dataclasses.replace(default, **{k: _coerce(f"{name}.{k}", hints[k], v) for k, v in raw.items()})


def from_dict(raw: Mapping[str, Any], root: type | None = None) -> Any:
    """Build and validate a ``root`` config (default ``CycleGANConfig``) from nested dicts (parsed TOML)."""
    root = root or CycleGANConfig
    hints = _hints(root)
    unknown = [k for k in raw if k not in hints]
    if unknown:
        raise UsageError(f"unknown config section [{unknown[0]}]; valid sections: {', '.join(_keys(root))}")
    default = root()
    cfg = dataclasses.replace(default, **{k: _section(getattr(default, k), k, v) for k, v in raw.items()})
    validate(cfg)
    return cfg


def apply_overrides(cfg: Any, overrides: list[str] | tuple[str, ...]) -> Any:
    """Apply ``section.key=value`` strings, each parsed by the field's type."""
    sections = _hints(type(cfg))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value (e.g. train.steps=1000), not {item!r}")
        parts = key.split(".")
        if parts[0] not in sections:
            raise UsageError(f"unknown --set key {key!r}; it starts with a section: {', '.join(sections)}")
        cls = sections[parts[0]]
        hints = _hints(cls)
        if len(parts) < 2 or parts[1] not in hints:
            valid = ", ".join(f"{parts[0]}.{k}" for k in _keys(cls))
            raise UsageError(f"unknown --set key {key!r}; valid keys: {valid}")
        section = getattr(cfg, parts[0])
        tp = hints[parts[1]]
        if len(parts) == 3 and (tp is dict or typing.get_origin(tp) is dict):
            value = {**getattr(section, parts[1]), parts[2]: _toml_value(text.strip())}
        elif len(parts) == 2:
            value = _coerce(key, tp, text.strip())
        else:
            raise UsageError(f"--set key {key!r} is too deep; only dict fields take a third part")
        cfg = dataclasses.replace(cfg, **{parts[0]: dataclasses.replace(section, **{parts[1]: value})})
    validate(cfg)
    return cfg


def apply_resume_overrides(cfg: Any, overrides: list[str] | tuple[str, ...]) -> Any:
    """``apply_overrides`` limited to the cadence keys a resumed run may change (e.g. extend train.steps)."""
    allowed = [f"train.{k}" for k in CADENCE_KEYS]
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in allowed:
            raise UsageError(f"--resume keeps the run's config; --set may only change {', '.join(allowed)}, not {key!r}")
    return apply_overrides(cfg, overrides)


def validate(cfg: Any) -> None:
    """Run the checks registered for ``cfg``'s root class (choices of registered archs, ranges)."""
    _ROOTS[type(cfg)][1](cfg)


def validate_loop(t: LoopConfig) -> None:
    """Range checks of a ``[train]`` section (shared by every trainer)."""
    checks = [("train.steps", t.steps, 1), ("train.batch_size", t.batch_size, 1), ("train.log_every", t.log_every, 1),
              ("train.checkpoint_every", t.checkpoint_every, 1), ("train.keep_checkpoints", t.keep_checkpoints, 1),
              ("train.sample_every", t.sample_every, 0)]
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
    if g.content_pool < 1:
        raise UsageError(f"gan.content_pool must be >= 1, not {g.content_pool}")
    from scenestyle.train.diffaug import check_policy

    check_policy(g.diffaug)
    if d.workers < 0:
        raise UsageError(f"data.workers must be >= 0, not {d.workers}")
    if g.pool_size < 0:
        raise UsageError(f"gan.pool_size must be >= 0, not {g.pool_size}")
    validate_loop(cfg.train)
    validate_optim(cfg.optim)


register_root(CycleGANConfig, "cyclegan", validate_cyclegan)


def read_toml(path: str | Path, what: str = "--config") -> dict[str, Any]:
    """A TOML file as nested dicts; UsageError naming ``what`` when missing or malformed."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path}: not valid TOML ({exc})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), root: type | None = None) -> Any:
    """Defaults of ``root`` (default ``CycleGANConfig``), then the TOML file at ``path`` (if any), then ``overrides``."""
    raw = read_toml(path) if path is not None else {}
    return apply_overrides(from_dict(raw, root), list(overrides))


def to_dict(cfg: Any) -> dict[str, dict[str, Any]]:
    """Nested plain dicts (tuples as lists), as in the TOML file."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _toml_scalar(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k) if not k.isidentifier() else k} = {_toml_scalar(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)  # a basic TOML string has JSON's escapes


def to_toml(cfg: Any) -> str:
    """The resolved config as TOML text that ``load_config`` reads back to an equal config."""
    kind = kind_of(cfg)
    lines = [f"# resolved scenestyle {kind} config (written by `scenestyle train {kind}`)"]
    for section, values in to_dict(cfg).items():
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {_toml_scalar(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def config_sha256(text: str) -> str:
    """sha256 of the resolved config's TOML text (the bytes saved in the run folder)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_hash(cfg: Any) -> str:
    """sha256 of what a checkpoint's weights depend on: the trainer name and every key but the
    ``train.*`` cadence keys (``CADENCE_KEYS``), so a run extended on resume keeps its checkpoints."""
    d = to_dict(cfg)
    d["train"] = {k: v for k, v in d["train"].items() if k not in CADENCE_KEYS}
    return hashlib.sha256(json.dumps({"trainer": kind_of(cfg), **d}, sort_keys=True).encode("utf-8")).hexdigest()
