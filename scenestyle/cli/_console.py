"""Rich consoles: results on stdout, progress and errors on stderr."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import typer
from rich.console import Console

from scenestyle.errors import ScenestyleError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable)


def error(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    err.print(f"[bold red]scenestyle:[/] {message}", markup=True, soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn ScenestyleError into one stderr line and its documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ScenestyleError as e:
            error(str(e))
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]
