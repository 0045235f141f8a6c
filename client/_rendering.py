"""The render loop: post, then the client's duties round by round until the frame decrypts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.client.errors import (
    JobExpiredError,
    JobStateError,
    RenderTimeoutError,
)
from blindframe.client.jobdir import JobRef
from blindframe.client.options import JobOptions
from blindframe.client.progress import Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.reports import (
    ChallengeRecord,
    DisputeRecord,
    PostedJob,
    RenderResult,
    StepReport,
)
from blindframe.client.snapshot import ChallengeStatus, JobSnapshot, SlotStatus, TileStatus
from blindframe.client.units import format_duration, format_eth

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike, SceneLike
from blindframe.client._watching import finished

__all__ = ["render", "step"]


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


def _check_progress(artist: Artist, ref: JobRef, snap: JobSnapshot, dispute: bool) -> None:
    """Raise when a render cannot finish: failed tiles without ``dispute``, tiles nothing
    can fix any more, or a job past its deadline (or cancelled) with nothing in flight
    (then the unfinished escrow is refunded first)."""
    failed = [t.tile for t in snap.tiles if t.state == TileStatus.FAILED]
    if failed and not dispute:
        raise JobStateError(
            f"tiles {failed} of job {ref.job_id} failed verification",
            hint=f"dispute them: `blindframe client dispute {ref.job_id}`",
        )
    stuck = _stuck_tiles(
        snap, artist.chain_now(), int(artist.market().params.get("acceptanceWindow", 0))
    )
    if stuck:
        raise JobStateError(
            f"tiles {stuck} of job {ref.job_id} failed verification and have no way left "
            "to a correct result (their dispute was decided, or its window closed)",
            hint=f"after the deadline, `blindframe client refund {ref.job_id}` returns "
            "the escrow of unfinished tiles; post the frame again",
        )
    if finished(snap):
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
    progress: Progress = _no_progress,
    on_posted: Callable[[PostedJob], None] | None = None,
    on_snapshot: Callable[[JobSnapshot], None] | None = None,
) -> RenderResult:
    """post -> watch -> verify -> settle -> decrypt, in one call. Wrong tiles are disputed
    (unless ``dispute`` is False: then a wrong tile ends the render with an error). Past the
    deadline with tiles unfinished, the unfinished escrow is refunded and JobExpiredError
    raised; past ``timeout`` seconds, RenderTimeoutError (the job keeps running)."""
    started = time.monotonic()
    posted = artist.post(scene, options, progress=progress)
    if on_posted is not None:
        on_posted(posted)
    ref = posted.ref
    disputes: list[DisputeRecord] = []
    challenges: list[ChallengeRecord] = []
    while True:
        report = artist.step(ref, dispute=dispute, progress=progress)
        disputes += report.disputes
        challenges += report.challenges
        snap = artist.snapshot(ref)
        if on_snapshot is not None:
            on_snapshot(snap)
        if snap.complete:
            # An open availability challenge is resolved first: its lease is never paid.
            if not any(c.status == ChallengeStatus.OPEN for c in snap.challenges):
                break
        else:
            _check_progress(artist, ref, snap, dispute)
        if timeout is not None and time.monotonic() - started > timeout:
            raise RenderTimeoutError(
                f"job {ref.job_id} is not finished after {format_duration(int(timeout))} "
                f"({snap.tile_counts.get(TileStatus.SETTLED, 0)} of {snap.tile_count} tiles "
                "settled)",
                hint=f"it keeps running: `blindframe client watch {ref.job_id}`, then "
                f"`blindframe client settle` and `fetch`",
            )
        time.sleep(interval)
    decrypted = artist.decrypt(ref, output=output, twin=twin, scale=scale, verify=False)
    return RenderResult(
        posted,
        decrypted,
        snap,
        time.monotonic() - started,
        tuple(disputes),
        tuple(challenges),
    )


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
