"""Choose the device and precision a model runs at, and say why in one sentence.

CPU policy, from measurements: bf16 pays off only where the CPU computes bf16 natively
(``amx_bf16`` or ``avx512_bf16``). On an avx512+VNNI CPU without those, bf16 3x3 convs
ran 2.8x *slower* than fp32; on an AMD EPYC with ``avx512_bf16`` (no AMX) bf16
channels_last convs ran about 2x faster (430 vs 216 GFLOP/s). Even then bf16 is used only
when the model's bf16 output agrees with its fp32 output to >= 40 dB on a check image.
fp16 is never used on CPU: it crashes in some kernels and is emulated (slow) in the rest.

int8: where the CPU has VNNI and no AMX, int8 convs (:mod:`scenestyle.engine.int8`) beat bf16
(3-6x fp32 measured); ``auto`` then picks int8 with the bf16/fp32 choice as its per-photo
fallback, because int8's agreement with fp32 depends on the photo and is checked on each one.
With AMX, bf16 is the fast path and stays the choice.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from scenestyle.engine import int8 as int8_mod
from scenestyle.engine import openvino_backend as ov_backend
from scenestyle.engine.agreement import AGREEMENT_DB, agreement_db, check_image, model_args
from scenestyle.engine.convert import UnitRange
from scenestyle.errors import UsageError
from scenestyle.nn.meta import ModelMeta

__all__ = [
    "Placement",
    "AGREEMENT_DB",
    "cpu_flags",
    "choose_placement",
    "prepare",
    "agreement_db",
    "check_image",
    "bf16_conv_speedup",
    "to_placement",
    "model_args",
]

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_MIN_BF16_SPEEDUP = 1.2  # below this the precision loss buys too little time
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"
BACKENDS = ("auto", "torch", "openvino")


@dataclass(frozen=True)
class Placement:
    """Where and how a model runs; ``reason`` is the sentence shown to users."""

    device: torch.device
    dtype: torch.dtype  # float32 / bfloat16 / float16
    channels_last: bool
    threads: int | None  # CPU threads set from SCENESTYLE_THREADS, or None (torch default)
    reason: str
    int8: bool = False  # int8 convs (dtype is then the float32 the model takes and returns)
    fallback: Placement | None = None  # int8 only: where a photo runs when int8 disagrees with fp32
    backend: str = "torch"  # torch | openvino (CPU only; dtype is then the precision OpenVINO computes at)

    @property
    def precision(self) -> str:
        """Short name of the precision: fp32, bf16, fp16 or int8."""
        return "int8" if self.int8 else _DTYPE_NAMES[self.dtype]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for ``--json`` and ``scenestyle info``."""
        return {
            "device": str(self.device),
            "backend": self.backend,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "threads": self.threads,
            "reason": self.reason,
            "fallback": self.fallback.precision if self.fallback else None,
        }


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags: from /proc/cpuinfo on Linux, else torch's detected capability.

    The fallback is coarse (e.g. ``{"avx512"}``) and never contains a bf16 flag, so CPUs
    we cannot inspect are treated as lacking native bf16 (fp32 is the safe choice).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                # x86 says "flags", aarch64 says "Features"; the first processor suffices.
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    cap = torch.backends.cpu.get_cpu_capability().lower()
    return frozenset() if cap in ("", "default") else frozenset({cap})


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _parse_device(device: str) -> torch.device:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise UsageError(f"invalid device {device!r}; choose one of: {_DEVICE_CHOICES}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"device {device!r} was asked for but CUDA is not available here; use --device cpu")
    dev = torch.device(device)
    index = 0 if dev.index is None else dev.index
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"device {device!r} does not exist: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def _threads_from_env() -> int | None:
    raw = os.environ.get("SCENESTYLE_THREADS")
    if raw is None or raw.strip() == "":
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"SCENESTYLE_THREADS must be a positive integer (got {raw!r}); unset it to use torch's default")
    return n


_SPEEDUP: dict[str, float] = {}


