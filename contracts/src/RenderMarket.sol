// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IRenderMarket} from "./interfaces/IRenderMarket.sol";
import {MarketFaults} from "./MarketFaults.sol";
import {Payments} from "./Payments.sol";
import {Staking} from "./Staking.sol";
import {MarketBase} from "./base/MarketBase.sol";
import {Agreement} from "./libraries/Agreement.sol";
import {TileBitmap} from "./libraries/TileBitmap.sol";
import {TileMerkle} from "./libraries/TileMerkle.sol";

/// @title RenderMarket
/// @notice The blindframe job market, its one address and ABI. This contract runs the happy
/// path (post, claim, commit, reveal, settle, finalize, staking, withdraw) and the views. Every
/// unhappy path (reclaim, disagreement and far proofs, contests, disputes, refunds, cancels) runs in
/// MarketFaults, deployed before this contract with the same parameters and reached by
/// delegatecall on this contract's storage: together they exceed the 24,576-byte code limit of
/// EIP-170. See IRenderMarket and contracts/README.md.
contract RenderMarket is IRenderMarket, Payments, Staking, MarketBase {
    using TileBitmap for mapping(uint256 => uint256);

    /*//////////////////////////////////////////////////////////////
                               IMMUTABLES
    //////////////////////////////////////////////////////////////*/

    /// @dev The unhappy-path half of the market, fixed at construction: no one can point it
    /// elsewhere.
    address internal immutable _FAULTS;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param p Every parameter of the market; see `Params` and contracts/README.md for defaults.
    /// @param faults A MarketFaults deployed with the same `p` (checked by its `paramsHash`). It
    /// used to be created here, but its creation code inside this one's would not fit EIP-3860's
    /// initcode limit (contracts/README.md, "Two halves").
    constructor(Params memory p, address faults) MarketBase(p) {
        _checkParams(p);
        bytes32 expected = keccak256(abi.encode(p));
        bytes32 actual = faults.code.length == 0 ? bytes32(0) : MarketFaults(faults).paramsHash();
        if (actual != expected) revert MarketFaultsMismatch(faults, actual, expected);
        _FAULTS = faults;
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
        uint8 leafDepth,
        uint32 minCompleted,
        uint16 maxFaults
    ) external payable returns (uint256 jobId) {
        // Two functions: the eleven arguments and the job pointer do not fit one stack frame.
        jobId = _postJob(
            manifestCid, kernelId, tileCount, replication, rewardPerTileReplica, leaseLength, deadline, priority, leafDepth
        );
        Job storage job = _jobs[jobId];
        job.minCompleted = minCompleted; // in escrow's slot, written just before: no new slot
        job.maxFaults = maxFaults;
    }

    /// @dev postJob without the reputation gate: checks the terms, stores the job, emits JobPosted.
    function _postJob(
        bytes calldata manifestCid,
        bytes32 kernelId,
        uint32 tileCount,
        uint8 replication,
        uint96 rewardPerTileReplica,
        uint32 leaseLength,
        uint40 deadline,
        uint8 priority,
        uint8 leafDepth
    ) internal returns (uint256 jobId) {
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
        {
            // The last leaf is the digest leaf; the others must be able to hold farCount far pairs
            // within MAX_OPENINGS openings, or a forged coefficient could never be proven.
            uint256 openable = (uint256(1) << leafDepth) - 1;
            if (openable > MAX_OPENINGS) openable = MAX_OPENINGS;
            if (openable * Agreement.COEFFICIENTS_PER_LEAF < _FAR_COUNT) {
                revert MarketLeafDepthTooShallow(leafDepth, _FAR_COUNT);
            }
        }
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
        // Jury lanes are drawn, never claimed: whoever could claim one could choose to judge.
        if (lane >= job.replication) revert MarketBadLane(jobId, lane);
        if (job.cancelledAt != 0) revert MarketJobCancelled(jobId);
        leaseId = ++_leaseCount;
        uint256 commitDeadline = block.timestamp + job.leaseLength;
        if (commitDeadline > job.deadline) revert MarketClaimClosed(jobId, job.deadline, commitDeadline);
        // A replica claimed after another one revealed could copy it.
        if (_revealedElsewhere(jobId, job, lane, firstTile, count)) revert MarketTileRevealed(jobId, firstTile);
        if (!_admits(job, msg.sender)) _revertReputation(job);
        job.reservedSlots += count;
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
        uint256 jobId = l.jobId;
        Job storage job = _jobs[jobId];
        uint256 lane = l.lane;
        if (lane < job.replication) {
            // Another lane's revealed root is public: committing to it now would be a copy.
            if (_revealedElsewhere(jobId, job, lane, l.firstTile, l.count)) revert MarketTileRevealed(jobId, l.firstTile);
            job.committedSlots += l.count;
        } else {
            _contests[_tieLanes[jobId][lane]].committedSeats += 1;
        }
        l.status = LeaseStatus.Committed;
        l.digest = commitment;
        emit Committed(leaseId, jobId, msg.sender, commitment);
    }

    /// @inheritdoc IRenderMarket
    function reveal(uint256 leaseId, bytes32 root, bytes calldata resultCid, bytes32 salt) external {
        Lease storage l = _workerLease(leaseId, LeaseStatus.Committed);
        uint256 commitDeadline = l.commitDeadline;
        uint256 jobId = l.jobId;
        Job storage job = _jobs[jobId];
        {
            uint256 revealDeadline = _revealDeadlineOf(job, l);
            if (block.timestamp > revealDeadline) revert MarketLeaseExpired(leaseId, revealDeadline, block.timestamp);
        }
        if (root == bytes32(0)) revert MarketZeroRoot(leaseId);
        if (resultCid.length == 0 || resultCid.length > MAX_CID_LENGTH) {
            revert MarketBadCid(resultCid.length, MAX_CID_LENGTH);
        }
        bytes32 computed = keccak256(abi.encode(root, msg.sender, salt));
        if (computed != l.digest) revert MarketCommitmentMismatch(leaseId, l.digest, computed);

        uint256 lane = l.lane;
        uint256 count = l.count;
        if (lane < job.replication) {
            uint256 total = uint256(job.tileCount) * job.replication;
            if (block.timestamp <= commitDeadline && job.committedSlots < total) {
                revert MarketRevealTooEarly(leaseId, job.committedSlots, total, commitDeadline);
            }
            if (job.replication > 1) _recordReveal(jobId, lane, l.firstTile, count);
        } else {
            _revealJuror(leaseId, _contests[_tieLanes[jobId][lane]], job.leaseLength);
        }
        // A juror may reveal a root equal to a contested one: honest replicas that ran the same
        // FFT plans are bit-identical (fhe_core/AGREEMENT.md), so equality is no evidence.
        l.digest = root;
        // forge-lint: disable-next-line(unsafe-typecast)
        l.revealedAt = uint40(block.timestamp);
        l.status = LeaseStatus.Revealed;
        _endWork(msg.sender, count);
        emit Revealed(leaseId, jobId, msg.sender, root, resultCid);
    }

    /*//////////////////////////////////////////////////////////////
                             ADVERTISEMENTS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRenderMarket
    function advertise(bytes32 kernelId, uint32 msPerTile) external {
        Advertisement storage a = _adverts[msg.sender][kernelId];
        a.msPerTile = msPerTile;
        // forge-lint: disable-next-line(unsafe-typecast)
        a.updatedAt = uint40(block.timestamp); // a timestamp
        emit WorkerAdvertised(msg.sender, kernelId, msPerTile);
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
    function drawJury(uint256) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function proveFar(uint256, uint8, Opening[] calldata) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function proveReplicaFar(uint256, uint256, Opening[] calldata) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function challengeAvailability(uint256, uint32, uint32[] calldata) external payable returns (uint256) {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function answerAvailability(uint256, uint32[] calldata, bytes32[] calldata, bytes32[][] calldata) external {
        _delegateToFaults();
    }

    /// @inheritdoc IRenderMarket
    function resolveAvailability(uint256) external {
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
        p.jurySize = uint8(_JURY_SIZE);
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
    function jurors(uint256 contestId) external view returns (uint256[] memory leaseIds) {
        Contest storage c = _contest(contestId);
        uint256 n = c.seated;
        leaseIds = new uint256[](n);
        for (uint256 seat; seat < n; ++seat) {
            leaseIds[seat] = _jurors[contestId][seat]; // <= MAX_JURY seats
        }
    }

    /// @inheritdoc IRenderMarket
    function advertisement(address worker, bytes32 kernelId) external view returns (uint32 msPerTile, uint40 updatedAt) {
        Advertisement storage a = _adverts[worker][kernelId];
        return (a.msPerTile, a.updatedAt);
    }

    /// @inheritdoc IRenderMarket
    function workerProfiles(bytes32 kernelId, uint256 start, uint256 count)
        external
        view
        returns (WorkerProfile[] memory profiles)
    {
        uint256 members = _poolCount; // <= DRAW_POOL_SIZE: the loop below is bounded by it
        if (start >= members) return profiles;
        if (count > members - start) count = members - start;
        profiles = new WorkerProfile[](count);
        for (uint256 k; k < count; ++k) {
            WorkerProfile memory row = profiles[k]; // zeroed by `new`; filled field by field
            address worker = _poolMember[start + k + 1]; // pool indices count from 1
            WorkerInfo storage w = _workers[worker];
            row.worker = worker;
            row.stake = w.stake;
            row.capacity = w.capacity;
            row.activeTiles = w.activeTiles;
            row.completed = w.completed;
            row.faults = w.faults;
            Advertisement storage a = _adverts[worker][kernelId];
            row.msPerTile = a.msPerTile;
            row.advertisedAt = a.updatedAt;
        }
    }

    /// @inheritdoc IRenderMarket
    function verdict(uint256) external view returns (uint256, uint256) {
        _viewInFaults();
    }

    /// @notice Runs the view in the rest of the call data (after this function's selector) in
    /// MarketFaults on this market's storage. Only this contract calls it, through a static call
    /// to itself: `verdict`, which computes a jury's verdict, lives in MarketFaults, whose verdict
    /// code RenderMarket then does not carry (EIP-3860, see the README).
    function viewInFaults() external {
        if (msg.sender != address(this)) revert MarketNotSelf(msg.sender);
        address target = _FAULTS;
        assembly {
            let size := sub(calldatasize(), 4)
            calldatacopy(0, 4, size)
            let ok := delegatecall(gas(), target, 0, size, 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// @inheritdoc IRenderMarket
    function getAvailabilityChallenge(uint256 challengeId) external view returns (AvailabilityChallenge memory a) {
        a = _challenges[challengeId];
        if (a.status == AvailabilityStatus.None) revert MarketUnknownChallenge(challengeId);
    }

    /// @inheritdoc IRenderMarket
    function openChallenge(uint256 leaseId) external view returns (uint256) {
        return _openChallenges[leaseId];
    }

    /// @inheritdoc IRenderMarket
    function challengeCount() external view returns (uint256) {
        return _challengeCount;
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

    /// @dev Answers the current view call from MarketFaults: a static call to `viewInFaults` with
    /// this call's data appended. Never returns to the caller's Solidity code.
    function _viewInFaults() internal view {
        bytes4 selector = this.viewInFaults.selector;
        assembly {
            let size := calldatasize()
            let p := mload(0x40)
            mstore(p, selector)
            calldatacopy(add(p, 4), 0, size)
            let ok := staticcall(gas(), address(), p, add(size, 4), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// @dev Reverts with the caller's reputation and the job's gate (see `_admits`).
    function _revertReputation(Job storage job) internal view {
        WorkerInfo storage w = _workers[msg.sender];
        revert MarketReputationTooLow(msg.sender, w.completed, w.faults, job.minCompleted, job.maxFaults);
    }

    /// @dev The caller's lease in `expected` status.
    function _workerLease(uint256 leaseId, LeaseStatus expected) internal view returns (Lease storage l) {
        l = _lease(leaseId);
        if (l.worker != msg.sender) revert MarketNotLeaseWorker(leaseId, msg.sender, l.worker);
        if (l.status != expected) revert MarketWrongLeaseStatus(leaseId, l.status, expected);
    }

    /// @dev A juror reveals once every seated juror committed (and no replacement draw is
    /// pending) or once every juror's commit window closed; after the contest's claim deadline in
    /// any case. No juror sees another's root before it committed.
    function _revealJuror(uint256 leaseId, Contest storage c, uint256 leaseLength) internal {
        uint256 jurorDeadline = c.jurorDeadline;
        bool ready =
            !_drawPending(c, leaseLength) && (c.committedSeats == c.seated || block.timestamp > jurorDeadline);
        if (!ready && block.timestamp <= c.claimDeadline) {
            revert MarketRevealTooEarly(leaseId, c.committedSeats, c.seated, jurorDeadline);
        }
        c.revealedSeats += 1;
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
        {
            uint256 challengeId = _openChallenges[leaseId];
            if (challengeId != 0) revert MarketAvailabilityOpen(leaseId, challengeId);
        }
        _requireContestsResolved(jobId, leaseId, l.firstTile, l.count);
        uint256 verified = _verifiedAt(jobId, job, l);
        // Before the challenge window ends, only the client may accept, and only once every
        // replica lane revealed the lease's tiles (see IRenderMarket.settle for why that is safe).
        if (block.timestamp <= verified && (finalizing || !_everyLaneRevealed(jobId, job, l))) {
            revert MarketNotVerified(leaseId, verified, block.timestamp);
        }
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

    /// @dev Every contest on a tile of the lease has resolved: a contest judges every replica of
    /// its tile (proveReplicaFar), not only its sides, so none is paid before it ends.
    function _requireContestsResolved(uint256 jobId, uint256 leaseId, uint256 first, uint256 count) internal view {
        mapping(uint256 => uint256) storage contested = _contested[jobId];
        uint256 last = (first + count - 1) >> 8;
        for (uint256 w = first >> 8; w <= last; ++w) {
            uint256 bits = contested[w] & TileBitmap.rangeMask(first, count, w); // <= two words
            if (bits == 0) continue;
            for (uint256 i; i < 256; ++i) {
                if ((bits >> i) & 1 == 0) continue; // a contested tile: rare, at most 256 steps
                uint256 contestId = _tileContest[jobId][(w << 8) + i];
                if (_contests[contestId].outcome == ContestOutcome.Pending) revert MarketLeaseContested(leaseId, 1);
            }
        }
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
