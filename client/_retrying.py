"""Failed tiles posted again: a follow-up job of the tasks a job ended without a verified result
for, reusing the first job's uploaded inputs, evaluation keys and key set.

Nothing is encrypted or uploaded again but the follow-up's manifest, which points at the first
job's CIDs and names, in ``followUp``, the jobs it retries and the first job's task each of its
tiles computes (:class:`~blindframe.coordinator.manifest.FollowUp`). The attempts of one frame
form a chain of job directories: the first job's ``job.json`` names its follow-up
(``retriedBy``), each follow-up its parent and the first job (``followUp``); ``fetch`` of any of
them assembles the frame from every attempt.

Canaries: a follow-up re-posts the failed tasks as they were, canaries among them, under their
task numbers in the first job; it adds no fresh canaries. A fresh canary would need a fresh
encryption and upload (what a retry avoids), and a task that already verified cannot serve as
one: its result is public on IPFS, so a node could copy it. Which tasks failed is public on chain
anyway, so the follow-up tells a node nothing new about which tasks are canaries, and the client
still checks every tile against the plaintext twin, not only the canaries.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from blindframe.client import _posting
from blindframe.client import jobdir as jd
from blindframe.client._watching import finished
from blindframe.client.errors import JobStateError
from blindframe.client.jobdir import JobDir, JobRef, VerdictStatus
from blindframe.client.options import DEFAULT_RETRIES, MAX_RETRIES, JobOptions, check_retries
from blindframe.client.quote import Quote, build_quote
from blindframe.client.units import format_duration
from blindframe.coordinator.manifest import MAX_FOLLOW_UPS, FollowUp, Manifest

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike
    from blindframe.client.fftplan import PlanChoice
    from blindframe.client.reports import PostedJob
    from blindframe.coordinator.market import Market

__all__ = [
    "DEFAULT_RETRIES",
    "MAX_RETRIES",
    "RetryReport",
    "attempts",
    "check_retries",
    "missing_tasks",
    "retry",
    "verified_tasks",
]


@dataclass(frozen=True)
class RetryReport:
    """A follow-up job of failed tiles: what it costs (its quote) and, unless a dry run, the
    job posted."""

    parent: JobRef
    first: JobRef
    tasks: tuple[int, ...]  # the first job's tasks, in the follow-up's tile order
    quote: Quote  # escrow, gas, upload (the manifest alone) and expected time
    deadline: int
    refunded_wei: int  # the parent's unfinished escrow taken back first
    posted: PostedJob | None  # None: a dry run

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "parent": self.parent.to_json(),
            "first": self.first.to_json(),
            "tasks": list(self.tasks),
            "tileCount": len(self.tasks),
            "quote": self.quote.to_json(),
            "deadline": self.deadline,
            "refunded": str(self.refunded_wei),
            "job": self.posted.to_json() if self.posted is not None else None,
        }


def attempts(directory: JobDir) -> list[JobDir]:
    """Every attempt at ``directory``'s frame, the first job first: the first job (found
    through ``followUp.first``) and its chain of follow-ups (``retriedBy``), as far as their
    directories exist."""
    root = directory
    first = directory.state().get("followUp", {}).get("first")
    if first:
        candidate = directory.path.parent / str(first)
        if candidate.is_dir():
            root = JobDir(candidate)
    chain = [root]
    while len(chain) <= MAX_FOLLOW_UPS:
        child = chain[-1].state().get("retriedBy")
        path = directory.path.parent / str(child) if child else None
        if path is None or not path.is_dir():
            break
        chain.append(JobDir(path))
    return chain


def verified_tasks(directory: JobDir) -> set[int]:
    """The first job's tasks a verified result of this job covers."""
    manifest = directory.manifest()
    return {
        manifest.task_of(tile)
        for verdict in directory.verdicts().leases.values()
        if verdict.file is not None
        for tile, state in verdict.tiles.items()
        if state == VerdictStatus.OK and 0 <= tile < manifest.tile_count
    }


def missing_tasks(chain: list[JobDir]) -> list[int]:
    """The first job's tasks no attempt of the chain has a verified result for."""
    done: set[int] = set()
    for directory in chain:
        done |= verified_tasks(directory)
    return [t for t in range(chain[0].public().tasks) if t not in done]


