"""What every trainer's loop shares: device and precision, seeding, the run folder and its
config, per-rank RNG state, checkpoint writing and reading, and the stop decision all ranks agree on.

The loops themselves (``cyclegan.py``, ``sr_denoise.py``) stay explicit and read top to bottom; the
pieces here are the ones that would otherwise be copied between them.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scenestyle.errors import OutputError, UsageError
from scenestyle.train import checkpoint as ckpt
from scenestyle.train import ddp
from scenestyle.train.config import apply_resume_overrides, kind_of, load_config, to_toml
from scenestyle.train.data import DataStream
from scenestyle.train.ema import EMA
from scenestyle.train.optim import retarget
from scenestyle.train.schemas import LoopConfig, OptimConfig


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    run: Path  # the run folder
    step: int  # steps completed
    stopped: str  # done | max-steps | time-limit | signal
    exit_code: int  # 0, or 130 / 143 after SIGINT / SIGTERM
    checkpoint: Path | None  # the last checkpoint written (rank 0)
    seconds: float  # wall time of this invocation
    digests: tuple[str, ...]  # sha256 of the exported generator's weights on every rank (equal when in sync)
    metrics: dict  # the last metrics record

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["run"], d["checkpoint"] = str(self.run), str(self.checkpoint) if self.checkpoint else None
        return d


def run_guarded(body: Callable[[ddp.DistInfo, float], TrainResult], device: str) -> TrainResult:
    """Join the process group (under torchrun), run ``body(info, t_start)``, and leave the
    process-wide determinism switch and the process group as they were found."""
    t_start = time.monotonic()
    info = ddp.setup(device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    finished = False
    try:
        result = body(info, t_start)
        finished = True
        return result
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        ddp.teardown(info, all_finished=finished)


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


def runtime(t: LoopConfig, device: str, info: ddp.DistInfo, max_steps: int | None) -> tuple[torch.device, torch.dtype | None, int]:
    """``(device, autocast dtype, last step of this invocation)``; switches on deterministic algorithms if asked."""
    dev = resolve_device(device, info)
    amp = resolve_amp(t.amp, dev)
    if t.deterministic:
        torch.use_deterministic_algorithms(True)
    return dev, amp, min(t.steps, max_steps) if max_steps else t.steps


def autocast(device: torch.device, amp: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` for ``amp``, or a no-op context."""
    return torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (networks are initialised from these, identically on every rank)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def place(nets: Mapping[str, nn.Module], device: torch.device, channels_last: bool, info: ddp.DistInfo) -> None:
    """Move the networks to ``device`` (NHWC if asked) and give every rank rank 0's weights."""
    for net in nets.values():
        net.to(device)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        ddp.broadcast_weights(net, info)


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A batch on ``device`` (NHWC if asked)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


# ---- run folder and config

_WRITTEN_BY = re.compile(r"written by `scenestyle train (\w+)`")


def prepare_run(root: type, cfg: Any, run: Path | None, resume: Path | None, overrides: Sequence[str] = ()) -> tuple[Any, Path, str]:
    """The config, run folder and config text. A new run gets ``runs/KIND-DATE-TIME`` by default
    and must have no checkpoints yet; a resumed one reads its ``config.toml`` (which must be of this
    trainer) and applies the cadence ``overrides`` allowed on resume (``train.steps`` …)."""
    kind = kind_of(root)
    if resume is not None:
        text_path = Path(resume) / "config.toml"
        if not text_path.is_file():
            raise UsageError(f"--resume {resume}: not a run folder (no config.toml)")
        found = _WRITTEN_BY.search(text_path.read_text(encoding="utf-8").partition("\n")[0])
        if found and found.group(1).lower() != kind:
            other = found.group(1).lower()
            raise UsageError(f"--resume {resume}: a {other} run; continue it with scenestyle train {other} --resume {resume}")
        cfg = apply_resume_overrides(load_config(text_path, root=root), overrides)
        return cfg, Path(resume), to_toml(cfg)
    assert cfg is not None
    run = Path(run) if run else Path("runs") / time.strftime(f"{kind}-%Y%m%d-%H%M%S")
    if ckpt.list_checkpoints(run):
        raise UsageError(f"--run {run} already has checkpoints; continue it with --resume {run} or pick another --run")
    return cfg, run, to_toml(cfg)


def write_config(run: Path, text: str) -> None:
    """``run/config.toml`` (and ``run/samples/``), replaced atomically: other ranks may be reading it."""
    path = Path(run) / "config.toml"
    try:
        (Path(run) / "samples").mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return
        tmp = path.with_name(f".config.toml.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---- per-rank state, checkpoints


def _numpy_state() -> tuple:
    s = np.random.get_state()
    return (s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4]))  # plain types: weights_only-loadable


def rank_state(stream: DataStream, step: int, **extra: Any) -> dict:
    """This rank's RNG states and data-stream position (plus ``extra``, e.g. image pools)."""
    rng = ckpt.rng_state()
    rng["numpy"] = _numpy_state()
    return {"rng": rng, "data": stream.state(step), **extra}


def restore_rank_state(ranks: list[dict], info: ddp.DistInfo) -> dict:
    """Set this rank's RNG states from a checkpoint's ``ranks`` (rank 0's when the world size
    changed) and return that rank's record for the trainer's own extras."""
    state = ranks[info.rank] if len(ranks) == info.world else ranks[0]
    rng = dict(state["rng"])
    n = rng["numpy"]
    rng["numpy"] = (n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4])
    ckpt.set_rng_state(rng)
    return state


