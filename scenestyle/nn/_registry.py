"""Architectures registered by name in a plain dict; a duplicate name raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

ARCHS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register(name: str) -> Callable[[F], F]:
    """Register a builder (class or function) under ``name``."""

    def deco(fn: F) -> F:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHS[name] = fn
        return fn

    return deco


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture; an unknown name lists the valid ones."""
    try:
        fn = ARCHS[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; choose one of: {', '.join(sorted(ARCHS))}") from None
    return fn(**kwargs)


def list_archs() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(ARCHS)
