// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";

import {TileMerkle} from "../../src/libraries/TileMerkle.sol";
import {TileTrees} from "../utils/TileTrees.sol";

/// @dev Exposes the library with calldata proofs, as the market calls it.
contract TileMerkleHarness {
    function verify(
        bytes32 root,
        bytes32 leaf,
        uint256 leafIndex,
        uint256 leafDepth,
        uint256 tileOffset,
        uint256 count,
        bytes32[] calldata proof
    ) external pure returns (bool) {
        return TileMerkle.verify(root, leaf, leafIndex, leafDepth, tileOffset, count, proof);
    }

    function rootFrom(bytes32 leaf, uint256 leafIndex, uint256 leafDepth, uint256 tileOffset, bytes32[] calldata proof)
        external
        pure
        returns (bytes32)
    {
        return TileMerkle.rootFrom(leaf, leafIndex, leafDepth, tileOffset, proof);
    }
}

contract TileMerkleTest is Test {
    TileMerkleHarness internal h = new TileMerkleHarness();
    string internal constant VECTORS = "contracts/test/vectors/merkle.json";

    /*//////////////////////////////////////////////////////////////
                              HASHING
    //////////////////////////////////////////////////////////////*/

    function test_leafHash_prefixesZeroByte() public pure {
        bytes32 leaf = keccak256("leaf");
        assertEq(TileMerkle.leafHash(leaf), keccak256(abi.encodePacked(bytes1(0x00), leaf)));
    }

    function test_node_prefixesOneByte() public pure {
        bytes32 l = keccak256("l");
        bytes32 r = keccak256("r");
        assertEq(TileMerkle.node(l, r), keccak256(abi.encodePacked(bytes1(0x01), l, r)));
        assertTrue(TileMerkle.node(l, r) != TileMerkle.node(r, l));
    }

    function test_node_leavesFreeMemoryPointer() public pure {
        uint256 before;
        assembly {
            before := mload(0x40)
        }
        TileMerkle.node(bytes32(uint256(1)), bytes32(uint256(2)));
        uint256 after_;
        assembly {
            after_ := mload(0x40)
        }
        assertEq(after_, before);
    }

    function testFuzz_hashes_matchIndependentEncoding(bytes32 a, bytes32 b) public pure {
        assertEq(TileMerkle.leafHash(a), TileTrees.hashLeaf(a));
        assertEq(TileMerkle.node(a, b), TileTrees.hashNode(a, b));
        // Domain separation: a leaf hash never equals the node hash of its halves.
        assertTrue(TileMerkle.leafHash(a) != TileMerkle.node(bytes32(0), a));
    }

    function test_leaseDepth_isCeilLog2() public pure {
        uint256[10] memory counts = [uint256(1), 2, 3, 4, 5, 8, 9, 64, 65, 256];
        uint256[10] memory depths = [uint256(0), 1, 2, 2, 3, 3, 4, 6, 7, 8];
        for (uint256 i; i < counts.length; ++i) {
            assertEq(TileMerkle.leaseDepth(counts[i]), depths[i]);
        }
    }

    /*//////////////////////////////////////////////////////////////
                              PROOFS
    //////////////////////////////////////////////////////////////*/

    function testFuzz_verify_acceptsEveryLeafOfEveryTile(uint256 seed, uint256 depth, uint256 count) public view {
        depth = bound(depth, 0, 3);
        count = bound(count, 1, 9);
        bytes32[][] memory tiles = TileTrees.leaseTiles(seed, 0, count, depth, address(1), 0);
        bytes32 root = TileTrees.leaseRoot(tiles);
        for (uint256 t; t < count; ++t) {
            for (uint256 i; i < tiles[t].length; ++i) {
                bytes32[] memory proof = TileTrees.proof(tiles, t, i);
                assertEq(proof.length, depth + TileMerkle.leaseDepth(count));
                assertTrue(h.verify(root, tiles[t][i], i, depth, t, count, proof));
            }
        }
    }

    function test_verify_singleTileLeaseRootIsTileRoot() public view {
        bytes32[][] memory tiles = TileTrees.leaseTiles(7, 3, 1, 2, address(1), 0);
        bytes32 root = TileTrees.leaseRoot(tiles);
        assertEq(root, TileTrees.root(tiles[0], true));
        assertTrue(h.verify(root, tiles[0][2], 2, 2, 0, 1, TileTrees.proof(tiles, 0, 2)));
    }

    function testFuzz_verify_rejectsTampering(uint256 seed, uint256 which) public view {
        uint256 count = 3;
        bytes32[][] memory tiles = TileTrees.leaseTiles(seed, 0, count, 2, address(1), 0);
        bytes32 root = TileTrees.leaseRoot(tiles);
        bytes32[] memory proof = TileTrees.proof(tiles, 1, 2);
        bytes32 leaf = tiles[1][2];
        which = bound(which, 0, 5);
        if (which == 0) leaf = ~leaf; // another leaf
        else if (which == 1) proof[0] = ~proof[0]; // a tile-tree sibling
        else if (which == 2) proof[proof.length - 1] = ~proof[proof.length - 1]; // a lease-tree sibling
        else if (which == 3) root = ~root;
        if (which <= 3) {
            assertFalse(h.verify(root, leaf, 2, 2, 1, count, proof));
        } else if (which == 4) {
            assertFalse(h.verify(root, leaf, 3, 2, 1, count, proof)); // wrong leaf index
        } else {
            assertFalse(h.verify(root, leaf, 2, 2, 2, count, proof)); // wrong tile offset
        }
    }

    function test_verify_rejectsWrongProofLength() public view {
        bytes32[][] memory tiles = TileTrees.leaseTiles(1, 0, 2, 2, address(1), 0);
        bytes32 root = TileTrees.leaseRoot(tiles);
        bytes32[] memory proof = TileTrees.proof(tiles, 0, 1);
        bytes32[] memory shorter = new bytes32[](proof.length - 1);
        for (uint256 i; i < shorter.length; ++i) {
            shorter[i] = proof[i];
        }
        assertTrue(h.verify(root, tiles[0][1], 1, 2, 0, 2, proof));
        assertFalse(h.verify(root, tiles[0][1], 1, 2, 0, 2, shorter));
        // The same path read as a shallower tile tree must not pass either.
        assertFalse(h.verify(root, tiles[0][1], 1, 1, 0, 2, proof));
    }

    function test_verify_rejectsOutOfRangeIndices() public view {
        bytes32[][] memory tiles = TileTrees.leaseTiles(1, 0, 2, 2, address(1), 0);
        bytes32 root = TileTrees.leaseRoot(tiles);
        bytes32[] memory proof = TileTrees.proof(tiles, 1, 1);
        assertTrue(h.verify(root, tiles[1][1], 1, 2, 1, 2, proof));
        // Index bits above the tree are not silently ignored.
        assertFalse(h.verify(root, tiles[1][1], 1 + 4, 2, 1, 2, proof));
        assertFalse(h.verify(root, tiles[1][1], 1, 2, 1 + 2, 2, proof));
    }

    /*//////////////////////////////////////////////////////////////
                          SHARED TEST VECTORS
    //////////////////////////////////////////////////////////////*/

    function test_vectors_tileRootsAndLeaseRoot() public view {
        string memory json = vm.readFile(VECTORS);
        uint256 depth = vm.parseJsonUint(json, ".leafDepth");
        uint256 count = vm.parseJsonUint(json, ".count");
        bytes32[] memory tileRoots = new bytes32[](count);
        for (uint256 t; t < count; ++t) {
            string memory k = string.concat(".tiles[", vm.toString(t), "]");
            bytes32[] memory leaves = vm.parseJsonBytes32Array(json, string.concat(k, ".leaves"));
            uint256[] memory stream = vm.parseJsonUintArray(json, string.concat(k, ".stream"));
            assertEq(leaves.length, uint256(1) << depth);
            // Leaves are the stream, 4 little-endian uint64 per leaf, zero-padded.
            for (uint256 i; i < leaves.length; ++i) {
                uint64[4] memory c;
                for (uint256 j; j < 4; ++j) {
                    c[j] = 4 * i + j < stream.length ? uint64(stream[4 * i + j]) : 0;
                }
                assertEq(leaves[i], TileTrees.encodeLeaf(c));
                string memory hashKey = string.concat(k, ".leafHashes[", vm.toString(i), "]");
                assertEq(TileMerkle.leafHash(leaves[i]), vm.parseJsonBytes32(json, hashKey));
            }
            tileRoots[t] = TileTrees.root(leaves, true);
            assertEq(tileRoots[t], vm.parseJsonBytes32(json, string.concat(k, ".root")));
        }
        assertEq(TileTrees.root(TileTrees.padded(tileRoots), false), vm.parseJsonBytes32(json, ".leaseRoot"));
        assertEq(tileRoots[0], vm.parseJsonBytes32(json, ".singleTileLeaseRoot"));
    }

    function test_vectors_proofsVerify() public view {
        string memory json = vm.readFile(VECTORS);
        bytes32 root = vm.parseJsonBytes32(json, ".leaseRoot");
        uint256 depth = vm.parseJsonUint(json, ".leafDepth");
        uint256 count = vm.parseJsonUint(json, ".count");
        uint256 n = 6;
        assertTrue(vm.keyExistsJson(json, ".proofs[5]") && !vm.keyExistsJson(json, ".proofs[6]"));
        for (uint256 i; i < n; ++i) {
            string memory k = string.concat(".proofs[", vm.toString(i), "]");
            bytes32[] memory proof = vm.parseJsonBytes32Array(json, string.concat(k, ".proof"));
            uint256 offset = vm.parseJsonUint(json, string.concat(k, ".tileOffset"));
            uint256 leaf = vm.parseJsonUint(json, string.concat(k, ".leaf"));
            bytes32 data = vm.parseJsonBytes32(json, string.concat(k, ".leafData"));
            assertTrue(h.verify(root, data, leaf, depth, offset, count, proof));
            assertEq(h.rootFrom(data, leaf, depth, offset, proof), root);
        }
    }
}
