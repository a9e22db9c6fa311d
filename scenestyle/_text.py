"""File names as text that can always be printed, written to a UTF-8 manifest, and kept on one line.

On Linux a file name is bytes: Python hands a name that is not UTF-8 over as a str holding
lone surrogates (PEP 383), which no UTF-8 stream accepts. A name may also hold a newline or
other control characters, which would split a one-line message.
"""

from __future__ import annotations

import os
import unicodedata


def encodable(text: object) -> str:
    """``str(text)`` with each byte that is not UTF-8 shown as ``\\xNN`` (e.g. ``bad\\xff.jpg``),
    so that it can be encoded as UTF-8; every other character is kept."""
    s = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return "".join(_unsurrogate(c) for c in s)


def _unsurrogate(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # any other lone surrogate
        return f"\\u{code:04x}"
    return c


def one_line(text: object) -> str:
    """``encodable(text)`` with control and line-separator characters escaped (``\\n``, ``\\x1b``)."""
    s = encodable(text)
    if s.isprintable():
        return s
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNSHOWN else c for c in s)


def exception_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs collapsed), at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# Controls (newline, ESC), invisible format characters (right-to-left overrides that reorder
# what is shown) and line/paragraph separators.
_UNSHOWN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def encodable_tree(obj: object) -> object:
    """Every str inside dicts, lists and tuples made ``encodable`` (for JSON written as UTF-8)."""
    if isinstance(obj, str):
        return encodable(obj)
    if isinstance(obj, dict):
        return {encodable(k) if isinstance(k, str) else k: encodable_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encodable_tree(v) for v in obj]
    return obj
