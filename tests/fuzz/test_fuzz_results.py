"""Generated bad lease results through the download check every reader runs
(coordinator/results.py: open_lease_result, for the client's verification, a replica's
comparison, a juror): bytes that do not give the revealed root, broken headers, wrong sizes.
Each is refused with LeaseResultError in one line, or gives exactly the committed outputs."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

from hypothesis import given
from hypothesis import strategies as st

from blindframe.coordinator.errors import LeaseResultError
from blindframe.coordinator.results import open_lease_result, pack_lease_result
from blindframe.fhe_core.merkle import leaf_depth

from .tally import FUZZ, json_values, tally
from .test_fuzz_bundles import mutated

if TYPE_CHECKING:
    from blindframe.coordinator.results import LeaseResult
    from tests.conftest import VolumeJob

KERNEL = "volume@1"
# A lease of one tile: every case that gets past the header costs a Merkle tree of 2**16
# leaves (0.2 s of CPU), so the cases below reach it about one time in twelve.
LEASE = {"job_id": 3, "lease_id": 7, "first_tile": 0, "count": 1}


def _packed(volume_job: VolumeJob) -> LeaseResult:
    return pack_lease_result(
        kernel=KERNEL,
        job_id=LEASE["job_id"],
        lease_id=LEASE["lease_id"],
        first_tile=0,
        leaf_depth=leaf_depth(KERNEL),
        outputs=[volume_job.outputs[0]],
    )


def reader_check(data: bytes, root: bytes) -> LeaseResult:
    """What the client (client/_verifying.py) and a worker (worker/referee.py) do with a
    downloaded result of the lease whose root its worker revealed."""
    return open_lease_result(data, kernel=KERNEL, leaf_depth=leaf_depth(KERNEL), root=root, **LEASE)


@st.composite
def rewritten_headers(draw: st.DrawFn, valid: bytes) -> bytes:
    """The result with its JSON header changed (a field replaced, dropped, or the whole header
    replaced by any JSON value or junk) and its length field kept consistent, or not."""
    header_len = struct.unpack_from("<I", valid, 8)[0]
    header: Any = json.loads(valid[12 : 12 + header_len])
    body = valid[12 + header_len :]
    choice = draw(st.integers(0, 3))
    if choice == 0:
        key = draw(st.sampled_from([*sorted(header), "extra"]))
        header[key] = draw(
            json_values
            | st.lists(st.integers(-5, 10**6) | st.sampled_from([float("inf"), 1e30]), max_size=3)
            | st.sampled_from([KERNEL, "post@1", 3, 7, 0, -1, 2**64])
        )
    elif choice == 1:
        header.pop(draw(st.sampled_from(sorted(header))))
    elif choice == 2:
        header = draw(json_values)
    raw = (
        json.dumps(header).encode()
        if choice < 3
        else draw(st.binary(max_size=64) | st.integers(100, 5000).map(lambda n: b"[" * n))
    )
    length = (
        len(raw) if draw(st.integers(0, 4)) else draw(st.sampled_from([0, 1, 2**16, 2**32 - 1]))
    )
    return struct.pack("<4sHHI", b"BFLR", 1, 0, length) + raw + body


@st.composite
def flipped_outputs(draw: st.DrawFn, valid: bytes) -> bytes:
    """One bit flipped in the outputs' bytes (bundle headers, framing, ciphertext words)."""
    start = 12 + struct.unpack_from("<I", valid, 8)[0]
    at = draw(st.integers(start, len(valid) - 1))
    return valid[:at] + bytes([valid[at] ^ (1 << draw(st.integers(0, 7)))]) + valid[at + 1 :]


def test_bad_lease_results_are_refused(volume_job: VolumeJob) -> None:
    packed = _packed(volume_job)
    valid, root = packed.to_bytes(), packed.root
    assert reader_check(valid, root).outputs == packed.outputs
    files = st.integers(0, 15).flatmap(
        lambda n: flipped_outputs(valid)
        if n == 0
        else mutated(valid, header_only=True)
        if n < 8
        else rewritten_headers(valid)
    )
    with tally("result bundles not giving the root (bytes, headers, sizes)", LeaseResultError) as t:
        t.figures["root_checks"] = 0

        @FUZZ
        @given(files, st.sampled_from([root, root[::-1]]))
        def case(data: bytes, revealed: bytes) -> None:
            result = t.check(lambda: reader_check(data, revealed))
            if result is None and "give root" in t.last_refusal:
                t.figures["root_checks"] += 1  # refused at the last check: the root
            if result is not None:
                # Accepted only when the bytes give the revealed root, which binds the outputs:
                # a change the root does not cover (the header's informative "root") is harmless.
                assert revealed == root
                assert [bytes(o) for o in result.outputs] == packed.outputs

        case()
