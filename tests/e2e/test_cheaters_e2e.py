"""Cheaters on the real stack (Anvil, IPFS, Concrete, render nodes as processes), each caught by
the artist's client and the market, every payout checked to the wei:

- a node that reveals a root and withholds its bytes: the client challenges its availability,
  nobody answers, the lease is forfeited and its node slashed; the honest replica is paid, the
  withheld slot's escrow comes back by refund, and the copy gate keeps the slot from being
  refilled with a copy of the revealed tile;
- a client that disputes a correct tile while it holds a second staked address: that address
  cannot claim the tie-breaker lane, a drawn jury decides, the client loses its bond;
- a juror that copies a contested side instead of computing: the two honest jurors decide, the
  copier is slashed (LostJury).

The first two share one stack (a jury of one, as the local stack deploys); the third has a
jury of three and five nodes (two sides, three jurors). Frames are one 8x8 tile."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.e2e import (
    bounty,
    check_frame,
    contract_books,
    finish_render,
    fraud_slash,
    job_leases,
    skip_verdict_window_once_proven_far,
    stack_market,
    start_render,
    warp_past,
    withdraw,
)
from support.render_stack import RenderStack, start_render_stack
from support.wei import gas_paid

from blindframe.client.artist import JobOptions
from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import (
    AvailabilityStatus,
    ContestOutcome,
    LeaseStatus,
    LeaseView,
    Market,
)

pytestmark = pytest.mark.slow  # minutes each: `-m "not slow"` leaves them out while iterating

REWARD = 10**15  # wei per tile-replica (0.001 ETH)
ETH = 10**18
# Jurors are drawn by stake: the nodes meant to sit on a jury stake far more than anyone else,
# so that (with the contract's bounded tries per seat) nobody else is drawn in practice.
JUROR_STAKE = 1000 * ETH
# Windows: replicas are compared (and verdicts proven far) within the challenge window; an
# availability challenge must be answered within the reveal window.
WINDOWS = {"challengeWindow": 30, "acceptanceWindow": 120, "revealWindow": 30}
# Slash reasons (IStaking.SlashReason).
FAR_FROM_VERDICT, LOST_JURY, UNAVAILABLE = 2, 4, 5
ONE_TILE = ("--size", "8x8", "--canaries", "0")


def _wait(what: str, until: Callable[[], Any], timeout: float, stack: RenderStack) -> Any:
    """Poll ``until()`` every half second until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = until()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{stack.worker_logs()}")
        time.sleep(0.5)


def _logs(market: Market, name: str, first_block: int) -> list[dict[str, Any]]:
    return [
        dict(e["args"]) for e in market.contract.events[name]().get_logs(from_block=first_block)
    ]


def _slashes(market: Market, first_block: int) -> list[tuple[str, int, int, int]]:
    """(worker, lease, amount, reason) of every Slashed event since ``first_block``."""
    return [
        (e["worker"], int(e["leaseId"]), int(e["amount"]), int(e["reason"]))
        for e in _logs(market, "Slashed", first_block)
    ]


def _books(stack: RenderStack, market: Market) -> int:
    """What the market owes everyone on the stack: every job's escrow, every account's stake,
    unbonding stake and pending balance."""
    artist = stack.artist().address
    jobs = list(range(1, market.counts()[0] + 1))
    return contract_books(market, [artist, *stack.accounts.values()], jobs)


