"""JSON Pointers (RFC 6901): where a vendor's records sit in the body of one of its pages.

An adapter declares it on its `Page` (``"/data"``; ``""`` for a body that is the list itself); the raw archive
stores it with the page, so a record's raw form is found again as ``body[pointer][index]`` without vendor code.
"""

from __future__ import annotations

from typing import Any


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document``; KeyError, IndexError or TypeError when it names none."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer is empty or starts with '/': {pointer!r}")
    value = document
    for token in pointer[1:].split("/"):
        name = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, list):
            if not name.isdigit() or (name != "0" and name.startswith("0")):
                raise IndexError(f"{name!r} is not an array index")
            value = value[int(name)]
        elif isinstance(value, dict):
            value = value[name]
        else:
            raise TypeError(f"{pointer!r} goes past a {type(value).__name__}")
    return value