def _options(state: dict[str, Any], reward_wei: int | None, deadline: int | None) -> JobOptions:
    """The parent's market terms and reputation gate (``reward_wei`` and ``deadline``, seconds
    from now, when given)."""
    posted = dict(state.get("options") or {})
    gate: dict[str, Any] = {}
    if posted.get("minCompleted") is not None:
        gate["min_completed"] = int(posted["minCompleted"])
    if posted.get("maxFaults") is not None:
        gate["max_faults"] = int(posted["maxFaults"])
    options = JobOptions(
        kernel=str(state["kernel"]),
        replication=int(state["replication"]),
        reward_wei=int(state["rewardPerTileReplica"]),
        lease_length=int(state["leaseLength"]),
        deadline=int(posted.get("deadlineIn") or state["leaseLength"]),
        priority=int(state.get("priority", 0)),
        **gate,
    )
    if reward_wei is not None:
        options = replace(options, reward_wei=reward_wei)
    if deadline is not None:
        options = replace(options, deadline=deadline)
    options.check()
    return options


def retry(
    artist: Artist,
    job: JobLike = None,
    *,
    reward_wei: int | None = None,
    deadline: int | None = None,
    dry_run: bool = False,
) -> RetryReport:
    """Post a follow-up job of the tasks still missing from ``job``'s frame (any attempt of it
    names the frame; the latest attempt is retried), once that attempt ended: its unfinished
    escrow is refunded first. Market terms are the parent's unless ``reward_wei`` or
    ``deadline`` (seconds from now) are given. ``dry_run``: only the quote."""
    chain = attempts(artist.job_dir(job))
    parent = chain[-1]
    ref = parent.ref
    artist._check_here(ref)
    snap = artist.snapshot(ref)
    if not finished(snap):
        raise JobStateError(
            f"job {ref.job_id} is still running (deadline in "
            f"{format_duration(max(0, snap.deadline - artist.chain_now()))}): its unfinished "
            "tiles may still be delivered there",
            hint="wait for its deadline, or stop it first: "
            f"`blindframe client cancel {ref.job_id}`",
        )
    tasks = missing_tasks(chain)
    if not tasks:
        raise JobStateError(
            f"job {chain[0].ref.job_id} has nothing to retry: every tile has a verified result"
            + (f" (over {len(chain)} attempts)" if len(chain) > 1 else ""),
            hint=f"decrypt it: `blindframe client fetch {chain[0].ref.job_id}`",
        )
    if len(chain) >= MAX_FOLLOW_UPS:
        raise JobStateError(
            f"job {chain[0].ref.job_id} was tried {len(chain)} times already; a follow-up may "
            f"name at most {MAX_FOLLOW_UPS} earlier jobs",
            hint="post the frame again as a new job",
        )
    first = chain[0]
    state, manifest, secrets = parent.state(), first.manifest(), first.secrets()
    options = _options(state, reward_wei, deadline)
    canary_tasks = {t.task_index for t in secrets.tasks if t.canary}
    prepared = _posting._Prepared(
        kernel=manifest.kernel,
        inputs=tuple,  # never called: the inputs are the first job's, already uploaded
        frame=(int(state["frame"][0]), int(state["frame"][1])),
        params=dict(state.get("params") or {}),
        canaries=int(state.get("canaries", 0)),
        tile_count=len(tasks),
        scene=dict(state.get("scene") or {}),
    )
    escrow = len(tasks) * options.replication * options.reward_wei
    refunded = 0
    if not dry_run:
        with contextlib.suppress(JobStateError):
            refunded = artist.refund(ref).refunded_wei
    market = artist._signing_market()
    chain_deadline, gas = _posting._check_chain(
        artist, market, prepared, options, escrow, manifest.leaf_depth
    )
    follow_up = FollowUp(tuple(d.ref.job_id for d in chain), tuple(tasks))
    document = _follow_up_manifest(manifest, follow_up)
    canaries = len(canary_tasks.intersection(tasks))
    report = RetryReport(
        parent=ref,
        first=first.ref,
        tasks=tuple(tasks),
        quote=_quote(market, prepared, options, gas, canaries, document),
        deadline=chain_deadline,
        refunded_wei=refunded,
        posted=None,
    )
    if dry_run:
        return report
    posted = _post_follow_up(
        artist, chain, prepared, options, document, chain_deadline, report.quote
    )
    return replace(report, posted=posted)


def _follow_up_manifest(first: Manifest, follow_up: FollowUp) -> Manifest:
    """The follow-up's manifest: the first job's description, keys, inputs and FFT plan."""
    return Manifest.create(
        kernel=first.kernel,
        client_spec_hash=first.client_spec_hash,
        leaf_depth=first.leaf_depth,
        job=first.job,
        evaluation_keys=first.evaluation_keys,
        inputs=list(first.inputs),
        fft_plan=first.fft_plan,
        follow_up=follow_up,
    )


