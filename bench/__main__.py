"""Run the benchmarks: `python -m bench` runs all, `python -m bench fhe ipfs` runs some.

Each benchmark prints its own figures and records them (bench/figures.py); at the end `report`
prints issue 12's figures in one table with their same-run baselines and draws the chart
(bench/report.py). A run of every benchmark starts from no recorded figures; a run of some adds
to the last run's. ``report`` alone redraws the table from what was recorded; ``--record`` (with
``report`` or a full run) also rewrites the generated part of bench/RESULTS.md.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

# The order a full run takes: the client bench reads the demo run's job directory; quality
# (the kernels' twins against Blender Cycles) needs no stack and comes last.
ORDER = ("fhe", "plans", "ipfs", "demo", "client", "quality")


def _subjects() -> dict[str, str]:
    here = Path(__file__).parent
    return {
        info.name.removeprefix("bench_"): f"bench.{info.name}"
        for info in pkgutil.iter_modules([str(here)])
        if info.name.startswith("bench_")
    }


def main(argv: list[str]) -> int:
    from bench import figures, report

    subjects = _subjects()
    flags = [a for a in argv if a.startswith("--")]
    names = [a for a in argv if not a.startswith("--")]
    unknown = [n for n in names if n not in subjects and n != "report"] + [
        f for f in flags if f != "--record"
    ]
    if unknown:
        print(
            f"unknown benchmark {unknown[0]!r}: expected one of "
            f"{'|'.join([*sorted(subjects), 'report'])} (and --record)",
            file=sys.stderr,
        )
        return 2
    ordered = sorted(subjects, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    wanted = [n for n in ordered if n in names] if names else ordered
    if not names:
        figures.start_run()
    for name in wanted:
        print(f"== bench {name} ==", flush=True)
        module = importlib.import_module(subjects[name])
        module.main()
    print("== bench report ==", flush=True)
    report.main(flags)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
