"""The kernel registry: ``volume@1``, ``shade@1``, ``post@1`` -> circuit, twin, bounds, compiler.

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
from blindframe.fhe_core._volume import make_volume_kernel
from blindframe.fhe_core.errors import UnknownKernelError

if TYPE_CHECKING:
    from concrete import fhe

__all__ = [
    "INPUT_WORDS",
    "KERNEL_IDS",
    "EncInput",
    "IntArray",
    "Kernel",
    "Lookup",
    "client_spec_hash",
    "compile_kernel",
    "configuration",
    "expected_inputs",
    "expected_outputs",
    "function_name",
    "get_kernel",
    "import_concrete",
    "output_words",
    "parse_kernel_id",
]

_FACTORIES = {
    "volume@1": make_volume_kernel,
    "shade@1": make_shade_kernel,
    "post@1": make_post_kernel,
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


@functools.cache
def compile_kernel(kernel_id: str) -> fhe.Circuit:
    """Compile ``kernel_id`` (cached per process): 0.2–2 s, deterministic across processes."""
    kernel = get_kernel(kernel_id)
    fhe_mod = import_concrete()
    status = {spec.name: "encrypted" for spec in kernel.enc}
    status[kernel.clear_name] = "clear"
    compiler = fhe_mod.Compiler(kernel.circuit, status)
    inputset = kernel.inputset(np.random.default_rng(_INPUTSET_SEED))
    return compiler.compile(inputset, configuration())


@functools.cache
def client_spec_hash(kernel_id: str) -> str:
    """sha256 (hex) of the compiled kernel: its client specs (crypto parameters, encodings) and
    its MLIR (what it computes: tables, bit widths of the clear arguments).

    Equal hashes mean both sides compiled the same circuit, and a key set made for one side's
    compilation serves the other's. The specs alone would not do: they do not change with, say,
    the bit width of a clear argument, which decides whether large weights wrap.
    """
    circuit = compile_kernel(kernel_id)
    digest = hashlib.sha256(circuit.client.specs.serialize())
    digest.update(b"\0" + str(circuit.mlir).encode())
    return digest.hexdigest()


# A seeded (compressed) input ciphertext is 3 uint64 words: a 128-bit seed and the body.
INPUT_WORDS = 3
# Cap'n Proto framing around a value's payload is a few hundred bytes; this bounds it loosely.
_VALUE_OVERHEAD = 4096


def function_name(kernel_id: str) -> str:
    """The name Concrete gives the kernel's compiled function."""
    circuit = compile_kernel(kernel_id)
    return str(circuit.server.program_info.get_circuits()[0].get_name())


@functools.cache
def output_words(kernel_id: str) -> int:
    """uint64 words per output ciphertext (LWE dimension + 1), from the compiled circuit."""
    kernel = get_kernel(kernel_id)
    circuit = compile_kernel(kernel_id)
    total = int(circuit.server.size_of_outputs(function_name(kernel_id)))
    count = int(np.prod(kernel.out_shape))
    return total // (count * 8)


def expected_inputs(kernel_id: str) -> list[tuple[str, tuple[int, ...], int]]:
    """``(name, shape, max_bytes)`` of an input bundle's values, for :func:`wire.read_bundle`."""
    kernel = get_kernel(kernel_id)
    return [
        (spec.name, spec.shape, int(np.prod(spec.shape)) * INPUT_WORDS * 8 + _VALUE_OVERHEAD)
        for spec in kernel.enc
    ]


def expected_outputs(kernel_id: str) -> list[tuple[str, tuple[int, ...], int]]:
    """``(name, shape, max_bytes)`` of an output bundle's single value."""
    kernel = get_kernel(kernel_id)
    size = int(np.prod(kernel.out_shape)) * output_words(kernel_id) * 8 + _VALUE_OVERHEAD
    return [("out", kernel.out_shape, size)]
