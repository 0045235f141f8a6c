"""The job manifest: the public description of a render job that workers fetch from IPFS.

It names the kernel and its client-spec hash, carries the kernel's public parameters (camera,
lights, filters), the FFT plan every replica computes with (``fftPlan``, see
:mod:`blindframe.fhe_core.plans`: honest replicas pinned to it are bit-identical) and the CIDs of
the evaluation keys and encrypted inputs. Nothing secret goes in it. Workers validate it before
use and cross-check it with the job on chain (kernel, tile count, leaf depth), since a manifest is
whatever the client uploaded.

An animation job's description has ``frames`` (:class:`~blindframe.fhe_core.jobs.PublicJob`):
1..``MAX_FRAMES`` frames of finite camera angles over its ``params``, one shared input for all of
them, a task per (frame, tile). A description without it (every manifest before animations) is
one frame, and a one-frame job's manifest carries none: its bytes and CID are unchanged.

A follow-up job (failed tiles posted again, see ``client retry``) has a manifest with
``followUp``: the jobs it retries (oldest first) and, per tile, the task of the first job it
computes. Its ``job``, ``inputs`` and ``evaluationKeys`` are the first job's, so nothing is
encrypted or uploaded again; render nodes use the lineage to skip jobs whose ancestors they
failed tiles of.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from blindframe.coordinator.errors import ManifestError
from blindframe.coordinator.store.cid import Cid
from blindframe.coordinator.store.errors import InvalidCidError
from blindframe.fhe_core.errors import FheCoreError
from blindframe.fhe_core.jobs import PublicJob
from blindframe.fhe_core.plans import FftPlan, PlanUnreachableError, isa_level, parse_plan

__all__ = ["FORMAT", "MAX_FOLLOW_UPS", "MAX_MANIFEST_BYTES", "ContentRef", "FollowUp", "Manifest"]

FORMAT = "blindframe-manifest/1"
MAX_MANIFEST_BYTES = 1 << 20
MAX_INPUT_BYTES = 1 << 31
MAX_KEY_BYTES = 1 << 32
# The longest lineage a follow-up job may name (client retries stop at 10).
MAX_FOLLOW_UPS = 32


@dataclass(frozen=True)
class ContentRef:
    """A CID and the exact byte size of the file behind it."""

    cid: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"cid": self.cid, "size": self.size}

    @classmethod
    def parse(cls, data: Any, what: str, limit: int) -> ContentRef:
        """Validate ``{"cid": ..., "size": ...}``."""
        if not isinstance(data, dict) or set(data) != {"cid", "size"}:
            raise ManifestError(f"{what} must be an object with exactly 'cid' and 'size'")
        try:
            cid = str(Cid.parse(data["cid"]))
        except InvalidCidError as exc:
            raise ManifestError(f"{what} has an invalid CID: {exc.message}") from None
        size = data["size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= limit:
            raise ManifestError(f"{what} size must be 1..{limit} bytes (not {_shown(size)})")
        return cls(cid=cid, size=size)


@dataclass(frozen=True)
class FollowUp:
    """What a follow-up job retries: ``ancestors``, the job ids it follows (the first job
    first, its parent last), and ``tasks``, the first job's task each of its tiles computes."""

    ancestors: tuple[int, ...]
    tasks: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"ancestors": list(self.ancestors), "tasks": list(self.tasks)}

    @classmethod
    def parse(cls, data: Any, first_job_tasks: int) -> FollowUp:
        """Validate ``{"ancestors": [...], "tasks": [...]}`` against the first job's task count."""
        if not isinstance(data, dict) or set(data) != {"ancestors", "tasks"}:
            raise ManifestError("followUp must be an object with exactly 'ancestors' and 'tasks'")
        ancestors, tasks = data["ancestors"], data["tasks"]
        if (
            not isinstance(ancestors, list)
            or not 0 < len(ancestors) <= MAX_FOLLOW_UPS
            or not all(_is_index(a) for a in ancestors)
            or len(set(ancestors)) != len(ancestors)
        ):
            raise ManifestError(
                f"followUp.ancestors must be 1..{MAX_FOLLOW_UPS} distinct job ids "
                f"(not {_shown(ancestors)})"
            )
        if (
            not isinstance(tasks, list)
            or not tasks
            or not all(_is_index(t) and t < first_job_tasks for t in tasks)
            or len(set(tasks)) != len(tasks)
        ):
            raise ManifestError(
                f"followUp.tasks must be distinct tasks of the first job (0..{first_job_tasks - 1})"
            )
        return cls(tuple(ancestors), tuple(tasks))


