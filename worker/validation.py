"""Checking a posted job before taking any of it: its manifest against the trusted kernel
registry and the chain, every tile's public parameters, and this machine's reach of its FFT plan
(a process pinned to the plan, kept for its leases)."""

from __future__ import annotations

import functools
import json
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import ManifestError
from blindframe.coordinator.manifest import MAX_MANIFEST_BYTES, Manifest
from blindframe.coordinator.store import ContentNotFoundError, StoreConnectionError
from blindframe.errors import BlindframeError
from blindframe.fhe_core.errors import FheCoreError, SandboxError
from blindframe.fhe_core.jobs import PublicJob, task_clear_args
from blindframe.fhe_core.merkle import leaf_depth as kernel_leaf_depth
from blindframe.fhe_core.plans import PlanUnreachableError
from blindframe.worker.core import NodePart
from blindframe.worker.logs import eth, when
from blindframe.worker.state import JobStatus, OwnState

if TYPE_CHECKING:
    from blindframe.worker.core import NodeCore
    from blindframe.worker.pinned import PinnedPool
    from blindframe.worker.state import JobRow

__all__ = ["JobValidator", "check_manifest"]

_VALIDATE_RETRY = 15.0
# Own leases that ended without a result the client could use.
_FAILED_STATES = (OwnState.FAILED, OwnState.LOST, OwnState.ABANDONED)


def check_manifest(
    raw: bytes, *, kernel: str, tile_count: int, leaf_depth: int, spec_hash: str
) -> Manifest:
    """Check a job's downloaded manifest against this node's build of ``kernel`` (its
    client-spec hash), the job on chain (kernel, tiles, leaf depth) and this machine's SIMD code
    path. Raises ManifestError, or PlanUnreachableError for a plan this machine cannot reach:
    both make the node refuse the job (and only that job)."""
    manifest = Manifest.parse(raw)
    if manifest.client_spec_hash != spec_hash:
        raise ManifestError(
            f"its client-spec hash {manifest.client_spec_hash[:12]}… differs from this node's "
            f"{kernel} build ({spec_hash[:12]}…): client and node compiled different "
            "kernels (versions of blindframe or Concrete)"
        )
    manifest.check_against_chain(kernel=kernel, tile_count=tile_count, leaf_depth=leaf_depth)
    if leaf_depth < kernel_leaf_depth(kernel):
        raise ManifestError(
            f"its leaf depth {leaf_depth} is too shallow for {kernel} tiles (their "
            f"coefficients and digest leaf need {kernel_leaf_depth(kernel)})"
        )
    public = PublicJob.from_json(manifest.job)
    for tile in range(tile_count):
        # Every tile's public parameters within bounds.
        try:
            task_clear_args(public, manifest.task_of(tile))
        except FheCoreError as exc:
            raise ManifestError(f"tile {tile}'s parameters are invalid: {exc.message}") from None
    # Never claim tiles this machine cannot compute bit-identically to the other replicas.
    manifest.check_plan_reachable()
    return manifest


