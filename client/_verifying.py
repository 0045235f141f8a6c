"""Verifying revealed results: fetched, checked against their root, decrypted against the twin."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindframe.client.jobdir import JobDir, LeaseVerdict, VerdictStatus
from blindframe.client.progress import DOWNLOAD, VERIFY, Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.reports import (
    VerifyReport,
)
from blindframe.client.snapshot import job_events
from blindframe.coordinator.errors import LeaseResultError
from blindframe.coordinator.events import event_cid
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import (
    LeaseStatus,
    LeaseView,
)
from blindframe.coordinator.results import max_result_bytes, open_lease_result
from blindframe.coordinator.store import (
    ContentIntegrityError,
    ContentTooLargeError,
    StoreError,
    UnsupportedContentError,
)
from blindframe.coordinator.store.cid import Cid
from blindframe.errors import BlindframeError
from blindframe.fhe_core.errors import FheCoreError

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike
    from blindframe.coordinator.results import LeaseResult
    from blindframe.fhe_core.artist_jobs import JobSecrets
    from blindframe.fhe_core.jobs import PublicJob
from blindframe.client._watching import lease_view

__all__ = ["verify"]

# Room for a lease result's header and framing beyond its tiles' coefficients.


def verify(
    artist: Artist, job: JobLike = None, *, progress: Progress = _no_progress
) -> VerifyReport:
    """Fetch every revealed lease result not checked yet, check its bytes give the revealed
    root, decrypt each tile and compare it (canaries included) with the plaintext twin.
    Verdicts are saved per lease and tile; an unreachable result is retried next time."""
    directory = artist.job_dir(job)
    ref = directory.ref
    artist._check_here(ref)
    public = directory.public()
    secrets = directory.secrets()
    manifest = directory.manifest()
    events, lease_ids, _ = job_events(artist.events(), ref.job_id)
    cids = {
        int(e.args["leaseId"]): event_cid(e.args.get("resultCid"))
        for e in events
        if e.name == "Revealed"
    }
    verdicts = directory.verdicts()
    todo = []
    for lease_id in sorted(lease_ids):
        lease = lease_view(artist, lease_id)
        if lease.state not in (LeaseStatus.REVEALED, LeaseStatus.SETTLED):
            continue
        if lease_id not in cids:
            # Revealed after the events above were read: its CID comes with the next poll
            # (judging it now would call an honest result tampered).
            continue
        known = verdicts.leases.get(lease_id)
        if known is not None and known.final:
            continue
        if (
            known is not None
            and known.status == VerdictStatus.UNAVAILABLE
            and _challenged(artist, lease_id)
        ):
            # Its node is asked to open leaves on chain: fetch again once that is answered
            # (an unanswered challenge forfeits the lease).
            continue
        todo.append((lease_id, lease))
    checked: list[LeaseVerdict] = []
    downloaded = 0
    tiles_total = sum(lease.count for _, lease in todo)
    tiles_done = 0
    progress(VERIFY, 0, tiles_total)
    for lease_id, lease in todo:
        verdict, size = _verify_lease(
            artist,
            directory,
            public,
            secrets,
            manifest,
            lease_id,
            lease,
            cids.get(lease_id),
            progress,
        )
        previous = verdicts.leases.get(lease_id)
        if previous is not None and verdict.status == VerdictStatus.UNAVAILABLE:
            verdict.attempts = previous.attempts + 1
        # Save after each lease: a crash later keeps what was learned.
        verdicts = directory.verdicts()
        verdicts.leases[lease_id] = verdict
        directory.save_verdicts(verdicts)
        checked.append(verdict)
        downloaded += size
        tiles_done += lease.count
        progress(VERIFY, tiles_done, tiles_total)
    return VerifyReport(ref, tuple(checked), directory.verdicts(), downloaded)


def _challenged(artist: Artist, lease_id: int) -> bool:
    market = artist.market()
    return bool(artist._rpc(lambda: market.open_challenge(lease_id), "read open challenges"))


def _verify_lease(
    artist: Artist,
    directory: JobDir,
    public: PublicJob,
    secrets: JobSecrets,
    manifest: Manifest,
    lease_id: int,
    lease: LeaseView,
    cid: str | None,
    progress: Progress,
) -> tuple[LeaseVerdict, int]:
    """One revealed lease's verdict, and the bytes downloaded for it: its CID valid, its bytes
    fetched and giving the revealed root, each tile decrypting to the twin's pixels."""
    root = bytes(lease.digest)
    verdict = LeaseVerdict(
        lease_id=lease_id,
        lane=lease.lane,
        first_tile=lease.firstTile,
        count=lease.count,
        worker=lease.worker,
        cid=cid or "",
        root="0x" + root.hex(),
        checked_at=int(time.time()),
        attempts=1,
    )
    if cid is None:
        verdict.status, verdict.reason = (
            VerdictStatus.TAMPERED,
            "the revealed result CID is not text",
        )
        verdict.undelivered = True
        return verdict, 0
    try:
        Cid.parse(cid)
    except StoreError as exc:
        verdict.status, verdict.reason = (
            VerdictStatus.TAMPERED,
            f"the revealed CID is invalid: {exc}",
        )
        verdict.undelivered = True
        return verdict, 0
    limit = max_result_bytes(manifest.kernel, lease.count)
    incoming = directory.outputs / f".incoming-{lease_id}.bflr"
    target = directory.outputs / f"lease-{lease_id}.bflr"
    try:
        data = _download(artist, cid, incoming, limit, progress)
    except (StoreError, OSError) as exc:
        incoming.unlink(missing_ok=True)
        message = exc.message if isinstance(exc, BlindframeError) else str(exc)
        # Bytes that fail their CID, oversized files, non-files: the worker's doing. A node
        # that cannot find or reach the content may succeed later.
        bad_content = isinstance(
            exc, ContentIntegrityError | ContentTooLargeError | UnsupportedContentError
        )
        verdict.status = VerdictStatus.TAMPERED if bad_content else VerdictStatus.UNAVAILABLE
        verdict.reason = message
        verdict.undelivered = True
        return verdict, 0
    try:
        result = open_lease_result(
            data,
            kernel=manifest.kernel,
            job_id=lease.jobId,
            lease_id=lease_id,
            first_tile=lease.firstTile,
            count=lease.count,
            leaf_depth=manifest.leaf_depth,
            root=root,
        )
    except LeaseResultError as exc:
        incoming.unlink(missing_ok=True)
        verdict.status, verdict.reason = VerdictStatus.TAMPERED, exc.message
        verdict.undelivered = True
        return verdict, len(data)
    incoming.replace(target)
    verdict.file = target.name
    _judge_tiles(artist, verdict, public, secrets, manifest, lease, result)
    return verdict, len(data)