def _quote(
    market: Market,
    prepared: _posting._Prepared,
    options: JobOptions,
    post_gas: int,
    canaries: int,
    document: Manifest,
) -> Quote:
    """The follow-up's quote: its escrow and gas as any job's; it uploads only its manifest."""
    from web3.exceptions import Web3Exception

    from blindframe.errors import BlindframeError

    try:
        profiles = market.worker_profiles(prepared.kernel)
    except (BlindframeError, Web3Exception):
        profiles = []  # a market without advertisements: the time is unknown, not invented
    assert market.sender is not None  # a signing market
    return build_quote(
        kernel=prepared.kernel,
        frame=prepared.frame,
        tile_count=prepared.tile_count,
        canary_tiles=canaries,
        replication=options.replication,
        reward_wei=options.reward_wei,
        lease_length=options.lease_length,
        post_gas=post_gas,
        upload={"inputs": 0, "evaluationKeys": 0, "manifest": len(document.to_bytes())},
        profiles=profiles,
        max_fee=market.sender.max_fee,
    )


def _post_follow_up(
    artist: Artist,
    chain: list[JobDir],
    prepared: _posting._Prepared,
    options: JobOptions,
    document: Manifest,
    deadline: int,
    quote: Quote,
) -> PostedJob:
    """Upload the follow-up's manifest and post it; the parent's directory names it."""
    import time

    from blindframe.client.reports import PostedJob

    first, parent = chain[0], chain[-1]
    manifest = first.manifest()
    follow_up = document.follow_up
    assert follow_up is not None
    started = time.perf_counter()
    raw = document.to_bytes()
    store = artist.store()
    cid = store.add_bytes(raw, name="manifest.json").cid
    uploaded = _posting._Uploaded(
        manifest.evaluation_keys, list(manifest.inputs), raw, cid, [cid], len(raw)
    )
    escrow = prepared.tile_count * options.replication * options.reward_wei
    parent_state = parent.state()
    state = {
        key: value
        for key, value in parent_state.items()
        if key not in ("format", "jobId", "createdAt", "retriedBy", "tx", "quote", "postedAt")
    }
    state.update(
        tileCount=prepared.tile_count,
        replication=options.replication,
        rewardPerTileReplica=str(options.reward_wei),
        escrow=str(escrow),
        deadline=deadline,
        manifestCid=cid,
        options={**dict(parent_state.get("options") or {}), **options.to_json()},
        followUp={
            **follow_up.to_json(),
            "first": first.path.name,
            "parent": parent.path.name,
        },
        quote=quote.to_json(),
        postedAt=artist.chain_now(),
    )
    pending = jd.create_pending(
        artist.home, cid, manifest=raw, secrets=first.secrets(), state=state
    )
    market = artist._signing_market()
    job_id = _posting._post_job(
        market, prepared, options, uploaded, deadline, manifest.leaf_depth, pending, store
    )
    chain_id, market_address = artist._deployment_ref()
    ref = JobRef(chain_id, market_address, job_id)
    job = jd.promote(pending, ref)
    parent.save_state({**parent.state(), "retriedBy": ref.key})
    fft_plan = _plan_choice(parent_state, manifest)
    return PostedJob(
        ref=ref,
        directory=job.path,
        kernel=manifest.kernel,
        frame=prepared.frame,
        tile_count=prepared.tile_count,
        replication=options.replication,
        reward_wei=options.reward_wei,
        escrow_wei=escrow,
        deadline=deadline,
        manifest_cid=cid,
        evaluation_keys_cid=manifest.evaluation_keys.cid,
        uploaded_bytes=len(raw),
        keys_created=False,
        fft_plan=fft_plan,
        seconds={"post": time.perf_counter() - started},
        quote=quote,
    )


def _plan_choice(state: dict[str, Any], manifest: Manifest) -> PlanChoice:
    """The first job's FFT plan, as its job.json recorded the choice (the follow-up pins it)."""
    from blindframe.client.fftplan import PlanChoice

    saved = dict(state.get("fftPlan") or {})
    return PlanChoice(
        kernel=manifest.kernel,
        plan=manifest.fft_plan,
        isa=str(saved.get("isa", manifest.plan.isa)),
        source=str(saved.get("source", "given")),
        chosen_at=int(saved.get("chosenAt", 0)),
        survey_seconds=float(saved.get("surveySeconds", 0.0)),
        samples=int(saved.get("samples", 0)),
        share=float(saved.get("share", 0.0)),
    )
