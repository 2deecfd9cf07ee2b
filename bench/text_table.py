"""The benches' plain-text tables: the first column left-aligned, the others right-aligned, a rule under the header."""

from __future__ import annotations


def aligned(rows: list[list[str]]) -> str:
    """``rows[0]`` is the header; every row has as many cells."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
