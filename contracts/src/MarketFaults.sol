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
/// proofs, tie-breaker resolution, client disputes, refunds and cancels. It is deployed first, with
/// the market's parameters, and RenderMarket (given its address, which it checks by `paramsHash`)
/// reaches it by delegatecall, so
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

    /// @dev Stake ranges a draw skips (the parties and seated jurors), ascending by start: a pick
    /// lands on the remaining stake only, so an excluded party cannot shrink the jury by staking
    /// heavily (each of its picks would otherwise be a wasted try).
    struct Excluded {
        uint256[3 + MAX_JURY] starts;
        uint256[3 + MAX_JURY] weights;
        uint256 count;
        uint256 total;
    }

    /// @dev What a Merkle opening needs of one lease.
    struct Side {
        uint256 leaseId;
        bytes32 root;
        uint256 offset; // the tile's offset in the lease
        uint256 count;
    }

    /*//////////////////////////////////////////////////////////////
                               IMMUTABLES
    //////////////////////////////////////////////////////////////*/

    /// @dev keccak256(abi.encode(p)) of the parameters it was built with: RenderMarket's
    /// constructor compares it with its own, so the two halves cannot run on different windows.
    bytes32 internal immutable _PARAMS_HASH;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param p The market's parameters (RenderMarket is then deployed with the same ones and
    /// checks them: see `paramsHash`).
    constructor(IRenderMarket.Params memory p) MarketBase(p) {
        _PARAMS_HASH = keccak256(abi.encode(p));
    }

    /// @notice keccak256(abi.encode(params)) of the parameters this module was built with.
    function paramsHash() external view returns (bytes32) {
        return _PARAMS_HASH;
    }

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
        uint256 jobId = l.jobId;
        IRenderMarket.Job storage job = _jobs[jobId];
        uint256 count = l.count;
        address worker = l.worker;
        bool juror = l.lane >= job.replication;
        {
            uint256 deadline = committed ? _revealDeadlineOf(job, l) : l.commitDeadline;
            if (block.timestamp <= deadline) revert IRenderMarket.MarketLeaseNotExpired(leaseId, deadline, block.timestamp);
        }

        l.status = IRenderMarket.LeaseStatus.Reclaimed;
        if (juror) _jurorLeft(jobId, job, l, committed);
        else _reopen(jobId, job, l, committed);
        emit IRenderMarket.LeaseReclaimed(leaseId, jobId, msg.sender, committed);

        _endWork(worker, count);
        uint256 collateral = count * _COLLATERAL_PER_TILE;
        uint256 slashed = collateral * _SLASH_BPS / _BPS;
        _slash(worker, leaseId, slashed, committed ? IStaking.SlashReason.MissedReveal : IStaking.SlashReason.MissedCommit);
        _release(worker, leaseId, collateral - slashed, 0);
        // A worker reclaiming its own lease (to pocket the bounty on its own slash) gets nothing.
        address client = job.client;
        _shareSlash(jobId, client, slashed, msg.sender == worker ? client : msg.sender);
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

    /// @notice See IRenderMarket.drawJury.
    function drawJury(uint256 contestId) external {
        IRenderMarket.Contest storage c = _pendingContest(contestId);
        uint256 jobId = c.jobId;
        IRenderMarket.Job storage job = _jobs[jobId];
        uint256 drawBlock = c.drawBlock;
        if (drawBlock == 0 || block.number <= drawBlock) {
            revert IRenderMarket.MarketDrawNotReady(contestId, drawBlock, block.number);
        }
        uint256 drawEnd = c.claimDeadline - job.leaseLength;
        if (block.timestamp > drawEnd) revert IRenderMarket.MarketDrawClosed(contestId, drawEnd, block.timestamp);
        // The seed is the hash of a block sealed after the contest opened (or a juror left): no
        // party knew it when it acted, and calling again cannot re-roll it. Reverting a draw one
        // dislikes changes nothing either: the same block gives the same jury to any caller.
        bytes32 seed = blockhash(drawBlock);
        if (seed == bytes32(0)) {
            _armDraw(contestId, c); // older than 256 blocks: a fresh block decides
            return;
        }
        c.drawBlock = 0;
        c.rounds += 1;
        uint256 seated = _fillSeats(contestId, c, job, seed);
        // Nobody eligible yet (too few staked workers): keep trying while the window is open.
        if (seated == 0 && c.seated == 0) {
            c.rounds -= 1;
            _armDraw(contestId, c);
        }
    }

    /// @notice See IRenderMarket.proveFar.
    function proveFar(uint256 contestId, uint8 side, IRenderMarket.Opening[] calldata openings) external {
        IRenderMarket.Contest storage c = _pendingContest(contestId);
        uint256 bit = side < 2 ? uint256(1) << side : 0;
        if (bit == 0 || (side == 1 && c.kind == IRenderMarket.ContestKind.Dispute) || c.farMask & bit != 0) {
            revert IRenderMarket.MarketBadSide(contestId, side);
        }
        uint256 sideId = side == 0 ? c.leaseA : c.leaseB;
        uint256 far = _farFromVerdict(contestId, c, sideId, _leases[sideId], openings);
        // forge-lint: disable-next-line(unsafe-typecast)
        c.farMask |= uint8(bit); // 1 or 2
        if (side == 0) c.proverA = msg.sender;
        else c.proverB = msg.sender;
        emit IRenderMarket.FarProven(contestId, sideId, msg.sender, far);
    }

    /// @notice See IRenderMarket.proveReplicaFar.
    function proveReplicaFar(uint256 contestId, uint256 leaseId, IRenderMarket.Opening[] calldata openings) external {
        IRenderMarket.Contest storage c = _pendingContest(contestId);
        if (leaseId == c.leaseA || leaseId == c.leaseB) revert IRenderMarket.MarketContestSide(contestId, leaseId);
        uint256 jobId = c.jobId;
        IRenderMarket.Job storage job = _jobs[jobId];
        uint32 tile = c.tile;
        IRenderMarket.Lease storage l = _replicaLease(leaseId, jobId, job, tile);
        uint256 far = _farFromVerdict(contestId, c, leaseId, l, openings);
        emit IRenderMarket.FarProven(contestId, leaseId, msg.sender, far);
        (uint256 slashed, uint256 freed) = _forfeit(job, leaseId, tile, true, IStaking.SlashReason.FarFromTieBreaker);
        // forge-lint: disable-next-line(unsafe-typecast)
        job.escrow -= uint128(freed); // the forfeited, funded slot
        address client = job.client;
        _credit(client, jobId, freed, IPayments.CreditReason.Refund);
        _credit(client, jobId, slashed, IPayments.CreditReason.Compensation);
    }

    /// @notice See IRenderMarket.resolveContest.
    function resolveContest(uint256 contestId) external {
        IRenderMarket.Contest storage c = _pendingContest(contestId);
        IRenderMarket.Job storage job = _jobs[c.jobId];
        (uint256 leaseT, uint256 fixedAt) = _verdict(contestId, c, job.leaseLength);
        if (fixedAt == 0) revert IRenderMarket.MarketContestPending(contestId, 0);
        // With a verdict, its challenge window must pass (sides and replicas proven far in it).
        if (leaseT != 0 && block.timestamp <= fixedAt + _CHALLENGE_WINDOW) {
            revert IRenderMarket.MarketContestPending(contestId, fixedAt + _CHALLENGE_WINDOW);
        }
        IRenderMarket.ContestOutcome outcome =
            leaseT == 0 ? IRenderMarket.ContestOutcome.NoTieBreaker : _outcomeOf(c.farMask);
        c.outcome = outcome;
        // forge-lint: disable-next-line(unsafe-typecast)
        c.leaseT = uint64(leaseT); // a lease id
        // forge-lint: disable-next-line(unsafe-typecast)
        c.verdictAt = uint40(fixedAt); // a timestamp
        _leases[c.leaseA].openContests -= 1;
        if (c.leaseB != 0) _leases[c.leaseB].openContests -= 1;
        emit IRenderMarket.ContestResolved(contestId, c.jobId, c.tile, outcome);
        (uint256 pool, uint256 escrowPart) = c.kind == IRenderMarket.ContestKind.Disagreement
            ? _resolveDisagreement(c, job, outcome)
            : _resolveDispute(c, job, outcome);
        // forge-lint: disable-next-line(unsafe-typecast)
        if (escrowPart != 0) job.escrow -= uint128(escrowPart); // rewards of slots forfeited just now
        _payJury(contestId, c, job, leaseT, pool);
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

    /// @notice See IRenderMarket.challengeAvailability.
    function challengeAvailability(uint256 leaseId, uint32 tile, uint32[] calldata leaves)
        external
        payable
        returns (uint256 challengeId)
    {
        IRenderMarket.Lease storage l = _lease(leaseId);
        uint256 jobId = l.jobId;
        IRenderMarket.Job storage job = _jobs[jobId];
        _replicaLease(leaseId, jobId, job, tile);
        if (msg.value != _DISPUTE_BOND) revert IRenderMarket.MarketWrongBond(_DISPUTE_BOND, msg.value);
        _checkLeafIndices(job.leafDepth, leaves);
        {
            uint256 open = _openChallenges[leaseId];
            if (open != 0) revert IRenderMarket.MarketAvailabilityOpen(leaseId, open);
        }
        uint256 end = _verifiedAt(jobId, job, l) + _ACCEPTANCE_WINDOW;
        if (block.timestamp > end) revert IRenderMarket.MarketDisputeClosed(leaseId, end, block.timestamp);

        challengeId = ++_challengeCount;
        _openChallenges[leaseId] = challengeId;
        IRenderMarket.AvailabilityChallenge storage a = _challenges[challengeId];
        // forge-lint: disable-start(unsafe-typecast)
        a.leaseId = uint64(leaseId); // <= _leaseCount
        a.tile = tile;
        a.deadline = uint40(block.timestamp + _REVEAL_WINDOW); // a timestamp
        a.status = IRenderMarket.AvailabilityStatus.Open;
        a.challenger = msg.sender;
        a.bond = uint96(msg.value); // == the bond parameter, a uint96
        // forge-lint: disable-end(unsafe-typecast)
        a.leavesHash = keccak256(abi.encode(leaves));
        emit IRenderMarket.AvailabilityChallenged(
            challengeId, leaseId, jobId, tile, leaves, msg.sender, a.deadline
        );
    }

    /// @notice See IRenderMarket.answerAvailability.
    function answerAvailability(
        uint256 challengeId,
        uint32[] calldata leaves,
        bytes32[] calldata leafData,
        bytes32[][] calldata proofs
    ) external {
        uint256 gasStart = gasleft();
        IRenderMarket.AvailabilityChallenge storage a = _openChallenge(challengeId);
        if (block.timestamp > a.deadline) {
            revert IRenderMarket.MarketAnswerWindow(challengeId, a.deadline, block.timestamp);
        }
        uint256 n = leaves.length;
        if (keccak256(abi.encode(leaves)) != a.leavesHash || leafData.length != n || proofs.length != n) {
            revert IRenderMarket.MarketWrongLeaves(challengeId);
        }
        uint256 leaseId = a.leaseId;
        _verifyAnswer(leaseId, a.tile, leaves, leafData, proofs);
        a.status = IRenderMarket.AvailabilityStatus.Answered;
        delete _openChallenges[leaseId];
        // The answer's gas, paid by the challenger: execution so far, the intrinsic cost (21,000 +
        // 16 per calldata byte at most) and the two credits below (about 30,000 with events).
        uint256 cost = (gasStart - gasleft() + 21_000 + 16 * msg.data.length + 30_000) * tx.gasprice;
        uint256 bond = a.bond;
        uint256 compensation = cost < bond ? cost : bond;
        emit IRenderMarket.AvailabilityAnswered(challengeId, leaseId, msg.sender, compensation);
        uint256 jobId = _leases[leaseId].jobId;
        _credit(msg.sender, jobId, compensation, IPayments.CreditReason.BondAwarded);
        _credit(a.challenger, jobId, bond - compensation, IPayments.CreditReason.BondReturned);
    }

    /// @notice See IRenderMarket.resolveAvailability.
    function resolveAvailability(uint256 challengeId) external {
        IRenderMarket.AvailabilityChallenge storage a = _openChallenge(challengeId);
        if (block.timestamp <= a.deadline) {
            revert IRenderMarket.MarketAnswerWindow(challengeId, a.deadline, block.timestamp);
        }
        a.status = IRenderMarket.AvailabilityStatus.Failed;
        uint256 leaseId = a.leaseId;
        delete _openChallenges[leaseId];
        IRenderMarket.Lease storage l = _leases[leaseId];
        uint256 jobId = l.jobId;
        emit IRenderMarket.AvailabilityFailed(challengeId, leaseId, jobId);
        uint256 collateral = _forfeitLease(jobId, _jobs[jobId], l) * _COLLATERAL_PER_TILE;
        address worker = l.worker;
        uint256 lockedPart = collateral * _SLASH_BPS / _BPS;
        uint256 slashed = _slashFraud(worker, leaseId, lockedPart, _fraudExtra(), IStaking.SlashReason.Unavailable);
        _release(worker, leaseId, collateral - lockedPart, 0);
        address challenger = a.challenger;
        _credit(challenger, jobId, a.bond, IPayments.CreditReason.BondReturned);
        _shareSlash(jobId, _jobs[jobId].client, slashed, challenger);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice See IRenderMarket.verdict (reached through RenderMarket.viewInFaults).
    function verdict(uint256 contestId) external view returns (uint256 leaseT, uint256 fixedAt) {
        IRenderMarket.Contest storage c = _contest(contestId);
        if (c.outcome != IRenderMarket.ContestOutcome.Pending) return (c.leaseT, c.verdictAt);
        return _verdict(contestId, c, _jobs[c.jobId].leaseLength);
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

    /// @dev Reopens a reclaimed replica lease's tiles in its lane and drops its slot reservations
    /// (on a cancelled job the lane's claims stay closed: the slots' escrow becomes refundable).
    function _reopen(uint256 jobId, IRenderMarket.Job storage job, IRenderMarket.Lease storage l, bool committed) internal {
        uint256 lane = l.lane;
        uint256 first = l.firstTile;
        uint256 count = l.count;
        _taken[jobId][lane].clearRange(first, count);
        _held[jobId][l.worker].clearRange(first, count);
        // forge-lint: disable-next-line(unsafe-typecast)
        job.reservedSlots -= uint32(count); // count <= MAX_LEASE_TILES
        // forge-lint: disable-next-line(unsafe-typecast)
        if (committed) job.committedSlots -= uint32(count);
    }

    /// @dev A revealed lease whose data was proven unavailable: Forfeited, none of its tiles paid,
    /// its tiles reopened in its lane (claimable where no other replica revealed them: the copy
    /// gate), its reveal no longer counting for its partners' verification. Returns the tiles
    /// whose collateral was still locked.
    function _forfeitLease(uint256 jobId, IRenderMarket.Job storage job, IRenderMarket.Lease storage l)
        internal
        returns (uint256 unpaid)
    {
        uint256 first = l.firstTile;
        uint256 count = l.count;
        unpaid = count - l.forfeitedCount;
        l.status = IRenderMarket.LeaseStatus.Forfeited;
        // forge-lint: disable-next-line(unsafe-typecast)
        l.forfeitedCount = uint16(count); // <= MAX_LEASE_TILES
        l.forfeited = count == 256 ? type(uint256).max : (uint256(1) << count) - 1;
        uint256 lane = l.lane;
        _taken[jobId][lane].clearRange(first, count);
        if (job.replication > 1) _revealed[jobId][lane].clearRange(first, count);
        // forge-lint: disable-start(unsafe-typecast)
        job.reservedSlots -= uint32(unpaid); // <= MAX_LEASE_TILES
        job.committedSlots -= uint32(count);
        // forge-lint: disable-end(unsafe-typecast)
    }

    /// @dev A juror lease was reclaimed. One that missed its commit is replaced by a new draw while
    /// no juror has revealed (a replacement drawn after a reveal could copy it) and the draw
    /// window and rounds last.
    function _jurorLeft(uint256 jobId, IRenderMarket.Job storage job, IRenderMarket.Lease storage l, bool committed)
        internal
    {
        uint256 contestId = _tieLanes[jobId][l.lane];
        IRenderMarket.Contest storage c = _contests[contestId];
        if (
            !committed && c.outcome == IRenderMarket.ContestOutcome.Pending && c.revealedSeats == 0
                && c.drawBlock == 0 && c.rounds < MAX_DRAW_ROUNDS
                && block.timestamp + job.leaseLength <= c.claimDeadline
        ) _armDraw(contestId, c);
    }

    function _armDraw(uint256 contestId, IRenderMarket.Contest storage c) internal {
        // forge-lint: disable-next-line(unsafe-typecast)
        c.drawBlock = uint64(block.number); // a block number
        emit IRenderMarket.JuryDrawArmed(contestId, c.jobId, c.drawBlock);
    }

    /// @dev Fills the empty seats (never drawn, or a juror reclaimed before committing) with
    /// stake-weighted draws from `seed`. Returns how many seats it filled.
    function _fillSeats(uint256 contestId, IRenderMarket.Contest storage c, IRenderMarket.Job storage job, bytes32 seed)
        internal
        returns (uint256 filled)
    {
        // slither-disable-next-line uninitialized-local (zeroed memory: nothing skipped yet)
        Excluded memory ex;
        _exclude(ex, job.client);
        _exclude(ex, _leases[c.leaseA].worker);
        if (c.leaseB != 0) _exclude(ex, _leases[c.leaseB].worker);
        uint256 size = _JURY_SIZE;
        for (uint256 seat; seat < size; ++seat) {
            uint256 current = _jurors[contestId][seat];
            if (current != 0) _exclude(ex, _leases[current].worker); // a replaced juror is not drawn again
        }
        uint256 total = _poolTotal();
        for (uint256 seat; seat < size; ++seat) {
            uint256 current = _jurors[contestId][seat];
            if (current != 0) {
                IRenderMarket.Lease storage j = _leases[current];
                // Only a juror that never committed is replaced (one that did counts as committed).
                if (j.status != IRenderMarket.LeaseStatus.Reclaimed || j.digest != bytes32(0)) continue;
            }
            for (uint256 attempt; attempt < MAX_DRAW_TRIES && total > ex.total; ++attempt) {
                address candidate = _pick(ex, total, uint256(keccak256(abi.encode(seed, contestId, seat, attempt))));
                if (_eligible(contestId, c, job, candidate)) {
                    _seatJuror(contestId, c, job, seat, candidate);
                    _exclude(ex, candidate);
                    ++filled;
                    break;
                }
            }
        }
    }

    /// @dev Adds `who`'s stake range to the skipped ranges (once; nothing for a worker outside
    /// the pool or without stake).
    function _exclude(Excluded memory ex, address who) internal view {
        (uint256 start, uint256 weight) = _poolRange(who);
        if (weight == 0) return;
        uint256 n = ex.count;
        uint256 slot = n;
        for (uint256 k; k < n; ++k) {
            if (ex.starts[k] == start) return; // already skipped
            if (ex.starts[k] > start) {
                slot = k;
                break;
            }
        }
        for (uint256 k = n; k > slot; --k) {
            (ex.starts[k], ex.weights[k]) = (ex.starts[k - 1], ex.weights[k - 1]); // <= 3 + MAX_JURY
        }
        (ex.starts[slot], ex.weights[slot]) = (start, weight);
        ex.count = n + 1;
        ex.total += weight;
    }

    /// @dev The pool member at `rand` mod the stake not skipped, counted along the pool's line
    /// with the skipped ranges stepped over.
    function _pick(Excluded memory ex, uint256 total, uint256 rand) internal view returns (address) {
        // weak-prng (High, triaged): `rand` comes from the hash of a block sealed after the contest
        // opened, the same for every caller (README, "The jury is drawn"); its proposer could
        // grind it, which the README states as a limit.
        // slither-disable-next-line weak-prng
        uint256 r = rand % (total - ex.total);
        uint256 n = ex.count;
        for (uint256 k; k < n && r >= ex.starts[k]; ++k) {
            r += ex.weights[k];
        }
        return _poolMemberAt(r);
    }

    /// @dev A juror must be none of the parties (the client, the sides' workers), not seated
    /// before in this contest, hold no replica of the tile, afford the tile's collateral, and
    /// pass the job's reputation gate: a job that refuses a node's claim refuses its vote too.
    function _eligible(
        uint256 contestId,
        IRenderMarket.Contest storage c,
        IRenderMarket.Job storage job,
        address candidate
    ) internal view returns (bool) {
        if (candidate == job.client || candidate == _leases[c.leaseA].worker) return false;
        if (c.leaseB != 0 && candidate == _leases[c.leaseB].worker) return false;
        uint256 n = c.seated;
        for (uint256 seat; seat < n; ++seat) {
            if (_leases[_jurors[contestId][seat]].worker == candidate) return false; // <= MAX_JURY
        }
        if (_held[c.jobId][candidate].isSet(c.tile)) return false;
        IStaking.WorkerInfo storage w = _workers[candidate];
        return w.stake >= _MIN_STAKE && w.stake - w.locked >= _COLLATERAL_PER_TILE && _admits(job, candidate);
    }

    /// @dev Gives `worker` seat `seat`: a one-tile lease in the jury lane, its collateral locked
    /// (no capacity check: a drawn duty, one tile).
    function _seatJuror(
        uint256 contestId,
        IRenderMarket.Contest storage c,
        IRenderMarket.Job storage job,
        uint256 seat,
        address worker
    ) internal {
        uint256 leaseId = ++_leaseCount;
        IStaking.WorkerInfo storage w = _workers[worker];
        // forge-lint: disable-start(unsafe-typecast)
        w.locked += uint96(_COLLATERAL_PER_TILE); // <= stake, checked by _eligible
        w.activeTiles += 1;
        emit IStaking.CollateralLocked(worker, leaseId, _COLLATERAL_PER_TILE);
        uint256 commitDeadline = block.timestamp + job.leaseLength;
        IRenderMarket.Lease storage l = _leases[leaseId];
        l.worker = worker;
        l.commitDeadline = uint40(commitDeadline); // a timestamp
        l.status = IRenderMarket.LeaseStatus.Claimed;
        l.jobId = c.jobId;
        l.lane = c.lane;
        l.firstTile = c.tile;
        l.count = 1;
        _jurors[contestId][seat] = leaseId;
        if (seat >= c.seated) c.seated = uint8(seat + 1); // < MAX_JURY
        if (commitDeadline > c.jurorDeadline) c.jurorDeadline = uint40(commitDeadline);
        // forge-lint: disable-end(unsafe-typecast)
        _emitJurorDrawn(contestId, c, seat, leaseId, worker);
    }

    /// @dev TilesClaimed (as for any lease: off-chain indexers follow it) and JurorDrawn.
    function _emitJurorDrawn(
        uint256 contestId,
        IRenderMarket.Contest storage c,
        uint256 seat,
        uint256 leaseId,
        address worker
    ) internal {
        IRenderMarket.Lease storage l = _leases[leaseId];
        // forge-lint: disable-start(unsafe-typecast)
        emit IRenderMarket.TilesClaimed(
            leaseId, c.jobId, worker, c.lane, c.tile, 1, l.commitDeadline, uint40(c.claimDeadline + _REVEAL_WINDOW)
        );
        emit IRenderMarket.JurorDrawn(contestId, c.jobId, uint8(seat), leaseId, worker); // seat < MAX_JURY
        // forge-lint: disable-end(unsafe-typecast)
    }

    function _pendingContest(uint256 contestId) internal view returns (IRenderMarket.Contest storage c) {
        c = _contest(contestId);
        if (c.outcome != IRenderMarket.ContestOutcome.Pending) revert IRenderMarket.MarketContestResolved(contestId);
    }

    function _openChallenge(uint256 challengeId) internal view returns (IRenderMarket.AvailabilityChallenge storage a) {
        a = _challenges[challengeId];
        if (a.status == IRenderMarket.AvailabilityStatus.None) revert IRenderMarket.MarketUnknownChallenge(challengeId);
        if (a.status != IRenderMarket.AvailabilityStatus.Open) revert IRenderMarket.MarketChallengeNotOpen(challengeId);
    }

    function _outcomeOf(uint8 farMask) internal pure returns (IRenderMarket.ContestOutcome) {
        if (farMask == 0) return IRenderMarket.ContestOutcome.NoneFar;
        if (farMask == 1) return IRenderMarket.ContestOutcome.AFar;
        if (farMask == 2) return IRenderMarket.ContestOutcome.BFar;
        return IRenderMarket.ContestOutcome.BothFar;
    }

    /// @dev The extra stake a proven fraud costs beyond the tile's collateral: slashBps of the
    /// minimum stake (from free stake, then unbonding stake).
    function _fraudExtra() internal view returns (uint256) {
        return _MIN_STAKE * _SLASH_BPS / _BPS;
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

    /// @dev Checks that the verdict is final and its window open, and that the openings prove
    /// lease `leaseId` far from it on the contest's tile.
    function _farFromVerdict(
        uint256 contestId,
        IRenderMarket.Contest storage c,
        uint256 leaseId,
        IRenderMarket.Lease storage l,
        IRenderMarket.Opening[] calldata openings
    ) internal view returns (uint256 far) {
        IRenderMarket.Job storage job = _jobs[c.jobId];
        (uint256 leaseT, uint256 fixedAt) = _verdict(contestId, c, job.leaseLength);
        if (leaseT == 0 || fixedAt == 0) revert IRenderMarket.MarketNoVerdict(contestId);
        uint256 end = fixedAt + _CHALLENGE_WINDOW;
        if (block.timestamp > end) revert IRenderMarket.MarketChallengeClosed(end, block.timestamp);
        uint32 tile = c.tile;
        far = _countFar(job.leafDepth, _side(leaseId, l, tile), _side(leaseT, _leases[leaseT], tile), openings);
        if (far < _FAR_COUNT) revert IRenderMarket.MarketNotFarEnough(far, _FAR_COUNT);
    }

    /// @dev Marks the tile contested (once per tile, ever), creates the contest and its jury lane,
    /// and arms the first draw on this block's hash.
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
        _tileContest[jobId][tile] = contestId;
        IRenderMarket.Contest storage c = _contests[contestId];
        // forge-lint: disable-start(unsafe-typecast)
        c.jobId = uint64(jobId); // <= _jobCount, a uint64
        c.tile = tile;
        c.lane = lane;
        // Draws run for tieBreakWindow; the last juror drawn then has a whole lease to commit.
        c.claimDeadline = uint40(block.timestamp + _TIE_BREAK_WINDOW + job.leaseLength); // a timestamp
        c.kind = kind;
        c.leaseA = uint64(leaseA); // lease ids <= _leaseCount, a uint64
        c.leaseB = uint64(leaseB);
        // forge-lint: disable-end(unsafe-typecast)
        c.challenger = msg.sender;
        _armDraw(contestId, c);
    }

    /// @dev Disagreement outcomes; returns the wei owed to the jurors on the verdict. One side far:
    /// it forfeits the tile and is slashed; the bounty goes to the other side's worker, the rest
    /// to the client; the forfeited reward to the jury. Both far: both forfeit and are slashed,
    /// bounties and rewards to the jury. None far: both keep the tile. No verdict: both forfeit
    /// the tile unslashed and its two rewards are refunded.
    function _resolveDisagreement(
        IRenderMarket.Contest storage c,
        IRenderMarket.Job storage job,
        IRenderMarket.ContestOutcome outcome
    ) internal returns (uint256 pool, uint256 escrowPart) {
        if (outcome == IRenderMarket.ContestOutcome.AFar || outcome == IRenderMarket.ContestOutcome.BFar) {
            bool aFar = outcome == IRenderMarket.ContestOutcome.AFar;
            (uint256 slashed, uint256 freed) =
                _forfeit(job, aFar ? c.leaseA : c.leaseB, c.tile, true, IStaking.SlashReason.FarFromTieBreaker);
            // The bounty rewards the other side for the check, unless its own data was unavailable.
            IRenderMarket.Lease storage other = _leases[aFar ? c.leaseB : c.leaseA];
            address client = job.client;
            _shareSlash(
                c.jobId, client, slashed, other.status == IRenderMarket.LeaseStatus.Forfeited ? client : other.worker
            );
            (pool, escrowPart) = (freed, freed);
        } else if (outcome == IRenderMarket.ContestOutcome.BothFar) {
            (pool, escrowPart) = _resolveBothFar(c, job);
        } else if (outcome == IRenderMarket.ContestOutcome.NoTieBreaker) {
            (, uint256 freed) = _forfeit(job, c.leaseA, c.tile, false, IStaking.SlashReason.FarFromTieBreaker);
            (, uint256 freedB) = _forfeit(job, c.leaseB, c.tile, false, IStaking.SlashReason.FarFromTieBreaker);
            escrowPart = freed + freedB;
            _credit(job.client, c.jobId, escrowPart, IPayments.CreditReason.Refund);
        }
    }

    /// @dev Both sides far from the verdict: both forfeit and are slashed; their rewards and the
    /// slashes' bounties go to the jury, the rest of the slashes to the client.
    function _resolveBothFar(IRenderMarket.Contest storage c, IRenderMarket.Job storage job)
        internal
        returns (uint256 pool, uint256 escrowPart)
    {
        (uint256 slashed, uint256 freed) = _forfeit(job, c.leaseA, c.tile, true, IStaking.SlashReason.FarFromTieBreaker);
        (uint256 slashedB, uint256 freedB) =
            _forfeit(job, c.leaseB, c.tile, true, IStaking.SlashReason.FarFromTieBreaker);
        slashed += slashedB;
        escrowPart = freed + freedB;
        uint256 bounty = slashed * _BOUNTY_BPS / _BPS;
        _credit(job.client, c.jobId, slashed - bounty, IPayments.CreditReason.Compensation);
        pool = escrowPart + bounty;
    }

    /// @dev Dispute outcomes; returns the wei owed to the jurors on the verdict. Worker far: it
    /// forfeits the tile and is slashed (bounty and forfeited reward to the jury, the rest to the
    /// client), the bond returns. Not far: the client lost: half the bond to the worker (to the
    /// client instead when the worker's data was proven unavailable), the rest to the jury. No
    /// verdict: the bond returns to the client, the worker keeps the tile.
    function _resolveDispute(
        IRenderMarket.Contest storage c,
        IRenderMarket.Job storage job,
        IRenderMarket.ContestOutcome outcome
    ) internal returns (uint256 pool, uint256 escrowPart) {
        uint256 jobId = c.jobId;
        address client = job.client;
        uint256 bond = c.bond;
        if (outcome == IRenderMarket.ContestOutcome.AFar) {
            (uint256 slashed, uint256 freed) = _forfeit(job, c.leaseA, c.tile, true, IStaking.SlashReason.LostDispute);
            uint256 bounty = slashed * _BOUNTY_BPS / _BPS;
            _credit(client, jobId, slashed - bounty, IPayments.CreditReason.Compensation);
            _credit(client, jobId, bond, IPayments.CreditReason.BondReturned);
            (pool, escrowPart) = (freed + bounty, freed);
        } else if (outcome == IRenderMarket.ContestOutcome.NoneFar) {
            uint256 half = bond / 2;
            IRenderMarket.Lease storage a = _leases[c.leaseA];
            bool available = a.status != IRenderMarket.LeaseStatus.Forfeited;
            _credit(available ? a.worker : client, jobId, half, IPayments.CreditReason.BondAwarded);
            pool = bond - half;
        } else {
            _credit(client, jobId, bond, IPayments.CreditReason.BondReturned);
        }
    }

    /// @dev Ends every revealed juror lease of a resolved contest. Jurors on the verdict (same root
    /// as `leaseT`) share `pool` plus the slashes of jurors off it; those off it are slashed as
    /// fraud. Dust and an unshared pool go to the client.
    function _payJury(
        uint256 contestId,
        IRenderMarket.Contest storage c,
        IRenderMarket.Job storage job,
        uint256 leaseT,
        uint256 pool
    ) internal {
        uint256 majority = 0;
        {
            bytes32 root = leaseT == 0 ? bytes32(0) : _leases[leaseT].digest;
            uint256 n = c.seated;
            for (uint256 seat; seat < n; ++seat) {
                (uint256 slashed, bool onVerdict) = _judgeJuror(contestId, _jurors[contestId][seat], root);
                pool += slashed;
                if (onVerdict) ++majority;
            }
        }
        uint256 jobId = c.jobId;
        uint256 paid = _payMajority(contestId, c.seated, jobId, majority == 0 ? 0 : pool / majority);
        _credit(job.client, jobId, pool - paid, IPayments.CreditReason.Refund); // the dust, or all
    }

    /// @dev Pays each juror still Revealed (those on the verdict) `share` and releases its
    /// collateral. Returns the wei paid.
    function _payMajority(uint256 contestId, uint256 seats, uint256 jobId, uint256 share)
        internal
        returns (uint256 paid)
    {
        for (uint256 seat; seat < seats; ++seat) {
            uint256 id = _jurors[contestId][seat];
            IRenderMarket.Lease storage j = _leases[id];
            if (j.status != IRenderMarket.LeaseStatus.Revealed) continue;
            j.status = IRenderMarket.LeaseStatus.Settled;
            address worker = j.worker;
            emit IRenderMarket.TieBreakerSettled(id, contestId, worker, share);
            _release(worker, id, _COLLATERAL_PER_TILE, share != 0 ? 1 : 0);
            _credit(worker, jobId, share, IPayments.CreditReason.Reward);
            paid += share;
        }
    }

    /// @dev Ends juror lease `id` unless it is on the verdict `root` (then it is paid by
    /// `_payJury`): off the verdict, slashed as fraud (returned, for the jury's pool). A juror
    /// that never revealed is left to `reclaim` (anyone, for the bounty), as any expired lease.
    function _judgeJuror(uint256 contestId, uint256 id, bytes32 root) internal returns (uint256 slashed, bool onVerdict) {
        IRenderMarket.Lease storage j = _leases[id];
        if (j.status != IRenderMarket.LeaseStatus.Revealed) return (0, false);
        // incorrect-equality (Medium, triaged): Merkle roots are compared exactly by design
        // (bit-identical honest results); no balance or time enters them.
        // slither-disable-next-line incorrect-equality
        if (root == bytes32(0) || j.digest == root) return (0, root != bytes32(0));
        address worker = j.worker;
        uint256 lockedPart = _COLLATERAL_PER_TILE * _SLASH_BPS / _BPS;
        j.status = IRenderMarket.LeaseStatus.Settled;
        emit IRenderMarket.TieBreakerSettled(id, contestId, worker, 0);
        slashed = _slashFraud(worker, id, lockedPart, _fraudExtra(), IStaking.SlashReason.LostJury);
        _release(worker, id, _COLLATERAL_PER_TILE - lockedPart, 0);
    }

    /// @dev A contested tile leaves lease `leaseId`: it is not paid at settlement and its
    /// collateral is released now, less the fraud slash when `slash`. Returns the slashed wei and
    /// the escrow the slot frees (its reward). A tile already forfeited (or a lease forfeited for
    /// unavailable data, whose slots were freed then) forfeits nothing more.
    function _forfeit(
        IRenderMarket.Job storage job,
        uint256 leaseId,
        uint256 tile,
        bool slash,
        IStaking.SlashReason reason
    ) internal returns (uint256 slashed, uint256 freed) {
        IRenderMarket.Lease storage l = _leases[leaseId];
        uint256 bit = uint256(1) << (tile - l.firstTile);
        if (l.forfeited & bit != 0) return (0, 0);
        freed = job.rewardPerTileReplica;
        l.forfeited |= bit;
        l.forfeitedCount += 1;
        job.reservedSlots -= 1;
        address worker = l.worker;
        uint256 lockedPart = 0;
        if (slash) {
            lockedPart = _COLLATERAL_PER_TILE * _SLASH_BPS / _BPS;
            slashed = _slashFraud(worker, leaseId, lockedPart, _fraudExtra(), reason);
        }
        _release(worker, leaseId, _COLLATERAL_PER_TILE - lockedPart, 0);
    }

    function _side(uint256 leaseId, IRenderMarket.Lease storage l, uint256 tile) internal view returns (Side memory) {
        return Side(leaseId, l.digest, tile - l.firstTile, l.count);
    }

    /// @dev Every answered leaf opens against the lease's root at the challenged tile.
    function _verifyAnswer(
        uint256 leaseId,
        uint256 tile,
        uint32[] calldata leaves,
        bytes32[] calldata leafData,
        bytes32[][] calldata proofs
    ) internal view {
        IRenderMarket.Lease storage l = _leases[leaseId];
        uint256 leafDepth = _jobs[l.jobId].leafDepth;
        Side memory s = _side(leaseId, l, tile);
        uint256 n = leaves.length;
        for (uint256 i; i < n; ++i) {
            _verifyOpening(s, leafData[i], leaves[i], leafDepth, proofs[i]); // <= MAX_OPENINGS
        }
    }

    /// @dev 1..MAX_OPENINGS strictly increasing leaf indices below 2^leafDepth.
    function _checkLeafIndices(uint256 leafDepth, uint32[] calldata leaves) internal pure {
        uint256 n = leaves.length;
        if (n == 0 || n > MAX_OPENINGS) revert IRenderMarket.MarketBadOpeningCount(n, MAX_OPENINGS);
        uint256 count = uint256(1) << leafDepth;
        uint256 previous = 0;
        for (uint256 i; i < n; ++i) {
            uint256 leaf = leaves[i];
            if ((i != 0 && leaf <= previous) || leaf >= count) revert IRenderMarket.MarketBadLeafIndex(leaf, previous, count);
            previous = leaf;
        }
    }

    /// @dev Verifies every opening against both roots and counts far coefficient pairs. The last
    /// leaf of a tile is the digest leaf (sha256 of the whole output bundle): any difference in it
    /// proves the results differ, so it counts as farCount far pairs on its own.
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
            if (leaf == leaves - 1) {
                if (o.leafA != o.leafB) far += _FAR_COUNT;
            } else {
                far += Agreement.farCount(o.leafA, o.leafB, _TOLERANCE);
            }
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
