"""The render node's run loop: watch the market's events, claim tiles by policy, compute each
lease in a sandboxed process pinned to the job's FFT plan, commit, reveal, police replicas,
serve on contests' juries when drawn, answer availability challenges, finalize, and stop cleanly.

Replica leases are claimed; juror leases are not: a contest's jury is drawn at random by the
market (:mod:`blindframe.worker.referee` calls the draw), and a juror lease drawn for this node
arrives as a ``TilesClaimed`` event (:mod:`blindframe.worker.ledger`) and then goes through the
same compute, commit and reveal steps as any lease of its own.

The node's parts each own one stretch of a lease's path and share :class:`NodeCore`:
:mod:`~blindframe.worker.validation` (checking a job before taking it),
:mod:`~blindframe.worker.claiming` (planning and claiming tiles),
:mod:`~blindframe.worker.leases` (compute, commit, reveal, lose or reclaim our leases),
:mod:`~blindframe.worker.referee` (replicas, contests, availability challenges) and
:mod:`~blindframe.worker.recovery` (restarts, finalizing, reclaiming, stopping). This module sets
them up and runs the loop that drives them.

One main thread owns the state database and sends every transaction; leases compute on a
compute pool (each in a fork of a long-lived child pinned to the job's FFT plan, see
:mod:`blindframe.worker.pinned`) and downloads run on an io pool (see
:mod:`blindframe.worker.core`). A job is claimable only once its manifest checks out and this
machine has pinned a process to its FFT plan: a plan it cannot reach (another SIMD code path,
or a plan its CPU never picks) makes it refuse the job before claiming any tile.

Every step is driven by chain events (``EventIndexer``) and views, and is idempotent: a node
killed at any point and started again resumes from its SQLite state and the chain (re-commits,
re-reveals, recomputes what still fits its deadline, lets go of what does not — saying so).
A chain reorganisation is lined up the same way: the index drops the orphaned events and
:meth:`~blindframe.worker.recovery.Recovery.after_reorg` re-reads the leases built from them
(a dropped lease is forgotten with its salt; a dropped commit is sent again with a fresh one).

Ctrl-C (SIGINT) or SIGTERM: stop claiming, finish the leases in flight up to their reveal, exit.
A second one abandons them, naming each lease, when it can be reclaimed and what collateral is
at stake, and kills the sandboxed children.
"""

from __future__ import annotations

import signal
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from blindframe.coordinator.chain import TRANSIENT_ERRORS, block_gone
from blindframe.coordinator.errors import CoordinatorError, RpcUnreachableError
from blindframe.coordinator.events import ChainEvent, EventIndexer
from blindframe.coordinator.scheduling import RuntimeModel
from blindframe.coordinator.store import IpfsStore, KeyCache, StoreError
from blindframe.fhe_core.kernels import client_spec_hash, output_words
from blindframe.worker import faults
from blindframe.worker.claiming import Claimer, Runtimes
from blindframe.worker.compute import LeaseComputer
from blindframe.worker.core import ChainClock, NodeCore
from blindframe.worker.errors import NotStakedError
from blindframe.worker.leases import LeaseRunner
from blindframe.worker.ledger import Ledger
from blindframe.worker.logs import NodeLog, eth
from blindframe.worker.pinned import PinnedPool
from blindframe.worker.recovery import EXIT_ABANDONED, EXIT_OK, Recovery
from blindframe.worker.referee import Referee
from blindframe.worker.state import JobStatus, NodeState, OwnState
from blindframe.worker.validation import JobValidator

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from blindframe.coordinator.market import Market
    from blindframe.worker.context import NodePaths
    from blindframe.worker.options import NodeOptions

