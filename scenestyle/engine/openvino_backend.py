"""CPU inference through OpenVINO: convert a loaded model once, compile it per precision, run it
where the torch path would.

OpenVINO's CPU plugin fuses convolutions with their activations and picks AMX / AVX-512 kernels
itself, which makes it several times faster than torch eager on the same CPU (``benchmarks/``).
An :class:`OVModel` takes and returns float32 NCHW torch tensors like the module it replaces, so
tiles, feathering, batching, ``--strength`` and streamed outputs work unchanged.

Caches, both under ``scenestyle.cache.cache_root() / "openvino"``: the converted model (IR,
float32 weights) keyed by a hash of the module's class, configuration and weights, so a second
run skips the conversion; and OpenVINO's own compiled-blob cache (``CACHE_DIR``), so it skips
most of the compilation too. Inputs keep a dynamic batch, height and width: one compiled model
serves every tile and photo size.

A model with instance norms runs whole through OpenVINO (its norms see the whole image); where it
must be tiled, the tiles run on its float32 torch module, which is given the whole image's
statistics first (``engine.tiles.torch_twin``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from scenestyle.cache import cache_root, folder_size
from scenestyle.engine.agreement import check_image, forward_at, model_args
from scenestyle.engine.openvino_import import import_openvino, telemetry_declined
from scenestyle.errors import OutputError
from scenestyle.imaging.atomic import atomic_file
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn.meta import ModelMeta, split_finish

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}  # scenestyle's name -> OpenVINO's INFERENCE_PRECISION_HINT


def version() -> str | None:
    """The installed OpenVINO's version, or None when it cannot be imported."""
    try:
        openvino = import_openvino()
    except Exception:  # noqa: BLE001 - a broken install is "not available", said in one line by the caller
        return None
    return openvino.__version__.split("-")[0]


def cache_dir() -> Path:
    """Converted models and OpenVINO's compiled blobs."""
    return cache_root() / "openvino"


def cache_bytes() -> int:
    """Size of :func:`cache_dir` on disk."""
    return folder_size(cache_dir())


def blocker(model: nn.Module | None) -> str | None:
    """Why OpenVINO cannot run ``model`` here, or None when it can (``model`` None: only the install)."""
    if version() is None:
        return "the openvino package is not installed (pip install openvino)"
    return None


class OVModel(nn.Module):
    """A compiled OpenVINO model behind the module interface the engine calls: ``forward(x, *args)``
    with ``x`` float32 N×C×H×W and an FFDNet's σ as a float. ``reference`` is the float32 torch
    module it was converted from (the memory estimate runs it on a small input); ``finish``, when
    given, is the module's parameter-free last stage (``nn.meta.split_finish``), run in float32
    PyTorch on what OpenVINO returns: OpenVINO keeps every buffer of its graph allocated for the
    whole pass, PyTorch frees a filter's window buffers as it goes."""

    def __init__(self, compiled, reference: nn.Module, precision: str, finish: nn.Module | None = None):
        super().__init__()
        self.compiled, self.precision = compiled, precision
        self.request = compiled.create_infer_request()
        object.__setattr__(self, "reference", reference)  # not a submodule: its layers never run here
        object.__setattr__(self, "finish", finish)

    def forward(self, x: Tensor, *args: float) -> Tensor:
        inputs = [x.detach().to(torch.float32).contiguous().numpy()]
        inputs += [np.full((x.shape[0],), a, dtype=np.float32) for a in args]
        out = torch.from_numpy(np.array(self.request.infer(inputs, share_inputs=True)[0], dtype=np.float32, copy=True))
        if self.finish is None:
            return out
        with torch.inference_mode():
            return self.finish(out)

    def release_memory(self) -> None:
        """Free the activations OpenVINO keeps allocated between calls (the next call allocates again)."""
        self.compiled.release_memory()