def _shown(value: Any) -> str:
    """A value from the document as an error message quotes it: a manifest is whatever the
    client uploaded, so a field may hold a megabyte; the message stays one short line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _timestamp(value: Any) -> str:
    """``createdAt``: an ISO 8601 time, as ``Manifest.create`` writes it."""
    try:
        if isinstance(value, str) and len(value) <= 40:
            datetime.fromisoformat(value)
            return value
    except ValueError:
        pass
    raise ManifestError(f"createdAt must be an ISO 8601 time (not {_shown(value)})")


def _clipped(message: str) -> str:
    """Another package's message about a field of the document (it may quote the field)."""
    return message if len(message) <= 240 else message[:237] + "..."


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``job`` is fhe_core's public job description (``PublicJob`` JSON)."""

    kernel: str
    client_spec_hash: str
    leaf_depth: int
    job: dict[str, Any]
    evaluation_keys: ContentRef
    inputs: tuple[ContentRef, ...]
    created_at: str
    fft_plan: str
    follow_up: FollowUp | None = None

    @property
    def plan(self) -> FftPlan:
        """The job's FFT plan, parsed (validated when the manifest was)."""
        return parse_plan(self.fft_plan)

    def check_plan_reachable(self, isa: str | None = None) -> None:
        """Raise PlanUnreachableError for a job whose FFT plan was measured on another SIMD code
        path than ``isa`` (default: this machine's): a worker there can never compute results
        bit-identical to the other replicas', so it must not claim the job's tiles."""
        here = isa_level() if isa is None else isa
        plan = self.plan
        if plan.isa != here:
            raise PlanUnreachableError(
                f"its FFT plan {self.fft_plan} was measured on the {plan.isa} code path and this "
                f"machine runs {here}: replicas computed here could never be bit-identical to the "
                "others'",
                hint="leave the job to render nodes whose CPU takes the same SIMD code path",
            )

    @property
    def tile_count(self) -> int:
        """Tiles of the job: the contract's tileCount (a follow-up's: the tasks it retries)."""
        if self.follow_up is not None:
            return len(self.follow_up.tasks)
        return int(self.job["tasks"])

    def task_of(self, tile: int) -> int:
        """The task (of ``job``, the first job's description) that tile ``tile`` computes: the
        tile itself, or for a follow-up job the task it retries."""
        if not 0 <= tile < self.tile_count:
            raise ManifestError(f"tile {tile} is outside a job of {self.tile_count} tiles")
        return tile if self.follow_up is None else self.follow_up.tasks[tile]

    def input_for(self, tile: int) -> ContentRef:
        """The input bundle tile ``tile`` computes on (the shared one for ``volume`` jobs)."""
        task = self.task_of(tile)
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs[task]

    def to_json(self) -> dict[str, Any]:
        """The document uploaded to IPFS (``followUp`` only in a follow-up job's)."""
        extra = {} if self.follow_up is None else {"followUp": self.follow_up.to_json()}
        return {
            **extra,
            "format": FORMAT,
            "kernel": self.kernel,
            "clientSpecHash": self.client_spec_hash,
            "leafDepth": self.leaf_depth,
            "job": self.job,
            "evaluationKeys": self.evaluation_keys.to_json(),
            "inputs": [ref.to_json() for ref in self.inputs],
            "createdAt": self.created_at,
            "fftPlan": self.fft_plan,
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes (sorted keys, no spaces): one manifest, one CID."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def create(
        cls,
        *,
        kernel: str,
        client_spec_hash: str,
        leaf_depth: int,
        job: dict[str, Any],
        evaluation_keys: ContentRef,
        inputs: list[ContentRef],
        fft_plan: str,
        follow_up: FollowUp | None = None,
    ) -> Manifest:
        """A new manifest (validated like a downloaded one). ``fft_plan``: the plan replicas pin
        (``fhe_core.plans.choose_plan(kernel)``); ``follow_up``: for a job that retries tasks of
        earlier ones."""
        document = cls(
            kernel=kernel,
            client_spec_hash=client_spec_hash,
            leaf_depth=leaf_depth,
            job=job,
            evaluation_keys=evaluation_keys,
            inputs=tuple(inputs),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            fft_plan=fft_plan,
            follow_up=follow_up,
        ).to_json()
        return cls.parse(json.dumps(document).encode())

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """Validate manifest bytes: size, JSON, schema, kernel, job description, inputs."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"the manifest is {len(raw)} bytes; at most {MAX_MANIFEST_BYTES}")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"the manifest is not JSON: {exc}") from None
        except RecursionError:
            # json's decoder recurses per nesting level: "[[[[..." of 1 MB overflows the stack.
            raise ManifestError("the manifest nests arrays or objects too deeply") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"not a {FORMAT} document")
        expected = {
            "format",
            "kernel",
            "clientSpecHash",
            "leafDepth",
            "job",
            "evaluationKeys",
            "inputs",
            "createdAt",
            "fftPlan",
        }
        present = set(data) - {"followUp"}
        if present != expected:
            extra, missing = present - expected, expected - present
            raise ManifestError(
                f"manifest fields differ from {FORMAT} "
                f"(unknown: {sorted(extra) or '-'}, missing: {sorted(missing) or '-'})"
            )
        kernel = data["kernel"]
        spec = data["clientSpecHash"]
        depth = data["leafDepth"]
        if not isinstance(spec, str) or not re.fullmatch(r"[0-9a-f]{64}", spec):
            raise ManifestError("clientSpecHash must be 64 lowercase hex digits (a sha256)")
        if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= 24:
            raise ManifestError(f"leafDepth must be 0..24 (not {_shown(depth)})")
        try:
            public = PublicJob.from_json(data["job"])
        except FheCoreError as exc:
            raise ManifestError(
                f"the job description is invalid: {_clipped(exc.message)}"
            ) from None
        if public.kernel_id != kernel:
            raise ManifestError(
                f"the job description is for {public.kernel_id}, not {str(kernel)[:60]} (the "
                "manifest's kernel)"
            )
        try:
            plan = parse_plan(data["fftPlan"], kernel)
        except FheCoreError as exc:
            raise ManifestError(
                f"fftPlan is invalid: {_clipped(exc.message)}", hint=exc.hint
            ) from None
        raw_inputs = data["inputs"]
        if not isinstance(raw_inputs, list):
            raise ManifestError("inputs must be a list")
        wanted = 1 if public.shared_input else public.tasks
        if len(raw_inputs) != wanted:
            raise ManifestError(
                f"{kernel} with {public.tasks} tiles needs {wanted} input(s), not {len(raw_inputs)}"
            )
        return cls(
            kernel=kernel,
            client_spec_hash=spec,
            leaf_depth=depth,
            job=public.to_json(),
            evaluation_keys=ContentRef.parse(
                data["evaluationKeys"], "evaluationKeys", MAX_KEY_BYTES
            ),
            inputs=tuple(
                ContentRef.parse(item, f"inputs[{i}]", MAX_INPUT_BYTES)
                for i, item in enumerate(raw_inputs)
            ),
            created_at=_timestamp(data["createdAt"]),
            fft_plan=str(plan),
            follow_up=(
                FollowUp.parse(data["followUp"], public.tasks) if "followUp" in data else None
            ),
        )

    def check_against_chain(self, *, kernel: str, tile_count: int, leaf_depth: int) -> None:
        """Refuse a manifest that disagrees with the job posted on chain."""
        if kernel != self.kernel:
            raise ManifestError(f"the chain says kernel {kernel!r}, the manifest {self.kernel!r}")
        if tile_count != self.tile_count:
            raise ManifestError(
                f"the chain says {tile_count} tiles, the manifest {self.tile_count}"
            )
        if leaf_depth != self.leaf_depth:
            raise ManifestError(
                f"the chain says leaf depth {leaf_depth}, the manifest {self.leaf_depth}"
            )
