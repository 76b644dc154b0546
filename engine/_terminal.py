"""Making text that came from a file safe to print on a terminal.

A scenario's description, a strategy label or a file name can hold escape sequences: printed raw,
``\x1b]0;...\x07`` retitles the terminal window, ``\x1b[2J`` clears it, and the bidirectional
overrides (U+202E ...) reorder what a reader sees. :func:`terminal_safe` shows all of them escaped
(``\x1b]0;...``) so they are visible and inert. It has no dependencies, so :mod:`engine.errors`
can use it for every located message.
"""

from __future__ import annotations

import re

__all__ = ["terminal_safe"]

# C0 controls but newline and tab (ESC among them: once it is shown escaped, what follows it is plain
# text), DEL, C1 controls (0x9b is an 8-bit CSI), and the bidi marks, embeddings, overrides and
# isolates that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters and bidi overrides shown escaped (``\\x1b]0;...``), so text
    read from a file cannot retitle, clear or recolour the terminal or reorder what is shown.
    Newlines and tabs are kept."""
    return _UNSAFE.sub(_escaped, str(text))


def _escaped(m: re.Match) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
