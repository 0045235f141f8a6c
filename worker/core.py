"""What the parts of a running node share: the chain clock, background tasks, result files.

The node's main loop is one thread that owns the state database and sends every transaction;
slow work (computing a lease, downloading another replica's result) runs on pools and comes back
to the main loop as a finished future whose callback the loop calls (:meth:`NodeCore.reap`).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from blindframe.coordinator.chain import with_retries
from blindframe.coordinator.errors import RpcUnreachableError
from blindframe.coordinator.results import LeaseResult, max_result_bytes, open_lease_result
from blindframe.coordinator.store import StoreConnectionError
from blindframe.errors import BlindframeError

if TYPE_CHECKING:
    from web3 import Web3

    from blindframe.coordinator.market import Market
    from blindframe.coordinator.store import IpfsStore
    from blindframe.worker.faults import Behaviour
    from blindframe.worker.logs import NodeLog
    from blindframe.worker.options import NodeOptions
    from blindframe.worker.state import JobRow, NodeState

__all__ = ["ChainClock", "NodeCore", "NodePart", "commitment_of"]

_RESULT_CACHE = 8  # lease results kept in memory (trees included) for openings


class ChainClock:
    """The chain's time: the latest block's timestamp, moved on by the wall clock since the node
    first saw that block (an idle Anvil mines no block until a transaction comes, and a real
    chain's next block is up to one slot ahead of the latest)."""

    def __init__(self, w3: Web3, endpoint: str) -> None:
        self.w3 = w3
        self.endpoint = endpoint
        self._block = -1
        self._timestamp = 0
        self._seen = 0.0

    def refresh(self) -> None:
        """Read the latest block."""
        block = with_retries(
            lambda: self.w3.eth.get_block("latest"),
            what="read the latest block",
            endpoint=self.endpoint,
        )
        number, timestamp = int(block["number"]), int(block["timestamp"])
        if number != self._block:
            self._block, self._timestamp, self._seen = number, timestamp, time.monotonic()

    def now(self) -> int:
        """Best estimate of the next block's timestamp (never behind the latest block's), and
        never behind the wall clock either: a block first seen after an RPC outage may be
        minutes old, and counting from its sighting would put every deadline that long late
        (as the artist's side does, see ``Artist.chain_now``)."""
        if self._block < 0:
            self.refresh()
        return max(self._timestamp + int(time.monotonic() - self._seen), int(time.time()))


def commitment_of(root: bytes, worker: str, salt: bytes) -> bytes:
    """keccak256(abi.encode(root, worker, salt)): what the contract's commitmentOf computes."""
    return bytes(keccak(abi_encode(["bytes32", "address", "bytes32"], [root, worker, salt])))


@dataclass
class _Task:
    future: Future[Any]
    on_done: Callable[[Future[Any]], None]


@dataclass
class NodeCore:
    """Services every part of the node uses."""

    me: str
    market: Market
    state: NodeState
    store: IpfsStore
    log: NodeLog
    clock: ChainClock
    options: NodeOptions
    compute_pool: ThreadPoolExecutor
    io_pool: ThreadPoolExecutor
    results_dir: Path
    # Answers to availability challenges: their own thread, never queued behind downloads.
    defense_pool: ThreadPoolExecutor
    # How this node behaves where a TEST-ONLY faulty one differs (honest in production).
    behaviour: Behaviour
    stopping: bool = False  # first Ctrl-C: no new claims, finish what is in flight
    abandoning: bool = False  # second Ctrl-C: give up what is in flight
    tasks: dict[tuple[Any, ...], _Task] = field(default_factory=dict)
    _results: OrderedDict[int, LeaseResult] = field(default_factory=OrderedDict)
    _results_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def params(self) -> dict[str, int]:
        """The market's deployment parameters."""
        return self.market.params

    def is_me(self, address: Any) -> bool:
        """Whether ``address`` is this node's account."""
        return str(address).lower() == self.me.lower()

    # -- background work -------------------------------------------------------------------------

    def spawn(
        self,
        key: tuple[Any, ...],
        pool: ThreadPoolExecutor,
        work: Callable[[], Any],
        on_done: Callable[[Future[Any]], None],
    ) -> bool:
        """Run ``work`` on ``pool`` unless a task with ``key`` runs; ``on_done`` later runs on
        the main loop with the finished future."""
        if key in self.tasks:
            return False
        self.tasks[key] = _Task(pool.submit(work), on_done)
        return True

    def running(self, kind: str) -> int:
        """How many background tasks of ``kind`` (the key's first item) are unfinished."""
        return sum(1 for key in self.tasks if key[0] == kind)

    def reap(self) -> None:
        """Hand every finished task to its callback (on the calling, main, thread).

        A callback that fails is logged and the node goes on: one lease or comparison must not
        take the node down.
        """
        for key in [k for k, t in self.tasks.items() if t.future.done()]:
            task = self.tasks.pop(key)
            try:
                task.on_done(task.future)
            except (RpcUnreachableError, StoreConnectionError):
                raise  # the main loop reports outages once and retries
            except BlindframeError as exc:
                self.log.warning("task_failed", f"{key[0]} {key[1:]}: {exc}")
            except Exception as exc:  # noqa: BLE001 - an internal error must not stop the node
                self.log.error(
                    "internal_error",
                    f"internal error in {key[0]} {key[1:]}: {type(exc).__name__}: {exc} "
                    "(the node goes on; please report it)",
                )
                self.log.debug("traceback", "".join(traceback.format_exception(exc)))

    # -- lease results ---------------------------------------------------------------------------

    def remember_result(self, lease_id: int, result: LeaseResult) -> None:
        """Keep a lease's parsed result (with its trees) for later openings (thread-safe)."""
        with self._results_lock:
            self._results[lease_id] = result
            self._results.move_to_end(lease_id)
            while len(self._results) > _RESULT_CACHE:
                self._results.popitem(last=False)

    def lease_result(
        self,
        *,
        job: JobRow,
        lease_id: int,
        first_tile: int,
        count: int,
        root: bytes,
        cid: str | None,
        path: Path | None = None,
    ) -> LeaseResult:
        """A lease's result checked against its revealed root: from memory, the node's own file,
        or IPFS. Raises LeaseResultError (bytes that do not give the root) or StoreError.
        Thread-safe: it reads no state database."""
        with self._results_lock:
            cached = self._results.get(lease_id)
            if cached is not None and cached.root == root:
                self._results.move_to_end(lease_id)
                return cached
        data: bytes | None = None
        if path is not None and path.is_file():
            data = path.read_bytes()
        if data is None:
            if cid is None:
                raise FileNotFoundError(f"lease {lease_id} has no result file or CID")
            data = self.store.cat(cid, max_size=max_result_bytes(job.kernel, count))
        result = open_lease_result(
            data,
            kernel=job.kernel,
            job_id=job.job_id,
            lease_id=lease_id,
            first_tile=first_tile,
            count=count,
            leaf_depth=job.leaf_depth,
            root=root,
        )
        self.remember_result(lease_id, result)
        return result


class NodePart:
    """A part of the node (claiming, leases, recovery, ...): it works through the shared core."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core

    @property
    def me(self) -> str:
        """This node's address."""
        return self.core.me

    @property
    def market(self) -> Market:
        """The market contract."""
        return self.core.market

    @property
    def state(self) -> NodeState:
        """The node's state database (main thread only)."""
        return self.core.state

    @property
    def log(self) -> NodeLog:
        """The node's log."""
        return self.core.log

    @property
    def options(self) -> NodeOptions:
        """The node's options."""
        return self.core.options
