"""The generated tables of docs/benchmarks.md and of the pages of docs/experiments/.

The pages are written by hand; each generated table sits between two marker comments::

    <!-- table:quality metrics_default -->
    ...generated...
    <!-- /table:quality metrics_default -->

``quality`` is the kind of table (a key of :data:`TABLES`) and ``metrics_default`` the
file it reads, ``docs/benchmarks/<stem>.json`` (several stems, comma-separated, for tables
that read several). Only the text between markers is replaced, on every page of
:func:`pages` (or the ``--doc`` pages given)::

    python -m benchmarks.tables [--doc docs/benchmarks.md ...] [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import render as R
from benchmarks import render_targets as T
from benchmarks.run_spec import METRICS_DIR, REPO

MARKER = re.compile(
    r"<!-- table:(?P<kind>[\w-]+) (?P<files>[\w.,-]+) -->\n"
    r"(?P<body>.*?)<!-- /table:(?P=kind) (?P=files) -->",
    re.DOTALL,
)
_OPENING = re.compile(r"<!-- table:([\w-]+) ([\w.,-]+) -->")


class TableError(ValueError):
    """A marker in the document that cannot be filled."""


#: Table kinds a marker can name, and the function that draws each from its file(s).
TABLES: dict[str, Callable[..., str]] = {
    "quality": R.quality,
    "targets": T.targets,
    "targets-both": T.targets_both,
    "comparisons": R.comparisons,
    "conditions": R.conditions,
    "known-effects": R.known_effects,
    "replicates": T.replicates,
    "seeds": T.seeds,
    "start-plate": T.start_plate,
    "reversibility": R.reversibility,
    "presets": R.presets,
    "training": R.training,
    "walls": R.walls,
}


def render(kind: str, files: str, folder: Path = METRICS_DIR) -> str:
    """One table from ``folder/<stem>.json`` for each comma-separated stem of ``files``."""
    if kind not in TABLES:
        raise TableError(
            f"unknown table kind {kind!r} in a marker of the document; use one "
            f"of: {', '.join(TABLES)}"
        )
    data = []
    for stem in files.split(","):
        path = folder / f"{stem}.json"
        if not path.is_file():
            raise TableError(
                f"{path} not found, but the table '{kind} {files}' reads it: run "
                "`python -m benchmarks.make` to produce it, or remove the marker"
            )
        data.append({**json.loads(path.read_text(encoding="utf-8")), "_file": stem})
    try:
        return TABLES[kind](*data)
    except (KeyError, TypeError, IndexError) as err:
        raise TableError(
            f"{files}: cannot draw a '{kind}' table from it (missing {err}); is "
            "it the metrics file this kind of table reads?"
        ) from err


def fill(text: str, folder: Path = METRICS_DIR) -> str:
    """``text`` with every marked table regenerated; text outside the markers unchanged."""
    for m in _OPENING.finditer(text):
        if f"<!-- /table:{m[1]} {m[2]} -->" not in text[m.end() :]:
            raise TableError(
                f"the marker '{m[0]}' has no closing '<!-- /table:{m[1]} {m[2]} "
                "-->' after it; add one where the generated table should end"
            )
    return MARKER.sub(
        lambda m: (
            f"<!-- table:{m['kind']} {m['files']} -->\n\n"
            f"{render(m['kind'], m['files'], folder)}\n\n"
            f"<!-- /table:{m['kind']} {m['files']} -->"
        ),
        text,
    )


def pages() -> list[Path]:
    """The pages whose marked tables are generated: docs/benchmarks.md, then every page of
    docs/experiments/."""
    docs = REPO / "docs"
    return [docs / "benchmarks.md", *sorted((docs / "experiments").glob("*.md"))]


def fill_pages(paths: list[Path] | None = None, folder: Path = METRICS_DIR) -> list[Path]:
    """Regenerate the marked tables of every page (default: :func:`pages`); the pages
    written (those whose text changed)."""
    written = []
    for path in paths or pages():
        old = path.read_text(encoding="utf-8")
        new = fill(old, folder)
        if new != old:
            path.write_text(new, encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Regenerate the marked tables of docs/benchmarks.md and "
        "docs/experiments/*.md from docs/benchmarks/*.json."
    )
    p.add_argument(
        "--doc", type=Path, nargs="+", help="pages to fill (default: every page with tables)"
    )
    p.add_argument(
        "--metrics",
        type=Path,
        default=METRICS_DIR,
        help="folder of the JSON files the markers name",
    )
    p.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a table is out of date"
    )
    args = p.parse_args(argv)
    stale = 0
    for doc in args.doc or pages():
        try:
            old = doc.read_text(encoding="utf-8")
            new = fill(old, args.metrics)
        except (OSError, TableError) as err:
            print(f"error: {doc}: {err}", file=sys.stderr)
            return 2
        if args.check:
            print(f"{doc}: " + ("tables up to date" if new == old else "tables out of date"))
            stale += new != old
        else:
            doc.write_text(new, encoding="utf-8")
            print(f"{doc}: {len(MARKER.findall(new))} tables written")
    return int(stale > 0)


if __name__ == "__main__":
    sys.exit(main())
