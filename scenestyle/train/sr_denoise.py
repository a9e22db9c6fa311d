"""The SR-GAN and denoise trainers: one explicit loop for paired restoration, read top to bottom.

Pairs are made on the fly from clean photos (``hr_data.py``): for ``srgan`` an HR crop and its
LR (bicubic or Real-ESRGAN second order; the scale is the generator's), for ``denoise`` a clean
crop and a noisy copy with its noise-level map. Per step: G forward (a noise-level generator,
``ModelMeta.takes_sigma``, also gets each crop's σ map as its forward's ``sigma``); G step with D
frozen: pixel loss (+ perceptual loss), and after ``loss.pretrain_steps`` the adversarial term and
discriminator feature matching; then the D step (real target vs. detached output); schedulers;
EMA of G. Rank 0 alone logs, samples and saves; checkpoints, resume, signals and DDP work as in
the CycleGAN trainer (``loop.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scenestyle.errors import UsageError
from scenestyle.image_files import list_images
from scenestyle.nn.meta import ModelMeta
from scenestyle.train import checkpoint as ckpt
from scenestyle.train import ddp
from scenestyle.train.config import config_hash
from scenestyle.train.data import CropRecipe, make_loader
from scenestyle.train.ema import EMA
from scenestyle.train.hr_data import HRCrops, HRStream, NoisyPairs, SRPairs
from scenestyle.train.loop import (
    Checkpointer,
    StopRule,
    TrainResult,
    autocast,
    place,
    prepare_run,
    rank_state,
    resume_training,
    run_guarded,
    runtime,
    seed_all,
    to_device,
    training_state,
    write_config,
)
from scenestyle.train.optim import make_scheduler, step_scheduler
from scenestyle.train.progress import Reporter, save_sheet
from scenestyle.train.schemas import DenoiseConfig, SRGANConfig, noise_params, realesrgan_settings
from scenestyle.train.sr_losses import FeatureMatchingLoss, GANLoss, PerceptualLoss, PixelLoss, VGG19Features

ROOTS = {"srgan": SRGANConfig, "denoise": DenoiseConfig}
VGG_D_LAYERS = ("bn0_1", "bn1_1", "bn2_1", "bn3_1", "bn4_1")  # its stride-2 stages (post-activation: in-place lrelu)
PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}  # Real-ESRGAN's


def _build(name: str, kwargs: dict, what: str) -> nn.Module:
    from scenestyle.nn import build

    try:
        return build(name, **kwargs)
    except KeyError as exc:
        raise UsageError(f"model.{what} {name!r} is not available here: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"model.{what}_kwargs {kwargs} do not fit {name}: {exc}") from None


def generator_meta(cfg: SRGANConfig | DenoiseConfig) -> ModelMeta:
    """The ModelMeta of the configured generator (UsageError for a network that is not one)."""
    from scenestyle.nn import describe

    try:
        return describe(cfg.model.generator, cfg.model.generator_kwargs)
    except KeyError as exc:
        raise UsageError(f"model.generator: {exc.args[0]}") from None


def build_networks(cfg: SRGANConfig | DenoiseConfig, kind: str) -> dict[str, nn.Module]:
    """G and D (freshly initialised from the torch RNG), checked against the task and the crop size."""
    m, crop = cfg.model, cfg.data.crop
    g = _build(m.generator, m.generator_kwargs, "generator")
    meta = generator_meta(cfg)
    s = meta.scale
    if (kind == "srgan") != (s > 1):
        need = "an upscaling generator (scale >= 2, e.g. upscale = 4)" if kind == "srgan" else "a scale-1 generator"
        raise UsageError(f"train {kind} needs {need}; {m.generator} {m.generator_kwargs} has scale {s}")
    if meta.value_range != (0.0, 1.0) or meta.in_channels != meta.out_channels:
        raise UsageError(f"{m.generator} must map [0, 1] images to images of as many channels")
    if crop % s or (crop // s) % meta.size_multiple:
        raise UsageError(f"data.crop {crop} must be a multiple of {s * meta.size_multiple} for {m.generator} x{s}")
    if kind == "denoise" and meta.in_channels == 1 and "camera" in cfg.noise.kinds:
        raise UsageError("noise kind camera needs an RGB generator; drop it from noise.kinds for a grayscale one")
    d_kw = {"num_in_ch": meta.out_channels, **m.discriminator_kwargs}
    if m.discriminator == "VGGStyleDiscriminator":
        d_kw.setdefault("input_size", crop)  # it scores whole crops of one fixed size
    if d_kw["num_in_ch"] != meta.out_channels:
        raise UsageError(f"the discriminator takes {d_kw['num_in_ch']} channels but {m.generator} gives {meta.out_channels}")
    d = _build(m.discriminator, d_kw, "discriminator")
    if d_kw.get("input_size", crop) != crop:
        raise UsageError(f"VGGStyleDiscriminator input_size {d_kw['input_size']} must equal data.crop {crop}")
    if m.spectral_norm:
        for mod in d.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.utils.parametrizations.spectral_norm(mod)
    if type(g).__name__ == "RRDBNet":  # BasicSR: deep residual dense stacks start from kaiming x 0.1
        for mod in g.body.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight)
                mod.weight.data.mul_(0.1)
                nn.init.zeros_(mod.bias)
    return {"G": g, "D": d}


def init_generator(g: nn.Module, path: Path) -> None:
    """Load ``path`` into G (strict): a fine-tuning run starts from an exported model, not at random."""
    from scenestyle.loading import read_state_dict

    if not path.is_file():
        raise UsageError(f"model.init_weights: no file {path}")
    try:
        g.load_state_dict(read_state_dict(path))
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"model.init_weights {path} does not fit {type(g).__name__}: {first}") from None


def _perceptual(cfg_loss, device: torch.device) -> PerceptualLoss:
    """The VGG19 perceptual loss from weights pinned in weights.lock; UsageError without them."""
    from scenestyle.loading import read_state_dict
    from scenestyle.weights import load_lock, resolve

    name = cfg_loss.vgg_weights
    if name not in load_lock():
        raise UsageError(
            f"loss.perceptual_weight > 0 needs VGG19 weights pinned in weights.lock as {name!r}, and this "
            "install has none; set loss.perceptual_weight=0 and use loss.feature_matching_weight "
            "(discriminator feature matching) instead"
        )
    rw = resolve(name)
    extractor = VGG19Features(tuple(PERCEPTUAL_LAYERS), read_state_dict(rw.path, rw.entry.state_dict_key))
    return PerceptualLoss(extractor, PERCEPTUAL_LAYERS, loss_weight=cfg_loss.perceptual_weight).to(device)


def train_srgan(cfg: SRGANConfig | None = None, **kwargs) -> TrainResult:
    """Train (or resume) an SR-GAN run; keyword arguments as ``train_restore``."""
    return train_restore("srgan", cfg, **kwargs)


def train_denoise(cfg: DenoiseConfig | None = None, **kwargs) -> TrainResult:
    """Train (or resume) a denoise run; keyword arguments as ``train_restore``."""
    return train_restore("denoise", cfg, **kwargs)


def train_restore(
    kind: str,
    cfg: SRGANConfig | DenoiseConfig | None = None,
    *,
    run: Path | None = None,
    resume: Path | None = None,
    overrides: Sequence[str] = (),
    max_steps: int | None = None,
    time_limit: float | None = None,
    device: str = "auto",
    console=None,
    show_progress: bool = True,
) -> TrainResult:
    """Train (or resume) a ``kind`` (srgan | denoise) run; ``overrides``: cadence keys changed on resume."""
    return run_guarded(
        lambda info, t_start: _train(
            kind, cfg, run, resume, overrides, max_steps, time_limit, device, console, show_progress, info, t_start
        ),
        device,
    )


def _train(
    kind, cfg, run, resume, overrides, max_steps, time_limit, device, console, show_progress, info: ddp.DistInfo, t_start: float
) -> TrainResult:
    cfg, run, cfg_text = prepare_run(ROOTS[kind], cfg, run, resume, overrides)
    cfg_hash = config_hash(cfg)
    d, ls, o, t = cfg.data, cfg.loss, cfg.optim, cfg.train
    dev, amp, stop = runtime(t, device, info, max_steps)
    fmt = f"scenestyle-{kind}/1"

    # ---- networks first (the pair maker needs G's scale and channels), same seed on every rank
    seed_all(d.seed)
    nets = build_networks(cfg, kind)
    G, D = nets["G"], nets["D"]
    meta = generator_meta(cfg)
    if cfg.model.init_weights and resume is None:
        init_generator(G, Path(cfg.model.init_weights))

    # ---- data: crops and their degradations are a pure function of (seed, step, rank)
    flag = "--hr" if kind == "srgan" else "--clean"
    if not d.hr.strip():
        raise UsageError(f"no photo folder given; pass {flag} DIR or set data.hr")
    files = list_images(d.hr, f"{flag[2:]} photo", recursive=True)
    if info.is_main:
        write_config(run, cfg_text)
    if kind == "srgan":
        dg = cfg.degradation
        make_pair = SRPairs(meta.scale, dg.kind, realesrgan_settings(dg) if dg.kind == "realesrgan" else None, dg.usm_target)
    else:
        make_pair = NoisyPairs(cfg.noise.kinds, cfg.noise.probs, noise_params(cfg.noise))
    dataset = HRCrops(files, d.crop, make_pair, gray=meta.in_channels == 1, seed=d.seed, rank=info.rank)
    stream = HRStream(
        len(files),
        batch_size=t.batch_size,
        crop=d.crop,
        scale_range=d.scale_range,
        hflip=d.hflip,
        vflip=d.vflip,
        seed=d.seed,
        rank=info.rank,
        world=info.world,
    )

    # ---- optimisers, schedulers (D's counts only its adversarial steps), losses, EMA
    place(nets, dev, t.channels_last, info)
    opts = {k: torch.optim.Adam(n.parameters(), lr=o.lr, betas=(o.beta1, o.beta2)) for k, n in nets.items()}
    totals = {"G": t.steps, "D": max(1, t.steps - ls.pretrain_steps)}
    scheds = {k: make_scheduler(opt, o, totals[k]) for k, opt in opts.items()}
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    ema = EMA(G, t.ema_decay) if t.ema_decay > 0 else None
    fwd = {k: (torch.compile(n) if t.compile else n) for k, n in nets.items()}
    pixel = PixelLoss(ls.pixel, ls.pixel_weight)
    gan = GANLoss(ls.gan, loss_weight=ls.gan_weight)
    fm = None
    if ls.feature_matching_weight > 0:
        layers = VGG_D_LAYERS if type(D).__name__ == "VGGStyleDiscriminator" else None
        fm = FeatureMatchingLoss(D, layers, loss_weight=ls.feature_matching_weight)
    percep = _perceptual(ls, dev) if ls.perceptual_weight > 0 else None

    step, saver = 0, Checkpointer(run, t.keep_checkpoints, info)
    if resume is not None:
        step, _, _ = resume_training(run, fmt, cfg_hash, t.steps, saver, nets, opts, scheds, scaler, ema, o, totals, info)

    def save(at: int) -> Path | None:
        return saver.save(
            at,
            rank_state(stream, at),
            lambda ranks: {
                "format": fmt,
                "step": at,
                "config_toml": cfg_text,
                "config_sha256": cfg_hash,
                "generator": {"arch": cfg.model.generator, "kwargs": dict(cfg.model.generator_kwargs), "model": "G"},
                **training_state(nets, opts, scheds, scaler, ema),
                "ranks": ranks,
            },
        )

    # ---- fixed sample pairs (centre crops of the first files, degraded once) for the sheets, rank 0 only
    samples = None
    if info.is_main and t.sample_every:
        recipes = [CropRecipe(0, i, 1.0, 0.5, 0.5, False, False) for i in range(min(3, len(files)))]
        samples = [x.to(dev) for x in dataset[(-1, recipes)]]

    def generate(net: nn.Module, inp: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        # sigma: each crop's N×1×H×W noise-level map, the forward argument of a noise-level model
        return net(inp, sigma) if meta.takes_sigma else net(inp)

    loader = make_loader(dataset, stream, step, stop, d.workers, pin_memory=dev.type == "cuda")
    record: dict = {}
    with ckpt.StopFlag() as signals, Reporter(run, t.steps, step, enabled=info.is_main, console=console, show_bar=show_progress) as report:
        rule = StopRule(signals, stop=stop, steps=t.steps, time_limit=time_limit, t_start=t_start, info=info, device=dev)
        for batch in loader:
            inp, target, pix_target, sigma = (to_device(x, dev, t.channels_last) for x in batch)
            adversarial = step >= ls.pretrain_steps
            losses: dict[str, torch.Tensor] = {}

            # -- G step: D frozen; pixel (+ perceptual) loss, then adversarial + feature matching
            D.requires_grad_(False)
            opts["G"].zero_grad(set_to_none=True)
            with autocast(dev, amp):
                out = generate(fwd["G"], inp, sigma)
                losses["pix"] = pixel(out.float(), pix_target)
                if percep is not None:
                    rgb = (lambda x: x.expand(-1, 3, -1, -1)) if out.shape[1] == 1 else (lambda x: x)
                    losses["percep"] = percep(rgb(out.float()), rgb(pix_target))
                if adversarial:
                    if fm is not None:
                        losses["fm"], pred = fm(out, target, return_pred=True)
                    else:
                        pred = fwd["D"](out)
                    losses["gan"] = gan(pred.float(), True, is_disc=False)
                loss_G = sum(v.float() for v in losses.values())
            scaler.scale(loss_G).backward()
            ddp.average_gradients(G, info)
            scaler.step(opts["G"])

            # -- D step (adversarial phase only): real target vs. detached output
            if adversarial:
                D.requires_grad_(True)
                opts["D"].zero_grad(set_to_none=True)
                with autocast(dev, amp):
                    losses["D_real"] = gan(fwd["D"](target).float(), True, is_disc=True)
                    losses["D_fake"] = gan(fwd["D"](out.detach()).float(), False, is_disc=True)
                loss_D = losses["D_real"] + losses["D_fake"]
                scaler.scale(loss_D).backward()
                ddp.average_gradients(D, info)
                scaler.step(opts["D"])
                step_scheduler(scheds["D"], float(loss_D.detach()))
            scaler.update()

            # -- schedules, EMA, bookkeeping
            g_value = float(loss_G.detach())
            step_scheduler(scheds["G"], g_value)
            if ema is not None:
                ema.update(G)
            step += 1
            report.advance(step)

            if step % t.log_every == 0 or step == stop:
                values = {f"loss_{k}": ddp.mean_across(float(v.detach()), info, dev) for k, v in losses.items()}
                values |= {"loss_G": ddp.mean_across(g_value, info, dev), "lr": opts["G"].param_groups[0]["lr"]}
                if adversarial:
                    values["loss_D"] = ddp.mean_across(float(loss_D.detach()), info, dev)
                record = report.log(step, values)
            if samples is not None and (step % t.sample_every == 0 or step == stop):
                _sample_sheet(
                    ema.module if ema is not None else G,
                    samples,
                    generate,
                    meta.scale,
                    run / "samples" / f"step_{step:08d}.png",
                    lambda: autocast(dev, amp),
                )
            checkpoint_now, leave = rule.after_step(step, t.checkpoint_every)
            if checkpoint_now:
                save(step)
            if leave:
                break

    digests = tuple(ddp.gather_digests(G, info))
    return TrainResult(run, step, rule.stopped, rule.exit_code, saver.last, round(time.monotonic() - t_start, 3), digests, record)


@torch.no_grad()
def _sample_sheet(g: nn.Module, samples: list[torch.Tensor], generate, scale: int, path: Path, amp_ctx) -> None:
    """One row per sample: input (nearest-upsampled) | output | reference."""
    inp, target, _, sigma = samples
    was_training = g.training
    g.eval()
    try:
        with amp_ctx():
            out = generate(g, inp, sigma).float().clamp(0, 1)
        cells = [F.interpolate(inp, scale_factor=scale, mode="nearest") if scale > 1 else inp, out, target]
        cells = [(c.clamp(0, 1).expand(-1, 3, -1, -1) * 2 - 1) for c in cells]  # [-1, 1], gray as RGB
        save_sheet([cells], path)
    finally:
        g.train(was_training)
