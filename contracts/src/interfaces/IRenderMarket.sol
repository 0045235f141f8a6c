// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "./IPayments.sol";
import {IStaking} from "./IStaking.sol";

/// @title IRenderMarket
/// @notice The blindframe job market in native ETH: clients escrow rewards for the tiles of a
/// render job, staked workers lease contiguous tile ranges of one replica lane, commit to and
/// reveal a Merkle root over their output coefficients, and get paid once the challenge window
/// passes with no proven disagreement and the client settles (or anyone finalizes after the
/// acceptance window). No admin keys: every parameter is fixed at deployment. Every state has a
/// deadline and a permissionless exit. See contracts/README.md for the state machine.
/// @dev Off-chain code is driven by these events and view functions only.
interface IRenderMarket is IStaking, IPayments {
    /*//////////////////////////////////////////////////////////////
                                 TYPES
    //////////////////////////////////////////////////////////////*/

    /// @notice Deployment parameters, all immutable. Times in seconds, fractions in basis points.
    struct Params {
        uint96 minStake; // least stake a worker must hold to claim
        uint96 collateralPerTile; // stake locked per claimed tile until the lease ends
        uint32 unbondingDelay; // wait between requestUnstake and unstake
        uint32 maxLeaseLength; // upper bound of a job's lease length (the commit window of a lease)
        uint32 revealWindow; // a lease's reveal deadline = its commit deadline + revealWindow
        uint32 challengeWindow; // time after the last reveal of a tile's replicas to prove a disagreement
        uint32 acceptanceWindow; // time after verification in which only the client settles or disputes
        uint32 tieBreakWindow; // time after a contest opens in which a tie-breaker may claim it
        uint16 slashBps; // share of a faulty tile's collateral that is slashed
        uint16 bountyBps; // share of a slash paid to whoever proved the fault
        uint96 disputeBond; // wei a client posts with `dispute`
        uint64 tolerance; // coefficients further apart than this (torus distance) are "far"
        uint16 farCount; // far coefficient pairs that prove a disagreement
        uint8 jurySize; // jurors drawn per contest (odd, 1..MAX_JURY); a strict majority of the revealed ones decides
    }

    /// @notice One job. The manifest CID itself is only in `JobPosted`; `manifestHash` is its keccak256.
    /// @dev Packed in five slots: `cancelledAt` shares the slot of the counters `claim` reads anyway;
    /// the reputation gate shares `escrow`'s.
    struct Job {
        address client;
        uint40 deadline; // replica-lane claims must have their commit deadline by then; refunds after it
        uint32 leaseLength; // commit window of each lease (claim time + leaseLength)
        uint8 replication; // replica lanes 0..replication-1; lanes above are tie-breaker lanes
        uint8 leafDepth; // depth of each tile's Merkle tree (4 * 2^leafDepth coefficients per tile)
        uint8 priority; // scheduling hint for workers, not used on chain
        uint32 tileCount;
        uint96 rewardPerTileReplica;
        uint32 committedSlots; // tile-slots of replica lanes committed (or revealed) now
        uint32 reservedSlots; // tile-slots of replica lanes held by live, unpaid leases
        uint24 contestCount; // contests opened on this job (tie-breaker lane = replication + index); <= tileCount
        uint40 cancelledAt; // 0 while open; when the client cancelled it (no replica claims since; refunds at once)
        uint128 escrow; // wei still held for this job
        uint32 minCompleted; // reputation gate: a claimer (or drawn juror) has had at least this many tiles paid
        uint16 maxFaults; // reputation gate: ... and at most this many faults (NO_FAULT_LIMIT: any number)
        bytes32 manifestHash; // keccak256 of the manifest CID bytes
        bytes32 kernelId;
    }

    /// @notice Life of a lease. Claimed -> Committed -> Revealed -> Settled; Claimed or Committed
    /// -> Reclaimed past its deadline; Revealed -> Forfeited when an availability challenge went
    /// unanswered.
    enum LeaseStatus {
        None,
        Claimed,
        Committed,
        Revealed,
        Settled,
        Reclaimed,
        Forfeited
    }

    /// @notice A contiguous range of tiles of one lane held by one worker.
    struct Lease {
        address worker;
        uint40 commitDeadline; // claim time + the job's lease length
        uint40 revealedAt; // 0 until revealed
        LeaseStatus status;
        uint64 jobId;
        uint32 lane;
        uint32 firstTile;
        uint16 count;
        uint16 forfeitedCount; // tiles of this lease lost in contests (not paid at settlement)
        uint16 openContests; // contests on its tiles not yet resolved (settlement waits for them)
        bytes32 digest; // the commitment while Committed, the Merkle root from Revealed on
        uint256 forfeited; // bit i set: tile firstTile + i was forfeited in a contest
    }

