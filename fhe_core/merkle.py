"""Merkle commitments over a tile's output, exactly as the RenderMarket contract checks them.

Stream of a tile (:func:`coefficient_stream`, what the tile root commits to), from its OUTPUT
bundle, ``4 * 2**leafDepth`` uint64 words:

1. the uint64 torus coefficients of the bundle's single value, as Concrete serializes them
   (:func:`ciphertext_coefficients`): output values in row-major pixel order (channel first for
   ``shade``), each an LWE ciphertext of ``n + 1`` words, the mask ``a_0 .. a_{n-1}`` then the
   body ``b``; then zero words up to the last leaf;
2. the *digest leaf*, always the LAST leaf of the tree (index ``2**leafDepth - 1``,
   :func:`digest_leaf`): the 32 bytes of ``sha256(OUTPUT bundle)`` (:func:`wire.bundle_hash`)
   read as 4 uint64 little-endian words.

The coefficients make single leaves openable on chain (the agreement rule compares them); the
digest leaf binds every other byte of the bundle the client decrypts (header, Cap'n Proto framing,
type information), so no byte of an output can change without changing the root. Two
bit-identical honest outputs give the same stream, digest included. Because the digest leaf sits
at a position the contract knows from leafDepth alone, an opened digest leaf whose 32 bytes differ
at all counts on chain as ``farCount`` far pairs: one opening proves two different outputs apart.

``leafDepth = ceil(log2(L / 4))`` with ``L`` the coefficients rounded up to whole leaves plus the
4 digest words (:func:`stream_length`), so the digest leaf never overlaps a coefficient.

- leaf (32 bytes) = 4 consecutive words, each uint64 little-endian;
- ``leafHash = keccak256(0x00 || leaf)``, ``node(l, r) = keccak256(0x01 || l || r)``;
- tile root = complete binary tree of depth leafDepth over the leaf hashes;
- lease root = complete tree of depth ``ceil(log2(count))`` (0 when one tile: lease root = tile
  root) over the tile roots of the lease's tiles in ascending tile order, padded with 32 zero
  bytes, same ``node``;
- proof of leaf ``i`` of the tile at position ``p`` in its lease: leafDepth siblings bottom-up,
  then the upper tree's siblings for ``p``.

Two coefficients are *far* when their torus distance ``min((a-b) mod 2**64, (b-a) mod 2**64)``
exceeds the tolerance (see ``AGREEMENT.md`` and :mod:`blindframe.fhe_core.agreement`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sha3 import keccak_256  # type: ignore[import-untyped]

from blindframe.fhe_core import wire
from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.kernels import (
    client_spec_hash,
    expected_outputs,
    get_kernel,
    output_words,
)
from blindframe.fhe_core.packing import unpack_output

__all__ = [
    "DIGEST_WORDS",
    "ZERO32",
    "TileTree",
    "U64Array",
    "ciphertext_coefficients",
    "coefficient_stream",
    "digest_leaf",
    "digest_leaf_at",
    "far_count",
    "keccak256",
    "leaf_depth",
    "leaf_depth_for",
    "leaf_hash",
    "lease_depth",
    "lease_proof",
    "lease_root",
    "leaves_of",
    "node_hash",
    "stream_length",
    "tile_tree",
    "torus_distance",
    "verify_proof",
]

U64Array = npt.NDArray[np.uint64]
ZERO32 = bytes(32)
# The digest leaf: sha256 of the whole OUTPUT bundle as 4 uint64 words.
DIGEST_WORDS = 4


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (safe-pysha3's C Keccak: a tree is ~2^leafDepth calls, and
    pycryptodome's ctypes wrapper costs 6x as much per call as the hash itself)."""
    return bytes(keccak_256(data).digest())


def leaf_hash(leaf: bytes) -> bytes:
    """``keccak256(0x00 || leaf32)``."""
    if len(leaf) != 32:
        raise ParameterError(f"a leaf is 32 bytes, not {len(leaf)}")
    return keccak256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    """``keccak256(0x01 || left || right)``."""
    return keccak256(b"\x01" + left + right)