def _key(module: nn.Module, meta: ModelMeta, ov_version: str) -> str:
    """Hash of what the converted model depends on: OpenVINO, the module's code and weights."""
    h = hashlib.sha256(f"{ov_version}|{meta.arch}|{meta.takes_sigma}|{module!r}".encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _model_dir(reference: nn.Module, meta: ModelMeta) -> Path:
    """The cache folder of one float32 module's converted model (and its agreement figures)."""
    return cache_dir() / "models" / _key(reference, meta, version() or "")


def _convert(module: nn.Module, meta: ModelMeta, xml: Path):
    """Convert ``module`` (float32) to OpenVINO and save it as ``xml`` (+ .bin), atomically."""
    ov = import_openvino()

    side = 2 * max(meta.size_multiple, 16)
    example: tuple[Tensor, ...] = (torch.rand(1, meta.in_channels, side, side),)
    shapes = [ov.PartialShape([-1, meta.in_channels, -1, -1])]
    if meta.takes_sigma:
        example += (torch.full((1,), 25 / 255),)
        shapes.append(ov.PartialShape([-1]))
    # tracing warns about constants and Python branches on shapes; the shapes the engine feeds are
    # covered by the agreement check and tests, so the warnings would only alarm users. Telemetry is
    # declined again here: a program using scenestyle may have imported OpenVINO first, consenting
    with torch.no_grad(), warnings.catch_warnings(), telemetry_declined():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(module, example_input=example, input=shapes)
    tmp = xml.with_name(f".{xml.stem}.{id(module):x}.tmp.xml")
    try:
        xml.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(tmp), compress_to_fp16=False)
        tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
        tmp.replace(xml)  # the .xml last: a model is there only once both files are
    except (OSError, RuntimeError):  # a cache that cannot be written costs a conversion per run, nothing else
        for p in (tmp, tmp.with_suffix(".bin")):
            with contextlib.suppress(OSError):
                p.unlink()
    return converted


# Weak keys: compiled models live as long as the torch module they came from.
_COMPILED: weakref.WeakKeyDictionary[nn.Module, dict[str, OVModel]] = weakref.WeakKeyDictionary()


def compile_model(module: nn.Module, meta: ModelMeta, precision: str, threads: int | None = None) -> OVModel:
    """``module`` compiled for the CPU at ``precision`` (fp32 | bf16); converted at most once per
    machine (the IR cache) and compiled at most once per process and precision."""
    ov = import_openvino()

    per_module = _COMPILED.setdefault(module, {})
    if precision in per_module:
        return per_module[precision]
    reference = copy.deepcopy(module).to(torch.float32).eval()
    body, finish = split_finish(reference)  # the convs compiled, a fixed last filter left to PyTorch
    xml = _model_dir(body, meta) / "model.xml"
    core = ov.Core()
    source = str(xml) if xml.is_file() and xml.with_suffix(".bin").is_file() else _convert(body, meta, xml)
    config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    blobs, cached = cache_dir() / "compiled", False
    try:
        blobs.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(blobs)})
        cached = True
    except OSError:
        pass
    try:
        net = core.compile_model(source, "CPU", config)
    except RuntimeError:
        if not cached:
            raise
        # the blob cache is shared: another process (a torchrun rank on this machine) may be writing
        # this very blob, which OpenVINO reports as a filesystem error; the cache only saves time
        net = ov.Core().compile_model(source, "CPU", config)
    compiled = OVModel(net, reference, precision, finish)
    per_module[precision] = compiled
    return compiled


def agreement_db(module: nn.Module, meta: ModelMeta, precision: str, threads: int | None = None, cpu: str = "") -> float:
    """PSNR (dB over the model's value range) of the OpenVINO model at ``precision`` vs the torch
    fp32 module on the check image. Cached per module and precision in the process, and on disk
    beside the converted model per ``cpu`` (its name and flags: the bf16 kernels differ between
    CPUs), so later runs skip the two check passes."""
    cache = _AGREEMENT.setdefault(module, {})
    if precision in cache:
        return cache[precision]
    reference = copy.deepcopy(module).to(torch.float32).eval()
    tag = hashlib.sha256(cpu.encode()).hexdigest()[:16]
    saved = _model_dir(reference, meta) / f"agreement-{precision}-{tag}.txt"
    try:
        cache[precision] = float(saved.read_text())
        return cache[precision]
    except (OSError, ValueError):
        pass
    x = check_image(meta)
    ref = forward_at(reference, meta, x, torch.device("cpu"), torch.float32, False)
    out = compile_model(module, meta, precision, threads)(x, *model_args(meta))
    lo, hi = meta.value_range
    cache[precision] = psnr(out.numpy(), ref.numpy(), peak=float(hi - lo))
    try:  # repr round-trips the float exactly; an unwritable cache only costs the check next time
        saved.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(saved) as f:
            f.write(repr(cache[precision]).encode())
    except (OSError, OutputError):
        pass
    return cache[precision]


_AGREEMENT: weakref.WeakKeyDictionary[nn.Module, dict[str, float]] = weakref.WeakKeyDictionary()