def bf16_conv_speedup(device: torch.device | str = "cpu") -> float:
    """Measured throughput ratio bf16 / fp32 of a channels_last 64->64 3x3 conv at 192x192 (cached).

    The two precisions run interleaved and each keeps its best time, so a burst of load from
    other processes hits both alike instead of deciding the outcome (seen: 0.9x on a busy
    machine with back-to-back runs, 2.0x when idle).
    """
    device = torch.device(device)
    if str(device) in _SPEEDUP:
        return _SPEEDUP[str(device)]
    conv = nn.Conv2d(64, 64, 3, padding=1).to(device).to(memory_format=torch.channels_last).eval()
    x = torch.randn(1, 64, 192, 192, device=device).contiguous(memory_format=torch.channels_last)
    cases = {dtype: (copy.deepcopy(conv).to(dtype), x.to(dtype)) for dtype in (torch.float32, torch.bfloat16)}
    best = {dtype: float("inf") for dtype in cases}
    with torch.inference_mode():
        for round_ in range(6):  # round 0 warms up kernels and caches
            for dtype, (c, xi) in cases.items():
                t0 = time.perf_counter()
                c(xi)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if round_:
                    best[dtype] = min(best[dtype], time.perf_counter() - t0)
    ratio = best[torch.float32] / best[torch.bfloat16]
    _SPEEDUP[str(device)] = ratio
    return ratio


def _check_precision(precision: str) -> None:
    if precision not in _PRECISIONS:
        raise UsageError(f"invalid precision {precision!r}; choose one of: {', '.join(_PRECISIONS)}")


def _threads_note(threads: int | None) -> str:
    return f"; {threads} CPU threads from SCENESTYLE_THREADS" if threads is not None else ""


