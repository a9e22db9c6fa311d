"""The Typer CLI: parses, resolves paths, calls one engine, prints with Rich."""


def main() -> None:
    raise SystemExit("scenestyle: CLI not wired yet")
