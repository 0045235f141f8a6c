// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {RenderMarket} from "../../src/RenderMarket.sol";
import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {TileTrees} from "../utils/TileTrees.sol";
import {GhostLedger} from "./GhostLedger.sol";

/// @title MarketHandler
/// @notice Drives random sequences of every market action for the invariant tests, through a
/// fixed set of actors: six workers (four honest, two forging different garbage), two
/// clients and a keeper who runs the permissionless exits. Juries are drawn from the staked
/// workers (the forgers included: a forging juror outputs its forgery); honest jurors share one
/// root and the two forgers never do, so with two honest revealed jurors the verdict is honest;
/// a lone revealed forger is a forged verdict (counted, and its faults on honest workers
/// excused: outside the honest-majority assumption). Forgers also withhold
/// their result bytes (availability challenges on them go unanswered half the time); honest
/// workers always answer. Actions whose preconditions fail are skipped, so most calls do
/// something. Ghost variables track deposits, withdrawals, faults for missed deadlines, the tiles
/// a contest without verdict refunded, and what each client's cancel refunded; GhostLedger keeps
/// every actor's and every job's books from the rules, action by action.
contract MarketHandler is CommonBase, StdCheats, StdUtils, GhostLedger {
    RenderMarket internal immutable market;
    IRenderMarket.Params internal params;

    address[6] internal workers;
    address[2] internal clients;
    address internal keeper;

    uint256[] internal jobIds;
    uint256[] internal leaseIds;
    uint256[] internal contestIds;
    uint256[] internal challengeIds;

    uint8 internal constant LEAF_DEPTH = 1;

    /// @dev Forgery kind of each lease's output (TileTrees): 0 honest, 1 or 2 forged.
    mapping(uint256 leaseId => uint8) public forgery;
    /// @dev Wei that entered the market (stakes, escrows, bonds) and left it (withdrawals).
    uint256 public ghostIn;
    uint256 public ghostOut;
    /// @dev Faults each worker may have: missed commits or reveals (reclaims, jurors that never
    /// revealed), and any fault from a contest whose verdict was a forger's root (possible when
    /// the honest majority assumption fails, e.g. a lone revealed juror was a forger).
    mapping(address worker => uint256) public ghostReclaims;
    /// @dev Contests whose verdict was a forged root (outside the honest-majority assumption).
    uint256 public ghostDishonestVerdicts;
    /// @dev Tiles of a lease refunded by a disagreement that found no verdict (NoTieBreaker).
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

    constructor(RenderMarket market_) GhostLedger(market_.params()) {
        market = market_;
        params = market_.params();
        for (uint256 i; i < 6; ++i) {
            workers[i] = makeAddr(string.concat("worker", vm.toString(i)));
            _deal(workers[i], 1e6 ether);
        }
        clients = [makeAddr("client0"), makeAddr("client1")];
        keeper = makeAddr("keeper");
        _deal(clients[0], 1e6 ether);
        _deal(clients[1], 1e6 ether);
    }

    /// @dev Gives `account` `amount` more wei, in its wallet and in the ledger.
    function _deal(address account, uint256 amount) internal {
        vm.deal(account, account.balance + amount);
        _ledgerDeal(account, amount);
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

    function challenges() external view returns (uint256[] memory) {
        return challengeIds;
    }

    /// @dev The name of actors()[i], for the per-actor assertions' messages.
    function actorName(uint256 i) external pure returns (string memory) {
        if (i < 6) return string.concat("worker", vm.toString(i));
        return i == 8 ? "keeper" : string.concat("client", vm.toString(i - 6));
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
        _ledgerStake(worker, amount);
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
        // The copy gate: no replica claim on a tile another lane revealed.
        while (n > 0 && _revealedElsewhere(jobId, lane, first, n)) --n;
        if (n == 0) return;
        if (_refusedByGate(jobId, job, worker, uint32(lane), first, n)) return;
        vm.prank(worker);
        uint256 leaseId = market.claim(jobId, uint32(lane), first, n);
        _ledgerClaim(market.getLease(leaseId));
        leaseIds.push(leaseId);
        leasesOf[jobId].push(leaseId);
        forgery[leaseId] = isHonest(worker) ? 0 : (worker == workers[4] ? 1 : 2);
        abandoned[leaseId] = (count >> 8) % 5 == 0; // one lease in five is never finished
        ++calls["claim"];
        // Prompt workers commit at once (a replica must commit before another lane reveals).
        if (!abandoned[leaseId] && (count >> 16) % 4 != 0) {
            IRenderMarket.Lease memory lease = market.getLease(leaseId);
            vm.prank(worker);
            market.commit(leaseId, keccak256(abi.encode(_root(leaseId, lease), worker, _salt(leaseId))));
            ++calls["commit"];
        }
    }

    /// @dev Commits up to three claimed leases (their workers are prompt; abandoned ones are not).
    function commit(uint256 l) external {
        for (uint256 k; k < 3; ++k) {
            (uint256 leaseId, IRenderMarket.Lease memory lease) =
                _pickLease((l >> 2) + k, IRenderMarket.LeaseStatus.Claimed);
            if (leaseId == 0) return;
            if (block.timestamp > lease.commitDeadline) continue;
            if (abandoned[leaseId] && (l >> 8) % 2 == 0) continue; // half of them never commit
            // Overtaken (another lane revealed a tile of it first): it can only be reclaimed.
            if (_revealedElsewhere(lease.jobId, lease.lane, lease.firstTile, lease.count)) continue;
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
            if (block.timestamp > _revealDeadline(lease) || abandoned[leaseId]) continue;
            IRenderMarket.Job memory job = market.getJob(lease.jobId);
            if (lease.lane < job.replication) {
                if (
                    block.timestamp <= lease.commitDeadline
                        && job.committedSlots < uint256(job.tileCount) * job.replication
                ) continue;
            } else if (
                !_jurorMayReveal(_contestLive(market.tieBreakerContest(lease.jobId, lease.lane)), job.leaseLength)
            ) {
                continue;
            }
            bytes32 root = _root(leaseId, lease);
            vm.prank(lease.worker);
            market.reveal(leaseId, root, "bafy-result", _salt(leaseId));
            if (lease.lane < job.replication) {
                revealedOf[lease.jobId].push(leaseId);
                // Half the time a replica's node compares at once (render nodes do, right after a
                // reveal) and proves a disagreement on this job.
                if ((l >> 17) % 2 == 0) _proveIn(lease.jobId, l >> 24);
            } else {
                ++calls["jurorReveal"];
                // Half the time an (honest) juror proves the far leases itself once the verdict is final.
                if ((l >> 16) % 2 == 0) _proveFarSides(market.tieBreakerContest(lease.jobId, lease.lane));
            }
            ++calls["reveal"];
        }
    }

    function requestUnstake(uint256 w, uint256 amount) external {
        if (amount % 4 != 0) return; // rare: workers mostly stay
        address worker = workers[w % 6];
        IStaking.WorkerInfo memory info = market.workerInfo(worker);
        uint256 free = info.stake - info.locked;
        if (free < 2) return;
        amount = bound(amount, 1, free / 2); // keep most workers working
        vm.prank(worker);
        market.requestUnstake(uint96(amount));
        _ledgerRequestUnstake(worker, amount);
        ++calls["requestUnstake"];
    }

    function unstake(uint256 w) external {
        address worker = workers[w % 6];
        IStaking.WorkerInfo memory info = market.workerInfo(worker);
        if (info.unbonding == 0 || block.timestamp < info.unbondingEnd) return;
        vm.prank(worker);
        market.unstake();
        _ledgerUnstake(worker);
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
        // One replication-1 job in four asks for a reputation: two paid tiles, or no fault at
        // all (replicated jobs stay open to all, so disagreements keep their frequency).
        uint256 gate = replication == 1 ? (c >> 8) % 8 : 0;
        uint32 minCompleted = gate == 6 ? 2 : 0;
        uint16 maxFaults = gate == 7 ? 0 : type(uint16).max;
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
            LEAF_DEPTH,
            minCompleted,
            maxFaults
        );
        jobIds.push(jobId);
        _ledgerPost(jobId, clients[c % 2], tiles, uint8(replication), reward);
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
        _ledgerSettleAll(ready);
        ++calls["settle"];
    }

    /// @dev Now and then a client cancels a job of its own before the deadline: the refund must
    /// be exactly the escrow no live lease reserved.
    function cancelJob(uint256 j) external {
        if (jobIds.length == 0 || j % 4 != 0) return; // most jobs run to their end
        uint256 jobId;
        IRenderMarket.Job memory job;
        for (uint256 i; i < jobIds.length && jobId == 0; ++i) {
            uint256 id = jobIds[((j >> 2) + i) % jobIds.length];
            job = market.getJob(id);
            if (job.cancelledAt == 0 && block.timestamp <= job.deadline) jobId = id;
        }
        if (jobId == 0) return;
        uint256 free = job.escrow - uint256(job.reservedSlots) * job.rewardPerTileReplica;
        vm.prank(job.client);
        uint256 refunded = market.cancelJob(jobId);
        if (refunded != free || market.refundable(jobId) != 0) ++ghostBadCancels;
        if (refunded != _ledgerRefund(jobId)) ++ghostBadCancels;
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
        _ledgerPay(job.client, params.disputeBond);
        contestIds.push(contestId);
        _maybeDraw(contestId, tileSeed >> 8);
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
        IRenderMarket.Lease memory lease = market.getLease(leaseId);
        address worker = lease.worker;
        uint256 faults = market.workerInfo(worker).faults;
        vm.prank(keeper);
        market.reclaim(leaseId);
        _ledgerReclaim(lease, keeper);
        // A missed deadline faults; an overtaken claim (copy gate) ends without fault.
        ghostReclaims[worker] += market.workerInfo(worker).faults - faults;
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
            uint256 contestId = market.proveDisagreement(la.jobId, uint32(tile), a, b, o);
            contestIds.push(contestId);
            ++calls["proveDisagreement"];
            _maybeDraw(contestId, uint256(keccak256(abi.encode(contestId, block.timestamp))));
            return true;
        }
        return false;
    }

    /// @dev Draws the jury of a contest whose draw is armed (rolling a block and giving the
    /// armed block a hash when needed).
    function drawJury(uint256 c) external {
        uint256 n = contestIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 contestId = contestIds[(c % n + i) % n];
            IRenderMarket.Contest memory k = _contestLive(contestId);
            if (k.outcome != IRenderMarket.ContestOutcome.Pending || k.drawBlock == 0) continue;
            if (block.timestamp > k.claimDeadline - market.getJob(k.jobId).leaseLength) continue;
            _draw(contestId, k, c);
            return;
        }
    }

    /// @dev Draws contest `contestId` (armed, in its window); prompt jurors commit at once.
    function _draw(uint256 contestId, IRenderMarket.Contest memory k, uint256 c) internal {
        if (block.number <= k.drawBlock) vm.roll(k.drawBlock + 1);
        vm.setBlockhash(k.drawBlock, keccak256(abi.encode("block", contestId, k.drawBlock, c)));
        uint256[] memory before = market.jurors(contestId);
        vm.prank(keeper);
        market.drawJury(contestId);
        uint256[] memory seated = market.jurors(contestId);
        for (uint256 seat; seat < seated.length; ++seat) {
            uint256 id = seated[seat];
            if (id == 0 || (seat < before.length && before[seat] == id)) continue;
            IRenderMarket.Lease memory j = market.getLease(id);
            _ledgerClaim(j); // a seat locks one tile's collateral, as a claim
            leaseIds.push(id);
            leasesOf[k.jobId].push(id);
            forgery[id] = isHonest(j.worker) ? 0 : (j.worker == workers[4] ? 1 : 2);
            abandoned[id] = (c >> (8 + seat)) % 8 == 0; // a squatting juror now and then
            ++calls["jurorDrawn"];
            if (abandoned[id] || (c >> (16 + seat)) % 8 == 0) continue; // a slow one now and then
            vm.prank(j.worker);
            market.commit(id, keccak256(abi.encode(_root(id, j), j.worker, _salt(id))));
            ++calls["commit"];
        }
        ++calls["drawJury"];
        _jurorsReveal(contestId, seated); // prompt jurors reveal as soon as the rule lets them
    }

    /// @dev Every committed, prompt juror of the contest reveals if the rule lets it; then the
    /// far sides and replicas are proven (by a juror) once the verdict is final.
    function _jurorsReveal(uint256 contestId, uint256[] memory seated) internal {
        IRenderMarket.Contest memory k = _contestLive(contestId);
        if (!_jurorMayReveal(k, market.getJob(k.jobId).leaseLength)) return;
        for (uint256 seat; seat < seated.length; ++seat) {
            uint256 id = seated[seat];
            if (id == 0 || abandoned[id]) continue;
            IRenderMarket.Lease memory j = market.getLease(id);
            if (j.status != IRenderMarket.LeaseStatus.Committed || block.timestamp > _revealDeadline(j)) continue;
            vm.prank(j.worker);
            market.reveal(id, _root(id, j), "bafy-result", _salt(id));
            ++calls["jurorReveal"];
            ++calls["reveal"];
        }
        _proveFarSides(contestId);
    }

    /// @dev Half the time the contest's draw runs in the next block at once.
    function _maybeDraw(uint256 contestId, uint256 seed) internal {
        if (seed % 2 == 0) return;
        _draw(contestId, _contestLive(contestId), seed);
    }

    function proveFar(uint256 c, uint256 side) external {
        if (contestIds.length == 0) return;
        uint256 contestId = contestIds[c % contestIds.length];
        (IRenderMarket.Contest memory k, bool open) = _verdictWindow(contestId);
        if (!open) return;
        side = k.kind == IRenderMarket.ContestKind.Dispute ? 0 : side % 2;
        if ((k.farMask >> side) & 1 == 1) return;
        uint256 s = side == 0 ? k.leaseA : k.leaseB;
        if (forgery[s] == forgery[k.leaseT]) return; // not far: the proof would fail
        IRenderMarket.Opening[] memory o =
            _openings(s, market.getLease(s), k.leaseT, market.getLease(k.leaseT), k.tile);
        vm.prank(keeper);
        market.proveFar(contestId, uint8(side), o);
        ghostFarMask[contestId] |= side == 0 ? 1 : 2;
        ++calls["proveFar"];
    }

    /// @dev Proves another revealed replica of a contested tile far from the verdict (a sybil lane).
    function proveReplicaFar(uint256 c) external {
        if (contestIds.length == 0) return;
        uint256 contestId = contestIds[c % contestIds.length];
        (IRenderMarket.Contest memory k, bool open) = _verdictWindow(contestId);
        if (!open) return;
        if (_proveReplicas(contestId, k) == 0) return;
        ++calls["proveReplicaFar"];
    }

    /// @dev The contest and whether its verdict is final with its far-proof window open.
    function _verdictWindow(uint256 contestId) internal view returns (IRenderMarket.Contest memory k, bool open) {
        k = _contestLive(contestId);
        if (k.outcome != IRenderMarket.ContestOutcome.Pending || k.leaseT == 0) return (k, false);
        (, uint256 fixedAt) = market.verdict(contestId);
        open = fixedAt != 0 && block.timestamp <= fixedAt + params.challengeWindow;
    }

    function _proveReplicas(uint256 contestId, IRenderMarket.Contest memory k) internal returns (uint256 proven) {
        uint256[] storage revealed = revealedOf[k.jobId];
        IRenderMarket.Lease memory lt = market.getLease(k.leaseT);
        for (uint256 i; i < revealed.length; ++i) {
            uint256 id = revealed[i];
            if (id == k.leaseA || id == k.leaseB || forgery[id] == forgery[k.leaseT]) continue;
            IRenderMarket.Lease memory l = market.getLease(id);
            if (l.status != IRenderMarket.LeaseStatus.Revealed) continue;
            if (k.tile < l.firstTile || k.tile >= uint256(l.firstTile) + l.count) continue;
            IRenderMarket.Opening[] memory o = _openings(id, l, k.leaseT, lt, k.tile);
            vm.prank(keeper);
            market.proveReplicaFar(contestId, id, o);
            // The replica forfeits the tile: its reward and the whole slash go to the client.
            (uint256 slashed, uint256 freed) = _ledgerForfeit(id, l, k.tile, true);
            _ledgerCredit(ghostClient[k.jobId], slashed + freed);
            ++proven;
            if (isHonest(l.worker)) {
                // Only a forged verdict (no honest majority) proves an honest replica far.
                ++ghostReclaims[l.worker];
                ++ghostExempt[id];
            }
        }
    }

    /// @dev Proves every side and replica of the contest far from its verdict, once it is final.
    function _proveFarSides(uint256 contestId) internal {
        (IRenderMarket.Contest memory k, bool open) = _verdictWindow(contestId);
        if (!open) return;
        IRenderMarket.Lease memory lt = market.getLease(k.leaseT);
        uint256 sides = k.kind == IRenderMarket.ContestKind.Dispute ? 1 : 2;
        for (uint256 side; side < sides; ++side) {
            uint256 leaseId = side == 0 ? k.leaseA : k.leaseB;
            if (forgery[leaseId] == forgery[k.leaseT] || (k.farMask >> side) & 1 == 1) continue;
            IRenderMarket.Opening[] memory o = _openings(leaseId, market.getLease(leaseId), k.leaseT, lt, k.tile);
            vm.prank(lt.worker);
            market.proveFar(contestId, uint8(side), o);
            ghostFarMask[contestId] |= side == 0 ? 1 : 2;
            ++calls["proveFar"];
        }
        if (_proveReplicas(contestId, k) != 0) ++calls["proveReplicaFar"];
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
        _resolve(contestId);
        ++calls["resolveContest"];
    }

    /// @dev Resolves a contest. Jurors that never revealed are not slashed here (a reclaim does
    /// that, counted there); an honest worker is slashed here only under a forger's verdict.
    function _resolve(uint256 contestId) internal {
        uint256[6] memory faults;
        for (uint256 w; w < 6; ++w) {
            faults[w] = market.workerInfo(workers[w]).faults;
        }
        IRenderMarket.Contest memory k = _contestLive(contestId);
        uint256 forfeitedA = market.getLease(k.leaseA).forfeitedCount;
        uint256 forfeitedB = k.leaseB == 0 ? 0 : market.getLease(k.leaseB).forfeitedCount;
        // Which jurors revealed (only they are judged and paid): a structural fact the ledger reads.
        uint256[] memory seats = market.jurors(contestId);
        bool[] memory revealed = new bool[](seats.length);
        for (uint256 s; s < seats.length; ++s) {
            revealed[s] = seats[s] != 0 && market.getLease(seats[s]).status == IRenderMarket.LeaseStatus.Revealed;
        }
        vm.prank(keeper);
        market.resolveContest(contestId);
        _ledgerResolve(contestId, k, seats, revealed);
        _recordOutcome(contestId);
        k = _contestLive(contestId);
        // Outside the honest-majority assumption: the revealed jurors' majority was a forger
        // (e.g. the only juror that revealed). Honest parties may then lose the tile and stake.
        bool dishonest = k.leaseT != 0 && forgery[k.leaseT] != 0;
        if (dishonest) {
            ++ghostDishonestVerdicts;
            ghostExempt[k.leaseA] += market.getLease(k.leaseA).forfeitedCount - forfeitedA;
            if (k.leaseB != 0) ghostExempt[k.leaseB] += market.getLease(k.leaseB).forfeitedCount - forfeitedB;
        }
        for (uint256 w; w < 6; ++w) {
            if (dishonest) ghostReclaims[workers[w]] += market.workerInfo(workers[w]).faults - faults[w];
        }
    }

    /// @dev The ledger's side of a settle or finalize of `ready`.
    function _ledgerSettleAll(uint256[] memory ready) internal {
        for (uint256 i; i < ready.length; ++i) {
            _ledgerSettle(ready[i], market.getLease(ready[i]));
        }
    }

    /// @dev The ledger's side of a contest's resolution, from the rules: the sides' outcome from
    /// the far proofs this handler made (`ghostFarMask`) and whether the jury reached a verdict
    /// (`k.leaseT`), then the jury: revealed jurors whose root (computed here) is not the
    /// verdict's are slashed into the pool, the rest share it equally, the dust to the client.
    function _ledgerResolve(
        uint256 contestId,
        IRenderMarket.Contest memory k,
        uint256[] memory seats,
        bool[] memory revealed
    ) internal {
        address client = ghostClient[k.jobId];
        uint8 far = ghostFarMask[contestId];
        bool verdict = k.leaseT != 0;
        // The outcome follows from the verdict and the far proofs made (AFar 1, BFar 2, BothFar 3).
        IRenderMarket.ContestOutcome expected = !verdict
            ? IRenderMarket.ContestOutcome.NoTieBreaker
            : far == 0 ? IRenderMarket.ContestOutcome.NoneFar : IRenderMarket.ContestOutcome(far);
        require(market.getContest(contestId).outcome == expected, "contest outcome differs from its far proofs");
        uint256 pool = k.kind == IRenderMarket.ContestKind.Disagreement
            ? _ledgerDisagreement(k, client, far, verdict)
            : _ledgerDispute(k, client, far, verdict);
        bytes32 root = verdict ? _root(k.leaseT, market.getLease(k.leaseT)) : bytes32(0);
        uint256 majority;
        for (uint256 s; s < seats.length; ++s) {
            if (!revealed[s]) continue;
            IRenderMarket.Lease memory j = market.getLease(seats[s]);
            if (!verdict) continue; // no verdict: every revealed juror is released, unpaid
            if (_root(seats[s], j) == root) {
                ++majority;
            } else {
                pool += _ledgerJurorOff(j.worker);
                revealed[s] = false;
            }
        }
        uint256 share = majority == 0 ? 0 : pool / majority;
        uint256 paid;
        for (uint256 s; s < seats.length; ++s) {
            if (!revealed[s]) continue;
            _ledgerJurorPaid(market.getLease(seats[s]).worker, share);
            paid += share;
        }
        _ledgerCredit(client, pool - paid);
    }

    /// @dev A disagreement's sides; returns the jury's pool. One side far: its tile forfeited and
    /// slashed, the bounty to the other side's worker (the client's when the other side's data
    /// was unavailable), the reward to the jury. Both far: both forfeited and slashed, rewards and
    /// bounties to the jury. No verdict: both tiles forfeited unslashed, their rewards refunded.
    function _ledgerDisagreement(IRenderMarket.Contest memory k, address client, uint8 far, bool verdict)
        internal
        returns (uint256 pool)
    {
        IRenderMarket.Lease memory a = market.getLease(k.leaseA);
        IRenderMarket.Lease memory b = market.getLease(k.leaseB);
        if (!verdict) {
            (, uint256 freedA) = _ledgerForfeit(k.leaseA, a, k.tile, false);
            (, uint256 freedB) = _ledgerForfeit(k.leaseB, b, k.tile, false);
            _ledgerCredit(client, freedA + freedB);
        } else if (far == 1 || far == 2) {
            (uint256 farId, uint256 otherId) = far == 1 ? (k.leaseA, k.leaseB) : (k.leaseB, k.leaseA);
            (uint256 slashed, uint256 freed) = _ledgerForfeit(farId, far == 1 ? a : b, k.tile, true);
            address other = far == 1 ? b.worker : a.worker;
            _ledgerShareSlash(client, slashed, ghostLeaseForfeited[otherId] ? client : other);
            pool = freed;
        } else if (far == 3) {
            (uint256 slashedA, uint256 freedA) = _ledgerForfeit(k.leaseA, a, k.tile, true);
            (uint256 slashedB, uint256 freedB) = _ledgerForfeit(k.leaseB, b, k.tile, true);
            uint256 bounty = (slashedA + slashedB) * bountyBps / BPS;
            _ledgerCredit(client, slashedA + slashedB - bounty);
            pool = freedA + freedB + bounty;
        }
    }

    /// @dev A dispute's side; returns the jury's pool. Worker far: its tile forfeited and slashed,
    /// the bond and the slash less its bounty to the client, reward and bounty to the jury. Not
    /// far: half the bond to the worker (the client's when its data was unavailable), the rest to
    /// the jury. No verdict: the bond back to the client.
    function _ledgerDispute(IRenderMarket.Contest memory k, address client, uint8 far, bool verdict)
        internal
        returns (uint256 pool)
    {
        uint256 bond = params.disputeBond;
        if (!verdict) {
            _ledgerCredit(client, bond);
        } else if (far == 1) {
            (uint256 slashed, uint256 freed) = _ledgerForfeit(k.leaseA, market.getLease(k.leaseA), k.tile, true);
            uint256 bounty = slashed * bountyBps / BPS;
            _ledgerCredit(client, slashed - bounty + bond);
            pool = freed + bounty;
        } else {
            uint256 half = bond / 2;
            _ledgerCredit(ghostLeaseForfeited[k.leaseA] ? client : market.getLease(k.leaseA).worker, half);
            pool = bond - half;
        }
    }

    function _workerIndex(address worker) internal view returns (uint256 w) {
        while (workers[w] != worker) ++w;
    }

    /*//////////////////////////////////////////////////////////////
                           DATA AVAILABILITY
    //////////////////////////////////////////////////////////////*/

    /// @dev A client (or the keeper) demands leaves of a revealed replica lease. Honest workers
    /// answer at once; forgers withhold their bytes half the time.
    function challengeAvailability(uint256 l, uint256 seed) external {
        if (seed % 3 != 0) return; // rarer than the rest
        (uint256 leaseId, IRenderMarket.Lease memory lease) = _pickLease(l, IRenderMarket.LeaseStatus.Revealed);
        // Half the time the challenger goes after a forger (whose bytes are the likely missing ones).
        if ((seed >> 40) % 2 == 0) {
            for (uint256 k = leaseIds.length; k > 0; --k) {
                IRenderMarket.Lease memory f = market.getLease(leaseIds[k - 1]);
                if (f.status != IRenderMarket.LeaseStatus.Revealed || isHonest(f.worker)) continue;
                (leaseId, lease) = (leaseIds[k - 1], f);
                break;
            }
        }
        if (leaseId == 0) return;
        IRenderMarket.Job memory job = market.getJob(lease.jobId);
        if (lease.lane >= job.replication || market.openChallenge(leaseId) != 0) return;
        if (block.timestamp > market.verifiedAt(leaseId) + params.acceptanceWindow) return;
        uint32 tile = uint32(lease.firstTile + (seed >> 8) % lease.count);
        uint32[] memory leaves = new uint32[](1);
        leaves[0] = uint32((seed >> 16) % (uint256(1) << LEAF_DEPTH));
        address challenger = (seed >> 24) % 2 == 0 ? job.client : keeper;
        _deal(challenger, params.disputeBond);
        vm.prank(challenger);
        uint256 id = market.challengeAvailability{value: params.disputeBond}(leaseId, tile, leaves);
        _ledgerPay(challenger, params.disputeBond);
        challengerOf[id] = challenger;
        challengeIds.push(id);
        challengedLeaves[id] = leaves[0];
        ghostIn += params.disputeBond;
        ++calls["challengeAvailability"];
        if (isHonest(lease.worker) || (seed >> 32) % 2 == 0) _answer(id, lease.worker);
    }

    /// @dev Resolves an unanswered challenge past its deadline (the forger's lease is forfeited).
    function resolveAvailability(uint256 c) external {
        uint256 n = challengeIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = challengeIds[(c % n + i) % n];
            IRenderMarket.AvailabilityChallenge memory a = market.getAvailabilityChallenge(id);
            if (a.status != IRenderMarket.AvailabilityStatus.Open || block.timestamp <= a.deadline) continue;
            vm.prank(keeper);
            market.resolveAvailability(id);
            _ledgerUnavailable(a.leaseId, market.getLease(a.leaseId), challengerOf[id], params.disputeBond);
            ++calls["resolveAvailability"];
            return;
        }
    }

    mapping(uint256 challengeId => uint32) internal challengedLeaves;
    mapping(uint256 challengeId => address) internal challengerOf;

    function _answer(uint256 id, address answerer) internal {
        IRenderMarket.AvailabilityChallenge memory a = market.getAvailabilityChallenge(id);
        IRenderMarket.Lease memory l = market.getLease(a.leaseId);
        bytes32[][] memory t = _tiles(a.leaseId, l);
        uint256 off = a.tile - l.firstTile;
        uint32[] memory leaves = new uint32[](1);
        leaves[0] = challengedLeaves[id];
        bytes32[] memory data = new bytes32[](1);
        data[0] = t[off][leaves[0]];
        bytes32[][] memory proofs = new bytes32[][](1);
        proofs[0] = TileTrees.proof(t, off, leaves[0]);
        vm.txGasPrice(1 gwei); // the answer's gas is paid from the bond
        uint256 before = market.pendingBalance(answerer);
        vm.prank(answerer);
        market.answerAvailability(id, leaves, data, proofs);
        vm.txGasPrice(0); // a gas price left set would charge (or refund) the fuzzer's next sender
        // The one measured figure: the answer's gas (at 1 gwei) is the answerer's, the rest of the
        // bond the challenger's. Reading it from the answerer's balance leaves the split checked.
        uint256 compensation = market.pendingBalance(answerer) - before;
        require(compensation > 0 && compensation <= params.disputeBond, "answer compensation outside (0, bond]");
        _ledgerCredit(answerer, compensation);
        _ledgerCredit(challengerOf[id], params.disputeBond - compensation);
        ++calls["answerAvailability"];
    }

    function finalize(uint256 j) external {
        (uint256 jobId, uint256[] memory ready) = _pickSettleable(j, true);
        if (jobId == 0) return;
        _countForfeited(ready);
        vm.prank(keeper);
        market.finalize(jobId, ready);
        _ledgerSettleAll(ready);
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
        uint256 refunded = market.refund(jobId);
        require(refunded == _ledgerRefund(jobId), "refund differs from the ledger");
        ++calls["refund"];
    }

    function withdraw(uint256 a) external {
        address[] memory all = actors();
        address account = all[a % all.length];
        uint256 amount = market.pendingBalance(account);
        if (amount == 0) return;
        vm.prank(account);
        market.withdraw();
        _ledgerWithdraw(account);
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
                IRenderMarket.Lease memory lease = market.getLease(leaseIds[i]);
                address worker = lease.worker;
                uint256 faults = market.workerInfo(worker).faults;
                vm.prank(keeper);
                market.reclaim(leaseIds[i]);
                _ledgerReclaim(lease, keeper);
                ghostReclaims[worker] += market.workerInfo(worker).faults - faults;
            }
        }
        for (uint256 i; i < challengeIds.length; ++i) {
            IRenderMarket.AvailabilityChallenge memory a = market.getAvailabilityChallenge(challengeIds[i]);
            if (a.status == IRenderMarket.AvailabilityStatus.Open) {
                vm.prank(keeper);
                market.resolveAvailability(challengeIds[i]);
                _ledgerUnavailable(
                    a.leaseId, market.getLease(a.leaseId), challengerOf[challengeIds[i]], params.disputeBond
                );
            }
        }
        for (uint256 i; i < contestIds.length; ++i) {
            if (_contestLive(contestIds[i]).outcome == IRenderMarket.ContestOutcome.Pending) {
                _resolve(contestIds[i]);
            }
        }
        for (uint256 i; i < jobIds.length; ++i) {
            uint256[] memory ready = _settleable(jobIds[i], true);
            if (ready.length > 0) {
                _countForfeited(ready);
                vm.prank(keeper);
                market.finalize(jobIds[i], ready);
                _ledgerSettleAll(ready);
            }
            if (market.refundable(jobIds[i]) > 0) {
                vm.prank(keeper);
                uint256 refunded = market.refund(jobIds[i]);
                require(refunded == _ledgerRefund(jobIds[i]), "refund differs from the ledger");
            }
        }
        for (uint256 i; i < 6; ++i) {
            IStaking.WorkerInfo memory info = market.workerInfo(workers[i]);
            if (info.stake > 0) {
                vm.prank(workers[i]);
                market.requestUnstake(info.stake);
                _ledgerRequestUnstake(workers[i], info.stake);
            }
        }
        vm.warp(block.timestamp + params.unbondingDelay);
        for (uint256 i; i < 6; ++i) {
            if (market.workerInfo(workers[i]).unbonding > 0) {
                vm.prank(workers[i]);
                market.unstake();
                _ledgerUnstake(workers[i]);
            }
        }
        address[] memory all = actors();
        for (uint256 i; i < all.length; ++i) {
            uint256 amount = market.pendingBalance(all[i]);
            if (amount > 0) {
                vm.prank(all[i]);
                market.withdraw();
                _ledgerWithdraw(all[i]);
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
    /// @dev The reputation gate: a worker the job refuses has its claim refused with its record
    /// and the gate (true: refused, as it must be).
    function _refusedByGate(
        uint256 jobId,
        IRenderMarket.Job memory job,
        address worker,
        uint32 lane,
        uint32 first,
        uint16 n
    ) internal returns (bool) {
        IStaking.WorkerInfo memory info = market.workerInfo(worker);
        bool faultsOk = job.maxFaults == type(uint16).max || info.faults <= job.maxFaults;
        if (info.completed >= job.minCompleted && faultsOk) return false;
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketReputationTooLow.selector,
                worker,
                info.completed,
                info.faults,
                job.minCompleted,
                job.maxFaults
            )
        );
        vm.prank(worker);
        market.claim(jobId, lane, first, n);
        ++calls["claimGated"];
        return true;
    }

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
        if (l.status == IRenderMarket.LeaseStatus.Committed) return block.timestamp > _revealDeadline(l);
        return false;
    }

    /// @dev A lease's reveal deadline; a juror's is its contest's claim deadline + revealWindow.
    function _revealDeadline(IRenderMarket.Lease memory l) internal view returns (uint256) {
        if (l.lane >= market.getJob(l.jobId).replication) {
            return _contestLive(market.tieBreakerContest(l.jobId, l.lane)).claimDeadline + params.revealWindow;
        }
        return l.commitDeadline + params.revealWindow;
    }

    /// @dev RenderMarket's juror reveal rule.
    function _jurorMayReveal(IRenderMarket.Contest memory k, uint256 leaseLength) internal view returns (bool) {
        bool pending = k.drawBlock != 0 && block.timestamp + leaseLength <= k.claimDeadline;
        bool ready = !pending && (k.committedSeats == k.seated || block.timestamp > k.jurorDeadline);
        return ready || block.timestamp > k.claimDeadline;
    }

    /// @dev Some tile of [first, first + count) revealed in another replica lane (the copy gate).
    function _revealedElsewhere(uint256 jobId, uint256 lane, uint256 first, uint256 count)
        internal
        view
        returns (bool)
    {
        uint256 replication = market.getJob(jobId).replication;
        if (replication == 1) return false;
        for (uint256 other; other < replication; ++other) {
            if (other == lane) continue;
            for (uint256 t = first; t < first + count; ++t) {
                if ((market.revealedBitmap(jobId, uint32(other), t >> 8) >> (t & 255)) & 1 == 1) return true;
            }
        }
        return false;
    }

    /// @dev Warps to the moment the first open contest becomes resolvable without any other
    /// action (its verdict's window ends, or every juror and the draw window are done); 0 if none.
    function _waitForAContest() internal returns (uint256 contestId) {
        uint256 earliest = type(uint256).max;
        for (uint256 i; i < contestIds.length; ++i) {
            IRenderMarket.Contest memory k = _contestLive(contestIds[i]);
            if (k.outcome != IRenderMarket.ContestOutcome.Pending) continue;
            (uint256 leaseT, uint256 fixedAt) = market.verdict(contestIds[i]);
            uint256 when;
            if (fixedAt != 0) {
                when = leaseT == 0 ? block.timestamp : fixedAt + params.challengeWindow + 1;
            } else {
                uint256 drawEnd = k.claimDeadline - market.getJob(k.jobId).leaseLength;
                uint256 jurors = k.claimDeadline + params.revealWindow;
                when = (drawEnd > jurors ? drawEnd : jurors) + params.challengeWindow + 1;
            }
            if (when < earliest) (earliest, contestId) = (when, contestIds[i]);
        }
        if (contestId != 0 && earliest > block.timestamp) vm.warp(earliest);
        if (contestId != 0 && !_resolvable(contestId)) contestId = 0;
    }

    function _resolvable(uint256 contestId) internal view returns (bool) {
        IRenderMarket.Contest memory k = _contestLive(contestId);
        if (k.outcome != IRenderMarket.ContestOutcome.Pending) return false;
        (uint256 leaseT, uint256 fixedAt) = market.verdict(contestId);
        if (fixedAt == 0) return false;
        return leaseT == 0 || block.timestamp > fixedAt + params.challengeWindow;
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
            if (market.openChallenge(ofJob[i]) != 0 || _tileContestPending(jobId, l)) continue;
            uint256 v = market.verifiedAt(ofJob[i]);
            if (block.timestamp <= (finalizing ? v + params.acceptanceWindow : v)) continue;
            found[n++] = ofJob[i];
        }
        ready = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            ready[i] = found[i];
        }
    }

    /// @dev Some tile of the lease has a pending contest (settlement of every replica waits).
    function _tileContestPending(uint256 jobId, IRenderMarket.Lease memory l) internal view returns (bool) {
        for (uint256 i; i < contestIds.length; ++i) {
            IRenderMarket.Contest memory k = _contestLive(contestIds[i]);
            if (k.jobId != jobId || k.outcome != IRenderMarket.ContestOutcome.Pending) continue;
            if (k.tile >= l.firstTile && k.tile < uint256(l.firstTile) + l.count) return true;
        }
        return false;
    }

    function _recordOutcome(uint256 contestId) internal {
        if (outcomeSeen[contestId]) return;
        outcomeSeen[contestId] = true;
        IRenderMarket.Contest memory k = _contestLive(contestId);
        if (
            k.kind == IRenderMarket.ContestKind.Disagreement
                && k.outcome == IRenderMarket.ContestOutcome.NoTieBreaker
        ) {
            ++ghostExempt[k.leaseA];
            ++ghostExempt[k.leaseB];
        }
    }

    /// @dev getContest with the live verdict filled in (the market stores `leaseT` and
    /// `verdictAt` only when the contest resolves; `verdict` computes them before).
    function _contestLive(uint256 contestId) internal view returns (IRenderMarket.Contest memory k) {
        k = market.getContest(contestId);
        if (k.outcome == IRenderMarket.ContestOutcome.Pending) {
            (uint256 leaseT, uint256 fixedAt) = market.verdict(contestId);
            k.leaseT = uint64(leaseT);
            k.verdictAt = uint40(fixedAt);
        }
    }
}