    /// @notice Disagreement: two replicas proven far apart. Dispute: the client challenges one replica.
    enum ContestKind {
        Disagreement,
        Dispute
    }

    /// @notice How a contest ended. AFar/BFar: that side was proven far from the jury's verdict
    /// (only that side). BothFar: both were. NoneFar: neither was. NoTieBreaker: no verdict (no
    /// juror revealed, or no root held by a strict majority of the revealed jurors).
    enum ContestOutcome {
        Pending,
        AFar,
        BFar,
        BothFar,
        NoneFar,
        NoTieBreaker
    }

    /// @notice A contest over one tile, decided by a jury of workers drawn at random (weighted
    /// by stake) after it opened; each juror computes the tile in lane `lane` (one-tile leases).
    struct Contest {
        uint64 jobId;
        uint32 tile;
        uint32 lane; // the jury's lane (juror leases are drawn into it, never claimed)
        uint40 claimDeadline; // last moment a juror may be drawn (open time + tieBreakWindow)
        ContestKind kind;
        ContestOutcome outcome; // Pending while open
        uint8 farMask; // bit 0: side A proven far from the verdict; bit 1: side B
        uint64 leaseA;
        uint64 leaseB; // 0 for a client dispute
        uint64 leaseT; // the verdict's juror lease, stored when the contest resolves (before: see `verdict`)
        address challenger; // who proved the disagreement, or the disputing client
        uint96 bond; // the client's dispute bond (0 for a disagreement)
        address proverA; // who proved side A far from the verdict
        address proverB; // who proved side B far from the verdict
        uint64 drawBlock; // a draw is armed on this block's hash (0: none armed)
        uint8 seated; // seats drawn so far (seats 0..seated-1; a replaced seat keeps its number)
        uint8 committedSeats; // seats whose current juror committed
        uint8 revealedSeats; // seats whose juror revealed
        uint8 rounds; // draws made (the first and replacements), at most MAX_DRAW_ROUNDS
        uint40 jurorDeadline; // the latest commit deadline among the jurors (their reveals wait for it)
        uint40 verdictAt; // when the verdict became final, stored when the contest resolves (before: `verdict`)
    }

    /// @notice Life of an availability challenge.
    enum AvailabilityStatus {
        None,
        Open,
        Answered,
        Failed
    }

    /// @notice A bonded demand that the named leaves of one tile of a revealed lease be opened on
    /// chain by `deadline`.
    struct AvailabilityChallenge {
        uint64 leaseId;
        uint32 tile;
        uint40 deadline;
        AvailabilityStatus status;
        address challenger;
        uint96 bond;
        bytes32 leavesHash; // keccak256(abi.encode(uint32[] leaves))
    }

    /// @notice A worker's advertised speed at one kernel (`advertise`), for quotes and ETAs.
    struct Advertisement {
        uint32 msPerTile; // milliseconds per tile it measured (0: withdrawn or never advertised)
        uint40 updatedAt; // when it advertised it
    }

    /// @notice One draw-pool member as a quote sees it (`workerProfiles`): its account's capacity
    /// and reputation and its advertisement for the kernel asked about.
    struct WorkerProfile {
        address worker;
        uint96 stake;
        uint32 capacity;
        uint32 activeTiles;
        uint64 completed;
        uint32 faults;
        uint32 msPerTile;
        uint40 advertisedAt;
    }

    /// @notice One leaf index of one tile opened against two roots (see contracts/README.md for
    /// the Merkle format). In `proveDisagreement` A and B are the two leases; in `proveFar` A is
    /// the contested side and B is the tie-breaker.
    struct Opening {
        uint32 leaf; // leaf index inside the tile, strictly increasing across openings
        bytes32 leafA; // 4 little-endian uint64 coefficients
        bytes32 leafB;
        bytes32[] proofA; // leafDepth siblings bottom-up, then the lease-tree siblings
        bytes32[] proofB;
    }

    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice A constructor parameter is out of range; `name` says which.
    error MarketBadParameter(string name);

    /// @notice No job, lease or contest with this id.
    error MarketUnknownJob(uint256 jobId);
    error MarketUnknownLease(uint256 leaseId);
    error MarketUnknownContest(uint256 contestId);

    /// @notice postJob: `msg.value` must equal tiles x replication x reward.
    error MarketWrongEscrow(uint256 expected, uint256 sent);
    /// @notice A CID of zero length or longer than MAX_CID_LENGTH.
    error MarketBadCid(uint256 length, uint256 maximum);
    error MarketBadTileCount(uint256 tileCount, uint256 maximum);
    error MarketBadReplication(uint256 replication, uint256 maximum);
    error MarketZeroReward();
    error MarketBadLeaseLength(uint256 leaseLength, uint256 maximum);
    /// @notice The job deadline leaves no time for one lease: it must be at least `earliest`.
    error MarketBadDeadline(uint256 deadline, uint256 earliest);
    error MarketBadLeafDepth(uint256 leafDepth, uint256 maximum);

