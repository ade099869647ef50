"""The documentation's examples cannot rot unnoticed.

conftest.py (at the repository's root) runs every ```` ```python ```` block of
README.md and docs/*.md through Sybil. These tests keep that net whole: no
block hides from it under another info string, every skipped block says why,
and every page is collected and in the site's navigation.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$", re.MULTILINE)
SKIP = re.compile(r"<!--\s*skip:\s*(?P<arguments>.*?)\s*-->")


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_python_block_is_one_sybil_runs(page: Path) -> None:
    # Sybil runs a fence only when its info string is exactly "python": a
    # block marked "py", "python3" or "python notest" would silently not run.
    for match in FENCE.finditer(page.read_text()):
        info = match["info"].strip()
        if info.lower().startswith(("py", "{.py", "{py")):
            assert info == "python", (
                f"{_name(page)}: a block marked {info!r} would not run; mark it "
                '```python, and precede it with <!-- skip: next "why" --> if it cannot run'
            )


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_skipped_block_says_why(page: Path) -> None:
    for match in SKIP.finditer(page.read_text()):
        assert re.fullmatch(r'next "[^"]{10,}"', match["arguments"]), (
            f'{_name(page)}: {match[0]} must be <!-- skip: next "the reason it cannot run" -->'
        )


def test_the_pages_are_collected_by_the_suite() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert {"docs", "README.md"} <= set(options["ini_options"]["testpaths"])


def test_every_page_is_in_the_sites_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r":\s*(\S+\.md)\s*$", nav, re.MULTILINE))
    pages = {page.name for page in (ROOT / "docs").glob("*.md")}
    assert pages == listed, f"not in mkdocs.yml's nav: {pages - listed}; missing: {listed - pages}"
