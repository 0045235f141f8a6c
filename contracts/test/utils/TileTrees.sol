// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TileTrees
/// @notice Test-side Merkle trees in the blindframe format, written independently of
/// src/libraries/TileMerkle.sol (plain abi.encodePacked hashing) so the tests cross-check it,
/// plus deterministic tile outputs: honest replicas differ in low bits, forged ones everywhere.
library TileTrees {
    /// @notice Honest replicas differ by less than this per coefficient.
    uint64 internal constant NOISE = uint64(1) << 20;

    function hashLeaf(bytes32 leaf) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x00), leaf));
    }

    function hashNode(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// @notice Packs 4 coefficients little-endian, coefficient 0 first.
    function encodeLeaf(uint64[4] memory c) internal pure returns (bytes32 leaf) {
        bytes memory b = new bytes(32);
        for (uint256 j; j < 4; ++j) {
            for (uint256 k; k < 8; ++k) {
                b[8 * j + k] = bytes1(uint8(c[j] >> (8 * k)));
            }
        }
        leaf = bytes32(b);
    }

    /// @notice Root of a complete tree over `nodes` (length a power of two) hashed as leaves
    /// when `asLeaves`, else taken as they are.
    function root(bytes32[] memory nodes, bool asLeaves) internal pure returns (bytes32) {
        uint256 n = nodes.length;
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            level[i] = asLeaves ? hashLeaf(nodes[i]) : nodes[i];
        }
        while (n > 1) {
            for (uint256 i; i < n / 2; ++i) {
                level[i] = hashNode(level[2 * i], level[2 * i + 1]);
            }
            n /= 2;
        }
        return level[0];
    }

    /// @notice Sibling path (bottom-up) of `index` in the tree of `root(nodes, asLeaves)`.
    function path(bytes32[] memory nodes, bool asLeaves, uint256 index) internal pure returns (bytes32[] memory p) {
        uint256 n = nodes.length;
        uint256 depth;
        while ((uint256(1) << depth) < n) ++depth;
        p = new bytes32[](depth);
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            level[i] = asLeaves ? hashLeaf(nodes[i]) : nodes[i];
        }
        for (uint256 d; d < depth; ++d) {
            p[d] = level[index ^ 1];
            for (uint256 i; i < n / 2; ++i) {
                level[i] = hashNode(level[2 * i], level[2 * i + 1]);
            }
            n /= 2;
            index /= 2;
        }
    }

    /// @notice The tile roots of a lease padded with zeros to a power of two.
    function padded(bytes32[] memory tileRoots) internal pure returns (bytes32[] memory out) {
        uint256 size = 1;
        while (size < tileRoots.length) size *= 2;
        out = new bytes32[](size);
        for (uint256 i; i < tileRoots.length; ++i) {
            out[i] = tileRoots[i];
        }
    }

    /// @notice Lease root over per-tile leaves (tiles[i] = leaves of the lease's i-th tile).
    function leaseRoot(bytes32[][] memory tiles) internal pure returns (bytes32) {
        bytes32[] memory roots = new bytes32[](tiles.length);
        for (uint256 i; i < tiles.length; ++i) {
            roots[i] = root(tiles[i], true);
        }
        return root(padded(roots), false);
    }

    /// @notice Proof of leaf `leaf` of the lease's tile at `offset`: tile path, then lease path.
    function proof(bytes32[][] memory tiles, uint256 offset, uint256 leaf) internal pure returns (bytes32[] memory) {
        bytes32[] memory lower = path(tiles[offset], true, leaf);
        bytes32[] memory roots = new bytes32[](tiles.length);
        for (uint256 i; i < tiles.length; ++i) {
            roots[i] = root(tiles[i], true);
        }
        bytes32[] memory upper = path(padded(roots), false, offset);
        bytes32[] memory p = new bytes32[](lower.length + upper.length);
        for (uint256 i; i < lower.length; ++i) {
            p[i] = lower[i];
        }
        for (uint256 i; i < upper.length; ++i) {
            p[lower.length + i] = upper[i];
        }
        return p;
    }

    /// @notice Forgery kind: coefficients honest, only the digest leaf (the last leaf) differs.
    uint8 internal constant DIGEST_ONLY = 3;
    /// @notice Forgery kind: coefficients within NOISE of the truth, digest leaf honest (an
    /// honest-looking replica the tolerance rule must accept on coefficient leaves).
    uint8 internal constant NOISY = 4;

    /// @notice One tile's output: leaves 0 .. 2^leafDepth - 2 hold the true coefficients of
    /// (job, tile); the last leaf is the digest leaf (a stand-in for sha256 of the output
    /// bundle). Honest replicas are bit-identical (pinned FFT plans, fhe_core/AGREEMENT.md). A
    /// forgery k in {1, 2} shifts every coefficient by 2^(64 - k) (k = 1: 2^63, k = 2: 2^62),
    /// far from the truth and from forgeries of another k, and changes the digest leaf (two
    /// replicas with the same forgery are identical: one operator's sybil lanes);
    /// DIGEST_ONLY changes only the digest leaf; NOISY adds this replica's noise below NOISE to
    /// the coefficients and keeps the honest digest leaf.
    function tileLeaves(uint256 jobId, uint256 tile, uint256 leafDepth, address replica, uint8 forgery)
        internal
        pure
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](uint256(1) << leafDepth);
        uint256 last = leaves.length - 1;
        for (uint256 i; i < last; ++i) {
            uint64[4] memory c;
            for (uint256 j; j < 4; ++j) {
                uint64 truth = uint64(uint256(keccak256(abi.encode("truth", jobId, tile, i, j))));
                uint64 noise = uint64(uint256(keccak256(abi.encode("noise", replica, jobId, tile, i, j)))) % NOISE;
                unchecked {
                    // Torus arithmetic: wrapping is intended.
                    if (forgery == 0 || forgery == DIGEST_ONLY) c[j] = truth;
                    else if (forgery == NOISY) c[j] = truth + noise;
                    else c[j] = truth + (uint64(1) << (64 - forgery));
                }
            }
            leaves[i] = encodeLeaf(c);
        }
        uint8 kind = forgery == NOISY ? 0 : forgery;
        leaves[last] = keccak256(abi.encode("digest", jobId, tile, kind));
    }

    /// @notice The outputs of tiles [first, first + count) of a lease.
    function leaseTiles(uint256 jobId, uint256 first, uint256 count, uint256 leafDepth, address replica, uint8 forgery)
        internal
        pure
        returns (bytes32[][] memory tiles)
    {
        tiles = new bytes32[][](count);
        for (uint256 i; i < count; ++i) {
            tiles[i] = tileLeaves(jobId, first + i, leafDepth, replica, forgery);
        }
    }
}
