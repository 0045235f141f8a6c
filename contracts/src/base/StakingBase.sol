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
    /// @notice Workers that can be drawn as jurors: the first DRAW_POOL_SIZE addresses to stake.
    uint256 public constant DRAW_POOL_SIZE = 1 << 12;

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
    /// @dev The draw pool: a Fenwick tree over pool indices 1..DRAW_POOL_SIZE whose weights are
    /// the members' stakes (kept equal to `_workers[member].stake` by `_setStake`).
    mapping(uint256 index => uint256 partialSum) internal _poolTree;
    mapping(address worker => uint256 index) internal _poolIndex;
    mapping(uint256 index => address worker) internal _poolMember;
    uint256 internal _poolCount;

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
        _setStake(worker, w, w.stake - amount); // <= locked <= stake
        // forge-lint: disable-next-line(unsafe-typecast)
        w.locked -= uint96(amount);
        w.faults += 1;
        emit IStaking.Slashed(worker, leaseId, amount, reason);
    }

    /// @dev The "slash" verb for proven fraud (a wrong or withheld result, a juror off the
    /// verdict): `lockedPart` of the lease's collateral as `_slash`, plus `extra` wei taken from
    /// the worker's free stake and then from its unbonding stake (as much as there is), so the
    /// minimum stake and the unbonding delay are at stake too, not only the tile's collateral.
    /// Returns the total slashed.
    function _slashFraud(
        address worker,
        uint256 leaseId,
        uint256 lockedPart,
        uint256 extra,
        IStaking.SlashReason reason
    ) internal returns (uint256 total) {
        IStaking.WorkerInfo storage w = _workers[worker];
        uint256 staked = w.stake - lockedPart;
        uint256 free = staked - (w.locked - lockedPart);
        uint256 fromFree = extra < free ? extra : free;
        uint256 unbonding = w.unbonding;
        uint256 fromUnbonding = extra - fromFree < unbonding ? extra - fromFree : unbonding;
        total = lockedPart + fromFree + fromUnbonding;
        _setStake(worker, w, staked - fromFree);
        // forge-lint: disable-next-line(unsafe-typecast)
        w.locked -= uint96(lockedPart); // <= locked
        // forge-lint: disable-next-line(unsafe-typecast)
        if (fromUnbonding != 0) w.unbonding = uint96(unbonding - fromUnbonding); // <= unbonding
        w.faults += 1;
        emit IStaking.Slashed(worker, leaseId, total, reason);
    }

    /// @dev Every change of a worker's stake goes through here: it keeps the draw pool's weights
    /// equal to the stakes. A worker joins the pool at its first stake while the pool has room.
    function _setStake(address worker, IStaking.WorkerInfo storage w, uint256 newStake) internal {
        uint256 old = w.stake;
        // forge-lint: disable-next-line(unsafe-typecast)
        w.stake = uint96(newStake); // callers keep it within uint96 (checked at stake, else smaller)
        uint256 i = _poolIndex[worker];
        if (i == 0) {
            if (newStake == 0 || _poolCount == DRAW_POOL_SIZE) return;
            i = ++_poolCount;
            _poolIndex[worker] = i;
            _poolMember[i] = worker;
            old = 0;
        }
        // Fenwick update: at most log2(DRAW_POOL_SIZE) + 1 = 13 slots.
        if (newStake > old) {
            uint256 delta = newStake - old;
            for (; i <= DRAW_POOL_SIZE; i += i & (~i + 1)) _poolTree[i] += delta;
        } else if (old > newStake) {
            uint256 delta = old - newStake;
            for (; i <= DRAW_POOL_SIZE; i += i & (~i + 1)) _poolTree[i] -= delta;
        }
    }

    /// @dev The pool member whose stake interval holds `r` (0 <= r < total pooled stake).
    function _poolMemberAt(uint256 r) internal view returns (address) {
        uint256 pos = 0;
        for (uint256 step = DRAW_POOL_SIZE; step != 0; step >>= 1) {
            uint256 next = pos + step;
            if (next <= DRAW_POOL_SIZE) {
                uint256 sum = _poolTree[next];
                if (sum <= r) {
                    pos = next;
                    r -= sum;
                }
            }
        }
        return _poolMember[pos + 1];
    }

    /// @dev Where `worker`'s stake lies on the pool's line [0, total): it starts at `start` and
    /// is `weight` long (0 for a worker outside the pool).
    function _poolRange(address worker) internal view returns (uint256 start, uint256 weight) {
        uint256 i = _poolIndex[worker];
        if (i == 0) return (0, 0);
        weight = _workers[worker].stake;
        for (uint256 k = i - 1; k != 0; k -= k & (~k + 1)) start += _poolTree[k]; // <= 12 slots
    }

    /// @dev Total stake in the draw pool.
    function _poolTotal() internal view returns (uint256) {
        return _poolTree[DRAW_POOL_SIZE];
    }
}
