"""`scenestyle info`: versions, device, precision chosen and why, cache, models."""

from __future__ import annotations

import json
import os
import platform
from typing import Annotated

import typer

from scenestyle.cli import _console
from scenestyle.cli._console import handle_errors


@handle_errors
def info(
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto | fp32 | bf16 | fp16")] = "auto",
    backend: Annotated[str, typer.Option("--backend", help="auto | torch | openvino")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")] = False,
) -> None:
    """Show versions, the device and precision auto picks (and why), the weights cache and models."""
    import huggingface_hub
    import PIL
    import torch
    from huggingface_hub import constants as hf_constants

    import scenestyle
    from scenestyle.cache import folder_size
    from scenestyle.engine import openvino_backend as ov
    from scenestyle.engine.device import choose_placement, cpu_flags, cpu_model_name
    from scenestyle.evaluate.style import critic_cache_dir
    from scenestyle.weights import cache_path, load_lock

    placement = choose_placement(device, precision, backend=backend)
    critics = critic_cache_dir()
    flags = sorted(
        f for f in cpu_flags() if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
    )
    report = {
        "scenestyle": scenestyle.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "openvino": ov.version() or "not installed",
        "cuda": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu": f"{cpu_model_name()} ({platform.machine()}, {os.cpu_count()} logical cores)",
        "cpu_flags": flags,
        "threads": torch.get_num_threads(),
        "device": str(placement.device),
        "backend": placement.backend,
        "precision": placement.precision,
        "channels_last": placement.channels_last,
        "reason": placement.reason,
        "hf_cache": hf_constants.HF_HUB_CACHE,
        "openvino_cache": f"{ov.cache_dir()} ({ov.cache_bytes() / 1e6:.1f} MB: converted models and compiled blobs)",
        "critic_cache": f"{critics} ({folder_size(critics) / 1e6:.1f} MB: critics `eval style` trained)",
        "models": {name: bool(cache_path(name)) for name in sorted(load_lock())},
    }
    if json_out:
        _console.out.print_json(json.dumps(report))
        return
    for key, value in report.items():
        if key == "models":
            value = ", ".join(f"{n}{'' if here else ' (not here)'}" for n, here in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        _console.out.print(f"[bold]{key:>16}[/]  {value}", soft_wrap=True)
