"""Client side of a kernel: encrypt plaintext inputs into bundles, decrypt result bundles.

The secret key set stays in the key directory (:mod:`blindframe.fhe_core.keys`); this module
only reads it. Execution lives in :mod:`blindframe.fhe_core.server`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from blindframe.fhe_core import wire
from blindframe.fhe_core._kernel import IntArray, Kernel
from blindframe.fhe_core.errors import TwinMismatchError
from blindframe.fhe_core.kernels import (
    BRICK_FRAME,
    BRICK_ROWS,
    INPUT_WORDS,
    client_spec_hash,
    expected_outputs,
    get_kernel,
    import_concrete,
    input_function,
    output_function,
    output_words,
)
from blindframe.fhe_core.keys import load_fhe_client
from blindframe.fhe_core.packing import unpack_output

__all__ = ["KernelClient", "check_against_twin"]

_DECRYPTED_KEPT = 4096  # decrypted tiles remembered per client (a tile is a few hundred bytes)


class KernelClient:
    """Encrypts inputs and decrypts outputs of one kernel with one key set."""

    def __init__(self, kernel_id: str, key_dir: Path) -> None:
        self.kernel: Kernel = get_kernel(kernel_id)
        self.kernel_id = kernel_id
        self.spec_hash = client_spec_hash(kernel_id)
        self._client = load_fhe_client(kernel_id, key_dir)
        self._input_function = input_function(kernel_id)
        self._output_function = output_function(kernel_id)
        self._decrypted: dict[tuple[int | None, bytes], IntArray] = {}

    def encrypt(self, *plain: object, tile_index: int = wire.NO_TILE) -> bytes:
        """Validate and encrypt the kernel's encrypted inputs into an INPUT bundle.

        ``tile_index`` is NO_TILE for an input shared by every tile (the volume).
        """
        values = self.kernel.check_enc(list(plain))
        if self.kernel.brick_values:
            return self._encrypt_bricks(values[0], tile_index)
        # A circuit also takes its clear argument (None here: the worker supplies it); a gathered
        # kernel's EXPAND takes only the shared input.
        args = values if self.kernel.gathered else (*values, None)
        encrypted = self._client.encrypt(*args, function_name=self._input_function)
        if not isinstance(encrypted, tuple):
            encrypted = (encrypted,)
        entries = []
        for spec, value, enc in zip(self.kernel.enc, values, encrypted, strict=False):
            data = enc.serialize()
            wire.value_payload(data, spec.shape, INPUT_WORDS)  # our own output: sanity only
            entries.append(wire.ValueEntry(spec.name, value.shape, data))
        return wire.write_bundle(
            wire.BundleKind.INPUT, self.kernel_id, self.spec_hash, entries, tile_index
        )

    def _encrypt_bricks(self, values: IntArray, tile_index: int) -> bytes:
        """A bricked kernel's input: each brick encrypted for EXPAND, their seeded rows side by
        side, and the first brick's value as the frame a worker expands any brick in."""
        size = self.kernel.brick_values
        bricks = values.reshape(-1, size)
        rows = np.empty((len(bricks), size, INPUT_WORDS), dtype="<u8")
        frame = b""
        for number, brick in enumerate(bricks):
            data = self._client.encrypt(brick, function_name=self._input_function).serialize()
            payload = wire.value_payload(data, (size,), INPUT_WORDS)
            rows[number] = np.frombuffer(payload, dtype="<u8").reshape(size, INPUT_WORDS)
            frame = frame or data
        entries = [
            wire.ValueEntry(BRICK_ROWS, bricks.shape, rows.tobytes()),
            wire.ValueEntry(BRICK_FRAME, (size,), frame),
        ]
        return wire.write_bundle(
            wire.BundleKind.INPUT, self.kernel_id, self.spec_hash, entries, tile_index
        )

    def decrypt(self, bundle: bytes | memoryview, tile_index: int | None = None) -> IntArray:
        """Validate an OUTPUT bundle and decrypt it to the tile's integer pixels. The same bytes
        for the same tile decrypt once (a client verifies a tile's replicas, then decrypts the
        frame from one of them): later calls return a copy of the first answer."""
        key = (tile_index, hashlib.blake2b(bundle, digest_size=32).digest())
        known = self._decrypted.get(key)
        if known is None:
            known = self._decrypted[key] = self._decrypt(bundle, tile_index)
            while len(self._decrypted) > _DECRYPTED_KEPT:
                del self._decrypted[next(iter(self._decrypted))]
        return known.copy()

    def _decrypt(self, bundle: bytes | memoryview, tile_index: int | None) -> IntArray:
        parsed = wire.read_bundle(
            bundle,
            kind=wire.BundleKind.OUTPUT,
            kernel_id=self.kernel_id,
            spec_hash=self.spec_hash,
            expected=expected_outputs(self.kernel_id),
            tile_index=tile_index,
        )
        data = unpack_output(
            parsed.values[0].data, self.kernel.out_shape, output_words(self.kernel_id)
        )
        fhe = import_concrete()
        value = fhe.Value.deserialize(data)
        out = self._client.decrypt(value, function_name=self._output_function)
        return np.asarray(out, dtype=np.int64).reshape(self.kernel.out_shape)


def check_against_twin(
    kernel: Kernel, decrypted: IntArray, plain: tuple[IntArray, ...], clear: IntArray, what: str
) -> None:
    """Raise TwinMismatchError unless ``decrypted`` equals the twin's output for the tile."""
    expected = kernel.twin(plain, clear)
    if not np.array_equal(decrypted, expected):
        bad = np.argwhere(decrypted != expected)
        where = tuple(int(i) for i in bad[0])
        raise TwinMismatchError(
            f"{what}: {len(bad)} of {decrypted.size} pixels differ from the plaintext twin "
            f"(first at {list(where)}: {int(decrypted[where])} instead of {int(expected[where])})",
            hint="the worker's result is wrong: dispute it",
        )
