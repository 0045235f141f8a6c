// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {MarketFaults} from "../../src/MarketFaults.sol";
import {RenderMarket} from "../../src/RenderMarket.sol";
import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";

/// @title Defaults
/// @notice The documented default deployment parameters (contracts/README.md and
/// contracts/params.defaults.json, checked equal by MarketBase.t.sol).
library Defaults {
    /// @notice A market deployed as `deploy/deployer.py` does it: MarketFaults first, then
    /// RenderMarket with the same parameters and the module's address.
    function deploy(IRenderMarket.Params memory p) internal returns (RenderMarket) {
        return new RenderMarket(p, address(new MarketFaults(p)));
    }

    function params() internal pure returns (IRenderMarket.Params memory) {
        return IRenderMarket.Params({
            minStake: 0.1 ether,
            collateralPerTile: 0.001 ether,
            unbondingDelay: 1 days,
            maxLeaseLength: 1 days,
            revealWindow: 1 hours,
            challengeWindow: 1 hours,
            acceptanceWindow: 1 days,
            tieBreakWindow: 6 hours,
            slashBps: 5000,
            bountyBps: 2000,
            disputeBond: 0.01 ether,
            tolerance: uint64(1) << 58,
            farCount: 8,
            jurySize: 3
        });
    }
}
