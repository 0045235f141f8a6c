"""The render node's memory: jobs, every lease it saw, its own leases, replica checks, contests.

One SQLite file per (chain, market) in the node's data directory, beside the event indexer's
tables (same file, own tables). What must survive a crash is written before the action that
depends on it: a lease's salt and root before its commit transaction, so a restarted node can
still reveal. Chain events fill ``jobs``, ``leases``, ``contests`` and ``credits`` through
idempotent upserts (the indexer delivers at least once).

Tables (amounts in wei are TEXT: they overflow SQLite's 64-bit integers):

- ``meta``: key/value; the chain id, market, worker address and the deploy block's hash this
  file belongs to (a reset chain gets a fresh file).
- ``jobs``: every posted job; ``status`` is new | valid | refused | ignored | unavailable, with
  ``reason`` for the last three and the validated manifest (JSON) for valid ones.
- ``leases``: every lease of the market from its events (any worker): range, lane, deadlines,
  ``status`` claimed | committed | revealed | settled | reclaimed | forfeited, root and result
  CID.
- ``own``: this node's leases (replica leases it claimed, juror leases it was drawn for) and
  where each stands (``OWN_STATES``), with salt, root, result CID and file, compute time, what it
  was paid, and why it failed.
- ``checks``: one row per (own lease, other replica lease) comparison: pending | agree | proven |
  unopenable | late | skipped.
- ``contests``: disagreements and disputes from events: tile, jury lane, sides, the block an
  armed jury draw waits for, the jury's verdict lease, outcome, far sides proven, the other
  replica leases compared with the verdict, and when this node should look again.
- ``challenges``: availability challenges from events: lease, tile, leaves, challenger,
  deadline, ``status`` open | answered | failed.
- ``credits``: ``Credited`` events to this node (job, amount, reason).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

from blindframe.coordinator.sqlite import open_db, transaction
from blindframe.worker.errors import NodeStateError

__all__ = [
    "ACTIVE_STATES",
    "KEEP",
    "OWN_STATES",
    "TERMINAL_STATES",
    "ChainLease",
    "ChainLeaseStatus",
    "ChallengeRow",
    "ChallengeStatus",
    "CheckRow",
    "CheckState",
    "ContestKind",
    "ContestRow",
    "JobRow",
    "JobStatus",
    "Keep",
    "LeaseKind",
    "NodeState",
    "OwnLease",
    "OwnState",
]

SCHEMA_VERSION = "1"


class OwnState(StrEnum):
    """Where an own lease stands (stored as its value)."""

    CLAIMED = "claimed"  # waiting for a compute slot
    COMPUTING = "computing"  # in the sandbox
    COMPUTED = "computed"  # result packed and uploaded, salt chosen (both persisted)
    COMMITTED = "committed"
    REVEALED = "revealed"
    SETTLED = "settled"  # paid
    FAILED = "failed"  # could not be computed (waits for its deadline, then reclaimed)
    ABANDONED = "abandoned"  # the operator gave it up
    # Reclaimed by someone else, expired unrevealed, overtaken (another lane revealed its tiles
    # before it committed) or forfeited (an availability challenge on it went unanswered).
    LOST = "lost"


class LeaseKind(StrEnum):
    """Why an own lease exists: a replica lane it claimed, or a jury seat it was drawn for."""

    REPLICA = "replica"
    JUROR = "juror"


class JobStatus(StrEnum):
    """What the node made of a posted job."""

    NEW = "new"
    VALID = "valid"
    REFUSED = "refused"
    IGNORED = "ignored"
    UNAVAILABLE = "unavailable"


class ChainLeaseStatus(StrEnum):
    """Any worker's lease as the market's events moved it."""

    CLAIMED = "claimed"
    COMMITTED = "committed"
    REVEALED = "revealed"
    SETTLED = "settled"
    RECLAIMED = "reclaimed"
    FORFEITED = "forfeited"


class CheckState(StrEnum):
    """Where a comparison of our lease with another replica stands."""

    PENDING = "pending"
    AGREE = "agree"
    PROVEN = "proven"
    UNOPENABLE = "unopenable"
    LATE = "late"
    SKIPPED = "skipped"


class ContestKind(StrEnum):
    """How a contest was opened: a proven disagreement of replicas, or a client's dispute."""

    DISAGREEMENT = "disagreement"
    DISPUTE = "dispute"


class ChallengeStatus(StrEnum):
    """Where an availability challenge stands."""

    OPEN = "open"
    ANSWERED = "answered"
    FAILED = "failed"


