"""TEST-ONLY misbehaviour of a render node, for end-to-end tests of the protocol's fault paths.

``--fault lazy``: the node computes only the first tile of each lease, then passes off random
coefficients, shaped like a real OUTPUT bundle, as every tile's result (what a worker skipping
the work would do); it commits and reveals the root of those bytes, so replicas can prove it far.
``--fault wrong-root``: the node computes honestly and uploads the honest result, but commits and
reveals the root of a lazy result: the bytes behind its CID do not give its revealed root.

``--fault withhold``: the node computes honestly, commits and reveals the root and the CID of its
result, but never serves the bytes (they are never added to its IPFS node) and never answers an
availability challenge: a data-withholding worker.
``--fault copy``: as a juror, the node does not compute the contested tile: it commits to a side's
revealed tile (side B of a disagreement, the disputed lease of a dispute), repacked as its own
result; its replica leases are computed honestly.

All work only on a local Anvil chain (chain id 31337); the option is hidden from ``--help``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from blindframe.coordinator.results import LeaseResult, pack_lease_result
from blindframe.fhe_core import wire
from blindframe.fhe_core.kernels import (
    client_spec_hash,
    expected_outputs,
    get_kernel,
    output_words,
)
from blindframe.worker.errors import NodeOptionError

__all__ = [
    "DESCRIPTIONS",
    "LOCAL_CHAIN_ID",
    "check_fault_allowed",
    "copied_side",
    "lazy_outputs",
    "wrong_root",
]

LOCAL_CHAIN_ID = 31337

# What each fault makes the node do, for its warnings.
DESCRIPTIONS = {
    "lazy": "it reveals random coefficients instead of computed results",
    "wrong-root": "it reveals roots that its uploaded results do not give",
    "withhold": "it reveals its results' roots but never serves their bytes nor answers "
    "availability challenges",
    "copy": "as a juror it copies a contested side's revealed tile instead of computing",
}


def check_fault_allowed(fault: str | None, chain_id: int) -> None:
    """Refuse a fault option anywhere but a local chain."""
    if fault is not None and chain_id != LOCAL_CHAIN_ID:
        raise NodeOptionError(
            f"--fault {fault} is a test-only option for a local chain (chain id "
            f"{LOCAL_CHAIN_ID}); this chain has id {chain_id}",
            hint="never run a dishonest node on a real network: its stake would be slashed",
        )


def lazy_outputs(kernel: str, template: bytes, tiles: Sequence[int]) -> list[bytes]:
    """One OUTPUT bundle per tile, shaped like ``template`` (a real output), with random
    coefficients: valid bundles whose coefficients are unrelated to any honest result."""
    spec = client_spec_hash(kernel)
    bundle = wire.read_bundle(
        template,
        kind=wire.BundleKind.OUTPUT,
        kernel_id=kernel,
        spec_hash=spec,
        expected=expected_outputs(kernel),
    )
    value = bytes(bundle.values[0].data)
    shape = get_kernel(kernel).out_shape
    payload = bytes(wire.value_payload(value, shape, output_words(kernel)))
    offset = value.find(payload)
    if offset < 0:
        raise NodeOptionError("the fault injector cannot locate the payload of an output bundle")
    outputs = []
    for tile in tiles:
        forged = value[:offset] + secrets.token_bytes(len(payload)) + value[offset + len(payload) :]
        outputs.append(
            wire.write_bundle(
                wire.BundleKind.OUTPUT,
                kernel,
                spec,
                [wire.ValueEntry(bundle.values[0].name, bundle.values[0].shape, forged)],
                tile,
            )
        )
    return outputs


def wrong_root(result: LeaseResult, leaf_depth: int) -> bytes:
    """The root of a lazy result for the same lease: what a ``wrong-root`` node reveals."""
    forged = lazy_outputs(result.kernel, result.outputs[0], list(result.tiles))
    return pack_lease_result(
        kernel=result.kernel,
        job_id=result.job_id,
        lease_id=result.lease_id,
        first_tile=result.first_tile,
        leaf_depth=leaf_depth,
        outputs=forged,
    ).root


def copied_side(lease_a: int, lease_b: int) -> int:
    """The side a ``copy`` juror copies: B of a disagreement (the lease the challenger proved
    far), the disputed lease of a dispute."""
    return lease_b or lease_a
