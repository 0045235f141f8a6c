"""Packed output ciphertexts: rounded mask words, exact decryption, and refusal of bad bytes."""

from __future__ import annotations

import numpy as np
import pytest

from blindframe.fhe_core import packing, sample, server, wire
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import BundleFormatError
from blindframe.fhe_core.jobs import PublicJob, task_clear_args
from blindframe.fhe_core.kernels import get_kernel, output_words
from blindframe.fhe_core.server import run_tile

KERNEL = "volume@1"


@pytest.fixture(scope="module")
def exact_value(clients: dict[str, KernelClient], eval_keys: dict[str, object]) -> bytes:
    """The exact (unpacked) Concrete output value of one real tile of the sample scene."""
    job = PublicJob(KERNEL, dict(sample.SAMPLE_CAMERA), (16, 16), 4, True)
    bundle = clients[KERNEL].encrypt(sample.sample_volume())
    captured: list[bytes] = []

    def capture(value: bytes, shape: tuple[int, ...], words: int) -> bytes:
        captured.append(value)
        return packing.pack_output(value, shape, words)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "pack_output", capture)
        run_tile(KERNEL, bundle, eval_keys[KERNEL], task_clear_args(job, 1), tile_index=1)
    return captured[0]


def test_a_pixel_costs_under_4096_bytes_and_repacking_changes_nothing(exact_value: bytes) -> None:
    shape, words = get_kernel(KERNEL).out_shape, output_words(KERNEL)
    packed = packing.pack_output(exact_value, shape, words)
    assert len(packed) / np.prod(shape) < 4096
    assert len(packed) < len(exact_value) / 4
    value = packing.unpack_output(packed, shape, words)
    # Rounded words round to themselves: packing is a projection, so replicas stay identical.
    assert packing.pack_output(value, shape, words) == packed
    got = np.frombuffer(wire.value_payload(value, shape, words), dtype="<u8").reshape(-1, words)
    exact = np.frombuffer(wire.value_payload(exact_value, shape, words), dtype="<u8")
    exact = exact.reshape(-1, words)
    assert not (got[:, :-1] & np.uint64((1 << (64 - packing.MASK_BITS)) - 1)).any()
    distance = np.minimum(got - exact, exact - got)  # modular distance on the 64-bit torus
    assert int(distance.max()) <= 1 << (63 - packing.MASK_BITS)  # far inside 2**58
    np.testing.assert_array_equal(got[:, -1], exact[:, -1])  # bodies whole
    # The framing around the payload is Concrete's own, byte for byte.
    assert len(value) == len(exact_value)
    assert value.find(bytes(wire.value_payload(value, shape, words))) == exact_value.find(
        bytes(wire.value_payload(exact_value, shape, words))
    )


def test_bad_packed_values_are_refused_by_name(exact_value: bytes) -> None:
    shape, words = get_kernel(KERNEL).out_shape, output_words(KERNEL)
    packed_value = packing.pack_output(exact_value, shape, words)
    with pytest.raises(BundleFormatError, match="shorter than its header"):
        packing.unpack_output(b"\x01", shape, words)
    with pytest.raises(BundleFormatError, match="expected"):
        packing.unpack_output(packed_value[:-1], shape, words)
    with pytest.raises(BundleFormatError, match="framing"):
        packing.unpack_output(b"\xff\xff\xff\xff" + packed_value[4:], shape, words)
    # Framing garbled but of the right length: the rebuilt value fails its structural check.
    garbled = bytearray(packed_value)
    garbled[4:12] = b"\xff" * 8
    with pytest.raises(BundleFormatError):
        packing.unpack_output(bytes(garbled), shape, words)