    /// @notice claim: an empty range, one longer than MAX_LEASE_TILES, or one past the last tile.
    error MarketBadRange(uint256 firstTile, uint256 count, uint256 tileCount);
    /// @notice claim: `lane` is neither a replica lane nor an open tie-breaker lane of the job.
    error MarketBadLane(uint256 jobId, uint256 lane);
    /// @notice claim: the job's reputation gate refuses `worker` (it has had `completed` tiles
    /// paid and `faults` faults; the job asks for at least `minCompleted` and at most `maxFaults`).
    error MarketReputationTooLow(
        address worker, uint256 completed, uint256 faults, uint256 minCompleted, uint256 maxFaults
    );
    /// @notice constructor: the MarketFaults module at `faults` was built with other parameters
    /// (its `paramsHash` is `faultsHash`, these parameters hash to `expected`; 0: no code there).
    error MarketFaultsMismatch(address faults, bytes32 faultsHash, bytes32 expected);
    /// @notice claim: a replica-lane lease would end its commit window after the job deadline.
    error MarketClaimClosed(uint256 jobId, uint256 deadline, uint256 commitDeadline);
    /// @notice claim: some tile of the range is already leased in this lane.
    error MarketTilesTaken(uint256 jobId, uint256 lane, uint256 firstTile, uint256 count);
    /// @notice claim: the worker already holds a replica of some tile of the range (any lane).
    error MarketTileHeld(uint256 jobId, address worker, uint256 firstTile, uint256 count);
    /// @notice claim or commit: a replica of `tile` was already revealed in another lane; a new
    /// replica now could copy it (see contracts/README.md, "Copies").
    error MarketTileRevealed(uint256 jobId, uint256 tile);
    /// @notice postJob: tiles of this depth hold too few coefficient leaves to open `farCount`
    /// far pairs (4 x min(2^leafDepth - 1, MAX_OPENINGS) must reach it; the last leaf is the digest).
    error MarketLeafDepthTooShallow(uint256 leafDepth, uint256 farCount);

    /// @notice Only the lease's worker may do this.
    error MarketNotLeaseWorker(uint256 leaseId, address caller, address worker);
    /// @notice The lease is in `status`, the call needs `expected`.
    error MarketWrongLeaseStatus(uint256 leaseId, LeaseStatus status, LeaseStatus expected);
    /// @notice The lease's commit (or reveal) deadline has passed.
    error MarketLeaseExpired(uint256 leaseId, uint256 deadline, uint256 now);
    error MarketZeroCommitment(uint256 leaseId);
    error MarketZeroRoot(uint256 leaseId);
    /// @notice reveal: keccak256(abi.encode(root, worker, salt)) differs from the commitment.
    error MarketCommitmentMismatch(uint256 leaseId, bytes32 commitment, bytes32 computed);
    /// @notice reveal: not every replica slot has committed and the lease's commit window is open.
    error MarketRevealTooEarly(uint256 leaseId, uint256 committedSlots, uint256 totalSlots, uint256 commitDeadline);
    /// @notice reclaim: the lease's deadline has not passed yet.
    error MarketLeaseNotExpired(uint256 leaseId, uint256 deadline, uint256 now);

    /// @notice The lease belongs to job `leaseJob`, not `jobId`.
    error MarketWrongJob(uint256 leaseId, uint256 leaseJob, uint256 jobId);
    /// @notice The lease does not cover `tile`.
    error MarketTileNotInLease(uint256 leaseId, uint256 tile);
    /// @notice The lease is a tie-breaker lease; only replica-lane leases may do this.
    error MarketNotReplicaLane(uint256 leaseId, uint256 lane);
    error MarketSameLease(uint256 leaseId);
    /// @notice The tile was contested before; each tile is contested at most once.
    error MarketTileAlreadyContested(uint256 jobId, uint256 tile);
    /// @notice The window to prove a disagreement (or far-ness) closed at `deadline`.
    error MarketChallengeClosed(uint256 deadline, uint256 now);
    error MarketBadOpeningCount(uint256 count, uint256 maximum);
    /// @notice Leaf indices must be strictly increasing and below 2^leafDepth.
    error MarketBadLeafIndex(uint256 leaf, uint256 previous, uint256 leaves);
    /// @notice The opening of `leaf` does not verify against lease `leaseId`'s root.
    error MarketBadProof(uint256 leaseId, uint256 leaf);
    /// @notice The openings show `far` far coefficient pairs, fewer than `required`.
    error MarketNotFarEnough(uint256 far, uint256 required);

