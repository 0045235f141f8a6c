"""Computing one lease: fetch keys and inputs, run every tile in one sandboxed call pinned to the
job's FFT plan (:mod:`blindframe.worker.pinned`), pack the result file, add it to the node's IPFS
node.

Runs on a worker thread of the node; it sends no transaction and touches no state database (the
node's main loop does both with what :meth:`LeaseComputer.compute` returns). Every download is
verified against its CID and against the size the manifest declares.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.coordinator.results import LeaseResult, pack_lease_result
from blindframe.coordinator.store import kubo_cid_of_bytes
from blindframe.fhe_core.sandbox import LEASE, lease_request
from blindframe.worker.errors import WorkerError
from blindframe.worker.faults import HONEST, Behaviour

if TYPE_CHECKING:
    from blindframe.coordinator.manifest import ContentRef, Manifest
    from blindframe.coordinator.store import IpfsStore, KeyCache
    from blindframe.worker.pinned import PinnedPool

__all__ = [
    "BadJobDataError",
    "LeaseComputer",
    "LeaseOutput",
    "LeaseTask",
    "result_file",
]


class BadJobDataError(WorkerError, ValueError):
    """What a job's manifest points to is not what it claims (size, shape): refuse the job."""


@dataclass(frozen=True)
class LeaseTask:
    """What to compute: a lease of a validated job."""

    lease_id: int
    job_id: int
    kernel: str
    first_tile: int
    count: int
    leaf_depth: int
    manifest: Manifest
    timeout_s: float


@dataclass
class LeaseOutput:
    """A computed lease: its result (trees included), the root to commit, where it is."""

    lease_id: int
    result: LeaseResult
    root: bytes
    path: Path
    cid: str
    size: int
    fetch_seconds: float
    setup_seconds: float
    tile_seconds: float
    total_seconds: float
    tiles_computed: int
    fft_plan: str


def result_file(results_dir: Path, lease_id: int) -> Path:
    """Where the result file of ``lease_id`` is kept."""
    return results_dir / f"lease-{lease_id}.bflr"


class LeaseComputer:
    """Turns a :class:`LeaseTask` into a :class:`LeaseOutput` (thread-safe: no shared state but
    the caches, which lock themselves)."""

    def __init__(
        self,
        *,
        store: IpfsStore,
        key_cache: KeyCache,
        input_cache: KeyCache,
        results_dir: Path,
        work_dir: Path,
        pinned: PinnedPool,
        behaviour: Behaviour = HONEST,
    ) -> None:
        self.store = store
        self.key_cache = key_cache
        self.input_cache = input_cache
        self.results_dir = results_dir
        self.work_dir = work_dir
        self.pinned = pinned
        self.behaviour = behaviour

    def _fetch(self, cache: KeyCache, ref: ContentRef, what: str) -> Path:
        # A download stops at the size the manifest names: a bigger file is refused unfetched.
        path = cache.get(ref.cid, max_size=ref.size)
        size = path.stat().st_size
        if size != ref.size:
            cache.evict(ref.cid)
            raise BadJobDataError(
                f"the {what} {ref.cid} is {size} bytes; the manifest says {ref.size}"
            )
        return path

    def compute(self, task: LeaseTask) -> LeaseOutput:
        """Fetch, compute in a sandboxed process pinned to the job's FFT plan, pack, upload.
        Raises SandboxError (PlanUnreachableError included), StoreError, BadJobDataError or
        LeaseResultError; the caller decides what becomes of the lease."""
        began = time.monotonic()
        manifest = task.manifest
        tiles = list(range(task.first_tile, task.first_tile + task.count))
        keys = self._fetch(self.key_cache, manifest.evaluation_keys, "evaluation keys")
        inputs = [self._fetch(self.input_cache, manifest.input_for(t), "input") for t in tiles]
        fetched = time.monotonic()
        out_dir = self.work_dir / f"lease-{task.lease_id}"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        run = self.behaviour.tiles_to_run(tiles)
        try:
            answer = self.pinned.run(
                task.kernel,
                manifest.fft_plan,
                LEASE,
                dict(
                    lease_request(
                        manifest.job,
                        # A follow-up job's tile computes a task of the job it retries.
                        [manifest.task_of(t) for t in run],
                        inputs[: len(run)],
                        keys,
                        out_dir,
                        expanded_dir=self.work_dir / "expanded",
                    )
                ),
                timeout_s=max(task.timeout_s, 1.0),
                why=f"for lease {task.lease_id}",
            ).answer
            outputs = [Path(item["path"]).read_bytes() for item in answer["tiles"]]
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        outputs = self.behaviour.outputs(task.kernel, outputs, tiles)
        result = pack_lease_result(
            kernel=task.kernel,
            job_id=task.job_id,
            lease_id=task.lease_id,
            first_tile=task.first_tile,
            leaf_depth=task.leaf_depth,
            outputs=outputs,
        )
        root = self.behaviour.root_to_commit(result, task.leaf_depth)
        path, cid, size = self._publish(result)
        return LeaseOutput(
            lease_id=task.lease_id,
            result=result,
            root=root,
            path=path,
            cid=cid,
            size=size,
            fetch_seconds=fetched - began,
            setup_seconds=float(answer["setup_seconds"]),
            tile_seconds=sum(float(item["seconds"]) for item in answer["tiles"]),
            total_seconds=time.monotonic() - began,
            tiles_computed=len(run),
            fft_plan=manifest.fft_plan,
        )

    def copy(self, task: LeaseTask, source: LeaseResult, tile: int) -> LeaseOutput:
        """TEST-ONLY (``--fault copy``): a one-tile juror lease "computed" by repacking another
        lease's output of ``tile`` as this lease's result (its root is the copied tile root)."""
        began = time.monotonic()
        result = pack_lease_result(
            kernel=task.kernel,
            job_id=task.job_id,
            lease_id=task.lease_id,
            first_tile=tile,
            leaf_depth=task.leaf_depth,
            outputs=[source.output(tile)],
        )
        path, cid, size = self._publish(result)
        return LeaseOutput(
            lease_id=task.lease_id,
            result=result,
            root=result.root,
            path=path,
            cid=cid,
            size=size,
            fetch_seconds=0.0,
            setup_seconds=0.0,
            tile_seconds=0.0,
            total_seconds=time.monotonic() - began,
            tiles_computed=0,
            fft_plan=task.manifest.fft_plan,
        )

    def _publish(self, result: LeaseResult) -> tuple[Path, str, int]:
        """Write the result file and add it to IPFS: (path, CID, bytes). A node that does not
        serve its results (``withhold``) only computes the CID the bytes would have (Kubo's
        ``ipfs add``): nobody can fetch them."""
        path = result_file(self.results_dir, result.lease_id)
        data = result.to_bytes()
        _write_atomic(path, data)
        if not self.behaviour.serves_results:
            return path, str(kubo_cid_of_bytes(data)), len(data)
        return path, self.store.add_file(path).cid, len(data)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
