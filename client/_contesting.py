"""Contesting results: disputes and their juries, contests resolved, availability challenges."""

from __future__ import annotations

import functools
import random
import time
from typing import TYPE_CHECKING

from blindframe.client.errors import (
    JobOptionsError,
    JobStateError,
)
from blindframe.client.jobdir import JobRef, Verdicts, VerdictStatus
from blindframe.client.progress import Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.reports import (
    ChallengeRecord,
    DisputeRecord,
)
from blindframe.client.snapshot import ChallengeStatus, JobSnapshot, LeaseStatusName
from blindframe.coordinator.errors import ContractRevertError

if TYPE_CHECKING:
    from web3 import Web3

    from blindframe.client.artist import Artist, JobLike

__all__ = [
    "challenge_availability",
    "dispute",
    "draw_juries",
    "resolve_availability",
    "resolve_contests",
]

# Leaves an availability challenge demands of one tile: the digest leaf (the whole bundle's
# hash) and random coefficient leaves; the answer costs the node a proof per leaf (its gas comes
# out of the bond).
_CHALLENGE_LEAVES = 8
# Anvil's chain id: there the client may mine an empty block so a jury draw armed on the latest
# block can happen now (on a real chain the next block comes by itself).
_DEV_CHAIN_ID = 31337


def dispute(
    artist: Artist,
    job: JobLike = None,
    *,
    tile: int | None = None,
    lease: int | None = None,
    verify: bool = True,
    progress: Progress = _no_progress,
) -> list[DisputeRecord]:
    """Dispute tiles whose results failed verification, posting the market's dispute bond
    each; a jury of render nodes drawn at random (by stake) then recomputes the tile and
    decides on chain, and a juror's result (verified like any other) stands in for the
    disputed one. The client draws the jury itself once the draw's block has passed.

    Without ``tile``: every tile not contested yet whose result decrypted wrong, and every
    tile of a tampered lease whose bytes gave the revealed root yet do not decrypt, that no
    other replica delivered correctly; leases whose dispute window closed are left. Results
    whose bytes never came (unreachable, or not the revealed root's) are challenged for
    availability instead (:meth:`challenge_availability`): no jury could prove a root far
    whose bytes nobody has. With ``tile``: that tile (of ``lease``, else of the replica lease
    holding it)."""
    directory = artist.job_dir(job)
    ref = directory.ref
    if verify:
        artist.verify(ref, progress=progress)
    verdicts = directory.verdicts()
    if tile is None and not any(
        v.status in (VerdictStatus.WRONG, VerdictStatus.TAMPERED) for v in verdicts.leases.values()
    ):
        return []
    snap = artist.snapshot(ref)
    market = artist._signing_market()
    window = int(market.params.get("acceptanceWindow", 0))
    now = artist.chain_now()
    if tile is None:
        targets = _failed_tiles(snap, verdicts, now, window)
    else:
        targets = [_named_tile(snap, verdicts, ref, tile, lease)]
    if not targets:
        return []
    by_id = {s.lease_id: s for s in snap.leases}
    bond = int(market.params["disputeBond"])
    records = []
    for t, lease_id, reason in targets:
        holder = by_id[lease_id]
        if holder.verified_at and now > holder.verified_at + window:
            raise JobStateError(
                f"lease {lease_id} could be disputed until {holder.verified_at + window} "
                f"(now {now}): tile {t} can no longer be disputed"
            )
        artist._check_funds(market, bond, 300_000, f"disputing tile {t}")
        try:
            contest = market.dispute(ref.job_id, t, lease_id)
        except ContractRevertError as exc:
            if tile is None and exc.name == "MarketTileAlreadyContested":
                continue  # a render node proved the disagreement a moment ago
            raise
        record = DisputeRecord(t, lease_id, contest, bond, reason)
        records.append(record)
        verdicts = directory.verdicts()
        verdicts.disputes[t] = {**record.to_json(), "at": int(time.time())}
        directory.save_verdicts(verdicts)
    if records:
        artist.draw_juries(ref)
    return records


def _failed_tiles(
    snap: JobSnapshot, verdicts: Verdicts, now: int, window: int
) -> list[tuple[int, int, str]]:
    """(tile, lease, reason) of every tile to dispute when none is named: wrong or tampered,
    not contested yet, and no other replica delivered it right (or may still)."""
    contested = {c.tile for c in snap.contests}
    delivered = {
        t
        for v in verdicts.leases.values()
        for t, state in v.tiles.items()
        if state == VerdictStatus.OK
    }
    targets: list[tuple[int, int, str]] = []
    for lease_state in snap.leases:
        verdict = verdicts.leases.get(lease_state.lease_id)
        if lease_state.juror or verdict is None or lease_state.status != LeaseStatusName.REVEALED:
            continue
        if verdict.undelivered:
            continue  # challenged for availability instead
        if lease_state.verified_at and now > lease_state.verified_at + window:
            continue  # too late: the chain takes no dispute of it any more
        if verdict.status == VerdictStatus.WRONG:
            wrong = [
                t for t, state in sorted(verdict.tiles.items()) if state == VerdictStatus.WRONG
            ]
            if not (lease_state.verified_at and now > lease_state.verified_at):
                # Another replica delivered these tiles right, or may still: during the
                # challenge window the render nodes prove the disagreement for free (and
                # earn the bounty); the client posts a bond only if none of them did.
                hopeful = _hopeful_tiles(snap, verdicts, lease_state.lease_id)
                wrong = [t for t in wrong if t not in delivered and t not in hopeful]
            reasons = {t: verdict.reasons.get(t, "wrong") for t in wrong}
        elif verdict.status == VerdictStatus.TAMPERED:
            wrong = [t for t in range(verdict.first_tile, verdict.first_tile + verdict.count)]
            wrong = [t for t in wrong if t not in delivered]
            reasons = dict.fromkeys(wrong, verdict.reason)
        else:
            continue
        for t in wrong:
            if t not in contested and t not in verdicts.disputes:
                targets.append((t, lease_state.lease_id, reasons[t]))
    return targets


