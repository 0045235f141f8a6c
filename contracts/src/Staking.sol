// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "./interfaces/IPayments.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {StakingBase} from "./base/StakingBase.sol";

/// @title Staking
/// @notice The workers' own entry points: stake and capacity, unstaking behind the unbonding delay.
abstract contract Staking is IStaking, StakingBase {
    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IStaking
    function stake(uint32 capacity) external payable {
        if (capacity == 0 || capacity > MAX_CAPACITY) revert StakingBadCapacity(capacity, MAX_CAPACITY);
        WorkerInfo storage w = _workers[msg.sender];
        uint256 total = uint256(w.stake) + msg.value;
        if (total > type(uint96).max) revert StakingTooLarge(total);
        if (total < _MIN_STAKE) revert StakingBelowMinimum(total, _MIN_STAKE);
        _setStake(msg.sender, w, total); // fits a uint96: checked just above
        w.capacity = capacity;
        emit WorkerStaked(msg.sender, msg.value, total, capacity);
    }

    /// @inheritdoc IStaking
    function requestUnstake(uint96 amount) external {
        if (amount == 0) revert StakingNothingToUnstake(msg.sender);
        WorkerInfo storage w = _workers[msg.sender];
        uint256 free = w.stake - w.locked;
        if (amount > free) revert StakingInsufficientFree(amount, free);
        uint256 unbonding = uint256(w.unbonding) + amount;
        uint256 end = block.timestamp + _UNBONDING_DELAY;
        _setStake(msg.sender, w, w.stake - amount);
        // forge-lint: disable-next-line(unsafe-typecast)
        w.unbonding = uint96(unbonding); // every wei of it was a uint96 stake once
        // forge-lint: disable-next-line(unsafe-typecast)
        w.unbondingEnd = uint40(end); // a timestamp
        emit UnstakeRequested(msg.sender, amount, unbonding, end);
    }

    /// @inheritdoc IStaking
    function unstake() external returns (uint256 amount) {
        WorkerInfo storage w = _workers[msg.sender];
        amount = w.unbonding;
        if (amount == 0) revert StakingNothingToUnstake(msg.sender);
        if (block.timestamp < w.unbondingEnd) revert StakingStillUnbonding(w.unbondingEnd, block.timestamp);
        w.unbonding = 0;
        w.unbondingEnd = 0;
        emit Unstaked(msg.sender, amount);
        _credit(msg.sender, 0, amount, IPayments.CreditReason.Unstaked);
    }

    /// @inheritdoc IStaking
    function workerInfo(address worker) external view returns (WorkerInfo memory) {
        return _workers[worker];
    }
}
