"""Server side of a kernel: run a tile on validated bundles with a client's evaluation keys.

A worker compiles the kernel itself (:mod:`blindframe.fhe_core.kernels`), derives the tile's
clear argument from the job's public parameters, and never runs anything a client sent. Bundles
from the network go through a sandbox child's ``lease`` call instead
(:mod:`blindframe.fhe_core.sandbox`, which runs :mod:`blindframe.fhe_core.lease_child`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core import wire
from blindframe.fhe_core._kernel import IntArray, Kernel
from blindframe.fhe_core.errors import BundleMismatchError
from blindframe.fhe_core.kernels import (
    EXPAND,
    INPUT_WORDS,
    TAKE,
    TILE,
    client_spec_hash,
    concrete_server,
    expected_inputs,
    get_kernel,
    import_concrete,
    output_function,
    output_words,
)
from blindframe.fhe_core.keys import read_evaluation_keys
from blindframe.fhe_core.packing import pack_output

__all__ = [
    "ExpandedInput",
    "expand_input",
    "read_input",
    "run_gathered_tile",
    "run_gathered_tiles",
    "run_tile",
    "tile_clear_args",
]


def tile_clear_args(
    kernel_id: str, params: Mapping[str, Any], frame_hw: tuple[int, int], tile_index: int
) -> IntArray:
    """The clear runtime argument of one tile, derived and bounds-checked from public params."""
    kernel = get_kernel(kernel_id)
    clear = np.asarray(kernel.clear_args(params, frame_hw, tile_index), dtype=np.int64)
    kernel.check_clear(clear)
    return clear


def run_tile(
    kernel_id: str,
    input_bundle: bytes | memoryview,
    evaluation_keys: bytes | memoryview | Any,
    clear: IntArray,
    *,
    tile_index: int,
) -> bytes:
    """Compute one tile; return its OUTPUT bundle.

    ``input_bundle`` is the tile's INPUT bundle, or the job's shared one (tile NO_TILE, the
    volume). ``evaluation_keys`` is an EVAL_KEYS bundle or already deserialized keys. For a
    gathered kernel this expands the shared input first: a worker computing many tiles of one
    job calls :func:`expand_input` once and :func:`run_gathered_tile` per tile instead.
    """
    kernel = get_kernel(kernel_id)
    clear = np.asarray(clear, dtype=np.int64)
    kernel.check_clear(clear)
    bundle = read_input(kernel_id, input_bundle, tile_index)
    keys = _evaluation_keys(kernel_id, evaluation_keys)
    if kernel.gathered:
        expanded = _expand(kernel_id, bundle, keys)
        return run_gathered_tile(kernel_id, expanded, keys, clear, tile_index=tile_index)
    fhe = import_concrete()
    args = [fhe.Value.deserialize(bytes(entry.data)) for entry in bundle.values]
    result = concrete_server(kernel_id).run(
        *args, clear, evaluation_keys=keys, function_name=output_function(kernel_id)
    )
    return _output_bundle(kernel_id, result.serialize(), tile_index)


@dataclass(frozen=True)
class ExpandedInput:
    """A gathered kernel's shared input, expanded once per job: every ciphertext in full (rows of
    ``ciphertexts``), and a template of the tile function's input to copy the samples into."""

    kernel_id: str
    ciphertexts: npt.NDArray[np.uint64]
    template: bytes


def expand_input(
    kernel_id: str, input_bundle: bytes | memoryview, evaluation_keys: bytes | memoryview | Any
) -> ExpandedInput:
    """Validate a gathered kernel's shared INPUT bundle and expand its seeded ciphertexts once
    (1–2 s for the 4096 voxels of ``volume``; 16 KiB per ciphertext after)."""
    if not get_kernel(kernel_id).gathered:
        raise BundleMismatchError(f"{kernel_id} does not gather from a shared input")
    bundle = read_input(kernel_id, input_bundle, wire.NO_TILE)
    return _expand(kernel_id, bundle, _evaluation_keys(kernel_id, evaluation_keys))


def run_gathered_tile(
    kernel_id: str,
    expanded: ExpandedInput,
    evaluation_keys: Any,
    clear: IntArray,
    *,
    tile_index: int,
) -> bytes:
    """Compute one tile of a gathered kernel from its expanded shared input; return its OUTPUT
    bundle. ``clear`` is the tile's ``[index, clear]``: the samples are gathered by ``index`` in
    the clear (copies of ciphertexts; no FHE operation), the circuit gets ``clear``."""
    ((_, output),) = run_gathered_tiles(kernel_id, expanded, evaluation_keys, [(tile_index, clear)])
    return output