def leaf_depth_for(coefficients: int) -> int:
    """``ceil(log2(ceil(n / 4)))`` (0 for at most one leaf)."""
    if coefficients <= 0:
        raise ParameterError("a coefficient stream is never empty")
    leaves = -(-coefficients // 4)
    return max(0, math.ceil(math.log2(leaves)))


def stream_length(kernel_id: str) -> int:
    """Words one tile's stream needs: its coefficients rounded up to whole leaves, plus the
    digest leaf (what leafDepth is computed from; the stream itself fills the whole tree)."""
    kernel = get_kernel(kernel_id)
    coefficients = int(np.prod(kernel.out_shape)) * output_words(kernel_id)
    return -(-coefficients // 4) * 4 + DIGEST_WORDS


def digest_leaf(kernel_id: str) -> int:
    """Index of the leaf that holds the OUTPUT bundle's sha256: the last leaf of the tile tree,
    ``2**leafDepth - 1``."""
    return digest_leaf_at(leaf_depth(kernel_id))


def digest_leaf_at(depth: int) -> int:
    """The digest leaf's index in a tile tree of depth ``depth``: ``2**depth - 1``."""
    return (1 << depth) - 1


def leaf_depth(kernel_id: str) -> int:
    """The leafDepth of one tile's output for ``kernel_id`` (what the contract is told)."""
    return leaf_depth_for(stream_length(kernel_id))


def ciphertext_coefficients(kernel_id: str, output_bundle: bytes | memoryview) -> U64Array:
    """The torus coefficients of a validated OUTPUT bundle's ciphertexts (no padding, no
    digest): what the agreement rule compares."""
    kernel = get_kernel(kernel_id)
    bundle = wire.read_bundle(
        output_bundle,
        kind=wire.BundleKind.OUTPUT,
        kernel_id=kernel_id,
        spec_hash=client_spec_hash(kernel_id),
        expected=expected_outputs(kernel_id),
    )
    words = output_words(kernel_id)
    value = unpack_output(bundle.values[0].data, kernel.out_shape, words)
    payload = wire.value_payload(value, kernel.out_shape, words)
    return np.frombuffer(payload, dtype="<u8").astype(np.uint64)


def coefficient_stream(
    kernel_id: str, output_bundle: bytes | memoryview, depth: int | None = None
) -> U64Array:
    """The tile's stream, ``4 * 2**depth`` words (``depth`` defaults to the kernel's
    :func:`leaf_depth`; a job may name a deeper tree): its coefficients, zero-padded up to the
    last leaf, then the digest leaf, ``sha256(output_bundle)`` as 4 little-endian words. The tile
    root over it binds every byte of the bundle."""
    minimum = leaf_depth(kernel_id)
    depth = minimum if depth is None else depth
    if depth < minimum:
        raise ParameterError(
            f"a {kernel_id} tile needs leaf depth {minimum} or more (coefficients and the digest "
            f"leaf), not {depth}"
        )
    coefficients = ciphertext_coefficients(kernel_id, output_bundle)
    digest = np.frombuffer(bytes.fromhex(wire.bundle_hash(output_bundle)), dtype="<u8")
    total = 4 << depth
    stream = np.zeros(total, dtype=np.uint64)
    stream[: len(coefficients)] = coefficients
    stream[total - DIGEST_WORDS :] = digest
    return stream


def leaves_of(stream: U64Array, depth: int) -> npt.NDArray[np.uint8]:
    """The ``2**depth`` leaves (rows of 32 bytes) of a stream, zero-padded."""
    total = 4 << depth
    if len(stream) > total:
        raise ParameterError(f"{len(stream)} coefficients do not fit leafDepth {depth}")
    padded = np.zeros(total, dtype="<u8")
    padded[: len(stream)] = stream
    return padded.view(np.uint8).reshape(-1, 32)


def _zero_hashes(depth: int) -> list[bytes]:
    """Hash of an all-zero subtree at each height (a zero leaf is hashed like any leaf)."""
    out = [leaf_hash(ZERO32)]
    for _ in range(depth):
        out.append(node_hash(out[-1], out[-1]))
    return out


@dataclass
class TileTree:
    """Every level of a tile's Merkle tree; ``levels[0]`` are the leaf hashes."""

    depth: int
    leaves: npt.NDArray[np.uint8]
    levels: list[list[bytes]]
    zeros: list[bytes]

    @classmethod
    def build(cls, stream: U64Array, depth: int) -> TileTree:
        """Hash a stream's leaves and nodes. All-zero leaves and all-zero subtrees take their
        precomputed hashes: a tile's zero padding (between its coefficients and the digest leaf)
        costs nothing to hash."""
        leaves = leaves_of(stream, depth)
        zeros = _zero_hashes(depth)
        raw = leaves.tobytes()
        nonzero = leaves.any(axis=1).tolist()
        # The hashes inlined (no helper call per node): the loop is most of a tree's cost.
        hash_ = keccak_256
        level = [
            hash_(b"\x00" + raw[32 * i : 32 * i + 32]).digest() if nonzero[i] else zeros[0]
            for i in range(len(nonzero))
        ]
        levels = [level]
        for height in range(depth):
            zero, up = zeros[height], zeros[height + 1]
            left, right = level[0::2], level[1::2]
            level = [
                up if a == zero and b == zero else hash_(b"\x01" + a + b).digest()
                for a, b in zip(left, right, strict=True)
            ]
            levels.append(level)
        return cls(depth, leaves, levels, zeros)

    @property
    def root(self) -> bytes:
        """The tile root."""
        return self.levels[self.depth][0]

    def leaf(self, index: int) -> bytes:
        """Leaf ``index`` (32 bytes)."""
        self._check(index)
        return bytes(self.leaves[index])

    def proof(self, index: int) -> list[bytes]:
        """The leafDepth sibling hashes of leaf ``index``, bottom-up."""
        self._check(index)
        out = []
        for height in range(self.depth):
            sibling = (index >> height) ^ 1
            out.append(self.levels[height][sibling])
        return out

    def _check(self, index: int) -> None:
        if not 0 <= index < (1 << self.depth):
            raise ParameterError(f"leaf {index} is outside a tree of depth {self.depth}")


def tile_tree(kernel_id: str, output_bundle: bytes | memoryview) -> TileTree:
    """The Merkle tree of one tile's OUTPUT bundle (``.root`` is what a worker commits)."""
    return TileTree.build(coefficient_stream(kernel_id, output_bundle), leaf_depth(kernel_id))


def lease_depth(count: int) -> int:
    """``ceil(log2(count))``: 0 for a single tile."""
    if count <= 0:
        raise ParameterError("a lease holds at least one tile")
    return math.ceil(math.log2(count)) if count > 1 else 0


def _upper_levels(tile_roots: Sequence[bytes]) -> list[list[bytes]]:
    depth = lease_depth(len(tile_roots))
    level = list(tile_roots) + [ZERO32] * ((1 << depth) - len(tile_roots))
    levels = [level]
    for _ in range(depth):
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def lease_root(tile_roots: Sequence[bytes]) -> bytes:
    """Root over a lease's tile roots (ascending tile order), padded with zero bytes32."""
    return _upper_levels(tile_roots)[-1][0]


def lease_proof(tile_roots: Sequence[bytes], position: int) -> list[bytes]:
    """Upper-tree siblings of the tile at ``position`` in the lease, bottom-up."""
    if not 0 <= position < len(tile_roots):
        raise ParameterError(f"tile position {position} is outside a lease of {len(tile_roots)}")
    levels = _upper_levels(tile_roots)
    return [levels[h][(position >> h) ^ 1] for h in range(len(levels) - 1)]


def verify_proof(
    leaf: bytes,
    leaf_index: int,
    position: int,
    proof: Sequence[bytes],
    root: bytes,
    leaf_depth_: int,
) -> bool:
    """Recompute a lease root from a leaf and its proof, as the contract does."""
    node = leaf_hash(leaf)
    for height, sibling in enumerate(proof):
        if height < leaf_depth_:
            bit = (leaf_index >> height) & 1
        else:
            bit = (position >> (height - leaf_depth_)) & 1
        node = node_hash(sibling, node) if bit else node_hash(node, sibling)
    return node == root


def torus_distance(a: U64Array, b: U64Array) -> U64Array:
    """``min((a - b) mod 2**64, (b - a) mod 2**64)``, elementwise."""
    a64 = np.asarray(a, dtype=np.uint64)
    b64 = np.asarray(b, dtype=np.uint64)
    d1 = a64 - b64  # uint64 arithmetic wraps: this is mod 2**64
    d2 = b64 - a64
    return np.minimum(d1, d2)


def far_count(a: U64Array, b: U64Array, tolerance: int) -> int:
    """How many coefficient pairs are farther apart than ``tolerance`` on the torus."""
    if len(a) != len(b):
        raise ParameterError(f"streams of {len(a)} and {len(b)} coefficients cannot be compared")
    return int(np.count_nonzero(torus_distance(a, b) > np.uint64(tolerance)))