def _named_tile(
    snap: JobSnapshot, verdicts: Verdicts, ref: JobRef, tile: int, lease: int | None
) -> tuple[int, int, str]:
    """(tile, lease, reason) of the tile the artist named: of ``lease``, else of the revealed
    replica lease holding it (one found wrong first)."""
    if not 0 <= tile < snap.tile_count:
        raise JobOptionsError(f"job {ref.job_id} has tiles 0..{snap.tile_count - 1}")
    if tile in {c.tile for c in snap.contests}:
        raise JobStateError(f"tile {tile} of job {ref.job_id} was already contested")
    holders = [
        s
        for s in snap.leases
        if not s.juror
        and s.status == LeaseStatusName.REVEALED
        and s.first_tile <= tile < s.first_tile + s.count
        and (lease is None or s.lease_id == lease)
    ]
    if not holders:
        raise JobStateError(
            f"no revealed replica lease of job {ref.job_id} covers tile {tile}"
            + (f" as lease {lease}" if lease is not None else ""),
            hint="a tile can be disputed once its lease revealed and until its "
            "acceptance window closes",
        )
    holders.sort(key=lambda s: verdicts.tile_verdict(s.lease_id, tile) != VerdictStatus.WRONG)
    chosen = holders[0]
    reason = (
        verdicts.leases[chosen.lease_id].reasons.get(tile, "")
        if (chosen.lease_id in verdicts.leases)
        else ""
    )
    return tile, chosen.lease_id, reason or "disputed by the client"


def _hopeful_tiles(snap: JobSnapshot, verdicts: Verdicts, lease_id: int) -> set[int]:
    """Tiles of which another replica lease (than ``lease_id``) is still in flight or revealed
    and not found wrong by the client: it may deliver them right, and its node then proves the
    disagreement itself."""
    hopeful: set[int] = set()
    for other in snap.leases:
        if other.juror or other.lease_id == lease_id:
            continue
        if other.status not in (
            LeaseStatusName.CLAIMED,
            LeaseStatusName.COMMITTED,
            LeaseStatusName.REVEALED,
        ):
            continue
        for t in range(other.first_tile, other.first_tile + other.count):
            if verdicts.tile_verdict(other.lease_id, t) not in (
                VerdictStatus.WRONG,
                VerdictStatus.TAMPERED,
                VerdictStatus.UNAVAILABLE,
            ):
                hopeful.add(t)
    return hopeful


def draw_juries(artist: Artist, job: JobLike = None) -> list[int]:
    """Draw the jurors of this job's contests whose draw is armed on a past block (anyone
    may; the render nodes do it too). On a local Anvil chain an empty block is mined when
    the draw was armed on the latest one. Returns the contests whose draw was made."""
    directory = artist.job_dir(job)
    snap = artist.snapshot(directory.ref)
    # Jurors are drawn until a whole lease before the claim deadline (the last one drawn
    # still has its lease to commit).
    draw_end = {c.contest_id: c.claim_deadline - snap.lease_length for c in snap.contests}
    armed = [
        c
        for c in snap.contests
        if c.open and c.draw_block and artist.chain_now() <= draw_end[c.contest_id]
    ]
    if not armed:
        return []
    market = artist._signing_market()
    _, deployment = artist._chain()
    drawn = []
    for contest in armed:
        block = int(artist._rpc(market.block_number, "read the block number"))
        if block <= contest.draw_block:
            if deployment.chain_id != _DEV_CHAIN_ID:
                continue  # the next block comes by itself: draw on a later step
            artist._rpc(functools.partial(_mine_block, market.w3), "mine a block")
        try:
            seats = market.draw_jury(contest.contest_id)
        except ContractRevertError as exc:
            # Someone drew first, or the draw window closed meanwhile.
            if exc.name in ("MarketDrawNotReady", "MarketDrawClosed", "MarketContestResolved"):
                continue
            raise
        directory.log_action(
            "drawJury",
            contest=contest.contest_id,
            jurors=[{"seat": int(e["seat"]), "leaseId": int(e["leaseId"])} for e in seats],
        )
        drawn.append(contest.contest_id)
    return drawn


