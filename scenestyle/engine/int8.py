"""int8 convolutions for CPUs with VNNI, calibrated and checked on each photo.

Why: on a CPU without AMX, bf16 convs reach about 2x fp32 at best, while int8 convs on VNNI
reach 3-6x (``benchmarks/probe_int8.py``). Why per photo: activation ranges calibrated on
synthetic check images left real photos at 35 dB from fp32 (DnCNN-25 on Set12), while ranges
taken from the photo's own crops kept them above 40 dB.

How: every ``nn.Conv2d`` becomes an :class:`Int8Conv` that quantises its input per tensor,
convolves with per-channel int8 weights and hands float32 back, so the rest of the network
(activations, concatenations, upsampling) is untouched float code and any convolutional
architecture works without graph tracing. Inside a chain (an ``nn.Sequential``, or a
container its ``ModelMeta.int8_chains`` names because its forward applies it in order)
a ReLU right after a conv is fused into it, PReLU/LeakyReLU run on quint8, and each link hands
the next a quint8 tensor: no float round trip, which at photo sizes costs more than the conv.
:meth:`Int8Model.fit` records each conv's input and
output ranges on calibration crops of the photo (float forward), then measures int8 against
fp32 on *other* crops; the caller runs the photo at its fallback precision when that agreement
is below ``AGREEMENT_DB``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor, nn

from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn.meta import ModelMeta

__all__ = ["VNNI_FLAGS", "Int8Conv", "Int8Model", "int8_blocker", "sample_crops", "CROP_SIDE"]

VNNI_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
# Side of the square crops calibrated and checked on (rounded up to the model's size multiple).
CROP_SIDE = 64
# Calibration crops and held-out check crops per photo.
CALIBRATION_CROPS, CHECK_CROPS = 4, 2
# int8 is tried only on photos of at least this many crops' area: the fit runs fp32 on about
# eight crops, so it then costs at most ~1/8 of an fp32 pass over the photo.
MIN_PHOTO_CROPS = 64
# After this many photos in a row fail the check, a run stops trying int8.
GIVE_UP_AFTER = 3
# Calibrated ranges are widened by this fraction: crops see only part of the photo.
RANGE_MARGIN = 0.1
# torch >= 2.15 marks quantised tensors deprecated (pytorch#184982); they still work, and
# :func:`_kernels_fail` turns their removal into "no int8" instead of a crash.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel", category=UserWarning)


@lru_cache(maxsize=1)
def _kernels_fail() -> str | None:
    """Why this torch cannot run a quantised conv, or None when a tiny one agrees with fp32."""
    if "x86" not in torch.backends.quantized.supported_engines:
        return "this torch build has no x86 quantised kernels"
    try:
        torch.backends.quantized.engine = "x86"
        with torch.random.fork_rng(devices=[]):  # a fixed probe: the verdict must not vary run to run
            torch.manual_seed(0)
            conv = nn.Conv2d(4, 6, 3, padding=1)
            x = torch.rand(1, 4, 20, 20)
        q = Int8Conv(conv)
        q.mode = "calibrating"
        with torch.no_grad():
            ref = q(x)
        q.freeze(margin=0.0)
        q.mode = "int8"
        with torch.no_grad():
            err = float((q(x) - ref).abs().max())
        span = float(ref.max() - ref.min())
    except Exception as exc:  # noqa: BLE001 - any failure means no int8 on this install
        return f"this torch's quantised conv failed ({type(exc).__name__})"
    # some CPUs' kernels saturate their accumulators (off by ~10 % of the range): no int8 there
    return None if err < 0.02 * span else f"this torch's quantised conv is off by {err / span:.0%} of its range"


def int8_blocker(model: nn.Module, meta: ModelMeta) -> str | None:
    """Why ``model`` (described by ``meta``) cannot run int8 here, or None when it can."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return "the model has no convolutions"
    if any(isinstance(m, (nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)) for m in model.modules()):
        # whole-image instance-norm statistics are gathered by a float pass; keep those models float
        return "the model normalises per instance"
    if meta.takes_sigma:  # Int8Model.fit calibrates a forward of the image alone
        return "the model takes a noise level"
    if any(c.groups > 1 for c in convs):
        # benchmarks/probe_int8.py: CompactGenerator without norms ran 4-5x slower in int8 than in fp32
        return "the model has grouped (depthwise) convolutions, which run slower in int8"
    if any(c.padding_mode != "zeros" or c.padding == "same" or isinstance(c.padding, str) for c in convs):
        return "the model has convolutions with non-zero or string padding"
    return _kernels_fail()


