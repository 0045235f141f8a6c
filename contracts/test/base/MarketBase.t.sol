// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";

import {MarketFaults} from "../../src/MarketFaults.sol";
import {RenderMarket} from "../../src/RenderMarket.sol";
import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {Defaults} from "../utils/Defaults.sol";

/// @notice Constructor parameters: validation and the documented defaults.
contract MarketBaseTest is Test {
    function _expectBad(IRenderMarket.Params memory p, string memory name) internal {
        address faults = address(new MarketFaults(p));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadParameter.selector, name));
        new RenderMarket(p, faults);
    }

    function test_constructor_acceptsTheDefaults() public {
        RenderMarket market = Defaults.deploy(Defaults.params());
        assertEq(abi.encode(market.params()), abi.encode(Defaults.params()));
        assertTrue(address(market).code.length <= 24_576, "EIP-170 code size limit");
        assertTrue(market.faultsModule().code.length <= 24_576, "EIP-170 code size limit");
        // EIP-3860: each creation's initcode (creation code and ABI-encoded arguments) is at most
        // 49,152 bytes. The two halves are created apart (see deploy/deployer.py).
        uint256 marketInit = type(RenderMarket).creationCode.length + abi.encode(Defaults.params(), address(0)).length;
        uint256 faultsInit = type(MarketFaults).creationCode.length + abi.encode(Defaults.params()).length;
        assertLe(marketInit, 49_152, "EIP-3860 initcode limit (RenderMarket)");
        assertLe(faultsInit, 49_152, "EIP-3860 initcode limit (MarketFaults)");
    }

    function test_constructor_refusesAFaultsModuleBuiltWithOtherParameters() public {
        IRenderMarket.Params memory p = Defaults.params();
        IRenderMarket.Params memory other = Defaults.params();
        other.challengeWindow = 1; // one window apart is enough to refuse
        address faults = address(new MarketFaults(other));
        bytes32 expected = keccak256(abi.encode(p));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketFaultsMismatch.selector, faults, keccak256(abi.encode(other)), expected
            )
        );
        new RenderMarket(p, faults);
        address empty = makeAddr("no code");
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketFaultsMismatch.selector, empty, bytes32(0), expected));
        new RenderMarket(p, empty);
        RenderMarket market = new RenderMarket(p, address(new MarketFaults(p)));
        assertEq(MarketFaults(market.faultsModule()).paramsHash(), expected);
    }

    function test_constructor_revertsOnEachBadParameter() public {
        IRenderMarket.Params memory p = Defaults.params();
        p.minStake = 0;
        _expectBad(p, "minStake");
        p = Defaults.params();
        p.collateralPerTile = 0;
        _expectBad(p, "collateralPerTile");
        p.collateralPerTile = p.minStake + 1;
        _expectBad(p, "collateralPerTile");
        p = Defaults.params();
        p.unbondingDelay = 0;
        _expectBad(p, "unbondingDelay");
        p = Defaults.params();
        p.maxLeaseLength = 0;
        _expectBad(p, "maxLeaseLength");
        p = Defaults.params();
        p.revealWindow = 0;
        _expectBad(p, "revealWindow");
        p = Defaults.params();
        p.challengeWindow = 0;
        _expectBad(p, "challengeWindow");
        p = Defaults.params();
        p.acceptanceWindow = 0;
        _expectBad(p, "acceptanceWindow");
        p = Defaults.params();
        p.tieBreakWindow = 0;
        _expectBad(p, "tieBreakWindow");
        p = Defaults.params();
        p.slashBps = 10_001;
        _expectBad(p, "slashBps");
        p = Defaults.params();
        p.bountyBps = 10_001;
        _expectBad(p, "bountyBps");
        p = Defaults.params();
        p.disputeBond = 0;
        _expectBad(p, "disputeBond");
        p = Defaults.params();
        p.tolerance = uint64(1) << 63;
        _expectBad(p, "tolerance");
        p = Defaults.params();
        p.farCount = 0;
        _expectBad(p, "farCount");
        p.farCount = 129;
        _expectBad(p, "farCount");
        p = Defaults.params();
        p.jurySize = 0;
        _expectBad(p, "jurySize");
        p.jurySize = 2; // even: no strict majority guaranteed
        _expectBad(p, "jurySize");
        p.jurySize = 9; // above MAX_JURY
        _expectBad(p, "jurySize");
        p.jurySize = 7;
        Defaults.deploy(p);
    }

    function test_defaults_matchTheJsonTheDeployScriptReads() public view {
        string memory json = vm.readFile("contracts/params.defaults.json");
        IRenderMarket.Params memory d = Defaults.params();
        assertEq(vm.parseJsonUint(json, ".minStake"), d.minStake);
        assertEq(vm.parseJsonUint(json, ".collateralPerTile"), d.collateralPerTile);
        assertEq(vm.parseJsonUint(json, ".unbondingDelay"), d.unbondingDelay);
        assertEq(vm.parseJsonUint(json, ".maxLeaseLength"), d.maxLeaseLength);
        assertEq(vm.parseJsonUint(json, ".revealWindow"), d.revealWindow);
        assertEq(vm.parseJsonUint(json, ".challengeWindow"), d.challengeWindow);
        assertEq(vm.parseJsonUint(json, ".acceptanceWindow"), d.acceptanceWindow);
        assertEq(vm.parseJsonUint(json, ".tieBreakWindow"), d.tieBreakWindow);
        assertEq(vm.parseJsonUint(json, ".slashBps"), d.slashBps);
        assertEq(vm.parseJsonUint(json, ".bountyBps"), d.bountyBps);
        assertEq(vm.parseJsonUint(json, ".disputeBond"), d.disputeBond);
        assertEq(vm.parseJsonUint(json, ".tolerance"), d.tolerance);
        assertEq(vm.parseJsonUint(json, ".farCount"), d.farCount);
        assertEq(vm.parseJsonUint(json, ".jurySize"), d.jurySize);
        assertEq(vm.parseJsonKeys(json, "$").length, 15); // 14 parameters and the comment
    }
}
