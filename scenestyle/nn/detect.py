"""Infer the registered architecture and its constructor kwargs from a state dict.

``detect_arch`` expects a *flat* state dict (parameter name -> tensor) as the architecture's
``state_dict()`` gives it: unwrapping ``params_ema`` / ``params`` / ``state_dict`` containers
and stripping ``module.`` prefixes is the weights loader's job. Every answer is checked by
building the architecture on the ``meta`` device (no memory, no compute) and comparing key
names and shapes, so a returned ``(name, kwargs)`` loads with ``strict=True``; the one
tolerated extra is the legacy InstanceNorm ``running_mean``/``running_var``/
``num_batches_tracked`` entries of old CycleGAN checkpoints, which the loader must drop (as
upstream's ``__patch_instance_norm_state_dict`` does).

What cannot be read from weights gets the upstream default: ``use_dropout=False`` for
``UnetGenerator``, ``padding_type="reflect"`` (reflect and replicate look the same),
``act_type="relu"`` for a PReLU-free ``SRVGGNetCompact``, ``act_mode="R"``/``"BR"`` for DnCNN
(ReLU and LeakyReLU look the same); output channels equal to input channels where only their
product with the scale is stored. FFDNet has DnCNN's keys and is told apart by channel counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import torch

from ._registry import ARCHS, build

Detected = tuple[str, dict]
_LEGACY_IN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return tuple(sd[key].shape)


def _indices(sd: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted N such that some key starts with ``prefix + "N."``."""
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in sd if (m := pat.match(k))})


