"""Typed training configs: load from TOML, ``--set key=value`` overrides, validate, write, hash.

The machinery works for any *root* config (a frozen dataclass whose fields are sections)
registered with ``register_root``; the roots of ``scenestyle train cyclegan | srgan | denoise``
are in ``schemas.py``. A config file has one table per section (``[data]``, ``[model]``, ...);
every key is optional and defaults to the root's default for that section. ``--set gan.loss=lsgan``
overrides one field (``--set model.generator_kwargs.ngf=32`` one entry of a dict field); the value
is parsed by the field's type. An unknown key or a bad value is a ``UsageError`` that lists the
valid keys or choices. The resolved config is written as TOML into the run folder and its hash
(``config_hash``: everything but the ``train.*`` cadence keys a resumed run may change) goes
into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from scenestyle.errors import UsageError


def _keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """``value`` (from TOML, or a string from ``--set``) as type ``tp``; UsageError otherwise."""
    from_cli = isinstance(value, str)

    def bad(why: str = "") -> UsageError:
        return UsageError(f"{key}: {value!r} is not a valid {_type_name(tp)}{why}")

    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UsageError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_cli and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise bad(" (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_cli:
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_cli:
            try:
                return float(value)
            except ValueError:
                pass
        raise bad()
    if tp is str:
        if from_cli and value[:1] in ('"', "'"):
            value = _toml_value(value)  # a quoted TOML string
        if isinstance(value, str):
            return value
        raise bad()
    if origin is tuple:
        items = _toml_value(value if value.startswith("[") else f"[{value}]") if from_cli else value
        if isinstance(items, str):  # bare words, e.g. [gaussian, jpeg]: split them as strings
            items = [w.strip() for w in items.strip().removeprefix("[").removesuffix("]").split(",") if w.strip()]
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any number of X
            if not isinstance(items, (list, tuple)) or not items:
                raise bad(" (give one or more values, e.g. [a, b])")
            args = (args[0],) * len(items)
        if not isinstance(items, (list, tuple)) or len(items) != len(args):
            raise bad(f" (give {len(args)} values, e.g. [1.0, 1.5])")
        return tuple(_coerce(f"{key}[{i}]", t, v) for i, (t, v) in enumerate(zip(args, items)))
    if tp is dict or origin is dict:
        obj = _toml_value(value) if from_cli else value
        if not isinstance(obj, dict):
            raise bad(" (a TOML inline table such as {ngf = 32})")
        return dict(obj)
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# root config class -> (trainer name, validator); see register_root
_ROOTS: dict[type, tuple[str, Callable[[Any], None]]] = {}

# train.* keys a resumed run may change (``--resume RUN --set train.steps=N``); not in config_hash
CADENCE_KEYS = ("steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints")


def register_root(cls: type, kind: str, validator: Callable[[Any], None]) -> None:
    """Make ``cls`` (a frozen dataclass of sections) loadable as the config of ``scenestyle train KIND``."""
    _ROOTS[cls] = (kind, validator)


def kind_of(cfg_or_cls: Any) -> str:
    """The trainer name of a root config (``cyclegan``, ``srgan``, ``denoise``)."""
    cls = cfg_or_cls if isinstance(cfg_or_cls, type) else type(cfg_or_cls)
    return _ROOTS[cls][0]


def _section(default: Any, name: str, raw: Mapping[str, Any]) -> Any:
    cls = type(default)
    if not isinstance(raw, Mapping):
        raise UsageError(f"[{name}] must be a table of keys; valid keys: {', '.join(_keys(cls))}")
    hints = _hints(cls)
    unknown = [k for k in raw if k not in hints]
    if unknown:
        raise UsageError(f"unknown key {name}.{unknown[0]}; valid keys of [{name}]: {', '.join(_keys(cls))}")
    # start from the root's default section: roots may give a shared section class other defaults
    return dataclasses.replace(default, **{k: _coerce(f"{name}.{k}", hints[k], v) for k, v in raw.items()})


def _default_root() -> type:
    from scenestyle.train.schemas import CycleGANConfig  # imported here: the schemas import this module

    return CycleGANConfig


def from_dict(raw: Mapping[str, Any], root: type | None = None) -> Any:
    """Build and validate a ``root`` config (default ``CycleGANConfig``) from nested dicts (parsed TOML)."""
    root = root or _default_root()
    hints = _hints(root)
    unknown = [k for k in raw if k not in hints]
    if unknown:
        raise UsageError(f"unknown config section [{unknown[0]}]; valid sections: {', '.join(_keys(root))}")
    default = root()
    cfg = dataclasses.replace(default, **{k: _section(getattr(default, k), k, v) for k, v in raw.items()})
    validate(cfg)
    return cfg


def apply_overrides(cfg: Any, overrides: list[str] | tuple[str, ...]) -> Any:
    """Apply ``section.key=value`` strings, each parsed by the field's type."""
    sections = _hints(type(cfg))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value (e.g. train.steps=1000), not {item!r}")
        parts = key.split(".")
        if parts[0] not in sections:
            raise UsageError(f"unknown --set key {key!r}; it starts with a section: {', '.join(sections)}")
        cls = sections[parts[0]]
        hints = _hints(cls)
        if len(parts) < 2 or parts[1] not in hints:
            valid = ", ".join(f"{parts[0]}.{k}" for k in _keys(cls))
            raise UsageError(f"unknown --set key {key!r}; valid keys: {valid}")
        section = getattr(cfg, parts[0])
        tp = hints[parts[1]]
        if len(parts) == 3 and (tp is dict or typing.get_origin(tp) is dict):
            value = {**getattr(section, parts[1]), parts[2]: _toml_value(text.strip())}
        elif len(parts) == 2:
            value = _coerce(key, tp, text.strip())
        else:
            raise UsageError(f"--set key {key!r} is too deep; only dict fields take a third part")
        cfg = dataclasses.replace(cfg, **{parts[0]: dataclasses.replace(section, **{parts[1]: value})})
    validate(cfg)
    return cfg


