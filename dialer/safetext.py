"""Text from outside (a CSV cell, a file name, Twilio's error message) made safe to show.

An operator's terminal interprets control characters (ANSI escapes can rewrite what
is on screen) and a message must stay one line, so untrusted text is shown escaped
and cut to a bounded length; text bound for TwiML or a stored reason loses its
control characters instead.
"""

from __future__ import annotations

import unicodedata

__all__ = ["has_controls", "shown", "without_controls"]

# What shown() keeps of a value by default: enough to recognise it, never a flood.
SHOWN_CHARS = 120


def _is_control(char: str) -> bool:
    """C0/C1 controls, lone surrogates (undecodable bytes) and the bidirectional
    formatting marks that can make a line read differently from what it contains."""
    return unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI


_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_controls(text: str, *, allow: str = "") -> bool:
    """Whether ``text`` holds a control character other than those in ``allow``."""
    return any(_is_control(char) and char not in allow for char in text)


def without_controls(text: str, *, blank: str = "\t\n\r") -> str:
    """``text`` with control characters removed; those in ``blank`` become a space
    (so words around a line break do not run together)."""
    if text.isprintable():
        return text
    return "".join(
        " " if char in blank else char for char in text if char in blank or not _is_control(char)
    )


def shown(value: object, limit: int = SHOWN_CHARS, *, quoted: bool = True) -> str:
    """``value`` as one escaped line of at most about ``limit`` characters, in quotes
    unless ``quoted`` is false."""
    text = str(value)
    cut = len(text) > limit
    # repr escapes what is not printable: controls, format marks, undecodable bytes.
    escaped = repr(text[:limit])
    if not quoted:
        escaped = escaped[1:-1]
    return f"{escaped}... ({len(text):,} characters)" if cut else escaped
