"""What the artist library returns: JSON-ready records of posts, verdicts, payments, frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blindframe.client.fftplan import PlanChoice
from blindframe.client.jobdir import JobRef, LeaseVerdict, Verdicts, VerdictStatus
from blindframe.client.quote import Quote
from blindframe.client.snapshot import JobPhase, JobSnapshot, TileStatus

__all__ = [
    "EMPTY_FRAME",
    "CancelReport",
    "ChallengeRecord",
    "DecryptResult",
    "DisputeRecord",
    "JobSummary",
    "PostedJob",
    "RefundReport",
    "RenderResult",
    "SettleReport",
    "StepReport",
    "VerifyReport",
]


@dataclass(frozen=True)
class PostedJob:
    """A job ``post`` put on chain."""

    ref: JobRef
    directory: Path
    kernel: str
    frame: tuple[int, int]
    tile_count: int
    replication: int
    reward_wei: int
    escrow_wei: int
    deadline: int
    manifest_cid: str
    evaluation_keys_cid: str
    uploaded_bytes: int
    keys_created: bool
    fft_plan: PlanChoice
    seconds: dict[str, float]
    quote: Quote | None = None  # what it was quoted before posting

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.ref.to_json(),
            "key": self.ref.key,
            "directory": str(self.directory),
            "kernel": self.kernel,
            "frame": list(self.frame),
            "tileCount": self.tile_count,
            "replication": self.replication,
            "rewardPerTileReplica": str(self.reward_wei),
            "escrow": str(self.escrow_wei),
            "deadline": self.deadline,
            "manifestCid": self.manifest_cid,
            "evaluationKeysCid": self.evaluation_keys_cid,
            "uploadedBytes": self.uploaded_bytes,
            "keysCreated": self.keys_created,
            "fftPlan": self.fft_plan.plan,
            "fftPlanChoice": self.fft_plan.to_json(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "quote": self.quote.to_json() if self.quote is not None else None,
        }


@dataclass(frozen=True)
class VerifyReport:
    """What one ``verify`` call checked, and every verdict known after it."""

    ref: JobRef
    checked: tuple[LeaseVerdict, ...]
    verdicts: Verdicts
    downloaded_bytes: int

    @property
    def wrong_tiles(self) -> list[int]:
        """Tiles whose result decrypted to something else than the twin."""
        return sorted(
            {
                t
                for v in self.verdicts.leases.values()
                for t, s in v.tiles.items()
                if s == VerdictStatus.WRONG
            }
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "job": self.ref.key,
            "checked": [v.to_json() for v in self.checked],
            "leases": [v.to_json() for _, v in sorted(self.verdicts.leases.items())],
            "wrongTiles": self.wrong_tiles,
            "downloadedBytes": self.downloaded_bytes,
        }


@dataclass(frozen=True)
class SettleReport:
    """Leases settled now, and why the others wait."""

    ref: JobRef
    settled: tuple[int, ...]
    paid_wei: int
    waiting: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "job": self.ref.key,
            "settled": list(self.settled),
            "paid": str(self.paid_wei),
            "waiting": list(self.waiting),
        }


@dataclass(frozen=True)
class DisputeRecord:
    """A dispute the client opened on chain."""

    tile: int
    lease_id: int
    contest_id: int
    bond_wei: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tile": self.tile,
            "leaseId": self.lease_id,
            "contestId": self.contest_id,
            "bond": str(self.bond_wei),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ChallengeRecord:
    """An availability challenge the client opened on chain: the lease's node must open
    ``leaves`` of ``tile`` by the challenge's deadline, or forfeit the lease."""

    challenge_id: int
    lease_id: int
    tile: int
    leaves: tuple[int, ...]
    bond_wei: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "challengeId": self.challenge_id,
            "leaseId": self.lease_id,
            "tile": self.tile,
            "leaves": list(self.leaves),
            "bond": str(self.bond_wei),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RefundReport:
    """What ``refund`` credited and withdrew."""

    ref: JobRef
    refunded_wei: int
    withdrawn_wei: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "job": self.ref.key,
            "refunded": str(self.refunded_wei),
            "withdrawn": str(self.withdrawn_wei),
        }


@dataclass(frozen=True)
class CancelReport:
    """What ``cancel`` credited and withdrew, and what live leases still hold (their escrow is
    paid to them or becomes refundable when they end)."""

    ref: JobRef
    refunded_wei: int
    withdrawn_wei: int
    held_slots: int
    held_wei: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "job": self.ref.key,
            "refunded": str(self.refunded_wei),
            "withdrawn": str(self.withdrawn_wei),
            "heldSlots": self.held_slots,
            "heldEscrow": str(self.held_wei),
        }


