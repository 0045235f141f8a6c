"""A job's state read from the chain: its leases, contests and challenges, as snapshots."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blindframe.client.jobdir import JobDir
from blindframe.client.snapshot import (
    ChallengeStatus,
    JobSnapshot,
    LeaseStatusName,
    TileLayout,
    build_snapshot,
    job_events,
    job_ids,
)
from blindframe.coordinator.errors import RpcUnreachableError
from blindframe.coordinator.market import (
    AvailabilityChallengeView,
    ContestView,
    LeaseStatus,
    LeaseView,
)

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike

__all__ = ["RpcOutage", "finished", "lease_view", "snapshot", "watch"]

# Outages are told on stderr through logging (Python's last-resort handler prints warnings when
# nothing is configured), so --json output on stdout stays one document.
_log = logging.getLogger("blindframe.client")


def lease_view(artist: Artist, lease_id: int) -> LeaseView:
    cached = artist._final_leases.get(lease_id)
    if cached is not None:
        return cached
    market = artist.market()
    view: LeaseView = artist._rpc(lambda: market.lease(lease_id), f"read lease {lease_id}")
    if view.state in (LeaseStatus.RECLAIMED, LeaseStatus.FORFEITED) or (
        view.state == LeaseStatus.SETTLED and view.openContests == 0
    ):
        artist._final_leases[lease_id] = view
    return view


def _verified_at(artist: Artist, lease_id: int) -> int:
    market = artist.market()
    return int(artist._rpc(lambda: market.verified_at(lease_id), "read verifiedAt"))


def _contest(artist: Artist, contest_id: int) -> ContestView:
    market = artist.market()
    view: ContestView = artist._rpc(
        lambda: market.contest(contest_id), f"read contest {contest_id}"
    )
    return view


def _jury(artist: Artist, contest_id: int) -> tuple[list[int], tuple[int, int]]:
    """A contest's juror leases by seat, and its live verdict (lease, fixed at)."""
    market = artist.market()
    seats: list[int] = artist._rpc(
        lambda: market.jurors(contest_id), f"read contest {contest_id}'s jury"
    )
    ruling: tuple[int, int] = artist._rpc(
        lambda: market.verdict(contest_id), f"read contest {contest_id}'s verdict"
    )
    return seats, ruling


def _challenge(artist: Artist, challenge_id: int) -> AvailabilityChallengeView:
    market = artist.market()
    view: AvailabilityChallengeView = artist._rpc(
        lambda: market.availability_challenge(challenge_id),
        f"read availability challenge {challenge_id}",
    )
    return view


def _layout(
    artist: Artist, job: JobDir
) -> tuple[dict[int, TileLayout], tuple[int, int], tuple[int, int]]:
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.tiling import tile_grid

    key = job.path.name
    cached = artist._layouts.get(key)
    if cached is not None:
        return cached
    public = job.public()
    secrets = job.secrets()
    kernel = get_kernel(public.kernel_id)
    layout: dict[int, TileLayout] = {}
    if public.shared_input:
        grid = tile_grid(public.frame_hw, kernel.tile_hw)
        frame = public.frame_hw
        for task in secrets.tasks:
            # An animation's task is tile task % grid.count of frame task // grid.count.
            frame_index, tile = divmod(task.task_index, grid.count)
            row, col = divmod(tile, grid.tiles_x)
            shown = None if public.frames is None else frame_index
            layout[task.task_index] = TileLayout(row, col, task.canary, shown)
    else:
        grid = tile_grid(secrets.real_hw, kernel.tile_hw, kernel.halo)
        frame = secrets.real_hw
        for task in secrets.tasks:
            row, col = divmod(task.source_tile, grid.tiles_x)
            layout[task.task_index] = TileLayout(row, col, task.canary)
    manifest = job.manifest()
    if manifest.follow_up is not None:
        # A follow-up job's tiles are tasks of the first job: shown where those tasks are.
        layout = {t: layout[manifest.task_of(t)] for t in range(manifest.tile_count)}
    out = (layout, (int(frame[0]), int(frame[1])), (grid.tiles_y, grid.tiles_x))
    artist._layouts[key] = out
    return out


