"""The artist's job directories: ``<home>/jobs/<chainId>-<market>-<jobId>/``, private to the client.

Layout of one job directory (mode 0700)::

    job.json        what was posted: chain, market, job id, kernel, options, CIDs, transaction
    manifest.json   the exact manifest bytes uploaded to IPFS (its CID is in job.json)
    secrets.npz     fhe_core JobSecrets: task order, canaries, plaintexts for the twin (0600)
    verdicts.json   per lease: the result CID, root, what verification found per tile; disputes,
                    availability challenges, settlements, refunds with their transactions
    outputs/        lease-<id>.bflr: downloaded lease results whose bytes gave the revealed root
    frame.png, frame.npy   the decrypted frame (once decrypted); twin.png, twin.npy the plaintext
                    twin's frame when asked for

A job is first written as ``pending-<manifest CID>/`` and renamed once ``postJob`` is mined, so a
crash between the transaction and the rename loses nothing: :func:`list_jobs` shows pending
directories and the client adopts them when it finds their ``JobPosted`` event.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from eth_utils.address import is_hex_address, to_checksum_address

from blindframe.client.errors import JobNotFoundError
from blindframe.coordinator.manifest import Manifest
from blindframe.fhe_core.artist_jobs import JobSecrets
from blindframe.fhe_core.jobs import PublicJob

__all__ = [
    "JOB_FORMAT",
    "JobDir",
    "JobRef",
    "LeaseVerdict",
    "VerdictStatus",
    "Verdicts",
    "create_pending",
    "jobs_root",
    "list_jobs",
    "promote",
    "write_json",
]

JOB_FORMAT = "blindframe-client-job/1"
_KEY = re.compile(r"^(\d+)-(0x[0-9a-fA-F]{40})-(\d+)$")


@dataclass(frozen=True)
class JobRef:
    """A job on one market of one chain: the name of its directory."""

    chain_id: int
    market: str
    job_id: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "market", to_checksum_address(self.market))

    @property
    def key(self) -> str:
        """``<chainId>-<market, lower case>-<jobId>``: the job directory's name."""
        return f"{self.chain_id}-{self.market.lower()}-{self.job_id}"

    @classmethod
    def parse(cls, text: str) -> JobRef:
        """The inverse of :attr:`key`."""
        match = _KEY.match(text.strip())
        if match is None or not is_hex_address(match[2]):
            raise JobNotFoundError(
                f"{text!r} is not a job key (<chainId>-<market address>-<jobId>)",
                hint="give the job id, or the key `blindframe client jobs` lists",
            )
        return cls(int(match[1]), match[2], int(match[3]))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"chainId": self.chain_id, "market": self.market, "jobId": self.job_id}


