"""The client's pure parts: amounts and durations, job keys, option checks, and how a snapshot
turns leases, verdicts and contests into tile states."""

from __future__ import annotations

from dataclasses import fields

import pytest

from blindframe.client.errors import JobNotFoundError, JobOptionsError
from blindframe.client.jobdir import JobRef, LeaseVerdict, Verdicts
from blindframe.client.options import JobOptions
from blindframe.client.snapshot import TileLayout, build_snapshot
from blindframe.client.units import format_duration, format_eth, parse_duration, parse_eth
from blindframe.coordinator.events import ChainEvent
from blindframe.coordinator.market import (
    NO_FAULT_LIMIT,
    AvailabilityChallengeView,
    AvailabilityStatus,
    ContestView,
    JobView,
    LeaseStatus,
    LeaseView,
)

MARKET = "0x" + "ab" * 20
CLIENT = "0x" + "11" * 20
NODES = ["0x" + f"{n:02x}" * 20 for n in (0x21, 0x22, 0x23)]


@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("0.001", 10**15),
        ("1", 10**18),
        ("1e-18", 1),
        ("0.000000000000000001", 1),
        (" 2.5 ", 25 * 10**17),
    ],
)
def test_eth_amounts(text: str, wei: int) -> None:
    assert parse_eth(text) == wei


@pytest.mark.parametrize(
    ("text", "message"),
    [("-1", "positive"), ("abc", "amount of ETH"), ("1e-19", "18 decimals"), ("nan", "positive")],
)
def test_bad_eth_amounts(text: str, message: str) -> None:
    with pytest.raises(JobOptionsError, match=message):
        parse_eth(text, "--reward")


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "10m", "2h", "1d", 45)] == [
        90,
        90,
        600,
        7200,
        86400,
        45,
    ]
    for bad in ("0", "5x", "-3m", "", "1.5h"):
        with pytest.raises(JobOptionsError):
            parse_duration(bad)
    assert format_duration(3725) == "1h 2m"
    assert format_duration(42) == "42s"
    assert format_eth(10**14) == "0.0001 ETH"
    assert format_eth(0) == "0 ETH"


