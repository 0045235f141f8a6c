// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Agreement
/// @notice The noise-tolerant agreement rule. Honest replicas' ciphertexts differ in their low
/// bits, so two coefficients a, b (uint64, on the torus Z / 2^64) are "far" when their torus
/// distance min((a - b) mod 2^64, (b - a) mod 2^64) exceeds `tolerance`; two replicas disagree
/// when openings of the same leaves show at least `farCount` far pairs.
library Agreement {
    /// @notice Coefficients per 32-byte leaf.
    uint256 internal constant COEFFICIENTS_PER_LEAF = 4;

    /// @notice The leaf with each 8-byte lane byte-reversed: lane j (from the most significant
    /// end) then holds coefficient j as a big-endian uint64.
    function toBigEndianLanes(bytes32 leaf) internal pure returns (uint256 v) {
        v = uint256(leaf);
        v = ((v >> 8) & 0x00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF)
            | ((v & 0x00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF) << 8);
        v = ((v >> 16) & 0x0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF)
            | ((v & 0x0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF) << 16);
        v = ((v >> 32) & 0x00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF)
            | ((v & 0x00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF) << 32);
    }

    /// @notice Coefficient `j` (0..3) of `leaf`: bytes [8j, 8j + 8) read little-endian.
    function coefficient(bytes32 leaf, uint256 j) internal pure returns (uint64) {
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint64(toBigEndianLanes(leaf) >> (192 - 64 * j)); // keeps lane j: the truncation is the point
    }

    /// @notice min((a - b) mod 2^64, (b - a) mod 2^64).
    function torusDistance(uint64 a, uint64 b) internal pure returns (uint64) {
        unchecked {
            // Wrapping subtraction is the torus arithmetic itself.
            uint64 d = a - b;
            uint64 e = b - a;
            return d < e ? d : e;
        }
    }

    /// @notice How many of the 4 coefficient pairs of two leaves are far apart.
    function farCount(bytes32 leafA, bytes32 leafB, uint64 tolerance) internal pure returns (uint256 n) {
        uint256 a = toBigEndianLanes(leafA);
        uint256 b = toBigEndianLanes(leafB);
        for (uint256 shift; shift < 256; shift += 64) {
            // The uint64 casts keep one lane each: the truncation is the point.
            // forge-lint: disable-next-line(unsafe-typecast)
            if (torusDistance(uint64(a >> shift), uint64(b >> shift)) > tolerance) ++n;
        }
    }
}