def snapshot(artist: Artist, job: JobLike = None) -> JobSnapshot:
    """The job's state now: every tile's state and holder, leases, contests, escrow and
    payments, recent events (``snapshot.to_json()`` is what the dashboard serves)."""
    directory = artist.job_dir(job)
    ref = directory.ref
    artist._check_here(ref)
    market = artist.market()
    indexed = artist.events()
    events, lease_ids, contest_ids = job_events(indexed, ref.job_id)
    challenge_ids = job_ids(indexed, ref.job_id)[2]
    view = artist._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
    leases = {lease_id: lease_view(artist, lease_id) for lease_id in sorted(lease_ids)}
    verified_at = {
        lease_id: _verified_at(artist, lease_id)
        for lease_id, lease in leases.items()
        if lease.state == LeaseStatus.REVEALED
    }
    contests = {cid: _contest(artist, cid) for cid in sorted(contest_ids)}
    juries = {cid: _jury(artist, cid) for cid in contests}
    challenges = {cid: _challenge(artist, cid) for cid in sorted(challenge_ids)}
    latest = artist._rpc(lambda: market.w3.eth.get_block("latest"), "read the latest block")
    layout, frame, grid = _layout(artist, directory)
    state = directory.state()
    quoted = state.get("quote") or {}  # what post quoted (jobs posted before quotes: none)
    client = view.client
    return build_snapshot(
        ref=ref,
        job=view,
        manifest_cid=str(state.get("manifestCid", "")),
        frame=frame,
        grid=grid,
        layout=layout,
        events=events,
        leases=leases,
        verified_at=verified_at,
        contests=contests,
        verdicts=directory.verdicts(),
        now=int(latest["timestamp"]),
        block=int(latest["number"]),
        client_pending=int(artist._rpc(lambda: market.pending_balance(client), "read balance")),
        refundable=int(artist._rpc(lambda: market.refundable(ref.job_id), "read refundable")),
        jurors={cid: seats for cid, (seats, _) in juries.items()},
        rulings={cid: ruling for cid, (_, ruling) in juries.items()},
        challenges=challenges,
        quoted_seconds=quoted.get("renderSeconds"),
        posted_at=state.get("postedAt"),
    )


@dataclass
class RpcOutage:
    """The chain's RPC unreachable across the rounds of a loop that follows a job (render,
    watch): said once when it goes, waited out with growing pauses (nothing is sent meanwhile,
    so nothing is sent twice), and said again when it answers, with what happened to the job's
    leases while this client could not see it (deadlines pass on chain regardless)."""

    since: float | None = None
    before: JobSnapshot | None = None
    delay: float = 1.0

    def down(self, exc: RpcUnreachableError, last: JobSnapshot | None) -> float:
        """Note a failed round; the seconds to wait before the next one."""
        if self.since is None:
            self.since, self.before, self.delay = time.monotonic(), last, 1.0
            _log.warning("%s; waiting for it to answer again", exc.message)
        wait, self.delay = self.delay, min(self.delay * 2, 10.0)
        return wait

    def up(self, snap: JobSnapshot) -> None:
        """A round went through: say so, and what was missed, if the RPC was down."""
        if self.since is None:
            return
        down = time.monotonic() - self.since
        _log.warning(
            "the chain RPC answers again after %.0f s; meanwhile on job %s: %s",
            down,
            snap.ref.job_id,
            missed(self.before, snap),
        )
        self.since, self.before = None, None


def missed(before: JobSnapshot | None, after: JobSnapshot) -> str:
    """What changed in the job's leases from ``before`` to ``after``, in words."""
    was = {lease.lease_id: lease.status for lease in before.leases} if before else {}
    changes = []
    for lease in after.leases:
        old = was.get(lease.lease_id)
        if old == lease.status:
            continue
        how = f"{old} -> {lease.status}" if old is not None else str(lease.status)
        changes.append(f"lease {lease.lease_id} ({lease.worker}) {how}")
    return "; ".join(changes) if changes else "no lease changed"


def watch(
    artist: Artist,
    job: JobLike = None,
    *,
    interval: float = 1.0,
    timeout: float | None = None,
    until: Callable[[JobSnapshot], bool] | None = None,
) -> Iterator[JobSnapshot]:
    """Snapshots every ``interval`` seconds until ``until(snapshot)`` (default: the job is
    complete, or expired or cancelled with no lease still able to deliver) or ``timeout``
    passes."""
    stop = until or finished
    started = time.monotonic()
    ref = artist.job_dir(job).ref
    outage = RpcOutage()
    last: JobSnapshot | None = None
    while True:
        try:
            snap = artist.snapshot(ref)
        except RpcUnreachableError as exc:
            time.sleep(outage.down(exc, last))
            continue
        outage.up(snap)
        last = snap
        yield snap
        if stop(snap):
            return
        if timeout is not None and time.monotonic() - started >= timeout:
            return
        time.sleep(interval)


def finished(snap: JobSnapshot) -> bool:
    """Nothing more will happen by itself: complete, or closed (expired or cancelled) with no
    lease in flight."""
    if snap.complete:
        return True
    in_flight = any(
        lease.status in (LeaseStatusName.CLAIMED, LeaseStatusName.COMMITTED)
        for lease in snap.leases
        if not lease.juror
    )
    return (
        snap.closed
        and not in_flight
        and not any(c.open for c in snap.contests)
        and not any(c.status == ChallengeStatus.OPEN for c in snap.challenges)
    )
