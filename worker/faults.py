"""How a render node behaves: honest (production) by default; TEST-ONLY misbehaviours, chosen
by the hidden ``--fault`` option, for end-to-end tests of the protocol's fault paths.

The computer (:mod:`blindframe.worker.compute`), the node's parts and the referee ask the
:class:`Behaviour` chosen once at start (:func:`behaviour_for`) what to do at each point where a
dishonest node would differ; they never look at the option themselves.

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
from typing import TYPE_CHECKING

from blindframe.coordinator.results import LeaseResult, pack_lease_result
from blindframe.fhe_core import wire
from blindframe.fhe_core.kernels import (
    client_spec_hash,
    expected_outputs,
    get_kernel,
    output_words,
)
from blindframe.fhe_core.packing import pack_output, unpack_output
from blindframe.worker.errors import NodeOptionError
from blindframe.worker.state import LeaseKind

if TYPE_CHECKING:
    from blindframe.worker.logs import NodeLog

__all__ = [
    "DESCRIPTIONS",
    "HONEST",
    "LOCAL_CHAIN_ID",
    "Behaviour",
    "CopyJuror",
    "Lazy",
    "Withhold",
    "WrongRoot",
    "behaviour_for",
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


class Behaviour:
    """The honest node: what production does at every point where a faulty one differs.

    Subclasses override only the hooks their fault changes.
    """

    fault: str | None = None  # the ``--fault`` value (None: honest)

    def announce(self, log: NodeLog) -> None:
        """Say at start how this node behaves (an honest node says nothing special)."""

    def tiles_to_run(self, tiles: list[int]) -> list[int]:
        """The tiles of a lease to compute in the sandbox."""
        return tiles

    def outputs(self, kernel: str, computed: list[bytes], tiles: list[int]) -> list[bytes]:
        """The OUTPUT bundles a lease's result carries, one per tile, from the computed ones."""
        return computed

    def root_to_commit(self, result: LeaseResult, leaf_depth: int) -> bytes:
        """The root this node commits to and reveals for ``result``."""
        return result.root

    @property
    def serves_results(self) -> bool:
        """Whether result files are added to IPFS (anyone can fetch them)."""
        return True

    @property
    def answers_challenges(self) -> bool:
        """Whether this node opens challenged leaves of its own leases."""
        return True

    @property
    def polices(self) -> bool:
        """Whether this node compares replicas, draws juries, resolves contests and challenges,
        and reclaims other workers' expired leases."""
        return True

    def copies(self, lease_kind: LeaseKind) -> bool:
        """Whether a lease of ``lease_kind`` repacks a contested side's tile instead of being
        computed."""
        return False

    def report_computed(self, log: NodeLog, lease_id: int, lease_kind: LeaseKind) -> None:
        """Say what is wrong with a lease just computed (nothing, for an honest node)."""


class _Faulty(Behaviour):
    """A TEST-ONLY dishonest node: it says so at start and after every lease it spoils."""

    fault: str
    spoiled = ""  # what is wrong with each lease it computes, for its warnings

    def announce(self, log: NodeLog) -> None:
        log.warning(
            "fault_injection",
            f"TEST-ONLY FAULT INJECTION: this node is DISHONEST (--fault {self.fault}): "
            + DESCRIPTIONS[self.fault]
            + f"; allowed on the local chain {LOCAL_CHAIN_ID} only",
            fault=self.fault,
        )

    @property
    def polices(self) -> bool:
        return False  # a dishonest test node does not police others

    def report_computed(self, log: NodeLog, lease_id: int, lease_kind: LeaseKind) -> None:
        log.warning(
            "fault_injected",
            f"FAULT {self.fault}: lease {lease_id} {self.spoiled}",
            lease=lease_id,
        )


class Lazy(_Faulty):
    """``--fault lazy``: computes one tile, passes off random coefficients as every tile's."""

    fault = "lazy"
    spoiled = "carries random coefficients, not the computed result"

    def tiles_to_run(self, tiles: list[int]) -> list[int]:
        return tiles[:1]  # it needs one real bundle to imitate

    def outputs(self, kernel: str, computed: list[bytes], tiles: list[int]) -> list[bytes]:
        return lazy_outputs(kernel, computed[0], tiles)


class WrongRoot(_Faulty):
    """``--fault wrong-root``: uploads the honest result, commits to a lazy result's root."""

    fault = "wrong-root"
    spoiled = "will reveal a root its uploaded result does not give"

    def root_to_commit(self, result: LeaseResult, leaf_depth: int) -> bytes:
        return wrong_root(result, leaf_depth)


class Withhold(_Faulty):
    """``--fault withhold``: never serves its results' bytes nor answers challenges."""

    fault = "withhold"
    spoiled = "is never served: its bytes stay on this machine"

    @property
    def serves_results(self) -> bool:
        return False

    @property
    def answers_challenges(self) -> bool:
        return False


class CopyJuror(_Faulty):
    """``--fault copy``: as a juror, repacks a contested side's revealed tile as its result."""

    fault = "copy"
    spoiled = "is a copy of a contested side's tile, not computed"

    def copies(self, lease_kind: LeaseKind) -> bool:
        return lease_kind == LeaseKind.JUROR

    def report_computed(self, log: NodeLog, lease_id: int, lease_kind: LeaseKind) -> None:
        if self.copies(lease_kind):  # its replica leases are computed honestly
            super().report_computed(log, lease_id, lease_kind)


HONEST = Behaviour()

_BEHAVIOURS: dict[str, type[_Faulty]] = {
    cls.fault: cls for cls in (Lazy, WrongRoot, Withhold, CopyJuror)
}


def behaviour_for(fault: str | None) -> Behaviour:
    """The behaviour the ``--fault`` option asks for (None: the honest one)."""
    if fault is None:
        return HONEST
    if fault not in _BEHAVIOURS:
        raise NodeOptionError(f"fault must be one of {'|'.join(_BEHAVIOURS)} (not {fault!r})")
    return _BEHAVIOURS[fault]()


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
    shape, words = get_kernel(kernel).out_shape, output_words(kernel)
    value = unpack_output(bundle.values[0].data, shape, words)
    payload = bytes(wire.value_payload(value, shape, words))
    offset = value.find(payload)
    if offset < 0:
        raise NodeOptionError("the fault injector cannot locate the payload of an output bundle")
    outputs = []
    for tile in tiles:
        random = value[:offset] + secrets.token_bytes(len(payload)) + value[offset + len(payload) :]
        forged = pack_output(random, shape, words)
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
