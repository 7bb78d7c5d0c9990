"""Showing invisible and direction-changing characters in trace text instead of obeying them.

Trace contents are untrusted (model output, user input). A right-to-left override (U+202E)
or another bidi control in a span name makes ``"txt.exe"`` display as something else;
zero-width and Unicode "tag" characters hide text a reader cannot see (prompt smuggling);
terminal control characters can rewrite a terminal. Every place that shows trace text to a
person (the web UI, the HTML trace view, the CLI) shows such a character as its escape,
``\\u202e``, marked so it cannot be mistaken for typed text.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Final

__all__ = ["CONTROL_CHARS", "escape_controls", "html_text"]

#: A character class of what is shown escaped: C0/C1 controls except tab and newline,
#: bidi embeddings, overrides, isolates and marks, zero-width space and word joiners,
#: invisible operators, the byte-order mark, interlinear annotations and tag characters.
CONTROL_CHARS: Final = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
)
_CONTROL: Final = re.compile(f"[{CONTROL_CHARS}]")


def _code(char: str) -> str:
    point = ord(char)
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


def escape_controls(text: str) -> str:
    """``text`` with each control character written as its escape (for terminals, titles)."""
    return _CONTROL.sub(lambda m: _code(m.group()), text)


def _marker(match: re.Match[str]) -> str:
    char = match.group()
    name = unicodedata.name(char, "control character")
    return f'<span class="lt-ctl" title="U+{ord(char):04X} {name}">{_code(char)}</span>'


def html_text(text: object) -> str:
    """``text`` escaped for an HTML text node, control characters shown as marked escapes."""
    return _CONTROL.sub(_marker, html.escape(str(text)))
