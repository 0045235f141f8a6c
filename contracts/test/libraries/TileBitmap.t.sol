// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";

import {TileBitmap} from "../../src/libraries/TileBitmap.sol";

contract TileBitmapTest is Test {
    using TileBitmap for mapping(uint256 => uint256);

    mapping(uint256 => uint256) internal words;
    /// @dev The naive model: one bool per tile.
    mapping(uint256 => bool) internal model;

    function test_rangeMask_withinOneWord() public pure {
        assertEq(TileBitmap.rangeMask(0, 1, 0), 1);
        assertEq(TileBitmap.rangeMask(3, 2, 0), 0x18);
        assertEq(TileBitmap.rangeMask(0, 256, 0), type(uint256).max);
        assertEq(TileBitmap.rangeMask(255, 1, 0), uint256(1) << 255);
    }

    function test_rangeMask_acrossTwoWords() public pure {
        // Tiles 250..261: bits 250..255 of word 0, bits 0..5 of word 1.
        assertEq(TileBitmap.rangeMask(250, 12, 0), uint256(0x3f) << 250);
        assertEq(TileBitmap.rangeMask(250, 12, 1), 0x3f);
        assertEq(TileBitmap.rangeMask(256, 256, 1), type(uint256).max);
    }

    function test_trySetRange_setsAndRefusesOverlap() public {
        assertTrue(words.trySetRange(10, 5));
        assertEq(words[0], uint256(0x1f) << 10);
        assertFalse(words.trySetRange(14, 3));
        assertTrue(words.trySetRange(15, 3));
        assertTrue(words.isRangeSet(10, 8));
        assertFalse(words.isRangeSet(9, 2));
    }

    function test_clearRange_clearsOnlyTheRange() public {
        words.setRange(250, 12);
        words.clearRange(252, 5);
        assertTrue(words.isRangeSet(250, 2));
        assertTrue(words.isRangeSet(257, 5));
        assertFalse(words.isSet(252));
        assertFalse(words.isSet(256));
    }

    function test_setAndIsSet_singleTiles() public {
        assertFalse(words.isSet(1000));
        words.set(1000);
        assertTrue(words.isSet(1000));
        assertEq(words[3], uint256(1) << (1000 - 768));
    }

    /// @dev Random sequences of range operations agree with the bool-per-tile model.
    function testFuzz_rangeOps_matchModel(uint256[8] memory firsts, uint256[8] memory counts, uint8 ops) public {
        for (uint256 k; k < 8; ++k) {
            uint256 first = bound(firsts[k], 0, 700);
            uint256 count = bound(counts[k], 1, 256);
            bool clear = (ops >> k) & 1 == 1;
            bool anySet;
            bool allSet = true;
            for (uint256 t = first; t < first + count; ++t) {
                anySet = anySet || model[t];
                allSet = allSet && model[t];
            }
            assertEq(words.isRangeSet(first, count), allSet);
            if (clear) {
                words.clearRange(first, count);
                for (uint256 t = first; t < first + count; ++t) {
                    model[t] = false;
                }
            } else {
                bool ok = words.trySetRange(first, count);
                assertEq(ok, !anySet);
                if (ok) {
                    for (uint256 t = first; t < first + count; ++t) {
                        model[t] = true;
                    }
                } else {
                    // The market reverts on false; mimic the rollback of partial writes.
                    words.clearRange(first, count);
                    for (uint256 t = first; t < first + count; ++t) {
                        if (model[t]) words.set(t);
                    }
                }
            }
            for (uint256 t = first > 2 ? first - 2 : 0; t < first + count + 2; ++t) {
                assertEq(words.isSet(t), model[t]);
            }
        }
    }
}
