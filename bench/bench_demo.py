"""The demo end to end, as `make demo` runs it, against a baseline run in the same session.

Runs ``blindframe --json demo`` (a fresh local stack each time) and records each run's summary:
wall time and its split (setup, encrypt+upload, post, claim, compute, commit/reveal, verify,
settle, decrypt), gas, bytes moved, tiles, canaries and what each check catches. The runs:

- ``demo``: the demo's defaults (2 nodes, replication 2, the client's canary default);
- ``baseline``: the same with a ring of canary tiles (issue 12's demo: 100 tiles at 64x64);
- ``one-node`` and ``two-nodes``: one job at replication 1 rendered by 1 and by 2 render nodes
  on this machine's cores (the scaling).

``BENCH_DEMO_SIZE`` (default 64) sets the frame side; ``BENCH_DEMO_RUNS`` picks runs by name.
Each run's home is ``bench/out/demo-<run>`` (the client bench reads the ``demo`` run's job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from bench.figures import out_dir, record

RUNS: dict[str, dict[str, int | None]] = {
    "demo": {"nodes": 2, "replication": 2, "canaries": None},
    "baseline": {"nodes": 2, "replication": 2, "canaries": 1},
    "one-node": {"nodes": 1, "replication": 1, "canaries": None},
    "two-nodes": {"nodes": 2, "replication": 1, "canaries": None},
}


def run_demo(name: str, size: int) -> dict[str, Any]:
    """One demo run's summary (its JSON document)."""
    spec = RUNS[name]
    argv = [
        sys.executable,
        "-m",
        "blindframe",
        "--json",
        "demo",
        "--size",
        str(size),
        "--nodes",
        str(spec["nodes"]),
        "--replication",
        str(spec["replication"]),
        "--home",
        str(out_dir() / f"demo-{name}"),
    ]
    if spec["canaries"] is not None:
        argv += ["--canaries", str(spec["canaries"])]
    print(f"-- demo run {name}: {' '.join(argv[3:])}", flush=True)
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo run {name} failed (status {done.returncode}); see above")
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**summary, "nodesRun": spec["nodes"]}


def main() -> None:
    size = int(os.environ.get("BENCH_DEMO_SIZE", "64"))
    wanted = os.environ.get("BENCH_DEMO_RUNS", " ".join(RUNS)).split()
    unknown = [name for name in wanted if name not in RUNS]
    if unknown:
        raise SystemExit(f"unknown demo run {unknown[0]!r}: expected one of {'|'.join(RUNS)}")
    runs = {}
    for name in wanted:
        runs[name] = run_demo(name, size)
        split = ", ".join(f"{p['name']} {p['seconds']:.0f}" for p in runs[name]["split"])
        print(f"{name}: {runs[name]['wallSeconds']:.0f} s ({split})", flush=True)
        record("demo", {"size": size, "runs": runs})


if __name__ == "__main__":
    main()
