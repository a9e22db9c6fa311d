"""The CycleGAN trainer: one explicit loop, read top to bottom.

Per step (upstream order): generators forward; G step (adversarial + cycle + identity, D frozen);
D step (real vs. pooled fakes, + gradient penalty for wgan-gp); schedulers; EMA of G_AB. Rank 0
alone logs, samples and saves.

``one_direction`` trains only G_AB and D_B: adversarial loss, identity loss on B, and in place of
the cycle loss a colour term (L1 between ``content_pool``-x-average-pooled a and G_AB(a)), a
structure term (``losses.structure_loss``: luminance correlation) and a chroma term
(``losses.chroma_loss``: the photo's colours down to a few pixels, so no fringes), so styles can be
learned without a painting->photo generator. ``gan.diffaug`` augments every image D sees
(``diffaug.py``), for styles with a few dozen paintings. ``gan.lambda_luma`` adds D_L, a PatchGAN on
per-crop-standardised luma of G_AB's output and the paintings shrunk by ``gan.luma_scale``: it
judges brushwork at the scale and palette-blindness of ``eval style``'s gray critic, which D_B at
full scale and in colour does not (strokes finer than the judging scale vanish when the result is
shrunk).
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
from scenestyle.train import checkpoint as ckpt
from scenestyle.train import ddp
from scenestyle.train.config import config_hash
from scenestyle.train.data import DataStream, UnpairedCrops, _mix, make_loader
from scenestyle.train.diffaug import diff_augment, parse_policy
from scenestyle.train.ema import EMA
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
from scenestyle.train.losses import chroma_loss, d_loss, g_loss, gradient_penalty, luma_view, structure_loss
from scenestyle.train.optim import make_scheduler, step_scheduler
from scenestyle.train.pool import ImagePool
from scenestyle.train.progress import Reporter, save_sheet
from scenestyle.train.schemas import CycleGANConfig

FORMAT = "scenestyle-cyclegan/1"


def generator_spec(cfg: CycleGANConfig) -> tuple[str, dict]:
    """(registered name, kwargs) of the generators, norm included."""
    return cfg.model.generator, {**cfg.model.generator_kwargs, "norm": cfg.model.norm}


def build_networks(cfg: CycleGANConfig) -> dict[str, nn.Module]:
    """G_AB, D_B, unless one_direction G_BA and D_A, and with lambda_luma D_L (freshly initialised from the torch RNG)."""
    from scenestyle.nn import build, describe

    g_name, g_kw = generator_spec(cfg)
    d_norm = cfg.model.norm if cfg.model.discriminator_norm == "same" else cfg.model.discriminator_norm
    d_name, d_kw = cfg.model.discriminator, {**cfg.model.discriminator_kwargs, "norm": d_norm}
    names = ("G_AB", "D_B") if cfg.gan.one_direction else ("G_AB", "G_BA", "D_A", "D_B")
    if cfg.gan.lambda_luma > 0:
        names += ("D_L",)
    nets = {}
    for name in names:
        arch, kw, key = (g_name, g_kw, "generator") if name[0] == "G" else (d_name, d_kw, "discriminator")
        if name == "D_L":  # a PatchGAN on one channel, as deep as its small view allows, as wide as D_B
            arch, kw = "NLayerDiscriminator", {"input_nc": 1, "ndf": d_kw.get("ndf", 64), "n_layers": cfg.gan.luma_layers, "norm": d_norm}
        try:
            nets[name] = build(arch, **kw)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"model.{key}_kwargs {kw} do not fit {arch}: {exc}") from None
        if name[0] == "D" and cfg.model.spectral_norm:
            for m in nets[name].modules():
                if isinstance(m, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(m)
        _init_weights(nets[name], kaiming=name[0] == "G" and cfg.model.generator_init == "kaiming")
    try:
        g = describe(g_name, g_kw)
    except KeyError as exc:
        raise UsageError(f"model.generator: {exc.args[0]}") from None
    if g.in_channels != g.out_channels:
        raise UsageError(f"{g_name} maps {g.in_channels} to {g.out_channels} channels; CycleGAN needs equal ones")
    if cfg.data.crop % g.size_multiple:
        raise UsageError(f"data.crop {cfg.data.crop} must be a multiple of {g.size_multiple} for {g_name}")
    return nets


def _init_weights(net: nn.Module, gain: float = 0.02, kaiming: bool = False) -> None:
    # upstream init_type="normal": N(0, 0.02) convs, N(1, 0.02) BatchNorm weights, zero biases.
    # Without norm layers N(0, 0.02) shrinks the signal at every conv (a depthwise 3x3 by ~0.06), so
    # the net starts as a constant; kaiming keeps its scale, and residual branches start at 0.1x
    # (as BasicSR does) so nine blocks do not blow it up.
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            if kaiming:
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            else:
                nn.init.normal_(w, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    if kaiming:
        with torch.no_grad():
            for m in net.modules():
                if hasattr(m, "conv_block"):
                    for conv in m.conv_block.modules():
                        if isinstance(conv, nn.Conv2d):
                            conv.weight.mul_(0.1)


def train_cyclegan(
    cfg: CycleGANConfig | None = None,
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
    """Train (or resume) a CycleGAN run; see the module docstring for the step. ``overrides``: the
    ``train.*`` cadence keys a resumed run may change (e.g. ``train.steps=N`` to extend it)."""
    return run_guarded(
        lambda info, t_start: _train(cfg, run, resume, overrides, max_steps, time_limit, device, console, show_progress, info, t_start),
        device,
    )


def _train(
    cfg, run, resume, overrides, max_steps, time_limit, device, console, show_progress, info: ddp.DistInfo, t_start: float
) -> TrainResult:
    cfg, run, cfg_text = prepare_run(CycleGANConfig, cfg, run, resume, overrides)
    cfg_hash = config_hash(cfg)
    d, g, o, t = cfg.data, cfg.gan, cfg.optim, cfg.train
    dev, amp, stop = runtime(t, device, info, max_steps)

    # ---- data: the stream of crops is a pure function of (seed, step, rank)
    for flag, folder in (("a", d.a), ("b", d.b)):
        if not folder.strip():
            raise UsageError(f"no folder given for domain {flag.upper()}; pass --{flag} DIR or set data.{flag}")
    files_a, files_b = list_images(d.a, "domain A", recursive=True), list_images(d.b, "domain B", recursive=True)
    dataset = UnpairedCrops(files_a, files_b, d.crop, work_pixels=d.work_pixels, effective_pixels=d.effective_pixels)
    stream = DataStream(
        len(files_a),
        len(files_b),
        batch_size=t.batch_size,
        crop=d.crop,
        scale_jitter=d.scale_jitter,
        hflip=d.hflip,
        vflip=d.vflip,
        seed=d.seed,
        rank=info.rank,
        world=info.world,
    )

    # ---- networks, optimisers, schedulers, pools, EMA (same seed on every rank, then rank 0's weights)
    seed_all(d.seed)
    nets = build_networks(cfg)
    if info.is_main:  # only now: settings the networks reject leave no run folder behind
        write_config(run, cfg_text)
    place(nets, dev, t.channels_last, info)
    gens = [nets[k] for k in ("G_AB", "G_BA") if k in nets]
    discs = [nets[k] for k in ("D_A", "D_B", "D_L") if k in nets]
    opts = {
        "G": torch.optim.Adam([p for n in gens for p in n.parameters()], lr=o.lr, betas=(o.beta1, o.beta2)),
        "D": torch.optim.Adam([p for n in discs for p in n.parameters()], lr=o.lr, betas=(o.beta1, o.beta2)),
    }
    scheds = {k: make_scheduler(opt, o, t.steps) for k, opt in opts.items()}
    opt_G, opt_D, sched_G, sched_D = opts["G"], opts["D"], scheds["G"], scheds["D"]
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    pools = {k: ImagePool(g.pool_size, seed=d.seed * 1000 + 17 * i + info.rank) for i, k in enumerate(("A", "B"))}
    ema = EMA(nets["G_AB"], t.ema_decay) if t.ema_decay > 0 else None
    fwd = {k: (torch.compile(n) if t.compile else n) for k, n in nets.items()}
    gp_gen = torch.Generator().manual_seed(d.seed + 99)

    step, saver = 0, Checkpointer(run, t.keep_checkpoints, info)
    if resume is not None:
        step, state, mine = resume_training(
            run, FORMAT, cfg_hash, t.steps, saver, nets, opts, scheds, scaler, ema, o, dict.fromkeys(opts, t.steps), info
        )
        for k, p in pools.items():
            p.load_state_dict(mine["pools"][k], dev)
        gp_gen.set_state(state["gp_generator"])

    def save(at: int) -> Path | None:
        g_name, g_kw = generator_spec(cfg)
        return saver.save(
            at,
            rank_state(stream, at, pools={k: p.state_dict() for k, p in pools.items()}),
            lambda ranks: {
                "format": FORMAT,
                "step": at,
                "config_toml": cfg_text,
                "config_sha256": cfg_hash,
                "generator": {"arch": g_name, "kwargs": g_kw, "model": "G_AB"},
                **training_state(nets, opts, scheds, scaler, ema),
                "ranks": ranks,
                "gp_generator": gp_gen.get_state(),
            },
        )

    # ---- fixed sample crops (centre crops of the first files) for the sheets, rank 0 only
    samples = None
    if info.is_main and t.sample_every:
        from scenestyle.train.data import CropRecipe

        pick = lambda dom, n: torch.stack([dataset.crop_one(CropRecipe(dom, i, 1.0, 0.5, 0.5, False, False)) for i in range(min(3, n))]).to(
            dev
        )
        samples = (pick(0, len(files_a)), pick(1, len(files_b)))

    def amp_ctx():
        return autocast(dev, amp)

    loader = make_loader(dataset, stream, step, stop, d.workers, pin_memory=dev.type == "cuda")
    lam_idt = g.lambda_cycle * g.lambda_identity
    policy = parse_policy(g.diffaug)
    record = {}
    with ckpt.StopFlag() as flag, Reporter(run, t.steps, step, enabled=info.is_main, console=console, show_bar=show_progress) as report:
        rule = StopRule(flag, stop=stop, steps=t.steps, time_limit=time_limit, t_start=t_start, info=info, device=dev)
        for a, b in loader:
            real_a, real_b = to_device(a, dev, t.channels_last), to_device(b, dev, t.channels_last)
            losses: dict[str, torch.Tensor] = {}
            aug_gen = torch.Generator().manual_seed(_mix(d.seed, 13, step, info.rank))  # a pure function of the step

            def aug(x: torch.Tensor) -> torch.Tensor:  # DiffAugment: every image any D sees, real or fake
                return diff_augment(x, policy, aug_gen) if policy else x

            def luma(x: torch.Tensor) -> torch.Tensor:  # D_L's view, augmented like D_B's
                return luma_view(aug(x), g.luma_scale)

            # -- G step: D frozen; adversarial + cycle + identity (or content) losses
            for net in discs:
                net.requires_grad_(False)
            opt_G.zero_grad(set_to_none=True)
            with amp_ctx():
                fake_b = fwd["G_AB"](real_a)
                losses["G_AB"] = g_loss(g.loss, fwd["D_B"](aug(fake_b)))
                if g.lambda_luma > 0:
                    losses["G_L"] = g.lambda_luma * g_loss(g.loss, fwd["D_L"](luma(fake_b)))
                if g.one_direction:
                    if g.lambda_content > 0:
                        k = g.content_pool
                        losses["content"] = g.lambda_content * F.l1_loss(F.avg_pool2d(fake_b.float(), k), F.avg_pool2d(real_a, k))
                    if g.lambda_structure > 0:
                        losses["structure"] = g.lambda_structure * structure_loss(fake_b, real_a)
                    if g.lambda_chroma > 0:
                        losses["chroma"] = g.lambda_chroma * chroma_loss(fake_b, real_a, g.chroma_pool)
                    if lam_idt > 0:
                        losses["idt_B"] = lam_idt * F.l1_loss(fwd["G_AB"](real_b).float(), real_b)
                else:
                    fake_a = fwd["G_BA"](real_b)
                    losses["G_BA"] = g_loss(g.loss, fwd["D_A"](aug(fake_a)))
                    losses["cycle_A"] = g.lambda_cycle * F.l1_loss(fwd["G_BA"](fake_b).float(), real_a)
                    losses["cycle_B"] = g.lambda_cycle * F.l1_loss(fwd["G_AB"](fake_a).float(), real_b)
                    if lam_idt > 0:
                        losses["idt_A"] = lam_idt * F.l1_loss(fwd["G_BA"](real_a).float(), real_a)
                        losses["idt_B"] = lam_idt * F.l1_loss(fwd["G_AB"](real_b).float(), real_b)
                loss_G = sum(v.float() for v in losses.values())
            scaler.scale(loss_G).backward()
            for net in gens:
                ddp.average_gradients(net, info)
            scaler.step(opt_G)

            # -- D step: real vs. a pooled history of fakes
            for net in discs:
                net.requires_grad_(True)
            opt_D.zero_grad(set_to_none=True)
            pooled_b = pools["B"].query(fake_b)
            pairs = [("D_B", real_b, pooled_b, aug)]
            if not g.one_direction:
                pairs.append(("D_A", real_a, pools["A"].query(fake_a), aug))
            if g.lambda_luma > 0:
                pairs.append(("D_L", real_b, pooled_b, luma))
            loss_D = torch.zeros((), device=dev)
            for name, real, fake, view in pairs:
                with amp_ctx():
                    ld = d_loss(g.loss, fwd[name](view(real)).float(), fwd[name](view(fake.detach())).float())
                if g.loss == "wgan-gp":
                    fake_gp = fake.detach().to(real.dtype)
                    if name == "D_L":  # interpolate in D_L's own (unaugmented) view
                        real, fake_gp = luma_view(real, g.luma_scale), luma_view(fake_gp, g.luma_scale)
                    ld = ld + g.gp_weight * gradient_penalty(fwd[name], real, fake_gp, gp_gen)
                losses[name] = ld
                loss_D = loss_D + ld
            scaler.scale(loss_D).backward()
            for net in discs:
                ddp.average_gradients(net, info)
            scaler.step(opt_D)
            scaler.update()

            # -- schedules, EMA, bookkeeping
            g_value = float(loss_G.detach())
            step_scheduler(sched_G, g_value)
            step_scheduler(sched_D, float(loss_D.detach()))
            if ema is not None:
                ema.update(nets["G_AB"])
            step += 1
            report.advance(step)

            if step % t.log_every == 0 or step == stop:
                values = {f"loss_{k}": ddp.mean_across(float(v.detach()), info, dev) for k, v in losses.items()}
                values |= {
                    "loss_G": ddp.mean_across(g_value, info, dev),
                    "loss_D": ddp.mean_across(float(loss_D.detach()), info, dev),
                    "lr": opt_G.param_groups[0]["lr"],
                }
                record = report.log(step, values)
            if samples is not None and (step % t.sample_every == 0 or step == stop):
                _sample_sheet(nets, samples, run / "samples" / f"step_{step:08d}.png", g.one_direction, amp_ctx)
            checkpoint_now, leave = rule.after_step(step, t.checkpoint_every)
            if checkpoint_now:
                save(step)
            if leave:
                break

    digests = tuple(ddp.gather_digests(nets["G_AB"], info))
    return TrainResult(run, step, rule.stopped, rule.exit_code, saver.last, round(time.monotonic() - t_start, 3), digests, record)


@torch.no_grad()
def _sample_sheet(
    nets: dict[str, nn.Module], samples: tuple[torch.Tensor, torch.Tensor], path: Path, one_direction: bool, autocast
) -> None:
    """Rows: a | G_AB(a) | G_BA(G_AB(a)) and b | G_BA(b) | G_AB(G_BA(b)) (one_direction: a | G_AB(a))."""
    a, b = samples
    modes = {k: n.training for k, n in nets.items()}
    for n in nets.values():
        n.eval()
    try:
        with autocast():
            fb = nets["G_AB"](a)
            rows = [[a, fb]] if one_direction else [[a, fb, nets["G_BA"](fb)], [b, nets["G_BA"](b), nets["G_AB"](nets["G_BA"](b))]]
        save_sheet(rows, path)
    finally:
        for k, n in nets.items():
            n.train(modes[k])