def write_json(path: Path, data: Any, *, mode: int = 0o600) -> None:
    """Write JSON atomically (a reader never sees half a file), with ``mode``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    tmp.replace(path)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobNotFoundError(f"{what} {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise JobNotFoundError(f"{what} {path} is unreadable: {exc}") from None


class VerdictStatus(StrEnum):
    """What the client found of a lease's result, or of one of its tiles (tiles are ``ok`` or
    ``wrong``). The values are what verdicts.json and snapshots hold."""

    PENDING = "pending"  # not checked yet
    OK = "ok"  # every tile decrypted to the twin's pixels
    WRONG = "wrong"  # a tile decrypted to other pixels
    TAMPERED = "tampered"  # bytes that do not give the revealed root, or do not decrypt
    UNAVAILABLE = "unavailable"  # the result could not be fetched (retried)


@dataclass
class LeaseVerdict:
    """What the client found when it checked one lease's result."""

    lease_id: int
    lane: int
    first_tile: int
    count: int
    worker: str
    cid: str
    root: str
    status: VerdictStatus = VerdictStatus.PENDING
    tiles: dict[int, VerdictStatus] = field(default_factory=dict)  # tile -> ok | wrong
    reasons: dict[int, str] = field(default_factory=dict)  # tile -> why it is wrong
    reason: str = ""  # why the whole lease failed (tampered, unavailable)
    file: str | None = None
    checked_at: int = 0
    attempts: int = 0
    # The bytes of the revealed root never reached the client: the result could not be fetched,
    # or what came does not give the revealed root. Such a lease is challenged for availability
    # (a dispute could not win: nobody can open leaves of a root whose bytes nobody has).
    undelivered: bool = False

    @property
    def final(self) -> bool:
        """Whether checking again cannot change the verdict (only 'unavailable' is retried)."""
        return self.status in (VerdictStatus.OK, VerdictStatus.WRONG, VerdictStatus.TAMPERED)

    def to_json(self) -> dict[str, Any]:
        """The form kept in verdicts.json (and shown in snapshots)."""
        return {
            "leaseId": self.lease_id,
            "lane": self.lane,
            "firstTile": self.first_tile,
            "count": self.count,
            "worker": self.worker,
            "cid": self.cid,
            "root": self.root,
            "status": self.status,
            "tiles": {str(k): v for k, v in sorted(self.tiles.items())},
            "reasons": {str(k): v for k, v in sorted(self.reasons.items())},
            "reason": self.reason,
            "file": self.file,
            "checkedAt": self.checked_at,
            "attempts": self.attempts,
            "undelivered": self.undelivered,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LeaseVerdict:
        """Read what :meth:`to_json` wrote."""
        return cls(
            lease_id=int(data["leaseId"]),
            lane=int(data["lane"]),
            first_tile=int(data["firstTile"]),
            count=int(data["count"]),
            worker=str(data["worker"]),
            cid=str(data["cid"]),
            root=str(data["root"]),
            status=VerdictStatus(str(data["status"])),
            tiles={int(k): VerdictStatus(str(v)) for k, v in dict(data.get("tiles", {})).items()},
            reasons={int(k): str(v) for k, v in dict(data.get("reasons", {})).items()},
            reason=str(data.get("reason", "")),
            file=data.get("file"),
            checked_at=int(data.get("checkedAt", 0)),
            attempts=int(data.get("attempts", 0)),
            undelivered=bool(
                data.get("undelivered", data.get("status") == VerdictStatus.UNAVAILABLE)
            ),
        )


@dataclass
class Verdicts:
    """verdicts.json: lease verdicts, disputes by tile, availability challenges by lease, and a
    log of the client's transactions."""

    leases: dict[int, LeaseVerdict] = field(default_factory=dict)
    disputes: dict[int, dict[str, Any]] = field(default_factory=dict)  # tile -> record
    challenges: dict[int, dict[str, Any]] = field(default_factory=dict)  # lease -> latest record
    actions: list[dict[str, Any]] = field(default_factory=list)

    def tile_verdict(self, lease_id: int, tile: int) -> VerdictStatus | None:
        """'ok', 'wrong', 'tampered', 'unavailable' or None (not checked)."""
        verdict = self.leases.get(lease_id)
        if verdict is None:
            return None
        if verdict.status in (
            VerdictStatus.TAMPERED,
            VerdictStatus.UNAVAILABLE,
            VerdictStatus.PENDING,
        ):
            return verdict.status if verdict.status != VerdictStatus.PENDING else None
        return verdict.tiles.get(tile)

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "leases": {str(k): v.to_json() for k, v in sorted(self.leases.items())},
            "disputes": {str(k): v for k, v in sorted(self.disputes.items())},
            "challenges": {str(k): v for k, v in sorted(self.challenges.items())},
            "actions": self.actions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdicts:
        """Read what :meth:`to_json` wrote."""
        return cls(
            leases={
                int(k): LeaseVerdict.from_json(v) for k, v in dict(data.get("leases", {})).items()
            },
            disputes={int(k): dict(v) for k, v in dict(data.get("disputes", {})).items()},
            challenges={int(k): dict(v) for k, v in dict(data.get("challenges", {})).items()},
            actions=list(data.get("actions", [])),
        )


class JobDir:
    """One job's directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    @property
    def pending(self) -> bool:
        """Written before postJob was mined; not yet renamed to its job key."""
        return self.path.name.startswith("pending-")

    @property
    def ref(self) -> JobRef:
        """The job this directory holds (JobNotFoundError while pending)."""
        if self.pending:
            raise JobNotFoundError(f"{self.path} is a job whose posting was not confirmed")
        return JobRef.parse(self.path.name)

    # -- files -----------------------------------------------------------------------------------

    @property
    def outputs(self) -> Path:
        """Folder of verified lease results."""
        path = self.path / "outputs"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def state(self) -> dict[str, Any]:
        """job.json."""
        data = _read_json(self.path / "job.json", "job state")
        if not isinstance(data, dict) or data.get("format") != JOB_FORMAT:
            raise JobNotFoundError(f"{self.path / 'job.json'} is not a {JOB_FORMAT} file")
        return data

    def save_state(self, state: dict[str, Any]) -> None:
        """Replace job.json."""
        write_json(self.path / "job.json", {**state, "format": JOB_FORMAT})

    def manifest(self) -> Manifest:
        """The manifest as uploaded (validated again on read)."""
        try:
            raw = (self.path / "manifest.json").read_bytes()
        except OSError as exc:
            raise JobNotFoundError(f"the job's manifest is unreadable: {exc}") from None
        return Manifest.parse(raw)

    def public(self) -> PublicJob:
        """fhe_core's public job description, from the manifest."""
        return PublicJob.from_json(self.manifest().job)

    def secrets(self) -> JobSecrets:
        """The client's secrets of the job."""
        path = self.path / "secrets.npz"
        if not path.is_file():
            raise JobNotFoundError(
                f"{path} is missing: without it the job's tiles cannot be checked or decrypted"
            )
        return JobSecrets.load(path)

    def verdicts(self) -> Verdicts:
        """verdicts.json (empty before the first verification)."""
        path = self.path / "verdicts.json"
        if not path.exists():
            return Verdicts()
        data = _read_json(path, "verdicts")
        return Verdicts.from_json(data if isinstance(data, dict) else {})

    def save_verdicts(self, verdicts: Verdicts) -> None:
        """Replace verdicts.json."""
        write_json(self.path / "verdicts.json", verdicts.to_json())

    def save_last_status(self, phase: str, tile_states: Mapping[Any, int], at: int) -> None:
        """Remember the job's phase and tile counts as last read from the chain (status.json)."""
        write_json(
            self.path / "status.json", {"phase": phase, "tileStates": dict(tile_states), "at": at}
        )

    def last_status(self) -> tuple[Any, dict[Any, int], int | None]:
        """The phase, tile counts and read time last saved; ``(None, {}, None)`` if none."""
        path = self.path / "status.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return data["phase"], dict(data["tileStates"]), int(data["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, {}, None

    def log_action(self, action: str, **details: Any) -> None:
        """Append a transaction the client sent for this job to verdicts.json."""
        verdicts = self.verdicts()
        verdicts.actions.append({"action": action, "at": int(time.time()), **details})
        self.save_verdicts(verdicts)


def jobs_root(home: Path) -> Path:
    """``<home>/jobs`` (0700)."""
    path = Path(home) / "jobs"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def list_jobs(home: Path) -> list[JobDir]:
    """Every job directory of ``home`` (pending ones too), oldest first."""
    root = jobs_root(home)
    dirs = [
        JobDir(p)
        for p in root.iterdir()
        if p.is_dir() and (p.name.startswith("pending-") or _KEY.match(p.name))
    ]

    def posted_at(job: JobDir) -> tuple[float, str]:
        try:
            return float(job.state().get("createdAt", 0)), job.path.name
        except JobNotFoundError:
            return 0.0, job.path.name

    return sorted(dirs, key=posted_at)


def create_pending(
    home: Path,
    manifest_cid: str,
    *,
    manifest: bytes,
    secrets: JobSecrets,
    state: dict[str, Any],
) -> JobDir:
    """Write a job directory before posting (secrets first: they cannot be made again)."""
    path = jobs_root(home) / f"pending-{manifest_cid}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=0o700)
    job = JobDir(path)
    secrets_path = path / "secrets.npz"
    # Create it 0600 first: JobSecrets.save opens the existing file and keeps its mode.
    os.close(os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    secrets.save(secrets_path)
    fd = os.open(path / "manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(manifest)
    job.save_state({**state, "createdAt": time.time()})
    return job


def promote(pending: JobDir, ref: JobRef, **state_changes: Any) -> JobDir:
    """Rename a pending directory to its job key once the job id is known."""
    target = jobs_root(pending.path.parent.parent) / ref.key
    state = pending.state()
    state.update(state_changes, chainId=ref.chain_id, market=ref.market, jobId=ref.job_id)
    pending.save_state(state)
    if target.exists():
        # Adopted twice (two processes found the same event): keep the first, drop this one.
        with contextlib.suppress(OSError):
            shutil.rmtree(pending.path)
        return JobDir(target)
    pending.path.rename(target)
    return JobDir(target)
