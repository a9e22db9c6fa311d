"""The CycleGAN trainer: one explicit loop, read top to bottom.

Per step (upstream order): generators forward; G step (adversarial + cycle + identity, D frozen);
D step (real vs. pooled fakes, + gradient penalty for wgan-gp); schedulers; EMA of G_AB. Rank 0
alone logs, samples and saves. ``one_direction`` trains only G_AB and D_B: adversarial loss,
identity loss on B and a low-frequency content loss (L1 between 4x-average-pooled a and G_AB(a))
that replaces the cycle loss, so styles can be learned without a painting->photo generator.
"""

from __future__ import annotations

import dataclasses
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scenestyle.errors import UsageError
from scenestyle.train import checkpoint as ckpt
from scenestyle.train import ddp
from scenestyle.train.config import CycleGANConfig, config_sha256, load_config, to_toml
from scenestyle.train.data import DataStream, UnpairedCrops, list_images, make_loader
from scenestyle.train.ema import EMA
from scenestyle.train.losses import d_loss, g_loss, gradient_penalty
from scenestyle.train.optim import make_scheduler, step_scheduler
from scenestyle.train.pool import ImagePool
from scenestyle.train.progress import Reporter, save_sheet


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    run: Path  # the run folder
    step: int  # steps completed
    stopped: str  # done | max-steps | time-limit | signal
    exit_code: int  # 0, or 130 / 143 after SIGINT / SIGTERM
    checkpoint: Path | None  # the last checkpoint written (rank 0)
    seconds: float  # wall time of this invocation
    digests: tuple[str, ...]  # sha256 of G_AB's weights on every rank (equal when in sync)
    metrics: dict  # the last metrics record

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["run"], d["checkpoint"] = str(self.run), str(self.checkpoint) if self.checkpoint else None
        return d


def generator_spec(cfg: CycleGANConfig) -> tuple[str, dict]:
    """(registered name, kwargs) of the generators, norm included."""
    return cfg.model.generator, {**cfg.model.generator_kwargs, "norm": cfg.model.norm}


