"""Exceptions that carry a one-line message for the user and the exit code the CLI returns.

Exit codes (documented in the README):
  0 every input processed, 1 at least one input failed, 2 usage error (bad flag, bad path,
  nothing to do), 3 weights error (missing, tampered, wrong architecture, offline with an
  empty cache), 4 output error (folder not writable, disk full), 130 interrupted (143 when
  by SIGTERM).
"""

from __future__ import annotations


class ScenestyleError(Exception):
    """Base class: ``str(err)`` is the single line printed on stderr."""

    exit_code = 1


class UsageError(ScenestyleError):
    """A flag, argument or path the user gave is invalid."""

    exit_code = 2


class InputImageError(ScenestyleError):
    """One input file cannot be read as an image (corrupt, truncated, not an image, bomb)."""

    exit_code = 1


class WeightsError(ScenestyleError):
    """Weights cannot be found, fail their sha256 check, or do not fit the architecture."""

    exit_code = 3


class WeightsUnavailable(WeightsError):
    """Pinned weights are not on this machine and cannot be fetched now (offline, Hub unreachable)."""


class OutputError(ScenestyleError):
    """An output cannot be written (read-only folder, disk full, would overwrite an input)."""

    exit_code = 4


class Interrupted(ScenestyleError):
    """Ctrl-C (or SIGTERM) stopped a batch; ``str(err)`` says what was finished."""

    exit_code = 130
