"""A job's state at one moment, JSON-ready: every tile, lease, contest, payment and recent event.

:func:`build_snapshot` is pure: the client gathers chain views, indexed events and its own
verdicts, and this module turns them into the picture the CLI's progress bars, the Blender
add-on's status line and the dashboard's tile grid all show.

Tile slots (one per replica lane, plus one per juror a contest on the tile drew) go through
``open -> claimed -> committed -> revealed -> verified -> settled``; ``verified`` means the
*client* checked the result (its bytes gave the revealed root, its decryption equals the
plaintext twin), which is stronger than the chain's optimistic verification time (reported per
lease as ``chainVerified``). A slot is ``failed`` when the client found its result wrong or
tampered, a contest forfeited it, or an availability challenge on it went unanswered (lease
status ``forfeited``). A tile is ``contested`` while a contest on it is open, and ``failed`` when
a slot failed and no slot of the tile holds a verified result. Contests show their jury (seats,
each juror's lease, the verdict); availability challenges their lease, tile and status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from blindframe.client.jobdir import JobRef, Verdicts, VerdictStatus
from blindframe.client.pace import Pace, PaceSource, job_pace
from blindframe.coordinator.events import ChainEvent, event_cid
from blindframe.coordinator.market import (
    AvailabilityChallengeView,
    AvailabilityStatus,
    ContestOutcome,
    ContestView,
    JobView,
    LeaseStatus,
    LeaseView,
)

__all__ = [
    "CLOCK_FIELDS",
    "SLOT_STATES",
    "TILE_STATES",
    "ChallengeState",
    "ChallengeStatus",
    "ContestOutcomeName",
    "ContestState",
    "JobPhase",
    "JobSnapshot",
    "JurorSeat",
    "JurorVote",
    "LeaseState",
    "LeaseStatusName",
    "SlotState",
    "SlotStatus",
    "TileLayout",
    "TileState",
    "TileStatus",
    "build_snapshot",
    "frame_progress",
    "job_events",
    "job_ids",
]


class SlotStatus(StrEnum):
    """Where one replica or juror slot of a tile stands (see the module doc). The values are what
    snapshots hold (and the dashboard shows)."""

    OPEN = "open"  # no live lease holds it
    CLAIMED = "claimed"
    COMMITTED = "committed"
    REVEALED = "revealed"
    VERIFIED = "verified"  # the client checked the revealed result
    SETTLED = "settled"
    FAILED = "failed"  # found wrong or tampered, or forfeited


class TileStatus(StrEnum):
    """Where a tile stands: its least advanced live slot's status, ``failed`` or ``contested``
    (see the module doc). The values are what snapshots hold."""

    OPEN = "open"
    CLAIMED = "claimed"
    COMMITTED = "committed"
    REVEALED = "revealed"
    VERIFIED = "verified"
    SETTLED = "settled"
    FAILED = "failed"  # a slot failed and no slot holds a verified result
    CONTESTED = "contested"  # a contest on it is open


class LeaseStatusName(StrEnum):
    """A lease's status as snapshots name it: the chain's ``LeaseStatus``, lower-case."""

    NONE = "none"
    CLAIMED = "claimed"
    COMMITTED = "committed"
    REVEALED = "revealed"
    SETTLED = "settled"
    RECLAIMED = "reclaimed"
    FORFEITED = "forfeited"  # an availability challenge on it went unanswered


class ChallengeStatus(StrEnum):
    """An availability challenge's status as snapshots name it (the chain's
    ``AvailabilityStatus``)."""

    NONE = "none"
    OPEN = "open"
    ANSWERED = "answered"
    FAILED = "failed"  # unanswered: the lease was forfeited


class ContestOutcomeName(StrEnum):
    """A contest's outcome as snapshots name it (the chain's ``ContestOutcome``)."""

    PENDING = "pending"  # not resolved yet
    A_FAR = "aFar"
    B_FAR = "bFar"
    BOTH_FAR = "bothFar"
    NONE_FAR = "noneFar"
    NO_TIE_BREAKER = "noTieBreaker"


class JurorVote(StrEnum):
    """How a juror's revealed root stands to its contest's verdict."""

    MAJORITY = "majority"
    MINORITY = "minority"
    PENDING = "pending"  # not revealed, or no verdict yet
    ABSENT = "absent"  # no juror in the seat, or its lease was reclaimed


class JobPhase(StrEnum):
    """Where a job stands as a whole (:attr:`JobSnapshot.phase`)."""

    COMPLETE = "complete"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RENDERING = "rendering"


SLOT_STATES: tuple[SlotStatus, ...] = (
    SlotStatus.OPEN,
    SlotStatus.CLAIMED,
    SlotStatus.COMMITTED,
    SlotStatus.REVEALED,
    SlotStatus.VERIFIED,
    SlotStatus.SETTLED,
)
TILE_STATES: tuple[TileStatus, ...] = tuple(TileStatus)
_ORDER = {name: i for i, name in enumerate(SLOT_STATES)}
_CREDIT_REASONS = (
    "reward",
    "bounty",
    "compensation",
    "refund",
    "bondReturned",
    "bondAwarded",
    "unstaked",
)
_CONTEST_KINDS = ("disagreement", "dispute")
_CHALLENGE_STATES = {
    AvailabilityStatus.NONE: ChallengeStatus.NONE,
    AvailabilityStatus.OPEN: ChallengeStatus.OPEN,
    AvailabilityStatus.ANSWERED: ChallengeStatus.ANSWERED,
    AvailabilityStatus.FAILED: ChallengeStatus.FAILED,
}
RECENT_EVENTS = 50


def _wei(value: int) -> str:
    """Wei as a decimal string: JSON numbers lose precision past 2**53."""
    return str(int(value))


@dataclass(frozen=True)
class TileLayout:
    """Where a task's tile sits in the frame the client sees (secret for shade/post jobs)."""

    row: int
    col: int
    canary: bool
    frame: int | None = None  # an animation job's frame (0-based); None: a one-frame job


