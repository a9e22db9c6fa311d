"""Export a run's generator as a flat ``.safetensors`` that ``scenestyle stylize | upscale | denoise
--weights`` loads, and the ``weights.lock`` entry that pins it.

The file's metadata names the architecture and its kwargs (``arch``, ``kwargs`` as JSON) and the
task, so the loader builds the right network even where the keys alone are ambiguous.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from scenestyle.errors import OutputError, UsageError
from scenestyle.train import checkpoint as ckpt

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
FORMATS = ("scenestyle-cyclegan/1", "scenestyle-srgan/1", "scenestyle-denoise/1")


@dataclass(frozen=True)
class ExportResult:
    """What was written and how to pin it."""

    path: Path  # NAME.safetensors
    name: str  # the model name
    arch: str  # registered architecture (as the detector sees the file)
    kwargs: dict  # its constructor kwargs
    sha256: str  # of the file
    size: int  # bytes
    step: int  # training step of the checkpoint
    ema: bool  # whether the EMA weights were exported
    lock_entry: str  # TOML to paste into weights.lock

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


def _canonical_header(path: Path) -> None:
    """Rewrite a .safetensors header with sorted keys: safetensors writes its metadata in an order
    that varies between runs, so the same checkpoint exported twice would differ in sha256."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the tensor data stays 8-byte aligned, as safetensors writes it
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n :])


def export_generator(
    run: str | Path, name: str, *, out_dir: Path | None = None, fp16: bool = False, ema: bool | None = None
) -> ExportResult:
    """Write ``NAME.safetensors`` (the generator only: G_AB of a CycleGAN run, G of an SR/denoise
    run; flat state dict) from a run folder or checkpoint file."""
    from safetensors.torch import save_file

    from scenestyle.nn import build, describe, detect_arch
    from scenestyle.weights import file_sha256

    if not _NAME.match(name):
        raise UsageError(f"--name {name!r}: use lower-case letters, digits, '.', '_' and '-' (e.g. oil-compact)")
    run = Path(run)
    path = run if run.is_file() else ckpt.latest_checkpoint(run)
    state = ckpt.load(path)
    if state.get("format") not in FORMATS:
        raise UsageError(f"{path} is not a scenestyle training checkpoint ({', '.join(FORMATS)})")
    has_ema = state.get("ema") is not None
    if ema and not has_ema:
        raise UsageError(f"{path} has no EMA weights (train.ema_decay was 0); export with --no-ema")
    use_ema = has_ema if ema is None else ema
    spec = state["generator"]
    sd = state["ema"]["module"] if use_ema else state["models"][spec.get("model", "G_AB")]
    sd = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous() for k, v in sd.items()}

    arch, kwargs = spec["arch"], dict(spec["kwargs"])
    model = build(arch, **kwargs)
    try:  # name the canonical architecture (as the loader detects it), if it builds the same network
        found, found_kw = detect_arch(sd)
        if type(build(found, **found_kw)) is type(model):  # keep what keys cannot show (colour_pool)
            arch, kwargs = found, {**found_kw, **kwargs}
    except ValueError:
        pass
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)  # a self-check
    task = describe(arch, kwargs).task

    folder = Path(out_dir) if out_dir else (run if run.is_dir() else run.parent)
    out = folder / f"{name}.safetensors"
    tmp = folder / f".{name}.safetensors.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            sd,
            str(tmp),
            metadata={
                "arch": arch,
                "kwargs": json.dumps(kwargs),
                "task": task,
                "step": str(state["step"]),
                "ema": str(use_ema),
                "config_sha256": state["config_sha256"],
            },
        )
        _canonical_header(tmp)
        os.chmod(tmp, ckpt.new_file_mode())  # safetensors writes 0600; a trained model is made to be shared
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    sha, size = file_sha256(out), out.stat().st_size
    fields = {
        "task": task,
        "arch": arch,
        "kwargs": kwargs,
        "sha256": sha,
        "size": size,
        "licence": "FILL IN",
        "format": "safetensors",
        "bundled": f"models/{name}.safetensors",
    }
    entry = tomli_w.dumps({"models": {name: fields}}).rstrip("\n")
    return ExportResult(out, name, arch, kwargs, sha, size, int(state["step"]), use_ema, entry)
