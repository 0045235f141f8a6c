// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "forge-std/Vm.sol";

import {MarketFixture} from "./MarketFixture.sol";

/// @dev `cool` is in Foundry 1.7 but not in the forge-std 1.9.3 Vm interface.
interface VmCool {
    function cool(address target) external;
}

/// @title GasMeter
/// @notice Prices a market call as its own transaction: the market's storage and account are made
/// cold first (vm.cool), and the call's execution gas (vm.lastCallGas) gets the intrinsic cost
/// added (21,000 + 16 per non-zero and 4 per zero calldata byte) and the refund taken off (capped
/// at a fifth, EIP-3529).
abstract contract GasMeter is MarketFixture {
    /// @dev Sends `data` from `from` as if it were its own transaction and returns its gas.
    function _tx(address from, uint256 value, bytes memory data) internal returns (uint256 gas) {
        VmCool(address(vm)).cool(address(market));
        vm.prank(from);
        (bool ok, bytes memory ret) = address(market).call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        Vm.Gas memory g = vm.lastCallGas();
        uint256 used = 21_000 + _calldataCost(data) + g.gasTotalUsed;
        uint256 refund = g.gasRefunded > 0 ? uint256(int256(g.gasRefunded)) : 0;
        uint256 cap = used / 5;
        gas = used - (refund < cap ? refund : cap);
    }

    function _calldataCost(bytes memory data) internal pure returns (uint256 cost) {
        for (uint256 i; i < data.length; ++i) {
            cost += data[i] == 0 ? 4 : 16;
        }
    }
}