def build_networks(cfg: CycleGANConfig) -> dict[str, nn.Module]:
    """G_AB, D_B and, unless one_direction, G_BA and D_A (freshly initialised from the torch RNG)."""
    from scenestyle.nn import build

    g_name, g_kw = generator_spec(cfg)
    d_name, d_kw = cfg.model.discriminator, {**cfg.model.discriminator_kwargs, "norm": cfg.model.norm}
    names = ("G_AB", "D_B") if cfg.gan.one_direction else ("G_AB", "G_BA", "D_A", "D_B")
    nets = {}
    for name in names:
        arch, kw, key = (g_name, g_kw, "generator") if name[0] == "G" else (d_name, d_kw, "discriminator")
        try:
            nets[name] = build(arch, **kw)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"model.{key}_kwargs {kw} do not fit {arch}: {exc}") from None
        if name[0] == "D" and cfg.model.spectral_norm:
            for m in nets[name].modules():
                if isinstance(m, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(m)
        _init_weights(nets[name])
    g = nets["G_AB"]
    if g.in_channels != g.out_channels:
        raise UsageError(f"{g_name} maps {g.in_channels} to {g.out_channels} channels; CycleGAN needs equal ones")
    if cfg.data.crop % g.size_multiple:
        raise UsageError(f"data.crop {cfg.data.crop} must be a multiple of {g.size_multiple} for {g_name}")
    return nets


def _init_weights(net: nn.Module, gain: float = 0.02) -> None:
    # upstream init_type="normal": N(0, 0.02) convs, N(1, 0.02) BatchNorm weights, zero biases
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def resolve_device(device: str, info: ddp.DistInfo) -> torch.device:
    """auto = CUDA (this rank's GPU) when present, else CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and info.distributed:
        device = f"cuda:{info.local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available here; use cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    return torch.device(device)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: auto = bf16 on CUDA when supported, none on CPU (bf16 is slow on CPUs without AMX)."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if amp == "fp16" and device.type != "cuda":
        raise UsageError("train.amp = fp16 needs CUDA; on CPU use bf16 or none")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]


def _numpy_state() -> tuple:
    s = np.random.get_state()
    return (s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4]))  # plain types: weights_only-loadable


def _rank_state(pools: dict[str, ImagePool], stream: DataStream, step: int) -> dict:
    rng = ckpt.rng_state()
    rng["numpy"] = _numpy_state()
    return {"pools": {k: p.state_dict() for k, p in pools.items()}, "rng": rng, "data": stream.state(step)}


def _set_rank_state(state: dict, pools: dict[str, ImagePool], device: torch.device) -> None:
    for k, p in pools.items():
        p.load_state_dict(state["pools"][k], device)
    rng = dict(state["rng"])
    n = rng["numpy"]
    rng["numpy"] = (n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4])
    ckpt.set_rng_state(rng)


def prepare_run(cfg: CycleGANConfig | None, run: Path | None, resume: Path | None) -> tuple[CycleGANConfig, Path, str]:
    """The config, run folder and config text: a new run writes ``config.toml``; a resumed one reads it."""
    if resume is not None:
        text_path = Path(resume) / "config.toml"
        if not text_path.is_file():
            raise UsageError(f"--resume {resume}: not a run folder (no config.toml)")
        return load_config(text_path), Path(resume), text_path.read_text(encoding="utf-8")
    assert cfg is not None
    run = Path(run) if run else Path("runs") / time.strftime("cyclegan-%Y%m%d-%H%M%S")
    if ckpt.list_checkpoints(run):
        raise UsageError(f"--run {run} already has checkpoints; continue it with --resume {run} or pick another --run")
    return cfg, run, to_toml(cfg)


def train_cyclegan(cfg: CycleGANConfig | None = None, *, run: Path | None = None, resume: Path | None = None,
                   max_steps: int | None = None, time_limit: float | None = None, device: str = "auto",
                   console=None, show_progress: bool = True) -> TrainResult:
    """Train (or resume) a CycleGAN run; see the module docstring for the step."""
    t_start = time.monotonic()
    info = ddp.setup(device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(cfg, run, resume, max_steps, time_limit, device, console, show_progress, info, t_start)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)  # a process-wide switch: leave it as found
        ddp.teardown(info)


def _train(cfg, run, resume, max_steps, time_limit, device, console, show_progress, info: ddp.DistInfo, t_start: float) -> TrainResult:
    cfg, run, cfg_text = prepare_run(cfg, run, resume)
    cfg_hash = config_sha256(cfg_text)
    d, g, o, t = cfg.data, cfg.gan, cfg.optim, cfg.train
    dev = resolve_device(device, info)
    amp = resolve_amp(t.amp, dev)
    if t.deterministic:
        torch.use_deterministic_algorithms(True)
    stop = min(t.steps, max_steps) if max_steps else t.steps

    # ---- data: the stream of crops is a pure function of (seed, step, rank)
    files_a, files_b = list_images(d.a, "domain A"), list_images(d.b, "domain B")
    if info.is_main:
        (run / "samples").mkdir(parents=True, exist_ok=True)
        if resume is None:
            (run / "config.toml").write_text(cfg_text, encoding="utf-8")
    dataset = UnpairedCrops(files_a, files_b, d.crop)
    stream = DataStream(len(files_a), len(files_b), batch_size=t.batch_size, crop=d.crop, scale_jitter=d.scale_jitter,
                        hflip=d.hflip, vflip=d.vflip, seed=d.seed, rank=info.rank, world=info.world)

    # ---- networks, optimisers, schedulers, pools, EMA (same seed on every rank, then rank 0's weights)
    random.seed(d.seed)
    np.random.seed(d.seed)
    torch.manual_seed(d.seed)
    nets = build_networks(cfg)
    for net in nets.values():
        net.to(dev)
        if t.channels_last:
            net.to(memory_format=torch.channels_last)
        ddp.broadcast_weights(net, info)
    gens = [nets[k] for k in ("G_AB", "G_BA") if k in nets]
    discs = [nets[k] for k in ("D_A", "D_B") if k in nets]
    opt_G = torch.optim.Adam([p for n in gens for p in n.parameters()], lr=o.lr, betas=(o.beta1, o.beta2))
    opt_D = torch.optim.Adam([p for n in discs for p in n.parameters()], lr=o.lr, betas=(o.beta1, o.beta2))
    sched_G, sched_D = make_scheduler(opt_G, o, t.steps), make_scheduler(opt_D, o, t.steps)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    pools = {k: ImagePool(g.pool_size, seed=d.seed * 1000 + 17 * i + info.rank) for i, k in enumerate(("A", "B"))}
    ema = EMA(nets["G_AB"], t.ema_decay) if t.ema_decay > 0 else None
    fwd = {k: (torch.compile(n) if t.compile else n) for k, n in nets.items()}
    gp_gen = torch.Generator().manual_seed(d.seed + 99)

    step, last_ckpt = 0, None
    if resume is not None:
        path = ckpt.latest_checkpoint(run)
        state = ckpt.load(path)
        if state["config_sha256"] != cfg_hash:
            raise UsageError(f"{path} was written with another config than {run / 'config.toml'} (sha256 differs)")
        step, last_ckpt = int(state["step"]), path
        for k, net in nets.items():
            net.load_state_dict(state["models"][k])
        opt_G.load_state_dict(state["optim"]["G"]), opt_D.load_state_dict(state["optim"]["D"])
        sched_G.load_state_dict(state["sched"]["G"]), sched_D.load_state_dict(state["sched"]["D"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        ranks = state["ranks"]
        _set_rank_state(ranks[info.rank] if len(ranks) == info.world else ranks[0], pools, dev)
        gp_gen.set_state(state["gp_generator"])

    def save(at: int) -> Path | None:
        # every rank hands its pools and RNG states to rank 0, which alone writes
        mine = _rank_state(pools, stream, at)
        if info.distributed:
            import torch.distributed as dist

            ranks: list = [None] * info.world if info.is_main else None
            dist.gather_object(mine, ranks, dst=0)
        else:
            ranks = [mine]
        if not info.is_main:
            return None
        g_name, g_kw = generator_spec(cfg)
        obj = {"format": "scenestyle-cyclegan/1", "step": at, "config_toml": cfg_text, "config_sha256": cfg_hash,
               "generator": {"arch": g_name, "kwargs": g_kw},
               "models": {k: n.state_dict() for k, n in nets.items()},
               "optim": {"G": opt_G.state_dict(), "D": opt_D.state_dict()},
               "sched": {"G": sched_G.state_dict(), "D": sched_D.state_dict()}, "scaler": scaler.state_dict(),
               "ema": ema.state_dict() if ema is not None else None, "ranks": ranks, "gp_generator": gp_gen.get_state()}
        path = ckpt.checkpoint_path(run, at)
        ckpt.atomic_save(obj, path)
        ckpt.prune(run, t.keep_checkpoints)
        return path

    # ---- fixed sample crops (centre crops of the first files) for the sheets, rank 0 only
    samples = None
    if info.is_main and t.sample_every:
        from scenestyle.train.data import CropRecipe

        pick = lambda dom, n: torch.stack([dataset.crop_one(CropRecipe(dom, i, 1.0, 0.5, 0.5, False, False)) for i in range(min(3, n))]).to(dev)
        samples = (pick(0, len(files_a)), pick(1, len(files_b)))

    def autocast():
        return torch.autocast(dev.type, dtype=amp) if amp is not None else nullcontext()

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dev, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if t.channels_last else x

    loader = make_loader(dataset, stream, step, stop, d.workers, pin_memory=dev.type == "cuda")
    lam_idt = g.lambda_cycle * g.lambda_identity
    stopped, record = "done" if stop == t.steps else "max-steps", {}
    with ckpt.StopFlag() as flag, Reporter(run, t.steps, step, enabled=info.is_main, console=console,
                                            show_bar=show_progress) as report:
        for a, b in loader:
            real_a, real_b = prep(a), prep(b)
            losses: dict[str, torch.Tensor] = {}

            # -- G step: D frozen; adversarial + cycle + identity (or content) losses
            for net in discs:
                net.requires_grad_(False)
            opt_G.zero_grad(set_to_none=True)
            with autocast():
                fake_b = fwd["G_AB"](real_a)
                losses["G_AB"] = g_loss(g.loss, fwd["D_B"](fake_b))
                if g.one_direction:
                    losses["content"] = g.lambda_content * F.l1_loss(F.avg_pool2d(fake_b.float(), 4), F.avg_pool2d(real_a, 4))
                    if lam_idt > 0:
                        losses["idt_B"] = lam_idt * F.l1_loss(fwd["G_AB"](real_b).float(), real_b)
                else:
                    fake_a = fwd["G_BA"](real_b)
                    losses["G_BA"] = g_loss(g.loss, fwd["D_A"](fake_a))
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
            pairs = [("D_B", real_b, pools["B"].query(fake_b))]
            if not g.one_direction:
                pairs.append(("D_A", real_a, pools["A"].query(fake_a)))
            loss_D = torch.zeros((), device=dev)
            for name, real, fake in pairs:
                with autocast():
                    ld = d_loss(g.loss, fwd[name](real).float(), fwd[name](fake.detach()).float())
                if g.loss == "wgan-gp":
                    ld = ld + g.gp_weight * gradient_penalty(fwd[name], real, fake.detach().to(real.dtype), gp_gen)
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
                values |= {"loss_G": ddp.mean_across(g_value, info, dev),
                           "loss_D": ddp.mean_across(float(loss_D.detach()), info, dev),
                           "lr": opt_G.param_groups[0]["lr"]}
                record = report.log(step, values)
            if samples is not None and (step % t.sample_every == 0 or step == stop):
                _sample_sheet(nets, samples, run / "samples" / f"step_{step:08d}.png", g.one_direction, autocast)

            # every rank must agree to stop at the same step
            flags = torch.tensor([float(flag.signum or 0),
                                  float(bool(time_limit) and time.monotonic() - t_start >= time_limit)], device=dev)
            if info.distributed:
                import torch.distributed as dist

                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            if flags[0] > 0 and flag.signum is None:
                flag.signum = int(flags[0])
            if flag.signum is not None:
                stopped = "signal"
            elif flags[1] > 0 and step < stop:
                stopped = "time-limit"
            if step % t.checkpoint_every == 0 or step == stop or stopped in ("signal", "time-limit"):
                last_ckpt = save(step) or last_ckpt
            if stopped in ("signal", "time-limit"):
                break

    digests = tuple(ddp.gather_digests(nets["G_AB"], info))
    code = flag.exit_code if stopped == "signal" else 0
    return TrainResult(run, step, stopped, code, last_ckpt, round(time.monotonic() - t_start, 3), digests, record)


@torch.no_grad()
def _sample_sheet(nets: dict[str, nn.Module], samples: tuple[torch.Tensor, torch.Tensor], path: Path,
                  one_direction: bool, autocast) -> None:
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