    error MarketContestResolved(uint256 contestId);
    /// @notice proveFar: side 0 (A) or 1 (B, disagreements only), not yet proven.
    error MarketBadSide(uint256 contestId, uint256 side);
    /// @notice resolveContest: wait until `until` (0: until every juror revealed or missed its deadline).
    error MarketContestPending(uint256 contestId, uint256 until);
    /// @notice drawJury: no draw is armed, or its block (`drawBlock`) is not in the past yet.
    error MarketDrawNotReady(uint256 contestId, uint256 drawBlock, uint256 blockNumber);
    /// @notice drawJury: jurors are drawn until `claimDeadline` only.
    error MarketDrawClosed(uint256 contestId, uint256 claimDeadline, uint256 now);
    /// @notice proveFar / proveReplicaFar: the jury has no final verdict yet (or none at all).
    error MarketNoVerdict(uint256 contestId);
    /// @notice proveReplicaFar: the lease is one of the contest's sides (use proveFar).
    error MarketContestSide(uint256 contestId, uint256 leaseId);

    error MarketUnknownChallenge(uint256 challengeId);
    /// @notice `viewInFaults` is the market's own route to MarketFaults's views.
    error MarketNotSelf(address caller);
    /// @notice The lease has an open availability challenge (`challengeId`).
    error MarketAvailabilityOpen(uint256 leaseId, uint256 challengeId);
    /// @notice The availability challenge is not open (answered or failed already).
    error MarketChallengeNotOpen(uint256 challengeId);
    /// @notice answerAvailability: past the deadline; resolveAvailability: before it.
    error MarketAnswerWindow(uint256 challengeId, uint256 deadline, uint256 now);
    /// @notice answerAvailability: the leaves answered are not the ones challenged.
    error MarketWrongLeaves(uint256 challengeId);

    error MarketNotClient(uint256 jobId, address caller, address client);
    error MarketWrongBond(uint256 expected, uint256 sent);
    /// @notice dispute: the lease's acceptance window closed at `deadline`.
    error MarketDisputeClosed(uint256 leaseId, uint256 deadline, uint256 now);

    error MarketBadBatch(uint256 length, uint256 maximum);
    /// @notice The lease is not verified before `verifiedAt` (its challenge window is open).
    error MarketNotVerified(uint256 leaseId, uint256 verifiedAt, uint256 now);
    /// @notice The lease has unresolved contests.
    error MarketLeaseContested(uint256 leaseId, uint256 openContests);
    /// @notice finalize: the client's acceptance window is open until `until`.
    error MarketAcceptanceOpen(uint256 leaseId, uint256 until, uint256 now);
    /// @notice refund: the job deadline has not passed and the job was not cancelled.
    error MarketJobNotExpired(uint256 jobId, uint256 deadline, uint256 now);
    error MarketNothingToRefund(uint256 jobId);
    /// @notice The client cancelled the job: its replica lanes take no new claims (and it cannot
    /// be cancelled twice). Tie-breaker lanes of its contests stay open.
    error MarketJobCancelled(uint256 jobId);
    /// @notice cancelJob: the job deadline has passed; `refund` returns the unfinished escrow.
    error MarketJobExpired(uint256 jobId, uint256 deadline, uint256 now);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice A job was posted with `escrow` wei. Workers fetch the manifest from `manifestCid`.
    event JobPosted(
        uint256 indexed jobId,
        address indexed client,
        bytes32 indexed kernelId,
        bytes manifestCid,
        uint32 tileCount,
        uint8 replication,
        uint96 rewardPerTileReplica,
        uint32 leaseLength,
        uint40 deadline,
        uint8 priority,
        uint8 leafDepth,
        uint256 escrow
    );

    /// @notice `worker` leased tiles [firstTile, firstTile + count) of `lane` (tie-breaker lanes: count 1).
    event TilesClaimed(
        uint256 indexed leaseId,
        uint256 indexed jobId,
        address indexed worker,
        uint32 lane,
        uint32 firstTile,
        uint16 count,
        uint40 commitDeadline,
        uint40 revealDeadline
    );

    /// @notice The lease's worker committed to `commitment` = keccak256(abi.encode(root, worker, salt)).
    event Committed(uint256 indexed leaseId, uint256 indexed jobId, address indexed worker, bytes32 commitment);

    /// @notice The lease's worker revealed its Merkle `root` and the CID of its result bundle.
    event Revealed(
        uint256 indexed leaseId, uint256 indexed jobId, address indexed worker, bytes32 root, bytes resultCid
    );

