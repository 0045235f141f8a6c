"""Run the benchmarks: `python -m bench` runs all, `python -m bench fhe ipfs` runs some."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _subjects() -> dict[str, str]:
    here = Path(__file__).parent
    return {
        info.name.removeprefix("bench_"): f"bench.{info.name}"
        for info in pkgutil.iter_modules([str(here)])
        if info.name.startswith("bench_")
    }


def main(argv: list[str]) -> int:
    subjects = _subjects()
    wanted = argv or sorted(subjects)
    unknown = [name for name in wanted if name not in subjects]
    if unknown:
        print(
            f"unknown benchmark {unknown[0]!r}: expected one of {'|'.join(sorted(subjects))}",
            file=sys.stderr,
        )
        return 2
    for name in wanted:
        print(f"== bench {name} ==", flush=True)
        module = importlib.import_module(subjects[name])
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