class JobValidator(NodePart):
    """Validates new jobs (on the io pool) and keeps the manifests of valid ones."""

    def __init__(self, core: NodeCore, pinned: PinnedPool, spec_hashes: dict[str, str]) -> None:
        super().__init__(core)
        self.pinned = pinned
        self.spec_hashes = spec_hashes
        self._manifests: dict[int, Manifest] = {}

    def evaluate(self) -> None:
        """Validate new jobs' manifests (on the io pool), never more than two at once."""
        now, wall = self.core.clock.now(), time.time()
        # A job stays of interest while a contest over it may still draw this node as a juror.
        horizon = sum(
            int(self.market.params[k])
            for k in ("revealWindow", "challengeWindow", "acceptanceWindow", "tieBreakWindow")
        )
        held = {lease.job_id for lease in self.state.own_leases()}
        for job in self.state.jobs((JobStatus.NEW, JobStatus.UNAVAILABLE)):
            if self.core.running("manifest") >= 2:
                return
            if job.status == JobStatus.UNAVAILABLE and job.retry_at > wall:
                continue
            if job.kernel not in self.options.kernels:
                self.state.set_job(
                    job.job_id,
                    JobStatus.IGNORED,
                    reason=f"kernel {job.kernel!r} is not one this node runs "
                    f"({', '.join(self.options.kernels)})",
                )
                self.log.info(
                    "job_ignored",
                    f"ignoring job {job.job_id}: kernel {job.kernel!r} is not one this node runs",
                    job=job.job_id,
                )
                continue
            if job.deadline + horizon < now and job.job_id not in held:
                self.state.set_job(
                    job.job_id, JobStatus.IGNORED, reason="it ended before this node saw it"
                )
                continue
            self.core.spawn(
                ("manifest", job.job_id),
                self.core.io_pool,
                functools.partial(self._validate, job),
                functools.partial(self._validated, job=job),
            )

    def _validate(self, job: JobRow) -> Manifest:
        """(io thread) Fetch and check a job's manifest against the registry and the chain."""
        raw = self.core.store.cat(job.manifest_cid, max_size=MAX_MANIFEST_BYTES)
        manifest = check_manifest(
            raw,
            kernel=job.kernel,
            tile_count=job.tile_count,
            leaf_depth=job.leaf_depth,
            spec_hash=self.spec_hashes[job.kernel],
        )
        # Then a process pinned to the plan (kept for the lease).
        self.pinned.check_reachable(
            job.kernel, manifest.fft_plan, why=f"job {job.job_id}'s plan, checked before claiming"
        )
        return manifest

    def _validated(self, future: Future[Manifest], job: JobRow) -> None:
        log = self.log
        try:
            manifest = future.result()
        except (StoreConnectionError, ContentNotFoundError) as exc:
            self._validate_later(job, exc.message)
            report = log.warning if job.attempts == 0 else log.debug
            report(
                "manifest_unavailable",
                f"cannot fetch job {job.job_id}'s manifest {job.manifest_cid} yet: {exc.message}; "
                f"trying again every {_VALIDATE_RETRY:.0f} s until its deadline",
                job=job.job_id,
            )
            return
        except PlanUnreachableError as exc:
            self.refuse(job.job_id, f"this machine cannot compute with its FFT plan: {exc.message}")
            return
        except SandboxError as exc:
            # Not the job's fault (this machine could not start a compute process): retry.
            self._validate_later(job, exc.message)
            log.warning(
                "pin_failed",
                f"cannot start a compute process for job {job.job_id} yet: {exc.message}; "
                f"trying again in {_VALIDATE_RETRY:.0f} s",
                job=job.job_id,
            )
            return
        except (BlindframeError, ValueError) as exc:
            reason = exc.message if isinstance(exc, BlindframeError) else str(exc)
            self.refuse(job.job_id, f"its manifest is bad: {reason}")
            return
        failed = self._failed_ancestor(manifest)
        if failed is not None:
            self.refuse(job.job_id, failed)
            return
        self._manifests[job.job_id] = manifest
        self.state.set_job(job.job_id, JobStatus.VALID, manifest=manifest.to_json())
        log.info(
            "job_valid",
            f"job {job.job_id} checks out: {job.kernel}, {job.tile_count} tiles x "
            f"{job.replication} replica(s), {eth(job.reward_wei)} per tile-replica, "
            f"{job.lease_length} s leases, deadline {when(job.deadline, self.core.clock.now())}; "
            f"replicas pin FFT plan {manifest.fft_plan}",
            job=job.job_id,
            kernel=job.kernel,
            tiles=job.tile_count,
            replication=job.replication,
            fft_plan=manifest.fft_plan,
        )

    def _failed_ancestor(self, manifest: Manifest) -> str | None:
        """Why this node keeps out of a follow-up job (None: it may claim): the job retries
        tiles of an earlier job in which this node failed, lost or abandoned a lease. The
        contract cannot see a job's lineage (the manifest's ``followUp``), so this is the node's
        own policy: a node that failed a job is not trusted with the same tiles again."""
        if manifest.follow_up is None:
            return None
        ancestors = set(manifest.follow_up.ancestors)
        for lease in self.state.own_leases(_FAILED_STATES):
            if lease.job_id in ancestors:
                return (
                    f"it retries tiles of job {lease.job_id}, where this node's lease "
                    f"{lease.lease_id} ended {lease.state}"
                )
        mine = {lease.lease_id for lease in self.state.own_leases()}
        for contest in self.state.contests(open_only=False):
            if contest.job_id not in ancestors:
                continue
            far = {
                "A_FAR": {contest.lease_a},
                "B_FAR": {contest.lease_b},
                "BOTH_FAR": {contest.lease_a, contest.lease_b},
            }.get(contest.outcome or "", set())
            if mine & far:
                return (
                    f"it retries tiles of job {contest.job_id}, where this node lost contest "
                    f"{contest.contest_id} over tile {contest.tile}"
                )
        return None

    def _validate_later(self, job: JobRow, reason: str) -> None:
        """Look at the job again in _VALIDATE_RETRY seconds (what failed was not its fault)."""
        self.state.set_job(
            job.job_id,
            JobStatus.UNAVAILABLE,
            reason=reason,
            retry_at=time.time() + _VALIDATE_RETRY,
            attempt=True,
        )

    def refuse(self, job_id: int, reason: str) -> None:
        self.state.set_job(job_id, JobStatus.REFUSED, reason=reason)
        self._manifests.pop(job_id, None)
        self.log.warning(
            "job_refused",
            f"refused job {job_id}: {reason}; this node will not work on it",
            job=job_id,
            reason=reason,
        )

    def manifest(self, job: JobRow) -> Manifest | None:
        if job.status != JobStatus.VALID or job.manifest is None:
            return None
        if job.job_id not in self._manifests:
            self._manifests[job.job_id] = Manifest.parse(json.dumps(job.manifest_json).encode())
        return self._manifests[job.job_id]
