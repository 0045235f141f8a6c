"""Server side of a kernel: run a tile on validated bundles with a client's evaluation keys.

A worker compiles the kernel itself (:mod:`blindframe.fhe_core.kernels`), derives the tile's
clear argument from the job's public parameters, and never runs anything a client sent. Bundles
from the network go through a sandbox child's ``lease`` call instead
(:mod:`blindframe.fhe_core.sandbox`, which runs :mod:`blindframe.fhe_core.lease_child`).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core import wire
from blindframe.fhe_core._kernel import IntArray, Kernel
from blindframe.fhe_core.errors import BundleMismatchError
from blindframe.fhe_core.kernels import (
    BRICK_FRAME,
    BRICK_ROWS,
    EXPAND,
    INPUT_WORDS,
    TAKE,
    TILE,
    brick_count,
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
    "BRICK_MEMORY_BYTES",
    "BrickedInput",
    "ExpandedInput",
    "SharedInput",
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
        expanded: SharedInput = (
            BrickedInput(kernel_id, bundle, keys)
            if kernel.brick_values
            else _expand(kernel_id, bundle, keys)
        )
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

    @property
    def words(self) -> int:
        """uint64 words per expanded ciphertext."""
        return int(self.ciphertexts.shape[1])

    def rows(self, index: IntArray) -> npt.NDArray[np.uint64]:
        """The expanded ciphertexts at flat positions ``index``."""
        out: npt.NDArray[np.uint64] = self.ciphertexts[index]
        return out


# A bricked input kept in memory (no cache folder) holds at most this many bytes of bricks.
BRICK_MEMORY_BYTES = 1 << 30


class BrickedInput:
    """A bricked kernel's shared input (``Kernel.brick_values``, e.g. ``surface``): the seeded
    rows of every brick, each brick expanded the first time a tile reads it.

    Expanded bricks are kept for the job's next tiles, in ``cache`` (a folder of this job's
    input only, shared by the node's processes: a lease runs in a fresh fork) or else in memory,
    up to ``budget_bytes``; beyond it the least recently used are evicted. ``expanded`` lists
    the bricks this object expanded, in order.
    """

    def __init__(
        self,
        kernel_id: str,
        bundle: wire.Bundle,
        evaluation_keys: Any,
        *,
        cache: Path | None = None,
        budget_bytes: int = BRICK_MEMORY_BYTES,
    ) -> None:
        kernel = get_kernel(kernel_id)
        self.kernel_id = kernel_id
        self.brick_values = kernel.brick_values
        rows, frame = bundle.value(BRICK_ROWS), bundle.value(BRICK_FRAME)
        self._seeded = np.frombuffer(rows.data, dtype="<u8").reshape(
            brick_count(kernel), self.brick_values, INPUT_WORDS
        )
        self._frame = bytes(frame.data)
        self._keys = evaluation_keys
        server = concrete_server(kernel_id)
        self.words = int(server.size_of_outputs(EXPAND)) // (self.brick_values * 8)
        self.budget = max(1, budget_bytes // (self.brick_values * self.words * 8))
        self._cache = cache
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
        self._memory: OrderedDict[int, npt.NDArray[np.uint64]] = OrderedDict()
        self._template: bytes | None = None
        self._clock = 0
        self.expanded: list[int] = []

    @property
    def template(self) -> bytes:
        """TILE's input framing, made through TAKE from the first brick expanded for the job
        (kept with the bricks)."""
        if self._template is None:
            path = self._template_path()
            if path is not None and path.is_file():
                self._template = path.read_bytes()
            else:
                self._expand(0)
        assert self._template is not None
        return self._template

    def brick(self, number: int) -> npt.NDArray[np.uint64]:
        """The expanded ciphertexts of brick ``number``: ``(brick_values, words)``."""
        if number in self._memory:
            self._memory.move_to_end(number)
            return self._memory[number]
        path = self._brick_path(number)
        if path is not None and path.is_file():
            self._touch(path)
            out: npt.NDArray[np.uint64] = np.load(path, mmap_mode="r", allow_pickle=False)
            return out
        return self._expand(number)

    def rows(self, index: IntArray) -> npt.NDArray[np.uint64]:
        """The expanded ciphertexts at flat positions ``index``, expanding the bricks they lie
        in one at a time (so a tile never holds more than one brick beyond the cache)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.words), dtype=np.uint64)
        number, offset = np.divmod(index, self.brick_values)
        for b in np.unique(number):
            where = number == b
            out[where] = self.brick(int(b))[offset[where]]
        return out

    def _template_path(self) -> Path | None:
        return None if self._cache is None else self._cache / "tile.template"

    def _brick_path(self, number: int) -> Path | None:
        return None if self._cache is None else self._cache / f"brick-{number}.npy"

    def _touch(self, path: Path) -> None:
        # Strictly increasing times: the file system's clock may not tell two uses apart.
        self._clock = max(time.time_ns(), self._clock + 1)
        os.utime(path, ns=(self._clock, self._clock))

    def _expand(self, number: int) -> npt.NDArray[np.uint64]:
        server = concrete_server(self.kernel_id)
        fhe = import_concrete()
        frame = bytearray(self._frame)
        seeded = wire.value_payload(memoryview(frame), (self.brick_values,), INPUT_WORDS)
        if seeded.readonly:
            raise BundleMismatchError("the brick frame's payload is not one contiguous block")
        np.frombuffer(seeded, dtype="<u8").reshape(self._seeded.shape[1:])[:] = self._seeded[number]
        full = server.run(
            fhe.Value.deserialize(bytes(frame)), evaluation_keys=self._keys, function_name=EXPAND
        )
        path = self._template_path()
        if self._template is None and (path is None or not path.is_file()):
            self._template = server.run(
                full, evaluation_keys=self._keys, function_name=TAKE
            ).serialize()
            if path is not None:
                _write_atomic(path, self._template)
        data = full.serialize()
        rows = np.frombuffer(
            wire.value_payload(data, (self.brick_values,), self.words), dtype="<u8"
        ).reshape(self.brick_values, self.words)
        self.expanded.append(number)
        path = self._brick_path(number)
        if path is None:
            self._memory[number] = rows
            while len(self._memory) > self.budget:
                self._memory.popitem(last=False)
            return rows
        _write_atomic(path, rows)
        self._touch(path)
        kept = sorted(path.parent.glob("brick-*.npy"), key=lambda f: f.stat().st_mtime_ns)
        for old in kept[: max(0, len(kept) - self.budget)]:
            old.unlink(missing_ok=True)
        return rows


