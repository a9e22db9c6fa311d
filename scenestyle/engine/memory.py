"""How much memory a model run may use, and the tile size that fits it.

Free memory comes from CUDA's allocator, or on CPU from ``/proc/meminfo`` capped by the cgroup
limit (what the kernel kills a container at). A model's cost per input pixel is probed once on a
small input. On CPU the budget is capped as well: convolutions reach full speed with tiles of a
few MP, and the machine has other work.
"""

from __future__ import annotations

import math
import os
import weakref

import torch
from torch import Tensor, nn

from scenestyle.engine.device import Placement, model_args, to_placement
from scenestyle.engine.openvino_backend import OVModel
from scenestyle.engine.windows import round_up
from scenestyle.nn.meta import ModelMeta

__all__ = ["available_memory", "bytes_per_input_pixel", "auto_tile", "is_oom", "CPU_WORK_BUDGET"]

_BUDGET_FRACTION = 0.5  # of free memory, for activations of one batch of windows
# The CPU activation budget shrinks as the photo's own buffers (input + output, 12 bytes per RGB
# pixel each) grow, so a 25 MP photo peaks under 2 GB of RSS instead of using whatever is free.
CPU_WORK_BUDGET = (256 << 20, 1 << 30)  # (floor, ceiling)
_CPU_WORK_TOTAL = 5 << 28  # 1.25 GiB shared by the tiles and four photo-sized float buffers
_CPU_ACTIVATION_FACTOR = 4  # live tensors ~ 4x the largest layer output (input, output, skips, workspace)
_CUDA_SAFETY = 1.5
# Output-sized float32 buffers an OpenVINO forward holds at its peak, beyond the activations the
# torch twin shows: its peak RSS grows by 1130-1160 B per input pixel for an x4 SRVGG at bf16 (384
# from the twin + 4 x 192), about 300 for the shipped styles (289 + 4 x 12); one more for margin.
# Without it x4 tiles were sized 3x too big for the budget (25 MP upscale: 1.9 GB peak, not 1.4).
_OV_OUTPUT_BUFFERS = 5


def available_memory(device: torch.device) -> int:
    """Free bytes: CUDA ``mem_get_info``; CPU MemAvailable, capped by a cgroup limit if any."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:  # containers: the cgroup v2 limit is what the kernel kills us at
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(int(free), 0)


_BPP: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, torch.dtype], float]] = weakref.WeakKeyDictionary()


def bytes_per_input_pixel(model: nn.Module, meta: ModelMeta, placement: Placement) -> float:
    """Activation bytes one input pixel costs, from a probe forward on a small input (cached).

    CUDA: measured peak allocation. CPU (no allocator statistics): the largest leaf-module
    output times a factor of 4, covering the layer input, skip connections and workspace.
    """
    per_model = _BPP.setdefault(model, {})
    key = (str(placement.device), placement.dtype)
    if key in per_model:
        return per_model[key]
    side = round_up(32, meta.size_multiple)
    x = to_placement(torch.rand(1, meta.in_channels, side, side), placement, model)
    # a compiled OpenVINO model (maybe inside a wrapper) has no layers to hook: its float32 torch
    # twin stands in, scaled to the precision OpenVINO computes at, plus the float32 output-sized
    # buffers OpenVINO holds besides (its output, the last layers' results, the copy handed back)
    compiled = next((m for m in model.modules() if isinstance(m, OVModel)), None)
    model = compiled.reference if compiled is not None else model
    precision_scale = placement.dtype.itemsize / 4 if compiled is not None else 1.0
    outputs = _OV_OUTPUT_BUFFERS * 4 * meta.out_channels * meta.scale**2 if compiled is not None else 0.0
    args = model_args(meta)
    with torch.inference_mode():
        if placement.device.type == "cuda":
            torch.cuda.synchronize(placement.device)
            base = torch.cuda.memory_allocated(placement.device)
            torch.cuda.reset_peak_memory_stats(placement.device)
            model(x, *args)
            peak = torch.cuda.max_memory_allocated(placement.device) - base
            bpp = _CUDA_SAFETY * peak / (side * side)
        else:
            largest = [0]

            def hook(_m: nn.Module, _a: object, out: object) -> None:
                if isinstance(out, Tensor):
                    largest[0] = max(largest[0], out.numel() * out.element_size())

            leaves = [m for m in model.modules() if not list(m.children())]
            handles = [m.register_forward_hook(hook) for m in leaves]
            try:
                model(x, *args)
            finally:
                for h in handles:
                    h.remove()
            bpp = _CPU_ACTIVATION_FACTOR * largest[0] / (side * side)
    per_model[key] = float(bpp) * precision_scale + outputs
    return per_model[key]


def auto_tile(model: nn.Module, meta: ModelMeta, placement: Placement, hp: int, wp: int, halo: int, batch_size: int, out_bytes: int) -> int:
    """0 (whole image) if an ``hp`` x ``wp`` input fits the memory budget, else the largest core tile
    (a multiple of the model's size multiple) that does, windows ``halo`` wider per side;
    ``out_bytes`` is what the run's output buffer takes."""
    free = available_memory(placement.device)
    if placement.device.type == "cpu":
        free -= out_bytes  # the CPU output buffer competes for the same memory
    budget = _BUDGET_FRACTION * max(free, 0)
    if placement.device.type == "cpu":
        floor, ceiling = CPU_WORK_BUDGET
        budget = min(budget, max(floor, min(ceiling, _CPU_WORK_TOTAL - 4 * out_bytes)))
    # plus the float32 partial sums of one window of output (the blending strip)
    bpp = bytes_per_input_pixel(model, meta, placement) + 4 * meta.out_channels * meta.scale**2
    if hp * wp * bpp <= budget:
        return 0
    side = int(math.sqrt(budget / (bpp * batch_size)))
    multiple = meta.size_multiple
    # below ~64 px the halo dominates and time explodes; the OOM retry still goes lower if needed
    return max(round_up(64, multiple), (side - 2 * halo) // multiple * multiple)


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` is an out-of-memory error of CUDA or of the CPU allocator."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)  # CPU allocator
