"""Merkle leaves, roots and proofs: the exact format the contract implements."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from eth_hash.auto import keccak as eth_keccak

from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.merkle import (
    DIGEST_WORDS,
    ZERO32,
    TileTree,
    digest_leaf,
    digest_leaf_at,
    far_count,
    keccak256,
    leaf_depth,
    leaf_depth_for,
    leaf_hash,
    lease_depth,
    lease_proof,
    lease_root,
    leaves_of,
    node_hash,
    stream_length,
    torus_distance,
    verify_proof,
)

VECTORS = Path(__file__).parents[2] / "contracts" / "test" / "vectors"


def _naive_root(coeffs: list[int]) -> bytes:
    """An independent, slow re-implementation straight from the spec (eth_hash's keccak)."""
    n = len(coeffs)
    depth = 0
    while (1 << depth) < -(-n // 4):
        depth += 1
    padded = coeffs + [0] * ((4 << depth) - n)
    level = [
        eth_keccak(b"\x00" + b"".join(struct.pack("<Q", c) for c in padded[i : i + 4]))
        for i in range(0, len(padded), 4)
    ]
    while len(level) > 1:
        level = [eth_keccak(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_leaf_depth() -> None:
    assert leaf_depth_for(1) == 0
    assert leaf_depth_for(4) == 0
    assert leaf_depth_for(5) == 1
    assert leaf_depth_for(131136) == 16
    assert leaf_depth("volume@1") == 16  # 64 pixels x 2049 words, then the digest leaf
    assert stream_length("volume@1") == 64 * 2049 + DIGEST_WORDS
    assert stream_length("post@1") == 64 * 4097 + DIGEST_WORDS
    assert leaf_depth("post@1") == 17
    # the digest leaf is the last leaf of the tree, after the zero padding
    assert digest_leaf("post@1") == (1 << 17) - 1
    assert digest_leaf("volume@1") == (1 << 16) - 1
    assert digest_leaf_at(0) == 0
    assert digest_leaf_at(2) == 3


@pytest.mark.parametrize(("depth", "used"), [(1, 1), (3, 2), (4, 9), (6, 33)])
def test_digest_leaf_after_zero_padding(depth: int, used: int, rng: np.random.Generator) -> None:
    """A tile's shape: ``used`` leaves of coefficients, zero leaves, then the digest leaf last.
    The zero-subtree shortcut gives the independent implementation's root, and every leaf (a
    zero one included) proves against it."""
    stream = np.zeros(4 << depth, dtype=np.uint64)
    stream[: 4 * used - 1] = rng.integers(1, 1 << 63, 4 * used - 1, dtype=np.uint64)
    digest = digest_leaf_at(depth)
    stream[4 * digest :] = rng.integers(1, 1 << 63, 4, dtype=np.uint64)
    tree = TileTree.build(stream, depth)
    assert tree.root == _naive_root([int(c) for c in stream])
    assert tree.leaf(digest) == stream[4 * digest :].astype("<u8").tobytes()
    for index in sorted({0, used - 1, used, digest - 1, digest} & set(range(1 << depth))):
        proof = tree.proof(index)
        assert len(proof) == depth
        assert verify_proof(tree.leaf(index), index, 0, proof, tree.root, depth)
        flipped = bytearray(tree.leaf(index))
        flipped[31] ^= 1
        assert not verify_proof(bytes(flipped), index, 0, proof, tree.root, depth)
    # the digest leaf is part of the root: changing it changes the root
    other = stream.copy()
    other[-1] ^= np.uint64(1)
    assert TileTree.build(other, depth).root != tree.root


def test_leaves_are_little_endian_and_padded() -> None:
    stream = np.array([1, 2, 3, 4, 0x0102030405060708], dtype=np.uint64)
    leaves = leaves_of(stream, 1)
    assert leaves.shape == (2, 32)
    assert bytes(leaves[0][:8]) == (1).to_bytes(8, "little")
    assert bytes(leaves[1][:8]) == bytes.fromhex("0807060504030201")
    assert bytes(leaves[1][8:]) == bytes(24)


@pytest.mark.parametrize("n", [1, 4, 5, 17, 64, 1000])
def test_root_matches_an_independent_implementation(n: int, rng: np.random.Generator) -> None:
    coeffs = rng.integers(0, 1 << 63, n, dtype=np.uint64) * 2 + 1
    tree = TileTree.build(coeffs, leaf_depth_for(n))
    assert tree.root == _naive_root([int(c) for c in coeffs])


def test_proofs_verify_and_tampering_fails(rng: np.random.Generator) -> None:
    streams = [rng.integers(0, 1 << 64, 300, dtype=np.uint64) for _ in range(3)]
    depth = leaf_depth_for(300)
    trees = [TileTree.build(s, depth) for s in streams]
    roots = [t.root for t in trees]
    root = lease_root(roots)
    assert lease_depth(3) == 2
    for position, tree in enumerate(trees):
        for index in (0, 37, 74, (1 << depth) - 1):
            proof = tree.proof(index) + lease_proof(roots, position)
            assert len(proof) == depth + 2
            assert verify_proof(tree.leaf(index), index, position, proof, root, depth)
            flipped = bytearray(tree.leaf(index))
            flipped[0] ^= 1
            assert not verify_proof(bytes(flipped), index, position, proof, root, depth)
    # the padded upper slot is bytes32(0)
    assert lease_root(roots) == node_hash(
        node_hash(roots[0], roots[1]), node_hash(roots[2], ZERO32)
    )


def test_single_tile_lease_root_is_the_tile_root(rng: np.random.Generator) -> None:
    tree = TileTree.build(rng.integers(0, 1 << 64, 40, dtype=np.uint64), leaf_depth_for(40))
    assert lease_root([tree.root]) == tree.root
    assert lease_proof([tree.root], 0) == []


def test_hash_primitives() -> None:
    assert keccak256(b"") == bytes.fromhex(
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert leaf_hash(bytes(32)) == keccak256(bytes(33))
    with pytest.raises(ParameterError):
        leaf_hash(b"short")


def test_torus_distance_wraps() -> None:
    a = np.array([0, 1, (1 << 64) - 1, 1 << 63], dtype=np.uint64)
    b = np.array([0, (1 << 64) - 1, 1, 0], dtype=np.uint64)
    assert torus_distance(a, b).tolist() == [0, 2, 2, 1 << 63]
    assert far_count(a, b, 1) == 3
    assert far_count(a, b, 2) == 1


def test_contract_vectors() -> None:
    """The Solidity side's vectors (contracts/test/vectors/merkle.json): leaves, leaf hashes,
    tile roots, the lease root, every proof and the agreement example."""
    data = json.loads((VECTORS / "merkle.json").read_text())
    depth = int(data["leafDepth"])
    roots = []
    for tile in data["tiles"]:
        stream = np.array([int(c) for c in tile["stream"]], dtype=np.uint64)
        assert leaf_depth_for(len(stream)) == depth
        tree = TileTree.build(stream, depth)
        assert ["0x" + bytes(leaf).hex() for leaf in tree.leaves] == tile["leaves"]
        assert ["0x" + h.hex() for h in tree.levels[0]] == tile["leafHashes"]
        assert "0x" + tree.root.hex() == tile["root"]
        roots.append(tree.root)
    root = lease_root(roots)
    assert "0x" + root.hex() == data["leaseRoot"]
    assert "0x" + lease_root(roots[:1]).hex() == data["singleTileLeaseRoot"]
    trees = [
        TileTree.build(np.array([int(c) for c in t["stream"]], dtype=np.uint64), depth)
        for t in data["tiles"]
    ]
    for vec in data["proofs"]:
        tree = trees[int(vec["tileOffset"])]
        proof = tree.proof(int(vec["leaf"])) + lease_proof(roots, int(vec["tileOffset"]))
        assert ["0x" + p.hex() for p in proof] == vec["proof"]
        leaf = bytes.fromhex(vec["leafData"][2:])
        assert verify_proof(leaf, int(vec["leaf"]), int(vec["tileOffset"]), proof, root, depth)
    agr = data["agreement"]
    a = np.frombuffer(bytes.fromhex(agr["leafA"][2:]), dtype="<u8")
    b = np.frombuffer(bytes.fromhex(agr["leafB"][2:]), dtype="<u8")
    assert [str(int(d)) for d in torus_distance(a, b)] == agr["distances"]
    assert far_count(a, b, int(agr["tolerance"])) == int(agr["far"])
