"""The job manifest: the public description of a render job that workers fetch from IPFS.

It names the kernel and its client-spec hash, carries the kernel's public parameters (camera,
lights, filters), the FFT plan every replica computes with (``fftPlan``, see
:mod:`blindframe.fhe_core.plans`: honest replicas pinned to it are bit-identical) and the CIDs of
the evaluation keys and encrypted inputs. Nothing secret goes in it. Workers validate it before
use and cross-check it with the job on chain (kernel, tile count, leaf depth), since a manifest is
whatever the client uploaded.
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

__all__ = ["FORMAT", "MAX_MANIFEST_BYTES", "ContentRef", "Manifest"]

FORMAT = "blindframe-manifest/1"
MAX_MANIFEST_BYTES = 1 << 20
MAX_INPUT_BYTES = 1 << 31
MAX_KEY_BYTES = 1 << 32


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
            cid = str(Cid.parse(str(data["cid"])))
        except InvalidCidError as exc:
            raise ManifestError(f"{what} has an invalid CID: {exc.message}") from None
        size = data["size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= limit:
            raise ManifestError(f"{what} size must be 1..{limit} bytes (not {size!r})")
        return cls(cid=cid, size=size)


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
        """Tiles (tasks) of the job: the contract's tileCount."""
        return int(self.job["tasks"])

    def input_for(self, tile: int) -> ContentRef:
        """The input bundle tile ``tile`` computes on (the shared one for ``volume`` jobs)."""
        if not 0 <= tile < self.tile_count:
            raise ManifestError(f"tile {tile} is outside a job of {self.tile_count} tiles")
        return (
            self.inputs[0] if len(self.inputs) == 1 and self.tile_count != 1 else self.inputs[tile]
        )

    def to_json(self) -> dict[str, Any]:
        """The document uploaded to IPFS."""
        return {
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
    ) -> Manifest:
        """A new manifest (validated like a downloaded one). ``fft_plan``: the plan replicas pin
        (``fhe_core.plans.choose_plan(kernel)``)."""
        document = cls(
            kernel=kernel,
            client_spec_hash=client_spec_hash,
            leaf_depth=leaf_depth,
            job=job,
            evaluation_keys=evaluation_keys,
            inputs=tuple(inputs),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            fft_plan=fft_plan,
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
        if set(data) != expected:
            extra, missing = set(data) - expected, expected - set(data)
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
            raise ManifestError(f"leafDepth must be 0..24 (not {depth!r})")
        try:
            public = PublicJob.from_json(data["job"])
        except FheCoreError as exc:
            raise ManifestError(f"the job description is invalid: {exc.message}") from None
        if public.kernel_id != kernel:
            raise ManifestError(f"the job description is for {public.kernel_id}, not {kernel}")
        try:
            plan = parse_plan(data["fftPlan"], kernel)
        except FheCoreError as exc:
            raise ManifestError(f"fftPlan is invalid: {exc.message}", hint=exc.hint) from None
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
            created_at=str(data["createdAt"]),
            fft_plan=str(plan),
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