    /// @notice An expired lease ended: its tiles reopened in their lane, its worker was slashed.
    /// @param committed True for a missed reveal, false for a missed commit.
    event LeaseReclaimed(uint256 indexed leaseId, uint256 indexed jobId, address indexed caller, bool committed);

    /// @notice Two replicas of `tile` were proven far apart; contest `contestId` decides.
    event DisagreementProven(
        uint256 indexed contestId,
        uint256 indexed jobId,
        uint32 tile,
        uint256 leaseA,
        uint256 leaseB,
        address challenger,
        uint256 far
    );

    /// @notice The client disputed `tile` of lease `leaseId`, posting `bond`; contest `contestId` decides.
    event Disputed(uint256 indexed contestId, uint256 indexed jobId, uint32 tile, uint256 leaseId, uint256 bond);

    /// @notice A contest's jury lane opened: jurors are drawn into lane `lane` for `tile` until
    /// `claimDeadline` (the first draw is armed on the opening block: see JuryDrawArmed).
    event TieBreakerOpened(
        uint256 indexed contestId, uint256 indexed jobId, uint32 tile, uint32 lane, uint40 claimDeadline
    );

    /// @notice A draw is armed on the hash of block `drawBlock`: anyone calls `drawJury` after it.
    event JuryDrawArmed(uint256 indexed contestId, uint256 indexed jobId, uint64 drawBlock);

    /// @notice `worker` was drawn to seat `seat` of the contest's jury; its lease is `leaseId`.
    event JurorDrawn(
        uint256 indexed contestId, uint256 indexed jobId, uint8 seat, uint256 leaseId, address indexed worker
    );

    /// @notice Lease `leaseId` (a side of the contest, or another replica of its tile) was proven
    /// far from the jury's verdict.
    event FarProven(uint256 indexed contestId, uint256 indexed leaseId, address prover, uint256 far);

    /// @notice Someone demanded that `leaves` of `tile` of lease `leaseId` be opened on chain by `deadline`.
    event AvailabilityChallenged(
        uint256 indexed challengeId,
        uint256 indexed leaseId,
        uint256 indexed jobId,
        uint32 tile,
        uint32[] leaves,
        address challenger,
        uint40 deadline
    );

    /// @notice The challenged leaves were opened; `compensation` wei of the bond paid the answer's gas.
    event AvailabilityAnswered(
        uint256 indexed challengeId, uint256 indexed leaseId, address answerer, uint256 compensation
    );

    /// @notice Nobody opened the leaves in time: the lease is forfeited and its worker slashed.
    event AvailabilityFailed(uint256 indexed challengeId, uint256 indexed leaseId, uint256 indexed jobId);

    /// @notice The contest ended with `outcome` (see ContestOutcome and contracts/README.md).
    event ContestResolved(uint256 indexed contestId, uint256 indexed jobId, uint32 tile, ContestOutcome outcome);

    /// @notice The client settled the lease: `paidTiles` tiles, `amount` wei credited to the worker.
    event LeaseSettled(
        uint256 indexed leaseId, uint256 indexed jobId, address indexed worker, uint256 paidTiles, uint256 amount
    );

    /// @notice Someone finalized the lease after the acceptance window (same effect as settling).
    event LeaseFinalized(
        uint256 indexed leaseId, uint256 indexed jobId, address indexed worker, uint256 paidTiles, uint256 amount
    );

    /// @notice A juror lease ended with its contest; `amount` wei paid (0 if unpaid or slashed).
    event TieBreakerSettled(uint256 indexed leaseId, uint256 indexed contestId, address indexed worker, uint256 amount);

    /// @notice Escrow not owed to any live lease was credited back to the client after the deadline
    /// (or, for a cancelled job, escrow that live leases freed after the cancel).
    event Refunded(uint256 indexed jobId, address indexed client, uint256 amount);

    /// @notice `worker` advertised `msPerTile` milliseconds per tile of `kernelId` (0: withdrawn).
    event WorkerAdvertised(address indexed worker, bytes32 indexed kernelId, uint32 msPerTile);

    /// @notice The client cancelled the job: its replica lanes closed to new claims and
    /// `refunded` wei (every tile-slot no live lease reserved) was credited back to it.
    event JobCancelled(uint256 indexed jobId, address indexed client, uint256 refunded);

    /*//////////////////////////////////////////////////////////////
                            JOBS AND LEASES
    //////////////////////////////////////////////////////////////*/