@dataclass(frozen=True)
class SlotState:
    """One replica slot of a tile, or one juror's slot (a lease drawn into a contest's lane)."""

    lane: int
    state: SlotStatus
    lease_id: int | None
    worker: str | None
    juror: bool
    verdict: VerdictStatus | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "lane": self.lane,
            "state": self.state,
            "leaseId": self.lease_id,
            "worker": self.worker,
            "juror": self.juror,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class TileState:
    """One tile (task) of the job."""

    tile: int
    state: TileStatus
    slots: tuple[SlotState, ...]
    layout: TileLayout | None
    contest_id: int | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {
            "tile": self.tile,
            "state": self.state,
            "slots": [s.to_json() for s in self.slots],
            "contestId": self.contest_id,
        }
        if self.layout is not None:
            out.update(row=self.layout.row, col=self.layout.col, canary=self.layout.canary)
            if self.layout.frame is not None:
                out["frame"] = self.layout.frame
        return out


@dataclass(frozen=True)
class LeaseState:
    """One lease of the job, from the chain's view and the client's verdict."""

    lease_id: int
    lane: int
    first_tile: int
    count: int
    worker: str
    status: LeaseStatusName
    commit_deadline: int
    revealed_at: int
    verified_at: int
    chain_verified: bool
    result_cid: str | None
    root: str | None
    verdict: VerdictStatus | None
    forfeited: tuple[int, ...]
    open_contests: int
    paid: int
    juror: bool  # a juror lease (drawn into a contest's lane, paid when the contest resolves)
    challenge: int  # the open availability challenge on it (0: none)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "leaseId": self.lease_id,
            "lane": self.lane,
            "firstTile": self.first_tile,
            "count": self.count,
            "worker": self.worker,
            "status": self.status,
            "commitDeadline": self.commit_deadline,
            "revealedAt": self.revealed_at,
            "verifiedAt": self.verified_at,
            "chainVerified": self.chain_verified,
            "resultCid": self.result_cid,
            "root": self.root,
            "verdict": self.verdict,
            "forfeited": list(self.forfeited),
            "openContests": self.open_contests,
            "paid": _wei(self.paid),
            "juror": self.juror,
            "challenge": self.challenge,
        }


@dataclass(frozen=True)
class JurorSeat:
    """One seat of a contest's jury: the juror's lease, and how its root stands to the verdict."""

    seat: int
    lease_id: int
    worker: str
    status: LeaseStatusName  # the lease's (claimed, committed, revealed, settled, reclaimed)
    root: str | None
    vote: JurorVote

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "seat": self.seat,
            "leaseId": self.lease_id,
            "worker": self.worker,
            "status": self.status,
            "root": self.root,
            "vote": self.vote,
        }


