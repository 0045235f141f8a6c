"""FFT-plan pinning: what it costs a worker, against the same calls unpinned, in the same run.

For each kernel: the client's plan survey (16 fresh candidates), then sandbox calls that do
nothing (the child's ``ping`` call: process start and imports) unpinned and pinned to the
survey's mode (candidates forked per call, seconds of pinning), a long-lived ``PinnedChild``
(start, then warm calls), and one real tile (sample scene, tile 27: a lease of one) run three
ways: unpinned fresh child, pinned fresh child, warm pinned child. Ratios are to the unpinned
call of the same run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from blindframe.fhe_core import wire
from blindframe.fhe_core.agreement import _tile_inputs
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.kernels import KERNEL_IDS
from blindframe.fhe_core.keys import evaluation_keys_path, generate_keys
from blindframe.fhe_core.lease_child import tile_path
from blindframe.fhe_core.plans import survey_kernel
from blindframe.fhe_core.sandbox import LEASE, PING, PinnedChild, lease_request, run_in_child

CALLS = 8


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _kernel(kernel_id: str, tmp: Path) -> dict[str, Any]:
    survey = survey_kernel(kernel_id)
    target = survey.mode()
    plan = str(target)
    free = [run_in_child(PING, {}).seconds for _ in range(CALLS)]
    pinned = [run_in_child(PING, {}, fft_plan=plan) for _ in range(CALLS)]
    start = time.monotonic()
    with PinnedChild(plan, kernel_id=kernel_id) as child:
        first = child.run(PING, {})
        started = time.monotonic() - start
        warm = [child.run(PING, {}).seconds for _ in range(CALLS)]
        generate_keys(kernel_id, tmp)
        client = KernelClient(kernel_id, tmp)
        plain, job, tile = _tile_inputs(kernel_id)
        inp = tmp / f"{kernel_id}.in"
        inp.write_bytes(
            client.encrypt(*plain, tile_index=wire.NO_TILE if kernel_id == "volume@1" else tile)
        )
        keys = evaluation_keys_path(kernel_id, tmp)
        for name in "abc":
            (tmp / name).mkdir()
        tiles = {
            "unpinned child": run_in_child(
                LEASE, lease_request(job, [tile], [inp], keys, tmp / "a")
            ),
            "pinned child": run_in_child(
                LEASE, lease_request(job, [tile], [inp], keys, tmp / "b"), fft_plan=plan
            ),
            "warm pinned child": child.run(
                LEASE, lease_request(job, [tile], [inp], keys, tmp / "c")
            ),
        }
    same = tile_path(tmp / "b", tile).read_bytes() == tile_path(tmp / "c", tile).read_bytes()
    return {
        "kernel": kernel_id,
        "plan": plan,
        "share": survey.share(target),
        "survey_s": survey.seconds,
        "per_candidate_s": survey.seconds / survey.samples,
        "free_ping_s": _mean(free),
        "pinned_ping_s": _mean([r.seconds for r in pinned]),
        "attempts": [r.plan_attempts for r in pinned],
        "pin_s": _mean([r.pin_seconds for r in pinned]),
        "child_start_s": started,
        "child_first_attempts": first.plan_attempts,
        "warm_ping_s": _mean(warm),
        "tiles": {k: v.seconds for k, v in tiles.items()},
        "pinned_outputs_equal": same,
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-plans-") as tmp:
        for kernel_id in KERNEL_IDS:
            kdir = Path(tmp) / kernel_id.replace("@", "-")
            kdir.mkdir()
            row = _kernel(kernel_id, kdir)
            rows.append(row)
            print(row, flush=True)
    print()
    print(
        "| kernel | survey: mode's share, s per candidate | fresh pinned child: candidates"
        " (mean, max), pinning s | no-op call s: unpinned (no Concrete import) / pinned (import"
        " + pinning) | PinnedChild: start s, warm no-op call s | one tile s: unpinned / pinned"
        " / warm PinnedChild (ratios to unpinned) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        t = r["tiles"]
        base = t["unpinned child"]
        print(
            f"| {r['kernel']} | {r['share']:.2f}, {r['per_candidate_s']:.2f} "
            f"| {_mean(r['attempts']):.1f}, {max(r['attempts'])}; {r['pin_s']:.2f} "
            f"| {r['free_ping_s']:.2f} / {r['pinned_ping_s']:.2f} "
            f"| {r['child_start_s']:.2f}, {r['warm_ping_s']:.3f} "
            f"| {base:.1f} / {t['pinned child']:.1f} / {t['warm pinned child']:.1f} "
            f"({t['pinned child'] / base:.2f}x, {t['warm pinned child'] / base:.2f}x) |"
        )
    print(
        "pinned outputs equal (fresh vs warm pinned child):",
        [r["pinned_outputs_equal"] for r in rows],
    )


if __name__ == "__main__":
    main()
