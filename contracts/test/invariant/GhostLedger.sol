// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";

/// @title GhostLedger
/// @notice The invariant handler's own books, per actor and per job: what each worker, client,
/// juror, challenger and the keeper should hold in the market (pending balance, stake, unbonding
/// stake, locked collateral) and in its wallet, and what each job should still hold in escrow and
/// reserve. Every amount is computed here from the market's rules (contracts/README.md: slash
/// and bounty fractions, fraud slashes from free then unbonding stake, forfeits, jury shares and
/// their dust), from the handler's own actions and the market's public parameters; nothing is
/// copied from the market's accounting. The handler feeds it the structural facts it cannot
/// know otherwise (which worker a juror draw seated, the jury's verdict lease, a lease's status
/// before a contest resolves) and, once, a measured figure: an answered availability
/// challenge's gas refund, which depends on the gas the answer used.
abstract contract GhostLedger {
    uint256 internal constant BPS = 10_000;

    uint256 internal immutable collateralPerTile;
    uint256 internal immutable slashBps;
    uint256 internal immutable bountyBps;
    /// @dev The extra a proven fraud costs beyond the tile's collateral: slashBps of the minimum stake.
    uint256 internal immutable fraudExtra;

    /// @dev What `pendingBalance(account)` must be.
    mapping(address account => uint256) public ghostPending;
    /// @dev Every wei credited to the account, by the rules, since the start (for the -vv summary).
    mapping(address account => uint256) public ghostCredited;
    /// @dev What `workerInfo(worker)` must hold.
    mapping(address worker => uint256) public ghostStake;
    mapping(address worker => uint256) public ghostUnbonding;
    mapping(address worker => uint256) public ghostLocked;
    /// @dev What the account's wallet must hold: its start, less what it paid in, plus withdrawals.
    mapping(address account => uint256) public ghostWallet;
    /// @dev What `getJob(jobId)` must hold.
    mapping(uint256 jobId => uint256) public ghostEscrow;
    mapping(uint256 jobId => uint256) public ghostReserved;
    mapping(uint256 jobId => uint256) internal ghostReward;
    mapping(uint256 jobId => address) internal ghostClient;
    mapping(uint256 jobId => uint8) internal ghostReplication;
    /// @dev Tiles of each lease lost to contests (bit i: firstTile + i), and whether an unanswered
    /// availability challenge forfeited the whole lease.
    mapping(uint256 leaseId => uint256) internal ghostForfeitMask;
    mapping(uint256 leaseId => uint256) internal ghostForfeitCount;
    mapping(uint256 leaseId => bool) internal ghostLeaseForfeited;
    /// @dev Sides proven far from each contest's verdict (bit 0: side A, bit 1: side B).
    mapping(uint256 contestId => uint8) internal ghostFarMask;

    constructor(IRenderMarket.Params memory p) {
        collateralPerTile = p.collateralPerTile;
        slashBps = p.slashBps;
        bountyBps = p.bountyBps;
        fraudExtra = uint256(p.minStake) * p.slashBps / BPS;
    }

    /// @notice The ledger of `account` in one call (the invariant reads it after every call):
    /// pending balance, wallet, stake, unbonding stake, locked collateral.
    function books(address account) external view returns (uint256[5] memory) {
        return [
            ghostPending[account],
            ghostWallet[account],
            ghostStake[account],
            ghostUnbonding[account],
            ghostLocked[account]
        ];
    }

    /// @notice The ledger of job `jobId`: escrow and reserved slots.
    function jobBooks(uint256 jobId) external view returns (uint256, uint256) {
        return (ghostEscrow[jobId], ghostReserved[jobId]);
    }

    /*//////////////////////////////////////////////////////////////
                        MONEY IN AND OUT OF WALLETS
    //////////////////////////////////////////////////////////////*/

    function _ledgerDeal(address account, uint256 amount) internal {
        ghostWallet[account] += amount;
    }

    /// @dev `account` sent `amount` to the market (a stake, an escrow, a bond).
    function _ledgerPay(address account, uint256 amount) internal {
        ghostWallet[account] -= amount;
    }

    /// @dev `account` withdrew: everything it was owed, into its wallet. Returns the amount.
    function _ledgerWithdraw(address account) internal returns (uint256 amount) {
        amount = ghostPending[account];
        ghostPending[account] = 0;
        ghostWallet[account] += amount;
    }

    function _ledgerCredit(address account, uint256 amount) internal {
        ghostPending[account] += amount;
        ghostCredited[account] += amount;
    }

    /*//////////////////////////////////////////////////////////////
                                 STAKES
    //////////////////////////////////////////////////////////////*/

    function _ledgerStake(address worker, uint256 amount) internal {
        _ledgerPay(worker, amount);
        ghostStake[worker] += amount;
    }

    function _ledgerRequestUnstake(address worker, uint256 amount) internal {
        ghostStake[worker] -= amount;
        ghostUnbonding[worker] += amount;
    }

    /// @dev The whole unbonding stake becomes withdrawable.
    function _ledgerUnstake(address worker) internal {
        _ledgerCredit(worker, ghostUnbonding[worker]);
        ghostUnbonding[worker] = 0;
    }

    /// @dev A proven fraud: `lockedPart` of the lease's collateral, plus the fraud extra from the
    /// worker's free stake, then from its unbonding stake, as far as they go. Returns the total.
    function _ledgerSlashFraud(address worker, uint256 lockedPart) internal returns (uint256 total) {
        uint256 free = ghostStake[worker] - ghostLocked[worker];
        uint256 fromFree = fraudExtra < free ? fraudExtra : free;
        uint256 rest = fraudExtra - fromFree;
        uint256 fromUnbonding = rest < ghostUnbonding[worker] ? rest : ghostUnbonding[worker];
        ghostStake[worker] -= lockedPart + fromFree;
        ghostLocked[worker] -= lockedPart;
        ghostUnbonding[worker] -= fromUnbonding;
        total = lockedPart + fromFree + fromUnbonding;
    }

    /// @dev Splits a slash: bountyBps to `beneficiary`, the rest to the client.
    function _ledgerShareSlash(address client, uint256 slashed, address beneficiary) internal {
        uint256 bounty = slashed * bountyBps / BPS;
        _ledgerCredit(beneficiary, bounty);
        _ledgerCredit(client, slashed - bounty);
    }

    /*//////////////////////////////////////////////////////////////
                              JOBS AND LEASES
    //////////////////////////////////////////////////////////////*/

    function _ledgerPost(uint256 jobId, address client, uint256 tiles, uint8 replication, uint256 reward) internal {
        uint256 escrow = tiles * replication * reward;
        _ledgerPay(client, escrow);
        ghostEscrow[jobId] = escrow;
        ghostReward[jobId] = reward;
        ghostClient[jobId] = client;
        ghostReplication[jobId] = replication;
    }

    /// @dev A claim (or a juror's seat: one tile in a jury lane) locks its tiles' collateral; a
    /// replica lane's claim also reserves its tiles' rewards in the escrow.
    function _ledgerClaim(IRenderMarket.Lease memory l) internal {
        ghostLocked[l.worker] += uint256(l.count) * collateralPerTile;
        if (l.lane < ghostReplication[l.jobId]) ghostReserved[l.jobId] += l.count;
    }

    /// @dev A missed deadline: slashBps of the lease's collateral, its bounty to the caller (to the
    /// client when the worker reclaims its own lease), the rest to the client; the remaining
    /// collateral freed; a replica lane's reservation dropped.
    function _ledgerReclaim(IRenderMarket.Lease memory l, address caller) internal {
        uint256 collateral = uint256(l.count) * collateralPerTile;
        uint256 slashed = collateral * slashBps / BPS;
        ghostStake[l.worker] -= slashed;
        ghostLocked[l.worker] -= collateral;
        if (l.lane < ghostReplication[l.jobId]) ghostReserved[l.jobId] -= l.count;
        address client = ghostClient[l.jobId];
        _ledgerShareSlash(client, slashed, caller == l.worker ? client : caller);
    }

    /// @dev A settled (or finalized) lease: each tile it did not forfeit paid its reward and freed
    /// its collateral.
    function _ledgerSettle(uint256 leaseId, IRenderMarket.Lease memory l) internal {
        uint256 tiles = uint256(l.count) - ghostForfeitCount[leaseId];
        uint256 amount = tiles * ghostReward[l.jobId];
        ghostEscrow[l.jobId] -= amount;
        ghostReserved[l.jobId] -= tiles;
        ghostLocked[l.worker] -= tiles * collateralPerTile;
        _ledgerCredit(l.worker, amount);
    }

    /// @dev What a refund (after the deadline, or of a cancelled job) or a cancel gives back: the
    /// escrow no live lease reserves.
    function _ledgerRefund(uint256 jobId) internal returns (uint256 amount) {
        amount = ghostEscrow[jobId] - ghostReserved[jobId] * ghostReward[jobId];
        ghostEscrow[jobId] -= amount;
        _ledgerCredit(ghostClient[jobId], amount);
    }

    /// @dev Tile `tile` of the lease is lost in a contest: its reward leaves the escrow (returned
    /// to the caller's pool: the client or the jury), its collateral is freed, less the fraud
    /// slash when `slash`. A tile (or lease) already forfeited forfeits nothing more.
    function _ledgerForfeit(uint256 leaseId, IRenderMarket.Lease memory l, uint256 tile, bool slash)
        internal
        returns (uint256 slashed, uint256 freed)
    {
        uint256 bit = uint256(1) << (tile - l.firstTile);
        if (ghostForfeitMask[leaseId] & bit != 0) return (0, 0);
        ghostForfeitMask[leaseId] |= bit;
        ++ghostForfeitCount[leaseId];
        --ghostReserved[l.jobId];
        freed = ghostReward[l.jobId];
        ghostEscrow[l.jobId] -= freed;
        uint256 lockedPart = slash ? collateralPerTile * slashBps / BPS : 0;
        if (slash) slashed = _ledgerSlashFraud(l.worker, lockedPart);
        ghostLocked[l.worker] -= collateralPerTile - lockedPart;
    }

    /// @dev An unanswered availability challenge: the whole lease forfeited (its unpaid tiles'
    /// slots freed in the escrow, for a later refund), a fraud slash of slashBps of their
    /// collateral plus the fraud extra; the bond back and the slash's bounty to the challenger,
    /// the rest to the client.
    function _ledgerUnavailable(uint256 leaseId, IRenderMarket.Lease memory l, address challenger, uint256 bond)
        internal
    {
        uint256 unpaid = uint256(l.count) - ghostForfeitCount[leaseId];
        ghostForfeitMask[leaseId] = type(uint256).max;
        ghostForfeitCount[leaseId] = l.count;
        ghostLeaseForfeited[leaseId] = true;
        ghostReserved[l.jobId] -= unpaid;
        uint256 collateral = unpaid * collateralPerTile;
        uint256 lockedPart = collateral * slashBps / BPS;
        uint256 slashed = _ledgerSlashFraud(l.worker, lockedPart);
        ghostLocked[l.worker] -= collateral - lockedPart;
        _ledgerCredit(challenger, bond);
        _ledgerShareSlash(ghostClient[l.jobId], slashed, challenger);
    }

    /// @dev A juror off the verdict: slashed as fraud (for the jury's pool), the rest freed.
    function _ledgerJurorOff(address worker) internal returns (uint256 slashed) {
        uint256 lockedPart = collateralPerTile * slashBps / BPS;
        slashed = _ledgerSlashFraud(worker, lockedPart);
        ghostLocked[worker] -= collateralPerTile - lockedPart;
    }

    /// @dev A juror paid its share: its collateral freed.
    function _ledgerJurorPaid(address worker, uint256 share) internal {
        ghostLocked[worker] -= collateralPerTile;
        _ledgerCredit(worker, share);
    }
}