@dataclass(frozen=True)
class ContestState:
    """One contest over a tile of the job, and the jury drawn to decide it."""

    contest_id: int
    kind: str
    tile: int
    lane: int
    outcome: ContestOutcomeName | str  # str: an outcome this client does not know
    lease_a: int
    lease_b: int
    lease_t: int  # the verdict: a juror lease whose root a strict majority revealed (0: none)
    verdict_at: int  # when the verdict became final (0: jurors may still act)
    claim_deadline: int  # the last moment a juror may be drawn
    draw_block: int  # a draw is armed on this block (0: none)
    seats: tuple[JurorSeat, ...]
    challenger: str
    bond: int

    @property
    def open(self) -> bool:
        """Not resolved yet."""
        return self.outcome == ContestOutcomeName.PENDING

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "contestId": self.contest_id,
            "kind": self.kind,
            "tile": self.tile,
            "lane": self.lane,
            "outcome": self.outcome,
            "leaseA": self.lease_a,
            "leaseB": self.lease_b,
            "leaseT": self.lease_t,
            "jury": {
                "seats": [s.to_json() for s in self.seats],
                "verdictLease": self.lease_t,
                "verdictAt": self.verdict_at,
                "drawBlock": self.draw_block,
            },
            "claimDeadline": self.claim_deadline,
            "challenger": self.challenger,
            "bond": _wei(self.bond),
        }


@dataclass(frozen=True)
class ChallengeState:
    """A bonded availability challenge on one tile of a revealed lease of the job."""

    challenge_id: int
    lease_id: int
    tile: int
    deadline: int
    status: ChallengeStatus
    challenger: str
    bond: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "challengeId": self.challenge_id,
            "leaseId": self.lease_id,
            "tile": self.tile,
            "deadline": self.deadline,
            "status": self.status,
            "challenger": self.challenger,
            "bond": _wei(self.bond),
        }


