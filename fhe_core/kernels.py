"""The kernel registry: ``volume@1``, ``shade@1``, ``post@1``, ``surface@1`` -> circuit, twin,
bounds, compiler.

Workers and clients compile every kernel from this registry themselves (never from a job), with a
fixed inputset and configuration, so both get the same client specs; :func:`client_spec_hash` is
what a worker compares with the job's before it computes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from blindframe.fhe_core._kernel import EncInput, IntArray, Kernel, Lookup
from blindframe.fhe_core._post import make_post_kernel
from blindframe.fhe_core._shade import make_shade_kernel
from blindframe.fhe_core._surface import make_surface_kernel
from blindframe.fhe_core._volume import make_volume_kernel
from blindframe.fhe_core.errors import UnknownKernelError

if TYPE_CHECKING:
    from concrete import fhe

__all__ = [
    "BRICK_FRAME",
    "BRICK_ROWS",
    "EXPAND",
    "INPUT_WORDS",
    "KERNEL_IDS",
    "TAKE",
    "TILE",
    "EncInput",
    "IntArray",
    "Kernel",
    "Lookup",
    "brick_count",
    "client_spec_hash",
    "compile_kernel",
    "concrete_client",
    "concrete_server",
    "configuration",
    "expected_inputs",
    "expected_outputs",
    "get_kernel",
    "import_concrete",
    "input_function",
    "output_function",
    "output_words",
    "parse_kernel_id",
    "tile_function",
]

_FACTORIES = {
    "volume@1": make_volume_kernel,
    "shade@1": make_shade_kernel,
    "post@1": make_post_kernel,
    "surface@1": make_surface_kernel,
}
KERNEL_IDS: tuple[str, ...] = tuple(_FACTORIES)
_ID = re.compile(r"^([a-z][a-z0-9_]{0,31})@([1-9][0-9]{0,3})$")
# The inputset's random members come from this seed: compilation must not depend on the run.
_INPUTSET_SEED = 20240601


def parse_kernel_id(kernel_id: object) -> tuple[str, int]:
    """``"volume@1"`` -> ``("volume", 1)``; raise UnknownKernelError for anything else."""
    if not isinstance(kernel_id, str) or not _ID.match(kernel_id):
        raise UnknownKernelError(
            f"malformed kernel id {kernel_id!r}: expected name@version, e.g. volume@1"
        )
    if kernel_id not in _FACTORIES:
        raise UnknownKernelError(
            f"unknown kernel {kernel_id!r}: expected one of {'|'.join(KERNEL_IDS)}"
        )
    name, version = kernel_id.split("@")
    return name, int(version)


@functools.cache
def get_kernel(kernel_id: str) -> Kernel:
    """The registry entry for ``kernel_id`` (e.g. ``"volume@1"``)."""
    parse_kernel_id(kernel_id)
    return _FACTORIES[kernel_id]()


def import_concrete() -> Any:
    """Import ``concrete.fhe`` quietly (its pkg_resources deprecation warning is noise here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from concrete import fhe
    return fhe


def configuration() -> fhe.Configuration:
    """The one Concrete configuration every kernel version is compiled with."""
    fhe_mod = import_concrete()
    return fhe_mod.Configuration(
        compress_evaluation_keys=True,
        compress_input_ciphertexts=True,
        # Loops run in parallel on the cores the process is given; the result does not depend on it.
        loop_parallelize=True,
        dataflow_parallelize=False,
        show_optimizer=False,
        show_progress=False,
        use_insecure_key_cache=False,
        enable_unsafe_features=False,
    )


# The functions of a gathered kernel's module (see :class:`Kernel`): the client encrypts the shared
# input for EXPAND and decrypts TILE's output; the worker runs EXPAND once per job (seeded
# ciphertexts in, plain ones out), TAKE once for a template of TILE's input, then TILE per tile.
# A bricked kernel's EXPAND takes one brick, and the worker runs it once per brick a tile reads.
EXPAND, TAKE, TILE = "expand", "take", "tile"
# A bricked kernel's INPUT bundle: the seeded ciphertexts of every brick as raw rows
# (``(bricks, brick_values)`` of INPUT_WORDS words each, brick-major), then one brick as a
# Concrete value, whose framing a worker reuses to expand any brick (it copies the brick's rows
# into it). Concrete's values cannot be cut, and a bundle holds at most 8 of them.
BRICK_ROWS, BRICK_FRAME = "bricks", "brick"


@functools.cache
def compile_kernel(kernel_id: str) -> Any:
    """Compile ``kernel_id`` (cached per process): 0.2–2 s, deterministic across processes.

    A ``fhe.Circuit``, or for a gathered kernel a composable ``fhe.Module`` of :data:`EXPAND`,
    :data:`TAKE` and :data:`TILE`. Use :func:`concrete_client`, :func:`concrete_server` and
    :func:`tile_function` rather than the object's own attributes.
    """
    kernel = get_kernel(kernel_id)
    fhe_mod = import_concrete()
    inputset = kernel.inputset(np.random.default_rng(_INPUTSET_SEED))
    if kernel.brick_values:
        return _compile_bricked(kernel, inputset)
    if kernel.gathered:
        return _compile_gathered(kernel, inputset)
    status = {spec.name: "encrypted" for spec in kernel.enc}
    status[kernel.clear_name] = "clear"
    compiler = fhe_mod.Compiler(kernel.circuit, status)
    return compiler.compile(inputset, configuration())


def _compile_gathered(kernel: Kernel, inputset: list[tuple[IntArray, ...]]) -> Any:
    fhe_mod = import_concrete()
    count = kernel.gathered
    tile_circuit = kernel.circuit

    def expand(shared: Any) -> Any:
        return shared + 0

    def take(shared: Any) -> Any:
        return shared[:count] + 0

    def tile(samples: Any, clear: Any) -> Any:
        return tile_circuit(samples, clear)

    functions: dict[str, Any] = {
        EXPAND: fhe_mod.function({"shared": "encrypted"})(expand),
        TAKE: fhe_mod.function({"shared": "encrypted"})(take),
        TILE: fhe_mod.function({"samples": "encrypted", "clear": "clear"})(tile),
    }
    # Only these outputs feed these inputs. Declaring the wires (not ``composable=True``, every
    # output into every input) keeps the tile's bootstrap at the single circuit's parameters:
    # composing the tile's own output back would force a second decomposition level.
    functions["composition"] = fhe_mod.Wired(
        {
            fhe_mod.Wire(fhe_mod.Output(functions[EXPAND], 0), fhe_mod.Input(functions[TAKE], 0)),
            fhe_mod.Wire(fhe_mod.Output(functions[EXPAND], 0), fhe_mod.Input(functions[TILE], 0)),
            fhe_mod.Wire(fhe_mod.Output(functions[TAKE], 0), fhe_mod.Input(functions[TILE], 0)),
        }
    )
    shared = [entry[0] for entry in inputset]
    samples = [(entry[0][entry[-1][0]].ravel(), entry[-1][1]) for entry in inputset]
    module = fhe_mod.module()(type(f"{kernel.name}_{kernel.version}", (), functions))
    return module.compile({EXPAND: shared, TAKE: shared, TILE: samples}, configuration())


def brick_count(kernel: Kernel) -> int:
    """Bricks of a bricked kernel's shared input."""
    return int(np.prod(kernel.enc[0].shape)) // kernel.brick_values


def _compile_bricked(kernel: Kernel, inputset: list[tuple[IntArray, ...]]) -> Any:
    """A gathered module whose EXPAND takes one brick (``kernel.brick_values`` values) and whose
    TAKE makes TILE's template from one expanded brick, wired as :func:`_compile_gathered`'s."""
    fhe_mod = import_concrete()
    count, size = kernel.gathered, kernel.brick_values
    copies = -(-count // size)
    tile_circuit = kernel.circuit

    def expand(brick: Any) -> Any:
        return brick + 0

    def take(brick: Any) -> Any:
        # Only the template's framing matters: its ciphertexts are overwritten by the gather.
        return np.concatenate(tuple([brick] * copies))[:count] + 0

    def tile(samples: Any, clear: Any) -> Any:
        return tile_circuit(samples, clear)

    functions: dict[str, Any] = {
        EXPAND: fhe_mod.function({"brick": "encrypted"})(expand),
        TAKE: fhe_mod.function({"brick": "encrypted"})(take),
        TILE: fhe_mod.function({"samples": "encrypted", "clear": "clear"})(tile),
    }
    functions["composition"] = fhe_mod.Wired(
        {
            fhe_mod.Wire(fhe_mod.Output(functions[EXPAND], 0), fhe_mod.Input(functions[TAKE], 0)),
            fhe_mod.Wire(fhe_mod.Output(functions[EXPAND], 0), fhe_mod.Input(functions[TILE], 0)),
            fhe_mod.Wire(fhe_mod.Output(functions[TAKE], 0), fhe_mod.Input(functions[TILE], 0)),
        }
    )
    # Every brick of every shared input: the bricks' values span the lanes' whole ranges.
    bricks = [b for entry in inputset for b in entry[0].reshape(-1, size)]
    samples = [(entry[0][entry[-1][0]].ravel(), entry[-1][1]) for entry in inputset]
    module = fhe_mod.module()(type(f"{kernel.name}_{kernel.version}", (), functions))
    return module.compile({EXPAND: bricks, TAKE: bricks, TILE: samples}, configuration())


def concrete_client(kernel_id: str) -> Any:
    """The compiled kernel's Concrete client (its specs make key sets)."""
    compiled = compile_kernel(kernel_id)
    if get_kernel(kernel_id).gathered:
        # A module keeps its client and server in its execution runtime (Concrete 2.11).
        return compiled.execution_runtime.val.client
    return compiled.client


def concrete_server(kernel_id: str) -> Any:
    """The compiled kernel's Concrete server (runs functions by name)."""
    compiled = compile_kernel(kernel_id)
    if get_kernel(kernel_id).gathered:
        return compiled.execution_runtime.val.server
    return compiled.server


def tile_function(kernel_id: str) -> Any:
    """What computes one tile: the circuit, or a gathered module's :data:`TILE` function (both
    have ``graph`` and the operation counts)."""
    compiled = compile_kernel(kernel_id)
    return compiled.tile if get_kernel(kernel_id).gathered else compiled


@functools.cache
def client_spec_hash(kernel_id: str) -> str:
    """sha256 (hex) of the compiled kernel: its client specs (crypto parameters, encodings) and
    its MLIR (what it computes: tables, bit widths of the clear arguments).

    Equal hashes mean both sides compiled the same circuit, and a key set made for one side's
    compilation serves the other's. The specs alone would not do: they do not change with, say,
    the bit width of a clear argument, which decides whether large weights wrap.
    """
    digest = hashlib.sha256(concrete_client(kernel_id).specs.serialize())
    digest.update(b"\0" + str(compile_kernel(kernel_id).mlir).encode())
    return digest.hexdigest()


# A seeded (compressed) input ciphertext is 3 uint64 words: a 128-bit seed and the body.
INPUT_WORDS = 3
# Cap'n Proto framing around a value's payload is a few hundred bytes; this bounds it loosely.
_VALUE_OVERHEAD = 4096


def input_function(kernel_id: str) -> str:
    """The function whose inputs the client encrypts (a gathered kernel's :data:`EXPAND`)."""
    if get_kernel(kernel_id).gathered:
        return EXPAND
    return output_function(kernel_id)


def output_function(kernel_id: str) -> str:
    """The function whose output is a tile's result (a gathered kernel's :data:`TILE`)."""
    if get_kernel(kernel_id).gathered:
        return TILE
    server = concrete_server(kernel_id)
    return str(server.program_info.get_circuits()[0].get_name())


@functools.cache
def output_words(kernel_id: str) -> int:
    """uint64 words per output ciphertext (LWE dimension + 1), from the compiled circuit."""
    kernel = get_kernel(kernel_id)
    total = int(concrete_server(kernel_id).size_of_outputs(output_function(kernel_id)))
    count = int(np.prod(kernel.out_shape))
    return total // (count * 8)


def expected_inputs(kernel_id: str) -> list[tuple[str, tuple[int, ...], int]]:
    """``(name, shape, max_bytes)`` of an input bundle's values, for :func:`wire.read_bundle`."""
    kernel = get_kernel(kernel_id)
    if kernel.brick_values:
        shape = (brick_count(kernel), kernel.brick_values)
        return [
            (BRICK_ROWS, shape, int(np.prod(shape)) * INPUT_WORDS * 8),
            (
                BRICK_FRAME,
                (kernel.brick_values,),
                kernel.brick_values * INPUT_WORDS * 8 + _VALUE_OVERHEAD,
            ),
        ]
    return [
        (spec.name, spec.shape, int(np.prod(spec.shape)) * INPUT_WORDS * 8 + _VALUE_OVERHEAD)
        for spec in kernel.enc
    ]


def expected_outputs(kernel_id: str) -> list[tuple[str, tuple[int, ...], int]]:
    """``(name, shape, max_bytes)`` of an output bundle's single value (packed:
    :mod:`blindframe.fhe_core.packing`)."""
    from blindframe.fhe_core.packing import packed_size

    kernel = get_kernel(kernel_id)
    size = packed_size(int(np.prod(kernel.out_shape)), output_words(kernel_id)) + _VALUE_OVERHEAD
    return [("out", kernel.out_shape, size)]
