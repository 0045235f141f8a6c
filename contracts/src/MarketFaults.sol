// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "./interfaces/IPayments.sol";
import {IRenderMarket} from "./interfaces/IRenderMarket.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {MarketBase} from "./base/MarketBase.sol";
import {Agreement} from "./libraries/Agreement.sol";
import {TileBitmap} from "./libraries/TileBitmap.sol";
import {TileMerkle} from "./libraries/TileMerkle.sol";

/// @title MarketFaults
/// @notice The unhappy paths of RenderMarket: reclaims of expired leases, disagreement and far
/// proofs, tie-breaker resolution, client disputes, refunds and cancels. RenderMarket creates it and reaches it by delegatecall, so
/// every function here runs on RenderMarket's storage and balance and emits from its address;
/// the errors and events are IRenderMarket's. Called directly, it sees an empty market (every
/// id is unknown) and holds nothing.
/// @dev locked-ether (Medium, triaged): `dispute` is payable for the delegatecall from
/// RenderMarket, where the bond lands in RenderMarket. Called directly, every id is unknown, so
/// `dispute` reverts and this contract never holds ETH.
// slither-disable-next-line locked-ether
contract MarketFaults is MarketBase {
    using TileBitmap for mapping(uint256 => uint256);

    /*//////////////////////////////////////////////////////////////
                                 TYPES
    //////////////////////////////////////////////////////////////*/

    /// @dev What a Merkle opening needs of one lease.
    struct Side {
        uint256 leaseId;
        bytes32 root;
        uint256 offset; // the tile's offset in the lease
        uint256 count;
    }

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param p The market's parameters (the same RenderMarket was given).
    constructor(IRenderMarket.Params memory p) MarketBase(p) {}

    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @notice See IRenderMarket.reclaim.
    function reclaim(uint256 leaseId) external {
        IRenderMarket.Lease storage l = _lease(leaseId);
        IRenderMarket.LeaseStatus status = l.status;
        bool committed = status == IRenderMarket.LeaseStatus.Committed;
        if (!committed && status != IRenderMarket.LeaseStatus.Claimed) {
            revert IRenderMarket.MarketWrongLeaseStatus(leaseId, status, IRenderMarket.LeaseStatus.Claimed);
        }
        uint256 deadline = committed ? _revealDeadline(l) : l.commitDeadline;
        if (block.timestamp <= deadline) revert IRenderMarket.MarketLeaseNotExpired(leaseId, deadline, block.timestamp);

        l.status = IRenderMarket.LeaseStatus.Reclaimed;
        uint256 jobId = l.jobId;
        uint256 count = l.count;
        address worker = l.worker;
        IRenderMarket.Job storage job = _jobs[jobId];
        _reopen(jobId, job, l, committed);
        emit IRenderMarket.LeaseReclaimed(leaseId, jobId, msg.sender, committed);

        _endWork(worker, count);
        uint256 collateral = count * _COLLATERAL_PER_TILE;
        uint256 slashed = collateral * _SLASH_BPS / _BPS;
        _slash(worker, leaseId, slashed, committed ? IStaking.SlashReason.MissedReveal : IStaking.SlashReason.MissedCommit);
        _release(worker, leaseId, collateral - slashed, 0);
        _shareSlash(jobId, job.client, slashed, msg.sender, address(0));
    }

    /// @notice See IRenderMarket.proveDisagreement.
    function proveDisagreement(
        uint256 jobId,
        uint32 tile,
        uint256 leaseA,
        uint256 leaseB,
        IRenderMarket.Opening[] calldata openings
    ) external returns (uint256 contestId) {
        IRenderMarket.Job storage job = _job(jobId);
        if (leaseA == leaseB) revert IRenderMarket.MarketSameLease(leaseA);
        uint256 far = _disagreement(jobId, job, tile, leaseA, leaseB, openings);
        contestId = _openContest(jobId, job, tile, IRenderMarket.ContestKind.Disagreement, leaseA, leaseB);
        _leases[leaseA].openContests += 1;
        _leases[leaseB].openContests += 1;
        emit IRenderMarket.DisagreementProven(contestId, jobId, tile, leaseA, leaseB, msg.sender, far);
        _emitTieBreakerOpened(contestId);
    }

    /// @notice See IRenderMarket.proveFar.
    function proveFar(uint256 contestId, uint8 side, IRenderMarket.Opening[] calldata openings) external {
        IRenderMarket.Contest storage c = _pendingContest(contestId);
        uint256 bit = side < 2 ? uint256(1) << side : 0;
        if (bit == 0 || (side == 1 && c.kind == IRenderMarket.ContestKind.Dispute) || c.farMask & bit != 0) {
            revert IRenderMarket.MarketBadSide(contestId, side);
        }
        uint256 leaseT = c.leaseT;
        IRenderMarket.Lease storage t = _leases[leaseT];
        if (leaseT == 0 || t.status != IRenderMarket.LeaseStatus.Revealed) {
            revert IRenderMarket.MarketTieBreakerNotRevealed(contestId);
        }
        uint256 end = t.revealedAt + _CHALLENGE_WINDOW;
        if (block.timestamp > end) revert IRenderMarket.MarketChallengeClosed(end, block.timestamp);

        uint256 sideId = side == 0 ? c.leaseA : c.leaseB;
        uint32 tile = c.tile;
        Side memory a = _side(sideId, _leases[sideId], tile);
        Side memory b = _side(leaseT, t, tile);
        uint256 far = _countFar(_jobs[c.jobId].leafDepth, a, b, openings);
        if (far < _FAR_COUNT) revert IRenderMarket.MarketNotFarEnough(far, _FAR_COUNT);
        // forge-lint: disable-next-line(unsafe-typecast)
        c.farMask |= uint8(bit); // 1 or 2
        if (side == 0) c.proverA = msg.sender;
        else c.proverB = msg.sender;
        emit IRenderMarket.FarProven(contestId, sideId, msg.sender, far);
    }

    /// @notice See IRenderMarket.resolveContest.
    function resolveContest(uint256 contestId) external {
        IRenderMarket.Contest storage c = _pendingContest(contestId);
        IRenderMarket.ContestOutcome outcome;
        uint256 leaseT = c.leaseT;
        if (leaseT != 0) {
            IRenderMarket.Lease storage t = _leases[leaseT];
            if (t.status != IRenderMarket.LeaseStatus.Revealed) {
                // Claimed or committed: wait for its reveal, or its deadline and a reclaim.
                revert IRenderMarket.MarketContestPending(contestId, _revealDeadline(t));
            }
            uint256 end = t.revealedAt + _CHALLENGE_WINDOW;
            if (block.timestamp <= end) revert IRenderMarket.MarketContestPending(contestId, end);
            outcome = _outcomeOf(c.farMask);
        } else {
            if (block.timestamp <= c.claimDeadline) revert IRenderMarket.MarketContestPending(contestId, c.claimDeadline);
            outcome = IRenderMarket.ContestOutcome.NoTieBreaker;
        }
        c.outcome = outcome;
        _leases[c.leaseA].openContests -= 1;
        if (c.leaseB != 0) _leases[c.leaseB].openContests -= 1;
        emit IRenderMarket.ContestResolved(contestId, c.jobId, c.tile, outcome);
        if (c.kind == IRenderMarket.ContestKind.Disagreement) _resolveDisagreement(contestId, c, outcome);
        else _resolveDispute(contestId, c, outcome);
    }

    /// @notice See IRenderMarket.dispute.
    function dispute(uint256 jobId, uint32 tile, uint256 leaseId) external payable returns (uint256 contestId) {
        IRenderMarket.Job storage job = _job(jobId);
        if (msg.sender != job.client) revert IRenderMarket.MarketNotClient(jobId, msg.sender, job.client);
        if (msg.value != _DISPUTE_BOND) revert IRenderMarket.MarketWrongBond(_DISPUTE_BOND, msg.value);
        IRenderMarket.Lease storage l = _replicaLease(leaseId, jobId, job, tile);
        uint256 end = _verifiedAt(jobId, job, l) + _ACCEPTANCE_WINDOW;
        if (block.timestamp > end) revert IRenderMarket.MarketDisputeClosed(leaseId, end, block.timestamp);

        contestId = _openContest(jobId, job, tile, IRenderMarket.ContestKind.Dispute, leaseId, 0);
        // forge-lint: disable-next-line(unsafe-typecast)
        _contests[contestId].bond = uint96(msg.value); // == the bond parameter, a uint96
        l.openContests += 1;
        emit IRenderMarket.Disputed(contestId, jobId, tile, leaseId, msg.value);
        _emitTieBreakerOpened(contestId);
    }

    /// @notice See IRenderMarket.refund.
    function refund(uint256 jobId) external returns (uint256 amount) {
        IRenderMarket.Job storage job = _job(jobId);
        // A cancelled job takes no new replica claims: what live leases free is the client's now.
        if (job.cancelledAt == 0 && block.timestamp <= job.deadline) {
            revert IRenderMarket.MarketJobNotExpired(jobId, job.deadline, block.timestamp);
        }
        amount = _takeRefundable(job);
        if (amount == 0) revert IRenderMarket.MarketNothingToRefund(jobId);
        address client = job.client;
        emit IRenderMarket.Refunded(jobId, client, amount);
        _credit(client, jobId, amount, IPayments.CreditReason.Refund);
    }

    /// @notice See IRenderMarket.cancelJob.
    function cancelJob(uint256 jobId) external returns (uint256 refunded) {
        IRenderMarket.Job storage job = _job(jobId);
        address client = job.client;
        if (msg.sender != client) revert IRenderMarket.MarketNotClient(jobId, msg.sender, client);
        if (job.cancelledAt != 0) revert IRenderMarket.MarketJobCancelled(jobId);
        uint256 deadline = job.deadline;
        if (block.timestamp > deadline) revert IRenderMarket.MarketJobExpired(jobId, deadline, block.timestamp);
        // forge-lint: disable-next-line(unsafe-typecast)
        job.cancelledAt = uint40(block.timestamp); // a timestamp
        refunded = _takeRefundable(job);
        emit IRenderMarket.JobCancelled(jobId, client, refunded);
        _credit(client, jobId, refunded, IPayments.CreditReason.Refund);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Takes the job's refundable escrow (no live lease reserves it) out of the escrow.
    function _takeRefundable(IRenderMarket.Job storage job) internal returns (uint256 amount) {
        amount = _refundable(job);
        // forge-lint: disable-next-line(unsafe-typecast)
        job.escrow -= uint128(amount); // <= escrow
    }

    /// @dev Reopens a reclaimed lease's tiles in its lane and drops its slot reservations (on a
    /// cancelled job the lane's claims stay closed: the slots' escrow becomes refundable).
    function _reopen(uint256 jobId, IRenderMarket.Job storage job, IRenderMarket.Lease storage l, bool committed) internal {
        uint256 lane = l.lane;
        uint256 first = l.firstTile;
        uint256 count = l.count;
        _taken[jobId][lane].clearRange(first, count);
        _held[jobId][l.worker].clearRange(first, count);
        if (lane < job.replication) {
            // forge-lint: disable-next-line(unsafe-typecast)
            job.reservedSlots -= uint32(count); // count <= MAX_LEASE_TILES
            // forge-lint: disable-next-line(unsafe-typecast)
            if (committed) job.committedSlots -= uint32(count);
        } else {
            _contests[_tieLanes[jobId][lane]].leaseT = 0; // the tie-breaker lane reopens
        }
    }

    function _pendingContest(uint256 contestId) internal view returns (IRenderMarket.Contest storage c) {
        c = _contest(contestId);
        if (c.outcome != IRenderMarket.ContestOutcome.Pending) revert IRenderMarket.MarketContestResolved(contestId);
    }

    function _outcomeOf(uint8 farMask) internal pure returns (IRenderMarket.ContestOutcome) {
        if (farMask == 0) return IRenderMarket.ContestOutcome.NoneFar;
        if (farMask == 1) return IRenderMarket.ContestOutcome.AFar;
        if (farMask == 2) return IRenderMarket.ContestOutcome.BFar;
        return IRenderMarket.ContestOutcome.BothFar;
    }

    /// @dev Checks both leases and the challenge window, and that the openings prove them far apart.
    function _disagreement(
        uint256 jobId,
        IRenderMarket.Job storage job,
        uint256 tile,
        uint256 leaseA,
        uint256 leaseB,
        IRenderMarket.Opening[] calldata openings
    ) internal view returns (uint256 far) {
        IRenderMarket.Lease storage a = _replicaLease(leaseA, jobId, job, tile);
        IRenderMarket.Lease storage b = _replicaLease(leaseB, jobId, job, tile);
        {
            uint256 end = (a.revealedAt > b.revealedAt ? a.revealedAt : b.revealedAt) + _CHALLENGE_WINDOW;
            if (block.timestamp > end) revert IRenderMarket.MarketChallengeClosed(end, block.timestamp);
        }
        Side memory sideA = _side(leaseA, a, tile);
        Side memory sideB = _side(leaseB, b, tile);
        far = _countFar(job.leafDepth, sideA, sideB, openings);
        if (far < _FAR_COUNT) revert IRenderMarket.MarketNotFarEnough(far, _FAR_COUNT);
    }

    /// @dev Marks the tile contested (once per tile, ever), creates the contest and its tie-breaker lane.
    function _openContest(
        uint256 jobId,
        IRenderMarket.Job storage job,
        uint32 tile,
        IRenderMarket.ContestKind kind,
        uint256 leaseA,
        uint256 leaseB
    ) internal returns (uint256 contestId) {
        mapping(uint256 => uint256) storage contested = _contested[jobId];
        if (contested.isSet(tile)) revert IRenderMarket.MarketTileAlreadyContested(jobId, tile);
        contested.set(tile);
        // replication <= 8 and each tile is contested at most once: contestCount < tileCount
        // <= 2^20 (fits its uint24) and lanes < 2^21.
        uint32 lane = uint32(job.replication) + job.contestCount;
        job.contestCount += 1;
        contestId = ++_contestCount;
        _tieLanes[jobId][lane] = contestId;
        IRenderMarket.Contest storage c = _contests[contestId];
        // forge-lint: disable-start(unsafe-typecast)
        c.jobId = uint64(jobId); // <= _jobCount, a uint64
        c.tile = tile;
        c.lane = lane;
        c.claimDeadline = uint40(block.timestamp + _TIE_BREAK_WINDOW); // a timestamp
        c.kind = kind;
        c.leaseA = uint64(leaseA); // lease ids <= _leaseCount, a uint64
        c.leaseB = uint64(leaseB);
        // forge-lint: disable-end(unsafe-typecast)
        c.challenger = msg.sender;
    }

    /// @dev Disagreement outcomes. One side far: it forfeits the tile and is slashed, the
    /// tie-breaker is paid with the forfeited reward, the slash goes to the provers and the
    /// client. Both far, or no tie-breaker: no replica can be trusted on this tile, so both sides
    /// forfeit it unslashed and its escrow is refunded. None far: both sides keep the tile.
    function _resolveDisagreement(
        uint256 contestId,
        IRenderMarket.Contest storage c,
        IRenderMarket.ContestOutcome outcome
    ) internal {
        uint256 jobId = c.jobId;
        IRenderMarket.Job storage job = _jobs[jobId];
        uint32 tile = c.tile;
        if (outcome == IRenderMarket.ContestOutcome.AFar || outcome == IRenderMarket.ContestOutcome.BFar) {
            bool aFar = outcome == IRenderMarket.ContestOutcome.AFar;
            uint256 slashed =
                _forfeit(job, aFar ? c.leaseA : c.leaseB, tile, true, IStaking.SlashReason.FarFromTieBreaker);
            _shareSlash(jobId, job.client, slashed, c.challenger, aFar ? c.proverA : c.proverB);
            _endTieBreaker(contestId, job, c.leaseT, true);
        } else if (outcome == IRenderMarket.ContestOutcome.NoneFar) {
            _endTieBreaker(contestId, job, c.leaseT, false);
        } else {
            _forfeit(job, c.leaseA, tile, false, IStaking.SlashReason.FarFromTieBreaker);
            _forfeit(job, c.leaseB, tile, false, IStaking.SlashReason.FarFromTieBreaker);
            uint256 amount = 2 * uint256(job.rewardPerTileReplica);
            // forge-lint: disable-next-line(unsafe-typecast)
            job.escrow -= uint128(amount); // two reserved, funded slots
            _credit(job.client, jobId, amount, IPayments.CreditReason.Refund);
            if (c.leaseT != 0) _endTieBreaker(contestId, job, c.leaseT, false);
        }
    }

    /// @dev Dispute outcomes. Worker far: it forfeits the tile and is slashed, the tie-breaker is
    /// paid with the forfeited reward, the bond and the slash (less the prover's bounty) go to
    /// the client. Not far: the bond goes half to the worker, half to the tie-breaker. No
    /// tie-breaker: the bond returns to the client, the worker keeps the tile.
    function _resolveDispute(uint256 contestId, IRenderMarket.Contest storage c, IRenderMarket.ContestOutcome outcome)
        internal
    {
        uint256 jobId = c.jobId;
        IRenderMarket.Job storage job = _jobs[jobId];
        address client = job.client;
        uint256 bond = c.bond;
        if (outcome == IRenderMarket.ContestOutcome.AFar) {
            uint256 slashed = _forfeit(job, c.leaseA, c.tile, true, IStaking.SlashReason.LostDispute);
            _shareSlash(jobId, client, slashed, c.proverA, address(0));
            _endTieBreaker(contestId, job, c.leaseT, true);
            _credit(client, jobId, bond, IPayments.CreditReason.BondReturned);
        } else if (outcome == IRenderMarket.ContestOutcome.NoneFar) {
            uint256 half = bond / 2;
            _credit(_leases[c.leaseA].worker, jobId, half, IPayments.CreditReason.BondAwarded);
            _credit(_leases[c.leaseT].worker, jobId, bond - half, IPayments.CreditReason.BondAwarded);
            _endTieBreaker(contestId, job, c.leaseT, false);
        } else {
            _credit(client, jobId, bond, IPayments.CreditReason.BondReturned);
        }
    }

    /// @dev A contested tile leaves lease `leaseId`: it is not paid at settlement and its
    /// collateral is released now, less the slash when `slash`. Returns the slashed wei.
    function _forfeit(
        IRenderMarket.Job storage job,
        uint256 leaseId,
        uint256 tile,
        bool slash,
        IStaking.SlashReason reason
    ) internal returns (uint256 slashed) {
        IRenderMarket.Lease storage l = _leases[leaseId];
        l.forfeited |= uint256(1) << (tile - l.firstTile);
        l.forfeitedCount += 1;
        job.reservedSlots -= 1;
        address worker = l.worker;
        if (slash) {
            slashed = _COLLATERAL_PER_TILE * _SLASH_BPS / _BPS;
            _slash(worker, leaseId, slashed, reason);
        }
        _release(worker, leaseId, _COLLATERAL_PER_TILE - slashed, 0);
    }

    /// @dev Ends a revealed tie-breaker lease: collateral back, and the tile's reward (the escrow
    /// a forfeiting side left) when `paid`.
    function _endTieBreaker(uint256 contestId, IRenderMarket.Job storage job, uint256 leaseT, bool paid) internal {
        IRenderMarket.Lease storage t = _leases[leaseT];
        t.status = IRenderMarket.LeaseStatus.Settled;
        address worker = t.worker;
        uint256 amount = paid ? job.rewardPerTileReplica : 0;
        // forge-lint: disable-next-line(unsafe-typecast)
        if (paid) job.escrow -= uint128(amount); // the forfeited, funded slot
        emit IRenderMarket.TieBreakerSettled(leaseT, contestId, worker, amount);
        _release(worker, leaseT, _COLLATERAL_PER_TILE, paid ? 1 : 0);
        _credit(worker, t.jobId, amount, IPayments.CreditReason.Reward);
    }

    function _side(uint256 leaseId, IRenderMarket.Lease storage l, uint256 tile) internal view returns (Side memory) {
        return Side(leaseId, l.digest, tile - l.firstTile, l.count);
    }

    /// @dev Verifies every opening against both roots and counts far coefficient pairs.
    function _countFar(uint256 leafDepth, Side memory a, Side memory b, IRenderMarket.Opening[] calldata openings)
        internal
        view
        returns (uint256 far)
    {
        uint256 n = openings.length;
        if (n == 0 || n > MAX_OPENINGS) revert IRenderMarket.MarketBadOpeningCount(n, MAX_OPENINGS);
        uint256 leaves = uint256(1) << leafDepth;
        uint256 previous = 0;
        for (uint256 i; i < n; ++i) {
            IRenderMarket.Opening calldata o = openings[i];
            uint256 leaf = o.leaf;
            if ((i != 0 && leaf <= previous) || leaf >= leaves) {
                revert IRenderMarket.MarketBadLeafIndex(leaf, previous, leaves);
            }
            previous = leaf;
            _verifyOpening(a, o.leafA, leaf, leafDepth, o.proofA);
            _verifyOpening(b, o.leafB, leaf, leafDepth, o.proofB);
            far += Agreement.farCount(o.leafA, o.leafB, _TOLERANCE);
        }
    }

    function _verifyOpening(Side memory s, bytes32 leafData, uint256 leaf, uint256 leafDepth, bytes32[] calldata proof)
        internal
        pure
    {
        if (!TileMerkle.verify(s.root, leafData, leaf, leafDepth, s.offset, s.count, proof)) {
            revert IRenderMarket.MarketBadProof(s.leaseId, leaf);
        }
    }

    function _emitTieBreakerOpened(uint256 contestId) internal {
        IRenderMarket.Contest storage c = _contests[contestId];
        emit IRenderMarket.TieBreakerOpened(contestId, c.jobId, c.tile, c.lane, c.claimDeadline);
    }
}