def run_gathered_tiles(
    kernel_id: str,
    expanded: ExpandedInput,
    evaluation_keys: Any,
    tiles: Sequence[tuple[int, IntArray]],
) -> Iterator[tuple[int, bytes]]:
    """Compute ``(tile_index, clear)`` tiles in order, yielding each one's OUTPUT bundle as it is
    done. The next tile's samples are gathered and parsed in a thread while Concrete computes the
    current one (it releases the GIL): about a tenth of a tile's time, hidden."""
    kernel = get_kernel(kernel_id)
    if expanded.kernel_id != kernel_id:
        raise BundleMismatchError(f"the input was expanded for {expanded.kernel_id}")
    clears = [np.asarray(clear, dtype=np.int64) for _, clear in tiles]
    for clear in clears:
        kernel.check_clear(clear)
    server = concrete_server(kernel_id)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gather") as pool:
        ahead = [pool.submit(_gather, kernel, expanded, clear) for clear in clears[:1]]
        for n, ((tile_index, _), clear) in enumerate(zip(tiles, clears, strict=True)):
            samples = ahead.pop().result()
            ahead += [pool.submit(_gather, kernel, expanded, c) for c in clears[n + 1 : n + 2]]
            result = server.run(
                samples, clear[1], evaluation_keys=evaluation_keys, function_name=TILE
            )
            yield tile_index, _output_bundle(kernel_id, result.serialize(), tile_index)


def _gather(kernel: Kernel, expanded: ExpandedInput, clear: IntArray) -> Any:
    """The tile function's input: the template with the samples' ciphertexts copied in."""
    buffer = bytearray(expanded.template)
    rows = _payload_rows(buffer, kernel.gathered, expanded.ciphertexts.shape[1])
    rows[:] = expanded.ciphertexts[clear[0].ravel()]
    return import_concrete().Value.deserialize(bytes(buffer))


def read_input(kernel_id: str, data: bytes | memoryview, tile_index: int) -> wire.Bundle:
    """Validate an INPUT bundle for ``tile_index`` (header, values' framing and shapes) before
    Concrete sees a byte of it."""
    kernel = get_kernel(kernel_id)
    bundle = wire.read_bundle(
        data,
        kind=wire.BundleKind.INPUT,
        kernel_id=kernel_id,
        spec_hash=client_spec_hash(kernel_id),
        expected=expected_inputs(kernel_id),
    )
    if bundle.tile_index not in (wire.NO_TILE, tile_index):
        raise BundleMismatchError(
            f"input bundle is for tile {bundle.tile_index}, the task is tile {tile_index}"
        )
    for spec, entry in zip(kernel.enc, bundle.values, strict=True):
        wire.value_payload(entry.data, spec.shape, INPUT_WORDS)
    return bundle


def _evaluation_keys(kernel_id: str, keys: bytes | memoryview | Any) -> Any:
    if isinstance(keys, bytes | memoryview):
        return read_evaluation_keys(kernel_id, keys)
    return keys


def _expand(kernel_id: str, bundle: wire.Bundle, keys: Any) -> ExpandedInput:
    kernel = get_kernel(kernel_id)
    fhe = import_concrete()
    server = concrete_server(kernel_id)
    (entry,) = bundle.values
    shared = fhe.Value.deserialize(bytes(entry.data))
    full = server.run(shared, evaluation_keys=keys, function_name=EXPAND)
    template = server.run(full, evaluation_keys=keys, function_name=TAKE).serialize()
    data = full.serialize()
    count = int(np.prod(kernel.enc[0].shape))
    words = int(server.size_of_outputs(EXPAND)) // (count * 8)
    ciphertexts = np.frombuffer(
        wire.value_payload(data, kernel.enc[0].shape, words), dtype="<u8"
    ).reshape(count, words)
    return ExpandedInput(kernel_id, ciphertexts, template)


def _payload_rows(buffer: bytearray, count: int, words: int) -> npt.NDArray[np.uint64]:
    """The payload of a template value held in ``buffer``, as a writable ``(count, words)`` view."""
    payload = wire.value_payload(memoryview(buffer), (count,), words)
    if payload.readonly:
        # Concrete split the payload into several chunks: nothing here writes those in place.
        raise BundleMismatchError("the tile template's payload is not one contiguous block")
    return np.frombuffer(payload, dtype="<u8").reshape(count, words)


def _output_bundle(kernel_id: str, data: bytes, tile_index: int) -> bytes:
    kernel = get_kernel(kernel_id)
    packed = pack_output(data, kernel.out_shape, output_words(kernel_id))
    return wire.write_bundle(
        wire.BundleKind.OUTPUT,
        kernel_id,
        client_spec_hash(kernel_id),
        [wire.ValueEntry("out", kernel.out_shape, packed)],
        tile_index,
    )
