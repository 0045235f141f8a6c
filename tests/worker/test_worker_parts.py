"""The node's parts on their own: the fault injector's results, the state database's identity
checks, a reset chain's state set aside, the pool of compute processes pinned to FFT plans."""

from __future__ import annotations

import io
import json
import os
from typing import TYPE_CHECKING

import psutil
import pytest

from blindframe.coordinator.market import LeaseStatus
from blindframe.coordinator.results import disagreement_openings, pack_lease_result
from blindframe.fhe_core.agreement import AGREEMENT_FAR_COUNT, AGREEMENT_TOLERANCE
from blindframe.fhe_core.errors import SandboxError
from blindframe.fhe_core.merkle import coefficient_stream, leaf_depth
from blindframe.fhe_core.plans import PlanUnreachableError, isa_level
from blindframe.fhe_core.sandbox import PING
from blindframe.fhe_core.wire import BundleKind, read_bundle
from blindframe.worker import faults
from blindframe.worker.context import node_paths
from blindframe.worker.errors import NodeStateError
from blindframe.worker.info import current_state
from blindframe.worker.logs import NodeLog
from blindframe.worker.node import open_state
from blindframe.worker.pinned import PinnedPool
from blindframe.worker.state import NodeState, OwnState

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import VolumeJob

KERNEL = "volume@1"


def test_lazy_outputs_are_valid_bundles_far_from_the_honest_result(volume_job: VolumeJob) -> None:
    honest = volume_job.outputs[1]
    (lazy,) = faults.lazy_outputs(KERNEL, volume_job.outputs[0], [1])
    assert len(lazy) == len(honest)
    assert read_bundle(lazy, kind=BundleKind.OUTPUT, kernel_id=KERNEL, spec_hash=_spec(),
                       expected=_expected()).tile_index == 1  # fmt: skip
    assert len(coefficient_stream(KERNEL, lazy)) == len(coefficient_stream(KERNEL, honest))
    depth = leaf_depth(KERNEL)
    mine = pack_lease_result(
        kernel=KERNEL, job_id=1, lease_id=1, first_tile=1, leaf_depth=depth, outputs=[honest]
    )
    theirs = pack_lease_result(
        kernel=KERNEL, job_id=1, lease_id=2, first_tile=1, leaf_depth=depth, outputs=[lazy]
    )
    openings = disagreement_openings(
        mine, theirs, 1, tolerance=AGREEMENT_TOLERANCE, far_count=AGREEMENT_FAR_COUNT
    )
    assert openings is not None
    # one opening of the digest leaf (the tree's last leaf) proves two different outputs apart
    assert [o.leaf for o in openings] == [(1 << depth) - 1]
    # wrong-root: the revealed root is not the uploaded result's.
    assert faults.wrong_root(mine, depth) not in (mine.root, theirs.root)


def test_state_belongs_to_one_account_and_one_chain(tmp_path: Path) -> None:
    paths = node_paths(tmp_path, 31337, "0xMarket")
    log = NodeLog(json_mode=True, stream=io.StringIO())
    identity = {"chain_id": "31337", "market": "0xM", "worker": "0xA", "deploy_block_hash": "0x1"}
    state = open_state(paths, identity, log)
    state.add_own(
        lease_id=7, job_id=1, lane=0, first_tile=0, count=4, kind="replica", commit_deadline=9
    )
    state.close()
    with pytest.raises(NodeStateError, match="belongs to worker 0xA, not 0xB"):
        NodeState(paths.state_db).bind({**identity, "worker": "0xB"})
    # Same chain again: the lease is still there.
    state = open_state(paths, identity, log)
    assert state.own(7) is not None
    state.close()
    # The chain was reset (its deploy block has another hash): a fresh state, the old one kept.
    stream = io.StringIO()
    state = open_state(
        paths, {**identity, "deploy_block_hash": "0x2"}, NodeLog(json_mode=True, stream=stream)
    )
    assert state.own(7) is None
    state.close()
    assert json.loads(stream.getvalue())["event"] == "chain_reset"
    assert list(paths.state_db.parent.glob("*.stale-*.sqlite"))
    with pytest.raises(NodeStateError, match="has not run for this deployment yet"):
        NodeState(tmp_path / "missing.sqlite", readonly=True)


