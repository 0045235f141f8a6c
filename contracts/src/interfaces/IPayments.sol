// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IPayments
/// @notice Pull payments: every wei the market owes anyone (rewards, bounties, refunds, returned
/// bonds, unbonded stake) is first credited to a pending balance, then taken out with `withdraw`.
interface IPayments {
    /*//////////////////////////////////////////////////////////////
                                 TYPES
    //////////////////////////////////////////////////////////////*/

    /// @notice Why an account was credited.
    enum CreditReason {
        Reward, // a worker's reward for verified tiles
        Bounty, // a caller's share of a slash (reclaim, disagreement or far proof)
        Compensation, // the client's share of a slash
        Refund, // escrow returned to the client (unfinished or unresolvable tiles)
        BondReturned, // a client's dispute bond returned (dispute won or undecided)
        BondAwarded, // a client's dispute bond paid to the workers (dispute lost)
        Unstaked // unbonded stake returned to its worker
    }

    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice `withdraw` was called by an account with a zero pending balance.
    error PaymentsNothingToWithdraw(address account);

    /// @notice The ETH transfer to `account` failed (a contract that rejects ETH); the balance is kept.
    error PaymentsTransferFailed(address account, uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice `amount` wei was added to `account`'s pending balance.
    /// @param jobId The job the credit comes from (0 for unbonded stake).
    event Credited(address indexed account, uint256 indexed jobId, uint256 amount, CreditReason reason);

    /// @notice `account` took `amount` wei out of its pending balance.
    event Withdrawn(address indexed account, uint256 amount);

    /*//////////////////////////////////////////////////////////////
                               FUNCTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Sends the caller's whole pending balance to the caller.
    /// @dev Checks-effects-interactions: the balance is zeroed before the transfer.
    /// @return amount The wei sent.
    function withdraw() external returns (uint256 amount);

    /// @notice The wei `account` can withdraw now.
    function pendingBalance(address account) external view returns (uint256);
}