def _mine_block(w3: Web3) -> None:
    """Mine an empty block (Anvil's ``evm_mine``; local chains only)."""
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def resolve_contests(artist: Artist, job: JobLike = None) -> list[int]:
    """Resolve this job's open contests whose jury's verdict is final and past its challenge
    window, or that drew nobody by their draw deadline (anyone may; it returns a won
    dispute's bond). Returns the contests resolved."""
    directory = artist.job_dir(job)
    snap = artist.snapshot(directory.ref)
    window = int(artist.market().params.get("challengeWindow", 0))
    now = artist.chain_now()
    done = []
    for contest in snap.contests:
        if not contest.open:
            continue
        # A verdict waits out its challenge window (sides and replicas are proven far from
        # it in there); no verdict (nobody drawn, or no majority) resolves as soon as fixed.
        ripe = bool(contest.verdict_at) and (
            not contest.lease_t or now > contest.verdict_at + window
        )
        if not ripe:
            continue
        try:
            artist._signing_market().resolve_contest(contest.contest_id)
        except ContractRevertError as exc:
            if exc.name in ("MarketContestPending", "MarketContestResolved", "MarketNoVerdict"):
                continue
            raise
        directory.log_action("resolveContest", contest=contest.contest_id)
        done.append(contest.contest_id)
    return done


def challenge_availability(artist: Artist, job: JobLike = None) -> list[ChallengeRecord]:
    """Challenge the availability of every revealed replica lease whose result the client
    could not get (unreachable, or bytes that do not give the revealed root), posting the
    market's dispute bond each: the lease's node must open a few leaves of one tile on chain
    by the challenge's deadline. Answered, the bond comes back less the node's gas; left
    unanswered, :meth:`resolve_availability` forfeits the lease (none of its tiles is paid,
    its node is slashed) and the bond comes back with a share of the slash. A lease with an
    open challenge is not challenged again; one whose challenge was answered is challenged
    again only after another failed fetch."""
    directory = artist.job_dir(job)
    ref = directory.ref
    verdicts = directory.verdicts()
    if not any(v.undelivered for v in verdicts.leases.values()):
        return []
    snap = artist.snapshot(ref)
    market = artist._signing_market()
    window = int(market.params.get("acceptanceWindow", 0))
    depth = int(directory.state().get("leafDepth", directory.manifest().leaf_depth))
    now = artist.chain_now()
    records = []
    for lease in snap.leases:
        verdict = verdicts.leases.get(lease.lease_id)
        if verdict is None or not verdict.undelivered:
            continue
        if lease.juror or lease.status != LeaseStatusName.REVEALED or lease.challenge:
            continue
        if lease.verified_at and now > lease.verified_at + window:
            continue  # too late: the chain takes no challenge of it any more
        previous = verdicts.challenges.get(lease.lease_id)
        if previous is not None and int(previous.get("attempts", 0)) >= verdict.attempts:
            continue  # answered, and not fetched again since
        tile = lease.first_tile + random.SystemRandom().randrange(lease.count)
        leaves = _challenge_leaves(depth)
        bond = int(market.params["disputeBond"])
        artist._check_funds(market, bond, 400_000, f"challenging lease {lease.lease_id}")
        try:
            challenge = market.challenge_availability(lease.lease_id, tile, leaves)
        except ContractRevertError as exc:
            if exc.name == "MarketAvailabilityOpen":
                continue  # someone else challenged it a moment ago
            raise
        record = ChallengeRecord(
            challenge, lease.lease_id, tile, tuple(leaves), bond, verdict.reason
        )
        records.append(record)
        verdicts = directory.verdicts()
        verdicts.challenges[lease.lease_id] = {
            **record.to_json(),
            "attempts": verdict.attempts,
            "at": int(time.time()),
        }
        directory.save_verdicts(verdicts)
    return records


def _challenge_leaves(leaf_depth: int) -> list[int]:
    """The leaves an availability challenge names: the digest leaf (the last) and random
    coefficient leaves, strictly increasing."""
    digest = (1 << leaf_depth) - 1
    chosen = {digest}
    pick = random.SystemRandom()
    while len(chosen) < min(_CHALLENGE_LEAVES, digest + 1):
        chosen.add(pick.randrange(digest))
    return sorted(chosen)


def resolve_availability(artist: Artist, job: JobLike = None) -> list[int]:
    """Resolve this job's availability challenges left unanswered past their deadline
    (anyone may): each forfeits its lease. Returns the challenges resolved."""
    directory = artist.job_dir(job)
    snap = artist.snapshot(directory.ref)
    now = artist.chain_now()
    done = []
    for challenge in snap.challenges:
        if challenge.status != ChallengeStatus.OPEN or now <= challenge.deadline:
            continue
        try:
            artist._signing_market().resolve_availability(challenge.challenge_id)
        except ContractRevertError as exc:
            if exc.name in ("MarketChallengeNotOpen", "MarketAnswerWindow"):
                continue  # answered or resolved a moment ago, or the block came too early
            raise
        directory.log_action(
            "resolveAvailability", challenge=challenge.challenge_id, lease=challenge.lease_id
        )
        done.append(challenge.challenge_id)
    return done
