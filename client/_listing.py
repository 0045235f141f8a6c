"""The artist's job list: this home's job directories with their state on chain, or the state
last read when the chain is unreachable."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from blindframe.client import jobdir as jd
from blindframe.client.errors import JobNotFoundError
from blindframe.client.jobdir import JobRef
from blindframe.client.reports import JobSummary
from blindframe.coordinator.errors import RpcUnreachableError
from blindframe.coordinator.events import event_cid
from blindframe.errors import BlindframeError

if TYPE_CHECKING:
    from blindframe.client.artist import Artist

__all__ = ["jobs"]


def jobs(artist: Artist, *, with_status: bool = True) -> list[JobSummary]:
    """This home's jobs, oldest first; pending ones are adopted once their JobPosted event is
    found. ``with_status`` reads each job's state on this deployment's chain; with the chain
    unreachable, each row carries the state last read (``status_at``) and ``chain_error``."""
    dirs = jd.list_jobs(artist.home)
    chain_error: str | None = None
    if dirs and with_status:
        # Reach the chain once: a chain that is down is said once, not once per job.
        try:
            artist._chain()
        except RpcUnreachableError as exc:
            chain_error = str(exc)
        except BlindframeError:
            pass
    if chain_error is None and any(d.pending for d in dirs):
        with contextlib.suppress(BlindframeError):
            _adopt_pending(artist)
            dirs = jd.list_jobs(artist.home)
    out = []
    here: tuple[int, str] | None = None
    if with_status:
        with contextlib.suppress(BlindframeError):
            here = artist._deployment_ref()
    for job in dirs:
        try:
            state = job.state()
        except JobNotFoundError:
            state = {}
        phase, counts, read_at = None, {}, None
        if here is not None and not job.pending:
            ref = job.ref
            if (ref.chain_id, ref.market) == here:
                if chain_error is None:
                    with contextlib.suppress(BlindframeError):
                        snap = artist.snapshot(ref)
                        phase, counts = snap.phase, snap.tile_counts
                        read_at = int(time.time())
                        job.save_last_status(phase, counts, read_at)
                if phase is None:
                    phase, counts, read_at = job.last_status()
        out.append(
            JobSummary(
                key=job.path.name,
                directory=job.path,
                pending=job.pending,
                state=state,
                phase=phase,
                tile_states=counts,
                decrypted=(job.path / "frame.png").is_file(),
                status_at=read_at,
                chain_error=chain_error,
            )
        )
    return out


def _adopt_pending(artist: Artist) -> None:
    """Promote pending job directories whose JobPosted event (same client, same manifest CID)
    is on chain."""
    chain_id, market = artist._deployment_ref()
    posted = [e for e in artist.events() if e.name == "JobPosted"]
    for job in jd.list_jobs(artist.home):
        if not job.pending:
            continue
        state = job.state()
        if (state.get("chainId"), state.get("market")) != (chain_id, market):
            continue
        cid = state.get("manifestCid")
        for event in posted:
            if (
                str(event.args.get("client", "")).lower() == str(state.get("client")).lower()
                and event_cid(event.args.get("manifestCid")) == cid
            ):
                jd.promote(job, JobRef(chain_id, market, int(event.args["jobId"])))
                break
