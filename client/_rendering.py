"""The render loop: post, then the client's duties round by round until the frame decrypts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.client._frames import frame_format as frame_format_of
from blindframe.client.errors import (
    JobExpiredError,
    JobStateError,
    RenderTimeoutError,
)
from blindframe.client.jobdir import JobRef, VerdictStatus
from blindframe.client.options import JobOptions
from blindframe.client.progress import Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.quote import Quote
from blindframe.client.reports import (
    ChallengeRecord,
    DisputeRecord,
    PostedJob,
    RenderResult,
    StepReport,
)
from blindframe.client.snapshot import (
    ChallengeStatus,
    JobSnapshot,
    LeaseStatusName,
    SlotStatus,
    TileStatus,
)
from blindframe.client.units import format_duration, format_eth
from blindframe.coordinator.errors import ContractRevertError, RpcUnreachableError

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike, SceneLike
from blindframe.client._retrying import (
    DEFAULT_RETRIES,
    RetryReport,
    attempts,
    check_retries,
    missing_tasks,
)
from blindframe.client._watching import RpcOutage, finished

__all__ = ["render", "step"]

# Seconds past a lease's deadline before the client reclaims it (block-time skew).
_GRACE = 2

# While the chain mines no block nothing the client acts on changes but the clock, and what the
# clock moves (deadlines, windows) waits this long at most: a full round (events, leases,
# snapshot) costs a render's nodes a third of a core if run every second while they compute.
_QUIET_ROUND = 10.0


def step(
    artist: Artist, job: JobLike = None, *, dispute: bool = True, progress: Progress = _no_progress
) -> StepReport:
    """One round of the client's duties: verify what is new, challenge the availability of
    results that never came, dispute wrong tiles (with ``dispute``), draw juries, resolve
    contests and availability challenges whose windows passed, settle what is verified."""
    ref = artist.job_dir(job).ref
    report = artist.verify(ref, progress=progress)
    challenges = tuple(artist.challenge_availability(ref))
    disputes = tuple(artist.dispute(ref, verify=False)) if dispute else ()
    drawn = tuple(artist.draw_juries(ref))
    resolved = tuple(artist.resolve_contests(ref))
    forfeited = tuple(artist.resolve_availability(ref))
    settled = artist.settle(ref, verify=False)
    return StepReport(report, disputes, settled, resolved, challenges, drawn, forfeited)


def _check_progress(
    artist: Artist, ref: JobRef, snap: JobSnapshot, dispute: bool, *, retrying: bool = False
) -> bool:
    """Raise when a render cannot finish: failed tiles without ``dispute``, tiles nothing
    can fix any more, or a job past its deadline (or cancelled) with nothing in flight
    (then the unfinished escrow is refunded first). ``retrying`` (retries are left): tiles
    nothing can fix cancel the job instead, and a job that ended returns True (its missing
    tiles are posted again)."""
    failed = [t.tile for t in snap.tiles if t.state == TileStatus.FAILED]
    if failed and not dispute:
        raise JobStateError(
            f"tiles {failed} of job {ref.job_id} failed verification",
            hint=f"dispute them: `blindframe client dispute {ref.job_id}`",
        )
    stuck = _stuck_tiles(
        snap, artist.chain_now(), int(artist.market().params.get("acceptanceWindow", 0))
    )
    if stuck and retrying:
        # No way left to those tiles in this job: stop it (its live leases go on) and post
        # what is missing again once it ended.
        if not snap.cancelled:
            _stop(artist, ref)
    elif stuck:
        raise JobStateError(
            f"tiles {stuck} of job {ref.job_id} failed verification and have no way left "
            "to a correct result (their dispute was decided, or its window closed)",
            hint=f"after the deadline, `blindframe client refund {ref.job_id}` returns "
            "the escrow of unfinished tiles; post the frame again",
        )
    if finished(snap):
        if retrying and missing_tasks(attempts(artist.job_dir(ref))):
            return True
        refund = None
        with contextlib.suppress(JobStateError):
            refund = artist.refund(ref)
        unfinished = [t.tile for t in snap.tiles if t.state != TileStatus.SETTLED]
        ended = "was cancelled" if snap.cancelled else "passed its deadline"
        raise JobExpiredError(
            f"job {ref.job_id} {ended} with {len(unfinished)} of "
            f"{snap.tile_count} tiles unfinished"
            + (f"; {format_eth(refund.refunded_wei)} refunded" if refund else ""),
            hint="post again with a later --deadline or a higher --reward",
        )
    return False


def render(
    artist: Artist,
    scene: SceneLike,
    options: JobOptions | None = None,
    *,
    output: Path | None = None,
    twin: Path | bool = False,
    scale: int = 1,
    interval: float = 1.0,
    timeout: float | None = None,
    dispute: bool = True,
    retries: int = DEFAULT_RETRIES,
    progress: Progress = _no_progress,
    on_posted: Callable[[PostedJob], None] | None = None,
    on_snapshot: Callable[[JobSnapshot], None] | None = None,
    confirm: Callable[[Quote], bool] | None = None,
    max_cost_wei: int | None = None,
    on_retry: Callable[[RetryReport], None] | None = None,
    frame_format: str | None = None,
    allow_empty: bool = False,
) -> RenderResult:
    """post -> watch -> verify -> settle -> decrypt, in one call. Wrong tiles are disputed
    (unless ``dispute`` is False: then a wrong tile ends the render with an error). A job that
    ends with tiles lacking a verified result (reclaimed, forfeited, a lost contest, refunded)
    has its unfinished escrow refunded and, up to ``retries`` times, those tiles posted again
    as a follow-up job (:func:`._retrying.retry`); the frame assembles every attempt. With no
    retry left, JobExpiredError; past ``timeout`` seconds, RenderTimeoutError (the job keeps
    running). ``confirm`` and ``max_cost_wei`` gate the post on its quote, and a volume frame
    that would be all background is refused unless ``allow_empty`` (see ``post``)."""
    check_retries(retries)
    started = time.monotonic()
    _check_frame_files(output, twin, frame_format)
    posted = artist.post(
        scene,
        options,
        progress=progress,
        confirm=confirm,
        max_cost_wei=max_cost_wei,
        allow_empty=allow_empty,
    )
    if on_posted is not None:
        on_posted(posted)
    ref = posted.ref
    disputes: list[DisputeRecord] = []
    challenges: list[ChallengeRecord] = []
    follow_ups: list[RetryReport] = []
    settling: list[JobRef] = []  # earlier attempts with verified leases still to pay
    outage = RpcOutage()  # the chain RPC away for a while: waited out, said, not fatal
    last: JobSnapshot | None = None
    quiet = _QuietChain(artist)
    while True:
        retrying = len(follow_ups) < retries
        try:
            if last is not None and quiet.unchanged():
                time.sleep(interval)
                continue
            _settle_earlier(artist, settling, dispute, progress)
            report = artist.step(ref, dispute=dispute, progress=progress)
            disputes += report.disputes
            challenges += report.challenges
            snap = artist.snapshot(ref)
            if on_snapshot is not None:
                on_snapshot(snap)
            done, again = _outcome(artist, ref, snap, settling, dispute, retrying=retrying)
        except RpcUnreachableError as exc:
            time.sleep(outage.down(exc, last))
            continue
        outage.up(snap)
        last = snap
        if done:
            break
        if again:
            settling.append(ref)
            ref = _follow_up(artist, ref, follow_ups, on_retry)
            continue
        _check_timeout(ref, snap, started, timeout)
        time.sleep(interval)
    decrypted = artist.decrypt(
        ref, output=output, twin=twin, scale=scale, verify=False, frame_format=frame_format
    )
    return RenderResult(
        posted,
        decrypted,
        snap,
        time.monotonic() - started,
        tuple(disputes),
        tuple(challenges),
        tuple(f.to_json() for f in follow_ups),
    )


class _QuietChain:
    """Whether a full round of the client's duties can be skipped: no block mined since the
    last one began, and less than ``_QUIET_ROUND`` seconds ago."""

    def __init__(self, artist: Artist) -> None:
        self._market = artist.market()
        self._artist = artist
        self._block = -1
        self._at = 0.0

    def unchanged(self) -> bool:
        block = int(self._artist._rpc(self._market.block_number, "read the latest block"))
        now = time.monotonic()
        if block == self._block and now - self._at < _QUIET_ROUND:
            return True
        self._block, self._at = block, now
        return False


def _follow_up(
    artist: Artist,
    ref: JobRef,
    follow_ups: list[RetryReport],
    on_retry: Callable[[RetryReport], None] | None,
) -> JobRef:
    """Post the follow-up job of ``ref``'s unfinished tiles; the job the render goes on with."""
    follow_up = artist.retry(ref)
    follow_ups.append(follow_up)
    if on_retry is not None:
        on_retry(follow_up)
    assert follow_up.posted is not None  # not a dry run
    return follow_up.posted.ref


