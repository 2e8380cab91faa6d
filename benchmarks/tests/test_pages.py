"""The results page stays a results page: short enough to read, every experiment page linked
from it, links that resolve, and no folder of the machine the runs happened on."""

from __future__ import annotations

import re

import pytest

from benchmarks.run_spec import REPO

DOCS = REPO / "docs"
PAGES = sorted([*DOCS.glob("*.md"), *(DOCS / "experiments").glob("*.md")])


def test_the_results_page_is_under_500_lines():
    n = len((DOCS / "benchmarks.md").read_text(encoding="utf-8").splitlines())
    assert n < 500, f"docs/benchmarks.md has {n} lines: move histories to docs/experiments/"


def test_every_experiment_page_is_linked_from_the_results_page():
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (DOCS / "experiments").glob("*.md"))
    assert pages and [p for p in pages if f"(experiments/{p}" not in text] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_pages_name_no_folder_of_the_machine_that_ran_them(page):
    text = page.read_text(encoding="utf-8")
    found = [line for line in text.splitlines() if "/tmp/" in line or "/work/" in line]
    assert found == [], "use a placeholder a reader chooses (WORK/, DATA/, OUT/)"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (page.parent / t).resolve().exists()]
    assert missing == []


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_to_a_section_find_it():
    """Moving a section to another page breaks the links to it: they must follow."""
    headings = {
        p.resolve(): {_slug(h) for h in re.findall(r"^#+ (.*)$", p.read_text("utf-8"), re.M)}
        for p in [*PAGES, REPO / "README.md"]
    }
    broken = []
    for page in [*PAGES, REPO / "README.md"]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text("utf-8")):
            path = (page.parent / target).resolve() if target else page.resolve()
            if path in headings and anchor not in headings[path]:
                broken.append(f"{page.name}: {target}#{anchor}")
    assert broken == []
