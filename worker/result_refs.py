"""Where a lease's result can be read, for comparing replicas and answering challenges: our own
result file, or the CID another worker revealed; resolved on the main thread, read on a pool."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import LeaseResultError
from blindframe.worker.state import OwnState

if TYPE_CHECKING:
    from blindframe.coordinator.results import LeaseResult
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import ChainLease, JobRow, NodeState, OwnLease

__all__ = [
    "ENDED_STATES",
    "RETRY",
    "ResultRef",
    "chain_ref",
    "load_result",
    "overlap",
    "own_ref",
    "ref_of",
]

RETRY = 2.0  # seconds before looking again at a comparison, contest or challenge
# Own leases whose result no longer counts: nothing to compare, prove or defend with them.
ENDED_STATES = (OwnState.LOST, OwnState.FAILED, OwnState.ABANDONED)


@dataclass(frozen=True)
class ResultRef:
    """Where a lease's result can be read (resolved on the main thread, read on the io one)."""

    lease_id: int
    first_tile: int
    count: int
    root: bytes
    cid: str | None
    path: Path | None


def own_ref(own: OwnLease) -> ResultRef:
    """Our lease's result: its file (and CID)."""
    if own.root is None:
        raise LeaseResultError(f"our lease {own.lease_id} has no result yet")
    return ResultRef(
        own.lease_id,
        own.first_tile,
        own.count,
        bytes.fromhex(own.root),
        own.result_cid,
        None if own.result_path is None else Path(own.result_path),
    )


def chain_ref(lease: ChainLease) -> ResultRef:
    """Another lease's result: the CID and root it revealed."""
    if lease.root is None or lease.result_cid is None:
        raise LeaseResultError(f"lease {lease.lease_id} has not revealed a result")
    return ResultRef(
        lease.lease_id,
        lease.first_tile,
        lease.count,
        bytes.fromhex(lease.root.removeprefix("0x")),
        lease.result_cid,
        None,
    )


def ref_of(state: NodeState, lease_id: int) -> ResultRef:
    """(main thread) Where a lease's result is: our own file, or its revealed CID."""
    own = state.own(lease_id)
    if own is not None and own.root is not None:
        return own_ref(own)
    lease = state.lease(lease_id)
    if lease is None:
        raise LeaseResultError(f"lease {lease_id} is not indexed yet")
    return chain_ref(lease)


def load_result(core: NodeCore, job: JobRow, ref: ResultRef) -> LeaseResult:
    """(io thread) A lease's result, checked against its root."""
    return core.lease_result(
        job=job,
        lease_id=ref.lease_id,
        first_tile=ref.first_tile,
        count=ref.count,
        root=ref.root,
        cid=ref.cid,
        path=ref.path,
    )


def overlap(a: range, b: range) -> bool:
    """Whether two tile ranges share a tile."""
    return a.start < b.stop and b.start < a.stop