def test_job_keys() -> None:
    ref = JobRef(31337, MARKET, 7)
    assert ref.key == f"31337-{MARKET}-7"
    assert JobRef.parse(ref.key) == ref
    assert ref.market != MARKET
    assert ref.market.lower() == MARKET  # checksummed, the key in lower case
    for bad in ("7", "31337-0x12-7", f"x-{MARKET}-7"):
        with pytest.raises(JobNotFoundError):
            JobRef.parse(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (JobOptions(replication=9), "replication must be 1..8"),
        (JobOptions(reward_wei=0), "more than 0"),
        (JobOptions(priority=256), "priority must be 0..255"),
        (JobOptions(lease_length=600, deadline=60), "leaves no room"),
        (JobOptions(canaries=5000), "canaries must be"),
        (JobOptions(frame=(0, 8)), "1..4096 pixels"),
        (JobOptions(kernel="volume@7"), "unknown kernel"),
        (JobOptions(max_faults=NO_FAULT_LIMIT), "--max-faults must be 0..65534"),
        (JobOptions(max_faults=-1), "--max-faults must be"),
        (JobOptions(min_completed=-1), "--min-completed must be"),
        (JobOptions(min_completed=1 << 32), "--min-completed must be"),
    ],
)
def test_job_options_are_checked(options: JobOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options.check()


def _job(replication: int = 2, tiles: int = 3, escrow: int = 0) -> JobView:
    return JobView(
        client=CLIENT,
        deadline=1_000,
        leaseLength=100,
        replication=replication,
        leafDepth=16,
        priority=0,
        tileCount=tiles,
        rewardPerTileReplica=5,
        committedSlots=0,
        reservedSlots=0,
        contestCount=0,
        cancelledAt=0,
        escrow=escrow,
        minCompleted=0,
        maxFaults=NO_FAULT_LIMIT,
        manifestHash=b"",
        kernelId=b"volume@1".ljust(32, b"\0"),
    )


def _lease(
    lane: int,
    status: LeaseStatus,
    first: int = 0,
    count: int = 3,
    forfeited: int = 0,
    node: int = 0,
    digest: bytes = b"\0" * 32,
) -> LeaseView:
    return LeaseView(
        worker=NODES[node],
        commitDeadline=500,
        revealedAt=300 if status >= LeaseStatus.REVEALED else 0,
        status=int(status),
        jobId=1,
        lane=lane,
        firstTile=first,
        count=count,
        forfeitedCount=bin(forfeited).count("1"),
        openContests=0,
        digest=digest,
        forfeited=forfeited,
    )


def _contest(tile: int, outcome: int, lease_t: int = 0, verdict_at: int = 0) -> ContestView:
    # Every jury counter not named here is 0 (no draw armed).
    values: dict[str, object] = {f.name: 0 for f in fields(ContestView)}
    values.update(
        jobId=1,
        tile=tile,
        lane=2,
        claimDeadline=900,
        kind=1,
        outcome=outcome,
        leaseA=1,
        leaseT=lease_t,
        challenger=CLIENT,
        bond=7,
        proverA="0x" + "00" * 20,
        proverB="0x" + "00" * 20,
        verdictAt=verdict_at,
    )
    return ContestView(**values)  # type: ignore[arg-type]


def _verdict(lease: int, lane: int, tiles: dict[int, str], first: int = 0) -> LeaseVerdict:
    status = "ok" if set(tiles.values()) == {"ok"} else "wrong"
    return LeaseVerdict(lease, lane, first, len(tiles), NODES[0], "Qm", "0x", status, tiles)


def _credited(account: str, amount: int, reason: int) -> ChainEvent:
    args = {"account": account, "jobId": 1, "amount": amount, "reason": reason}
    return ChainEvent(1, "Credited", args, 9, "0x", "0x", 0)


def _snapshot(**kwargs: object) -> object:
    base: dict[str, object] = {
        "ref": JobRef(31337, MARKET, 1),
        "job": _job(),
        "manifest_cid": "Qm",
        "frame": (16, 24),
        "grid": (2, 3),
        "layout": {},
        "events": [],
        "leases": {},
        "verified_at": {},
        "contests": {},
        "verdicts": Verdicts(),
        "now": 400,
        "block": 10,
        "client_pending": 0,
        "refundable": 0,
    }
    base.update(kwargs)
    return build_snapshot(**base)  # type: ignore[arg-type]


def test_tile_states_while_replicas_work() -> None:
    verdicts = Verdicts(leases={1: _verdict(1, 0, {0: "ok", 1: "wrong", 2: "ok"})})
    snap = _snapshot(
        leases={1: _lease(0, LeaseStatus.REVEALED), 2: _lease(1, LeaseStatus.COMMITTED, node=1)},
        verified_at={1: 380},
        verdicts=verdicts,
        contests={1: _contest(1, outcome=0)},
    )
    # The least advanced replica decides; a tile under an open contest is contested.
    assert [t.state for t in snap.tiles] == ["committed", "contested", "committed"]  # type: ignore[attr-defined]
    assert snap.slot_counts == {  # type: ignore[attr-defined]
        "open": 0,
        "claimed": 0,
        "committed": 3,
        "revealed": 0,
        "verified": 2,
        "settled": 0,
        "failed": 1,
    }
    assert snap.progress()["committed"] == 5  # type: ignore[attr-defined]
    (lease_1, _lease_2) = snap.leases  # type: ignore[attr-defined]
    assert lease_1.chain_verified is True  # now 400 > verifiedAt 380
    assert not snap.complete  # type: ignore[attr-defined]


def test_a_forfeited_tile_replaced_by_its_jury_is_delivered() -> None:
    good, bad = b"\x01" * 32, b"\x02" * 32
    verdicts = Verdicts(
        leases={
            1: _verdict(1, 0, {0: "ok", 1: "wrong", 2: "ok"}),
            2: _verdict(2, 1, {0: "ok", 1: "ok", 2: "ok"}),
            3: _verdict(3, 2, {1: "ok"}, first=1),
            4: _verdict(4, 2, {1: "wrong"}, first=1),
            5: _verdict(5, 2, {1: "ok"}, first=1),
        }
    )
    snap = _snapshot(
        leases={
            1: _lease(0, LeaseStatus.SETTLED, forfeited=0b010),
            2: _lease(1, LeaseStatus.SETTLED, node=1),
            # The jury: three jurors drawn into lane 2, two of them agreeing.
            3: _lease(2, LeaseStatus.SETTLED, first=1, count=1, node=2, digest=good),
            4: _lease(2, LeaseStatus.SETTLED, first=1, count=1, node=0, digest=bad),
            5: _lease(2, LeaseStatus.SETTLED, first=1, count=1, node=1, digest=good),
        },
        verdicts=verdicts,
        contests={1: _contest(1, outcome=1, lease_t=3, verdict_at=350)},
        jurors={1: [3, 4, 5]},
        rulings={1: (3, 350)},
        events=[
            _credited(NODES[0], 10, 0),
            _credited(NODES[1], 15, 0),
            _credited(NODES[2], 5, 0),
            _credited(CLIENT, 7, 4),
            _credited(CLIENT, 2, 2),
        ],
    )
    tiles = snap.tiles  # type: ignore[attr-defined]
    assert [t.state for t in tiles] == ["settled"] * 3
    assert [(s.state, s.juror, s.lease_id) for s in tiles[1].slots] == [
        ("failed", False, 1),
        ("settled", False, 2),
        ("settled", True, 3),
        ("failed", True, 4),
        ("settled", True, 5),
    ]
    assert snap.complete  # type: ignore[attr-defined]
    (contest,) = snap.to_json()["contests"]  # type: ignore[attr-defined]
    assert contest["leaseT"] == 3
    assert contest["jury"]["verdictLease"] == 3
    assert contest["jury"]["verdictAt"] == 350
    assert [(s["seat"], s["leaseId"], s["vote"]) for s in contest["jury"]["seats"]] == [
        (0, 3, "majority"),
        (1, 4, "minority"),
        (2, 5, "majority"),
    ]
    assert snap.leases[0].forfeited == (1,)  # type: ignore[attr-defined]
    payments = snap.payments  # type: ignore[attr-defined]
    assert payments["paidToWorkers"] == "30"
    assert payments["bondsReturned"] == "7"
    assert payments["compensation"] == "2"
    assert payments["earnings"] == {NODES[0]: "10", NODES[1]: "15", NODES[2]: "5"}


def test_a_failed_tile_without_any_good_replica_is_failed() -> None:
    verdicts = Verdicts(leases={1: _verdict(1, 0, {0: "ok", 1: "wrong", 2: "ok"})})
    verdicts.leases[1].status = "tampered"
    snap = _snapshot(
        job=_job(replication=1),
        leases={1: _lease(0, LeaseStatus.REVEALED)},
        verified_at={1: 380},
        verdicts=verdicts,
    )
    assert [t.state for t in snap.tiles] == ["failed"] * 3  # type: ignore[attr-defined]
    assert snap.to_json()["tileStates"]["failed"] == 3  # type: ignore[attr-defined]


def test_an_unanswered_availability_challenge_fails_its_slot() -> None:
    # Lease 2 revealed a root whose bytes never came; the client challenged it, nobody answered,
    # and the lease was forfeited: its slots fail, the other replica's verified result stands.
    verdicts = Verdicts(
        leases={
            1: _verdict(1, 0, {0: "ok", 1: "ok", 2: "ok"}),
            2: LeaseVerdict(2, 1, 0, 3, NODES[1], "Qm", "0x", "unavailable", undelivered=True),
        }
    )
    challenge = AvailabilityChallengeView(
        leaseId=2,
        tile=1,
        deadline=390,
        status=int(AvailabilityStatus.FAILED),
        challenger=CLIENT,
        bond=7,
        leavesHash=b"\0" * 32,
    )
    snap = _snapshot(
        leases={1: _lease(0, LeaseStatus.SETTLED), 2: _lease(1, LeaseStatus.FORFEITED, node=1)},
        verdicts=verdicts,
        challenges={1: challenge},
    )
    tiles = snap.tiles  # type: ignore[attr-defined]
    assert [t.state for t in tiles] == ["settled"] * 3
    assert [s.state for s in tiles[0].slots] == ["settled", "failed"]
    assert snap.complete  # type: ignore[attr-defined]
    assert snap.leases[1].status == "forfeited"  # type: ignore[attr-defined]
    (shown,) = snap.to_json()["challenges"]  # type: ignore[attr-defined]
    assert shown == {
        "challengeId": 1,
        "leaseId": 2,
        "tile": 1,
        "deadline": 390,
        "status": "failed",
        "challenger": CLIENT,
        "bond": "7",
    }
    assert snap.payments["challengeBondsPosted"] == "7"  # type: ignore[attr-defined]
    # Round trip of the verdict file keeps what was not delivered.
    again = Verdicts.from_json(verdicts.to_json())
    assert again.leases[2].undelivered is True
    assert again.leases[1].undelivered is False


def test_status_shows_the_jury_where_it_showed_the_tie_breaker() -> None:
    from blindframe.client._cli import _jury_text

    good, bad = b"\x01" * 32, b"\x02" * 32
    leases = {
        1: _lease(0, LeaseStatus.REVEALED),
        3: _lease(2, LeaseStatus.REVEALED, first=1, count=1, node=2, digest=good),
        4: _lease(2, LeaseStatus.REVEALED, first=1, count=1, node=0, digest=bad),
        5: _lease(2, LeaseStatus.COMMITTED, first=1, count=1, node=1),
    }
    pending = _snapshot(
        leases=leases,
        contests={1: _contest(1, outcome=0)},
        jurors={1: [3, 4, 5]},
        rulings={1: (0, 0)},
    )
    (contest,) = pending.contests  # type: ignore[attr-defined]
    assert _jury_text(contest) == (
        f"jury [seat 0 lease 3 {NODES[2]} revealed, seat 1 lease 4 {NODES[0]} revealed, "
        f"seat 2 lease 5 {NODES[1]} committed], no verdict yet"
    )
    decided = _snapshot(
        leases={
            **leases,
            5: _lease(2, LeaseStatus.REVEALED, first=1, count=1, node=1, digest=good),
        },
        contests={1: _contest(1, outcome=0, lease_t=3, verdict_at=350)},
        jurors={1: [3, 4, 5]},
        rulings={1: (3, 350)},
    )
    (contest,) = decided.contests  # type: ignore[attr-defined]
    assert _jury_text(contest).endswith(
        f"seat 2 lease 5 {NODES[1]} revealed (majority)], verdict lease 3"
    )
    assert "(minority)" in _jury_text(contest)
    undrawn = _snapshot(contests={1: _contest(1, outcome=0)}, jurors={1: []})
    assert _jury_text(undrawn.contests[0]) == "jury not drawn yet"  # type: ignore[attr-defined]


def test_the_image_leaves_the_canary_margin_out() -> None:
    # A 16x16 volume image with one canary tile around it: a 32x32 frame of 16 tiles, 4 real.
    layout = {
        row * 4 + col: TileLayout(row, col, not (1 <= row <= 2 and 1 <= col <= 2))
        for row in range(4)
        for col in range(4)
    }
    snap = _snapshot(job=_job(tiles=16), frame=(32, 32), grid=(4, 4), layout=layout)
    job = snap.to_json()["job"]  # type: ignore[attr-defined]
    assert (job["frame"], job["tileCount"]) == ([32, 32], 16)
    assert (job["imageFrame"], job["imageTiles"]) == ([16, 16], 4)
    # A frame job's canaries are extra tasks on the image's own cells: the image is the frame.
    cells = {t: TileLayout(t // 3, t % 3, False) for t in range(6)}
    snap = _snapshot(job=_job(tiles=7), layout={**cells, 6: TileLayout(1, 2, True)})
    job = snap.to_json()["job"]  # type: ignore[attr-defined]
    assert (job["imageFrame"], job["imageTiles"]) == ([16, 24], 6)