def _download(artist: Artist, cid: str, path: Path, max_size: int, progress: Progress) -> bytes:
    """A lease result's bytes, fetched from the IPFS node into ``path``."""
    artist.store().get(
        cid,
        path,
        max_size=max_size,
        progress=lambda done, total: progress(DOWNLOAD, done, total),
    )
    return path.read_bytes()


def _judge_tiles(
    artist: Artist,
    verdict: LeaseVerdict,
    public: PublicJob,
    secrets: JobSecrets,
    manifest: Manifest,
    lease: LeaseView,
    result: LeaseResult,
) -> None:
    """Each of the lease's tiles decrypted and compared with the twin: ``verdict`` gets its
    tiles' states and its status (``tampered`` when a tile does not decrypt at all)."""
    for tile in lease.tiles:
        # A follow-up job's tile is a task of the first job (the manifest's ``followUp``).
        task = manifest.task_of(tile)
        wrong, unreadable = _check_task(artist, public, secrets, task, result.output(tile))
        if unreadable is not None:
            # The coefficients gave the revealed root, yet the bundle around them does not
            # decrypt: bytes the root does not cover were altered. A dispute compares only
            # coefficients and could not win, so this is not a "wrong" tile to dispute.
            verdict.status = VerdictStatus.TAMPERED
            verdict.reason = (
                f"tile {tile} does not decrypt although its coefficients give the revealed "
                f"root (its bundle framing was altered): {unreadable}"
            )
            verdict.tiles.clear()
            verdict.reasons.clear()
            return
        verdict.tiles[tile] = VerdictStatus.OK if wrong is None else VerdictStatus.WRONG
        if wrong is not None:
            verdict.reasons[tile] = wrong
    verdict.status = (
        VerdictStatus.OK
        if all(v == VerdictStatus.OK for v in verdict.tiles.values())
        else VerdictStatus.WRONG
    )


def _check_task(
    artist: Artist, public: PublicJob, secrets: JobSecrets, task_index: int, output: bytes
) -> tuple[str | None, str | None]:
    """(why the decryption differs from the twin, why it does not decrypt): both None
    when the task's output decrypts to exactly the twin's pixels."""
    from blindframe.fhe_core.client import check_against_twin
    from blindframe.fhe_core.errors import TwinMismatchError
    from blindframe.fhe_core.jobs import task_clear_args

    tasks = {t.task_index: t for t in secrets.tasks}
    task = tasks.get(task_index)
    if task is None:
        return None, f"task {task_index} is not part of this job"
    if public.shared_input:
        if secrets.volume is None:
            return None, "the job's secrets hold no volume to check against"
        plain: tuple[Any, ...] = (secrets.volume,)
    else:
        plain = secrets.plain[task.source_tile]
    kind = "canary tile" if task.canary else "tile"
    with artist._fhe_lock:
        client = artist._kernel_client(public.kernel_id)
        try:
            got = client.decrypt(output, tile_index=task_index)
        except FheCoreError as exc:
            return None, exc.message
        except Exception as exc:  # noqa: BLE001 - Concrete refusing a worker's ciphertext
            return None, f"{kind} {task_index}: {type(exc).__name__}: {exc}"
        try:
            check_against_twin(
                client.kernel,
                got,
                plain,
                task_clear_args(public, task_index),
                f"{kind} {task_index}",
            )
        except TwinMismatchError as exc:
            return exc.message, None
    return None, None
