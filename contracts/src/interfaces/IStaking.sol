// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IStaking
/// @notice Worker accounts: stake in native ETH, a declared capacity (tiles in work at once),
/// collateral locked per claimed tile, unstaking behind an unbonding delay, and reputation counters.
interface IStaking {
    /*//////////////////////////////////////////////////////////////
                                 TYPES
    //////////////////////////////////////////////////////////////*/

    /// @notice One worker's account. `stake` includes `locked`; `unbonding` is already out of `stake`.
    struct WorkerInfo {
        uint96 stake; // wei staked and not unbonding (collateral is locked out of it)
        uint96 locked; // wei of `stake` locked as collateral of live leases
        uint32 capacity; // most tiles the worker holds in work (claimed or committed) at once
        uint32 activeTiles; // tiles in claimed or committed leases now
        uint96 unbonding; // wei waiting for the unbonding delay
        uint40 unbondingEnd; // when `unbonding` can be unstaked
        uint64 completed; // tiles paid to this worker, ever
        uint32 faults; // slashes, ever (missed commit or reveal, proven far)
    }

    /// @notice Why collateral was slashed.
    enum SlashReason {
        MissedCommit, // the lease's commit deadline passed without a commit
        MissedReveal, // the lease's reveal deadline passed without a reveal
        FarFromTieBreaker, // proven far from the jury's verdict after a proven disagreement (or another lane's contest)
        LostDispute, // proven far from the jury's verdict in a client dispute
        LostJury, // a juror whose revealed root differs from the jury's verdict
        Unavailable // an availability challenge on the lease went unanswered
    }

    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice The worker's stake would be (or is) below the minimum stake.
    error StakingBelowMinimum(uint256 stake, uint256 minimum);

    /// @notice A capacity of zero or above `maximum` was declared.
    error StakingBadCapacity(uint256 capacity, uint256 maximum);

    /// @notice The stake would exceed the 96-bit accounting range.
    error StakingTooLarge(uint256 stake);

    /// @notice Claiming `requested` more tiles would exceed the declared capacity.
    error StakingCapacityExceeded(uint256 requested, uint256 active, uint256 capacity);

    /// @notice Not enough unlocked stake: `required` wei asked, `free` wei available.
    error StakingInsufficientFree(uint256 required, uint256 free);

    /// @notice `requestUnstake(0)` or `unstake()` with nothing unbonding.
    error StakingNothingToUnstake(address worker);

    /// @notice `unstake()` before the unbonding delay ended.
    error StakingStillUnbonding(uint256 unbondingEnd, uint256 now);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice `worker` added `amount` wei (possibly 0) and declared `capacity`.
    event WorkerStaked(address indexed worker, uint256 amount, uint256 stake, uint32 capacity);

    /// @notice `amount` wei left the stake and unbonds until `unbondingEnd` (the timer restarts).
    event UnstakeRequested(address indexed worker, uint256 amount, uint256 unbonding, uint256 unbondingEnd);

    /// @notice `amount` unbonded wei was credited to the worker's pending balance.
    event Unstaked(address indexed worker, uint256 amount);

    /// @notice `amount` wei of the worker's stake was locked as collateral of lease `leaseId`.
    event CollateralLocked(address indexed worker, uint256 indexed leaseId, uint256 amount);

    /// @notice `amount` wei of lease `leaseId`'s collateral returned to the worker's free stake.
    event CollateralReleased(address indexed worker, uint256 indexed leaseId, uint256 amount);

    /// @notice `amount` wei of lease `leaseId`'s collateral was taken from the worker's stake.
    event Slashed(address indexed worker, uint256 indexed leaseId, uint256 amount, SlashReason reason);

    /*//////////////////////////////////////////////////////////////
                               FUNCTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Adds `msg.value` to the caller's stake and declares its capacity.
    /// @dev `msg.value` may be 0 to change the capacity only. The resulting stake must reach the
    /// minimum stake; a capacity below the tiles in work only blocks new claims.
    /// @param capacity Most tiles the caller holds in work at once (1..MAX_CAPACITY).
    function stake(uint32 capacity) external payable;

    /// @notice Moves `amount` wei of unlocked stake into unbonding; (re)starts the unbonding delay.
    /// @param amount Wei to unbond; at most the stake not locked as collateral.
    function requestUnstake(uint96 amount) external;

    /// @notice After the unbonding delay, credits all unbonding wei to the caller's pending balance.
    /// @return amount The wei credited (take it out with `withdraw`).
    function unstake() external returns (uint256 amount);

    /// @notice The account of `worker`.
    function workerInfo(address worker) external view returns (WorkerInfo memory);
}
