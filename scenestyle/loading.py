"""Build a ready-to-run model from a weights spec: resolve, verify, read, build, load strictly.

``--weights`` (or ``--model``) → :func:`load_model`: ``weights.resolve`` finds and verifies the
file, :func:`read_state_dict` reads its tensors, the architecture comes from the weights.lock
entry, ``--arch``, the exported metadata or ``nn.detect_arch``, ``nn.build`` makes the module
and ``nn.describe`` its :class:`~scenestyle.nn.ModelMeta`. The engine gets both.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import UsageError, WeightsError
from .weights import ProgressCallback, resolve
from .weights.lock import LockArg

if TYPE_CHECKING:
    from .nn.meta import ModelMeta


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with frozen parameters, what the engine needs to know about it, and
    where its weights came from."""

    module: nn.Module
    meta: ModelMeta
    name: str
    kwargs: Mapping[str, Any]
    sha256: str
    path: Path

    @property
    def arch(self) -> str:
        """The registered architecture name."""
        return self.meta.arch

    @property
    def task(self) -> str:
        """ "style", "upscale" or "denoise"."""
        return self.meta.task


# Wrappers a training script puts the weights under, tried in this order.
_WRAPPERS = ("params_ema", "params", "state_dict")


def read_state_dict(path: Path, state_dict_key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, unwrapped (params_ema / params / state_dict / ``key``) and DDP-stripped."""
    path = Path(path)
    try:
        if path.name.lower().endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            # weights_only: a weights file must never be able to run code on load.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise WeightsError(
                f"{path} is not a plain weights file: unpickling it needs more than tensors and containers "
                "(scenestyle loads with weights_only=True); re-save its state_dict with torch.save or as .safetensors"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights {path}: corrupt or not a PyTorch file ({first})") from None
    except OSError as exc:
        raise WeightsError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # zip/pickle/safetensors readers raise assorted types on damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights {path}: corrupt or truncated ({first})") from None

    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
    if state_dict_key is not None:
        if state_dict_key not in obj:
            raise WeightsError(f"{path} has no {state_dict_key!r} entry; top-level keys: {', '.join(map(str, list(obj)[:8]))}")
        obj = obj[state_dict_key]
    for key in _WRAPPERS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: the state dict is a {type(obj).__name__}, not a mapping of names to tensors")
    bad = [(k, v) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        k, v = bad[0]
        raise WeightsError(
            f"{path} holds {len(bad)} non-tensor entr{'y' if len(bad) == 1 else 'ies'} (e.g. {k!r}: {type(v).__name__}); "
            "it is a training checkpoint, not a state dict: give the key of its weights"
        )
    sd = {str(k): v for k, v in obj.items()}
    if sd and all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _registry():
    # Imported late: scenestyle.nn registers the architectures as a side effect of its import.
    from . import nn as snn
    from .nn import _registry

    return snn, _registry


def _detect(sd: Mapping[str, torch.Tensor], path: Path) -> tuple[str, dict[str, Any]]:
    snn, _ = _registry()
    try:
        found = snn.detect_arch(sd)
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"cannot tell which architecture {path.name} is for ({exc}); pass --arch") from None
    name, kwargs = found
    return str(name), dict(kwargs)


def _exported_arch(path: Path) -> tuple[str, dict[str, Any]] | None:
    """``(arch, kwargs)`` from the metadata ``scenestyle train export`` writes into a .safetensors
    (keys alone cannot tell some layouts apart); None for other files. Strict loading checks it."""
    if not path.name.lower().endswith(".safetensors"):
        return None
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        arch, kwargs = meta.get("arch"), json.loads(meta.get("kwargs", "null"))
    except Exception:  # unreadable metadata: fall back to detection from the keys
        return None
    return (str(arch), dict(kwargs)) if arch and isinstance(kwargs, dict) else None


def _accepted(builder: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    # With --arch forcing another architecture, detected kwargs of the real one (num_conv, ...)
    # would only raise TypeError; keep the ones the forced builder takes, so the mismatch is
    # reported as missing/unexpected keys instead.
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _drop_instance_norm_stats(sd: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    # Official CycleGAN checkpoints saved with torch 0.4 carry running stats for InstanceNorm layers
    # that do not track them; the reference loader (pix2pix `__patch_instance_norm_state_dict`)
    # drops exactly these keys, so do the same and nothing more.
    norms = {
        name for name, m in module.named_modules() if isinstance(m, nn.modules.instancenorm._InstanceNorm) and not m.track_running_stats
    }
    if not norms:
        return sd
    stats = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in sd.items() if not (k.rpartition(".")[0] in norms and k.rpartition(".")[2] in stats)}


def _examples(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _fit(module: nn.Module, sd: dict[str, torch.Tensor], path: Path, arch: str, archs: list[str]) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {_examples(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {_examples(unexpected)})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of other shape (e.g. {k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)})")
        raise WeightsError(
            f"weights {path.name} do not fit {arch}: {', '.join(parts)}; "
            f"if the architecture is wrong pass --arch, one of: {', '.join(archs)}"
        )
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"weights {path.name} do not fit {arch}: {first}") from None


def load_model(
    spec: str,
    *,
    arch: str | None = None,
    task: str | None = None,
    offline: bool = False,
    progress: ProgressCallback | None = None,
    lock: LockArg = None,
) -> LoadedModel:
    """Resolve ``spec`` (lock name, path or hf:// URI), build its architecture and load the weights strictly."""
    rw = resolve(spec, offline=offline, task=task, progress=progress, lock=lock)
    entry = rw.entry
    sd = read_state_dict(rw.path, entry.state_dict_key if entry else None)

    snn, registry = _registry()
    archs = sorted(snn.meta.TABLE)  # what the engine can run
    if entry is not None and (arch is None or arch == entry.arch):
        arch_name, kwargs = entry.arch, dict(entry.kwargs)
    elif arch is None:
        arch_name, kwargs = _exported_arch(rw.path) or _detect(sd, rw.path)
    else:
        arch_name = arch
        try:
            kwargs = _detect(sd, rw.path)[1]
        except WeightsError:  # an unrecognisable file may still fit the forced arch's defaults
            kwargs = dict(entry.kwargs) if entry else {}
    if arch_name not in registry.ARCHS:
        raise UsageError(f"unknown architecture {arch_name!r}; choose one of: {', '.join(archs)}")
    if arch_name not in archs:  # e.g. --arch of a discriminator: it may load, but nothing could run it
        raise UsageError(f"{arch_name!r} is not an image model scenestyle can run; choose one of: {', '.join(archs)}")
    builder = registry.ARCHS[arch_name]
    kwargs = _accepted(builder, kwargs)
    try:
        module = registry.build(arch_name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"cannot build {arch_name} with {kwargs} for {rw.path.name}: {exc}") from None

    sd = _drop_instance_norm_stats(sd, module)
    _fit(module, sd, rw.path, arch_name, archs)
    module.eval().requires_grad_(False)

    meta = snn.describe(arch_name, kwargs)
    if entry is not None and entry.sigma is not None and not meta.takes_sigma:
        # A fixed-σ denoiser removes this much noise from every photo, however clean: the
        # denoise task compares it with each photo's estimated noise and warns when it is far more.
        meta = dataclasses.replace(meta, fixed_sigma=entry.sigma / 255.0)
    if entry is not None and entry.strokes is not None:
        meta = dataclasses.replace(meta, strokes=entry.strokes)
    if task is not None and meta.task != task:
        raise WeightsError(f"weights {rw.name} are for the {meta.task} task ({arch_name}), but this command needs {task}")
    return LoadedModel(
        module=module,
        meta=meta,
        name=entry.name if entry else spec,
        kwargs=MappingProxyType(dict(kwargs)),
        sha256=rw.sha256,
        path=rw.path,
    )
