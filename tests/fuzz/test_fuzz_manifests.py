"""Generated bad manifests through the node's own check (worker/validation.py: check_manifest,
what a render node runs on a job's manifest before it claims anything): every one is accepted
whole or refused with ManifestError (or PlanUnreachableError) in one line naming the field."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from blindframe.coordinator.errors import ManifestError
from blindframe.coordinator.manifest import ContentRef, Manifest
from blindframe.fhe_core.errors import FheCoreError
from blindframe.fhe_core.kernels import client_spec_hash
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.fhe_core.plans import PlanUnreachableError, isa_level, plan_sizes
from blindframe.fhe_core.sample import SAMPLE_CAMERA
from blindframe.worker.validation import check_manifest

from .tally import FUZZ, json_values, tally

CID = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
CID_V1 = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
JOBS: dict[str, dict[str, Any]] = {
    # One shared volume for 4 tiles of 8 x 8; a 2-task frame job (a tile and a canary).
    "volume@1": {
        "kernel": "volume@1",
        "params": dict(SAMPLE_CAMERA),
        "frame": [16, 16],
        "tasks": 4,
        "shared_input": True,
    },
    "post@1": {
        "kernel": "post@1",
        "params": {"filter": "edge"},
        "frame": [8, 8],
        "tasks": 2,
        "shared_input": False,
    },
}


class _PlanRefusalError(ManifestError):
    """Either refusal a node turns into "refused job N: ..." (see JobValidator._validated)."""


@functools.cache
def base(kernel: str) -> dict[str, Any]:
    """A valid manifest document of ``kernel`` (made and checked by the project's own code)."""
    job = JOBS[kernel]
    plan = f"{isa_level()}:" + "+".join(f"{n}=0123456789abcdef" for n in plan_sizes(kernel))
    inputs = 1 if job["shared_input"] else job["tasks"]
    return Manifest.create(
        kernel=kernel,
        client_spec_hash=client_spec_hash(kernel),
        leaf_depth=leaf_depth(kernel),
        job=job,
        evaluation_keys=ContentRef(CID, 1000),
        inputs=[ContentRef(CID_V1, 99)] * inputs,
        fft_plan=plan,
    ).to_json()


def node_check(raw: bytes, kernel: str, tiles: int | None = None) -> Manifest:
    """What a node does with a job's manifest bytes when the chain says ``base(kernel)``'s job
    (of ``tiles`` tiles: a follow-up job's count differs)."""
    document = base(kernel)
    try:
        return check_manifest(
            raw,
            kernel=kernel,
            tile_count=document["job"]["tasks"] if tiles is None else tiles,
            leaf_depth=document["leafDepth"],
            spec_hash=document["clientSpecHash"],
        )
    except PlanUnreachableError as exc:
        raise _PlanRefusalError(exc.message) from None


# Values a field is likely to be given by a confused or hostile client, beside any JSON value.
def _garbled_cid(cid: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(cid) - 1), st.characters(codec="ascii")).map(
        lambda p: cid[: p[0]] + p[1] + cid[p[0] + 1 :]
    )


_PLAUSIBLE: st.SearchStrategy[Any] = (
    json_values
    | st.integers(-3, 70_000)
    | _garbled_cid(CID)
    | _garbled_cid(CID_V1)
    | st.sampled_from(["volume@1", "post@1", "shade@1", "volume@2", "", "x" * 300])
    | st.from_regex(r"[0-9a-f]{60,68}", fullmatch=True)
    | st.from_regex(r"x86-64(-v[0-9])?:[0-9]{3,5}=[0-9a-fA-F]{14,18}(\+[0-9]{3,5}=[0-9a-f]{16})?")
    | st.lists(st.integers(-2, 5), max_size=5)
    | st.fixed_dictionaries({"cid": _garbled_cid(CID), "size": st.integers(-2, 2**33)})
)

