"""Writes merkle.json: test vectors of the blindframe tile Merkle format and agreement rule.

This is an independent implementation (plain Python + keccak) of the format documented in
contracts/README.md; contracts/test/libraries/TileMerkle.t.sol checks the Solidity library
against its output, and fhe_core checks its own tree builder against the same file.
Run: .venv/bin/python contracts/test/vectors/make_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak

LEAF_DEPTH = 2
COEFFS_PER_LEAF = 4
MASK64 = (1 << 64) - 1
TOLERANCE = 1 << 58
FIRST_TILE = 5


def leaf_bytes(coefficients: list[int]) -> bytes:
    """Four uint64 coefficients, each little-endian, in stream order."""
    return b"".join(c.to_bytes(8, "little") for c in coefficients)


def leaf_hash(leaf: bytes) -> bytes:
    return keccak(b"\x00" + leaf)


def node(left: bytes, right: bytes) -> bytes:
    return keccak(b"\x01" + left + right)


def tree_levels(nodes: list[bytes]) -> list[list[bytes]]:
    levels = [nodes]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append([node(level[i], level[i + 1]) for i in range(0, len(level), 2)])
    return levels


def path(levels: list[list[bytes]], index: int) -> list[bytes]:
    siblings = []
    for level in levels[:-1]:
        siblings.append(level[index ^ 1])
        index //= 2
    return siblings


def stream_to_leaves(stream: list[int], leaf_depth: int) -> list[list[int]]:
    size = COEFFS_PER_LEAF << leaf_depth
    if len(stream) > size:
        raise ValueError(f"stream of {len(stream)} coefficients exceeds {size}")
    padded = stream + [0] * (size - len(stream))
    return [padded[i : i + COEFFS_PER_LEAF] for i in range(0, size, COEFFS_PER_LEAF)]


def torus_distance(a: int, b: int) -> int:
    d = (a - b) & MASK64
    return min(d, (b - a) & MASK64)


def hexs(b: bytes) -> str:
    return "0x" + b.hex()


def deterministic_stream(tile: int, length: int) -> list[int]:
    seeds = (f"tile {tile} coefficient {i}".encode() for i in range(length))
    return [int.from_bytes(keccak(seed)[:8], "big") for seed in seeds]


def main() -> None:
    # Three tiles; the last stream is short (13 coefficients) to pin the zero padding.
    streams = [deterministic_stream(FIRST_TILE + t, 16 if t < 2 else 13) for t in range(3)]
    streams[0][:4] = [0, 1, MASK64, 0x0102030405060708]  # byte order is visible in leaf 0
    tiles: list[dict[str, Any]] = []
    tile_roots: list[bytes] = []
    tile_levels: list[list[list[bytes]]] = []
    for t, stream in enumerate(streams):
        leaves = [leaf_bytes(c) for c in stream_to_leaves(stream, LEAF_DEPTH)]
        levels = tree_levels([leaf_hash(leaf) for leaf in leaves])
        tile_levels.append(levels)
        tile_roots.append(levels[-1][0])
        tiles.append(
            {
                "tile": FIRST_TILE + t,
                "stream": [str(c) for c in stream],
                "leaves": [hexs(leaf) for leaf in leaves],
                "leafHashes": [hexs(h) for h in levels[0]],
                "root": hexs(levels[-1][0]),
            }
        )
    # Lease tree over 3 tile roots: depth ceil(log2(3)) = 2, padded with one zero entry.
    lease_levels = tree_levels([*tile_roots, b"\x00" * 32])
    proofs = []
    for offset in range(3):
        for leaf_index in (0, 3) if offset != 1 else (1, 2):
            siblings = path(tile_levels[offset], leaf_index) + path(lease_levels, offset)
            proofs.append(
                {
                    "tileOffset": offset,
                    "leaf": leaf_index,
                    "leafData": tiles[offset]["leaves"][leaf_index],
                    "proof": [hexs(s) for s in siblings],
                }
            )
    # Distances: tolerance + 1 (far), tolerance (not far), tolerance - 1 across the wrap, 2^63.
    a = [0, 1 << 58, MASK64, 1 << 63]
    b = [(1 << 58) + 1, 0, (1 << 58) - 2, 0]
    worker = bytes.fromhex("328809bc894f92807417d2dad6b7c998c1afdac6")
    salt = keccak(b"salt")
    root = lease_levels[-1][0]
    vectors = {
        "format": (
            "blindframe tile Merkle v1: leaf = 4 uint64 little-endian coefficients (32 bytes) "
            "in stream order, stream zero-padded to 4 * 2^leafDepth; "
            "leafHash = keccak256(0x00 || leaf); node = keccak256(0x01 || left || right); "
            "lease root over the tile roots in ascending tile order, padded with bytes32(0) to "
            "2^ceil(log2(count)); proof = leafDepth siblings bottom-up, then the lease-tree "
            "siblings; agreement: coefficients are far when their torus distance "
            "min((a-b) mod 2^64, (b-a) mod 2^64) > tolerance."
        ),
        "leafDepth": LEAF_DEPTH,
        "firstTile": FIRST_TILE,
        "count": 3,
        "tiles": tiles,
        "leaseRoot": hexs(root),
        "proofs": proofs,
        "singleTileLeaseRoot": tiles[0]["root"],
        "agreement": {
            "tolerance": str(TOLERANCE),
            "leafA": hexs(leaf_bytes(a)),
            "leafB": hexs(leaf_bytes(b)),
            "distances": [str(torus_distance(x, y)) for x, y in zip(a, b, strict=True)],
            "far": sum(torus_distance(x, y) > TOLERANCE for x, y in zip(a, b, strict=True)),
        },
        "commitment": {
            "root": hexs(root),
            "worker": "0x" + worker.hex(),
            "salt": hexs(salt),
            "commitment": hexs(keccak(root + b"\x00" * 12 + worker + salt)),
        },
    }
    out = Path(__file__).with_name("merkle.json")
    out.write_text(json.dumps(vectors, indent=2) + "\n")


if __name__ == "__main__":
    main()
