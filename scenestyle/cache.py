"""scenestyle's own cache folder (FID features, compiled OpenVINO models); weights use the Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SCENESTYLE_CACHE``, else ``$XDG_CACHE_HOME/scenestyle``, else ``~/.cache/scenestyle``."""
    base = os.environ.get("SCENESTYLE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "scenestyle"
    )
    return Path(base)


def folder_size(folder: Path) -> int:
    """Bytes in the files under ``folder`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