# Where a mutation lands: a path of keys (list indices as ints) into the document.
_PATHS: list[tuple[Any, ...]] = [
    (),
    ("format",),
    ("kernel",),
    ("clientSpecHash",),
    ("leafDepth",),
    ("job",),
    ("job", "kernel"),
    ("job", "params"),
    ("job", "params", "filter"),
    ("job", "params", "yaw"),
    ("job", "params", "zoom"),
    ("job", "frame"),
    ("job", "frame", 0),
    ("job", "tasks"),
    ("job", "shared_input"),
    ("evaluationKeys",),
    ("evaluationKeys", "cid"),
    ("evaluationKeys", "size"),
    ("inputs",),
    ("inputs", 0),
    ("inputs", 0, "cid"),
    ("inputs", 0, "size"),
    ("createdAt",),
    ("fftPlan",),
    ("followUp",),
    ("followUp", "ancestors"),
    ("followUp", "tasks"),
]
# What a refusal of a change at each top-level field may call it.
_NAMES = {
    "format": ("format", "not a blindframe-manifest"),
    "kernel": ("kernel",),
    "clientSpecHash": ("clientSpecHash", "client-spec hash"),
    "leafDepth": ("leafDepth", "leaf depth"),
    "job": ("job", "tiles", "tile"),
    "evaluationKeys": ("evaluationKeys",),
    "inputs": ("inputs", "input(s)"),
    "createdAt": ("createdAt",),
    "fftPlan": ("fftPlan", "FFT plan"),
    "followUp": ("followUp", "tiles"),
}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, int, bytes, tuple[str, ...]]:
    """A valid manifest with one to three fields replaced, removed or added to (unknown keys),
    serialized as JSON; and what a refusal may name."""
    kernel = draw(st.sampled_from(sorted(JOBS)))
    document = copy.deepcopy(base(kernel))
    tiles = document["job"]["tasks"]
    if draw(st.booleans()):
        # A follow-up job retrying task 0 of job 1: one tile on chain.
        document["followUp"] = {"ancestors": [1], "tasks": [0]}
        tiles = 1
    names: set[str] = set()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS))
        parent: Any = document
        for key in path[:-1]:
            if (isinstance(parent, dict) and key in parent) or (
                isinstance(parent, list) and isinstance(key, int) and key < len(parent)
            ):
                parent = parent[key]
            else:
                break
        else:
            action = draw(st.sampled_from(["replace", "replace", "delete", "unknown key"]))
            key = path[-1] if path else None
            if action == "unknown key" or key is None:
                if isinstance(parent, dict):
                    parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
            elif isinstance(parent, dict):
                if action == "delete":
                    parent.pop(key, None)
                else:
                    parent[key] = draw(_PLAUSIBLE)
            elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
                if action == "delete":
                    del parent[key]
                else:
                    parent[key] = draw(_PLAUSIBLE)
            names.update(_NAMES.get(str(path[0]), ()) if path else ())
    raw = json.dumps(document).encode()
    # Unknown top-level keys are named as such; the rest as their field.
    return kernel, tiles, raw, (*sorted(names), "fields differ", "unknown", "missing")


def test_mutated_manifests_are_refused_by_name_or_accepted_whole() -> None:
    with tally("manifests: fields (types, ranges, sizes, unknown keys, CIDs)", ManifestError) as t:

        @FUZZ
        @given(mutated())
        def case(case: tuple[str, int, bytes, tuple[str, ...]]) -> None:
            kernel, tiles, raw, names = case
            manifest = t.check(lambda: node_check(raw, kernel, tiles), names=names)
            if manifest is not None:
                # Accepted: it is the canonical document a node stores and reads back.
                again = Manifest.parse(manifest.to_bytes())
                assert again == manifest
                assert again.tile_count == manifest.tile_count
                for ref in (again.evaluation_keys, *again.inputs):
                    assert ref.size > 0

        case()


@st.composite
def raw_bytes(draw: st.DrawFn) -> tuple[str, bytes]:
    """Manifest bytes broken below the JSON level: truncated, spliced with junk, deeply nested,
    not UTF-8, oversized, or not JSON at all. (Junk spliced into a valid document may leave it
    valid, e.g. spaces between tokens: a node may accept those, whole.)"""
    kernel = draw(st.sampled_from(sorted(JOBS)))
    valid = json.dumps(base(kernel)).encode()
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return kernel, valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == 1:
        at = draw(st.integers(0, len(valid)))
        return kernel, valid[:at] + draw(st.binary(min_size=1, max_size=40)) + valid[at:]
    if kind == 2:
        depth = draw(st.integers(500, 200_000))
        opener = draw(st.sampled_from([b"[", b'{"a":', b'{"format":[']))
        return kernel, opener * depth
    if kind == 3:
        return kernel, draw(st.binary(max_size=300))
    if kind == 4:
        pad = draw(st.integers(1, 64))
        return kernel, valid[:-1] + b',"junk":"' + b"x" * ((1 << 20) + pad) + b'"}'
    number = draw(st.sampled_from([b"1" * 5000, b"1e999", b"-1e999", b"NaN", b"Infinity"]))
    return kernel, valid.replace(b'"leafDepth": ', b'"leafDepth": ' + number + b', "x": ', 1)


def test_broken_manifest_bytes_are_refused() -> None:
    with tally("manifests: bytes (truncated, junk, nesting, oversized)", ManifestError) as t:

        @FUZZ
        @given(raw_bytes())
        def case(case: tuple[str, bytes]) -> None:
            kernel, raw = case
            manifest = t.check(lambda: node_check(raw, kernel))
            if manifest is not None:
                assert manifest == node_check(json.dumps(base(kernel)).encode(), kernel)

        case()


def test_the_base_documents_are_valid() -> None:
    """The fuzzing starts from manifests a node accepts (else every case is a trivial refusal)."""
    for kernel in JOBS:
        try:
            node_check(json.dumps(base(kernel)).encode(), kernel)
        except (ManifestError, FheCoreError) as exc:
            raise AssertionError(f"the base {kernel} manifest is refused: {exc}") from None