def _affine(lo: float, hi: float) -> tuple[float, int]:
    """quint8 scale and zero point covering [lo, hi] (widened to include 0, so zero padding is exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255
    return scale, int(min(255, max(0, round(-lo / scale))))


class _Recorder(nn.Module):
    """A module that records its input and output ranges while ``mode == "calibrating"``."""

    def __init__(self) -> None:
        super().__init__()
        self.quantised_out = False  # hand the next link a quint8 tensor
        self.mode = "float"  # "float" | "calibrating" | "int8"
        self.reset()

    def reset(self) -> None:
        """Forget the recorded ranges."""
        self.ranges = [math.inf, -math.inf, math.inf, -math.inf]  # input lo, hi, output lo, hi

    def _recorded(self, where: str) -> list[float]:
        if not math.isfinite(self.ranges[0]):
            raise RuntimeError(f"{where}.freeze before any calibration forward")
        return self.ranges

    def _record(self, x: Tensor, y: Tensor) -> None:
        (ilo, ihi), (olo, ohi) = torch.aminmax(x), torch.aminmax(y)
        r = self.ranges
        self.ranges = [min(r[0], ilo.item()), max(r[1], ihi.item()), min(r[2], olo.item()), max(r[3], ohi.item())]


class Int8Conv(_Recorder):
    """A Conv2d (+ ReLU when ``relu``) that records its ranges (``calibrating``), runs fp32
    (``float``) or int8 (``int8``); ``quantised_out`` hands the next conv a quint8 tensor."""

    def __init__(self, conv: nn.Conv2d, relu: bool = False):
        super().__init__()
        self.conv = conv
        self.relu = relu
        self.in_scale, self.in_zero = 1.0, 0
        w = conv.weight.detach().float()
        scales = (w.abs().amax(dim=(1, 2, 3)) / 127).clamp_min(1e-12).double()
        qweight = torch.quantize_per_channel(w, scales, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
        kind = torch.ao.nn.intrinsic.quantized.ConvReLU2d if relu else torch.ao.nn.quantized.Conv2d
        self.qconv = kind(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
        )
        self.qconv.set_weight_bias(qweight, None if conv.bias is None else conv.bias.detach().float())

    def freeze(self, margin: float = RANGE_MARGIN) -> None:
        """Set the int8 input and output quantisation from the recorded ranges, widened by ``margin``."""
        ilo, ihi, olo, ohi = self._recorded("Int8Conv")
        iw, ow = (ihi - ilo) * margin, (ohi - olo) * margin
        self.in_scale, self.in_zero = _affine(ilo - iw, ihi + iw)
        self.qconv.scale, self.qconv.zero_point = _affine(olo - ow, ohi + ow)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "int8":
            q = x if x.is_quantized else torch.quantize_per_tensor(x.float(), self.in_scale, self.in_zero, torch.quint8)
            y = self.qconv(q)
            return y if self.quantised_out else y.dequantize()
        y = self.conv(x)
        if self.relu:
            y = torch.relu(y)
        if self.mode == "calibrating":
            self._record(x, y)
        return y


class Int8Act(_Recorder):
    """A PReLU or LeakyReLU inside a chain: on a quint8 input (from the conv before it) it runs
    the quantised op with its calibrated output range; on a float input, the float op."""

    def __init__(self, act: nn.PReLU | nn.LeakyReLU):
        super().__init__()
        self.act = act
        self.qact: nn.Module | None = None

    def freeze(self, margin: float = RANGE_MARGIN) -> None:
        """Build the quantised op for the recorded output range, widened by ``margin``."""
        ilo, ihi, lo, hi = self._recorded("Int8Act")
        scale, zero = _affine(lo - (hi - lo) * margin, hi + (hi - lo) * margin)
        self.qact_range = (scale, zero)
        if isinstance(self.act, nn.PReLU):
            # quantized::prelu scales the positive side by the weight's quantised 255 (seen on
            # torch 2.15), so the weight is quantised with step 1/255 from 0; checked below
            qact = torch.ao.nn.quantized.PReLU(scale, zero, self.act.num_parameters)
            qact.set_weight(torch.quantize_per_tensor(self.act.weight.detach().float(), 1 / 255, 0, torch.quint8))
        else:
            qact = torch.ao.nn.quantized.LeakyReLU(scale, zero, self.act.negative_slope)
        self.qact = qact if self._agrees(qact, ilo, ihi, scale) else None

    def _agrees(self, qact: nn.Module, lo: float, hi: float, step: float) -> bool:
        """Whether the quantised op matches the float one within 3 output steps on a ramp over the
        input range [lo, hi] (else this activation runs float: weights outside [0, 1], or a kernel change)."""
        c = self.act.num_parameters if isinstance(self.act, nn.PReLU) else 1
        x = torch.linspace(lo, hi, 256).repeat(c, 1)[None, :, None, :]
        xq = torch.quantize_per_tensor(x, *_affine(lo, hi), torch.quint8)
        with torch.no_grad():
            err = float((qact(xq).dequantize() - self.act(xq.dequantize())).abs().max())
        return err <= 3 * step

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "int8" and x.is_quantized and self.qact is not None:
            y = self.qact(x)
            return y if self.quantised_out else y.dequantize()
        y = self.act(x.dequantize() if x.is_quantized else x)
        if self.mode == "calibrating":
            self._record(x, y)
        elif self.mode == "int8" and self.quantised_out:
            scale, zero = self.qact_range
            return torch.quantize_per_tensor(y, scale, zero, torch.quint8)
        return y


def _swap_convs(parent: nn.Module, chains: tuple[nn.Module, ...]) -> None:
    """Replace every Conv2d under ``parent`` by an Int8Conv; inside ``chains`` and Sequentials
    (containers whose data flow is their order) fuse ReLUs, quantise PReLU/LeakyReLU and link
    each conv or activation to the next."""
    children = list(parent.named_children())
    chain = isinstance(parent, nn.Sequential) or any(parent is c for c in chains)
    for k, (name, child) in enumerate(children):
        if isinstance(child, nn.Conv2d):
            after = children[k + 1] if k + 1 < len(children) else None
            relu = chain and after is not None and type(after[1]) is nn.ReLU
            setattr(parent, name, Int8Conv(child, relu=relu))
            if relu:
                setattr(parent, after[0], nn.Identity())
        elif chain and type(child) in (nn.PReLU, nn.LeakyReLU):
            setattr(parent, name, Int8Act(child))
        elif not isinstance(child, nn.ReLU):
            _swap_convs(child, chains)
    if chain:
        flow = [m for _, m in parent.named_children() if not isinstance(m, nn.Identity)]
        for a, b in zip(flow, flow[1:]):
            if (
                isinstance(a, (Int8Conv, Int8Act))
                and isinstance(b, (Int8Conv, Int8Act))
                and not (isinstance(a, Int8Act) and isinstance(b, Int8Act))
            ):
                a.quantised_out = True


class Int8Model(nn.Module):
    """A float32 copy of a network with every Conv2d swapped for an :class:`Int8Conv`.

    ``fallback`` is the original network, prepared at the precision used when int8 disagrees;
    ``chains`` are the model's ``ModelMeta.int8_chains``.
    """

    def __init__(self, model: nn.Module, fallback: nn.Module, chains: tuple[str, ...] = ()):
        super().__init__()
        torch.backends.quantized.engine = "x86"
        self.net = copy.deepcopy(model).float().eval()
        _swap_convs(self.net, tuple(self.net.get_submodule(n) for n in chains))
        self.convs = [m for m in self.net.modules() if isinstance(m, (Int8Conv, Int8Act))]
        self._fallback = [fallback]  # a list keeps it out of this module's parameters and .to()
        self.fitted_db: float | None = None

    @property
    def fallback(self) -> nn.Module:
        """The original network at the fallback precision."""
        return self._fallback[0]

    def _mode(self, mode: str) -> None:
        for c in self.convs:
            c.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.inference_mode()
    def fit(self, run: Callable[[Tensor], Tensor], calibration: list[Tensor], check: list[Tensor]) -> float:
        """Calibrate on ``calibration`` and return the PSNR (dB, peak 1) of int8 vs fp32 on ``check``.

        ``run`` calls this model (possibly through a wrapper that maps value ranges); it is
        left in int8 mode.
        """
        for c in self.convs:
            c.reset()
        self._mode("calibrating")
        for x in calibration:
            run(x)
        for c in self.convs:
            c.freeze()
        self._mode("float")
        refs = [run(x).double() for x in check]
        self._mode("int8")
        outs = [run(x).double() for x in check]
        flat = [torch.cat([t.flatten() for t in ts]).numpy() for ts in (outs, refs)]
        self.fitted_db = psnr(*flat, peak=1.0)
        return self.fitted_db


def sample_crops(x: Tensor, side: int, count: int) -> list[Tensor]:
    """``count`` ``side``×``side`` crops of a 1×C×H×W image spread over a grid (fewer if it is small)."""
    _, _, h, w = x.shape
    if h < side or w < side:
        return []
    cols = max(1, math.ceil(math.sqrt(count * w / h)))
    rows = max(1, math.ceil(count / cols))
    ys = [round(i * (h - side) / max(1, rows - 1)) for i in range(rows)] if rows > 1 else [(h - side) // 2]
    xs = [round(j * (w - side) / max(1, cols - 1)) for j in range(cols)] if cols > 1 else [(w - side) // 2]
    spots = sorted({(y, x0) for y in ys for x0 in xs})
    step = max(1, len(spots) / count)
    picked = [spots[int(i * step)] for i in range(min(count, len(spots)))]
    return [x[..., y : y + side, x0 : x0 + side].contiguous() for y, x0 in picked]