def _outcome(
    artist: Artist,
    ref: JobRef,
    snap: JobSnapshot,
    settling: list[JobRef],
    dispute: bool,
    *,
    retrying: bool,
) -> tuple[bool, bool]:
    """(the render is done, a follow-up job is due) after one round."""
    # An open availability challenge is resolved first: its lease is never paid. Earlier
    # attempts' verified leases are paid before the render ends.
    done = (
        snap.complete
        and not settling
        and not any(c.status == ChallengeStatus.OPEN for c in snap.challenges)
    )
    again = (
        not snap.complete
        and not (retrying and _end_early(artist, ref, snap))
        and _check_progress(artist, ref, snap, dispute, retrying=retrying)
    )
    return done, again


def _check_frame_files(output: Path | None, twin: Path | bool, frame_format: str | None) -> None:
    """A frame file that cannot be written fails before anything is paid for."""
    frame_format_of(output, frame_format)
    if isinstance(twin, Path):
        frame_format_of(twin, frame_format)


def _settle_earlier(
    artist: Artist, settling: list[JobRef], dispute: bool, progress: Progress
) -> None:
    """One round of duties for earlier attempts that still have verified leases to pay."""
    for earlier in list(settling):
        artist.step(earlier, dispute=dispute, progress=progress)
        if not _to_settle(artist.snapshot(earlier)):
            settling.remove(earlier)


