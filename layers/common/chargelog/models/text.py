"""Free text a client sends (names, filter values): printable, so it cannot hide what it says.

Control characters (NUL, escapes, C1 controls) and the Unicode direction controls (bidi overrides, embeddings and
isolates, which make "\u202etxt.exe" display as "exe.txt") are refused wherever a person or a terminal will read
the text back.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Final

from pydantic import AfterValidator

# Directional formatting characters (Unicode's Bidi_Control property).
BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable(text: str) -> str:
    for character in text:
        if character in BIDI_CONTROLS or unicodedata.category(character) == "Cc":
            raise ValueError(f"must not hold control or text-direction characters (found U+{ord(character):04X})")
    return text


# Apply to a str type: ``Annotated[str, StringConstraints(...), Printable]``.
Printable = AfterValidator(_printable)
PrintableStr = Annotated[str, Printable]
