"""`scenestyle weights list | pull | add | verify | path`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scenestyle.cli import _console
from scenestyle.cli._console import handle_errors

weights_app = typer.Typer(help="List, download, verify and locate the pinned model weights.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")]


@weights_app.command("list")
@handle_errors
def list_(json_out: JsonOpt = False) -> None:
    """Every model in weights.lock, with where it comes from and whether it is here."""
    from scenestyle.weights import cache_path, load_lock

    rows = []
    for name, e in sorted(load_lock().items()):
        local = cache_path(name)
        src = "bundled" if e.bundled else (f"hf://{e.hf.repo_id}/{e.hf.filename}" if e.hf else (e.urls[0] if e.urls else "-"))
        rows.append(
            {
                "name": name,
                "task": e.task,
                "arch": e.arch,
                "size": e.size,
                "licence": e.licence,
                "source": src,
                "local": str(local) if local else None,
                "sha256": e.sha256,
                "urls": list(e.urls),
            }
        )
    if json_out:
        _console.out.print_json(json.dumps(rows))
        return
    table = Table(title="weights.lock")
    for col in ("name", "task", "arch", "size", "licence", "source", "here"):
        table.add_column(col, overflow="fold")
    for r in rows:
        size = f"{r['size'] / 1e6:.1f} MB" if r["size"] else "?"
        table.add_row(r["name"], r["task"], r["arch"], size, r["licence"], r["source"], "yes" if r["local"] else "no")
    _console.out.print(table)


@weights_app.command()
@handle_errors
def pull(names: Annotated[list[str], typer.Argument(help="Model names from `scenestyle weights list`.")]) -> None:
    """Download weights into the Hugging Face cache and verify their sha256."""
    from scenestyle.cli._download import download_progress
    from scenestyle.weights import pull as pull_weights

    with download_progress(_console.err) as progress:
        for r in pull_weights(names, progress=progress):
            _console.out.print(f"{r.entry.name if r.entry else r.path}: ok ({r.source}) {r.path}")


@weights_app.command()
@handle_errors
def add(
    file: Annotated[
        Path, typer.Argument(help="A weights file downloaded by hand (the URL that `weights list` or the error message gives).")
    ],
    name: Annotated[str | None, typer.Option("--name", help="The model it must be (default: whichever model its sha256 matches).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a downloaded file's sha256 against weights.lock and copy it into the Hugging Face cache."""
    from scenestyle.weights import add as add_weights

    r = add_weights(file, name)
    if json_out:
        _console.out.print_json(json.dumps({"name": r.name, "path": str(r.path), "sha256": r.sha256, "source": r.source}))
        return
    what = {"added": "added", "cache": "already in the cache", "bundled": "already shipped in the package"}[r.source]
    _console.out.print(f"{r.name}: {what}, sha256 ok; {r.path}", markup=False, soft_wrap=True)


@weights_app.command()
@handle_errors
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Model names (default: every model that is here).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the sha256 of local weights; exit 3 if any is tampered."""
    from scenestyle.weights import verify as verify_weights

    results = verify_weights(names or None)
    if json_out:
        _console.out.print_json(json.dumps([{"name": n, "status": s} for n, s in results]))
    else:
        for n, s in results:
            colour = "green" if s == "ok" else ("yellow" if s == "missing" else "red")
            _console.out.print(f"{n}: [{colour}]{s}[/]")
        if any(s == "missing" for _, s in results):
            _console.out.print(
                "missing: `scenestyle weights pull NAME` downloads one; `scenestyle weights path NAME` says "
                "where to get it by hand for `scenestyle weights add FILE`",
                markup=False,
                soft_wrap=True,
            )
    if any(s.startswith("mismatch") for _, s in results):
        raise typer.Exit(3)


@weights_app.command()
@handle_errors
def path(name: Annotated[str, typer.Argument(help="A model name.")]) -> None:
    """Print the local path of a model's weights; exit 3 if they are not here."""
    from scenestyle.errors import WeightsError
    from scenestyle.weights import cache_path, how_to_get, load_lock

    if name not in load_lock():
        from scenestyle.errors import UsageError

        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(sorted(load_lock()))}")
    p = cache_path(name)
    if p is None:
        e = load_lock()[name]
        pull = f"run `scenestyle weights pull {name}`, or " if e.hf is not None else ""
        raise WeightsError(f"{name} is not here; {pull}{how_to_get(e)}")
    _console.out.print(str(p), soft_wrap=True)