def _check_timeout(ref: JobRef, snap: JobSnapshot, started: float, timeout: float | None) -> None:
    """RenderTimeoutError past ``timeout`` seconds (the job keeps running)."""
    if timeout is not None and time.monotonic() - started > timeout:
        raise RenderTimeoutError(
            f"job {ref.job_id} is not finished after {format_duration(int(timeout))} "
            f"({snap.tile_counts.get(TileStatus.SETTLED, 0)} of {snap.tile_count} tiles "
            "settled)",
            hint=f"it keeps running: `blindframe client watch {ref.job_id}`, then "
            f"`blindframe client settle` and `fetch`",
        )


def _to_settle(snap: JobSnapshot) -> bool:
    """Whether the job has a revealed replica lease whose every tile verified: the client pays
    it once its challenge window passed (a lease with a wrong tile waits for its dispute)."""
    return any(
        not lease.juror
        and lease.status == LeaseStatusName.REVEALED
        and lease.verdict == VerdictStatus.OK
        for lease in snap.leases
    )


def _end_early(artist: Artist, ref: JobRef, snap: JobSnapshot) -> bool:
    """With retries left, end a job whose missing tiles can no longer be delivered in it now
    rather than at its deadline: reclaim its leases whose node missed a deadline (the slash
    goes to the client, the bounty too), and once no lease is in flight and no new claim fits
    before the deadline (``now + leaseLength > deadline``), cancel it (the escrow no lease
    holds comes back at once). Returns whether it changed anything."""
    now = artist.chain_now()
    reveal_window = int(artist.market().params.get("revealWindow", 0))
    expired = [
        lease.lease_id
        for lease in snap.leases
        if not lease.juror
        and (
            (lease.status == LeaseStatusName.CLAIMED and now > lease.commit_deadline + _GRACE)
            or (
                lease.status == LeaseStatusName.COMMITTED
                and now > lease.commit_deadline + reveal_window + _GRACE
            )
        )
    ]
    reclaimed = 0
    for lease_id in expired:
        # A render node may have reclaimed it a moment ago: nothing is lost then.
        with contextlib.suppress(ContractRevertError):
            artist._signing_market().reclaim(lease_id)
            reclaimed += 1
    if reclaimed or snap.closed:
        return reclaimed > 0
    in_flight = any(
        lease.status in (LeaseStatusName.CLAIMED, LeaseStatusName.COMMITTED)
        for lease in snap.leases
        if not lease.juror
    )
    open_disputes = any(c.open for c in snap.contests) or any(
        c.status == ChallengeStatus.OPEN for c in snap.challenges
    )
    delivered = (SlotStatus.VERIFIED, SlotStatus.SETTLED)
    missing = any(all(s.state not in delivered for s in t.slots) for t in snap.tiles)
    if not missing or in_flight or open_disputes or now + snap.lease_length <= snap.deadline:
        return False
    if now > snap.deadline:
        # Past it by the clock, not yet by a block (an idle chain mines none): the refund, due
        # now anyway, mines one, and the job is seen to end.
        with contextlib.suppress(JobStateError):
            artist.refund(ref)
            return True
        return False
    _stop(artist, ref)
    return True


def _stop(artist: Artist, ref: JobRef) -> None:
    """Cancel a job whose missing tiles are to be posted again. If it passed its deadline
    first (the cancel was mined after it, or the snapshot was a round old), it ended anyway:
    its unfinished escrow is refunded instead."""
    try:
        artist.cancel(ref)
    except JobExpiredError:
        with contextlib.suppress(JobStateError):
            artist.refund(ref)


def _stuck_tiles(snap: JobSnapshot, now: int, acceptance_window: int) -> list[int]:
    """Failed tiles nothing more can fix: their contest was decided without giving a verified
    result, or no contest was opened and every failed replica's dispute window has closed."""
    contests = {c.tile: c for c in snap.contests}
    leases = {lease.lease_id: lease for lease in snap.leases}
    stuck = []
    for tile in snap.tiles:
        if tile.state != TileStatus.FAILED:
            continue
        contest = contests.get(tile.tile)
        if contest is not None:
            if not contest.open:
                stuck.append(tile.tile)
            continue
        failed = [
            leases[s.lease_id] for s in tile.slots if s.state == SlotStatus.FAILED and s.lease_id
        ]
        in_progress = any(s.state not in (SlotStatus.FAILED, SlotStatus.OPEN) for s in tile.slots)
        if (
            failed
            and not in_progress
            and all(
                lease.verified_at and now > lease.verified_at + acceptance_window
                for lease in failed
            )
        ):
            stuck.append(tile.tile)
    return stuck
