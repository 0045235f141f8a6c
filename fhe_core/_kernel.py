"""The shape of a render kernel: circuit, plaintext twin, bounds (imports no Concrete)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core.errors import ParameterError

__all__ = ["EncInput", "IntArray", "Kernel", "Lookup", "check_range"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Lookup:
    """One kind of table lookup a pixel goes through: its input precision and count per pixel."""

    what: str
    precision_bits: int
    per_pixel: int


@dataclass(frozen=True)
class EncInput:
    """One encrypted argument of a kernel: name, shape and the inclusive range of each entry."""

    name: str
    shape: tuple[int, ...]
    lo: IntArray
    hi: IntArray

    def check(self, kernel_id: str, values: object) -> IntArray:
        """Validate one plaintext before encryption; return it as int64."""
        arr = np.asarray(values)
        if arr.shape != self.shape:
            raise ParameterError(
                f"{kernel_id}: {self.name} has shape {arr.shape}, expected {self.shape}"
            )
        if not np.issubdtype(arr.dtype, np.integer):
            raise ParameterError(
                f"{kernel_id}: {self.name} must hold integers (not {arr.dtype})",
                hint="quantize floats first (blindframe.fhe_core.voxels)",
            )
        arr = arr.astype(np.int64)
        bad = (arr < self.lo) | (arr > self.hi)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ParameterError(
                f"{kernel_id}: {self.name}{list(where)} = {int(arr[where])} is outside "
                f"[{int(np.broadcast_to(self.lo, arr.shape)[where])}, "
                f"{int(np.broadcast_to(self.hi, arr.shape)[where])}]"
            )
        return arr


@dataclass(frozen=True)
class Kernel:
    """A render kernel version: everything a client and a worker must agree on.

    ``circuit(*encrypted, clear)`` is traced by Concrete, ``twin(encrypted, clear)`` is plain
    numpy; decrypting the circuit's output gives exactly the twin's for every encrypted input
    inside its ``EncInput`` range and every ``clear`` that ``check_clear`` accepts.
    ``clear_args(params, frame_hw, tile_index)`` derives
    the clear runtime argument of one tile from the public parameters of a job.

    A *gathered* kernel (``gathered > 0``, e.g. ``volume``) reads one input shared by every tile
    at public positions: its clear argument stacks ``[index, clear]`` (``clear_shape[0] == 2``),
    the worker copies the ciphertexts of the shared input at ``index`` (flattened: ``gathered``
    of them) into the tile's input, and ``circuit(samples, clear)`` sees only those samples in
    order. Its ``inputset`` gives ``(*encrypted, [index, clear])`` like ``twin`` takes them.

    A *bricked* gathered kernel (``brick_values > 0``, e.g. ``surface``) has a shared input too
    large to expand whole: it travels and is expanded in chunks of ``brick_values`` values (its
    flat layout is the concatenation of the chunks), and a worker expands only the chunks a
    tile's ``index`` reads.
    """

    name: str
    version: int
    tile_hw: tuple[int, int]
    halo: int
    enc: tuple[EncInput, ...]
    clear_name: str
    clear_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    out_max: int
    lookups: tuple[Lookup, ...]
    circuit: Callable[..., Any]
    twin: Callable[[tuple[IntArray, ...], IntArray], IntArray]
    check_clear: Callable[[IntArray], None]
    clear_args: Callable[[Mapping[str, Any], tuple[int, int], int], IntArray]
    inputset: Callable[[np.random.Generator], list[tuple[IntArray, ...]]]
    describe: str = ""
    gathered: int = 0
    brick_values: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kernel_id(self) -> str:
        """The registry id, ``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def pixels_per_tile(self) -> int:
        """Output pixels of one tile."""
        return self.tile_hw[0] * self.tile_hw[1]

    @property
    def bootstraps_per_pixel(self) -> int:
        """Programmable bootstraps per output pixel (lookups, rounding steps included)."""
        return sum(lk.per_pixel for lk in self.lookups)

    def check_enc(self, values: tuple[object, ...] | list[object]) -> tuple[IntArray, ...]:
        """Validate every encrypted input's plaintext; return them as int64 arrays."""
        if len(values) != len(self.enc):
            raise ParameterError(
                f"{self.kernel_id} takes {len(self.enc)} encrypted inputs "
                f"({', '.join(e.name for e in self.enc)}), not {len(values)}"
            )
        return tuple(
            spec.check(self.kernel_id, v) for spec, v in zip(self.enc, values, strict=True)
        )


def check_range(name: str, arr: IntArray, lo: int, hi: int) -> None:
    """Raise ParameterError naming the first entry of ``arr`` outside ``[lo, hi]``."""
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ParameterError(f"{name}{list(where)} = {int(arr[where])} is outside [{lo}, {hi}]")
