"""Evaluation engines behind ``scenestyle eval``: plain typed arguments in, frozen report records out.

Nothing here prints or exits; the CLI (``scenestyle.cli.eval``) renders the reports. The names
below are imported on first use, so the CLI can read light modules (``critic_config``) without
importing torch.
"""

from importlib import import_module

_WHERE = {
    "EvalReport": "report",
    "ImageScore": "report",
    "evaluate_sr": "sr",
    "evaluate_denoise": "denoise",
    "StyleReport": "style",
    "evaluate_style": "style",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
