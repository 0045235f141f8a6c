// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {RenderMarket} from "../src/RenderMarket.sol";
import {IPayments} from "../src/interfaces/IPayments.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";

/// @dev A worker contract that stakes, unstakes and then withdraws; it may refuse ETH or
/// try to withdraw again from inside the transfer.
contract PayeeContract {
    RenderMarket internal immutable market;
    bool public refuse;
    bool public reenter;
    bytes public innerError;

    constructor(RenderMarket m) payable {
        market = m;
    }

    function setMode(bool refuse_, bool reenter_) external {
        (refuse, reenter) = (refuse_, reenter_);
    }

    function stakeAndUnstake(uint96 amount) external {
        market.stake{value: amount}(1);
        market.requestUnstake(amount);
    }

    function unstake() external {
        market.unstake();
    }

    function withdraw() external returns (uint256) {
        return market.withdraw();
    }

    receive() external payable {
        if (refuse) revert("no thanks");
        if (reenter) {
            try market.withdraw() returns (uint256) {
                innerError = "reentered";
            } catch (bytes memory err) {
                innerError = err;
            }
        }
    }
}

contract PaymentsTest is MarketFixture {
    PayeeContract internal payee;

    function setUp() public override {
        super.setUp();
        payee = new PayeeContract{value: 1 ether}(market);
        payee.stakeAndUnstake(uint96(p.minStake));
        vm.warp(block.timestamp + p.unbondingDelay);
        payee.unstake();
    }

    function test_withdraw_sendsThePendingBalance() public {
        assertEq(market.pendingBalance(address(payee)), p.minStake);
        vm.expectEmit(address(market));
        emit IPayments.Withdrawn(address(payee), p.minStake);
        assertEq(payee.withdraw(), p.minStake);
        assertEq(address(payee).balance, 1 ether);
        assertEq(market.pendingBalance(address(payee)), 0);
        assertEq(address(market).balance, 0);
    }

    function test_withdraw_revertsWithNothingPending() public {
        vm.expectRevert(abi.encodeWithSelector(IPayments.PaymentsNothingToWithdraw.selector, eve));
        vm.prank(eve);
        market.withdraw();
    }

    function test_withdraw_revertsAndKeepsTheBalanceWhenRefused() public {
        payee.setMode(true, false);
        vm.expectRevert(
            abi.encodeWithSelector(IPayments.PaymentsTransferFailed.selector, address(payee), p.minStake)
        );
        payee.withdraw();
        assertEq(market.pendingBalance(address(payee)), p.minStake);
        payee.setMode(false, false);
        payee.withdraw();
        assertEq(address(payee).balance, 1 ether);
    }

    function test_withdraw_reentrantCallFindsNothing() public {
        payee.setMode(false, true);
        payee.withdraw();
        assertEq(
            payee.innerError(),
            abi.encodeWithSelector(IPayments.PaymentsNothingToWithdraw.selector, address(payee))
        );
        assertEq(address(payee).balance, 1 ether);
        assertEq(address(market).balance, 0);
    }
}
