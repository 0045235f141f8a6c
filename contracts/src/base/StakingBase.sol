// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IStaking} from "../interfaces/IStaking.sol";
import {PaymentsBase} from "./PaymentsBase.sol";

/// @title StakingBase
/// @notice Worker accounts and the money verbs on collateral: lock, release, slash. Each verb
/// updates state, then emits its event; none transfers ETH.
abstract contract StakingBase is PaymentsBase {
    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Largest declarable capacity (tiles in work at once).
    uint256 public constant MAX_CAPACITY = 1 << 20;

    /*//////////////////////////////////////////////////////////////
                               IMMUTABLES
    //////////////////////////////////////////////////////////////*/

    uint256 internal immutable _MIN_STAKE;
    uint256 internal immutable _COLLATERAL_PER_TILE;
    uint256 internal immutable _UNBONDING_DELAY;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    mapping(address worker => IStaking.WorkerInfo info) internal _workers;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    constructor(uint256 minStake, uint256 collateralPerTile, uint256 unbondingDelay) {
        _MIN_STAKE = minStake;
        _COLLATERAL_PER_TILE = collateralPerTile;
        _UNBONDING_DELAY = unbondingDelay;
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev The "lock" verb: takes `tiles` of capacity and tiles x collateralPerTile of free stake
    /// for lease `leaseId`, after checking the minimum stake, the capacity and the free stake.
    function _lock(address worker, uint256 leaseId, uint256 tiles) internal {
        IStaking.WorkerInfo storage w = _workers[worker];
        (uint256 staked, uint256 locked, uint256 active, uint256 capacity) =
            (w.stake, w.locked, w.activeTiles, w.capacity);
        if (staked < _MIN_STAKE) revert IStaking.StakingBelowMinimum(staked, _MIN_STAKE);
        if (active + tiles > capacity) revert IStaking.StakingCapacityExceeded(tiles, active, capacity);
        uint256 amount = tiles * _COLLATERAL_PER_TILE;
        if (amount > staked - locked) revert IStaking.StakingInsufficientFree(amount, staked - locked);
        // forge-lint: disable-next-line(unsafe-typecast)
        w.locked = uint96(locked + amount); // <= stake, a uint96
        // forge-lint: disable-next-line(unsafe-typecast)
        w.activeTiles = uint32(active + tiles); // <= capacity, a uint32
        emit IStaking.CollateralLocked(worker, leaseId, amount);
    }

    /// @dev Gives back `tiles` of capacity: the lease's work ended (revealed or reclaimed).
    function _endWork(address worker, uint256 tiles) internal {
        // forge-lint: disable-next-line(unsafe-typecast)
        _workers[worker].activeTiles -= uint32(tiles); // tiles <= MAX_LEASE_TILES
    }

    /// @dev The "release" verb: `amount` wei of lease `leaseId`'s collateral returns to free
    /// stake; `completedTiles` paid tiles count into the worker's reputation.
    function _release(address worker, uint256 leaseId, uint256 amount, uint256 completedTiles) internal {
        IStaking.WorkerInfo storage w = _workers[worker];
        // forge-lint: disable-next-line(unsafe-typecast)
        w.locked -= uint96(amount); // <= locked, checked by the subtraction
        // forge-lint: disable-next-line(unsafe-typecast)
        if (completedTiles != 0) w.completed += uint64(completedTiles); // <= MAX_LEASE_TILES
        emit IStaking.CollateralReleased(worker, leaseId, amount);
    }

    /// @dev The "slash" verb: `amount` wei of lease `leaseId`'s collateral leaves the worker's
    /// stake (the caller credits it onward) and the fault is counted.
    function _slash(address worker, uint256 leaseId, uint256 amount, IStaking.SlashReason reason) internal {
        IStaking.WorkerInfo storage w = _workers[worker];
        // forge-lint: disable-next-line(unsafe-typecast)
        w.stake -= uint96(amount); // <= locked <= stake
        // forge-lint: disable-next-line(unsafe-typecast)
        w.locked -= uint96(amount);
        w.faults += 1;
        emit IStaking.Slashed(worker, leaseId, amount, reason);
    }
}
