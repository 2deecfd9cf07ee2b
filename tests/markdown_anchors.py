"""GitHub's anchors for a Markdown document's headings: what a ``file.md#anchor`` link may name."""

import re


def heading_anchors(markdown: str) -> set[str]:
    """The anchor of every heading outside fenced code: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    }