def _conv_indices(sd: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted N such that ``prefix + "N.weight"`` is a 4-D (conv) weight."""
    pat = re.compile(re.escape(prefix) + r"(\d+)\.weight$")
    return sorted(int(m.group(1)) for k, v in sd.items() if (m := pat.match(k)) and v.dim() == 4)


def _top_level(sd: Mapping[str, torch.Tensor]) -> set[str]:
    return {k.split(".", 1)[0] for k in sd}


def _norm_kind(sd: Mapping[str, torch.Tensor], norm_weight: str, conv_bias: str) -> str:
    """CycleGAN convention: BatchNorm has affine weights; InstanceNorm has none but makes the
    convs keep their bias (legacy InstanceNorm running stats carry no weight either)."""
    if norm_weight in sd:
        return "batch"
    return "instance" if conv_bias in sd else "none"


def _resnet_generator(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    if _top_level(sd) != {"model"} or "model.1.weight" not in sd or _shape(sd, "model.1.weight")[2:] != (7, 7):
        return None
    ngf, input_nc = _shape(sd, "model.1.weight")[:2]
    norm = _norm_kind(sd, "model.2.weight", "model.1.bias")
    blocks = [i for i in _indices(sd, "model.") if any(k.startswith(f"model.{i}.conv_block.") for k in sd)]
    padding_type, use_dropout = "reflect", False
    if blocks:
        convs = _conv_indices(sd, f"model.{blocks[0]}.conv_block.")
        if len(convs) == 2:
            padding_type = "zero" if convs[0] == 0 else "reflect"
            use_dropout = convs[1] - convs[0] == (4 if padding_type == "zero" else 5)
    last = _conv_indices(sd, "model.")[-1]
    return "ResnetGenerator", dict(
        input_nc=input_nc,
        output_nc=_shape(sd, f"model.{last}.weight")[0],
        ngf=ngf,
        norm=norm,
        use_dropout=use_dropout,
        n_blocks=len(blocks),
        padding_type=padding_type,
    )


def _unet_generator(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    if _top_level(sd) != {"model"} or "model.model.0.weight" not in sd or "model.model.3.weight" not in sd:
        return None
    ngf, input_nc = _shape(sd, "model.model.0.weight")[:2]
    output_nc = _shape(sd, "model.model.3.weight")[1]  # ConvTranspose2d weight: (in, out, kh, kw)
    prefix, num_downs = "model.model.1.model.", 1
    while any(k.startswith(prefix) for k in sd):
        num_downs += 1
        prefix += "3.model."
    norm = _norm_kind(sd, "model.model.1.model.2.weight", "model.model.0.bias")
    return "UnetGenerator", dict(input_nc=input_nc, output_nc=output_nc, num_downs=num_downs, ngf=ngf, norm=norm, use_dropout=False)


def _rrdbnet(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    if not {"conv_first.weight", "conv_up1.weight", "conv_last.weight"} <= sd.keys():
        return None
    num_feat, first_in = _shape(sd, "conv_first.weight")[:2]
    num_out_ch = _shape(sd, "conv_last.weight")[0]
    num_block = len(_indices(sd, "body."))
    num_grow_ch = _shape(sd, "body.0.rdb1.conv1.weight")[0] if "body.0.rdb1.conv1.weight" in sd else 32
    for scale, factor in ((4, 1), (2, 4), (1, 16)):
        if first_in == num_out_ch * factor:
            num_in_ch = num_out_ch
            break
    else:
        scale, num_in_ch = 4, first_in
    return "RRDBNet", dict(
        num_in_ch=num_in_ch, num_out_ch=num_out_ch, scale=scale, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch
    )


def _srvgg(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    if _top_level(sd) != {"body"} or "body.0.weight" not in sd or sd["body.0.weight"].dim() != 4:
        return None
    convs = _conv_indices(sd, "body.")
    last = convs[-1]
    num_feat, num_in_ch = _shape(sd, "body.0.weight")[:2]
    last_out = _shape(sd, f"body.{last}.weight")[0]
    for num_out_ch in dict.fromkeys((num_in_ch, 3, 1)):
        upscale = math.isqrt(last_out // num_out_ch)
        if upscale >= 1 and num_out_ch * upscale * upscale == last_out:
            break
    else:
        return None
    act_type = "prelu" if "body.1.weight" in sd else "relu"
    return "SRVGGNetCompact", dict(
        num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat, num_conv=last // 2 - 1, upscale=upscale, act_type=act_type
    )


_DNCNN_KEY = re.compile(r"model\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def _dncnn(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    if "model.0.weight" not in sd or not all(_DNCNN_KEY.match(k) for k in sd):
        return None
    convs = _conv_indices(sd, "model.")
    if not convs or any(_shape(sd, f"model.{i}.weight")[2:] != (3, 3) for i in convs):
        return None
    nc, in_nc = _shape(sd, "model.0.weight")[:2]
    out_nc = _shape(sd, f"model.{convs[-1]}.weight")[0]
    act_mode = "BR" if any(k.endswith("running_mean") for k in sd) else "R"
    return "DnCNN", dict(in_nc=in_nc, out_nc=out_nc, nc=nc, nb=len(convs), act_mode=act_mode)


def _ffdnet(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    # Same flat ``model.N`` layout as DnCNN, told apart by the channel counts: FFDNet's first
    # conv takes in_nc*4 unshuffled channels + 1 noise-level map (4k+1), its last conv gives
    # out_nc*4 (4m); DnCNN's first-conv inputs equal its last-conv outputs, and 4k+1 != 4m.
    if "model.0.weight" not in sd or not all(_DNCNN_KEY.match(k) for k in sd) or any(k.endswith("running_mean") for k in sd):
        return None
    convs = _conv_indices(sd, "model.")
    if len(convs) < 2 or any(_shape(sd, f"model.{i}.weight")[2:] != (3, 3) for i in convs):
        return None
    nc, first_in = _shape(sd, "model.0.weight")[:2]
    last_out = _shape(sd, f"model.{convs[-1]}.weight")[0]
    if first_in % 4 != 1 or first_in < 5 or last_out % 4:
        return None
    return "FFDNet", dict(in_nc=first_in // 4, out_nc=last_out // 4, nc=nc, nb=len(convs))


def _compact_generator(sd: Mapping[str, torch.Tensor]) -> Detected | None:
    if not {"stem.1.weight", "head.1.weight"} <= sd.keys() or not _top_level(sd) <= {"stem", "down", "blocks", "up", "head"}:
        return None
    ngf, input_nc = _shape(sd, "stem.1.weight")[:2]
    if "stem.2.weight" in sd:
        norm = "batch"
    elif "stem.1.bias" in sd:
        norm = "none"
    else:
        norm = "instance"
    return "CompactGenerator", dict(
        input_nc=input_nc,
        output_nc=_shape(sd, "head.1.weight")[0],
        ngf=ngf,
        n_blocks=len(_indices(sd, "blocks.")),
        norm=norm,
        colour_pool=0,
        upsample="nearest",
        flatten=0,
        flatten_passes=2,
    )  # not in the keys: exported files carry them in their metadata


_DETECTORS: tuple[Callable[[Mapping[str, torch.Tensor]], Detected | None], ...] = (
    _resnet_generator,
    _unet_generator,
    _rrdbnet,
    _srvgg,
    _ffdnet,
    _dncnn,
    _compact_generator,
)


def _check(sd: Mapping[str, torch.Tensor], name: str, kwargs: dict) -> None:
    """Raise ``ValueError`` unless ``build(name, **kwargs)`` has exactly ``sd``'s keys and shapes."""
    try:
        with torch.device("meta"):
            model = build(name, **kwargs)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"state dict looks like {name}({kwargs}) but that cannot be built: {err}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    instance_norms = {n for n, m in model.named_modules() if isinstance(m, torch.nn.InstanceNorm2d)}
    missing = [k for k in expected if k not in sd]
    unexpected = [
        k for k in sd if k not in expected and not (k.rsplit(".", 1)[-1] in _LEGACY_IN_STATS and k.rsplit(".", 1)[0] in instance_norms)
    ]
    wrong = [f"{k} {tuple(sd[k].shape)} != {expected[k]}" for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if items
        ]
        raise ValueError(f"state dict looks like {name}({kwargs}) but does not match it; " + "; ".join(parts))


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict]:
    """Return ``(registered arch name, constructor kwargs)`` for a flat state dict.

    ``build(name, **kwargs).load_state_dict(state_dict, strict=True)`` then succeeds (up to the
    legacy InstanceNorm statistics described in the module docstring). Discriminators are
    not detected. An unknown layout raises ``ValueError`` naming the first keys and the known
    architectures.
    """
    sd = dict(state_dict)
    if sd and not all(isinstance(v, torch.Tensor) for v in sd.values()):
        nested = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)][:5]
        raise ValueError(
            f"detect_arch expects a flat state dict of tensors; these entries are not tensors: "
            f"{', '.join(nested)} (unwrap params_ema / params / state_dict first)"
        )
    for detector in _DETECTORS:
        found = detector(sd) if sd else None
        if found is not None:
            _check(sd, *found)
            return found
    first = ", ".join(list(sd)[:8]) or "(empty)"
    raise ValueError(
        f"unrecognised state dict layout (first keys: {first}; {len(sd)} keys in all); known architectures: {', '.join(sorted(ARCHS))}"
    )