# What `client fetch` and `client render` say of a frame that is all background.
EMPTY_FRAME = (
    "the frame is empty: every pixel is background (for a volume frame, the camera misses "
    "the model: see --yaw, --pitch, --zoom)"
)


@dataclass(frozen=True)
class DecryptResult:
    """The decrypted frame (integers 0..out_max), where its files are, and the twin's when asked.

    ``png``: the 8- or 16-bit PNG asked for, else the job directory's ``frame.png``; ``image``:
    the file asked for in ``image_format`` (png8, png16 or exr; the job directory's
    ``frame.png`` when none was asked for). Twin files (``twin_png``) take the same format when
    one was named.
    """

    ref: JobRef
    frame: np.ndarray[Any, np.dtype[np.int64]]
    png: Path
    array: Path
    twin_png: Path | None
    matches_twin: bool | None
    leases: tuple[int, ...]
    image: Path | None = None
    image_format: str = "png8"
    # An animation job's frames (``frame`` is then ``(frames, H, W)``): the numbered sequence
    # written in ``image_format``, its animated PNG preview, and the twin's sequence if asked.
    sequence: tuple[Path, ...] = ()
    preview: Path | None = None
    twin_sequence: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        animation = (
            {
                "frames": [str(p) for p in self.sequence],
                "preview": str(self.preview) if self.preview else None,
                "twinFrames": [str(p) for p in self.twin_sequence],
                "emptyFrames": [i for i, f in enumerate(self.frame) if not np.any(f)],
            }
            if self.sequence
            else {}
        )
        return {
            **animation,
            "job": self.ref.key,
            "image": str(self.image or self.png),
            "format": self.image_format,
            "png": str(self.png),
            "array": str(self.array),
            "twinPng": str(self.twin_png) if self.twin_png else None,
            "matchesTwin": self.matches_twin,
            "shape": list(self.frame.shape),
            "leases": list(self.leases),
            # Every pixel background (0): for a volume frame, the camera missed the model.
            "emptyFrame": not bool(np.any(self.frame)),
        }


@dataclass(frozen=True)
class StepReport:
    """One round of the client's duties on a job (what ``render`` repeats)."""

    verify: VerifyReport
    disputes: tuple[DisputeRecord, ...]
    settle: SettleReport
    resolved: tuple[int, ...]  # contests resolved
    challenges: tuple[ChallengeRecord, ...] = ()  # availability challenges opened
    drawn: tuple[int, ...] = ()  # contests whose jury the client drew
    forfeited: tuple[int, ...] = ()  # availability challenges resolved (their leases forfeited)


@dataclass(frozen=True)
class RenderResult:
    """What ``render`` did: the job, the frame, the final snapshot, wall time."""

    posted: PostedJob
    decrypted: DecryptResult
    snapshot: JobSnapshot
    seconds: float
    disputes: tuple[DisputeRecord, ...] = ()
    challenges: tuple[ChallengeRecord, ...] = ()
    # The follow-up jobs of failed tiles (``RetryReport.to_json()``), in order.
    follow_ups: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "job": self.posted.to_json(),
            "followUps": list(self.follow_ups),
            "frame": self.decrypted.to_json(),
            "payments": self.snapshot.payments,
            "disputes": [d.to_json() for d in self.disputes],
            "challenges": [c.to_json() for c in self.challenges],
            "contests": [c.to_json() for c in self.snapshot.contests],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class JobSummary:
    """One job directory of this home, with its chain state when it could be read."""

    key: str
    directory: Path
    pending: bool
    state: dict[str, Any]
    phase: JobPhase | None = None
    tile_states: dict[TileStatus, int] = field(default_factory=dict)
    decrypted: bool = False
    # When ``phase`` was read from the chain (Unix time); older than now when the chain was
    # unreachable and the state shown is the one last seen.
    status_at: int | None = None
    chain_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "key": self.key,
            "directory": str(self.directory),
            "pending": self.pending,
            "jobId": self.state.get("jobId"),
            "chainId": self.state.get("chainId"),
            "market": self.state.get("market"),
            "kernel": self.state.get("kernel"),
            "frame": self.state.get("frame"),
            "tileCount": self.state.get("tileCount"),
            "replication": self.state.get("replication"),
            "rewardPerTileReplica": self.state.get("rewardPerTileReplica"),
            "manifestCid": self.state.get("manifestCid"),
            "createdAt": self.state.get("createdAt"),
            "phase": self.phase,
            "tileStates": self.tile_states,
            "decrypted": self.decrypted,
            "statusAt": self.status_at,
            "chainError": self.chain_error,
        }