    /// @notice Posts a job; `msg.value` must be exactly tileCount x replication x rewardPerTileReplica.
    /// @param manifestCid The job manifest's CID bytes (emitted, only its keccak256 is stored).
    /// @param kernelId Which render kernel (and version) the workers run.
    /// @param tileCount Tiles of the frame (1..MAX_TILES).
    /// @param replication Replica lanes (1..MAX_REPLICATION); each tile is computed this many times.
    /// @param rewardPerTileReplica Wei paid per tile per replica.
    /// @param leaseLength Commit window of a lease, seconds (1..maxLeaseLength).
    /// @param deadline Replica-lane leases must commit by then; unfinished escrow is refundable after it.
    /// @param priority Scheduling hint for workers.
    /// @param leafDepth Depth of each tile's Merkle tree (0..MAX_LEAF_DEPTH).
    /// @param minCompleted Reputation gate: a claimer, or a juror drawn for a contest of this
    /// job, must have had at least this many tiles paid (0: no minimum).
    /// @param maxFaults Reputation gate: ... and at most this many faults (NO_FAULT_LIMIT: any).
    /// @return jobId The new job's id (ids start at 1).
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
    ) external payable returns (uint256 jobId);

    /// @notice Advertises the caller's measured speed at `kernelId`: `msPerTile` milliseconds per
    /// tile (0 withdraws it), stamped with the time. Anyone may call; `workerProfiles` lists the
    /// draw pool's members only. Nothing on chain depends on it: it informs quotes and ETAs.
    function advertise(bytes32 kernelId, uint32 msPerTile) external;

    /// @notice The client cancels its job: the replica lanes close to new claims at once, and the
    /// escrow of every tile-slot no live lease reserves is credited back to the client now.
    /// Leases already claimed, committed or revealed go on exactly as before (paid, reclaimed or
    /// contested), and the tie-breaker lanes of its contests stay open, so contests still resolve.
    /// Escrow those leases free later (a reclaim, whose tiles do not reopen, or a contest) is
    /// refundable through `refund` at once, without waiting for the deadline. Cancelling also
    /// brings the job's reveal horizon forward to min(deadline, now + leaseLength) +
    /// revealWindow: no replica lease can commit after that (see `verifiedAt`).
    /// @dev Only the client, once, up to the job deadline (after it, `refund` does the same).
    /// @return refunded The wei credited to the client (0 when live leases reserve every slot).
    function cancelJob(uint256 jobId) external returns (uint256 refunded);

    /// @notice Leases tiles [firstTile, firstTile + count) of replica lane `lane` (< replication)
    /// to the caller, locking count x collateralPerTile of its stake. Needs a job that is not
    /// cancelled, the lease's commit deadline (now + leaseLength) by the job deadline, no tile of
    /// the range revealed in another lane, and a caller the job's reputation gate admits. Jury lanes are never claimed: jurors are drawn.
    /// @param count Tiles in the lease (1..MAX_LEASE_TILES).
    /// @return leaseId The new lease's id (ids start at 1).
    function claim(uint256 jobId, uint32 lane, uint32 firstTile, uint16 count) external returns (uint256 leaseId);

    /// @notice Commits to the lease's result: `commitment` = keccak256(abi.encode(root, worker, salt)).
    /// @dev Only the lease's worker, by the commit deadline, while no other lane revealed a tile of it.
    function commit(uint256 leaseId, bytes32 commitment) external;

    /// @notice Reveals the Merkle root committed to and the CID of the result bundle. Replica
    /// lanes may reveal once every replica slot of the job has committed or once the lease's
    /// commit window has closed; a juror once every seated juror committed and no draw is armed,
    /// or after the contest's claimDeadline. Deadline: the commit deadline + revealWindow.
    function reveal(uint256 leaseId, bytes32 root, bytes calldata resultCid, bytes32 salt) external;

    /// @notice Ends an expired lease (no commit by its commit deadline, or no reveal by its reveal
    /// deadline): its tiles reopen, slashBps of its collateral is slashed, bountyBps of that is
    /// credited to the caller (to the client when the caller is the lease's worker) and the rest
    /// to the client. A juror that missed its commit may be replaced (a new draw is armed). A
    /// claimed replica that could not commit because another lane revealed its tiles first
    /// (copy gate) missed its commit like any other. Anyone may call.
    function reclaim(uint256 leaseId) external;

    /*//////////////////////////////////////////////////////////////
                              CONSENSUS
    //////////////////////////////////////////////////////////////*/

    /// @notice Proves that two revealed replicas of `tile` disagree: the same leaf indices opened
    /// against both roots hold at least farCount far coefficient pairs. Allowed until
    /// challengeWindow after the later of the two reveals. Opens a tie-breaker lane for the tile.
    /// @return contestId The new contest.
    function proveDisagreement(
        uint256 jobId,
        uint32 tile,
        uint256 leaseA,
        uint256 leaseB,
        Opening[] calldata openings
    ) external returns (uint256 contestId);

    /// @notice Draws the contest's empty jury seats, weighted by stake, from the hash of the armed
    /// draw block (fixed after the contest opened, unknown to whoever opened it). Excluded: the
    /// job's client, the sides' workers, seated jurors, holders of a replica of the tile, workers
    /// without collateralPerTile of free stake. Each juror gets a one-tile lease in the jury lane,
    /// committing within the job's leaseLength. Anyone may call, after the draw block and until
    /// claimDeadline; a draw block older than 256 blocks is re-armed instead.
    function drawJury(uint256 contestId) external;

    /// @notice Proves a contested side (0 = A, 1 = B) far from the jury's verdict, within
    /// challengeWindow after the verdict became final. In `openings`, A is the side, B the verdict.
    function proveFar(uint256 contestId, uint8 side, Opening[] calldata openings) external;

    /// @notice Proves another revealed replica lease of the contest's tile (not a side) far from
    /// the verdict, in the same window: it forfeits the tile and is slashed at once. So two lanes
    /// of one operator revealing the same wrong root both lose, though a tile is contested once.
    function proveReplicaFar(uint256 contestId, uint256 leaseId, Opening[] calldata openings) external;

    /// @notice Ends a contest once the verdict's challenge window passed (or no juror was drawn
    /// by claimDeadline) and moves the money of its tile: far sides forfeit and are slashed,
    /// jurors off the verdict are slashed, jurors on it are paid. Anyone may call.
    function resolveContest(uint256 contestId) external;

    /// @notice The client disputes `tile` of a revealed replica lease, posting disputeBond, until
    /// acceptanceWindow after the lease's verification time. Opens a tie-breaker lane for the tile.
    /// @return contestId The new contest.
    function dispute(uint256 jobId, uint32 tile, uint256 leaseId) external payable returns (uint256 contestId);

    /*//////////////////////////////////////////////////////////////
                           DATA AVAILABILITY
    //////////////////////////////////////////////////////////////*/

    /// @notice Demands that `leaves` (1..MAX_OPENINGS, strictly increasing) of `tile` of a revealed
    /// replica lease be opened on chain within revealWindow, posting disputeBond. Anyone may
    /// challenge, once per lease at a time, until the lease's acceptance window ends; the lease
    /// cannot be settled or finalized while the challenge is open.
    /// @return challengeId The new challenge (ids start at 1).
    function challengeAvailability(uint256 leaseId, uint32 tile, uint32[] calldata leaves)
        external
        payable
        returns (uint256 challengeId);

    /// @notice Opens the challenged leaves (`leaves`, the indices challenged) against the lease's
    /// root (proofs as in `Opening.proofA`). Anyone holding the bytes may answer; the answer's gas
    /// (gas used x tx.gasprice, capped at the bond) is credited to the caller out of the bond and
    /// the rest returns to the challenger.
    function answerAvailability(
        uint256 challengeId,
        uint32[] calldata leaves,
        bytes32[] calldata leafData,
        bytes32[][] calldata proofs
    ) external;

    /// @notice After an unanswered challenge's deadline: the lease is Forfeited (no tile of it is
    /// paid), its tiles reopen in their lane, its worker is slashed (fraud), the challenger gets
    /// its bond back and the bounty share. Anyone may call.
    function resolveAvailability(uint256 challengeId) external;

    /*//////////////////////////////////////////////////////////////
                              SETTLEMENT
    //////////////////////////////////////////////////////////////*/

    /// @notice The client accepts verified leases of its job: rewards are credited, collateral
    /// released, reputation counted. At most MAX_BATCH leases. A lease is accepted after
    /// verifiedAt, or earlier once every replica lane revealed its tiles: the challenge window
    /// only hosts disagreement proofs between those replicas, and what an early accept ends is
    /// the client's own recourse. A worker it does not accept keeps its lease Revealed and is paid
    /// by `finalize` after the window; a replica it accepts can no longer be contested, so an
    /// honest worker facing the client's own wrong replica is paid either way and loses only the
    /// bounty that replica's slash would have brought; a contest already open blocks the accept.
    function settle(uint256 jobId, uint256[] calldata leaseIds) external;

    /// @notice Same as `settle`, by anyone, for leases whose acceptance window has passed.
    function finalize(uint256 jobId, uint256[] calldata leaseIds) external;

    /// @notice After the job deadline, or at any time once the client cancelled the job, credits
    /// the client the escrow no live lease can claim (never-claimed, reopened or, after a cancel,
    /// reclaimed slots). Anyone may call; may be called again later.
    /// @return amount The wei credited to the client.
    function refund(uint256 jobId) external returns (uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The deployment parameters.
    function params() external view returns (Params memory);

    /// @notice The MarketFaults module this market delegates its unhappy paths to (reclaim,
    /// proofs, contests, disputes, refunds); created by the market's constructor, it holds no
    /// funds and no state of its own.
    function faultsModule() external view returns (address);

    /// @notice Ids handed out so far: jobs, leases and contests are numbered from 1 to these.
    function counts() external view returns (uint256 jobs, uint256 leases, uint256 contests);

    function getJob(uint256 jobId) external view returns (Job memory);

    function getLease(uint256 leaseId) external view returns (Lease memory);

    function getContest(uint256 contestId) external view returns (Contest memory);

    /// @notice Bits of tiles [256 * word, 256 * word + 256) leased in `lane` (bit i = tile 256 * word + i).
    function laneBitmap(uint256 jobId, uint32 lane, uint256 word) external view returns (uint256);

    /// @notice Bits of tiles of which `worker` holds a replica in some lane (same layout).
    function heldBitmap(uint256 jobId, address worker, uint256 word) external view returns (uint256);

    /// @notice Bits of tiles revealed in replica `lane` (same layout; kept for replication > 1).
    function revealedBitmap(uint256 jobId, uint32 lane, uint256 word) external view returns (uint256);

    /// @notice Bits of tiles that were ever contested (disagreement or dispute; same layout): a
    /// tile is contested at most once.
    function contestedBitmap(uint256 jobId, uint256 word) external view returns (uint256);

    /// @notice The first run of tiles at or after `fromTile` free in `lane` and not held by
    /// `worker` (address(0): ignore holdings), at most `maxCount` long. count = 0: none (always,
    /// in a replica lane of a cancelled job).
    function freeRange(uint256 jobId, uint32 lane, address worker, uint32 fromTile, uint16 maxCount)
        external
        view
        returns (uint32 firstTile, uint16 count);

    /// @notice The contest whose jury lane is `lane` (0 if none).
    function tieBreakerContest(uint256 jobId, uint32 lane) external view returns (uint256 contestId);

    /// @notice What `worker` advertised for `kernelId` ((0, 0): nothing).
    function advertisement(address worker, bytes32 kernelId) external view returns (uint32 msPerTile, uint40 updatedAt);

    /// @notice Draw-pool members `start` .. `start + count - 1` (0-based, in staking order; the
    /// pool holds the first DRAW_POOL_SIZE addresses to stake, those that unstaked included), with
    /// their accounts and advertisements for `kernelId`; fewer (or none) past the pool's end.
    function workerProfiles(bytes32 kernelId, uint256 start, uint256 count)
        external
        view
        returns (WorkerProfile[] memory profiles);

    /// @notice The juror leases of a contest, by seat.
    function jurors(uint256 contestId) external view returns (uint256[] memory leaseIds);

    /// @notice The jury's verdict as of now: `leaseT` a juror lease whose root a strict majority of
    /// the jury (jurySize) revealed (0: none), `fixedAt` when it became final (0: not final yet).
    /// getContest's `leaseT` and `verdictAt` hold the same once the contest resolved.
    function verdict(uint256 contestId) external view returns (uint256 leaseT, uint256 fixedAt);

    function getAvailabilityChallenge(uint256 challengeId) external view returns (AvailabilityChallenge memory);

    /// @notice The open availability challenge of a lease (0 if none).
    function openChallenge(uint256 leaseId) external view returns (uint256 challengeId);

    /// @notice Availability challenges handed out so far (ids 1..this).
    function challengeCount() external view returns (uint256);

    /// @notice When a revealed replica lease counts as verified. At replication 1, when it
    /// revealed: no other replica exists to prove a disagreement against, so no challenge window
    /// runs (the client's acceptance window for disputes and availability challenges still does).
    /// Above it, when its tiles' challenge window ends
    /// (challengeWindow after the latest reveal among the tiles' replicas, or after the job's
    /// reveal horizon while some replica is missing: deadline + revealWindow, or for a cancelled
    /// job min(deadline, cancelledAt + leaseLength) + revealWindow), never later than
    /// challengeWindow after revealedAt + leaseLength + revealWindow: no replica of its tiles can
    /// commit after its reveal, so none can reveal after that. Settlement needs
    /// now > verifiedAt, or every replica lane revealed (see `settle`); finalize and the end of
    /// disputes, now > verifiedAt + acceptanceWindow.
    /// 0 for an unrevealed lease.
    function verifiedAt(uint256 leaseId) external view returns (uint256);

    /// @notice Escrow of the job no live lease can claim (what `refund` would credit after the
    /// deadline, or now if the job was cancelled).
    function refundable(uint256 jobId) external view returns (uint256);

    /// @notice The commitment a worker submits: keccak256(abi.encode(root, worker, salt)).
    function commitmentOf(bytes32 root, address worker, bytes32 salt) external pure returns (bytes32);
}
