"""Docstrings cite docs/CONVENTIONS.md (shipped with the project), never research notes a user
of the package does not have; every cited section exists."""

from __future__ import annotations

import re
from pathlib import Path

import vsrdata

PACKAGE = Path(vsrdata.__file__).parent
CONVENTIONS = PACKAGE.parent / "docs" / "CONVENTIONS.md"
_PRIVATE = re.compile(r"EDVR_SPEC|MEASUREMENTS|\.\./shared|shared/research|research/\w+\.md")


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def _anchors() -> set[str]:
    """GitHub-style anchors of the `##` headings."""
    heads = re.findall(r"^#{1,3} (.+)$", CONVENTIONS.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in heads}


def test_no_file_cites_private_research_notes():
    hits = [f"{p.relative_to(PACKAGE)}:{i}" for p in _sources()
            for i, line in enumerate(p.read_text().splitlines(), 1) if _PRIVATE.search(line)]
    assert not hits, f"cite docs/CONVENTIONS.md#<section> instead: {hits}"


def test_cited_sections_exist():
    anchors = _anchors()
    cited = {(p.name, a) for p in _sources() for a in re.findall(r"CONVENTIONS\.md#([\w-]+)", p.read_text())}
    assert cited, "expected docstrings to cite docs/CONVENTIONS.md"
    missing = sorted((name, a) for name, a in cited if a not in anchors)
    assert not missing, f"no such section in docs/CONVENTIONS.md: {missing}"
