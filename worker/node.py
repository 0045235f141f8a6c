"""The render node's run loop: watch the market's events, claim tiles by policy, compute each
lease in a sandboxed process pinned to the job's FFT plan, commit, reveal, police replicas,
serve on contests' juries when drawn, answer availability challenges, finalize, and stop cleanly.

Replica leases are claimed; juror leases are not: a contest's jury is drawn at random by the
market (:mod:`blindframe.worker.referee` calls the draw), and a juror lease drawn for this node
arrives as a ``TilesClaimed`` event (:mod:`blindframe.worker.ledger`) and then goes through the
same compute, commit and reveal steps as any lease of its own.

One main thread owns the state database and sends every transaction; leases compute on a
compute pool (each in a fork of a long-lived child pinned to the job's FFT plan, see
:mod:`blindframe.worker.pinned`) and downloads run on an io pool (see
:mod:`blindframe.worker.core`). A job is claimable only once its manifest checks out and this
machine has pinned a process to its FFT plan: a plan it cannot reach (another SIMD code path,
or a plan its CPU never picks) makes it refuse the job before claiming any tile.

Every step is driven by chain events (``EventIndexer``) and views, and is idempotent: a node
killed at any point and started again resumes from its SQLite state and the chain (re-commits,
re-reveals, recomputes what still fits its deadline, lets go of what does not — saying so).

Ctrl-C (SIGINT) or SIGTERM: stop claiming, finish the leases in flight up to their reveal, exit.
A second one abandons them, naming each lease, when it can be reclaimed and what collateral is
at stake, and kills the sandboxed children.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import statistics
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import psutil

from blindframe.coordinator.errors import (
    ContractRevertError,
    CoordinatorError,
    LeaseResultError,
    ManifestError,
    RpcUnreachableError,
)
from blindframe.coordinator.events import ChainEvent, EventIndexer
from blindframe.coordinator.manifest import MAX_MANIFEST_BYTES, Manifest
from blindframe.coordinator.market import LeaseStatus
from blindframe.coordinator.scheduling import Claim, OpenJob, Policy, RuntimeModel, plan_claims
from blindframe.coordinator.store import (
    ContentNotFoundError,
    IpfsStore,
    KeyCache,
    StoreConnectionError,
    StoreError,
)
from blindframe.errors import BlindframeError
from blindframe.fhe_core.errors import FheCoreError, SandboxError
from blindframe.fhe_core.jobs import PublicJob, task_clear_args
from blindframe.fhe_core.kernels import client_spec_hash, output_words
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.fhe_core.plans import PlanUnreachableError
from blindframe.worker import faults
from blindframe.worker.compute import BadJobDataError, LeaseComputer, LeaseOutput, LeaseTask
from blindframe.worker.core import ChainClock, NodeCore, commitment_of
from blindframe.worker.errors import NotStakedError
from blindframe.worker.ledger import Ledger
from blindframe.worker.logs import NodeLog, eth, span, when
from blindframe.worker.pinned import PinnedPool
from blindframe.worker.referee import Referee
from blindframe.worker.state import ACTIVE_STATES, NodeState, OwnLease

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from blindframe.coordinator.market import Market
    from blindframe.coordinator.results import LeaseResult
    from blindframe.worker.context import NodePaths
    from blindframe.worker.options import NodeOptions
    from blindframe.worker.state import JobRow

__all__ = ["EXIT_ABANDONED", "EXIT_OK", "Node", "open_state"]

EXIT_OK = 0
EXIT_ABANDONED = 130
_CLAIM_MARGIN = 15  # seconds a claim transaction may take before the lease clock starts
_COMMIT_MARGIN = 10  # seconds kept for the commit transaction after computing
_FULL_RECHECK = 10.0  # seconds before looking again at a job with no free tile
_VALIDATE_RETRY = 15.0
_RECLAIM_GRACE = 2


@dataclass(frozen=True)
class _Plan:
    """A claim with the numbers behind it, for the log."""

    claim: Claim
    kernel: str
    per_tile: float | None
    fits: int
    lease_length: int
    note: str | None = None  # why this claim is not an ordinary planned one


def open_state(paths: NodePaths, identity: dict[str, str], log: NodeLog) -> NodeState:
    """The node's state for this deployment; a file left from a reset chain is set aside."""
    state = NodeState(paths.state_db)
    known = state.meta().get("deploy_block_hash")
    if known is not None and known != identity["deploy_block_hash"]:
        state.close()
        stale = paths.state_db.with_name(f"{paths.state_db.stem}.stale-{int(time.time())}.sqlite")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(paths.state_db) + suffix)
            if source.exists():
                source.replace(Path(str(stale) + suffix))
        log.warning(
            "chain_reset",
            f"the chain was reset since this node last ran (its deploy block changed): "
            f"starting a fresh state; the old one is kept as {stale}",
        )
        state = NodeState(paths.state_db)
    state.bind(identity)
    return state


