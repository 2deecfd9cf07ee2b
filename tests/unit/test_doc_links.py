"""Every relative link in README.md and docs/ leads somewhere: the file exists and, when the link names a heading
(``#anchor``), the file has that heading (GitHub's anchors)."""

import re
from pathlib import Path

import pytest

from markdown_anchors import heading_anchors

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target): a target without a scheme (no http:, mailto:), up to an optional #anchor.
LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:)([^)\s#]*)(?:#([^)\s]+))?\)")


def links(doc: Path) -> list[tuple[str, str | None]]:
    return [(target, anchor or None) for target, anchor in LINK.findall(doc.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target, anchor in links(doc):
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor is not None and path.suffix == ".md" and anchor not in heading_anchors(path.read_text("utf-8")):
            broken.append(f"{target}#{anchor}: no such heading")
    assert not broken, broken


def test_the_link_pattern_reads_file_and_anchor_links() -> None:
    sample = "see [cost](docs/cost.md#the-bill), [top](#now), [site](https://example.com/x#y) and [s](scheduling.md)"
    assert LINK.findall(sample) == [("docs/cost.md", "the-bill"), ("", "now"), ("scheduling.md", "")]
