"""Choose the device and precision a model runs at, and say why in one sentence.

CPU: bf16 pays off only where the CPU computes it natively (``amx_bf16`` or ``avx512_bf16``);
elsewhere it is emulated and slower than fp32. So ``auto`` picks bf16 where the CPU has one of
those flags and the model's bf16 output agrees with its fp32 output to >= ``AGREEMENT_DB`` on a
check image, else fp32; the same rule holds on the torch and the OpenVINO backend. fp16 is never
used on the CPU: it crashes in some kernels and is emulated (slow) in the rest.

CUDA: fp16 where the model's fp16 output agrees with fp32 to ``AGREEMENT_DB``, else bf16 where
the GPU has it, else fp32.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

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
    "to_placement",
    "model_args",
]

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
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
    backend: str = "torch"  # torch | openvino (CPU only; dtype is then the precision OpenVINO computes at)

    @property
    def precision(self) -> str:
        """Short name of the precision: fp32, bf16 or fp16."""
        return _DTYPE_NAMES[self.dtype]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for ``--json`` and ``scenestyle info``."""
        return {
            "device": str(self.device),
            "backend": self.backend,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "threads": self.threads,
            "reason": self.reason,
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
    backend: str = "torch",
) -> Placement:
    """Pick device, dtype and memory format for ``model`` (described by ``meta``, given with it);
    invalid or impossible requests raise UsageError.

    With ``model=None`` the agreement check is skipped and the reason says so.
    ``SCENESTYLE_THREADS``, when set, is applied with ``torch.set_num_threads``.
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
    if backend not in BACKENDS:
        raise UsageError(f"invalid backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "openvino" and dev.type != "cpu":
        raise UsageError(f"--backend openvino runs on the CPU; {dev} runs torch (use --backend auto or torch)")
    if backend != "torch" and dev.type == "cpu":
        why = ov_backend.blocker(model)
        if why is None:
            return _openvino_placement(dev, precision, model, meta, threads, note)
        if backend == "openvino":
            raise UsageError(f"--backend openvino cannot run here: {why}; use --backend torch")
        note += f"; torch, not OpenVINO: {why}"
    if dev.type != "cpu":
        dtype, reason = _cuda_precision(dev, precision, model, meta)
    else:
        dtype, reason = _cpu_precision(precision, model, meta)
    return Placement(device=dev, dtype=dtype, channels_last=True, threads=threads, reason=reason + note)


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
    db = ov_backend.agreement_db(model, meta, "bf16", threads, cpu=f"{cpu_model_name()}|{','.join(sorted(cpu_flags()))}")
    if db < AGREEMENT_DB:
        return placed(torch.float32, f"{has}, but the model's bf16 output is only {db:.1f} dB from fp32 (< {AGREEMENT_DB:.0f}): fp32")
    return placed(torch.bfloat16, f"{has}: bf16, the model's output {db:.1f} dB from fp32 (>= {AGREEMENT_DB:.0f})")


def _cpu_precision(precision: str, model: nn.Module | None, meta: ModelMeta | None) -> tuple[torch.dtype, str]:
    """torch on the CPU: bf16 where the CPU computes it natively and the model agrees with its fp32
    output to AGREEMENT_DB, else fp32 (``auto``); or the precision asked for. channels_last either way."""
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
    if model is None:
        return torch.bfloat16, f"{has}: bf16 channels_last where the model's output is >= {AGREEMENT_DB:.0f} dB from fp32, else fp32"
    db = agreement_db(model, meta, torch.bfloat16, torch.device("cpu"))
    if db < AGREEMENT_DB:
        return torch.float32, (
            f"{has}, but the model's bf16 output is only {db:.1f} dB from fp32 (< {AGREEMENT_DB:.0f}): fp32 channels_last"
        )
    return torch.bfloat16, f"{has}: bf16 channels_last, the model's output {db:.1f} dB from fp32 (>= {AGREEMENT_DB:.0f})"


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

    An OpenVINO placement returns the model compiled for it instead.
    """
    if placement.backend == "openvino":
        return ov_backend.compile_model(model, meta, placement.precision, placement.threads)
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
