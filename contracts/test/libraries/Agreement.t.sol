// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";

import {Agreement} from "../../src/libraries/Agreement.sol";
import {TileTrees} from "../utils/TileTrees.sol";

contract AgreementTest is Test {
    string internal constant VECTORS = "contracts/test/vectors/merkle.json";

    function test_coefficient_readsLittleEndianInStreamOrder() public pure {
        bytes32 leaf = 0x0807060504030201_1000000000000000_ffffffffffffffff_0000000000000080;
        assertEq(Agreement.coefficient(leaf, 0), 0x0102030405060708);
        assertEq(Agreement.coefficient(leaf, 1), 0x10);
        assertEq(Agreement.coefficient(leaf, 2), type(uint64).max);
        assertEq(Agreement.coefficient(leaf, 3), uint64(1) << 63);
    }

    function testFuzz_coefficient_roundTripsEncodeLeaf(uint64 a, uint64 b, uint64 c, uint64 d) public pure {
        bytes32 leaf = TileTrees.encodeLeaf([a, b, c, d]);
        assertEq(Agreement.coefficient(leaf, 0), a);
        assertEq(Agreement.coefficient(leaf, 1), b);
        assertEq(Agreement.coefficient(leaf, 2), c);
        assertEq(Agreement.coefficient(leaf, 3), d);
    }

    function test_torusDistance_wrapsAround() public pure {
        assertEq(Agreement.torusDistance(0, type(uint64).max), 1);
        assertEq(Agreement.torusDistance(type(uint64).max, 0), 1);
        assertEq(Agreement.torusDistance(5, 5), 0);
        assertEq(Agreement.torusDistance(0, uint64(1) << 63), uint64(1) << 63);
        assertEq(Agreement.torusDistance(10, 3), 7);
    }

    function testFuzz_torusDistance_isSymmetricAndAtMostHalf(uint64 a, uint64 b) public pure {
        uint64 d = Agreement.torusDistance(a, b);
        assertEq(d, Agreement.torusDistance(b, a));
        assertLe(d, uint64(1) << 63);
        // Matches the definition computed in 256-bit arithmetic.
        uint256 up = (uint256(a) + (1 << 64) - b) % (1 << 64);
        uint256 down = (uint256(b) + (1 << 64) - a) % (1 << 64);
        assertEq(d, up < down ? up : down);
    }

    function testFuzz_torusDistance_isTranslationInvariant(uint64 a, uint64 b, uint64 shift) public pure {
        unchecked {
            assertEq(Agreement.torusDistance(a + shift, b + shift), Agreement.torusDistance(a, b));
        }
    }

    function test_farCount_isStrictlyAboveTolerance() public pure {
        uint64 tol = 100;
        bytes32 a = TileTrees.encodeLeaf([uint64(0), 0, 0, 0]);
        bytes32 b = TileTrees.encodeLeaf([uint64(101), 100, type(uint64).max - 100, type(uint64).max - 99]);
        // Distances 101 (far), 100 (not), 101 across the wrap (far), 100 across the wrap (not).
        assertEq(Agreement.farCount(a, b, tol), 2);
        assertEq(Agreement.farCount(a, a, tol), 0);
        assertEq(Agreement.farCount(a, b, 0), 4);
    }

    function testFuzz_farCount_matchesPerCoefficientRule(bytes32 a, bytes32 b, uint64 tol) public pure {
        uint256 expected;
        for (uint256 j; j < 4; ++j) {
            if (Agreement.torusDistance(Agreement.coefficient(a, j), Agreement.coefficient(b, j)) > tol) ++expected;
        }
        assertEq(Agreement.farCount(a, b, tol), expected);
        assertEq(Agreement.farCount(b, a, tol), expected);
    }

    function testFuzz_farCount_honestNoiseIsNeverFar(uint256 seed, address x, address y) public pure {
        bytes32[] memory la = TileTrees.tileLeaves(seed, 0, 2, x, TileTrees.NOISY);
        bytes32[] memory lb = TileTrees.tileLeaves(seed, 0, 2, y, TileTrees.NOISY);
        bytes32[] memory lf = TileTrees.tileLeaves(seed, 0, 2, y, 1);
        // The coefficient leaves (the last leaf is the digest, compared exactly on chain).
        for (uint256 i; i + 1 < la.length; ++i) {
            assertEq(Agreement.farCount(la[i], lb[i], 2 * TileTrees.NOISE), 0);
            assertEq(Agreement.farCount(la[i], lf[i], uint64(1) << 58), 4);
        }
    }

    function test_vectors_agreement() public view {
        string memory json = vm.readFile(VECTORS);
        bytes32 a = vm.parseJsonBytes32(json, ".agreement.leafA");
        bytes32 b = vm.parseJsonBytes32(json, ".agreement.leafB");
        uint64 tol = uint64(vm.parseJsonUint(json, ".agreement.tolerance"));
        uint256[] memory distances = vm.parseJsonUintArray(json, ".agreement.distances");
        for (uint256 j; j < 4; ++j) {
            assertEq(Agreement.torusDistance(Agreement.coefficient(a, j), Agreement.coefficient(b, j)), distances[j]);
        }
        assertEq(Agreement.farCount(a, b, tol), vm.parseJsonUint(json, ".agreement.far"));
    }
}
