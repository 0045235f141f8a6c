// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {console} from "forge-std/console.sol";

import {GasMeter} from "../utils/GasMeter.sol";

/// @title GasAdvertiseTest
/// @notice What a render node pays to advertise its speed at one kernel, each call priced as its
/// own transaction (GasMeter): the first advertisement (a new slot) and an update of it. A node
/// sends one per kernel at start when its figure moved by more than 20 % or is a day old, so this
/// is the whole cost of advertising. Figures go to contracts/README.md ("Gas of the unhappy
/// paths", advertisements) and to snapshots/GasAdvertise.json.
contract GasAdvertiseTest is GasMeter {
    function test_gas_advertise() public {
        _stake(alice);
        uint256 first = _tx(alice, 0, abi.encodeCall(market.advertise, (KERNEL, 2500)));
        vm.warp(block.timestamp + 1 days + 1);
        uint256 update = _tx(alice, 0, abi.encodeCall(market.advertise, (KERNEL, 3100)));
        (uint32 ms, uint40 updatedAt) = market.advertisement(alice, KERNEL);
        assertEq(ms, 3100);
        assertEq(updatedAt, block.timestamp);
        // A fresh slot costs a zero-to-nonzero store; an update a nonzero-to-nonzero one.
        assertGt(first, update);
        assertLt(first, 50_000, "an advertisement stays one cheap store");
        console.log("advertise (first)", first);
        console.log("advertise (update)", update);
        vm.snapshotValue("GasAdvertise", "advertise_first", first);
        vm.snapshotValue("GasAdvertise", "advertise_update", update);
    }
}