__all__ = ["EXIT_ABANDONED", "EXIT_OK", "Node", "open_state"]


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
        self.behaviour = faults.behaviour_for(options.fault)
        self._stop_announced = False
        self._last_busy = time.monotonic()
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
        runtime = RuntimeModel(self.paths.runtime_db, priors=dict(options.tile_seconds))
        identity_ipfs = self.store.node_id()
        self.behaviour.announce(log)
        spec_hashes = self._compile_kernels()
        self._build_parts(runtime, spec_hashes)
        free = view.stake - view.locked
        log.info(
            "started",
            f"render node {self.me} on chain {self.chain_id}, market {market.address}: "
            f"stake {eth(view.stake)} ({eth(free)} free), capacity {view.capacity} tiles"
            + (
                f" (this run holds at most {options.capacity})"
                if options.capacity is not None and options.capacity < view.capacity
                else ""
            )
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

    def _compile_kernels(self) -> dict[str, str]:
        """Compile every kernel this node runs from the trusted registry: their client-spec
        hashes, which a job's manifest must match."""
        spec_hashes: dict[str, str] = {}
        for kernel in self.options.kernels:
            began = time.monotonic()
            spec_hashes[kernel] = client_spec_hash(kernel)
            output_words(kernel)
            self.log.info(
                "kernel_ready",
                f"compiled {kernel} from the trusted registry in {time.monotonic() - began:.1f} s "
                f"(client-spec hash {spec_hashes[kernel][:12]}…)",
                kernel=kernel,
                spec_hash=spec_hashes[kernel],
            )
        return spec_hashes

    def _build_parts(self, runtime: RuntimeModel, spec_hashes: dict[str, str]) -> None:
        """The pools, the shared core and the parts of the node working through it."""
        options, log = self.options, self.log
        self.compute_pool = ThreadPoolExecutor(options.parallel, thread_name_prefix="compute")
        self.io_pool = ThreadPoolExecutor(2, thread_name_prefix="io")
        self.defense_pool = ThreadPoolExecutor(1, thread_name_prefix="defense")
        self.core = NodeCore(
            me=self.me,
            market=self.market,
            state=self.state,
            store=self.store,
            log=log,
            clock=ChainClock(self.market.w3, self.endpoint),
            options=options,
            compute_pool=self.compute_pool,
            io_pool=self.io_pool,
            results_dir=self.paths.results,
            defense_pool=self.defense_pool,
            behaviour=self.behaviour,
        )
        self.pinned = PinnedPool(
            memory_bytes=options.memory_limit_mb << 20,
            log=log,
            max_idle=max(2, 2 * options.parallel),
        )
        computer = LeaseComputer(
            store=self.store,
            key_cache=KeyCache(self.store, self.paths.keys),
            input_cache=KeyCache(self.store, self.paths.inputs),
            results_dir=self.paths.results,
            work_dir=self.paths.work,
            pinned=self.pinned,
            behaviour=self.behaviour,
        )
        runtimes = Runtimes(runtime)
        self.referee = Referee(self.core)
        self.validator = JobValidator(self.core, self.pinned, spec_hashes)
        self.claimer = Claimer(self.core, runtimes)
        self.leases = LeaseRunner(
            self.core,
            computer=computer,
            validator=self.validator,
            runtimes=runtimes,
            on_revealed=self.referee.on_revealed,
        )
        self.recovery = Recovery(
            self.core, leases=self.leases, runtimes=runtimes, pinned=self.pinned
        )
        self.ledger = Ledger(
            self.state,
            log,
            self.me,
            on_revealed=self.referee.on_revealed,
            on_reopened=self.claimer.reopened,
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
            self._poll()
            self.recovery.recover()
            self.claimer.advertise_speeds()
            while True:
                if self.core.abandoning:
                    return self.recovery.abandon()
                self._tick()
                if self._should_exit():
                    return self.recovery.finish()
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
            self.core.abandoning = True
        self.core.stopping = True

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.core.abandoning:
            if self.core.stopping and not self._stop_announced:
                return
            time.sleep(min(0.1, max(end - time.monotonic(), 0)))

    def _tick(self) -> None:
        self._ticks += 1
        if self.core.stopping and not self._stop_announced:
            self._stop_announced = True
            self.recovery.announce_stop()
        try:
            self.core.clock.refresh()
            self._poll()
            self.core.reap()
            self.validator.evaluate()
            self.leases.drive()
            self.referee.drive()
            self.referee.defend()
            self.recovery.finalize_verified()
            self.recovery.reclaim_expired()
            self.claimer.claimed_last_round = False
            if not self.core.stopping and not self.leases.disk_full():
                self.claimer.claim_new_work()
            self.leases.start_computes()
            self.pinned.reap()
        except RpcUnreachableError as exc:
            self._rpc_down(exc.message)
            return
        except TRANSIENT_ERRORS as exc:
            # A contract view (not retried by itself) met the outage before a retried read did.
            self._rpc_down(
                f"lost the connection to the Ethereum RPC at {self.endpoint} ({type(exc).__name__})"
            )
            return
        except (CoordinatorError, StoreError) as exc:
            self.log.warning(
                "tick_error", f"{exc}; trying again next round", error=type(exc).__name__
            )
            return
        except Exception as exc:  # noqa: BLE001 - a daemon logs its own bugs and goes on
            if block_gone(exc):
                # A reorganisation under this round: the next one re-syncs (see _poll).
                self.log.warning(
                    "tick_reorg",
                    f"the chain changed under this round ({exc}); trying again next round",
                )
                return
            self._internal_error(exc)
            return
        if self._rpc_down_since is not None:
            self.log.info(
                "rpc_back",
                "the chain RPC answers again "
                f"(down {time.monotonic() - self._rpc_down_since:.0f} s)",
            )
            self._rpc_down_since = None

    def _rpc_down(self, message: str) -> None:
        """Say once that the chain RPC is down (the loop keeps retrying; `rpc_back` ends it)."""
        if self._rpc_down_since is None:
            self._rpc_down_since = time.monotonic()
            self.log.warning("rpc_down", f"{message}; retrying every few seconds")

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

    def _poll(self) -> None:
        """Index new events (after a reorganisation, line the state up with the chain first)
        and fold them into the state."""
        self.indexer.poll()
        rewound = self.indexer.rewound_to
        if rewound is not None:
            self.recovery.after_reorg(rewound)
            self.indexer.clear_rewind()
        self.indexer.handle(self._on_event, consumer="node")

    def _on_event(self, event: ChainEvent) -> None:
        """Fold one market event into the state (see worker/ledger.py)."""
        self.ledger.fold(event)

    # -- stopping --------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """Work in flight: a lease before its payment (or, failed, before its reclaim), a job
        being checked, a comparison or contest of ours. --once waits only up to the reveals."""
        if self.core.tasks or self.recovery.in_flight():
            return True
        if not self.options.once and self.state.own_leases(
            (OwnState.REVEALED, OwnState.FAILED, OwnState.ABANDONED)
        ):
            return True
        if self.state.jobs((JobStatus.NEW,)):
            return True
        return self.referee.busy()

    def _should_exit(self) -> bool:
        if self.core.stopping:
            return not self.recovery.in_flight() and self.core.running("compute") == 0
        if self._busy() or self.claimer.claimed_last_round:
            self._last_busy = time.monotonic()
            return False
        if self.options.once:
            return self._ticks >= 2
        if self.options.max_idle is not None:
            return time.monotonic() - self._last_busy >= self.options.max_idle
        return False
