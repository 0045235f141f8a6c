"""Figures the reliability runs record, and tests/RELIABILITY.md written from them.

A test calls :func:`record` once per thing it measured (a kind of bad input and how many cases
were tried, refused, crashed; a fault survived; a load held). Each call appends one JSON line to
``tests/.reliability/<section>.jsonl`` (ignored by git), so figures survive across pytest
sessions: a quick run of one suite does not erase what a full run measured. At the end of a
session that recorded anything, tests/conftest.py calls :func:`render`, which keeps the latest
record of each (section, name) and writes one table per section, with the date and machine each
figure was measured on. Nothing in RELIABILITY.md is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RECORDS", "REPORT", "machine", "record", "records", "render"]

TESTS = Path(__file__).resolve().parents[1]
RECORDS = TESTS / ".reliability"
REPORT = TESTS / "RELIABILITY.md"
# Sections in this order first (the order), any other after them alphabetically.
_ORDER = ("faults", "bad input", "load")


def machine() -> str:
    """The machine a figure was measured on: OS, architecture, CPU model and count, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


def _slug(section: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-") or "section"


def record(
    section: str, name: str, *, directory: Path = RECORDS, **figures: int | float | str
) -> None:
    """Append one measurement: ``section`` (``bad input``, ``faults``, ``load``), the row's
    ``name`` (a kind of input, a fault, a load) and its figures (columns, in the order given)."""
    if not figures:
        raise ValueError(f"record({section!r}, {name!r}) has no figures")
    directory.mkdir(parents=True, exist_ok=True)
    line = {
        "section": section,
        "name": name,
        "figures": figures,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    # One write of one line in append mode: concurrent writers never interleave within it.
    with (directory / f"{_slug(section)}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=False) + "\n")


def records(directory: Path = RECORDS) -> dict[str, dict[str, dict[str, Any]]]:
    """The latest record of every (section, name): ``{section: {name: line}}``. A line that is
    not JSON (a run killed mid-write) is skipped."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.jsonl")):
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
                section, name = str(line["section"]), str(line["name"])
                dict(line["figures"])
            except (ValueError, KeyError, TypeError):
                continue
            rows = out.setdefault(section, {})
            rows.pop(name, None)  # re-insert: a row keeps the position of its latest record
            rows[name] = line
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def render(path: Path = REPORT, directory: Path = RECORDS) -> bool:
    """Write ``path`` from the records; False (nothing written) when there are none."""
    found = records(directory)
    if not found:
        return False
    sections = [s for s in _ORDER if s in found] + sorted(set(found) - set(_ORDER))
    lines = [
        "# Reliability figures",
        "",
        "Written by the test runs themselves (`tests/support/reliability.py`), never by hand:",
        "each row is the latest measurement of its kind. Regenerate with `make test` (or any",
        "pytest run of the suites that record figures).",
        "",
    ]
    for section in sections:
        rows = list(found[section].values())
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row["figures"] if c not in columns]
        lines += [f"## {section}", ""]
        lines.append("| " + " | ".join(["kind", *(c.replace("_", " ") for c in columns)]) + " |")
        lines.append("|" + " --- |" * (len(columns) + 1))
        for row in rows:
            cells = [_cell(row["name"])]
            cells += [_cell(row["figures"].get(c, "")) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        dates = sorted({row["at"] for row in rows})
        machines = sorted({row["machine"] for row in rows})
        when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
        lines += ["", f"Measured {when} on {'; '.join(machines)}.", ""]
    text = "\n".join(lines)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return True
