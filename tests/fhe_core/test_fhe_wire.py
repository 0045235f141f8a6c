"""Bad bundles are rejected with a clear error before Concrete parses anything."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from blindframe.fhe_core import wire
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import BundleFormatError, BundleMismatchError, FheCoreError
from blindframe.fhe_core.kernels import client_spec_hash, expected_inputs
from blindframe.fhe_core.keys import read_evaluation_keys
from blindframe.fhe_core.server import run_tile

KID = "post@1"
TAPS = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]])


@pytest.fixture(scope="module")
def good(clients: dict[str, KernelClient]) -> bytes:
    return clients[KID].encrypt(np.arange(100).reshape(10, 10) % 8, tile_index=2)


def _read(data: bytes, kernel_id: str = KID) -> wire.Bundle:
    return wire.read_bundle(
        data,
        kind=wire.BundleKind.INPUT,
        kernel_id=kernel_id,
        spec_hash=client_spec_hash(kernel_id),
        expected=expected_inputs(kernel_id),
    )


def test_good_bundle_round_trips(good: bytes) -> None:
    bundle = _read(good)
    assert bundle.kernel_id == KID
    assert bundle.tile_index == 2
    assert bundle.values[0].name == "img"
    assert bundle.values[0].shape == (10, 10)
    assert len(wire.bundle_hash(good)) == 64


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda b: b[:10], BundleFormatError, "truncated"),
        (lambda b: b[:-1], BundleFormatError, "truncated"),
        (lambda b: b + b"\0", BundleFormatError, "oversized"),
        (lambda b: b"XXXX" + b[4:], BundleFormatError, "magic"),
        (lambda b: b[:4] + struct.pack("<H", 9) + b[6:], BundleMismatchError, "format version 9"),
        (lambda b: b[:6] + bytes([2]) + b[7:], BundleMismatchError, "expected a INPUT bundle"),
        (lambda b: b[:8] + struct.pack("<I", 10**6) + b[12:], BundleFormatError, "header length"),
    ],
)
def test_malformed_headers(good: bytes, mutate: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _read(mutate(good))  # type: ignore[operator]


def test_wrong_kernel_version_spec_hash_and_tile(good: bytes) -> None:
    with pytest.raises(BundleMismatchError, match="expected 'volume@1'"):
        _read(good, "volume@1")
    # Same kernel name, another version number in the header field.
    pos = good.index(b"post@1") + len(b"post@1")
    wrong_version = good[:pos] + struct.pack("<H", 2) + good[pos + 2 :]
    with pytest.raises(BundleMismatchError, match="version 2"):
        _read(wrong_version)
    spec = bytes.fromhex(client_spec_hash(KID))
    wrong_spec = good.replace(spec, bytes(32))
    with pytest.raises(BundleMismatchError, match="client specs"):
        _read(wrong_spec)
    with pytest.raises(BundleMismatchError, match="tile 2"):
        wire.read_bundle(
            good,
            kind=wire.BundleKind.INPUT,
            kernel_id=KID,
            spec_hash=client_spec_hash(KID),
            expected=expected_inputs(KID),
            tile_index=3,
        )


def test_oversized_value_claim_is_refused(good: bytes) -> None:
    bundle = _read(good)
    entry = bundle.values[0]
    big = wire.write_bundle(
        wire.BundleKind.INPUT,
        KID,
        client_spec_hash(KID),
        [wire.ValueEntry("img", entry.shape, bytes(entry.data) + bytes(10**6))],
        2,
    )
    with pytest.raises(BundleFormatError, match="more than"):
        _read(big)


def test_random_bytes_never_crash(rng: np.random.Generator, eval_keys: dict[str, object]) -> None:
    for size in (0, 1, 7, 16, 100, 5000):
        junk = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        with pytest.raises(FheCoreError):
            run_tile(KID, junk, eval_keys[KID], TAPS, tile_index=0)
    # A valid header over a garbage value: caught by the structural check, not by Concrete.
    garbage = wire.write_bundle(
        wire.BundleKind.INPUT,
        KID,
        client_spec_hash(KID),
        [wire.ValueEntry("img", (10, 10), rng.integers(0, 256, 2500, dtype=np.uint8).tobytes())],
        0,
    )
    with pytest.raises(BundleFormatError):
        run_tile(KID, garbage, eval_keys[KID], TAPS, tile_index=0)


def test_corrupted_value_inside_a_valid_header(good: bytes, eval_keys: dict[str, object]) -> None:
    bundle = _read(good)
    data = bytearray(bundle.values[0].data)
    # Claim more segments than the value has.
    data[0:4] = struct.pack("<I", 300)
    bad = wire.write_bundle(
        wire.BundleKind.INPUT,
        KID,
        client_spec_hash(KID),
        [wire.ValueEntry("img", (10, 10), bytes(data))],
        2,
    )
    with pytest.raises(BundleFormatError, match="Concrete value"):
        run_tile(KID, bad, eval_keys[KID], TAPS, tile_index=2)


def test_eval_keys_bundle_is_validated(eval_bundles: dict[str, bytes]) -> None:
    with pytest.raises(BundleMismatchError, match="expected 'post@1'"):
        read_evaluation_keys(KID, eval_bundles["volume@1"])
    with pytest.raises(BundleFormatError, match="truncated"):
        read_evaluation_keys(KID, eval_bundles[KID][:-5])


def test_output_bundle_from_wrong_tile_is_refused(
    good: bytes, clients: dict[str, KernelClient], eval_keys: dict[str, object]
) -> None:
    out = run_tile(KID, good, eval_keys[KID], TAPS, tile_index=2)
    with pytest.raises(BundleMismatchError, match="tile 2"):
        clients[KID].decrypt(out, tile_index=5)
    with pytest.raises(BundleMismatchError, match="input bundle is for tile 2"):
        run_tile(KID, good, eval_keys[KID], TAPS, tile_index=4)