class Node:
    """One render node: ``Node(...).run()`` until stopped; returns the exit status."""

    def __init__(
        self,
        *,
        account: LocalAccount,
        market: Market,
        store: IpfsStore,
        paths: NodePaths,
        options: NodeOptions,
        log: NodeLog,
        endpoint: str,
        confirmations: int = 0,
    ) -> None:
        self.account = account
        self.me = market.sender.address if market.sender is not None else account.address
        self.market = market
        self.store = store
        self.paths = paths
        self.options = options
        self.log = log
        self.endpoint = endpoint
        self.confirmations = confirmations
        self.deployment = market.deployment
        self.chain_id = self.deployment.chain_id
        self._abandon = False
        self._stop_announced = False
        self._waiting_logged: set[int] = set()
        self._manifests: dict[int, Manifest] = {}
        self._full_until: dict[int, float] = {}
        self._reclaim_tried: dict[int, float] = {}
        self._overheads: deque[float] = deque([5.0], maxlen=20)
        self._stake_warned = 0.0
        self._last_busy = time.monotonic()
        self._claimed_last_round = False
        self._ticks = 0
        self._rpc_down_since: float | None = None
        self._errors_logged: dict[str, float] = {}

    # -- start -----------------------------------------------------------------------------------

    def _setup(self) -> None:
        faults.check_fault_allowed(self.options.fault, self.chain_id)
        market, log, options = self.market, self.log, self.options
        view = market.worker(self.me)
        minimum = int(market.params["minStake"])
        if view.stake < minimum or view.capacity == 0:
            raise NotStakedError(
                f"{self.me} has {eth(view.stake)} staked and capacity {view.capacity}; a render "
                f"node needs at least {eth(minimum)} and a capacity",
                hint=f"stake first: blindframe worker stake --amount {minimum / 10**18:g} "
                "--capacity 16",
            )
        deploy_block = market.w3.eth.get_block(self.deployment.deploy_block)
        identity = {
            "chain_id": str(self.chain_id),
            "market": market.address,
            "worker": self.me,
            "deploy_block_hash": "0x" + bytes(deploy_block["hash"]).hex(),
        }
        self.state = open_state(self.paths, identity, log)
        self.indexer = EventIndexer(
            market.w3,
            market.contract,
            self.paths.state_db,
            name="market",
            start_block=self.deployment.deploy_block,
            endpoint=self.endpoint,
            confirmations=self.confirmations,
        )
        self.runtime = RuntimeModel(self.paths.runtime_db, priors=dict(options.tile_seconds))
        identity_ipfs = self.store.node_id()
        if options.fault is not None:
            log.warning(
                "fault_injection",
                f"TEST-ONLY FAULT INJECTION: this node is DISHONEST (--fault {options.fault}): "
                + faults.DESCRIPTIONS[options.fault]
                + f"; allowed on the local chain {faults.LOCAL_CHAIN_ID} only",
                fault=options.fault,
            )
        self.spec_hashes: dict[str, str] = {}
        for kernel in options.kernels:
            began = time.monotonic()
            self.spec_hashes[kernel] = client_spec_hash(kernel)
            output_words(kernel)
            log.info(
                "kernel_ready",
                f"compiled {kernel} from the trusted registry in {time.monotonic() - began:.1f} s "
                f"(client-spec hash {self.spec_hashes[kernel][:12]}…)",
                kernel=kernel,
                spec_hash=self.spec_hashes[kernel],
            )
        self.compute_pool = ThreadPoolExecutor(options.parallel, thread_name_prefix="compute")
        self.io_pool = ThreadPoolExecutor(2, thread_name_prefix="io")
        self.defense_pool = ThreadPoolExecutor(1, thread_name_prefix="defense")
        self.core = NodeCore(
            me=self.me,
            market=market,
            state=self.state,
            store=self.store,
            log=log,
            clock=ChainClock(market.w3, self.endpoint),
            options=options,
            compute_pool=self.compute_pool,
            io_pool=self.io_pool,
            results_dir=self.paths.results,
            defense_pool=self.defense_pool,
        )
        self.pinned = PinnedPool(
            memory_bytes=options.memory_limit_mb << 20,
            log=log,
            max_idle=max(2, 2 * options.parallel),
        )
        self.computer = LeaseComputer(
            store=self.store,
            key_cache=KeyCache(self.store, self.paths.keys),
            input_cache=KeyCache(self.store, self.paths.inputs),
            results_dir=self.paths.results,
            work_dir=self.paths.work,
            pinned=self.pinned,
            fault=options.fault,
        )
        self.referee = Referee(self.core)
        self.ledger = Ledger(
            self.state,
            log,
            self.me,
            on_revealed=self.referee.on_revealed,
            on_reopened=self._reopened,
        )
        free = view.stake - view.locked
        log.info(
            "started",
            f"render node {self.me} on chain {self.chain_id}, market {market.address}: "
            f"stake {eth(view.stake)} ({eth(free)} free), capacity {view.capacity} tiles"
            + (f" (this run takes at most {options.capacity})" if options.capacity else "")
            + f", kernels {', '.join(options.kernels)}; IPFS node {identity_ipfs.peer_id[:16]}… "
            f"at {self.store.api_url}; data in {self.paths.data_dir}",
            worker=self.me,
            chain_id=self.chain_id,
            market=market.address,
            stake=view.stake,
            capacity=view.capacity,
            kernels=list(options.kernels),
            data_dir=str(self.paths.data_dir),
        )

    # -- main loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (signal, --once, --max-idle); the exit status."""
        self._setup()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.core.clock.refresh()
            self.indexer.poll()
            self.indexer.handle(self._on_event, consumer="node")
            self._recover()
            while True:
                if self._abandon:
                    return self._abandon_leases()
                self._tick()
                if self._should_exit():
                    return self._finish()
                self._sleep(self.options.poll)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.compute_pool.shutdown(wait=False, cancel_futures=True)
            self.io_pool.shutdown(wait=False, cancel_futures=True)
            self.defense_pool.shutdown(wait=False, cancel_futures=True)
            self.pinned.close()
            self.indexer.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags here: logging or I/O inside a signal handler can deadlock.
        if self.core.stopping:
            self._abandon = True
        self.core.stopping = True

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._abandon:
            if self.core.stopping and not self._stop_announced:
                return
            time.sleep(min(0.1, max(end - time.monotonic(), 0)))

    def _tick(self) -> None:
        self._ticks += 1
        if self.core.stopping and not self._stop_announced:
            self._announce_stop()
        try:
            self.core.clock.refresh()
            self.indexer.poll()
            self.indexer.handle(self._on_event, consumer="node")
            self.core.reap()
            self._evaluate_jobs()
            self._drive_own_leases()
            self.referee.drive()
            self.referee.defend()
            self._finalize_verified()
            self._reclaim_expired()
            self._claimed_last_round = False
            if not self.core.stopping:
                self._claim_new_work()
            self._start_computes()
            self.pinned.reap()
        except RpcUnreachableError as exc:
            now = time.monotonic()
            if self._rpc_down_since is None:
                self._rpc_down_since = now
                self.log.warning("rpc_down", f"{exc.message}; retrying every few seconds")
            return
        except (CoordinatorError, StoreError) as exc:
            self.log.warning(
                "tick_error", f"{exc}; trying again next round", error=type(exc).__name__
            )
            return
        except Exception as exc:  # noqa: BLE001 - a daemon logs its own bugs and goes on
            self._internal_error(exc)
            return
        if self._rpc_down_since is not None:
            self.log.info(
                "rpc_back",
                "the chain RPC answers again "
                f"(down {time.monotonic() - self._rpc_down_since:.0f} s)",
            )
            self._rpc_down_since = None

    def _internal_error(self, exc: Exception) -> None:
        """Log an unexpected error (once a minute for the same one) with its traceback."""
        key = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if self._errors_logged.get(key, 0.0) > now:
            return
        self._errors_logged[key] = now + 60
        self.log.error(
            "internal_error",
            f"internal error: {key} (the node goes on; please report it)",
            error=type(exc).__name__,
        )
        self.log.debug("traceback", "".join(traceback.format_exception(exc)))

    # -- events ----------------------------------------------------------------------------------

    def _on_event(self, event: ChainEvent) -> None:
        """Fold one market event into the state (see worker/ledger.py)."""
        self.ledger.fold(event)

    def _reopened(self, job_id: int) -> None:
        """A job's tiles reopened (a lease was reclaimed): look at it again."""
        self._full_until.pop(job_id, None)

    def _is_me(self, address: Any) -> bool:
        return str(address).lower() == self.me.lower()

    # -- jobs ------------------------------------------------------------------------------------

    def _evaluate_jobs(self) -> None:
        """Validate new jobs' manifests (on the io pool), never more than two at once."""
        now, wall = self.core.clock.now(), time.time()
        # A job stays of interest while a contest over it may still draw this node as a juror.
        horizon = sum(
            int(self.market.params[k])
            for k in ("revealWindow", "challengeWindow", "acceptanceWindow", "tieBreakWindow")
        )
        held = {lease.job_id for lease in self.state.own_leases()}
        for job in self.state.jobs(("new", "unavailable")):
            if self.core.running("manifest") >= 2:
                return
            if job.status == "unavailable" and job.retry_at > wall:
                continue
            if job.kernel not in self.options.kernels:
                self.state.set_job(
                    job.job_id,
                    "ignored",
                    reason=f"kernel {job.kernel!r} is not one this node runs "
                    f"({', '.join(self.options.kernels)})",
                )
                self.log.info(
                    "job_ignored",
                    f"ignoring job {job.job_id}: kernel {job.kernel!r} is not one this node runs",
                    job=job.job_id,
                )
                continue
            if job.deadline + horizon < now and job.job_id not in held:
                self.state.set_job(job.job_id, "ignored", reason="it ended before this node saw it")
                continue
            self.core.spawn(
                ("manifest", job.job_id),
                self.io_pool,
                functools.partial(self._validate, job),
                functools.partial(self._validated, job=job),
            )

    def _validate(self, job: JobRow) -> Manifest:
        """(io thread) Fetch and check a job's manifest against the registry and the chain."""
        raw = self.store.cat(job.manifest_cid, max_size=MAX_MANIFEST_BYTES)
        manifest = Manifest.parse(raw)
        expected = self.spec_hashes[job.kernel]
        if manifest.client_spec_hash != expected:
            raise ManifestError(
                f"its client-spec hash {manifest.client_spec_hash[:12]}… differs from this node's "
                f"{job.kernel} build ({expected[:12]}…): client and node compiled different "
                "kernels (versions of blindframe or Concrete)"
            )
        manifest.check_against_chain(
            kernel=job.kernel, tile_count=job.tile_count, leaf_depth=job.leaf_depth
        )
        if job.leaf_depth < leaf_depth(job.kernel):
            raise ManifestError(
                f"its leaf depth {job.leaf_depth} is too shallow for {job.kernel} tiles (their "
                f"coefficients and digest leaf need {leaf_depth(job.kernel)})"
            )
        public = PublicJob.from_json(manifest.job)
        for tile in range(job.tile_count):
            task_clear_args(public, tile)  # every tile's public parameters within bounds
        # Never claim tiles this machine cannot compute bit-identically to the other replicas:
        # its code path first (at once), then a process pinned to the plan (kept for the lease).
        manifest.check_plan_reachable()
        self.pinned.check_reachable(
            job.kernel, manifest.fft_plan, why=f"job {job.job_id}'s plan, checked before claiming"
        )
        return manifest

    def _validated(self, future: Future[Manifest], job: JobRow) -> None:
        log = self.log
        try:
            manifest = future.result()
        except (StoreConnectionError, ContentNotFoundError) as exc:
            self._validate_later(job, exc.message)
            report = log.warning if job.attempts == 0 else log.debug
            report(
                "manifest_unavailable",
                f"cannot fetch job {job.job_id}'s manifest {job.manifest_cid} yet: {exc.message}; "
                f"trying again every {_VALIDATE_RETRY:.0f} s until its deadline",
                job=job.job_id,
            )
            return
        except PlanUnreachableError as exc:
            self._refuse(
                job.job_id, f"this machine cannot compute with its FFT plan: {exc.message}"
            )
            return
        except SandboxError as exc:
            # Not the job's fault (this machine could not start a compute process): retry.
            self._validate_later(job, exc.message)
            log.warning(
                "pin_failed",
                f"cannot start a compute process for job {job.job_id} yet: {exc.message}; "
                f"trying again in {_VALIDATE_RETRY:.0f} s",
                job=job.job_id,
            )
            return
        except (BlindframeError, ValueError) as exc:
            reason = exc.message if isinstance(exc, BlindframeError) else str(exc)
            self._refuse(job.job_id, f"its manifest is bad: {reason}")
            return
        self._manifests[job.job_id] = manifest
        self.state.set_job(job.job_id, "valid", manifest=manifest.to_json())
        log.info(
            "job_valid",
            f"job {job.job_id} checks out: {job.kernel}, {job.tile_count} tiles x "
            f"{job.replication} replica(s), {eth(job.reward_wei)} per tile-replica, "
            f"{job.lease_length} s leases, deadline {when(job.deadline, self.core.clock.now())}; "
            f"replicas pin FFT plan {manifest.fft_plan}",
            job=job.job_id,
            kernel=job.kernel,
            tiles=job.tile_count,
            replication=job.replication,
            fft_plan=manifest.fft_plan,
        )

    def _validate_later(self, job: JobRow, reason: str) -> None:
        """Look at the job again in _VALIDATE_RETRY seconds (what failed was not its fault)."""
        self.state.set_job(
            job.job_id,
            "unavailable",
            reason=reason,
            retry_at=time.time() + _VALIDATE_RETRY,
            attempt=True,
        )

    def _refuse(self, job_id: int, reason: str) -> None:
        self.state.set_job(job_id, "refused", reason=reason)
        self._manifests.pop(job_id, None)
        self.log.warning(
            "job_refused",
            f"refused job {job_id}: {reason}; this node will not work on it",
            job=job_id,
            reason=reason,
        )

    def _manifest(self, job: JobRow) -> Manifest | None:
        if job.status != "valid" or job.manifest is None:
            return None
        if job.job_id not in self._manifests:
            self._manifests[job.job_id] = Manifest.parse(json.dumps(job.manifest_json).encode())
        return self._manifests[job.job_id]

    # -- claiming --------------------------------------------------------------------------------

    def _slots(self) -> int:
        busy = len(self.state.own_leases(("claimed", "computing")))
        return self.options.parallel - busy

    def _free_tiles(self) -> int:
        view = self.market.worker(self.me)
        params = self.market.params
        if view.stake < int(params["minStake"]):
            if time.monotonic() - self._stake_warned > 300:
                self._stake_warned = time.monotonic()
                self.log.warning(
                    "stake_low",
                    f"the stake ({eth(view.stake)}) is below the minimum "
                    f"{eth(int(params['minStake']))}: this node cannot claim; "
                    "`blindframe worker stake --amount ETH` adds some",
                )
            return 0
        by_collateral = (view.stake - view.locked) // max(int(params["collateralPerTile"]), 1)
        free = min(view.free_capacity, by_collateral)
        if self.options.capacity is not None:
            active = sum(lease.count for lease in self.state.own_leases(ACTIVE_STATES))
            free = min(free, self.options.capacity - active)
        return max(free, 0)

    def _can_take(self, count: int) -> bool:
        return self._slots() > 0 and self._free_tiles() >= count

    def _free_ranges(self, job: JobRow, lane: int) -> list[tuple[int, int]]:
        """Runs of tiles this node may claim in ``lane``: free there, not held by us, not
        revealed in any lane yet (the market takes no new replica of a revealed tile: it could
        be a copy), and not held in another lane by a lease whose commit window closes before
        ours could be done (that lease may reveal then, and ours could no longer commit)."""
        revealed = self._revealed_tiles(job) | self._closing_tiles(job, lane)
        ranges: list[tuple[int, int]] = []
        tile = 0
        while tile < job.tile_count:
            first, count = self.market.free_range(job.job_id, lane, self.me, tile, 256)
            if count == 0:
                break
            start = first
            for t in range(first, first + count + 1):
                if t == first + count or t in revealed:
                    if t > start:
                        ranges.append((start, t - start))
                    start = t + 1
            tile = first + count
        return ranges

    def _closing_tiles(self, job: JobRow, lane: int) -> set[int]:
        """Tiles another lane's live lease holds with a commit deadline sooner than the share of
        a lease this node plans to fill (``safety``): a replica claimed now could be overtaken."""
        soon = self.core.clock.now() + int(job.lease_length * self.options.safety)
        return {
            tile
            for lease in self.state.leases(job_id=job.job_id, statuses=("claimed", "committed"))
            if lease.lane < job.replication and lease.lane != lane and lease.commit_deadline < soon
            for tile in lease.tiles
        }

    def _revealed_tiles(self, job: JobRow) -> set[int]:
        """Tiles of ``job`` some replica lease revealed (as this node's index saw it)."""
        return {
            tile
            for lease in self.state.leases(job_id=job.job_id, statuses=("revealed", "settled"))
            if lease.lane < job.replication
            for tile in lease.tiles
        }

    def _claim_new_work(self) -> None:
        slots = self._slots()
        if slots <= 0:
            return
        wall = time.monotonic()
        now = self.core.clock.now()
        jobs = [
            job
            for job in self.state.jobs(("valid",))
            if job.kernel in self.options.kernels
            and now + job.lease_length + _CLAIM_MARGIN <= job.deadline
            and self._full_until.get(job.job_id, 0.0) <= wall
        ]
        if not jobs:
            return
        free = self._free_tiles()
        if free <= 0:
            return
        open_jobs = []
        for job in jobs:
            lanes = {lane: self._free_ranges(job, lane) for lane in range(job.replication)}
            if not any(lanes.values()):
                self._full_until[job.job_id] = wall + _FULL_RECHECK
                continue
            open_jobs.append(
                (
                    job,
                    OpenJob(
                        job_id=job.job_id,
                        kernel_id=job.kernel,
                        priority=job.priority,
                        reward_per_tile=job.reward_wei,
                        deadline=job.deadline,
                        lease_length=job.lease_length,
                        free={lane: ranges for lane, ranges in lanes.items() if ranges},
                    ),
                )
            )
        plans = self._plan(open_jobs, free, now)
        for plan in plans[:slots]:
            self._claim(plan)

    def _plan(self, open_jobs: list[tuple[JobRow, OpenJob]], free: int, now: int) -> list[_Plan]:
        estimates = self.runtime.estimates(self.options.kernels)
        overhead = float(statistics.median(self._overheads))
        policy = Policy(
            kernels=frozenset(self.options.kernels),
            min_wei_per_second=self.options.min_price,
            safety=self.options.safety,
            overhead_seconds=overhead,
        )
        plans: list[_Plan] = []
        # A kernel this node never ran (and has no configured prior for): one tile, to measure.
        probes: dict[str, tuple[JobRow, OpenJob]] = {}
        for job, open_job in open_jobs:
            if job.kernel not in estimates:
                best = probes.get(job.kernel)
                if best is None or (open_job.priority, open_job.reward_per_tile) > (
                    best[1].priority,
                    best[1].reward_per_tile,
                ):
                    probes[job.kernel] = (job, open_job)
        for kernel, (job, open_job) in probes.items():
            lane = min(open_job.free)
            first = open_job.free[lane][0][0]
            note = f"a first tile, to measure {kernel} on this machine"
            plans.append(
                _Plan(Claim(job.job_id, lane, first, 1), kernel, None, 1, job.lease_length, note)
            )
            free -= 1
        if free <= 0:
            return plans
        measured = [oj for job, oj in open_jobs if job.kernel in estimates]
        by_id = {job.job_id: job for job, _ in open_jobs}
        for claim in plan_claims(
            measured, free_capacity=free, seconds_per_tile=estimates, policy=policy, now=now
        ):
            job = by_id[claim.job_id]
            per_tile = max(estimates[job.kernel], 1e-3)
            window = min(job.lease_length, job.deadline - now) * policy.safety - overhead
            plans.append(
                _Plan(claim, job.kernel, per_tile, int(window // per_tile), job.lease_length)
            )
        return plans

    def _claim(self, plan: _Plan) -> int | None:
        claim = plan.claim
        try:
            lease_id, event = self.market.claim(claim.job_id, claim.lane, claim.first, claim.count)
        except ContractRevertError as exc:
            self._full_until[claim.job_id] = time.monotonic() + 2.0
            if exc.name == "MarketTileRevealed":
                # Another lane revealed a tile of the range: no replica of it may start now.
                self._full_until[claim.job_id] = time.monotonic() + _FULL_RECHECK
            if exc.name in (
                "MarketTilesTaken",
                "MarketTileHeld",
                "MarketTileRevealed",
                "MarketClaimClosed",
                "MarketJobCancelled",
            ):
                self.log.debug("claim_missed", f"claim not made: {exc.message}", job=claim.job_id)
            else:
                self.log.warning("claim_failed", f"claim not made: {exc}", job=claim.job_id)
            return None
        self._claimed_last_round = True
        self.state.add_lease({**event, "worker": self.me})
        self.state.add_own(
            lease_id=lease_id,
            job_id=claim.job_id,
            lane=claim.lane,
            first_tile=claim.first,
            count=claim.count,
            kind="replica",  # only replica lanes are claimed: jurors are drawn
            commit_deadline=int(event["commitDeadline"]),
        )
        what = f"claimed {span(claim.first, claim.count)} of job {claim.job_id} (lane {claim.lane})"
        if plan.note is not None or plan.per_tile is None:
            detail = plan.note or "one tile"
        else:
            detail = (
                f"{plan.fits} tiles fit the {plan.lease_length} s lease at "
                f"{plan.per_tile:.1f} s/tile"
            )
        self.log.info(
            "claimed",
            f"{what} as lease {lease_id}: {detail}; commit by "
            f"{when(int(event['commitDeadline']), self.core.clock.now())}",
            lease=lease_id,
            job=claim.job_id,
            lane=claim.lane,
            first_tile=claim.first,
            count=claim.count,
            seconds_per_tile=plan.per_tile,
            fits=plan.fits,
        )
        return lease_id

    # -- computing -------------------------------------------------------------------------------

    def _start_computes(self) -> None:
        wall = time.time()
        for lease in self.state.own_leases(("claimed",)):
            if self.core.running("compute") >= self.options.parallel:
                return
            if lease.next_check > wall:
                continue
            job = self.state.job(lease.job_id)
            if job is None:
                continue
            if job.status in ("refused", "ignored"):
                what = "refused" if job.status == "refused" else "ignored by this node"
                self._fail(lease, f"its job was {what} ({job.reason})")
                continue
            manifest = self._manifest(job)
            if manifest is None:
                continue  # validation pending
            left = lease.commit_deadline - self.core.clock.now() - _COMMIT_MARGIN
            if left <= 0:
                self._fail(lease, "its commit deadline came before it could be computed")
                continue
            estimate = self._estimate(job.kernel, lease.count)
            self.state.update_own(lease.lease_id, state="computing")
            task = LeaseTask(
                lease_id=lease.lease_id,
                job_id=job.job_id,
                kernel=job.kernel,
                first_tile=lease.first_tile,
                count=lease.count,
                leaf_depth=job.leaf_depth,
                manifest=manifest,
                timeout_s=float(left),
            )
            if lease.kind == "juror" and self.options.fault == "copy":
                self._start_copy(lease, job, task)
                continue
            self.log.info(
                "computing",
                f"computing lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
                f"{job.job_id}) in the sandbox"
                + (f": about {estimate:.0f} s" if estimate is not None else "")
                + f", commit deadline {when(lease.commit_deadline, self.core.clock.now())}",
                lease=lease.lease_id,
                job=job.job_id,
                estimate=estimate,
            )
            self.core.spawn(
                ("compute", lease.lease_id),
                self.compute_pool,
                functools.partial(self.computer.compute, task),
                functools.partial(
                    self._computed,
                    lease=lease,
                    job=job,
                    deadline=time.monotonic() + task.timeout_s,
                ),
            )

    def _start_copy(self, lease: OwnLease, job: JobRow, task: LeaseTask) -> None:
        """TEST-ONLY (``--fault copy``): a juror lease takes a contested side's revealed tile
        instead of computing it."""
        contest = self.state.contest(lease.contest_id) if lease.contest_id is not None else None
        source = None
        if contest is not None:
            source = self.state.lease(faults.copied_side(contest.lease_a, contest.lease_b))
        if source is None or source.root is None or source.result_cid is None:
            self.state.update_own(lease.lease_id, state="claimed", next_check=time.time() + 2)
            return
        ref = source

        def copy() -> LeaseOutput:
            result: LeaseResult = self.core.lease_result(
                job=job,
                lease_id=ref.lease_id,
                first_tile=ref.first_tile,
                count=ref.count,
                root=bytes.fromhex(str(ref.root).removeprefix("0x")),
                cid=ref.result_cid,
            )
            return self.computer.copy(task, result, lease.first_tile)

        self.log.warning(
            "copying",
            f"FAULT copy: juror lease {lease.lease_id} copies lease {source.lease_id}'s tile "
            f"{lease.first_tile} instead of computing it",
            lease=lease.lease_id,
            source=source.lease_id,
        )
        self.core.spawn(
            ("compute", lease.lease_id),
            self.io_pool,
            copy,
            functools.partial(
                self._computed,
                lease=lease,
                job=job,
                deadline=time.monotonic() + task.timeout_s,
            ),
        )

    def _estimate(self, kernel: str, count: int) -> float | None:
        per_tile = self.runtime.seconds_per_tile(kernel)
        if per_tile is None:
            return None
        return count * per_tile + float(statistics.median(self._overheads))

    def _computed(
        self, future: Future[LeaseOutput], lease: OwnLease, job: JobRow, deadline: float
    ) -> None:
        log = self.log
        if self._abandon or self.state.own(lease.lease_id) is None:
            return
        current = self.state.own(lease.lease_id)
        if current is not None and current.state != "computing":
            return  # abandoned or lost meanwhile
        try:
            out = future.result()
        except StoreError as exc:
            if isinstance(exc, StoreConnectionError | ContentNotFoundError):
                self.state.update_own(
                    lease.lease_id, state="claimed", next_check=time.time() + 10, error=exc.message
                )
                log.warning(
                    "fetch_retry",
                    f"cannot fetch lease {lease.lease_id}'s data yet: {exc.message}; "
                    "trying again in 10 s",
                    lease=lease.lease_id,
                )
                return
            self._fail(lease, exc.message)
            self._refuse(job.job_id, f"its data is bad: {exc.message}")
            return
        except SandboxError as exc:
            self._fail(lease, exc.message)
            if time.monotonic() >= deadline - 1:
                # Killed at the time limit: this node was too slow, the job is not to blame.
                self.log.warning(
                    "too_slow",
                    f"lease {lease.lease_id} ran out of its time: this node computes {job.kernel} "
                    "slower than it planned (see --tile-seconds and --safety)",
                    lease=lease.lease_id,
                )
                return
            self._refuse(job.job_id, f"its lease {lease.lease_id} failed: {exc.message}")
            return
        except (BadJobDataError, LeaseResultError, FheCoreError) as exc:
            self._fail(lease, exc.message)
            self._refuse(job.job_id, f"its lease {lease.lease_id} failed: {exc.message}")
            return
        except Exception as exc:  # noqa: BLE001 - the node must outlive any single lease
            self.log.debug("compute_traceback", "".join(traceback.format_exception(exc)))
            self._fail(lease, f"{type(exc).__name__}: {exc}")
            return
        if out.tiles_computed:
            self.runtime.record(job.kernel, out.tiles_computed, out.tile_seconds)
            self._overheads.append(max(out.total_seconds - out.tile_seconds, 0.0))
        self.core.remember_result(lease.lease_id, out.result)
        salt = secrets.token_bytes(32)
        # The salt and root are on disk before the commit transaction exists: a node restarted
        # after committing can still reveal.
        self.state.update_own(
            lease.lease_id,
            state="computed",
            salt=salt.hex(),
            root=out.root.hex(),
            result_cid=out.cid,
            result_path=str(out.path),
            compute_seconds=out.total_seconds,
            error=None,
        )
        per_tile = out.tile_seconds / max(out.tiles_computed, 1)
        log.info(
            "computed",
            f"computed lease {lease.lease_id} ({span(lease.first_tile, lease.count)}) in "
            f"{out.total_seconds:.1f} s ({per_tile:.1f} s/tile in the sandbox, "
            f"{out.setup_seconds:.1f} s to load the kernel and keys); result "
            f"{out.size / 1e6:.1f} MB added to IPFS as {out.cid}",
            lease=lease.lease_id,
            seconds=round(out.total_seconds, 3),
            seconds_per_tile=round(per_tile, 3),
            cid=out.cid,
            bytes=out.size,
        )
        fault = self.options.fault
        if fault is not None and (fault != "copy" or lease.kind == "juror"):
            log.warning(
                "fault_injected",
                f"FAULT {fault}: lease {lease.lease_id} "
                + {
                    "lazy": "carries random coefficients, not the computed result",
                    "wrong-root": "will reveal a root its uploaded result does not give",
                    "withhold": "is never served: its bytes stay on this machine",
                    "copy": "is a copy of a contested side's tile, not computed",
                }[fault],
                lease=lease.lease_id,
            )

    def _fail(self, lease: OwnLease, reason: str) -> None:
        self.state.update_own(lease.lease_id, state="failed", error=reason)
        self.log.error(
            "lease_failed",
            f"lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
            f"{lease.job_id}) failed: {reason}. {self._at_stake(lease, committed=False)}; this "
            "node reclaims it itself then (the bounty share comes back)",
            lease=lease.lease_id,
            reason=reason,
        )

    def _at_stake(self, lease: OwnLease, *, committed: bool) -> str:
        params = self.market.params
        collateral = int(params["collateralPerTile"]) * lease.count
        slashed = collateral * int(params["slashBps"]) // 10_000
        deadline = lease.commit_deadline + (int(params["revealWindow"]) if committed else 0)
        return (
            f"anyone may reclaim it after {when(deadline, self.core.clock.now())}, slashing "
            f"{eth(slashed)} of its {eth(collateral)} collateral"
        )

    # -- our leases: commit, reveal, recover -----------------------------------------------------

    def _drive_own_leases(self) -> None:
        wall = time.time()
        for lease in self.state.own_leases(("computed", "committed", "failed", "abandoned")):
            if lease.kind == "juror" and lease.state == "committed" and lease.next_check > wall:
                continue  # a juror waiting for the other jurors' commits
            try:
                if lease.state == "computed":
                    self._commit(lease)
                elif lease.state == "committed":
                    self._reveal(lease)
                else:
                    self._reclaim_own(lease)
            except ContractRevertError as exc:
                self.log.debug(
                    "lease_wait", f"lease {lease.lease_id}: {exc.message}", lease=lease.lease_id
                )
                self.state.update_own(lease.lease_id, next_check=time.time() + 2)

    def _commit(self, lease: OwnLease) -> None:
        assert lease.root is not None
        assert lease.salt is not None
        root, salt = bytes.fromhex(lease.root), bytes.fromhex(lease.salt)
        commitment = commitment_of(root, self.me, salt)
        if self.core.clock.now() > lease.commit_deadline:
            self._lose(lease, "the commit deadline passed before the commit", committed=False)
            return
        try:
            self.market.commit(lease.lease_id, commitment)
        except ContractRevertError as exc:
            view = self.market.lease(lease.lease_id)
            if view.state in (LeaseStatus.COMMITTED, LeaseStatus.REVEALED) and (
                view.state == LeaseStatus.REVEALED or view.digest == commitment
            ):
                pass  # this node committed before a restart
            elif exc.name == "MarketLeaseExpired" or view.state == LeaseStatus.RECLAIMED:
                self._lose(lease, exc.message, committed=False)
                return
            elif exc.name == "MarketTileRevealed":
                self._overtaken(lease, exc.message)
                return
            else:
                raise
        self.state.update_own(lease.lease_id, state="committed")
        self.log.info(
            "committed",
            f"committed lease {lease.lease_id} (root 0x{lease.root[:12]}…)",
            lease=lease.lease_id,
            root="0x" + lease.root,
        )
        self._reveal(self.state.own(lease.lease_id) or lease)

    def _overtaken(self, lease: OwnLease, reason: str) -> None:
        """Another lane revealed a tile of our lease before we committed: the market takes no
        commit for it now (a replica then could be a copy). The lease misses its commit and is
        reclaimed after its deadline like any other (an unslashed exit would let one operator
        hold a second lane for free); the claim policy avoids this by leaving tiles whose
        partner leases close their commit windows too soon."""
        self.state.update_own(lease.lease_id, state="lost", error=reason)
        self.log.warning(
            "lease_overtaken",
            f"lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
            f"{lease.job_id}) cannot commit: {reason}; it will be reclaimed (slashed) after "
            f"{when(lease.commit_deadline, self.core.clock.now())}",
            lease=lease.lease_id,
        )

    def _reveal(self, lease: OwnLease) -> None:
        assert lease.root is not None
        assert lease.salt is not None
        assert lease.result_cid is not None
        now = self.core.clock.now()
        reveal_deadline = self.state.reveal_deadline(lease, int(self.market.params["revealWindow"]))
        if now > reveal_deadline:
            self._lose(lease, "the reveal deadline passed", committed=True)
            return
        if lease.kind == "replica" and now <= lease.commit_deadline:
            job = self.market.job(lease.job_id)
            total = job.tileCount * job.replication
            if job.committedSlots < total:
                if lease.lease_id not in self._waiting_logged:
                    self._waiting_logged.add(lease.lease_id)
                    self.log.info(
                        "reveal_wait",
                        f"lease {lease.lease_id} waits to reveal until every replica slot of job "
                        f"{lease.job_id} has committed ({job.committedSlots} of {total}) or its "
                        f"commit window closes at {when(lease.commit_deadline, now)}",
                        lease=lease.lease_id,
                    )
                return
        try:
            self.market.reveal(
                lease.lease_id,
                bytes.fromhex(lease.root),
                lease.result_cid,
                bytes.fromhex(lease.salt),
            )
        except ContractRevertError as exc:
            view = self.market.lease(lease.lease_id)
            if view.state == LeaseStatus.REVEALED:
                pass  # revealed before a restart
            elif view.state == LeaseStatus.RECLAIMED or exc.name == "MarketLeaseExpired":
                self._lose(lease, exc.message, committed=True)
                return
            elif exc.name == "MarketRevealTooEarly" and lease.kind == "juror":
                # A juror reveals once every seated juror committed (or the draw window closed).
                if lease.lease_id not in self._waiting_logged:
                    self._waiting_logged.add(lease.lease_id)
                    self.log.info(
                        "reveal_wait",
                        f"juror lease {lease.lease_id} waits to reveal until every juror of "
                        f"contest {lease.contest_id} has committed: {exc.message}",
                        lease=lease.lease_id,
                    )
                self.state.update_own(lease.lease_id, next_check=time.time() + 2)
                return
            else:
                raise
        self.state.update_own(lease.lease_id, state="revealed", next_check=0)
        verify = int(self.market.params["challengeWindow"])
        self.log.info(
            "revealed",
            f"revealed lease {lease.lease_id} (job {lease.job_id}, "
            f"{span(lease.first_tile, lease.count)}): result {lease.result_cid}; replicas may "
            f"challenge it for {verify} s after the last of them reveals",
            lease=lease.lease_id,
            cid=lease.result_cid,
        )
        self.referee.on_revealed(lease.lease_id)

    def _lose(self, lease: OwnLease, reason: str, *, committed: bool) -> None:
        self.state.update_own(lease.lease_id, state="failed", error=reason)
        self.log.error(
            "lease_late",
            f"lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
            f"{lease.job_id}) is lost: {reason}. {self._at_stake(lease, committed=committed)}",
            lease=lease.lease_id,
        )

    def _reclaim_own(self, lease: OwnLease) -> None:
        """A failed or abandoned lease of ours: reclaim it ourselves once it expired."""
        wall = time.time()
        if lease.next_check > wall:
            return
        view = self.market.lease(lease.lease_id)
        now = self.core.clock.now()
        if view.state in (
            LeaseStatus.RECLAIMED,
            LeaseStatus.SETTLED,
            LeaseStatus.FORFEITED,
            LeaseStatus.NONE,
        ):
            self.state.update_own(lease.lease_id, state="lost")
            return
        if view.state == LeaseStatus.REVEALED:
            self.state.update_own(lease.lease_id, state="revealed")
            return
        deadline = view.commitDeadline + (
            int(self.market.params["revealWindow"]) if view.state == LeaseStatus.COMMITTED else 0
        )
        if now <= deadline + _RECLAIM_GRACE:
            self.state.update_own(lease.lease_id, next_check=wall + min(max(deadline - now, 1), 30))
            return
        self.market.reclaim(lease.lease_id)

    def _recover(self) -> None:
        """After a restart: line our unfinished leases up with the chain."""
        states = ("claimed", "computing", "computed", "committed", "revealed")
        for lease in self.state.own_leases(states):
            view = self.market.lease(lease.lease_id)
            now = self.core.clock.now()
            if view.state in (LeaseStatus.RECLAIMED, LeaseStatus.FORFEITED):
                self.state.update_own(lease.lease_id, state="lost")
                how = "reclaimed" if view.state == LeaseStatus.RECLAIMED else "forfeited"
                self.log.warning(
                    "lease_lost",
                    f"lease {lease.lease_id} was {how} while this node was away",
                    lease=lease.lease_id,
                )
            elif view.state == LeaseStatus.SETTLED:
                self.state.update_own(lease.lease_id, state="settled")
            elif view.state == LeaseStatus.REVEALED:
                self.state.update_own(lease.lease_id, state="revealed")
                self._republish(lease)
            elif view.state == LeaseStatus.COMMITTED:
                if not self._saved_result(lease, view.digest):
                    self._lose(
                        lease, "it committed to a result this node no longer has", committed=True
                    )
                    continue
                self.state.update_own(lease.lease_id, state="committed")
                self.log.info(
                    "resumed",
                    f"resuming lease {lease.lease_id}: committed before the restart, revealing it",
                    lease=lease.lease_id,
                )
            elif lease.state in ("computed", "committed") and self._saved_result(lease, None):
                self.state.update_own(lease.lease_id, state="computed")
                self.log.info(
                    "resumed",
                    f"resuming lease {lease.lease_id}: computed before the restart, committing it",
                    lease=lease.lease_id,
                )
            else:
                self._resume_compute(lease, now)

    def _saved_result(self, lease: OwnLease, digest: bytes | None) -> bool:
        """Whether our saved root, salt and result file still stand (and match ``digest``)."""
        if lease.root is None or lease.salt is None or not self._republish(lease):
            return False
        if digest is None:
            return True
        commitment = commitment_of(bytes.fromhex(lease.root), self.me, bytes.fromhex(lease.salt))
        return bytes(digest) == commitment

    def _resume_compute(self, lease: OwnLease, now: int) -> None:
        job = self.state.job(lease.job_id)
        estimate = self._estimate(job.kernel, lease.count) if job is not None else None
        left = lease.commit_deadline - now - _COMMIT_MARGIN
        if left > 0 and (estimate is None or estimate < left):
            self.state.update_own(lease.lease_id, state="claimed", next_check=0)
            self.log.info(
                "resumed",
                f"resuming lease {lease.lease_id}: recomputing "
                f"{span(lease.first_tile, lease.count)}"
                + (f" (about {estimate:.0f} s)" if estimate is not None else "")
                + f", commit deadline {when(lease.commit_deadline, now)}",
                lease=lease.lease_id,
            )
            return
        self.state.update_own(lease.lease_id, state="failed", error="no time left to recompute")
        self.log.warning(
            "let_go",
            f"lease {lease.lease_id} cannot be recomputed before its commit deadline "
            f"({when(lease.commit_deadline, now)}): letting it go; "
            f"{self._at_stake(lease, committed=False)}",
            lease=lease.lease_id,
        )

    def _republish(self, lease: OwnLease) -> bool:
        """Add our result file to IPFS again (pinned); False if the file is gone."""
        if lease.result_path is None or not Path(lease.result_path).is_file():
            return False
        if self.options.fault == "withhold":
            return True  # TEST-ONLY: its bytes are never served
        added = self.store.add_file(Path(lease.result_path))
        return lease.result_cid is None or added.cid == lease.result_cid

    # -- payment ---------------------------------------------------------------------------------

    def _finalize_verified(self) -> None:
        wall = time.time()
        acceptance = int(self.market.params["acceptanceWindow"])
        ready: dict[int, list[int]] = {}
        for lease in self.state.own_leases(("revealed",)):
            if lease.kind != "replica" or lease.next_check > wall:
                continue
            view = self.market.lease(lease.lease_id)
            if view.state == LeaseStatus.SETTLED:
                continue  # the payment event arrives with the next poll
            if view.openContests:
                self.state.update_own(lease.lease_id, next_check=wall + 5)
                continue
            verified = self.market.verified_at(lease.lease_id)
            now = self.core.clock.now()
            if verified == 0 or now <= verified + acceptance:
                wait = 5 if verified == 0 else verified + acceptance - now + 1
                self.state.update_own(lease.lease_id, next_check=wall + min(max(wait, 1), 30))
                continue
            ready.setdefault(lease.job_id, []).append(lease.lease_id)
        for job_id, leases in ready.items():
            for start in range(0, len(leases), 128):
                batch = leases[start : start + 128]
                try:
                    self.market.finalize(job_id, batch)
                except ContractRevertError as exc:
                    self.log.debug("finalize_wait", f"finalize not yet: {exc.message}")
                    for lease_id in batch:
                        self.state.update_own(lease_id, next_check=wall + 5)
                    continue
                self.log.info(
                    "finalized",
                    f"finalized lease(s) {', '.join(map(str, batch))} of job {job_id}: the client "
                    f"did not settle within the {acceptance} s acceptance window",
                    job=job_id,
                    leases=batch,
                )

    def _reclaim_expired(self) -> None:
        """Reclaim other workers' expired leases for the bounty (policy ``reclaim``)."""
        if not self.options.reclaim or self.options.fault is not None:
            return
        now, wall = self.core.clock.now(), time.monotonic()
        for lease in self.state.leases(statuses=("claimed", "committed")):
            if self._is_me(lease.worker) or self._reclaim_tried.get(lease.lease_id, 0) > wall:
                continue
            deadline = lease.commit_deadline if lease.status == "claimed" else lease.reveal_deadline
            if now <= deadline + _RECLAIM_GRACE:
                continue
            self._reclaim_tried[lease.lease_id] = wall + 30
            try:
                self.market.reclaim(lease.lease_id)
            except ContractRevertError as exc:
                self.log.debug("reclaim_skipped", f"lease {lease.lease_id}: {exc.message}")
                continue
            self.log.info(
                "reclaimed",
                f"reclaimed lease {lease.lease_id} of {lease.worker} (job {lease.job_id}, "
                f"{span(lease.first_tile, lease.count)}): it missed its "
                f"{'commit' if lease.status == 'claimed' else 'reveal'} deadline; its tiles "
                "reopened and a bounty is credited to this node",
                lease=lease.lease_id,
                job=lease.job_id,
            )

    # -- stopping --------------------------------------------------------------------------------

    def _in_flight(self) -> list[OwnLease]:
        return self.state.own_leases(ACTIVE_STATES)

    def _announce_stop(self) -> None:
        self._stop_announced = True
        leases = self._in_flight()
        if not leases:
            self.log.info("stopping", "stopping: no lease in flight")
            return
        names = ", ".join(f"{lease.lease_id} ({lease.state})" for lease in leases)
        self.log.info(
            "stopping",
            f"stopping: no new claims; finishing lease(s) {names} up to their reveal first. "
            "Press Ctrl-C again to abandon them (their collateral would be slashed)",
            leases=[lease.lease_id for lease in leases],
        )

    def _busy(self) -> bool:
        """Work in flight: a lease before its payment (or, failed, before its reclaim), a job
        being checked, a comparison or contest of ours. --once waits only up to the reveals."""
        if self.core.tasks or self._in_flight():
            return True
        if not self.options.once and self.state.own_leases(("revealed", "failed", "abandoned")):
            return True
        if self.state.jobs(("new",)):
            return True
        return self.referee.busy()

    def _should_exit(self) -> bool:
        if self.core.stopping:
            return not self._in_flight() and self.core.running("compute") == 0
        if self._busy() or self._claimed_last_round:
            self._last_busy = time.monotonic()
            return False
        if self.options.once:
            return self._ticks >= 2
        if self.options.max_idle is not None:
            return time.monotonic() - self._last_busy >= self.options.max_idle
        return False

    def _finish(self) -> int:
        revealed = self.state.own_leases(("revealed",))
        if revealed:
            ids = ", ".join(str(lease.lease_id) for lease in revealed)
            self.log.info(
                "stopped",
                f"stopped: lease(s) {ids} are revealed and wait for verification and payment; "
                "the client settles them, or run the node again to compare replicas and "
                "finalize them",
                revealed=[lease.lease_id for lease in revealed],
            )
        else:
            self.log.info("stopped", "stopped: nothing in flight")
        return EXIT_OK

    def _abandon_leases(self) -> int:
        leases = self._in_flight()
        killed = self.core.running("compute")
        self.pinned.close()  # the idle pinned processes, then every busy one and its call:
        _kill_sandbox_children()
        for lease in leases:
            committed = lease.state == "committed"
            self.state.update_own(
                lease.lease_id, state="abandoned", error="abandoned by the operator"
            )
            self.log.warning(
                "abandoned",
                f"abandoning lease {lease.lease_id} (job {lease.job_id}, "
                f"{span(lease.first_tile, lease.count)}, {lease.state}): "
                f"{self._at_stake(lease, committed=committed)}",
                lease=lease.lease_id,
                state=lease.state,
            )
        if killed:
            self.log.warning(
                "sandbox_killed", f"stopped {killed} sandboxed computation(s) in progress"
            )
        if not leases:
            self.log.info("stopped", "stopped: nothing was in flight")
        return EXIT_ABANDONED


def _kill_sandbox_children() -> int:
    """Kill the sandbox children this process started (found by their module name)."""
    killed = 0
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(os.getpid()).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "blindframe.fhe_core._child" in " ".join(child.cmdline()):
                    child.kill()
                    killed += 1
    return killed
