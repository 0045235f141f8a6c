// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {RenderMarket} from "../../src/RenderMarket.sol";
import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {TileTrees} from "../utils/TileTrees.sol";

/// @title MarketHandler
/// @notice Drives random sequences of every market action for the invariant tests, through a
/// fixed set of actors: six workers (four honest, two forging different garbage), two
/// clients and a keeper who runs the permissionless exits. Tie-breakers are always honest (the
/// protocol's fresh-worker assumption). Actions whose preconditions fail are skipped, so most
/// calls do something. Ghost variables track deposits, withdrawals, reclaims, the tiles a
/// contest without tie-breaker refunded, and what each client's cancel refunded.
contract MarketHandler is CommonBase, StdCheats, StdUtils {
    RenderMarket internal immutable market;
    IRenderMarket.Params internal params;

    address[6] internal workers;
    address[2] internal clients;
    address internal keeper;

    uint256[] internal jobIds;
    uint256[] internal leaseIds;
    uint256[] internal contestIds;

    uint8 internal constant LEAF_DEPTH = 1;

    /// @dev Forgery kind of each lease's output (TileTrees): 0 honest, 1 or 2 forged.
    mapping(uint256 leaseId => uint8) public forgery;
    /// @dev Wei that entered the market (stakes, escrows, bonds) and left it (withdrawals).
    uint256 public ghostIn;
    uint256 public ghostOut;
    /// @dev Leases of each worker that were reclaimed (missed commit or reveal).
    mapping(address worker => uint256) public ghostReclaims;
    /// @dev Tiles of a lease refunded by a disagreement that found no tie-breaker.
    mapping(uint256 leaseId => uint256) public ghostExempt;
    mapping(uint256 contestId => bool) internal outcomeSeen;
    /// @dev Leases their worker walks away from (never commits, or commits and never reveals).
    mapping(uint256 leaseId => bool) internal abandoned;
    /// @dev Every lease of each job.
    mapping(uint256 jobId => uint256[]) internal leasesOf;
    /// @dev Replica-lane leases of each job that revealed (candidates for disagreement proofs).
    mapping(uint256 jobId => uint256[]) internal revealedOf;
    mapping(bytes32 action => uint256) public calls;
    /// @dev Cancels whose refund differed from the job's unreserved escrow just before (must stay 0).
    uint256 public ghostBadCancels;

    constructor(RenderMarket market_) {
        market = market_;
        params = market_.params();
        for (uint256 i; i < 6; ++i) {
            workers[i] = makeAddr(string.concat("worker", vm.toString(i)));
            vm.deal(workers[i], 1e6 ether);
        }
        clients = [makeAddr("client0"), makeAddr("client1")];
        keeper = makeAddr("keeper");
        vm.deal(clients[0], 1e6 ether);
        vm.deal(clients[1], 1e6 ether);
    }

    /*//////////////////////////////////////////////////////////////
                            VIEWS FOR THE TESTS
    //////////////////////////////////////////////////////////////*/

    function jobs() external view returns (uint256[] memory) {
        return jobIds;
    }

    function leases() external view returns (uint256[] memory) {
        return leaseIds;
    }

    function contests() external view returns (uint256[] memory) {
        return contestIds;
    }

    function actors() public view returns (address[] memory a) {
        a = new address[](9);
        for (uint256 i; i < 6; ++i) {
            a[i] = workers[i];
        }
        (a[6], a[7], a[8]) = (clients[0], clients[1], keeper);
    }

    function isHonest(address worker) public view returns (bool) {
        return worker == workers[0] || worker == workers[1] || worker == workers[2] || worker == workers[3];
    }

    /*//////////////////////////////////////////////////////////////
                            WORKER ACTIONS
    //////////////////////////////////////////////////////////////*/

    function stake(uint256 w, uint256 amount, uint256 capacity) external {
        address worker = workers[w % 6];
        amount = bound(amount, params.minStake, 2 ether);
        capacity = bound(capacity, 1, 16);
        vm.prank(worker);
        market.stake{value: amount}(uint32(capacity));
        ghostIn += amount;
        ++calls["stake"];
    }

    function claim(uint256 w, uint256 j, uint256 lane, uint256 from, uint256 count) external {
        // One claim in eight may land on a cancelled job (to see it refused); the rest look for work.
        uint256 jobId = _pickOpenJob(j, (count >> 12) % 8 == 0);
        if (jobId == 0) return;
        address worker = workers[w % 6];
        IRenderMarket.Job memory job = market.getJob(jobId);
        lane = lane % job.replication;
        if (job.cancelledAt != 0) {
            // A cancelled job's replica lanes refuse every claim, whatever the tiles.
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobCancelled.selector, jobId));
            vm.prank(worker);
            market.claim(jobId, uint32(lane), uint32(from % job.tileCount), 1);
            ++calls["claimRefused"];
            return;
        }
        (uint32 first, uint16 n) =
            market.freeRange(jobId, uint32(lane), worker, uint32(from % job.tileCount), uint16(bound(count, 1, 4)));
        if (n == 0 || !_canLock(worker, n)) return;
        vm.prank(worker);
        uint256 leaseId = market.claim(jobId, uint32(lane), first, n);
        leaseIds.push(leaseId);
        leasesOf[jobId].push(leaseId);
        forgery[leaseId] = isHonest(worker) ? 0 : (worker == workers[4] ? 1 : 2);
        abandoned[leaseId] = (count >> 8) % 5 == 0; // one lease in five is never finished
        ++calls["claim"];
    }

    /// @dev Commits up to three claimed leases (their workers are prompt; abandoned ones are not).
    function commit(uint256 l) external {
        for (uint256 k; k < 3; ++k) {
            (uint256 leaseId, IRenderMarket.Lease memory lease) =
                _pickLease((l >> 2) + k, IRenderMarket.LeaseStatus.Claimed);
            if (leaseId == 0) return;
            if (block.timestamp > lease.commitDeadline) continue;
            if (abandoned[leaseId] && (l >> 8) % 2 == 0) continue; // half of them never commit
            bytes32 commitment = keccak256(abi.encode(_root(leaseId, lease), lease.worker, _salt(leaseId)));
            vm.prank(lease.worker);
            market.commit(leaseId, commitment);
            ++calls["commit"];
        }
    }

    /// @dev Reveals up to three committed leases that may reveal now.
    function reveal(uint256 l) external {
        for (uint256 k; k < 3; ++k) {
            (uint256 leaseId, IRenderMarket.Lease memory lease) =
                _pickLease((l >> 2) + k, IRenderMarket.LeaseStatus.Committed);
            if (leaseId == 0) return;
            if (block.timestamp > lease.commitDeadline + params.revealWindow || abandoned[leaseId]) continue;
            IRenderMarket.Job memory job = market.getJob(lease.jobId);
            if (
                lease.lane < job.replication && block.timestamp <= lease.commitDeadline
                    && job.committedSlots < uint256(job.tileCount) * job.replication
            ) continue;
            bytes32 root = _root(leaseId, lease);
            vm.prank(lease.worker);
            market.reveal(leaseId, root, "bafy-result", _salt(leaseId));
            if (lease.lane < job.replication) revealedOf[lease.jobId].push(leaseId);
            // Half the time an (honest) tie-breaker proves the far sides itself: it is paid so.
            else if ((l >> 16) % 2 == 0) _proveFarSides(market.tieBreakerContest(lease.jobId, lease.lane));
            ++calls["reveal"];
        }
    }

    function requestUnstake(uint256 w, uint256 amount) external {
        if (amount % 4 != 0) return; // rare: workers mostly stay
        address worker = workers[w % 6];
        IStaking.WorkerInfo memory info = market.workerInfo(worker);
        uint256 free = info.stake - info.locked;
        if (free < 2) return;
        vm.prank(worker);
        market.requestUnstake(uint96(bound(amount, 1, free / 2))); // keep most workers working
        ++calls["requestUnstake"];
    }

    function unstake(uint256 w) external {
        address worker = workers[w % 6];
        IStaking.WorkerInfo memory info = market.workerInfo(worker);
        if (info.unbonding == 0 || block.timestamp < info.unbondingEnd) return;
        vm.prank(worker);
        market.unstake();
        ++calls["unstake"];
    }

    /*//////////////////////////////////////////////////////////////
                            CLIENT ACTIONS
    //////////////////////////////////////////////////////////////*/

    function postJob(uint256 c, uint256 tiles, uint256 replication, uint256 reward, uint256 lease, uint256 slack)
        external
    {
        if (_liveJobs() >= 3) return; // few open jobs, so leases meet
        // Small jobs with short leases, mostly replicated: replicas of a tile meet often.
        tiles = bound(tiles, 1, 4);
        replication = [1, 2, 2, 3][replication % 4];
        reward = bound(reward, 1e12, 1e15);
        lease = bound(lease, 10 minutes, 40 minutes);
        uint256 deadline = block.timestamp + lease + bound(slack, 0, 4 hours);
        uint256 escrow = tiles * replication * reward;
        vm.prank(clients[c % 2]);
        uint256 jobId = market.postJob{value: escrow}(
            "bafy-manifest",
            keccak256("kernel"),
            uint32(tiles),
            uint8(replication),
            uint96(reward),
            uint32(lease),
            uint40(deadline),
            0,
            LEAF_DEPTH
        );
        jobIds.push(jobId);
        ghostIn += escrow;
        ++calls["postJob"];
    }

    function settle(uint256 j) external {
        if ((j >> 8) % 2 == 0) return; // clients are often slow: finalize runs too
        (uint256 jobId, uint256[] memory ready) = _pickSettleable(j, false);
        if (jobId == 0) return;
        _countForfeited(ready);
        vm.prank(market.getJob(jobId).client);
        market.settle(jobId, ready);
        ++calls["settle"];
    }

    /// @dev Now and then a client cancels a job of its own before the deadline: the refund must
    /// be exactly the escrow no live lease reserved.
    function cancelJob(uint256 j) external {
        if (jobIds.length == 0 || j % 4 != 0) return; // most jobs run to their end
        uint256 jobId = jobIds[(j >> 2) % jobIds.length];
        IRenderMarket.Job memory job = market.getJob(jobId);
        if (job.cancelledAt != 0 || block.timestamp > job.deadline) return;
        uint256 free = job.escrow - uint256(job.reservedSlots) * job.rewardPerTileReplica;
        vm.prank(job.client);
        uint256 refunded = market.cancelJob(jobId);
        if (refunded != free || market.refundable(jobId) != 0) ++ghostBadCancels;
        ++calls["cancelJob"];
    }

    function dispute(uint256 l, uint256 tileSeed) external {
        // Disputes are rare next to replica comparisons (each tile is contested only once).
        if (tileSeed % 4 != 0) return;
        (uint256 leaseId, IRenderMarket.Lease memory lease) = _pickLease(l, IRenderMarket.LeaseStatus.Revealed);
        if (leaseId == 0) return;
        IRenderMarket.Job memory job = market.getJob(lease.jobId);
        if (lease.lane >= job.replication) return;
        if (block.timestamp > market.verifiedAt(leaseId) + params.acceptanceWindow) return;
        uint32 tile = uint32(lease.firstTile + (tileSeed >> 2) % lease.count);
        if (_contested(lease.jobId, tile)) return;
        vm.prank(job.client);
        uint256 contestId = market.dispute{value: params.disputeBond}(lease.jobId, tile, leaseId);
        contestIds.push(contestId);
        ghostIn += params.disputeBond;
        ++calls["dispute"];
    }

    /*//////////////////////////////////////////////////////////////
                         PERMISSIONLESS ACTIONS
    //////////////////////////////////////////////////////////////*/

    function reclaim(uint256 l) external {
        if (leaseIds.length == 0) return;
        uint256 leaseId = leaseIds[l % leaseIds.length];
        if (!_reclaimable(leaseId)) return;
        address worker = market.getLease(leaseId).worker;
        vm.prank(keeper);
        market.reclaim(leaseId);
        ++ghostReclaims[worker];
        ++calls["reclaim"];
    }

    function proveDisagreement(uint256 j, uint256 seed) external {
        for (uint256 k; k < jobIds.length; ++k) {
            if (_proveIn(jobIds[(j % jobIds.length + k) % jobIds.length], seed)) return;
        }
    }

    /// @dev Two revealed replicas of the job in different lanes, with different outputs, sharing
    /// a tile: proves them far apart on it.
    function _proveIn(uint256 jobId, uint256 seed) internal returns (bool) {
        uint256[] storage revealed = revealedOf[jobId];
        uint256 n = revealed.length;
        for (uint256 x; x < n; ++x) {
            uint256 a = revealed[(seed % n + x) % n];
            IRenderMarket.Lease memory la = market.getLease(a);
            if (la.status != IRenderMarket.LeaseStatus.Revealed) continue;
            for (uint256 y; y < n; ++y) {
                uint256 b = revealed[y];
                IRenderMarket.Lease memory lb = market.getLease(b);
                if (lb.status != IRenderMarket.LeaseStatus.Revealed || lb.lane == la.lane || forgery[a] == forgery[b]) {
                    continue;
                }
                if (_tryProve(a, la, b, lb)) return true;
            }
        }
        return false;
    }

    /// @dev Proves a and b far apart on their first shared, uncontested tile, if in time.
    function _tryProve(uint256 a, IRenderMarket.Lease memory la, uint256 b, IRenderMarket.Lease memory lb)
        internal
        returns (bool)
    {
        uint256 latest = la.revealedAt > lb.revealedAt ? la.revealedAt : lb.revealedAt;
        if (block.timestamp > latest + params.challengeWindow) return false;
        uint256 lo = la.firstTile > lb.firstTile ? la.firstTile : lb.firstTile;
        uint256 hi = _min(uint256(la.firstTile) + la.count, uint256(lb.firstTile) + lb.count);
        for (uint256 tile = lo; tile < hi; ++tile) {
            if (_contested(la.jobId, tile)) continue;
            IRenderMarket.Opening[] memory o = _openings(a, la, b, lb, uint32(tile));
            vm.prank(keeper);
            contestIds.push(market.proveDisagreement(la.jobId, uint32(tile), a, b, o));
            ++calls["proveDisagreement"];
            return true;
        }
        return false;
    }

    function claimTieBreaker(uint256 c, uint256 w) external {
        if (contestIds.length == 0) return;
        uint256 contestId = contestIds[c % contestIds.length];
        IRenderMarket.Contest memory k = market.getContest(contestId);
        if (k.outcome != IRenderMarket.ContestOutcome.Pending || k.leaseT != 0 || block.timestamp > k.claimDeadline) {
            return;
        }
        for (uint256 i; i < 4; ++i) {
            address worker = workers[(w % 4 + i) % 4]; // honest workers only
            bool holds = (market.heldBitmap(k.jobId, worker, k.tile >> 8) >> (k.tile & 255)) & 1 == 1;
            if (holds) continue;
            if (!_canLock(worker, 1)) {
                // A fresh worker stakes to take the slot.
                vm.prank(worker);
                market.stake{value: 1 ether}(16);
                ghostIn += 1 ether;
                if (!_canLock(worker, 1)) continue;
            }
            vm.prank(worker);
            uint256 leaseId = market.claim(k.jobId, k.lane, k.tile, 1);
            leaseIds.push(leaseId);
            leasesOf[k.jobId].push(leaseId);
            forgery[leaseId] = 0;
            ++calls["claimTieBreaker"];
            return;
        }
    }

    function proveFar(uint256 c, uint256 side) external {
        if (contestIds.length == 0) return;
        uint256 contestId = contestIds[c % contestIds.length];
        IRenderMarket.Contest memory k = market.getContest(contestId);
        if (k.outcome != IRenderMarket.ContestOutcome.Pending || k.leaseT == 0) return;
        IRenderMarket.Lease memory lt = market.getLease(k.leaseT);
        if (lt.status != IRenderMarket.LeaseStatus.Revealed) return;
        if (block.timestamp > lt.revealedAt + params.challengeWindow) return;
        side = k.kind == IRenderMarket.ContestKind.Dispute ? 0 : side % 2;
        if ((k.farMask >> side) & 1 == 1) return;
        uint256 s = side == 0 ? k.leaseA : k.leaseB;
        if (forgery[s] == forgery[k.leaseT]) return; // not far: the proof would fail
        IRenderMarket.Opening[] memory o = _openings(s, market.getLease(s), k.leaseT, lt, k.tile);
        vm.prank(keeper);
        market.proveFar(contestId, uint8(side), o);
        ++calls["proveFar"];
    }

    /// @dev Proves every side of the contest that is far from its revealed tie-breaker.
    function _proveFarSides(uint256 contestId) internal {
        IRenderMarket.Contest memory k = market.getContest(contestId);
        IRenderMarket.Lease memory lt = market.getLease(k.leaseT);
        uint256 sides = k.kind == IRenderMarket.ContestKind.Dispute ? 1 : 2;
        for (uint256 side; side < sides; ++side) {
            uint256 leaseId = side == 0 ? k.leaseA : k.leaseB;
            if (forgery[leaseId] == forgery[k.leaseT]) continue;
            IRenderMarket.Opening[] memory o = _openings(leaseId, market.getLease(leaseId), k.leaseT, lt, k.tile);
            vm.prank(lt.worker);
            market.proveFar(contestId, uint8(side), o);
            ++calls["proveFar"];
        }
    }

    function resolveContest(uint256 c) external {
        uint256 n = contestIds.length;
        uint256 contestId;
        for (uint256 i; i < n && contestId == 0; ++i) {
            uint256 id = contestIds[(c % n + i) % n];
            if (_resolvable(id)) contestId = id;
        }
        // Half the time the keeper waits for the next contest that time alone will decide.
        if (contestId == 0 && (c >> 8) % 2 == 0) contestId = _waitForAContest();
        if (contestId == 0) return;
        vm.prank(keeper);
        market.resolveContest(contestId);
        _recordOutcome(contestId);
        ++calls["resolveContest"];
    }

    function finalize(uint256 j) external {
        (uint256 jobId, uint256[] memory ready) = _pickSettleable(j, true);
        if (jobId == 0) return;
        _countForfeited(ready);
        vm.prank(keeper);
        market.finalize(jobId, ready);
        ++calls["finalize"];
    }

    function refund(uint256 j) external {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[j % jobIds.length];
        IRenderMarket.Job memory job = market.getJob(jobId);
        // A cancelled job refunds what its leases free at once; any other job after its deadline.
        if ((job.cancelledAt == 0 && block.timestamp <= job.deadline) || market.refundable(jobId) == 0) return;
        if (block.timestamp <= job.deadline) ++calls["refundBeforeDeadline"];
        vm.prank(keeper);
        market.refund(jobId);
        ++calls["refund"];
    }

    function withdraw(uint256 a) external {
        address[] memory all = actors();
        address account = all[a % all.length];
        uint256 amount = market.pendingBalance(account);
        if (amount == 0) return;
        vm.prank(account);
        market.withdraw();
        ghostOut += amount;
        ++calls["withdraw"];
    }

    /// @dev Mostly short steps (deadlines are hours apart), now and then a long one.
    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, seconds_ % 8 == 0 ? 3 hours : 15 minutes));
        ++calls["warp"];
    }

    /*//////////////////////////////////////////////////////////////
                         DRAIN (AFTER EACH RUN)
    //////////////////////////////////////////////////////////////*/

    /// @notice Past every deadline, runs every permissionless exit, unstakes and withdraws all.
    function drain() external {
        vm.warp(block.timestamp + 30 days);
        for (uint256 i; i < leaseIds.length; ++i) {
            if (_reclaimable(leaseIds[i])) {
                ++ghostReclaims[market.getLease(leaseIds[i]).worker];
                vm.prank(keeper);
                market.reclaim(leaseIds[i]);
            }
        }
        for (uint256 i; i < contestIds.length; ++i) {
            if (market.getContest(contestIds[i]).outcome == IRenderMarket.ContestOutcome.Pending) {
                vm.prank(keeper);
                market.resolveContest(contestIds[i]);
                _recordOutcome(contestIds[i]);
            }
        }
        for (uint256 i; i < jobIds.length; ++i) {
            uint256[] memory ready = _settleable(jobIds[i], true);
            if (ready.length > 0) {
                _countForfeited(ready);
                vm.prank(keeper);
                market.finalize(jobIds[i], ready);
            }
            if (market.refundable(jobIds[i]) > 0) {
                vm.prank(keeper);
                market.refund(jobIds[i]);
            }
        }
        for (uint256 i; i < 6; ++i) {
            IStaking.WorkerInfo memory info = market.workerInfo(workers[i]);
            if (info.stake > 0) {
                vm.prank(workers[i]);
                market.requestUnstake(info.stake);
            }
        }
        vm.warp(block.timestamp + params.unbondingDelay);
        for (uint256 i; i < 6; ++i) {
            if (market.workerInfo(workers[i]).unbonding > 0) {
                vm.prank(workers[i]);
                market.unstake();
            }
        }
        address[] memory all = actors();
        for (uint256 i; i < all.length; ++i) {
            uint256 amount = market.pendingBalance(all[i]);
            if (amount > 0) {
                vm.prank(all[i]);
                market.withdraw();
                ghostOut += amount;
            }
        }
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _salt(uint256 leaseId) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", leaseId));
    }

    function _tiles(uint256 leaseId, IRenderMarket.Lease memory l) internal view returns (bytes32[][] memory) {
        return TileTrees.leaseTiles(l.jobId, l.firstTile, l.count, LEAF_DEPTH, l.worker, forgery[leaseId]);
    }

    function _root(uint256 leaseId, IRenderMarket.Lease memory l) internal view returns (bytes32) {
        return TileTrees.leaseRoot(_tiles(leaseId, l));
    }

    /// @dev Opens every leaf of `tile` against leases a (as A) and b (as B).
    function _openings(uint256 a, IRenderMarket.Lease memory la, uint256 b, IRenderMarket.Lease memory lb, uint32 tile)
        internal
        view
        returns (IRenderMarket.Opening[] memory o)
    {
        bytes32[][] memory ta = _tiles(a, la);
        bytes32[][] memory tb = _tiles(b, lb);
        uint256 offA = tile - la.firstTile;
        uint256 offB = tile - lb.firstTile;
        o = new IRenderMarket.Opening[](uint256(1) << LEAF_DEPTH);
        for (uint256 i; i < o.length; ++i) {
            o[i].leaf = uint32(i);
            o[i].leafA = ta[offA][i];
            o[i].leafB = tb[offB][i];
            o[i].proofA = TileTrees.proof(ta, offA, i);
            o[i].proofB = TileTrees.proof(tb, offB, i);
        }
    }

    function _pickLease(uint256 seed, IRenderMarket.LeaseStatus status)
        internal
        view
        returns (uint256 leaseId, IRenderMarket.Lease memory lease)
    {
        uint256 n = leaseIds.length;
        // The 64 latest leases from a random start: older ones have mostly ended.
        uint256 window = n < 64 ? n : 64;
        for (uint256 i; i < window; ++i) {
            uint256 id = leaseIds[n - window + (seed % window + i) % window];
            lease = market.getLease(id);
            if (lease.status == status) return (id, lease);
        }
        return (0, lease);
    }

    /// @dev Counts leases settled with forfeited tiles (a contest's whole life was exercised).
    function _countForfeited(uint256[] memory ready) internal {
        for (uint256 i; i < ready.length; ++i) {
            if (market.getLease(ready[i]).forfeitedCount > 0) ++calls["settledWithForfeits"];
        }
    }

    function _min(uint256 x, uint256 y) internal pure returns (uint256) {
        return x < y ? x : y;
    }

    /// @dev A job whose claim window is open, searching from `seed`, not cancelled unless
    /// `cancelled` allows it; 0 if none.
    function _pickOpenJob(uint256 seed, bool cancelled) internal view returns (uint256) {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 jobId = jobIds[(seed % n + i) % n];
            IRenderMarket.Job memory job = market.getJob(jobId);
            if (job.cancelledAt != 0 && !cancelled) continue;
            if (block.timestamp + job.leaseLength <= job.deadline) return jobId;
        }
        return 0;
    }

    function _liveJobs() internal view returns (uint256 n) {
        for (uint256 i; i < jobIds.length; ++i) {
            IRenderMarket.Job memory job = market.getJob(jobIds[i]);
            if (job.deadline > block.timestamp && job.cancelledAt == 0) ++n;
        }
    }

    function _canLock(address worker, uint256 tiles) internal view returns (bool) {
        IStaking.WorkerInfo memory info = market.workerInfo(worker);
        return info.stake >= params.minStake && info.activeTiles + tiles <= info.capacity
            && info.stake - info.locked >= tiles * params.collateralPerTile;
    }

    function _contested(uint256 jobId, uint256 tile) internal view returns (bool) {
        return (market.contestedBitmap(jobId, tile >> 8) >> (tile & 255)) & 1 == 1;
    }

    function _reclaimable(uint256 leaseId) internal view returns (bool) {
        IRenderMarket.Lease memory l = market.getLease(leaseId);
        if (l.status == IRenderMarket.LeaseStatus.Claimed) return block.timestamp > l.commitDeadline;
        if (l.status == IRenderMarket.LeaseStatus.Committed) {
            return block.timestamp > l.commitDeadline + params.revealWindow;
        }
        return false;
    }

    /// @dev Warps to the moment the first open contest becomes resolvable without any other
    /// action (its tie-breaker's window ends, or its claim window with no tie-breaker); 0 if none.
    function _waitForAContest() internal returns (uint256 contestId) {
        uint256 earliest = type(uint256).max;
        for (uint256 i; i < contestIds.length; ++i) {
            IRenderMarket.Contest memory k = market.getContest(contestIds[i]);
            if (k.outcome != IRenderMarket.ContestOutcome.Pending) continue;
            uint256 at;
            if (k.leaseT == 0) {
                at = k.claimDeadline + 1;
            } else {
                IRenderMarket.Lease memory t = market.getLease(k.leaseT);
                if (t.status != IRenderMarket.LeaseStatus.Revealed) continue;
                at = t.revealedAt + params.challengeWindow + 1;
            }
            if (at < earliest) (earliest, contestId) = (at, contestIds[i]);
        }
        if (contestId != 0 && earliest > block.timestamp) vm.warp(earliest);
    }

    function _resolvable(uint256 contestId) internal view returns (bool) {
        IRenderMarket.Contest memory k = market.getContest(contestId);
        if (k.outcome != IRenderMarket.ContestOutcome.Pending) return false;
        if (k.leaseT == 0) return block.timestamp > k.claimDeadline;
        IRenderMarket.Lease memory t = market.getLease(k.leaseT);
        return t.status == IRenderMarket.LeaseStatus.Revealed && block.timestamp > t.revealedAt + params.challengeWindow;
    }

    /// @dev A job with leases ready to settle (or finalize), searching from `seed`.
    function _pickSettleable(uint256 seed, bool finalizing) internal view returns (uint256, uint256[] memory) {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 jobId = jobIds[(seed % n + i) % n];
            uint256[] memory ready = _settleable(jobId, finalizing);
            if (ready.length > 0) return (jobId, ready);
        }
        return (0, new uint256[](0));
    }

    /// @dev Revealed, uncontested replica leases of the job past verification (and past the
    /// acceptance window when `finalizing`), at most MAX_BATCH.
    function _settleable(uint256 jobId, bool finalizing) internal view returns (uint256[] memory ready) {
        uint8 replication = market.getJob(jobId).replication;
        uint256[] storage ofJob = leasesOf[jobId];
        uint256[] memory found = new uint256[](ofJob.length);
        uint256 n;
        for (uint256 i; i < ofJob.length && n < 128; ++i) {
            IRenderMarket.Lease memory l = market.getLease(ofJob[i]);
            if (l.status != IRenderMarket.LeaseStatus.Revealed || l.lane >= replication || l.openContests != 0) {
                continue;
            }
            uint256 v = market.verifiedAt(ofJob[i]);
            if (block.timestamp <= (finalizing ? v + params.acceptanceWindow : v)) continue;
            found[n++] = ofJob[i];
        }
        ready = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            ready[i] = found[i];
        }
    }

    function _recordOutcome(uint256 contestId) internal {
        if (outcomeSeen[contestId]) return;
        outcomeSeen[contestId] = true;
        IRenderMarket.Contest memory k = market.getContest(contestId);
        if (
            k.kind == IRenderMarket.ContestKind.Disagreement
                && k.outcome == IRenderMarket.ContestOutcome.NoTieBreaker
        ) {
            ++ghostExempt[k.leaseA];
            ++ghostExempt[k.leaseB];
        }
    }
}
