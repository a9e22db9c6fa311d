"""The Typer CLI: parses, resolves paths, calls one engine, prints with Rich.

Every command turns a ScenestyleError into one line on stderr and its exit code; nothing
reaches the user as a traceback unless SCENESTYLE_DEBUG=1.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from scenestyle.cli import _console
from scenestyle.cli.eval import eval_app
from scenestyle.cli.info import info
from scenestyle.cli.process import denoise, stylize, upscale
from scenestyle.cli.train import train_app
from scenestyle.cli.weights import weights_app


class _OneLineErrors(TyperGroup):
    """Click's usage errors as one stderr line with exit code 2 instead of a usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as e:  # click's classes differ across Typer versions (vendored or not): match by shape
            kind = type(e).__name__
            if kind == "NoArgsIsHelpError":  # Typer has already printed the help
                rv = 2
            elif kind == "Abort":
                _console.error("aborted")
                rv = 130
            elif hasattr(e, "format_message") and hasattr(e, "exit_code"):
                _console.error(e.format_message().replace("\n", " "))
                rv = e.exit_code
            else:
                raise
        if standalone_mode:
            sys.exit(rv or 0)
        return rv


app = typer.Typer(
    cls=_OneLineErrors,
    name="scenestyle",
    help="Turn scene photos into paintings, upscale and denoise them — on any photo, CPU or GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from scenestyle import __version__

        _console.out.print(f"scenestyle {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Turn scene photos into paintings, upscale and denoise them — on any photo, CPU or GPU."""


app.command()(stylize)
app.command()(upscale)
app.command()(denoise)
app.command()(info)
app.add_typer(weights_app, name="weights")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


def _on_sigterm(signum, frame) -> None:
    # Stop as on Ctrl-C, so temp files are removed and the finished photos are reported; a second
    # SIGTERM kills at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise _console.Terminated()


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except KeyboardInterrupt as e:
        word, code = ("terminated", 143) if isinstance(e, _console.Terminated) else ("interrupted", 130)
        _console.error(word)
        sys.exit(code)
    except Exception as e:  # the last line of defence: never a traceback for users
        if os.environ.get("SCENESTYLE_DEBUG"):
            raise
        _console.error(f"internal error: {type(e).__name__}: {e} (set SCENESTYLE_DEBUG=1 for the traceback)")
        sys.exit(70)


def entry() -> None:
    """Console-script entry point: :func:`main`, then exit without the interpreter's teardown.

    With torch and OpenVINO loaded, unloading their modules and libraries takes about 0.3 s after
    the work is done. Everything that matters has happened by then: the engines join their own
    reader and writer threads before they return, and the exit handlers still run and both streams
    are flushed before the process ends. (Idle threads of libraries, such as OpenVINO's telemetry
    pool, which scenestyle keeps from sending anything, end with it.)
    """
    try:
        main()
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said on it
            code = code or 1
    os._exit(code)


def _exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` would give: None is 0, an int itself, anything else is printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