def test_pinned_pool_pins_once_reuses_restarts_and_refuses_unreachable_plans(
    fft_plan: str,
) -> None:
    stream = io.StringIO()
    pool = PinnedPool(memory_bytes=8 << 30, log=NodeLog(json_mode=True, stream=stream))
    ping = PING
    try:
        # Checked before claiming: one process pinned to the plan, kept for the lease.
        pool.check_reachable(KERNEL, fft_plan, why="job 1's plan, checked before claiming")
        pool.check_reachable(KERNEL, fft_plan, why="job 2's plan, checked before claiming")
        assert pool.starts == 1
        for n in range(2):
            result = pool.run(KERNEL, fft_plan, ping, {"n": n}, timeout_s=60, why="for lease 1")
            assert result.answer == {"n": n}
            assert result.fft_plan == fft_plan
        assert pool.starts == 1
        # The pinned process dies (a native crash, the OOM killer): the next call starts it again.
        dead = _pinned_processes()
        assert dead
        for child in dead:
            child.kill()
        psutil.wait_procs(dead, timeout=10)
        assert pool.run(KERNEL, fft_plan, ping, {}, timeout_s=60, why="for lease 2").answer == {}
        assert pool.starts == 2
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        pinned = [line for line in lines if line["event"] == "pinned"]
        assert [line["restart"] for line in pinned] == [False, True]
        assert all(line["plan"] == fft_plan and line["attempts"] >= 1 for line in pinned)
        assert pinned[0]["message"].startswith(f"pinned to FFT plan {fft_plan} after ")
        # Idle long enough: closed.
        pool.idle_s = 0.0
        assert pool.reap() == 1
        assert not _pinned_processes()

        # A plan of this code path that no process here picks: refused after 3 candidates (the
        # node's default is 40), and at once the next time.
        pool.plan_attempts = 3
        never = f"{isa_level()}:2048=0000000000000000"
        with pytest.raises(PlanUnreachableError, match="after 3 attempts"):
            pool.check_reachable(KERNEL, never, why="job 3's plan, checked before claiming")
        with pytest.raises(PlanUnreachableError, match="after 3 attempts"):
            pool.run(KERNEL, never, ping, {}, timeout_s=60, why="for lease 3")
        assert pool.starts == 2
        # Another code path: refused without starting anything.
        with pytest.raises(PlanUnreachableError, match="x86-64-v9 code path"):
            pool.check_reachable(
                KERNEL, "x86-64-v9:2048=5e1b685f17f459e5", why="job 4's plan, checked first"
            )
    finally:
        pool.close()
    assert not _pinned_processes()
    with pytest.raises(SandboxError, match="stopping"):
        pool.run(KERNEL, fft_plan, ping, {}, timeout_s=60, why="after closing")


def _pinned_processes() -> list[psutil.Process]:
    out = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "--serve" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.Error:
            continue
    return out


def _spec() -> str:
    from blindframe.fhe_core.kernels import client_spec_hash

    return client_spec_hash(KERNEL)


def _expected() -> list[tuple[str, tuple[int, ...], int]]:
    from blindframe.fhe_core.kernels import expected_outputs

    return expected_outputs(KERNEL)


def test_status_shows_the_chain_state_when_the_node_record_is_behind() -> None:
    # A node stopped after revealing: the chain settled the lease since; status says "settled".
    assert current_state(OwnState.REVEALED, LeaseStatus.SETTLED) == OwnState.SETTLED
    assert current_state(OwnState.COMMITTED, LeaseStatus.RECLAIMED) == OwnState.LOST
    assert current_state(OwnState.COMPUTED, LeaseStatus.COMMITTED) == OwnState.COMMITTED
    # The node's own record stands where it is as far along as the chain, or further.
    assert current_state(OwnState.REVEALED, LeaseStatus.REVEALED) == OwnState.REVEALED
    assert current_state(OwnState.COMPUTING, LeaseStatus.CLAIMED) == OwnState.COMPUTING
    assert current_state(OwnState.SETTLED, LeaseStatus.REVEALED) == OwnState.SETTLED
