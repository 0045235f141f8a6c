// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TileBitmap
/// @notice Ranges of tile bits over `mapping(word => bits)`: tile t is bit (t % 256) of word t / 256.
/// A lease's range spans at most two words (MAX_LEASE_TILES <= 256), so every loop here runs
/// once or twice; callers bound `count`.
library TileBitmap {
    /// @notice The bits of [first, first + count) that fall in word `word`.
    function rangeMask(uint256 first, uint256 count, uint256 word) internal pure returns (uint256 mask) {
        uint256 lo = word << 8;
        uint256 start = first > lo ? first - lo : 0;
        uint256 end = first + count - lo; // exclusive, relative to the word; > start by the caller's loop
        if (end > 256) end = 256;
        uint256 width = end - start;
        // width in 1..256: type(uint256).max >> (256 - width) has `width` low bits set.
        mask = (type(uint256).max >> (256 - width)) << start;
    }

    /// @notice Sets every bit of the range if none is set; returns false (writing nothing that
    /// the caller keeps: it reverts) if one is.
    function trySetRange(mapping(uint256 => uint256) storage words, uint256 first, uint256 count)
        internal
        returns (bool)
    {
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            uint256 mask = rangeMask(first, count, w);
            uint256 bits = words[w];
            if (bits & mask != 0) return false;
            words[w] = bits | mask;
        }
        return true;
    }

    /// @notice Sets every bit of the range (some may be set already).
    function setRange(mapping(uint256 => uint256) storage words, uint256 first, uint256 count) internal {
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            words[w] |= rangeMask(first, count, w);
        }
    }

    /// @notice Clears every bit of the range.
    function clearRange(mapping(uint256 => uint256) storage words, uint256 first, uint256 count) internal {
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            words[w] &= ~rangeMask(first, count, w);
        }
    }

    /// @notice True when every bit of the range is set.
    function isRangeSet(mapping(uint256 => uint256) storage words, uint256 first, uint256 count)
        internal
        view
        returns (bool)
    {
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            uint256 mask = rangeMask(first, count, w);
            if (words[w] & mask != mask) return false;
        }
        return true;
    }

    /// @notice True when bit `tile` is set.
    function isSet(mapping(uint256 => uint256) storage words, uint256 tile) internal view returns (bool) {
        return (words[tile >> 8] >> (tile & 255)) & 1 == 1;
    }

    /// @notice Sets bit `tile`.
    function set(mapping(uint256 => uint256) storage words, uint256 tile) internal {
        words[tile >> 8] |= uint256(1) << (tile & 255);
    }
}
