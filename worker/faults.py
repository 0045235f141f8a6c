"""TEST-ONLY misbehaviour of a render node, for end-to-end tests of the protocol's fault paths.

``--fault lazy``: the node computes only the first tile of each lease, then passes off random
coefficients, shaped like a real OUTPUT bundle, as every tile's result (what a worker skipping
the work would do); it commits and reveals the root of those bytes, so replicas can prove it far.
``--fault wrong-root``: the node computes honestly and uploads the honest result, but commits and
reveals the root of a lazy result: the bytes behind its CID do not give its revealed root.

Both work only on a local Anvil chain (chain id 31337); the option is hidden from ``--help``.
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

__all__ = ["LOCAL_CHAIN_ID", "check_fault_allowed", "lazy_outputs", "wrong_root"]

LOCAL_CHAIN_ID = 31337


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