@dataclass(frozen=True)
class JobSnapshot:
    """Everything known about a job at ``now`` (chain time) — see :meth:`to_json`."""

    ref: JobRef
    kernel: str
    client: str
    manifest_cid: str
    tile_count: int
    replication: int
    reward: int
    lease_length: int
    deadline: int
    cancelled_at: int  # 0 unless the client cancelled the job
    priority: int
    now: int
    block: int
    frame: tuple[int, int]
    grid: tuple[int, int]
    tiles: tuple[TileState, ...]
    leases: tuple[LeaseState, ...]
    contests: tuple[ContestState, ...]
    challenges: tuple[ChallengeState, ...]
    payments: dict[str, Any]
    events: tuple[ChainEvent, ...]
    slot_counts: dict[SlotStatus, int]
    tile_counts: dict[TileStatus, int]
    first_claim_at: int | None = None  # when its first replica lease was claimed (chain time)
    quoted_seconds: int | None = None  # the render time its quote expected (None: unknown)
    posted_at: int | None = None  # when it was posted (chain time), from the job directory

    @property
    def expired(self) -> bool:
        """The job's deadline has passed."""
        return self.now > self.deadline

    @property
    def cancelled(self) -> bool:
        """The client cancelled the job (its replica lanes take no new claims)."""
        return self.cancelled_at != 0

    @property
    def closed(self) -> bool:
        """No new replica lease can be claimed: cancelled, or past the deadline."""
        return self.cancelled or self.expired

    @property
    def complete(self) -> bool:
        """Every tile has a settled result, and one the client verified."""
        return all(t.state == TileStatus.SETTLED for t in self.tiles) and self.decryptable

    @property
    def decryptable(self) -> bool:
        """Every tile has a result the client verified (settled or not)."""
        return all(
            any(
                s.state in (SlotStatus.VERIFIED, SlotStatus.SETTLED)
                for s in t.slots
                if s.verdict == VerdictStatus.OK
            )
            for t in self.tiles
        )

    @property
    def phase(self) -> JobPhase:
        """complete | cancelled | expired | rendering."""
        if self.complete:
            return JobPhase.COMPLETE
        if self.cancelled:
            return JobPhase.CANCELLED
        if self.expired:
            return JobPhase.EXPIRED
        return JobPhase.RENDERING

    @property
    def image(self) -> tuple[tuple[int, int], int]:
        """The artist's image, canaries left out: its ``(height, width)`` and how many of the
        job's tiles render it. ``frame`` is what the tasks cover: a volume job renders a margin
        of canary tiles around the image (a 16x16 image is a 32x32 frame of 16 tiles, 4 real)."""
        real = [t.layout for t in self.tiles if t.layout is not None and not t.layout.canary]
        if not real:
            return self.frame, self.tile_count
        rows = max(cell.row for cell in real) - min(cell.row for cell in real) + 1
        cols = max(cell.col for cell in real) - min(cell.col for cell in real) + 1
        grid_rows, grid_cols = max(self.grid[0], 1), max(self.grid[1], 1)
        # The real tiles span a rectangle of the grid; each grid cell is frame / grid pixels.
        height = self.frame[0] * rows // grid_rows
        width = self.frame[1] * cols // grid_cols
        return (height, width), len(real)

    def frame_progress(self) -> list[dict[str, int]]:
        """An animation job's tiles done per frame (:func:`frame_progress`)."""
        return frame_progress(self.tiles)

    def progress(self) -> dict[SlotStatus, int]:
        """Replica slots at or past each state (monotone counts for progress bars)."""
        out = {}
        for state in SLOT_STATES[1:]:
            rank = _ORDER[state]
            out[state] = sum(n for s, n in self.slot_counts.items() if _ORDER.get(s, -1) >= rank)
        return out

    @property
    def pace(self) -> Pace:
        """Tile-replicas verified per minute since the first claim, and the time left until
        every one is (before the first, the quote's estimate; :mod:`blindframe.client.pace`).
        Only a rendering job has a pace: a complete one has 0 s left, an ended one none."""
        if self.phase != JobPhase.RENDERING:
            if self.complete:
                return Pace(None, 0, PaceSource.JOB)
            return Pace(None, None, PaceSource.UNKNOWN)
        return job_pace(
            done=self.progress()[SlotStatus.VERIFIED],
            total=self.tile_count * self.replication,
            first_claim_at=self.first_claim_at,
            now=self.now,
            quoted_seconds=self.quoted_seconds,
            posted_at=self.posted_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON document the dashboard serves and ``--json`` prints (wei as strings)."""
        pace = self.pace
        image_hw, image_tiles = self.image
        return {
            "job": {
                **self.ref.to_json(),
                "key": self.ref.key,
                "kernel": self.kernel,
                "client": self.client,
                "manifestCid": self.manifest_cid,
                "tileCount": self.tile_count,
                "replication": self.replication,
                "rewardPerTileReplica": _wei(self.reward),
                "leaseLength": self.lease_length,
                "deadline": self.deadline,
                "cancelledAt": self.cancelled_at,
                "priority": self.priority,
                "frame": list(self.frame),
                "grid": {"rows": self.grid[0], "cols": self.grid[1]},
                # The artist's image within the frame, and the tiles that render it.
                "imageFrame": list(image_hw),
                "imageTiles": image_tiles,
            },
            "now": self.now,
            "block": self.block,
            "phase": self.phase,
            "complete": self.complete,
            "decryptable": self.decryptable,
            "expired": self.expired,
            "slots": {"total": self.tile_count * self.replication, **self.slot_counts},
            "progress": self.progress(),
            "tileStates": self.tile_counts,
            "tilesPerMinute": (
                round(pace.tiles_per_minute, 3) if pace.tiles_per_minute is not None else None
            ),
            "etaSeconds": pace.eta_seconds,
            "etaSource": pace.source,
            "tiles": [t.to_json() for t in self.tiles],
            # An animation's tiles done per frame (empty for one frame).
            "frames": self.frame_progress(),
            "leases": [lease.to_json() for lease in self.leases],
            "contests": [c.to_json() for c in self.contests],
            "challenges": [c.to_json() for c in self.challenges],
            "payments": self.payments,
            "events": [e.to_dict() for e in self.events],
        }


def frame_progress(tiles: Sequence[TileState]) -> list[dict[str, int]]:
    """An animation job's progress per frame: ``{"frame", "tiles", "done"}``, ``done`` its
    tiles with a verified result (settled or not), canary tiles counted in both; empty for a
    one-frame job."""
    frames: dict[int, list[int]] = {}
    for tile in tiles:
        if tile.layout is None or tile.layout.frame is None:
            continue
        counts = frames.setdefault(tile.layout.frame, [0, 0])
        counts[0] += 1
        counts[1] += tile.state in (TileStatus.VERIFIED, TileStatus.SETTLED)
    return [
        {"frame": frame, "tiles": total, "done": done}
        for frame, (total, done) in sorted(frames.items())
    ]


# Fields of ``JobSnapshot.to_json()`` that change with the clock alone: left out when deciding
# whether a job changed (`client watch --json`, the dashboard's event stream).
CLOCK_FIELDS = frozenset({"now", "block", "tilesPerMinute", "etaSeconds", "etaSource"})


def _arg_int(event: ChainEvent, name: str) -> int | None:
    value = event.args.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def job_events(
    events: Sequence[ChainEvent], job_id: int
) -> tuple[list[ChainEvent], set[int], set[int]]:
    """The events of one job (with those of its leases and contests), its lease and contest ids."""
    leases, contests, _ = job_ids(events, job_id)
    mine = [
        e
        for e in events
        if _arg_int(e, "jobId") == job_id
        or (e.name != "TilesClaimed" and _arg_int(e, "leaseId") in leases)
        or _arg_int(e, "contestId") in contests
    ]
    return mine, leases, contests


def job_ids(events: Sequence[ChainEvent], job_id: int) -> tuple[set[int], set[int], set[int]]:
    """The ids of one job's leases (juror leases included), contests and availability
    challenges, from its events."""
    leases: set[int] = set()
    contests: set[int] = set()
    challenges: set[int] = set()
    for event in events:
        if _arg_int(event, "jobId") != job_id:
            continue
        if event.name == "TilesClaimed" and (lease := _arg_int(event, "leaseId")) is not None:
            leases.add(lease)
        if (
            event.name in ("DisagreementProven", "Disputed", "TieBreakerOpened", "JurorDrawn")
            and (contest := _arg_int(event, "contestId")) is not None
        ):
            contests.add(contest)
        if (
            event.name == "AvailabilityChallenged"
            and (challenge := _arg_int(event, "challengeId")) is not None
        ):
            challenges.add(challenge)
    return leases, contests, challenges


def build_snapshot(
    *,
    ref: JobRef,
    job: JobView,
    manifest_cid: str,
    frame: tuple[int, int],
    grid: tuple[int, int],
    layout: Mapping[int, TileLayout],
    events: Sequence[ChainEvent],
    leases: Mapping[int, LeaseView],
    verified_at: Mapping[int, int],
    contests: Mapping[int, ContestView],
    verdicts: Verdicts,
    now: int,
    block: int,
    client_pending: int,
    refundable: int,
    jurors: Mapping[int, Sequence[int]] | None = None,
    rulings: Mapping[int, tuple[int, int]] | None = None,
    challenges: Mapping[int, AvailabilityChallengeView] | None = None,
    quoted_seconds: int | None = None,
    posted_at: int | None = None,
) -> JobSnapshot:
    """Assemble the snapshot of job ``ref`` from what the client read (see the module doc).
    ``jurors``: each contest's juror leases by seat; ``rulings``: each contest's live verdict
    (lease, fixed at); ``challenges``: the job's availability challenges; ``quoted_seconds``
    and ``posted_at``: the render time the job's quote expected and when it was posted."""
    jurors = jurors or {}
    rulings = rulings or {}
    revealed, paid = _revealed_and_paid(events)
    contest_states = tuple(
        _contest_state(cid, view, jurors.get(cid, ()), rulings.get(cid), leases)
        for cid, view in sorted(contests.items())
    )
    open_contest = {c.tile: c.contest_id for c in contest_states if c.open}
    any_contest = {c.tile: c.contest_id for c in contest_states}
    challenge_states = _challenge_states(challenges or {})
    open_challenge = {
        c.lease_id: c.challenge_id for c in challenge_states if c.status == ChallengeStatus.OPEN
    }
    lease_states = _lease_states(
        job, leases, verified_at, verdicts, revealed, paid, open_challenge, now
    )
    tiles, slot_counts = _tile_states(job, leases, verdicts, layout, open_contest, any_contest)
    tile_counts = dict.fromkeys(TILE_STATES, 0)
    for tile_state in tiles:
        tile_counts[tile_state.state] += 1

    return JobSnapshot(
        ref=ref,
        kernel=job.kernel,
        client=job.client,
        manifest_cid=manifest_cid,
        tile_count=job.tileCount,
        replication=job.replication,
        reward=job.rewardPerTileReplica,
        lease_length=job.leaseLength,
        deadline=job.deadline,
        cancelled_at=job.cancelledAt,
        priority=job.priority,
        now=now,
        block=block,
        frame=frame,
        grid=grid,
        tiles=tiles,
        leases=lease_states,
        contests=contest_states,
        challenges=challenge_states,
        payments=_payments(
            job, events, client_pending, refundable, sum(c.bond for c in challenge_states)
        ),
        events=tuple(events[-RECENT_EVENTS:]),
        slot_counts=slot_counts,
        tile_counts=tile_counts,
        first_claim_at=_first_claim(job, lease_states),
        quoted_seconds=quoted_seconds,
        posted_at=posted_at,
    )


def _first_claim(job: JobView, leases: Sequence[LeaseState]) -> int | None:
    """When the job's first replica lease was claimed: a lease's commit deadline is its claim
    time plus the job's lease length."""
    claimed = [lease.commit_deadline - job.leaseLength for lease in leases if not lease.juror]
    return min(claimed) if claimed else None


def _revealed_and_paid(
    events: Sequence[ChainEvent],
) -> tuple[dict[int, tuple[str | None, str | None]], dict[int, int]]:
    """Each revealed lease's (result CID, root), and what each lease was paid, from events."""
    revealed: dict[int, tuple[str | None, str | None]] = {}
    paid: dict[int, int] = {}
    for event in events:
        lease_id = _arg_int(event, "leaseId")
        if lease_id is None:
            continue
        if event.name == "Revealed":
            root = event.args.get("root")
            revealed[lease_id] = (event_cid(event.args.get("resultCid")), str(root))
        elif event.name in ("LeaseSettled", "LeaseFinalized", "TieBreakerSettled"):
            paid[lease_id] = paid.get(lease_id, 0) + int(event.args.get("amount", 0))
    return revealed, paid


def _challenge_states(
    challenges: Mapping[int, AvailabilityChallengeView],
) -> tuple[ChallengeState, ...]:
    """The job's availability challenges, by id."""
    return tuple(
        ChallengeState(
            challenge_id=cid,
            lease_id=view.leaseId,
            tile=view.tile,
            deadline=view.deadline,
            status=_CHALLENGE_STATES[AvailabilityStatus(view.status)],
            challenger=view.challenger,
            bond=view.bond,
        )
        for cid, view in sorted(challenges.items())
    )


def _lease_states(
    job: JobView,
    leases: Mapping[int, LeaseView],
    verified_at: Mapping[int, int],
    verdicts: Verdicts,
    revealed: Mapping[int, tuple[str | None, str | None]],
    paid: Mapping[int, int],
    open_challenge: Mapping[int, int],
    now: int,
) -> tuple[LeaseState, ...]:
    """Every lease of the job, by id, with the client's verdict and what the chain says."""
    lease_states: list[LeaseState] = []
    for lease_id, view in sorted(leases.items()):
        status = view.state
        forfeited = tuple(view.firstTile + i for i in range(view.count) if view.forfeited >> i & 1)
        when = verified_at.get(lease_id, 0)
        cid, root = revealed.get(lease_id, (None, None))
        verdict = verdicts.leases.get(lease_id)
        lease_states.append(
            LeaseState(
                lease_id=lease_id,
                lane=view.lane,
                first_tile=view.firstTile,
                count=view.count,
                worker=view.worker,
                status=LeaseStatusName(status.name.lower()),
                commit_deadline=view.commitDeadline,
                revealed_at=view.revealedAt,
                verified_at=when,
                chain_verified=status in (LeaseStatus.REVEALED, LeaseStatus.SETTLED)
                and (status == LeaseStatus.SETTLED or (when != 0 and now > when)),
                result_cid=cid,
                root=root,
                verdict=verdict.status if verdict is not None else None,
                forfeited=forfeited,
                open_contests=view.openContests,
                paid=paid.get(lease_id, 0),
                juror=view.lane >= job.replication,
                challenge=open_challenge.get(lease_id, 0),
            )
        )
    return tuple(lease_states)


def _tile_states(
    job: JobView,
    leases: Mapping[int, LeaseView],
    verdicts: Verdicts,
    layout: Mapping[int, TileLayout],
    open_contest: Mapping[int, int],
    any_contest: Mapping[int, int],
) -> tuple[tuple[TileState, ...], dict[SlotStatus, int]]:
    """Every tile with its replica and juror slots, and how many replica slots are in each
    state."""
    # The live lease of each replica slot (lane, tile): the newest one that was not reclaimed.
    # Jurors share their contest's lane: each juror lease is a slot of its own.
    slot_lease: dict[tuple[int, int], LeaseView] = {}
    slot_id: dict[tuple[int, int], int] = {}
    juror_slots: dict[int, list[tuple[int, LeaseView]]] = {}
    for lease_id, view in sorted(leases.items()):
        if view.state in (LeaseStatus.RECLAIMED, LeaseStatus.NONE):
            continue
        if view.lane >= job.replication:
            for tile in view.tiles:
                juror_slots.setdefault(tile, []).append((lease_id, view))
            continue
        for tile in view.tiles:
            slot_lease[(view.lane, tile)] = view
            slot_id[(view.lane, tile)] = lease_id

    tiles: list[TileState] = []
    slot_counts = dict.fromkeys((*SLOT_STATES, SlotStatus.FAILED), 0)
    for tile in range(job.tileCount):
        slots = []
        for lane in range(job.replication):
            view_or_none = slot_lease.get((lane, tile))
            if view_or_none is None:
                slots.append(SlotState(lane, SlotStatus.OPEN, None, None, False, None))
                continue
            lease_id = slot_id[(lane, tile)]
            tile_verdict = verdicts.tile_verdict(lease_id, tile)
            slots.append(
                SlotState(
                    lane,
                    _slot_state(view_or_none, tile, tile_verdict),
                    lease_id,
                    view_or_none.worker,
                    False,
                    tile_verdict,
                )
            )
            slot_counts[slots[-1].state] += 1
        for lease_id, view in juror_slots.get(tile, []):
            tile_verdict = verdicts.tile_verdict(lease_id, tile)
            slots.append(
                SlotState(
                    view.lane,
                    _slot_state(view, tile, tile_verdict),
                    lease_id,
                    view.worker,
                    True,
                    tile_verdict,
                )
            )
        tiles.append(
            TileState(
                tile=tile,
                state=_tile_state(slots, tile in open_contest),
                slots=tuple(slots),
                layout=layout.get(tile),
                contest_id=open_contest.get(tile, any_contest.get(tile)),
            )
        )
    return tuple(tiles), slot_counts


def _contest_state(
    contest_id: int,
    view: ContestView,
    seats: Sequence[int],
    ruling: tuple[int, int] | None,
    leases: Mapping[int, LeaseView],
) -> ContestState:
    """A contest with its jury: each seat's lease, and whether its root is the verdict's."""
    verdict_lease, verdict_at = ruling if ruling is not None else (view.leaseT, view.verdictAt)
    verdict_view = leases.get(verdict_lease) if verdict_lease else None
    verdict_root = bytes(verdict_view.digest) if verdict_view is not None else None
    jury = []
    for seat, lease_id in enumerate(seats):
        juror = leases.get(int(lease_id)) if lease_id else None
        if juror is None:
            jury.append(
                JurorSeat(seat, int(lease_id), "", LeaseStatusName.NONE, None, JurorVote.ABSENT)
            )
            continue
        shown = juror.state in (LeaseStatus.REVEALED, LeaseStatus.SETTLED)
        vote = JurorVote.PENDING
        if juror.state == LeaseStatus.RECLAIMED:
            vote = JurorVote.ABSENT
        elif shown and verdict_at and verdict_root is not None:
            vote = JurorVote.MAJORITY if bytes(juror.digest) == verdict_root else JurorVote.MINORITY
        elif shown and verdict_at:
            vote = JurorVote.MINORITY  # a final verdict without a majority: nobody's root decided
        jury.append(
            JurorSeat(
                seat,
                int(lease_id),
                juror.worker,
                LeaseStatusName(juror.state.name.lower()),
                "0x" + bytes(juror.digest).hex() if shown else None,
                vote,
            )
        )
    return ContestState(
        contest_id=contest_id,
        kind=_CONTEST_KINDS[view.kind] if view.kind < len(_CONTEST_KINDS) else str(view.kind),
        tile=view.tile,
        lane=view.lane,
        outcome=_outcome_name(view.outcome),
        lease_a=view.leaseA,
        lease_b=view.leaseB,
        lease_t=verdict_lease,
        verdict_at=verdict_at,
        claim_deadline=view.claimDeadline,
        draw_block=view.drawBlock,
        seats=tuple(jury),
        challenger=view.challenger,
        bond=view.bond,
    )


_OUTCOMES = {
    ContestOutcome.PENDING: ContestOutcomeName.PENDING,
    ContestOutcome.A_FAR: ContestOutcomeName.A_FAR,
    ContestOutcome.B_FAR: ContestOutcomeName.B_FAR,
    ContestOutcome.BOTH_FAR: ContestOutcomeName.BOTH_FAR,
    ContestOutcome.NONE_FAR: ContestOutcomeName.NONE_FAR,
    ContestOutcome.NO_TIE_BREAKER: ContestOutcomeName.NO_TIE_BREAKER,
}


def _outcome_name(outcome: int) -> ContestOutcomeName | str:
    try:
        return _OUTCOMES[ContestOutcome(outcome)]
    except ValueError:
        return str(outcome)


def _slot_state(view: LeaseView, tile: int, verdict: VerdictStatus | None) -> SlotStatus:
    status = view.state
    if view.forfeited >> (tile - view.firstTile) & 1 or status == LeaseStatus.FORFEITED:
        return SlotStatus.FAILED
    if status == LeaseStatus.CLAIMED:
        return SlotStatus.CLAIMED
    if status == LeaseStatus.COMMITTED:
        return SlotStatus.COMMITTED
    if verdict in (VerdictStatus.WRONG, VerdictStatus.TAMPERED):
        return SlotStatus.FAILED
    if status == LeaseStatus.SETTLED:
        return SlotStatus.SETTLED
    if status == LeaseStatus.REVEALED:
        return SlotStatus.VERIFIED if verdict == VerdictStatus.OK else SlotStatus.REVEALED
    return SlotStatus.OPEN


def _tile_state(slots: Sequence[SlotState], contested: bool) -> TileStatus:
    if contested:
        return TileStatus.CONTESTED
    good = [s for s in slots if s.state != SlotStatus.FAILED]
    has_result = any(s.state in (SlotStatus.VERIFIED, SlotStatus.SETTLED) for s in good)
    if len(good) < len(slots) and not has_result:
        return TileStatus.FAILED
    # Replica lanes must all be done; a juror's result that replaced a failed slot counts for
    # it, and jurors still at work hold nothing back once a slot has a result.
    if has_result:
        good = [
            s for s in good if not s.juror or s.state in (SlotStatus.VERIFIED, SlotStatus.SETTLED)
        ]
    candidates = [s for s in good if not (s.juror and s.state == SlotStatus.OPEN)]
    if not candidates:
        return TileStatus.FAILED
    return TileStatus(min((s.state for s in candidates), key=lambda s: _ORDER[s]))


def _payments(
    job: JobView,
    events: Sequence[ChainEvent],
    client_pending: int,
    refundable: int,
    challenge_bonds: int = 0,
) -> dict[str, Any]:
    credits = []
    earnings: dict[str, int] = {}
    totals = dict.fromkeys(_CREDIT_REASONS, 0)
    bonds = 0
    for event in events:
        if event.name == "Credited":
            reason_index = _arg_int(event, "reason") or 0
            reason = (
                _CREDIT_REASONS[reason_index]
                if reason_index < len(_CREDIT_REASONS)
                else str(reason_index)
            )
            amount = int(event.args.get("amount", 0))
            account = str(event.args.get("account"))
            totals[reason] = totals.get(reason, 0) + amount
            credits.append({"account": account, "amount": _wei(amount), "reason": reason})
            if account != job.client:
                earnings[account] = earnings.get(account, 0) + amount
        elif event.name == "Disputed":
            bonds += int(event.args.get("bond", 0))
    posted = job.tileCount * job.replication * job.rewardPerTileReplica
    return {
        "escrowPosted": _wei(posted),
        "escrowLeft": _wei(job.escrow),
        "refundable": _wei(refundable),
        "paidToWorkers": _wei(totals["reward"]),
        "refunded": _wei(totals["refund"]),
        "compensation": _wei(totals["compensation"]),
        "bondsPosted": _wei(bonds),
        "challengeBondsPosted": _wei(challenge_bonds),
        "bondsReturned": _wei(totals["bondReturned"]),
        "clientPending": _wei(client_pending),
        "earnings": {a: _wei(v) for a, v in sorted(earnings.items())},
        "credits": credits,
    }
