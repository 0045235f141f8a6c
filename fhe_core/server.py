"""Server side of a kernel: run a tile on validated bundles with a client's evaluation keys.

A worker compiles the kernel itself (:mod:`blindframe.fhe_core.kernels`), derives the tile's
clear argument from the job's public parameters, and never runs anything a client sent. Bundles
from the network go through a sandbox child's ``lease`` call instead
(:mod:`blindframe.fhe_core.sandbox`, which runs :mod:`blindframe.fhe_core.lease_child`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from blindframe.fhe_core import wire
from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core.errors import BundleMismatchError
from blindframe.fhe_core.kernels import (
    INPUT_WORDS,
    client_spec_hash,
    compile_kernel,
    expected_inputs,
    function_name,
    get_kernel,
    import_concrete,
    output_words,
)
from blindframe.fhe_core.keys import read_evaluation_keys

__all__ = ["run_tile", "tile_clear_args"]


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
    volume). ``evaluation_keys`` is an EVAL_KEYS bundle or already deserialized keys.
    """
    kernel = get_kernel(kernel_id)
    spec_hash = client_spec_hash(kernel_id)
    clear = np.asarray(clear, dtype=np.int64)
    kernel.check_clear(clear)
    bundle = wire.read_bundle(
        input_bundle,
        kind=wire.BundleKind.INPUT,
        kernel_id=kernel_id,
        spec_hash=spec_hash,
        expected=expected_inputs(kernel_id),
    )
    if bundle.tile_index not in (wire.NO_TILE, tile_index):
        raise BundleMismatchError(
            f"input bundle is for tile {bundle.tile_index}, the task is tile {tile_index}"
        )
    for spec, entry in zip(kernel.enc, bundle.values, strict=True):
        wire.value_payload(entry.data, spec.shape, INPUT_WORDS)
    if isinstance(evaluation_keys, bytes | memoryview):
        evaluation_keys = read_evaluation_keys(kernel_id, evaluation_keys)
    fhe = import_concrete()
    args = [fhe.Value.deserialize(bytes(entry.data)) for entry in bundle.values]
    circuit = compile_kernel(kernel_id)
    result = circuit.server.run(
        *args, clear, evaluation_keys=evaluation_keys, function_name=function_name(kernel_id)
    )
    data = result.serialize()
    wire.value_payload(data, kernel.out_shape, output_words(kernel_id))
    return wire.write_bundle(
        wire.BundleKind.OUTPUT,
        kernel_id,
        spec_hash,
        [wire.ValueEntry("out", kernel.out_shape, data)],
        tile_index,
    )
