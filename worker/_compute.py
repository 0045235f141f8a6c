"""The sandbox child's side of a lease: compile once, load the keys once, run every tile.

Runs only inside :func:`blindframe.fhe_core.sandbox.run_in_child` (a fresh interpreter with memory
and CPU limits), so whatever the downloaded bundles do to Concrete's native code stays there.
The parent chose every path in the payload; the child reads inputs from them and writes one
OUTPUT bundle per tile.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["TARGET", "run_lease"]

TARGET = "blindframe.worker._compute:run_lease"


def run_lease(payload: dict[str, Any]) -> dict[str, Any]:
    """Compute the tiles of one lease; answer with per-tile files and timings.

    Payload: ``kernel`` (id), ``job`` (PublicJob JSON), ``tiles`` (task indices), ``inputs`` (one
    INPUT bundle path per tile, in the same order), ``eval_keys`` (EVAL_KEYS bundle path),
    ``out_dir``.
    """
    start = time.perf_counter()
    from blindframe.fhe_core.jobs import PublicJob, task_clear_args
    from blindframe.fhe_core.kernels import compile_kernel
    from blindframe.fhe_core.keys import read_evaluation_keys
    from blindframe.fhe_core.server import run_tile

    kernel = str(payload["kernel"])
    public = PublicJob.from_json(payload["job"])
    if public.kernel_id != kernel:
        raise ValueError(f"the job is for {public.kernel_id}, the lease for {kernel}")
    tiles = [int(t) for t in payload["tiles"]]
    inputs = [Path(p) for p in payload["inputs"]]
    if len(inputs) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles but {len(inputs)} input paths")
    out_dir = Path(payload["out_dir"])
    compile_kernel(kernel)
    keys = read_evaluation_keys(kernel, Path(payload["eval_keys"]).read_bytes())
    setup = time.perf_counter() - start
    loaded: dict[Path, bytes] = {}  # a volume job's tiles share one input: read it once
    done = []
    for tile, path in zip(tiles, inputs, strict=True):
        if path not in loaded:
            loaded[path] = path.read_bytes()
        began = time.perf_counter()
        output = run_tile(
            kernel, loaded[path], keys, task_clear_args(public, tile), tile_index=tile
        )
        seconds = time.perf_counter() - began
        target = out_dir / f"tile-{tile}.bundle"
        target.write_bytes(output)
        done.append({"tile": tile, "path": str(target), "seconds": seconds, "bytes": len(output)})
    return {
        "tiles": done,
        "setup_seconds": setup,
        "total_seconds": time.perf_counter() - start,
    }