def choose_placement(
    device: str = "auto",
    precision: str = "auto",
    model: nn.Module | None = None,
    meta: ModelMeta | None = None,
    probe: Callable[[torch.device], float] | None = None,
    int8: bool = True,
    backend: str = "torch",
) -> Placement:
    """Pick device, dtype and memory format for ``model`` (described by ``meta``, given with it);
    invalid or impossible requests raise UsageError.

    ``probe(device)`` returns the bf16/fp32 conv throughput ratio (default: measured by
    :func:`bf16_conv_speedup`); tests inject a fixed figure. With ``model=None`` the
    agreement check is skipped and the reason says so. ``SCENESTYLE_THREADS``, when set,
    is applied with ``torch.set_num_threads``. ``int8=False`` is for callers that cannot
    calibrate per photo (evaluation): auto then never picks int8 and asking for it raises.
    ``backend``: ``auto`` runs OpenVINO on the CPU where it is installed and can run the model,
    else torch; ``openvino`` insists (UsageError when it cannot); CUDA is always torch.
    """
    if (model is None) != (meta is None):
        raise ValueError("choose_placement needs a model and its meta together")
    _check_precision(precision)
    dev = _parse_device(device)
    threads = _threads_from_env()
    if threads is not None:
        torch.set_num_threads(threads)
    note = _threads_note(threads)
    if precision == "int8" and (dev.type != "cpu" or not int8):
        where = "on CPU only" if dev.type != "cpu" else "only where each photo is calibrated (stylize, upscale, denoise)"
        raise UsageError(f"--precision int8 runs {where}; choose auto, fp32, bf16" + (" or fp16" if dev.type != "cpu" else ""))
    if backend not in BACKENDS:
        raise UsageError(f"invalid backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "openvino" and dev.type != "cpu":
        raise UsageError(f"--backend openvino runs on the CPU; {dev} runs torch (use --backend auto or torch)")
    if backend != "torch" and dev.type == "cpu" and precision != "int8":
        why = ov_backend.blocker(model)
        if why is None:
            return _openvino_placement(dev, precision, model, meta, threads, note)
        if backend == "openvino":
            raise UsageError(f"--backend openvino cannot run here: {why}; use --backend torch")
        note += f"; torch, not OpenVINO: {why}"
    elif backend == "openvino":
        raise UsageError("--precision int8 runs on the torch backend; use --backend torch, or auto/fp32/bf16 with OpenVINO")
    if dev.type != "cpu":
        dtype, reason = _cuda_precision(dev, precision, model, meta)
        return Placement(device=dev, dtype=dtype, channels_last=True, threads=threads, reason=reason + note)
    flags = cpu_flags()
    vnni = [f for f in int8_mod.VNNI_FLAGS if f in flags]
    blocker = int8_mod.int8_blocker(model, meta) if model is not None else None
    if precision == "int8":
        if blocker:
            raise UsageError(f"--precision int8 cannot run this model: {blocker}; choose auto, fp32 or bf16")
        fallback = Placement(dev, torch.float32, True, threads, "fp32 channels_last on CPU, int8's fallback")
        has = f"CPU has {vnni[0]}" if vnni else "CPU lacks VNNI, so int8 may be slow"
        return Placement(
            dev,
            torch.float32,
            False,
            threads,
            int8=True,
            fallback=fallback,
            reason=(
                f"int8 convs on CPU, as asked (--precision int8; {has}); a photo whose int8 result is < {AGREEMENT_DB:.0f} dB "
                f"from fp32 on its check crops runs fp32" + note
            ),
        )
    dtype, reason = _cpu_precision(precision, model, meta, probe or bf16_conv_speedup)
    chosen = Placement(device=dev, dtype=dtype, channels_last=True, threads=threads, reason=reason + note)
    if precision != "auto" or not int8 or not vnni or "amx_bf16" in flags:
        return chosen
    if model is None:
        return dataclasses.replace(
            chosen,
            reason=chosen.reason
            + (
                f"; CPU has {vnni[0]} (no AMX), so a model without instance norm, depthwise convs or a noise-level input "
                "runs int8 convs on each photo "
                f"whose int8 result is >= {AGREEMENT_DB:.0f} dB from fp32"
            ),
        )
    if blocker:
        return dataclasses.replace(chosen, reason=chosen.reason + f"; no int8 ({blocker})")
    return Placement(
        dev,
        torch.float32,
        False,
        threads,
        int8=True,
        fallback=chosen,
        reason=(
            f"CPU has {vnni[0]} and no AMX: int8 convs, calibrated on each photo and used where they are "
            f">= {AGREEMENT_DB:.0f} dB from fp32 on held-out crops; otherwise {chosen.precision} ({reason})" + note
        ),
    )


def _native_bf16() -> tuple[list[str], str]:
    """The CPU's native bf16 flags, and the words the reasons use for them."""
    native = [f for f in NATIVE_BF16_FLAGS if f in cpu_flags()]
    if not native:
        return native, "CPU lacks avx512_bf16 and amx_bf16"
    return native, f"CPU has {' and '.join(native)}" + ("" if "amx_bf16" in native else " (no AMX)")


def _openvino_placement(
    dev: torch.device, precision: str, model: nn.Module | None, meta: ModelMeta | None, threads: int | None, note: str
) -> Placement:
    """OpenVINO on the CPU: bf16 where the CPU computes it natively and the model agrees with its
    torch fp32 output to AGREEMENT_DB, else fp32 (``auto``); or the precision asked for."""
    native, has = _native_bf16()

    def placed(dtype: torch.dtype, reason: str) -> Placement:
        return Placement(dev, dtype, False, threads, f"OpenVINO {ov_backend.version()}: {reason}{note}", backend="openvino")

    if precision == "fp16":
        raise UsageError("--precision fp16 does not run on OpenVINO on the CPU; choose auto, fp32 or bf16")
    if precision != "auto":
        return placed(_DTYPES[precision], f"{precision} on CPU, as asked (--precision {precision}); {has}")
    if not native:
        return placed(torch.float32, f"{has}, so bf16 would be emulated: fp32")
    if model is None:
        return placed(torch.bfloat16, f"{has}: bf16 where the model's output is >= {AGREEMENT_DB:.0f} dB from fp32, else fp32")
    db = ov_backend.agreement_db(model, meta, "bf16", threads)
    if db < AGREEMENT_DB:
        return placed(torch.float32, f"{has}, but the model's bf16 output is only {db:.1f} dB from fp32 (< {AGREEMENT_DB:.0f}): fp32")
    return placed(torch.bfloat16, f"{has}: bf16, the model's output {db:.1f} dB from fp32 (>= {AGREEMENT_DB:.0f})")


def _cpu_precision(
    precision: str, model: nn.Module | None, meta: ModelMeta | None, probe: Callable[[torch.device], float]
) -> tuple[torch.dtype, str]:
    cpu = torch.device("cpu")
    native, has = _native_bf16()
    if precision == "fp16":
        raise UsageError("fp16 is not supported on CPU (it crashes or is slow there); use bf16 or fp32")
    if precision == "fp32":
        return torch.float32, "fp32 channels_last on CPU, as asked (--precision fp32)"
    if precision == "bf16":
        warn = "" if native else " (emulated bf16, likely slower than fp32)"
        return torch.bfloat16, f"bf16 channels_last on CPU, as asked (--precision bf16); {has}{warn}"
    # auto
    if not native:
        return torch.float32, f"{has}, so bf16 would be emulated and slower: fp32 channels_last"
    speedup = probe(cpu)
    if speedup < _MIN_BF16_SPEEDUP:
        return torch.float32, f"{has} but bf16 convs measured only {speedup:.1f}x fp32 (< {_MIN_BF16_SPEEDUP}): fp32 channels_last"
    if model is None:
        return torch.bfloat16, f"{has}: bf16 convs measured {speedup:.1f}x fp32; no model given, so bf16 output agreement not checked"
    db = agreement_db(model, meta, torch.bfloat16, cpu)
    if db < AGREEMENT_DB:
        return torch.float32, (
            f"{has} and bf16 convs measured {speedup:.1f}x fp32, but model bf16 output is only {db:.1f} dB "
            f"from fp32 (< {AGREEMENT_DB:.0f}): fp32 channels_last"
        )
    return torch.bfloat16, (
        f"{has}: bf16 convs measured {speedup:.1f}x fp32; model bf16 output {db:.1f} dB from fp32 (>= {AGREEMENT_DB:.0f})"
    )


def _cuda_precision(dev: torch.device, precision: str, model: nn.Module | None, meta: ModelMeta | None) -> tuple[torch.dtype, str]:
    bf16_ok = torch.cuda.is_bf16_supported()
    name = torch.cuda.get_device_name(dev)
    if precision == "bf16" and not bf16_ok:
        raise UsageError(f"bf16 is not supported on {name} ({dev}); use fp16 or fp32")
    if precision in ("fp32", "bf16", "fp16"):
        return _DTYPES[precision], f"{precision} on {name} ({dev}), as asked (--precision {precision})"
    if model is None:
        return torch.float16, f"fp16 on {name} ({dev}); no model given, so fp16 output agreement not checked"
    db = agreement_db(model, meta, torch.float16, dev)
    if db >= AGREEMENT_DB:
        return torch.float16, f"fp16 on {name} ({dev}): model fp16 output {db:.1f} dB from fp32 (>= {AGREEMENT_DB:.0f})"
    fallback = "bf16" if bf16_ok else "fp32"
    return _DTYPES[fallback], (
        f"{fallback} on {name} ({dev}): model fp16 output only {db:.1f} dB from fp32 (< {AGREEMENT_DB:.0f})"
        + ("" if bf16_ok else " and the GPU lacks bf16")
    )


def prepare(model: nn.Module, meta: ModelMeta, placement: Placement) -> nn.Module:
    """Move and cast ``model`` in place to the placement (device, dtype, memory format); eval mode.

    An int8 placement returns an :class:`~scenestyle.engine.int8.Int8Model` (to be fitted on
    each photo) whose ``fallback`` is ``model`` prepared at ``placement.fallback``.
    """
    if placement.backend == "openvino":
        return ov_backend.compile_model(model, meta, placement.precision, placement.threads)
    if placement.int8:
        assert placement.fallback is not None
        quantised = int8_mod.Int8Model(model, fallback=model, chains=meta.int8_chains)
        prepare(model, meta, placement.fallback)
        return quantised.eval()
    model = model.to(device=placement.device, dtype=placement.dtype)
    if placement.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def to_placement(x: torch.Tensor, placement: Placement, model: nn.Module | None = None) -> torch.Tensor:
    """``x`` on the placement's device, dtype and memory format, as ``model``'s input."""
    if placement.backend == "openvino":  # float32 NCHW in; OpenVINO computes at its own precision
        return x.to(torch.float32)
    # a model that maps its input's value range itself (UnitRange) takes float32 and casts after
    dtype = model.input_dtype if isinstance(model, UnitRange) else None
    x = x.to(device=placement.device, dtype=dtype or placement.dtype)
    return x.contiguous(memory_format=torch.channels_last) if placement.channels_last else x
