"""Rich consoles: results on stdout, progress and errors on stderr."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from scenestyle._text import one_line
from scenestyle.errors import Interrupted, ScenestyleError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable)
# What error lines start with; a torchrun rank other than 0 adds its number (cli/process.py).
prefix = "scenestyle"


def shown(text: object) -> str:
    """A user string (file name, message quoting one) as Rich markup that shows it verbatim on one
    line: ``[red]x.jpg`` stays as typed, a name that is not UTF-8 or holds a newline is escaped."""
    return escape(one_line(text))


def error(message: object) -> None:
    """One line on stderr, prefixed with the program name; ``message`` is plain text, never markup."""
    try:
        err.print(f"[bold red]{shown(prefix)}:[/] {shown(message)}", markup=True, soft_wrap=True)
    except Exception:  # the last line of defence must not fail in turn (a closed or odd stderr)
        sys.stderr.write(f"{prefix}: {one_line(message)}\n".encode("ascii", "backslashreplace").decode("ascii"))


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM (see ``main``), so a run stops as on Ctrl-C."""


def _stopped(cause: BaseException | None) -> tuple[str, int]:
    return ("terminated", 143) if isinstance(cause, Terminated) else ("interrupted", 130)


def handle_errors(fn: F) -> F:
    """Turn ScenestyleError into one stderr line and its documented exit code; Ctrl-C into
    "interrupted" (130) and SIGTERM into "terminated" (143), with what was finished."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Interrupted as e:
            word, code = _stopped(e.__cause__)
            error(f"{word}: {e}")
            raise typer.Exit(code) from None
        except ScenestyleError as e:
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt as e:  # before or after the batch: nothing was finished
            word, code = _stopped(e)
            error(word)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]
