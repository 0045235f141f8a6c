// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TileMerkle
/// @notice The blindframe result commitment (fixed; fhe_core builds the same trees):
///  - a tile's output is a stream of uint64 coefficients, zero-padded to 4 * 2^leafDepth;
///  - leaf = 32 bytes = 4 coefficients, each uint64 little-endian, in stream order;
///  - leafHash(leaf) = keccak256(0x00 || leaf); node(l, r) = keccak256(0x01 || l || r);
///  - tileRoot = complete binary tree of depth leafDepth over the leaf hashes;
///  - lease root = complete binary tree of depth ceil(log2(count)) over the lease's tile roots
///    in ascending tile order, padded with bytes32(0), same `node` (count 1: lease root = tileRoot);
///  - a proof of leaf i of the tile at offset o of the lease: leafDepth siblings bottom-up,
///    then the lease-tree siblings for o, bottom-up.
/// The 0x00 / 0x01 prefixes keep a leaf from passing for an inner node (second preimage).
library TileMerkle {
    /// @notice Deepest tile tree accepted (4 * 2^24 coefficients per tile).
    uint256 internal constant MAX_LEAF_DEPTH = 24;

    /// @notice keccak256(0x00 || leaf).
    function leafHash(bytes32 leaf) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, 0)
            mstore(0x01, leaf) // bytes 1..32; byte 0 stays 0x00
            h := keccak256(0x00, 33)
        }
    }

    /// @notice keccak256(0x01 || left || right).
    function node(bytes32 left, bytes32 right) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            // 65 bytes do not fit the 64-byte scratch space: use (and leave) free memory.
            let p := mload(0x40)
            mstore8(p, 1)
            mstore(add(p, 1), left)
            mstore(add(p, 33), right)
            h := keccak256(p, 65)
        }
    }

    /// @notice Depth of the lease tree over `count` tile roots: ceil(log2(count)), 0 for 1.
    function leaseDepth(uint256 count) internal pure returns (uint256 depth) {
        while ((uint256(1) << depth) < count) ++depth; // count <= MAX_LEASE_TILES: at most 8 rounds
    }

    /// @notice The lease root a proof leads to from `leaf` at index `leafIndex` of the tile at
    /// `tileOffset` of the lease. `proof.length` must be leafDepth + leaseDepth (checked by `verify`).
    function rootFrom(
        bytes32 leaf,
        uint256 leafIndex,
        uint256 leafDepth,
        uint256 tileOffset,
        bytes32[] calldata proof
    ) internal pure returns (bytes32 h) {
        h = leafHash(leaf);
        uint256 n = proof.length;
        for (uint256 k; k < n; ++k) {
            // First leafDepth levels walk the tile tree, the rest the lease tree.
            uint256 index = k < leafDepth ? leafIndex >> k : tileOffset >> (k - leafDepth);
            h = index & 1 == 0 ? node(h, proof[k]) : node(proof[k], h);
        }
    }

    /// @notice True when `proof` opens `leaf` at (tileOffset, leafIndex) of a lease of `count`
    /// tiles with tile trees of depth `leafDepth` against `root`.
    function verify(
        bytes32 root,
        bytes32 leaf,
        uint256 leafIndex,
        uint256 leafDepth,
        uint256 tileOffset,
        uint256 count,
        bytes32[] calldata proof
    ) internal pure returns (bool) {
        if (leafIndex >> leafDepth != 0 || tileOffset >= count) return false;
        if (proof.length != leafDepth + leaseDepth(count)) return false;
        return rootFrom(leaf, leafIndex, leafDepth, tileOffset, proof) == root;
    }
}