def _cli(stack: RenderStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blindframe", "--json", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _node(stack: RenderStack, name: str, **kwargs: Any) -> Any:
    """The stack's node ``name``, started (and staked) if it is not running yet."""
    for worker in stack.workers:
        if worker.name == name and worker.process.poll() is None:
            return worker
    return stack.add_node(name, **kwargs)


# -- one stack: a jury of one ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cheat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderStack]:
    stack = start_render_stack(
        tmp_path_factory.mktemp("e2e-cheat"),
        nodes=0,
        ipfs_nodes=("honest-1", "withhold", "honest-2"),
        windows=WINDOWS,
    )
    try:
        yield stack
    finally:
        stack.close()


def test_a_withheld_result_is_challenged_forfeited_and_its_slot_refunded(
    cheat_stack: RenderStack, tmp_path: Path
) -> None:
    stack = cheat_stack
    w3, market = stack_market(stack)
    params = market.params
    bond = int(params["disputeBond"])
    honest = _node(stack, "honest-1", capacity=4)
    withholder = stack.add_node("withhold", capacity=4, fault="withhold")
    artist = stack.artist().address
    first_block = w3.eth.block_number + 1
    before = {a: w3.eth.get_balance(a) for a in (artist, honest.address, withholder.address)}
    try:
        # One tile at replication 2: the two nodes take its two replica lanes. (A result the
        # client's IPFS node cannot find in 20 s counts as unavailable; default 60 s.)
        render = start_render(
            stack, tmp_path, *ONE_TILE, "--replication", "2", "--fetch-timeout", "20s"
        )
        honest.wait_for("claimed", timeout=300)
        withholder.wait_for("claimed", timeout=300)
        # Once the withholder has seen the client's challenge (it answers nothing: it withholds),
        # the answer window is moved past on the chain's clock rather than waited out.
        # (A render that ends first is left to say why.)
        opened = _wait(
            "the availability challenge",
            lambda: render.poll() is not None
            or _logs(market, "AvailabilityChallenged", first_block),
            600,
            stack,
        )
        if render.poll() is None:
            ((challenge_id, job),) = [(int(e["challengeId"]), int(e["jobId"])) for e in opened]
            seen = withholder.wait_for("availability_challenged", timeout=120)
            assert seen["challenge"] == challenge_id
            # In that order, as in real time: the honest replica verified (its reveal and the
            # other lane's plus the challenge window) and paid first; only then the answer
            # window's end (the forfeit clears the withheld lane's reveal, which would move the
            # honest lease's verification out to the job's reveal horizon, a lease away).
            (good,) = [i for i, v in job_leases(market, job) if v.worker == honest.address]
            warp_past(w3, market.verified_at(good))
            _wait(
                "the honest replica paid",
                lambda: render.poll() is not None
                or market.lease(good).state is LeaseStatus.SETTLED,
                300,
                stack,
            )
            warp_past(w3, market.availability_challenge(challenge_id).deadline)
        result = finish_render(stack, render, 900)
        job_id = int(result["job"]["jobId"])
        leases = dict(job_leases(market, job_id))
        by_worker = {lease.worker: lease_id for lease_id, lease in leases.items()}
        paid, withheld = by_worker[honest.address], by_worker[withholder.address]
        withheld_lane = leases[withheld].lane

        # The client could not fetch the withheld result: it challenged the lease itself (it
        # did not dispute it, nor settle it); nobody answered; the lease was forfeited.
        (challenged,) = _logs(market, "AvailabilityChallenged", first_block)
        assert (challenged["leaseId"], challenged["jobId"], challenged["tile"]) == (
            withheld,
            job_id,
            0,
        )
        assert challenged["challenger"] == artist
        assert list(challenged["leaves"])[-1] == 2 ** market.job(job_id).leafDepth - 1
        assert [r["leaseId"] for r in result["challenges"]] == [withheld]
        assert not _logs(market, "AvailabilityAnswered", first_block)
        (failed,) = _logs(market, "AvailabilityFailed", first_block)
        assert failed["challengeId"] == challenged["challengeId"]
        challenge = market.availability_challenge(int(challenged["challengeId"]))
        assert challenge.state is AvailabilityStatus.FAILED
        assert challenge.bond == bond
        assert market.lease(withheld).state is LeaseStatus.FORFEITED
        assert market.lease(paid).state is LeaseStatus.SETTLED
        assert not _logs(market, "Disputed", first_block)
        assert not _logs(market, "DisagreementProven", first_block)
        settled = _logs(market, "LeaseSettled", first_block)
        assert [(e["leaseId"], e["amount"]) for e in settled] == [(paid, REWARD)]
        check_frame(result)

        # The withholder was slashed for unavailable data: a share of the tile's collateral
        # and of the minimum stake, all of it to the client (challenger and client at once).
        slashed = fraud_slash(params, int(params["minStake"]) - int(params["collateralPerTile"]))
        assert _slashes(market, first_block) == [
            (withholder.address, withheld, slashed, UNAVAILABLE)
        ]
        credits = [
            (e["account"], int(e["amount"]), int(e["reason"]))
            for e in _logs(market, "Credited", first_block)
        ]
        assert (artist, bond, 4) in credits  # the bond came back (BondReturned)
        assert (artist, bounty(params, slashed), 1) in credits  # the bounty of the challenger
        assert (artist, slashed - bounty(params, slashed), 2) in credits  # the client's share
        info = market.worker(withholder.address)
        assert (info.stake, info.locked, info.faults) == (int(params["minStake"]) - slashed, 0, 1)

        # The copy gate: a replica of the tile was revealed in the other lane, so the reopened
        # slot cannot be claimed again (a claim now could only copy it).
        stack.staked_account("probe")
        with pytest.raises(ContractRevertError) as refused:
            stack.market_as("probe").claim(job_id, withheld_lane, 0, 1)
        assert refused.value.name == "MarketTileRevealed"
    finally:
        # Neither the withholder nor the probe may be drawn as a juror by the tests after this.
        stack.retire("withhold")
        if "probe" in stack.accounts:
            stack.retire("probe")

    # After the deadline the withheld slot's escrow comes back: the client paid for one tile.
    job = market.job(job_id)
    assert (job.escrow, market.refundable(job_id)) == (REWARD, REWARD)
    warp_past(w3, job.deadline)
    refund = _cli(stack, "client", "refund", str(job_id))
    assert refund.returncode == 0, refund.stderr
    assert refund.stdout.count('"refunded": "1000000000000000"') == 1, refund.stdout
    assert market.job(job_id).escrow == 0
    assert market.pending_balance(artist) == 0

    earned = withdraw(stack, "honest-1")
    assert earned == REWARD
    assert market.pending_balance(withholder.address) == 0
    gas = {a: gas_paid(w3, a, first_block) for a in before}
    assert w3.eth.get_balance(artist) == before[artist] - REWARD + slashed - gas[artist]
    assert w3.eth.get_balance(honest.address) == (
        before[honest.address] + REWARD - gas[honest.address]
    )
    assert w3.eth.get_balance(withholder.address) == (
        before[withholder.address] - gas[withholder.address]
    )
    assert market.worker(withholder.address).unbonding == int(params["minStake"]) - slashed
    assert w3.eth.get_balance(market.address) == _books(stack, market)


def test_b_a_client_disputing_a_correct_tile_loses_its_bond_to_the_jury(
    cheat_stack: RenderStack,
) -> None:
    stack = cheat_stack
    w3, market = stack_market(stack)
    params = market.params
    bond = int(params["disputeBond"])
    side = _node(stack, "honest-1", capacity=4)
    # The client's second address: staked (the minimum), running no node.
    sybil = stack.staked_account("sybil").address
    artist = stack.artist()
    first_block = w3.eth.block_number + 1
    accounts = (artist.address, side.address, sybil)
    before = {a: w3.eth.get_balance(a) for a in accounts}

    # A node that can sit on the jury: staked now, started once the tile is taken.
    stack.staked_account("honest-2", capacity=4, stake=JUROR_STAKE)
    juror_block = w3.eth.block_number + 1  # (its stake came before: not counted here)
    juror_before = w3.eth.get_balance(stack.accounts["honest-2"])
    # One tile at replication 1: the only node running takes it.
    posted = artist.post(
        "sample",
        JobOptions(frame=(8, 8), canaries=0, replication=1, reward_wei=REWARD, lease_length=300),
    )
    ref = posted.ref

    def revealed() -> tuple[int, LeaseView] | None:
        found = [
            (i, v) for i, v in job_leases(market, ref.job_id) if v.state is LeaseStatus.REVEALED
        ]
        return found[0] if found else None

    lease_id, lease = _wait("the tile revealed", revealed, 300, stack)
    assert lease.worker == side.address
    juror = stack.start_node("honest-2")

    def verified() -> bool:
        report = artist.verify(ref)
        return any(v.lease_id == lease_id and v.status == "ok" for v in report.checked)

    _wait("the client verified the tile", verified, 120, stack)

    # The client disputes the correct tile anyway, and draws the jury (the dispute's block is
    # past once the next one is mined).
    (record,) = artist.dispute(ref, tile=0)
    contest_id = record.contest_id
    contest = market.contest(contest_id)
    assert (contest.kind, contest.leaseA, contest.challenger) == (1, lease_id, artist.address)
    # Its second address cannot take the tie-breaker lane: nobody claims jury lanes.
    with pytest.raises(ContractRevertError) as refused:
        stack.market_as("sybil").claim(ref.job_id, contest.lane, 0, 1)
    assert refused.value.name == "MarketBadLane"
    (seat,) = _wait("the jury drawn", lambda: market.jurors(contest_id), 60, stack)
    (drawn,) = _logs(market, "JurorDrawn", first_block)
    assert (drawn["contestId"], drawn["seat"], drawn["leaseId"]) == (contest_id, 0, seat)
    assert drawn["worker"] == juror.address, "the drawn juror must be the honest node"

    # The juror recomputes the tile: same bytes, so the disputed side is not far; once the
    # verdict's window passes the client resolves the contest and settles the lease. (Nothing is
    # left to prove once the verdict is fixed on the side's own root, asserted below: the window
    # is moved past on the chain's clock rather than waited out.)
    def fixed() -> int:
        verdict, fixed_at = market.verdict(contest_id)
        return fixed_at if verdict else 0

    fixed_at = _wait("the verdict fixed", fixed, 600, stack)
    warp_past(w3, fixed_at + int(params["challengeWindow"]))

    def done() -> bool:
        artist.step(ref)
        return market.lease(lease_id).state is LeaseStatus.SETTLED

    _wait("the contest resolved and the lease settled", done, 600, stack)
    view = market.contest(contest_id)
    assert ContestOutcome(view.outcome) is ContestOutcome.NONE_FAR
    assert market.verdict(contest_id)[0] == seat == view.leaseT
    assert market.lease(seat).digest == market.lease(lease_id).digest
    assert market.lease(seat).state is LeaseStatus.SETTLED
    assert not _slashes(market, first_block)
    snap = artist.snapshot(ref)
    (shown,) = snap.contests
    assert (shown.outcome, shown.lease_t) == ("noneFar", seat)
    assert [(s.lease_id, s.worker, s.vote) for s in shown.seats] == [
        (seat, juror.address, "majority")
    ]
    assert snap.complete

    # Half the bond to the node whose tile was disputed, the other half to the jury of one.
    half = bond // 2
    assert withdraw(stack, "honest-1") == REWARD + half
    assert withdraw(stack, "honest-2") == bond - half
    assert market.pending_balance(artist.address) == 0
    assert market.worker(sybil).stake == int(params["minStake"])
    gas = {a: gas_paid(w3, a, first_block) for a in before}
    assert w3.eth.get_balance(artist.address) == (
        before[artist.address] - REWARD - bond - gas[artist.address]
    )
    assert w3.eth.get_balance(side.address) == (
        before[side.address] + REWARD + half - gas[side.address]
    )
    assert w3.eth.get_balance(juror.address) == (
        juror_before + bond - half - gas_paid(w3, juror.address, juror_block)
    )
    assert w3.eth.get_balance(sybil) == before[sybil] - gas[sybil]
    assert market.job(ref.job_id).escrow == 0
    assert w3.eth.get_balance(market.address) == _books(stack, market)


# -- a jury of three with a copier -----------------------------------------------------------


def test_c_a_copying_juror_does_not_decide_and_is_slashed(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    stack = start_render_stack(
        tmp_path_factory.mktemp("e2e-jury"),
        nodes=0,
        ipfs_nodes=("honest", "lazy", "copy", "juror-1", "juror-2"),
        windows={**WINDOWS, "jurySize": 3},
    )
    try:
        _copier_scenario(stack, tmp_path)
    finally:
        stack.close()


def _copier_scenario(stack: RenderStack, out: Path) -> None:
    w3, market = stack_market(stack)
    params = market.params
    honest = stack.add_node("honest", capacity=4)
    lazy = stack.add_node("lazy", capacity=4, fault="lazy")
    # Three more nodes, staked now (the draw weighs the stakes of the moment) and started once
    # the two replica lanes are taken: they can only sit on the jury.
    for name in ("copy", "juror-1", "juror-2"):
        stack.staked_account(name, capacity=4, stake=JUROR_STAKE)
    artist = stack.artist().address
    first_block = w3.eth.block_number + 1
    artist_before = w3.eth.get_balance(artist)
    # One tile at replication 2: the honest and the lazy node take its two lanes.
    render = start_render(stack, out, *ONE_TILE, "--replication", "2")
    honest.wait_for("claimed", timeout=300)
    lazy.wait_for("claimed", timeout=300)
    copier = stack.start_node("copy", fault="copy")
    jurors = [stack.start_node(f"juror-{i}") for i in (1, 2)]

    skip_verdict_window_once_proven_far(stack, render, first_block, 900)
    result = finish_render(stack, render, 1200)
    job_id = int(result["job"]["jobId"])
    check_frame(result)

    leases = dict(job_leases(market, job_id))
    by_worker = {v.worker: i for i, v in leases.items() if v.lane < 2}
    honest_lease, lazy_lease = by_worker[honest.address], by_worker[lazy.address]
    (proven,) = _logs(market, "DisagreementProven", first_block)
    contest_id = int(proven["contestId"])
    assert (proven["leaseA"], proven["leaseB"], proven["challenger"]) == (
        honest_lease,
        lazy_lease,
        honest.address,
    )
    contest = market.contest(contest_id)
    assert ContestOutcome(contest.outcome) is ContestOutcome.B_FAR

    # The jury: the three nodes that hold no replica, each in its own seat.
    seats = market.jurors(contest_id)
    seated = {leases[s].worker: s for s in seats}
    assert len(seats) == 3, f"a seat of the jury stayed empty: {seats}"
    assert set(seated) == {copier.address, *(j.address for j in jurors)}
    copied, verdict = seated[copier.address], contest.leaseT
    # The copier committed to the lazy side's tile (it computed nothing); the two honest jurors
    # computed the honest replica's bytes, and their root is the verdict.
    assert leases[copied].digest == leases[lazy_lease].digest
    assert verdict in (seated[j.address] for j in jurors)
    assert all(leases[seated[j.address]].digest == leases[honest_lease].digest for j in jurors)

    # Money: the lazy side forfeits its tile and is slashed (the bounty to the honest side, the
    # rest to the client); the copier is slashed for leaving the verdict; the two honest jurors
    # share the lazy side's reward and the copier's slash (any odd wei to the client).
    lazy_slash = fraud_slash(params, int(params["minStake"]) - int(params["collateralPerTile"]))
    copier_slash = fraud_slash(params, JUROR_STAKE - int(params["collateralPerTile"]))
    assert sorted(_slashes(market, first_block)) == sorted(
        [
            (lazy.address, lazy_lease, lazy_slash, FAR_FROM_VERDICT),
            (copier.address, copied, copier_slash, LOST_JURY),
        ]
    )
    pool = REWARD + copier_slash
    share = pool // 2
    settled = {
        int(e["leaseId"]): int(e["amount"]) for e in _logs(market, "TieBreakerSettled", first_block)
    }
    assert settled == {copied: 0, **{seated[j.address]: share for j in jurors}}
    assert market.pending_balance(honest.address) == REWARD + bounty(params, lazy_slash)
    for juror in jurors:
        assert market.pending_balance(juror.address) == share
    assert market.pending_balance(copier.address) == 0
    assert market.pending_balance(lazy.address) == 0
    assert market.pending_balance(artist) == (
        lazy_slash - bounty(params, lazy_slash) + (pool - 2 * share)
    )
    assert market.worker(copier.address).stake == JUROR_STAKE - copier_slash
    assert market.worker(copier.address).faults == 1
    assert market.worker(lazy.address).stake == int(params["minStake"]) - lazy_slash
    assert market.job(job_id).escrow == 0
    assert w3.eth.get_balance(market.address) == _books(stack, market)
    # The artist paid the escrow of its two tile-replicas and its gas (what came back is
    # pending in the market).
    gas = gas_paid(w3, artist, first_block)
    assert w3.eth.get_balance(artist) == artist_before - 2 * REWARD - gas