class Keep(Enum):
    """The type of :data:`KEEP`: an update argument left out (``None`` may be a value)."""

    KEEP = "keep"


KEEP = Keep.KEEP

OWN_STATES = tuple(OwnState)
ACTIVE_STATES = (OwnState.CLAIMED, OwnState.COMPUTING, OwnState.COMPUTED, OwnState.COMMITTED)
TERMINAL_STATES = (OwnState.SETTLED, OwnState.LOST)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    kernel TEXT NOT NULL,
    manifest_cid TEXT NOT NULL,
    tile_count INTEGER NOT NULL,
    replication INTEGER NOT NULL,
    reward TEXT NOT NULL,
    lease_length INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    leaf_depth INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at REAL NOT NULL DEFAULT 0,
    manifest TEXT,
    posted_block INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    lease_id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    worker TEXT NOT NULL,
    lane INTEGER NOT NULL,
    first_tile INTEGER NOT NULL,
    count INTEGER NOT NULL,
    commit_deadline INTEGER NOT NULL,
    reveal_deadline INTEGER NOT NULL,
    status TEXT NOT NULL,
    root TEXT,
    result_cid TEXT,
    revealed_block INTEGER
);
CREATE INDEX IF NOT EXISTS leases_by_job ON leases (job_id, lane);
CREATE INDEX IF NOT EXISTS leases_by_status ON leases (status);
CREATE TABLE IF NOT EXISTS own (
    lease_id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    lane INTEGER NOT NULL,
    first_tile INTEGER NOT NULL,
    count INTEGER NOT NULL,
    kind TEXT NOT NULL,
    contest_id INTEGER,
    commit_deadline INTEGER NOT NULL,
    state TEXT NOT NULL,
    salt TEXT,
    root TEXT,
    result_cid TEXT,
    result_path TEXT,
    compute_seconds REAL,
    paid TEXT,
    error TEXT,
    next_check REAL NOT NULL DEFAULT 0,
    claimed_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    own_lease INTEGER NOT NULL,
    other_lease INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (own_lease, other_lease)
);
CREATE TABLE IF NOT EXISTS contests (
    contest_id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    tile INTEGER NOT NULL,
    kind TEXT NOT NULL,
    lease_a INTEGER NOT NULL,
    lease_b INTEGER NOT NULL,
    lane INTEGER,
    claim_deadline INTEGER,
    tie_lease INTEGER NOT NULL DEFAULT 0,
    far_mask INTEGER NOT NULL DEFAULT 0,
    looked INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    retry_at REAL NOT NULL DEFAULT 0,
    draw_block INTEGER NOT NULL DEFAULT 0,
    replicas_looked TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS challenges (
    challenge_id INTEGER PRIMARY KEY,
    lease_id INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    tile INTEGER NOT NULL,
    leaves TEXT NOT NULL,
    challenger TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    retry_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS credits (
    event_key TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL,
    amount TEXT NOT NULL,
    reason INTEGER NOT NULL,
    block INTEGER NOT NULL
);
"""


_ADDED_CONTEST_COLUMNS = {
    "draw_block": "INTEGER NOT NULL DEFAULT 0",
    "replicas_looked": "TEXT NOT NULL DEFAULT ''",
}


@dataclass(frozen=True)
class JobRow:
    """A job as the node knows it."""

    job_id: int
    client: str
    kernel: str
    manifest_cid: str
    tile_count: int
    replication: int
    reward: str
    lease_length: int
    deadline: int
    priority: int
    leaf_depth: int
    status: JobStatus
    reason: str | None
    attempts: int
    retry_at: float
    manifest: str | None
    posted_block: int
    updated_at: float

    @property
    def reward_wei(self) -> int:
        """Reward per tile-replica in wei."""
        return int(self.reward)

    @property
    def manifest_json(self) -> dict[str, Any] | None:
        """The validated manifest document, for valid jobs."""
        return None if self.manifest is None else dict(json.loads(self.manifest))


@dataclass(frozen=True)
class ChainLease:
    """Any worker's lease, from the market's events."""

    lease_id: int
    job_id: int
    worker: str
    lane: int
    first_tile: int
    count: int
    commit_deadline: int
    reveal_deadline: int
    status: ChainLeaseStatus
    root: str | None
    result_cid: str | None
    revealed_block: int | None

    @property
    def tiles(self) -> range:
        """The tiles it covers."""
        return range(self.first_tile, self.first_tile + self.count)


@dataclass(frozen=True)
class OwnLease:
    """One of this node's leases."""

    lease_id: int
    job_id: int
    lane: int
    first_tile: int
    count: int
    kind: LeaseKind
    contest_id: int | None
    commit_deadline: int
    state: OwnState
    salt: str | None
    root: str | None
    result_cid: str | None
    result_path: str | None
    compute_seconds: float | None
    paid: str | None
    error: str | None
    next_check: float
    claimed_at: float
    updated_at: float

    @property
    def tiles(self) -> range:
        """The tiles it covers."""
        return range(self.first_tile, self.first_tile + self.count)


@dataclass(frozen=True)
class CheckRow:
    """A comparison of one of our leases with another replica of (some of) its tiles."""

    own_lease: int
    other_lease: int
    state: CheckState
    detail: str | None
    attempts: int
    updated_at: float


@dataclass(frozen=True)
class ContestRow:
    """A contest over one tile (a proven disagreement or a client dispute)."""

    contest_id: int
    job_id: int
    tile: int
    kind: ContestKind
    lease_a: int
    lease_b: int
    lane: int | None  # the jury lane
    claim_deadline: int | None  # the last moment a juror may be drawn
    tie_lease: int  # the jury's verdict lease (0 while there is none)
    far_mask: int
    looked: int  # bit 0/1: side A/B compared with the verdict by this node
    outcome: str | None
    retry_at: float
    draw_block: int  # a jury draw is armed on this block (0: none known)
    replicas_looked: str  # other replica leases of the tile compared with the verdict: "1,5"

    @property
    def replicas_compared(self) -> set[int]:
        """Other replica leases of the tile this node compared with the verdict."""
        return {int(x) for x in self.replicas_looked.split(",") if x}


@dataclass(frozen=True)
class ChallengeRow:
    """An availability challenge: ``leaves`` of ``tile`` of a lease must be opened on chain by
    ``deadline``."""

    challenge_id: int
    lease_id: int
    job_id: int
    tile: int
    leaves: str  # JSON list of leaf indices
    challenger: str
    deadline: int
    status: ChallengeStatus
    retry_at: float

    @property
    def leaf_indices(self) -> list[int]:
        """The challenged leaf indices."""
        return [int(x) for x in json.loads(self.leaves)]


_R = TypeVar("_R")


# Columns stored as a state machine's value, read back as its member.
_ENUM_COLUMNS: dict[type, dict[str, type[StrEnum]]] = {
    JobRow: {"status": JobStatus},
    ChainLease: {"status": ChainLeaseStatus},
    OwnLease: {"kind": LeaseKind, "state": OwnState},
    CheckRow: {"state": CheckState},
    ContestRow: {"kind": ContestKind},
    ChallengeRow: {"status": ChallengeStatus},
}


def _row(cls: type[_R], row: sqlite3.Row | None) -> _R | None:
    if row is None:
        return None
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = {name: row[name] for name in names}
    for column, enum in _ENUM_COLUMNS.get(cls, {}).items():
        values[column] = enum(values[column])
    return cls(**values)


def _given(**values: object) -> dict[str, object]:
    """The update arguments a caller gave (those not left at :data:`KEEP`)."""
    return {name: value for name, value in values.items() if value is not KEEP}


class NodeState:
    """The node's SQLite state (see the module docstring for the tables)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.is_file():
                raise NodeStateError(
                    f"no node state at {path}",
                    hint="this node has not run for this deployment yet: "
                    "start it with `blindframe worker run`",
                )
            self._db = open_db(path, read_only=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = open_db(path)
            self._db.executescript(_SCHEMA)
            self._migrate()
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _migrate(self) -> None:
        """Columns added since a state file was created (SQLite adds them in place)."""
        have = {str(row[1]) for row in self._db.execute("PRAGMA table_info(contests)")}
        for column, ddl in _ADDED_CONTEST_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE contests ADD COLUMN {column} {ddl}")

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all or nothing."""
        return transaction(self._db)

    # -- meta ------------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """Every meta entry."""
        return {str(r[0]): str(r[1]) for r in self._db.execute("SELECT key, value FROM meta")}

    def bind(self, identity: dict[str, str]) -> None:
        """Record (first run) or check (later runs) which chain, market and account this is."""
        known = self.meta()
        for key, value in identity.items():
            if key in known and known[key] != value:
                raise NodeStateError(
                    f"the node state {self.path} belongs to {key} {known[key]}, not {value}",
                    hint="use another --data-dir for this account or market",
                )
        with self.transaction():
            for key, value in {**identity, "schema": SCHEMA_VERSION}.items():
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                )

    # -- jobs ------------------------------------------------------------------------------------

    def add_job(self, args: dict[str, Any], kernel: str, manifest_cid: str, block: int) -> bool:
        """Remember a posted job (from JobPosted); False if it was known."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO jobs (job_id, client, kernel, manifest_cid, tile_count, "
            "replication, reward, lease_length, deadline, priority, leaf_depth, posted_block, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(args["jobId"]),
                str(args["client"]),
                kernel,
                manifest_cid,
                int(args["tileCount"]),
                int(args["replication"]),
                str(int(args["rewardPerTileReplica"])),
                int(args["leaseLength"]),
                int(args["deadline"]),
                int(args["priority"]),
                int(args["leafDepth"]),
                block,
                time.time(),
            ),
        )
        return cur.rowcount > 0

    def _select(
        self, row_type: type[_R], table: str, order: str, **where: Sequence[str | int]
    ) -> list[_R]:
        """Rows of ``table`` (a fixed name), ordered by ``order``, whose columns hold one of the
        given values (a column given no values is not filtered)."""
        clauses, params = ["1 = 1"], list[Any]()
        for column, values in where.items():
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        # Table, column and order names are this module's literals; every value is a parameter.
        query = f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {order}"  # noqa: S608
        rows = self._db.execute(query, params).fetchall()
        return [r for r in (_row(row_type, row) for row in rows) if r is not None]

    def job(self, job_id: int) -> JobRow | None:
        """A job by id."""
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _row(JobRow, row)

    def jobs(self, statuses: Sequence[JobStatus] = ()) -> list[JobRow]:
        """Jobs (optionally with these statuses), oldest first."""
        return self._select(JobRow, "jobs", "job_id", status=statuses)

    def set_job(
        self,
        job_id: int,
        status: JobStatus,
        *,
        reason: str | None = None,
        manifest: dict[str, Any] | None = None,
        retry_at: float = 0.0,
        attempt: bool = False,
    ) -> None:
        """Record the outcome of looking at a job."""
        self._db.execute(
            "UPDATE jobs SET status = ?, reason = ?, manifest = COALESCE(?, manifest), "
            "retry_at = ?, attempts = attempts + ?, updated_at = ? WHERE job_id = ?",
            (
                status,
                reason,
                None if manifest is None else json.dumps(manifest, sort_keys=True),
                retry_at,
                1 if attempt else 0,
                time.time(),
                job_id,
            ),
        )

    # -- every lease -----------------------------------------------------------------------------

    def add_lease(self, args: dict[str, Any]) -> bool:
        """Remember a claim (TilesClaimed); False if it was known."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO leases (lease_id, job_id, worker, lane, first_tile, count, "
            "commit_deadline, reveal_deadline, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'claimed')",
            (
                int(args["leaseId"]),
                int(args["jobId"]),
                str(args["worker"]),
                int(args["lane"]),
                int(args["firstTile"]),
                int(args["count"]),
                int(args["commitDeadline"]),
                int(args["revealDeadline"]),
            ),
        )
        return cur.rowcount > 0

    def lease_status(
        self,
        lease_id: int,
        status: ChainLeaseStatus,
        *,
        root: str | None = None,
        result_cid: str | None = None,
        block: int | None = None,
    ) -> None:
        """Move a seen lease along (events arrive in chain order, so the last one wins)."""
        self._db.execute(
            "UPDATE leases SET status = ?, root = COALESCE(?, root), "
            "result_cid = COALESCE(?, result_cid), revealed_block = COALESCE(?, revealed_block) "
            "WHERE lease_id = ?",
            (status, root, result_cid, block, lease_id),
        )

    def lease(self, lease_id: int) -> ChainLease | None:
        """A seen lease by id."""
        row = self._db.execute("SELECT * FROM leases WHERE lease_id = ?", (lease_id,)).fetchone()
        return _row(ChainLease, row)

    def reveal_deadline(self, lease: OwnLease, reveal_window: int) -> int:
        """Our lease's reveal deadline as its TilesClaimed event gave it (a juror's is its
        contest's claim deadline + revealWindow, not its own commit deadline's), or the replica
        rule when the event was not indexed."""
        seen = self.lease(lease.lease_id)
        return seen.reveal_deadline if seen is not None else lease.commit_deadline + reveal_window

    def leases(
        self, *, job_id: int | None = None, statuses: Sequence[ChainLeaseStatus] = ()
    ) -> list[ChainLease]:
        """Seen leases, filtered."""
        jobs = () if job_id is None else (job_id,)
        return self._select(ChainLease, "leases", "lease_id", job_id=jobs, status=statuses)

    # -- own leases ------------------------------------------------------------------------------

    def add_own(
        self,
        *,
        lease_id: int,
        job_id: int,
        lane: int,
        first_tile: int,
        count: int,
        kind: LeaseKind,
        commit_deadline: int,
        contest_id: int | None = None,
    ) -> bool:
        """Remember a lease this node claimed; False if it was known."""
        now = time.time()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO own (lease_id, job_id, lane, first_tile, count, kind, "
            "contest_id, commit_deadline, state, claimed_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'claimed', ?, ?)",
            (
                lease_id,
                job_id,
                lane,
                first_tile,
                count,
                kind,
                contest_id,
                commit_deadline,
                now,
                now,
            ),
        )
        return cur.rowcount > 0

    def own(self, lease_id: int) -> OwnLease | None:
        """One own lease."""
        row = self._db.execute("SELECT * FROM own WHERE lease_id = ?", (lease_id,)).fetchone()
        return _row(OwnLease, row)

    def own_leases(self, states: Iterable[OwnState] = ()) -> list[OwnLease]:
        """Own leases (optionally in these states), by id."""
        return self._select(OwnLease, "own", "lease_id", state=tuple(states))

    def update_own(
        self,
        lease_id: int,
        *,
        state: OwnState | Keep = KEEP,
        next_check: float | Keep = KEEP,
        error: str | None | Keep = KEEP,
        salt: str | Keep = KEEP,
        root: str | Keep = KEEP,
        result_cid: str | Keep = KEEP,
        result_path: str | Keep = KEEP,
        compute_seconds: float | Keep = KEEP,
        contest_id: int | Keep = KEEP,
        paid: str | Keep = KEEP,
    ) -> None:
        """Change fields of an own lease (those given)."""
        changes = _given(
            state=state,
            next_check=next_check,
            error=error,
            salt=salt,
            root=root,
            result_cid=result_cid,
            result_path=result_path,
            compute_seconds=compute_seconds,
            contest_id=contest_id,
            paid=paid,
        )
        changes["updated_at"] = time.time()
        self._update("own", "lease_id", lease_id, changes)

    def _update(self, table: str, key: str, key_value: int, changes: dict[str, object]) -> None:
        """Set ``changes`` (column names are this module's literals) on one row of ``table``."""
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self._db.execute(
            f"UPDATE {table} SET {assignments} WHERE {key} = ?",  # noqa: S608 - literal names
            (*changes.values(), key_value),
        )

    def forget_leases(self, lease_ids: Iterable[int]) -> None:
        """Drop leases a chain reorganisation took away: our rows, the seen rows and the
        replica checks naming them (their ids may come back as other claims)."""
        for lease_id in lease_ids:
            self._db.execute("DELETE FROM own WHERE lease_id = ?", (lease_id,))
            self._db.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
            self._db.execute(
                "DELETE FROM checks WHERE own_lease = ? OR other_lease = ?", (lease_id, lease_id)
            )

    # -- replica checks --------------------------------------------------------------------------

    def add_check(self, own_lease: int, other_lease: int) -> bool:
        """Queue a comparison; False if it exists."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO checks (own_lease, other_lease, state, updated_at) "
            "VALUES (?, ?, 'pending', ?)",
            (own_lease, other_lease, time.time()),
        )
        return cur.rowcount > 0

    def checks(self, states: Sequence[CheckState] = ()) -> list[CheckRow]:
        """Comparisons (optionally in these states)."""
        return self._select(CheckRow, "checks", "own_lease, other_lease", state=states)

    def set_check(
        self, own_lease: int, other_lease: int, state: CheckState, detail: str | None = None
    ) -> None:
        """Record a comparison's outcome (or another attempt)."""
        self._db.execute(
            "UPDATE checks SET state = ?, detail = ?, attempts = attempts + 1, updated_at = ? "
            "WHERE own_lease = ? AND other_lease = ?",
            (state, detail, time.time(), own_lease, other_lease),
        )

    # -- contests --------------------------------------------------------------------------------

    def add_contest(
        self,
        *,
        contest_id: int,
        job_id: int,
        tile: int,
        kind: ContestKind,
        lease_a: int,
        lease_b: int,
    ) -> bool:
        """Remember a contest (DisagreementProven or Disputed)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO contests (contest_id, job_id, tile, kind, lease_a, lease_b) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (contest_id, job_id, tile, kind, lease_a, lease_b),
        )
        return cur.rowcount > 0

    def update_contest(
        self,
        contest_id: int,
        *,
        retry_at: float | Keep = KEEP,
        outcome: str | Keep = KEEP,
        draw_block: int | Keep = KEEP,
        tie_lease: int | Keep = KEEP,
        far_mask: int | Keep = KEEP,
        looked: int | Keep = KEEP,
        replicas_looked: str | Keep = KEEP,
        lane: int | Keep = KEEP,
        claim_deadline: int | Keep = KEEP,
    ) -> None:
        """Change fields of a contest (those given)."""
        changes = _given(
            retry_at=retry_at,
            outcome=outcome,
            draw_block=draw_block,
            tie_lease=tie_lease,
            far_mask=far_mask,
            looked=looked,
            replicas_looked=replicas_looked,
            lane=lane,
            claim_deadline=claim_deadline,
        )
        self._update("contests", "contest_id", contest_id, changes)

    def contest(self, contest_id: int) -> ContestRow | None:
        """A contest by id."""
        row = self._db.execute(
            "SELECT * FROM contests WHERE contest_id = ?", (contest_id,)
        ).fetchone()
        return _row(ContestRow, row)

    def contests(self, *, open_only: bool = True) -> list[ContestRow]:
        """Contests (only unresolved ones by default)."""
        if open_only:
            query = "SELECT * FROM contests WHERE outcome IS NULL ORDER BY contest_id"
        else:
            query = "SELECT * FROM contests ORDER BY contest_id"
        rows = self._db.execute(query).fetchall()
        return [r for r in (_row(ContestRow, row) for row in rows) if r is not None]

    def contests_of(self, job_id: int, tile: int) -> list[ContestRow]:
        """Every contest over ``tile`` of ``job_id`` (at most one, since a tile is contested
        once)."""
        rows = self._db.execute(
            "SELECT * FROM contests WHERE job_id = ? AND tile = ? ORDER BY contest_id",
            (job_id, tile),
        ).fetchall()
        return [r for r in (_row(ContestRow, row) for row in rows) if r is not None]

    # -- availability challenges -----------------------------------------------------------------

    def add_challenge(
        self,
        *,
        challenge_id: int,
        lease_id: int,
        job_id: int,
        tile: int,
        leaves: Sequence[int],
        challenger: str,
        deadline: int,
    ) -> bool:
        """Remember an availability challenge (AvailabilityChallenged); False if it was known."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO challenges (challenge_id, lease_id, job_id, tile, leaves, "
            "challenger, deadline) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                challenge_id,
                lease_id,
                job_id,
                tile,
                json.dumps([int(leaf) for leaf in leaves]),
                challenger,
                deadline,
            ),
        )
        return cur.rowcount > 0

    def challenge(self, challenge_id: int) -> ChallengeRow | None:
        """An availability challenge by id."""
        row = self._db.execute(
            "SELECT * FROM challenges WHERE challenge_id = ?", (challenge_id,)
        ).fetchone()
        return _row(ChallengeRow, row)

    def challenges(self, statuses: Sequence[ChallengeStatus] = ()) -> list[ChallengeRow]:
        """Availability challenges (optionally with these statuses), oldest first."""
        return self._select(ChallengeRow, "challenges", "challenge_id", status=statuses)

    def update_challenge(
        self,
        challenge_id: int,
        *,
        status: ChallengeStatus | Keep = KEEP,
        retry_at: float | Keep = KEEP,
    ) -> None:
        """Change fields of an availability challenge (those given)."""
        changes = _given(status=status, retry_at=retry_at)
        self._update("challenges", "challenge_id", challenge_id, changes)

    # -- credits ---------------------------------------------------------------------------------

    def add_credit(self, key: str, job_id: int, amount: int, reason: int, block: int) -> None:
        """Remember a Credited event to this node."""
        self._db.execute(
            "INSERT OR IGNORE INTO credits (event_key, job_id, amount, reason, block) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, job_id, str(amount), reason, block),
        )

    def credited(self) -> dict[int, int]:
        """Wei credited to this node per job."""
        out: dict[int, int] = {}
        for job_id, amount in self._db.execute("SELECT job_id, amount FROM credits"):
            out[int(job_id)] = out.get(int(job_id), 0) + int(amount)
        return out
