// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IRenderMarket} from "./interfaces/IRenderMarket.sol";
import {MarketFaults} from "./MarketFaults.sol";
import {Payments} from "./Payments.sol";
import {Staking} from "./Staking.sol";
import {MarketBase} from "./base/MarketBase.sol";
import {TileBitmap} from "./libraries/TileBitmap.sol";
import {TileMerkle} from "./libraries/TileMerkle.sol";

/// @title RenderMarket
/// @notice The blindframe job market, its one address and ABI. This contract runs the happy
/// path (post, claim, commit, reveal, settle, finalize, staking, withdraw) and the views. Every
/// unhappy path (reclaim, disagreement and far proofs, contests, disputes, refunds, cancels) runs in
/// MarketFaults, which this contract creates in its constructor and reaches by delegatecall on
/// its own storage: together they exceed the 24,576-byte code limit of EIP-170. See
/// IRenderMarket and contracts/README.md.
contract RenderMarket is IRenderMarket, Payments, Staking, MarketBase {
    using TileBitmap for mapping(uint256 => uint256);

    /*//////////////////////////////////////////////////////////////
                               IMMUTABLES
    //////////////////////////////////////////////////////////////*/

    /// @dev The unhappy-path half of the market, created here: no one can point it elsewhere.
    address internal immutable _FAULTS;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param p Every parameter of the market; see `Params` and contracts/README.md for defaults.
    constructor(Params memory p) MarketBase(p) {
        _FAULTS = address(new MarketFaults(p));
    }

    /*//////////////////////////////////////////////////////////////
                            JOBS AND LEASES
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRenderMarket
    function postJob(
        bytes calldata manifestCid,
        bytes32 kernelId,
        uint32 tileCount,
        uint8 replication,
        uint96 rewardPerTileReplica,
        uint32 leaseLength,
        uint40 deadline,
        uint8 priority,
        uint8 leafDepth
    ) external payable returns (uint256 jobId) {
        if (manifestCid.length == 0 || manifestCid.length > MAX_CID_LENGTH) {
            revert MarketBadCid(manifestCid.length, MAX_CID_LENGTH);
        }
        if (tileCount == 0 || tileCount > MAX_TILES) revert MarketBadTileCount(tileCount, MAX_TILES);
        if (replication == 0 || replication > MAX_REPLICATION) {
            revert MarketBadReplication(replication, MAX_REPLICATION);
        }
        if (rewardPerTileReplica == 0) revert MarketZeroReward();
        if (leaseLength == 0 || leaseLength > _MAX_LEASE_LENGTH) {
            revert MarketBadLeaseLength(leaseLength, _MAX_LEASE_LENGTH);
        }
        if (deadline < block.timestamp + leaseLength) revert MarketBadDeadline(deadline, block.timestamp + leaseLength);
        if (leafDepth > TileMerkle.MAX_LEAF_DEPTH) revert MarketBadLeafDepth(leafDepth, TileMerkle.MAX_LEAF_DEPTH);
        // <= 2^20 * 8 * 2^96 < 2^128: fits the uint128 escrow.
        uint256 escrow = uint256(tileCount) * replication * rewardPerTileReplica;
        if (msg.value != escrow) revert MarketWrongEscrow(escrow, msg.value);

        jobId = ++_jobCount;
        Job storage job = _jobs[jobId];
        job.client = msg.sender;
        job.deadline = deadline;
        job.leaseLength = leaseLength;
        job.replication = replication;
        job.leafDepth = leafDepth;
        job.priority = priority;
        job.tileCount = tileCount;
        job.rewardPerTileReplica = rewardPerTileReplica;
        // forge-lint: disable-next-line(unsafe-typecast)
        job.escrow = uint128(escrow); // < 2^128, see above
        job.manifestHash = keccak256(manifestCid);
        job.kernelId = kernelId;
        _emitJobPosted(jobId, job, manifestCid);
    }

    /// @inheritdoc IRenderMarket
    function claim(uint256 jobId, uint32 lane, uint32 firstTile, uint16 count) external returns (uint256 leaseId) {
        Job storage job = _job(jobId);
        if (count == 0 || count > MAX_LEASE_TILES || uint256(firstTile) + count > job.tileCount) {
            revert MarketBadRange(firstTile, count, job.tileCount);
        }
        leaseId = ++_leaseCount;
        uint256 commitDeadline = block.timestamp + job.leaseLength;
        if (lane < job.replication) {
            if (job.cancelledAt != 0) revert MarketJobCancelled(jobId);
            if (commitDeadline > job.deadline) revert MarketClaimClosed(jobId, job.deadline, commitDeadline);
            job.reservedSlots += count;
        } else {
            _claimTieBreaker(jobId, job, lane, firstTile, count, leaseId);
        }
        if (!_taken[jobId][lane].trySetRange(firstTile, count)) revert MarketTilesTaken(jobId, lane, firstTile, count);
        if (!_held[jobId][msg.sender].trySetRange(firstTile, count)) {
            revert MarketTileHeld(jobId, msg.sender, firstTile, count);
        }
        _lock(msg.sender, leaseId, count);

        Lease storage l = _leases[leaseId];
        l.worker = msg.sender;
        // forge-lint: disable-next-line(unsafe-typecast)
        l.commitDeadline = uint40(commitDeadline); // a timestamp
        l.status = LeaseStatus.Claimed;
        // forge-lint: disable-next-line(unsafe-typecast)
        l.jobId = uint64(jobId); // <= _jobCount, a uint64
        l.lane = lane;
        l.firstTile = firstTile;
        l.count = count;
        emit TilesClaimed(
            leaseId,
            jobId,
            msg.sender,
            lane,
            firstTile,
            count,
            // forge-lint: disable-next-line(unsafe-typecast)
            uint40(commitDeadline),
            // forge-lint: disable-next-line(unsafe-typecast)
            uint40(commitDeadline + _REVEAL_WINDOW)
        );
    }

    /// @inheritdoc IRenderMarket
    function commit(uint256 leaseId, bytes32 commitment) external {
        Lease storage l = _workerLease(leaseId, LeaseStatus.Claimed);
        if (block.timestamp > l.commitDeadline) revert MarketLeaseExpired(leaseId, l.commitDeadline, block.timestamp);
        if (commitment == bytes32(0)) revert MarketZeroCommitment(leaseId);
        l.status = LeaseStatus.Committed;
        l.digest = commitment;
        uint256 jobId = l.jobId;
        Job storage job = _jobs[jobId];
        if (l.lane < job.replication) job.committedSlots += l.count;
        emit Committed(leaseId, jobId, msg.sender, commitment);
    }

    /// @inheritdoc IRenderMarket
    function reveal(uint256 leaseId, bytes32 root, bytes calldata resultCid, bytes32 salt) external {
        Lease storage l = _workerLease(leaseId, LeaseStatus.Committed);
        uint256 commitDeadline = l.commitDeadline;
        if (block.timestamp > commitDeadline + _REVEAL_WINDOW) {
            revert MarketLeaseExpired(leaseId, commitDeadline + _REVEAL_WINDOW, block.timestamp);
        }
        if (root == bytes32(0)) revert MarketZeroRoot(leaseId);
        if (resultCid.length == 0 || resultCid.length > MAX_CID_LENGTH) {
            revert MarketBadCid(resultCid.length, MAX_CID_LENGTH);
        }
        bytes32 computed = keccak256(abi.encode(root, msg.sender, salt));
        if (computed != l.digest) revert MarketCommitmentMismatch(leaseId, l.digest, computed);

        uint256 jobId = l.jobId;
        Job storage job = _jobs[jobId];
        uint256 lane = l.lane;
        uint256 count = l.count;
        if (lane < job.replication) {
            uint256 total = uint256(job.tileCount) * job.replication;
            if (block.timestamp <= commitDeadline && job.committedSlots < total) {
                revert MarketRevealTooEarly(leaseId, job.committedSlots, total, commitDeadline);
            }
            if (job.replication > 1) _recordReveal(jobId, lane, l.firstTile, count);
        }
        // A tie-breaker may reveal a root equal to a contested one: honest replicas that ran the
        // same FFT plans are bit-identical (fhe_core/AGREEMENT.md), so equality is no evidence.
        l.digest = root;
        // forge-lint: disable-next-line(unsafe-typecast)
        l.revealedAt = uint40(block.timestamp);
        l.status = LeaseStatus.Revealed;
        _endWork(msg.sender, count);
        emit Revealed(leaseId, jobId, msg.sender, root, resultCid);
    }

    /*//////////////////////////////////////////////////////////////
                     UNHAPPY PATHS (MarketFaults)
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRenderMarket
    function reclaim(uint256) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function proveDisagreement(uint256, uint32, uint256, uint256, Opening[] calldata) external returns (uint256) {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function proveFar(uint256, uint8, Opening[] calldata) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function resolveContest(uint256) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function refund(uint256) external returns (uint256) {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function cancelJob(uint256) external returns (uint256) {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function dispute(uint256, uint32, uint256) external payable returns (uint256) {
        _delegateToFaults();
    }

    /*//////////////////////////////////////////////////////////////
                               SETTLEMENT
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRenderMarket
    function settle(uint256 jobId, uint256[] calldata leaseIds) external {
        Job storage job = _job(jobId);
        if (msg.sender != job.client) revert MarketNotClient(jobId, msg.sender, job.client);
        _settleBatch(jobId, job, leaseIds, false);
    }

    /// @inheritdoc IRenderMarket
    function finalize(uint256 jobId, uint256[] calldata leaseIds) external {
        _settleBatch(jobId, _job(jobId), leaseIds, true);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRenderMarket
    function params() external view returns (Params memory p) {
        // Each value was given as the narrower type at construction.
        // forge-lint: disable-start(unsafe-typecast)
        p.minStake = uint96(_MIN_STAKE);
        p.collateralPerTile = uint96(_COLLATERAL_PER_TILE);
        p.unbondingDelay = uint32(_UNBONDING_DELAY);
        p.maxLeaseLength = uint32(_MAX_LEASE_LENGTH);
        p.revealWindow = uint32(_REVEAL_WINDOW);
        p.challengeWindow = uint32(_CHALLENGE_WINDOW);
        p.acceptanceWindow = uint32(_ACCEPTANCE_WINDOW);
        p.tieBreakWindow = uint32(_TIE_BREAK_WINDOW);
        p.slashBps = uint16(_SLASH_BPS);
        p.bountyBps = uint16(_BOUNTY_BPS);
        p.disputeBond = uint96(_DISPUTE_BOND);
        p.tolerance = _TOLERANCE;
        p.farCount = uint16(_FAR_COUNT);
        // forge-lint: disable-end(unsafe-typecast)
    }

    /// @inheritdoc IRenderMarket
    function faultsModule() external view returns (address) {
        return _FAULTS;
    }

    /// @inheritdoc IRenderMarket
    function counts() external view returns (uint256 jobs, uint256 leases, uint256 contests) {
        return (_jobCount, _leaseCount, _contestCount);
    }

    /// @inheritdoc IRenderMarket
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _job(jobId);
    }

    /// @inheritdoc IRenderMarket
    function getLease(uint256 leaseId) external view returns (Lease memory) {
        return _lease(leaseId);
    }

    /// @inheritdoc IRenderMarket
    function getContest(uint256 contestId) external view returns (Contest memory) {
        return _contest(contestId);
    }

    /// @inheritdoc IRenderMarket
    function laneBitmap(uint256 jobId, uint32 lane, uint256 word) external view returns (uint256) {
        return _taken[jobId][lane][word];
    }

    /// @inheritdoc IRenderMarket
    function heldBitmap(uint256 jobId, address worker, uint256 word) external view returns (uint256) {
        return _held[jobId][worker][word];
    }

    /// @inheritdoc IRenderMarket
    function revealedBitmap(uint256 jobId, uint32 lane, uint256 word) external view returns (uint256) {
        return _revealed[jobId][lane][word];
    }

    /// @inheritdoc IRenderMarket
    function contestedBitmap(uint256 jobId, uint256 word) external view returns (uint256) {
        return _contested[jobId][word];
    }

    /// @inheritdoc IRenderMarket
    function freeRange(uint256 jobId, uint32 lane, address worker, uint32 fromTile, uint16 maxCount)
        external
        view
        returns (uint32 firstTile, uint16 count)
    {
        Job storage job = _job(jobId);
        if (lane < job.replication && job.cancelledAt != 0) return (0, 0); // closed to new claims
        uint256 n = job.tileCount;
        mapping(uint256 => uint256) storage taken = _taken[jobId][lane];
        mapping(uint256 => uint256) storage held = _held[jobId][worker];
        uint256 t = fromTile;
        // A view: the scan is bounded by the job's tile count and skips full words.
        while (t < n) {
            uint256 busy = taken[t >> 8] | held[t >> 8];
            if ((busy >> (t & 255)) & 1 == 0) break;
            t = busy == type(uint256).max ? ((t >> 8) + 1) << 8 : t + 1;
        }
        if (t >= n) return (0, 0);
        // forge-lint: disable-next-line(unsafe-typecast)
        firstTile = uint32(t); // < tileCount, a uint32
        while (t < n && count < maxCount) {
            if (((taken[t >> 8] | held[t >> 8]) >> (t & 255)) & 1 == 1) break;
            ++t;
            ++count;
        }
    }

    /// @inheritdoc IRenderMarket
    function tieBreakerContest(uint256 jobId, uint32 lane) external view returns (uint256) {
        return _tieLanes[jobId][lane];
    }

    /// @inheritdoc IRenderMarket
    function verifiedAt(uint256 leaseId) external view returns (uint256) {
        Lease storage l = _lease(leaseId);
        uint256 jobId = l.jobId;
        Job storage job = _jobs[jobId];
        if (l.revealedAt == 0 || l.lane >= job.replication) return 0;
        return _verifiedAt(jobId, job, l);
    }

    /// @inheritdoc IRenderMarket
    function refundable(uint256 jobId) external view returns (uint256) {
        return _refundable(_job(jobId));
    }

    /// @inheritdoc IRenderMarket
    function commitmentOf(bytes32 root, address worker, bytes32 salt) external pure returns (bytes32) {
        return keccak256(abi.encode(root, worker, salt));
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Runs the current call in MarketFaults on this contract's storage and returns (or
    /// reverts with) its result. Never returns to the caller's Solidity code.
    function _delegateToFaults() internal {
        address target = _FAULTS;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// @dev The caller's lease in `expected` status.
    function _workerLease(uint256 leaseId, LeaseStatus expected) internal view returns (Lease storage l) {
        l = _lease(leaseId);
        if (l.worker != msg.sender) revert MarketNotLeaseWorker(leaseId, msg.sender, l.worker);
        if (l.status != expected) revert MarketWrongLeaseStatus(leaseId, l.status, expected);
    }

    /// @dev Checks a claim of tie-breaker lane `lane` and binds the new lease to its contest.
    function _claimTieBreaker(
        uint256 jobId,
        Job storage job,
        uint256 lane,
        uint256 firstTile,
        uint256 count,
        uint256 leaseId
    ) internal {
        uint256 contestId = _tieLanes[jobId][lane];
        if (contestId == 0) revert MarketBadLane(jobId, lane);
        Contest storage c = _contests[contestId];
        if (c.outcome != ContestOutcome.Pending) revert MarketContestResolved(contestId);
        if (c.leaseT != 0) revert MarketTieBreakerTaken(contestId, c.leaseT);
        if (block.timestamp > c.claimDeadline) {
            revert MarketTieBreakerClosed(contestId, c.claimDeadline, block.timestamp);
        }
        if (count != 1 || firstTile != c.tile) revert MarketNotContestTile(contestId, c.tile, firstTile, count);
        if (msg.sender == job.client) revert MarketClientTieBreaker(contestId, msg.sender);
        // forge-lint: disable-next-line(unsafe-typecast)
        c.leaseT = uint64(leaseId); // <= _leaseCount, a uint64
    }

    /// @dev Marks a replica lane's tiles revealed now (kept only when replication > 1).
    function _recordReveal(uint256 jobId, uint256 lane, uint256 first, uint256 count) internal {
        _revealed[jobId][lane].setRange(first, count);
        mapping(uint256 => uint256) storage times = _revealTime[jobId][lane];
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            times[w] = block.timestamp; // at most two words
        }
    }

    function _settleBatch(uint256 jobId, Job storage job, uint256[] calldata leaseIds, bool finalizing) internal {
        uint256 n = leaseIds.length;
        if (n == 0 || n > MAX_BATCH) revert MarketBadBatch(n, MAX_BATCH);
        uint256 reward = job.rewardPerTileReplica;
        uint256 paidTiles = 0;
        for (uint256 i; i < n; ++i) {
            paidTiles += _settleLease(jobId, job, leaseIds[i], reward, finalizing);
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        job.reservedSlots -= uint32(paidTiles); // <= MAX_BATCH * MAX_LEASE_TILES
        // forge-lint: disable-next-line(unsafe-typecast)
        job.escrow -= uint128(paidTiles * reward); // <= escrow: reserved slots are funded
    }

    /// @dev Pays one verified lease: its unforfeited tiles' rewards, collateral and reputation.
    function _settleLease(uint256 jobId, Job storage job, uint256 leaseId, uint256 reward, bool finalizing)
        internal
        returns (uint256 tiles)
    {
        Lease storage l = _leases[leaseId];
        if (l.jobId != jobId) revert MarketWrongJob(leaseId, l.jobId, jobId);
        if (l.status != LeaseStatus.Revealed) revert MarketWrongLeaseStatus(leaseId, l.status, LeaseStatus.Revealed);
        if (l.lane >= job.replication) revert MarketNotReplicaLane(leaseId, l.lane);
        if (l.openContests != 0) revert MarketLeaseContested(leaseId, l.openContests);
        uint256 verified = _verifiedAt(jobId, job, l);
        if (block.timestamp <= verified) revert MarketNotVerified(leaseId, verified, block.timestamp);
        if (finalizing && block.timestamp <= verified + _ACCEPTANCE_WINDOW) {
            revert MarketAcceptanceOpen(leaseId, verified + _ACCEPTANCE_WINDOW, block.timestamp);
        }
        l.status = LeaseStatus.Settled;
        tiles = l.count - l.forfeitedCount;
        address worker = l.worker;
        uint256 amount = tiles * reward;
        if (finalizing) emit LeaseFinalized(leaseId, jobId, worker, tiles, amount);
        else emit LeaseSettled(leaseId, jobId, worker, tiles, amount);
        _release(worker, leaseId, tiles * _COLLATERAL_PER_TILE, tiles);
        _credit(worker, jobId, amount, CreditReason.Reward);
    }

    function _emitJobPosted(uint256 jobId, Job storage job, bytes calldata manifestCid) internal {
        emit JobPosted(
            jobId,
            job.client,
            job.kernelId,
            manifestCid,
            job.tileCount,
            job.replication,
            job.rewardPerTileReplica,
            job.leaseLength,
            job.deadline,
            job.priority,
            job.leafDepth,
            job.escrow
        );
    }
}
