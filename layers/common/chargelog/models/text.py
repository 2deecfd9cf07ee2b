"""Free text a client sends (names, filter values): printable, so it cannot hide what it says.

Control characters (NUL, escapes, C1 controls) and the Unicode direction controls (bidi overrides, embeddings and
isolates, which make "\u202etxt.exe" display as "exe.txt") are refused wherever a person or a terminal will read
the text back.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# Directional formatting characters (Unicode's Bidi_Control property).
BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable(value: Any) -> Any:
    """Text as sent: checked before the type's own validation, whose ``strip_whitespace`` would otherwise remove a
    trailing NEL (U+0085, a C1 control and, to ``str.strip``, whitespace) that the pattern refuses. Anything but a str
    passes on, for the type to refuse."""
    if isinstance(value, str):
        for character in value:
            if character in BIDI_CONTROLS or unicodedata.category(character) == "Cc":
                raise ValueError(f"must not hold control or text-direction characters (found U+{ord(character):04X})")
    return value


# The same rule as a JSON Schema pattern, so the OpenAPI document says it (and clients generated from it keep to it).
PRINTABLE_PATTERN: Final = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"


@dataclass(frozen=True)
class _PrintableValidator:
    """Checks the text (`_printable`: a message that names the character) and documents it (`PRINTABLE_PATTERN`)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_printable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = PRINTABLE_PATTERN
        return json_schema


# Apply to a str type: ``Annotated[str, StringConstraints(...), Printable]``.
Printable = _PrintableValidator()
PrintableStr = Annotated[str, Printable]
