// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "./interfaces/IPayments.sol";
import {PaymentsBase} from "./base/PaymentsBase.sol";

/// @title Payments
/// @notice The one place ETH leaves the market: `withdraw` of a pending balance.
abstract contract Payments is IPayments, PaymentsBase {
    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IPayments
    function withdraw() external returns (uint256 amount) {
        amount = _credits[msg.sender];
        if (amount == 0) revert PaymentsNothingToWithdraw(msg.sender);
        // State, then event, then transfer: a reentrant call finds a zero balance.
        _credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert PaymentsTransferFailed(msg.sender, amount);
    }

    /// @inheritdoc IPayments
    function pendingBalance(address account) external view returns (uint256) {
        return _credits[account];
    }
}
