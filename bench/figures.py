"""The figures one `make bench` run measured, kept in one JSON file for the report and the ceiling.

Each benchmark records its figures under its own name (``record("demo", {...})``); the file
(``bench/out/figures.json``, or ``$BENCH_OUT/figures.json``) starts empty at the beginning of a
run (``start_run``) and carries the date and the machine, so every ratio in the report compares
figures of one run on one machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["load", "machine", "out_dir", "record", "start_run"]


def out_dir() -> Path:
    """Where a run's files go: ``$BENCH_OUT``, else ``bench/out`` (git-ignored)."""
    path = Path(os.environ.get("BENCH_OUT") or Path(__file__).parent / "out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _path() -> Path:
    return out_dir() / "figures.json"


def machine() -> dict[str, Any]:
    """The date and the machine the figures come from."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        concrete = version("concrete-python")
    except Exception:  # noqa: BLE001 - any failure only leaves the version out
        concrete = "unknown"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "memoryGiB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "concrete": concrete,
    }


def start_run() -> None:
    """Begin a run: forget the last run's figures, note the machine."""
    _path().write_text(json.dumps({"machine": machine()}, indent=1) + "\n")


def load() -> dict[str, Any]:
    """Every figure recorded in this run (``{}`` before any)."""
    path = _path()
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()))


def record(subject: str, figures: dict[str, Any]) -> None:
    """Keep ``figures`` under ``subject`` (replacing what it recorded before in this run), with
    the load average at the time."""
    data = load() or {"machine": machine()}
    data[subject] = {
        **figures,
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
    }
    _path().write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
