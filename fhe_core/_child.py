"""Entry point of the sandbox child: ``python -m blindframe.fhe_core._child JOB.json``."""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "run_tile_job"]


def run_tile_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one tile from files; write the OUTPUT bundle; say how long the run took."""
    import numpy as np

    from blindframe.fhe_core.server import run_tile

    start = time.perf_counter()
    clear = np.load(payload["clear_path"], allow_pickle=False)
    out = run_tile(
        payload["kernel_id"],
        Path(payload["input_path"]).read_bytes(),
        Path(payload["eval_keys_path"]).read_bytes(),
        clear,
        tile_index=int(payload["tile_index"]),
    )
    Path(payload["out_path"]).write_bytes(out)
    return {"seconds": time.perf_counter() - start, "bytes": len(out)}


def main(argv: list[str]) -> int:
    """Set limits, call the job's target, write its answer (or its error)."""
    job = json.loads(Path(argv[0]).read_text())
    memory = int(job["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (int(job["cpu_seconds"]), int(job["cpu_seconds"])))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    answer = Path(job["answer"])
    module_name, func_name = str(job["target"]).split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        result = func(job["payload"])
    except MemoryError:
        return 4
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it clearly
        answer.write_text(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return 3
    answer.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