SharedInput = ExpandedInput | BrickedInput


def _write_atomic(path: Path, data: bytes | npt.NDArray[np.uint64]) -> None:
    """Write a file that a concurrent reader sees whole or not at all."""
    part = path.with_name(f".{path.name}.{os.getpid()}")
    with part.open("wb") as fh:
        if isinstance(data, bytes):
            fh.write(data)
        else:
            np.save(fh, data, allow_pickle=False)
    part.replace(path)


def expand_input(
    kernel_id: str,
    input_bundle: bytes | memoryview,
    evaluation_keys: bytes | memoryview | Any,
    *,
    cache: Path | None = None,
    budget_bytes: int = BRICK_MEMORY_BYTES,
) -> SharedInput:
    """Validate a gathered kernel's shared INPUT bundle and expand its seeded ciphertexts once
    (1–2 s for the 4096 voxels of ``volume``; 16 KiB per ciphertext after). A bricked kernel's
    bricks are expanded later, as tiles read them (``cache`` and ``budget_bytes``:
    :class:`BrickedInput`)."""
    kernel = get_kernel(kernel_id)
    if not kernel.gathered:
        raise BundleMismatchError(f"{kernel_id} does not gather from a shared input")
    bundle = read_input(kernel_id, input_bundle, wire.NO_TILE)
    keys = _evaluation_keys(kernel_id, evaluation_keys)
    if kernel.brick_values:
        return BrickedInput(kernel_id, bundle, keys, cache=cache, budget_bytes=budget_bytes)
    return _expand(kernel_id, bundle, keys)


def run_gathered_tile(
    kernel_id: str,
    expanded: SharedInput,
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
    expanded: SharedInput,
    evaluation_keys: Any,
    tiles: Sequence[tuple[int, IntArray]],
) -> Iterator[tuple[int, bytes]]:
    """Compute ``(tile_index, clear)`` tiles in order, yielding each one's OUTPUT bundle as it is
    done. The next tile's samples are gathered and parsed in a thread while Concrete computes the
    current one (it releases the GIL): about a tenth of a tile's time, hidden. A bricked input
    gathers in turn instead: its gather may expand bricks, itself a Concrete computation."""
    kernel = get_kernel(kernel_id)
    if expanded.kernel_id != kernel_id:
        raise BundleMismatchError(f"the input was expanded for {expanded.kernel_id}")
    clears = [np.asarray(clear, dtype=np.int64) for _, clear in tiles]
    for clear in clears:
        kernel.check_clear(clear)
    server = concrete_server(kernel_id)
    if isinstance(expanded, BrickedInput):
        for (tile_index, _), clear in zip(tiles, clears, strict=True):
            samples = _gather(kernel, expanded, clear)
            result = server.run(
                samples, clear[1], evaluation_keys=evaluation_keys, function_name=TILE
            )
            yield tile_index, _output_bundle(kernel_id, result.serialize(), tile_index)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gather") as pool:
        ahead = [pool.submit(_gather, kernel, expanded, clear) for clear in clears[:1]]
        for n, ((tile_index, _), clear) in enumerate(zip(tiles, clears, strict=True)):
            samples = ahead.pop().result()
            ahead += [pool.submit(_gather, kernel, expanded, c) for c in clears[n + 1 : n + 2]]
            result = server.run(
                samples, clear[1], evaluation_keys=evaluation_keys, function_name=TILE
            )
            yield tile_index, _output_bundle(kernel_id, result.serialize(), tile_index)


def _gather(kernel: Kernel, expanded: SharedInput, clear: IntArray) -> Any:
    """The tile function's input: the template with the samples' ciphertexts copied in."""
    # The samples first: a bricked input makes its template with the first brick it expands.
    samples = expanded.rows(clear[0].ravel())
    buffer = bytearray(expanded.template)
    rows = _payload_rows(buffer, kernel.gathered, expanded.words)
    rows[:] = samples
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
    if kernel.brick_values:
        # The rows are raw seeded ciphertexts (any bytes are some ciphertext): only their length
        # can be wrong; the frame is a Concrete value, checked like any other.
        rows = bundle.value(BRICK_ROWS)
        want = brick_count(kernel) * kernel.brick_values * INPUT_WORDS * 8
        if len(rows.data) != want:
            raise BundleMismatchError(
                f"input bundle's bricks hold {len(rows.data)} bytes, expected {want}"
            )
        wire.value_payload(bundle.value(BRICK_FRAME).data, (kernel.brick_values,), INPUT_WORDS)
        return bundle
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