def apply_resume_overrides(cfg: Any, overrides: list[str] | tuple[str, ...]) -> Any:
    """``apply_overrides`` limited to the cadence keys a resumed run may change (e.g. extend train.steps)."""
    allowed = [f"train.{k}" for k in CADENCE_KEYS]
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in allowed:
            raise UsageError(f"--resume keeps the run's config; --set may only change {', '.join(allowed)}, not {key!r}")
    return apply_overrides(cfg, overrides)


def validate(cfg: Any) -> None:
    """Run the checks registered for ``cfg``'s root class (choices of registered archs, ranges)."""
    _ROOTS[type(cfg)][1](cfg)


def read_toml(path: str | Path, what: str = "--config") -> dict[str, Any]:
    """A TOML file as nested dicts; UsageError naming ``what`` when missing or malformed."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path}: not valid TOML ({exc})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), root: type | None = None) -> Any:
    """Defaults of ``root`` (default ``CycleGANConfig``), then the TOML file at ``path`` (if any), then ``overrides``."""
    raw = read_toml(path) if path is not None else {}
    return apply_overrides(from_dict(raw, root), list(overrides))


def to_dict(cfg: Any) -> dict[str, dict[str, Any]]:
    """Nested plain dicts (tuples as lists), as in the TOML file."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def to_toml(cfg: Any) -> str:
    """The resolved config as TOML text that ``load_config`` reads back to an equal config."""
    kind = kind_of(cfg)
    return f"# resolved scenestyle {kind} config (written by `scenestyle train {kind}`)\n\n" + tomli_w.dumps(to_dict(cfg))


def config_sha256(text: str) -> str:
    """sha256 of the resolved config's TOML text (the bytes saved in the run folder)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_hash(cfg: Any) -> str:
    """sha256 of what a checkpoint's weights depend on: the trainer name and every key but the
    ``train.*`` cadence keys (``CADENCE_KEYS``), so a run extended on resume keeps its checkpoints."""
    d = to_dict(cfg)
    d["train"] = {k: v for k, v in d["train"].items() if k not in CADENCE_KEYS}
    return hashlib.sha256(json.dumps({"trainer": kind_of(cfg), **d}, sort_keys=True).encode("utf-8")).hexdigest()
