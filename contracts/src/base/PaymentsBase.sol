// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "../interfaces/IPayments.sol";

/// @title PaymentsBase
/// @notice Pending balances and the "reward" verb that credits them. Shared by RenderMarket and
/// MarketFaults (same storage layout: neither declares state of its own).
abstract contract PaymentsBase {
    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    mapping(address account => uint256 amount) internal _credits;

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev The "reward" verb: every wei owed to anyone is credited here, then withdrawn.
    function _credit(address account, uint256 jobId, uint256 amount, IPayments.CreditReason reason) internal {
        // incorrect-equality (Medium, triaged): skipping a zero credit is exact by intent.
        // slither-disable-next-line incorrect-equality
        if (amount == 0) return;
        _credits[account] += amount;
        emit IPayments.Credited(account, jobId, amount, reason);
    }
}
