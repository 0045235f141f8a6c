// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "../interfaces/IPayments.sol";
import {IRenderMarket} from "../interfaces/IRenderMarket.sol";
import {IStaking} from "../interfaces/IStaking.sol";
import {Agreement} from "../libraries/Agreement.sol";
import {TileBitmap} from "../libraries/TileBitmap.sol";
import {StakingBase} from "./StakingBase.sol";

/// @title MarketBase
/// @notice The market's constants, parameters, storage and the lookups both halves use:
/// RenderMarket (the happy path) and MarketFaults (the unhappy paths, reached by delegatecall).
/// @dev Storage layout: PaymentsBase, StakingBase, then this contract. RenderMarket and
/// MarketFaults must not declare state variables, so both see the same layout.
abstract contract MarketBase is StakingBase {
    using TileBitmap for mapping(uint256 => uint256);

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    uint256 public constant MAX_TILES = 1 << 20;
    uint256 public constant MAX_REPLICATION = 8;
    /// @notice Tiles per lease; a lease's range then spans at most two bitmap words.
    uint256 public constant MAX_LEASE_TILES = 256;
    uint256 public constant MAX_CID_LENGTH = 128;
    /// @notice Leaves per disagreement or far proof.
    uint256 public constant MAX_OPENINGS = 32;
    /// @notice Leases per settle or finalize call.
    uint256 public constant MAX_BATCH = 128;
    /// @notice Largest jury (jurySize is odd, 1..MAX_JURY).
    uint256 public constant MAX_JURY = 7;
    /// @notice Draws per contest: the first and up to two replacement rounds for jurors that
    /// missed their commit.
    uint256 public constant MAX_DRAW_ROUNDS = 3;
    /// @notice Candidates tried per empty seat before the seat stays empty (excluded or without
    /// free stake).
    uint256 public constant MAX_DRAW_TRIES = 8;
    /// @notice A job's `maxFaults` that admits any number of faults (with minCompleted 0: no gate).
    uint16 public constant NO_FAULT_LIMIT = type(uint16).max;
    uint256 internal constant _BPS = 10_000;

    /*//////////////////////////////////////////////////////////////
                               IMMUTABLES
    //////////////////////////////////////////////////////////////*/

    uint256 internal immutable _MAX_LEASE_LENGTH;
    uint256 internal immutable _REVEAL_WINDOW;
    uint256 internal immutable _CHALLENGE_WINDOW;
    uint256 internal immutable _ACCEPTANCE_WINDOW;
    uint256 internal immutable _TIE_BREAK_WINDOW;
    uint256 internal immutable _SLASH_BPS;
    uint256 internal immutable _BOUNTY_BPS;
    uint256 internal immutable _DISPUTE_BOND;
    uint64 internal immutable _TOLERANCE;
    uint256 internal immutable _FAR_COUNT;
    uint256 internal immutable _JURY_SIZE;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    // Slither analyses RenderMarket and MarketFaults one at a time and does not follow the
    // delegatecall between them: a variable written by one half and read by the other looks
    // "never initialized" (uninitialized-state, High) or "could be constant" to it. Triaged as
    // false positives: both halves share this storage (see the contract's @dev).
    uint64 internal _jobCount;
    uint64 internal _leaseCount;
    // slither-disable-next-line uninitialized-state (written by MarketFaults._openContest)
    uint64 internal _contestCount;

    mapping(uint256 jobId => IRenderMarket.Job) internal _jobs;
    mapping(uint256 leaseId => IRenderMarket.Lease) internal _leases;
    mapping(uint256 contestId => IRenderMarket.Contest) internal _contests;
    /// @dev Tiles leased per (job, lane), live or done; reclaim clears them.
    mapping(uint256 jobId => mapping(uint256 lane => mapping(uint256 word => uint256))) internal _taken;
    /// @dev Tiles of which a worker holds a replica in some lane: one replica per worker and tile.
    mapping(uint256 jobId => mapping(address worker => mapping(uint256 word => uint256))) internal _held;
    /// @dev Tiles revealed per (job, replica lane), kept only when replication > 1.
    // slither-disable-next-line uninitialized-state (written by RenderMarket._recordReveal)
    mapping(uint256 jobId => mapping(uint256 lane => mapping(uint256 word => uint256))) internal _revealed;
    /// @dev Latest reveal time per (job, replica lane, bitmap word).
    // slither-disable-next-line uninitialized-state (written by RenderMarket._recordReveal)
    mapping(uint256 jobId => mapping(uint256 lane => mapping(uint256 word => uint256))) internal _revealTime;
    /// @dev Tiles ever contested: each tile gets at most one contest (bounded rounds).
    // slither-disable-next-line uninitialized-state (written by MarketFaults._openContest)
    mapping(uint256 jobId => mapping(uint256 word => uint256)) internal _contested;
    /// @dev Tie-breaker lane -> its contest.
    // slither-disable-next-line uninitialized-state (written by MarketFaults._openContest)
    mapping(uint256 jobId => mapping(uint256 lane => uint256 contestId)) internal _tieLanes;
    /// @dev Jury seat -> the juror's lease.
    // slither-disable-next-line uninitialized-state (written by MarketFaults.drawJury)
    mapping(uint256 contestId => mapping(uint256 seat => uint256 leaseId)) internal _jurors;
    /// @dev Contested tile -> its contest (settlement of every replica of the tile waits for it).
    // slither-disable-next-line uninitialized-state (written by MarketFaults._openContest)
    mapping(uint256 jobId => mapping(uint256 tile => uint256 contestId)) internal _tileContest;
    // slither-disable-next-line uninitialized-state (written by MarketFaults.challengeAvailability)
    uint64 internal _challengeCount;
    // slither-disable-next-line uninitialized-state (written by MarketFaults.challengeAvailability)
    mapping(uint256 challengeId => IRenderMarket.AvailabilityChallenge) internal _challenges;
    /// @dev A lease's open availability challenge (0: none); settlement waits for it.
    // slither-disable-next-line uninitialized-state (written by MarketFaults.challengeAvailability)
    mapping(uint256 leaseId => uint256 challengeId) internal _openChallenges;
    /// @dev Each worker's advertised speed per kernel (informational: quotes and ETAs read it).
    mapping(address worker => mapping(bytes32 kernelId => IRenderMarket.Advertisement)) internal _adverts;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param p Every parameter of the market; see IRenderMarket.Params and contracts/README.md.
    constructor(IRenderMarket.Params memory p) StakingBase(p.minStake, p.collateralPerTile, p.unbondingDelay) {
        _MAX_LEASE_LENGTH = p.maxLeaseLength;
        _REVEAL_WINDOW = p.revealWindow;
        _CHALLENGE_WINDOW = p.challengeWindow;
        _ACCEPTANCE_WINDOW = p.acceptanceWindow;
        _TIE_BREAK_WINDOW = p.tieBreakWindow;
        _SLASH_BPS = p.slashBps;
        _BOUNTY_BPS = p.bountyBps;
        _DISPUTE_BOND = p.disputeBond;
        _TOLERANCE = p.tolerance;
        _FAR_COUNT = p.farCount;
        _JURY_SIZE = p.jurySize;
    }

    /*//////////////////////////////////////////////////////////////
                               PARAMETERS
    //////////////////////////////////////////////////////////////*/

    /// @dev Every parameter in range (RenderMarket's constructor checks; MarketFaults is created
    /// with the same parameters by it, so its own initcode stays small enough to be embedded).
    function _checkParams(IRenderMarket.Params memory p) internal pure {
        if (p.minStake == 0) revert IRenderMarket.MarketBadParameter("minStake");
        if (p.collateralPerTile == 0 || p.collateralPerTile > p.minStake) {
            revert IRenderMarket.MarketBadParameter("collateralPerTile");
        }
        if (p.unbondingDelay == 0) revert IRenderMarket.MarketBadParameter("unbondingDelay");
        if (p.maxLeaseLength == 0) revert IRenderMarket.MarketBadParameter("maxLeaseLength");
        if (p.revealWindow == 0) revert IRenderMarket.MarketBadParameter("revealWindow");
        if (p.challengeWindow == 0) revert IRenderMarket.MarketBadParameter("challengeWindow");
        if (p.acceptanceWindow == 0) revert IRenderMarket.MarketBadParameter("acceptanceWindow");
        if (p.tieBreakWindow == 0) revert IRenderMarket.MarketBadParameter("tieBreakWindow");
        if (p.slashBps > _BPS) revert IRenderMarket.MarketBadParameter("slashBps");
        if (p.bountyBps > _BPS) revert IRenderMarket.MarketBadParameter("bountyBps");
        if (p.disputeBond == 0) revert IRenderMarket.MarketBadParameter("disputeBond");
        if (p.tolerance >= 1 << 63) revert IRenderMarket.MarketBadParameter("tolerance");
        if (p.farCount == 0 || p.farCount > MAX_OPENINGS * Agreement.COEFFICIENTS_PER_LEAF) {
            revert IRenderMarket.MarketBadParameter("farCount");
        }
        if (p.jurySize == 0 || p.jurySize > MAX_JURY || p.jurySize % 2 == 0) {
            revert IRenderMarket.MarketBadParameter("jurySize");
        }
    }

    /*//////////////////////////////////////////////////////////////
                               LOOKUPS
    //////////////////////////////////////////////////////////////*/

    function _job(uint256 jobId) internal view returns (IRenderMarket.Job storage job) {
        job = _jobs[jobId];
        if (job.client == address(0)) revert IRenderMarket.MarketUnknownJob(jobId);
    }

    function _lease(uint256 leaseId) internal view returns (IRenderMarket.Lease storage l) {
        l = _leases[leaseId];
        if (l.status == IRenderMarket.LeaseStatus.None) revert IRenderMarket.MarketUnknownLease(leaseId);
    }

    function _contest(uint256 contestId) internal view returns (IRenderMarket.Contest storage c) {
        c = _contests[contestId];
        if (c.jobId == 0) revert IRenderMarket.MarketUnknownContest(contestId);
    }

    /// @dev A revealed, unsettled replica-lane lease of `jobId` covering `tile`.
    function _replicaLease(uint256 leaseId, uint256 jobId, IRenderMarket.Job storage job, uint256 tile)
        internal
        view
        returns (IRenderMarket.Lease storage l)
    {
        l = _lease(leaseId);
        if (l.jobId != jobId) revert IRenderMarket.MarketWrongJob(leaseId, l.jobId, jobId);
        if (l.lane >= job.replication) revert IRenderMarket.MarketNotReplicaLane(leaseId, l.lane);
        if (l.status != IRenderMarket.LeaseStatus.Revealed) {
            revert IRenderMarket.MarketWrongLeaseStatus(leaseId, l.status, IRenderMarket.LeaseStatus.Revealed);
        }
        if (tile < l.firstTile || tile >= uint256(l.firstTile) + l.count) {
            revert IRenderMarket.MarketTileNotInLease(leaseId, tile);
        }
    }

    function _revealDeadline(IRenderMarket.Lease storage l) internal view returns (uint256) {
        return l.commitDeadline + _REVEAL_WINDOW;
    }

    /// @dev Whether the job's reputation gate admits `worker` (as a claimer, or a drawn juror):
    /// at least minCompleted tiles paid, at most maxFaults faults. An ungated job reads no account.
    function _admits(IRenderMarket.Job storage job, address worker) internal view returns (bool) {
        uint256 minCompleted = job.minCompleted;
        uint256 maxFaults = job.maxFaults;
        if (minCompleted == 0 && maxFaults == NO_FAULT_LIMIT) return true;
        IStaking.WorkerInfo storage w = _workers[worker];
        return w.completed >= minCompleted && (maxFaults == NO_FAULT_LIMIT || w.faults <= maxFaults);
    }

    function _refundable(IRenderMarket.Job storage job) internal view returns (uint256) {
        return job.escrow - uint256(job.reservedSlots) * job.rewardPerTileReplica;
    }

    /// @dev See IRenderMarket.verifiedAt: at replication 1 the lease's reveal (no replica exists
    /// to prove a disagreement against); above it, challengeWindow after the latest reveal among
    /// the lease's own and its tiles' other replica lanes (by bitmap word); while a replica is
    /// missing, after the job's reveal horizon (`_lastCommitDeadline` + revealWindow), past which
    /// no replica lane can reveal.
    function _verifiedAt(uint256 jobId, IRenderMarket.Job storage job, IRenderMarket.Lease storage l)
        internal
        view
        returns (uint256)
    {
        uint256 latest = l.revealedAt;
        uint256 replication = job.replication;
        // Replication 1: no replica exists to prove a disagreement against, so no challenge
        // window runs (a dispute or an availability challenge still has the acceptance window).
        if (replication == 1) return latest;
        uint256 first = l.firstTile;
        uint256 count = l.count;
        uint256 own = l.lane;
        // No replica of these tiles can commit after this lease revealed (copy gate), so every
        // replica that will ever reveal does so by `bound`: later reveals elsewhere in the same
        // bitmap word, or a horizon further out, must not move verification past it.
        uint256 bound = latest + job.leaseLength + _REVEAL_WINDOW;
        uint256 horizon = _lastCommitDeadline(job) + _REVEAL_WINDOW;
        if (horizon > bound) horizon = bound;
        for (uint256 lane; lane < replication; ++lane) {
            if (lane == own) continue; // <= MAX_REPLICATION lanes
            uint256 revealTime = _laneRevealTime(jobId, lane, first, count, horizon);
            if (revealTime > latest) latest = revealTime;
        }
        if (latest > bound) latest = bound;
        return latest + _CHALLENGE_WINDOW;
    }

    /// @dev The latest commit deadline a replica-lane lease of the job can have: the job deadline
    /// or, once the job is cancelled (no replica claims after that), the cancel time plus the lease
    /// length when that is earlier.
    function _lastCommitDeadline(IRenderMarket.Job storage job) internal view returns (uint256 last) {
        last = job.deadline;
        uint256 cancelledAt = job.cancelledAt;
        if (cancelledAt != 0 && cancelledAt + job.leaseLength < last) last = cancelledAt + job.leaseLength;
    }

    /// @dev Every replica lane revealed all of the lease's tiles (its own lane did: it revealed).
    function _everyLaneRevealed(uint256 jobId, IRenderMarket.Job storage job, IRenderMarket.Lease storage l)
        internal
        view
        returns (bool)
    {
        uint256 replication = job.replication;
        uint256 first = l.firstTile;
        uint256 count = l.count;
        uint256 own = l.lane;
        for (uint256 lane; lane < replication; ++lane) {
            if (lane == own) continue; // <= MAX_REPLICATION lanes
            if (_laneRevealTime(jobId, lane, first, count, type(uint256).max) == type(uint256).max) return false;
        }
        return true;
    }

    /// @dev When lane `lane` revealed all of [first, first + count) (latest reveal in its bitmap
    /// words), or `horizon` while some tile of the range is unrevealed there.
    function _laneRevealTime(uint256 jobId, uint256 lane, uint256 first, uint256 count, uint256 horizon)
        internal
        view
        returns (uint256 latest)
    {
        mapping(uint256 => uint256) storage revealed = _revealed[jobId][lane];
        mapping(uint256 => uint256) storage times = _revealTime[jobId][lane];
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            uint256 mask = TileBitmap.rangeMask(first, count, w); // at most two words
            if (revealed[w] & mask != mask) return horizon;
            if (times[w] > latest) latest = times[w];
        }
    }

    /*//////////////////////////////////////////////////////////////
                              MONEY
    //////////////////////////////////////////////////////////////*/

    /// @dev Splits slashed wei: bountyBps of it to `beneficiary` (never a caller who merely sent
    /// the proof: front-running a proof takes nothing), the rest to the client.
    function _shareSlash(uint256 jobId, address client, uint256 slashed, address beneficiary) internal {
        uint256 bounty = slashed * _BOUNTY_BPS / _BPS;
        _credit(beneficiary, jobId, bounty, IPayments.CreditReason.Bounty);
        _credit(client, jobId, slashed - bounty, IPayments.CreditReason.Compensation);
    }

    /// @dev True when some tile of [first, first + count) was revealed in a replica lane other
    /// than `own` (replication > 1 only; the revealed bitmaps are kept only then).
    function _revealedElsewhere(uint256 jobId, IRenderMarket.Job storage job, uint256 own, uint256 first, uint256 count)
        internal
        view
        returns (bool)
    {
        uint256 replication = job.replication;
        if (replication == 1) return false;
        uint256 last = (first + count - 1) >> 8;
        for (uint256 lane; lane < replication; ++lane) {
            if (lane == own) continue; // <= MAX_REPLICATION lanes
            mapping(uint256 => uint256) storage revealed = _revealed[jobId][lane];
            for (uint256 w = first >> 8; w <= last; ++w) {
                if (revealed[w] & TileBitmap.rangeMask(first, count, w) != 0) return true; // <= two words
            }
        }
        return false;
    }

    /// @dev The reveal deadline of a lease: its commit deadline + revealWindow; for a juror, the
    /// contest's claim deadline + revealWindow (its reveal may have to wait for a replacement
    /// juror's commit, which the claim deadline bounds).
    function _revealDeadlineOf(IRenderMarket.Job storage job, IRenderMarket.Lease storage l)
        internal
        view
        returns (uint256)
    {
        if (l.lane >= job.replication) return _contests[_tieLanes[l.jobId][l.lane]].claimDeadline + _REVEAL_WINDOW;
        return l.commitDeadline + _REVEAL_WINDOW;
    }

    /// @dev A draw is armed and may still run (until claimDeadline - leaseLength).
    function _drawPending(IRenderMarket.Contest storage c, uint256 leaseLength) internal view returns (bool) {
        return c.drawBlock != 0 && block.timestamp + leaseLength <= c.claimDeadline;
    }

    /// @dev The jury's verdict as of now (see IRenderMarket.verdict): the draw must be closed or
    /// done, and every seated juror revealed or past its deadline.
    function _verdict(uint256 contestId, IRenderMarket.Contest storage c, uint256 leaseLength)
        internal
        view
        returns (uint256 leaseT, uint256 fixedAt)
    {
        if (_drawPending(c, leaseLength)) return (0, 0);
        if (c.drawBlock != 0) fixedAt = c.claimDeadline - leaseLength; // the draw window closed undrawn
        uint256 n = c.seated;
        // slither-disable-next-line uninitialized-local (zeroed memory, filled below)
        bytes32[MAX_JURY] memory roots;
        // slither-disable-next-line uninitialized-local (zeroed memory, filled below)
        uint256[MAX_JURY] memory ids;
        uint256 revealed = 0;
        uint256 revealDeadline = c.claimDeadline + _REVEAL_WINDOW; // every juror's
        for (uint256 seat; seat < n; ++seat) {
            uint256 id = _jurors[contestId][seat];
            IRenderMarket.Lease storage j = _leases[id];
            IRenderMarket.LeaseStatus status = j.status;
            uint256 t;
            if (status == IRenderMarket.LeaseStatus.Revealed || status == IRenderMarket.LeaseStatus.Settled) {
                roots[revealed] = j.digest;
                ids[revealed] = id;
                ++revealed;
                t = j.revealedAt;
            } else {
                uint256 commitDeadline = j.commitDeadline;
                t = revealDeadline;
                if (status == IRenderMarket.LeaseStatus.Claimed) {
                    if (block.timestamp <= commitDeadline) return (0, 0);
                    t = commitDeadline;
                } else if (status == IRenderMarket.LeaseStatus.Committed && block.timestamp <= t) {
                    return (0, 0);
                }
            }
            if (t > fixedAt) fixedAt = t;
        }
        // A strict majority of the whole jury (not of those who revealed: a lone revealed juror
        // must not decide because the others were kept out or stayed silent). Bit-identical
        // honest results (pinned FFT plans) make equal roots the honest jurors' common answer.
        // At most 7 x 7 comparisons.
        for (uint256 i; i < revealed; ++i) {
            uint256 votes = 0;
            for (uint256 k; k < revealed; ++k) {
                if (roots[k] == roots[i]) ++votes;
            }
            if (2 * votes > _JURY_SIZE) {
                leaseT = ids[i];
                break;
            }
        }
    }
}