def training_state(
    nets: Mapping[str, nn.Module],
    opts: Mapping[str, torch.optim.Optimizer],
    scheds: Mapping[str, Any],
    scaler: torch.amp.GradScaler,
    ema: EMA | None,
) -> dict:
    """The checkpoint entries every trainer has: models, optimizers, schedulers, AMP scaler, EMA."""
    return {
        "models": {k: n.state_dict() for k, n in nets.items()},
        "optim": {k: o.state_dict() for k, o in opts.items()},
        "sched": {k: s.state_dict() for k, s in scheds.items()},
        "scaler": scaler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
    }


def load_training_state(
    state: dict,
    nets: Mapping[str, nn.Module],
    opts: Mapping[str, torch.optim.Optimizer],
    scheds: Mapping[str, Any],
    scaler: torch.amp.GradScaler,
    ema: EMA | None,
) -> None:
    """Inverse of ``training_state``."""
    for k, net in nets.items():
        net.load_state_dict(state["models"][k])
    for k, opt in opts.items():
        opt.load_state_dict(state["optim"][k])
    for k, sched in scheds.items():
        sched.load_state_dict(state["sched"][k])
    scaler.load_state_dict(state["scaler"])
    if ema is not None:
        ema.load_state_dict(state["ema"])


def open_latest(run: Path, fmt: str, cfg_hash: str, steps: int) -> tuple[dict, Path]:
    """The newest checkpoint of ``run``, checked to be of format ``fmt``, of this config, and not
    beyond ``steps`` (train.steps of the resumed config)."""
    path = ckpt.latest_checkpoint(run)
    state = ckpt.load(path)
    if state.get("format") != fmt:
        raise UsageError(f"{path} is a {state.get('format', 'unknown')} checkpoint, not {fmt}")
    if state["config_sha256"] != cfg_hash:
        raise UsageError(f"{path} was written with another config than {Path(run) / 'config.toml'} (hash differs)")
    if int(state["step"]) > steps:
        raise UsageError(f"train.steps={steps} is below the {state['step']} steps {run} has done; give a larger value")
    return state, path


def resume_training(
    run: Path,
    fmt: str,
    cfg_hash: str,
    steps: int,
    saver: Checkpointer,
    nets: Mapping[str, nn.Module],
    opts: Mapping[str, torch.optim.Optimizer],
    scheds: Mapping[str, Any],
    scaler: torch.amp.GradScaler,
    ema: EMA | None,
    optim: OptimConfig,
    totals: Mapping[str, int],
    info: ddp.DistInfo,
) -> tuple[int, dict, dict]:
    """Load the newest checkpoint of ``run`` (checked by ``open_latest``) into every training object and
    stretch each optimiser's schedule to its (possibly extended) total; (step, checkpoint, this rank's state)."""
    state, saver.last = open_latest(run, fmt, cfg_hash, steps)
    load_training_state(state, nets, opts, scheds, scaler, ema)
    for k, opt in opts.items():
        retarget(scheds[k], opt, optim, totals[k])
    return int(state["step"]), state, restore_rank_state(state["ranks"], info)


class Checkpointer:
    """Every rank hands its ``rank_state`` to rank 0, which alone writes ``build(ranks)`` atomically and prunes."""

    def __init__(self, run: Path, keep: int, info: ddp.DistInfo):
        self.run, self.keep, self.info = Path(run), keep, info
        self.last: Path | None = None

    def save(self, step: int, mine: dict, build: Callable[[list[dict]], dict]) -> Path | None:
        if self.info.distributed:
            import torch.distributed as dist

            ranks: list | None = [None] * self.info.world if self.info.is_main else None
            dist.gather_object(mine, ranks, dst=0)
        else:
            ranks = [mine]
        if not self.info.is_main:
            return None
        path = ckpt.checkpoint_path(self.run, step)
        ckpt.atomic_save(build(ranks), path)
        ckpt.prune(self.run, self.keep)
        self.last = path
        return path


class StopRule:
    """When to checkpoint and when to leave the loop, agreed by every rank after each step: at
    ``stop``, every ``checkpoint_every`` steps, on SIGINT/SIGTERM on any rank, or past ``time_limit``."""

    def __init__(
        self,
        flag: ckpt.StopFlag,
        *,
        stop: int,
        steps: int,
        time_limit: float | None,
        t_start: float,
        info: ddp.DistInfo,
        device: torch.device,
    ):
        self.flag, self.stop, self.time_limit, self.t_start = flag, stop, time_limit, t_start
        self.info, self.device = info, device
        self.stopped = "done" if stop == steps else "max-steps"

    def after_step(self, step: int, checkpoint_every: int) -> tuple[bool, bool]:
        """``(save a checkpoint now, leave the loop)``."""
        over_time = bool(self.time_limit) and time.monotonic() - self.t_start >= self.time_limit
        flags = torch.tensor([float(self.flag.signum or 0), float(over_time)], device=self.device)
        if self.info.distributed:
            import torch.distributed as dist

            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        if flags[0] > 0 and self.flag.signum is None:
            self.flag.signum = int(flags[0])
        if self.flag.signum is not None:
            self.stopped = "signal"
        elif flags[1] > 0 and step < self.stop:
            self.stopped = "time-limit"
        leave = self.stopped in ("signal", "time-limit")
        return leave or step % checkpoint_every == 0 or step == self.stop, leave

    @property
    def exit_code(self) -> int:
        return self.flag.exit_code if self.stopped == "signal" else 0
