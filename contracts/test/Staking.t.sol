// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "../src/interfaces/IPayments.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";

contract StakingTest is MarketFixture {
    /*//////////////////////////////////////////////////////////////
                                 STAKE
    //////////////////////////////////////////////////////////////*/

    function test_stake_recordsStakeAndCapacity() public {
        vm.expectEmit(address(market));
        emit IStaking.WorkerStaked(alice, STAKE, STAKE, 7);
        vm.prank(alice);
        market.stake{value: STAKE}(7);
        IStaking.WorkerInfo memory w = market.workerInfo(alice);
        assertEq(w.stake, STAKE);
        assertEq(w.capacity, 7);
        assertEq(w.locked, 0);
        assertEq(address(market).balance, STAKE);
    }

    function test_stake_addsToStakeAndUpdatesCapacity() public {
        _stake(alice);
        vm.expectEmit(address(market));
        emit IStaking.WorkerStaked(alice, 0, STAKE, 3);
        vm.prank(alice);
        market.stake(3); // zero value: capacity only
        vm.prank(alice);
        market.stake{value: 1 wei}(9);
        assertEq(market.workerInfo(alice).stake, STAKE + 1);
        assertEq(market.workerInfo(alice).capacity, 9);
    }

    function test_stake_revertsOnZeroCapacity() public {
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingBadCapacity.selector, 0, market.MAX_CAPACITY()));
        vm.prank(alice);
        market.stake{value: STAKE}(0);
    }

    function test_stake_revertsOnCapacityAboveMaximum() public {
        uint32 capacity = uint32(market.MAX_CAPACITY() + 1);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingBadCapacity.selector, capacity, capacity - 1));
        vm.prank(alice);
        market.stake{value: STAKE}(capacity);
    }

    function test_stake_revertsBelowMinimum() public {
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingBelowMinimum.selector, p.minStake - 1, p.minStake));
        vm.prank(alice);
        market.stake{value: p.minStake - 1}(1);
    }

    function test_stake_revertsAbove96Bits() public {
        uint256 huge = uint256(type(uint96).max) + 1;
        vm.deal(alice, huge);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingTooLarge.selector, huge));
        vm.prank(alice);
        market.stake{value: huge}(1);
    }

    function testFuzz_stake_accumulates(uint96 first, uint96 second) public {
        first = uint96(bound(first, p.minStake, 100 ether));
        second = uint96(bound(second, 0, 100 ether));
        vm.startPrank(alice);
        market.stake{value: first}(1);
        market.stake{value: second}(2);
        vm.stopPrank();
        assertEq(market.workerInfo(alice).stake, uint256(first) + second);
        assertEq(address(market).balance, uint256(first) + second);
    }

    /*//////////////////////////////////////////////////////////////
                                UNSTAKE
    //////////////////////////////////////////////////////////////*/

    function test_requestUnstake_movesStakeToUnbonding() public {
        _stake(alice);
        uint256 end = block.timestamp + p.unbondingDelay;
        vm.expectEmit(address(market));
        emit IStaking.UnstakeRequested(alice, 0.4 ether, 0.4 ether, end);
        vm.prank(alice);
        market.requestUnstake(0.4 ether);
        IStaking.WorkerInfo memory w = market.workerInfo(alice);
        assertEq(w.stake, STAKE - 0.4 ether);
        assertEq(w.unbonding, 0.4 ether);
        assertEq(w.unbondingEnd, end);
    }

    function test_requestUnstake_addsAndRestartsTheDelay() public {
        _stake(alice);
        vm.prank(alice);
        market.requestUnstake(0.1 ether);
        vm.warp(block.timestamp + 100);
        vm.prank(alice);
        market.requestUnstake(0.2 ether);
        assertEq(market.workerInfo(alice).unbonding, 0.3 ether);
        assertEq(market.workerInfo(alice).unbondingEnd, block.timestamp + p.unbondingDelay);
    }

    function test_requestUnstake_revertsOnZero() public {
        _stake(alice);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingNothingToUnstake.selector, alice));
        vm.prank(alice);
        market.requestUnstake(0);
    }

    function test_requestUnstake_revertsOnLockedStake() public {
        _stake(alice);
        uint256 job = _post(10, 1);
        _claim(alice, job, 0, 0, 10);
        uint256 free = STAKE - 10 * p.collateralPerTile;
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingInsufficientFree.selector, STAKE, free));
        vm.prank(alice);
        market.requestUnstake(STAKE);
    }

    function test_unstake_creditsAfterTheDelay() public {
        _stake(alice);
        vm.prank(alice);
        market.requestUnstake(uint96(STAKE));
        vm.warp(block.timestamp + p.unbondingDelay);
        vm.expectEmit(address(market));
        emit IStaking.Unstaked(alice, STAKE);
        vm.expectEmit(address(market));
        emit IPayments.Credited(alice, 0, STAKE, IPayments.CreditReason.Unstaked);
        vm.prank(alice);
        assertEq(market.unstake(), STAKE);
        assertEq(market.pendingBalance(alice), STAKE);
        assertEq(market.workerInfo(alice).unbonding, 0);
        vm.prank(alice);
        market.withdraw();
        assertEq(alice.balance, 1000 ether);
    }

    function test_unstake_revertsWithNothingUnbonding() public {
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingNothingToUnstake.selector, alice));
        vm.prank(alice);
        market.unstake();
    }

    function test_unstake_revertsBeforeTheDelay() public {
        _stake(alice);
        vm.prank(alice);
        market.requestUnstake(1 ether);
        uint256 end = block.timestamp + p.unbondingDelay;
        vm.warp(end - 1);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingStillUnbonding.selector, end, end - 1));
        vm.prank(alice);
        market.unstake();
    }

    function test_workerInfo_isZeroForStrangers() public view {
        IStaking.WorkerInfo memory w = market.workerInfo(eve);
        assertEq(w.stake + w.locked + w.capacity + w.activeTiles + w.unbonding + w.completed + w.faults, 0);
    }
}
