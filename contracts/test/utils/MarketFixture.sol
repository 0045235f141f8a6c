// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";

import {RenderMarket} from "../../src/RenderMarket.sol";
import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {Defaults} from "./Defaults.sol";
import {TileTrees} from "./TileTrees.sol";

/// @title MarketFixture
/// @notice The shared base of the market tests: a RenderMarket with the default parameters,
/// funded actors, and helpers that drive a lease with real Merkle roots and openings.
abstract contract MarketFixture is Test {
    RenderMarket internal market;
    IRenderMarket.Params internal p;

    address internal client = makeAddr("client");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal dave = makeAddr("dave");
    address internal eve = makeAddr("eve");

    uint96 internal constant REWARD = 0.001 ether;
    uint32 internal constant LEASE = 1 hours;
    uint8 internal constant DEPTH = 2;
    uint8 internal constant PRIORITY = 3;
    uint96 internal constant STAKE = 1 ether;
    uint32 internal constant CAPACITY = 1024;
    bytes32 internal constant KERNEL = keccak256("volume-v1");
    bytes internal constant CID = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN";
    bytes internal constant RESULT_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    uint256 internal constant START = 1_700_000_000;
    /// @dev postJob's maxFaults for "any number" (with minCompleted 0: an ungated job).
    uint16 internal constant NO_FAULT_LIMIT = type(uint16).max;

    /// @dev Workers the jury helpers stake so that draws find eligible jurors (see `_stakeJurors`).
    uint256 internal constant JURORS = 6;
    address[JURORS] internal jurorPool;

    /// @dev Leases whose worker outputs forged data (the TileTrees forgery kind; 0 = honest).
    mapping(uint256 leaseId => uint8) internal forged;
    /// @dev What each worker outputs when drawn as a juror (TileTrees forgery kind; 0 = honest).
    mapping(address worker => uint8) internal jurorForge;

    function setUp() public virtual {
        vm.warp(START);
        p = Defaults.params();
        market = Defaults.deploy(p);
        address[6] memory actors = [client, alice, bob, carol, dave, eve];
        for (uint256 i; i < actors.length; ++i) {
            vm.deal(actors[i], 1000 ether);
        }
        for (uint256 i; i < JURORS; ++i) {
            jurorPool[i] = makeAddr(string.concat("juror", vm.toString(i)));
            vm.deal(jurorPool[i], 1000 ether);
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 ACTIONS
    //////////////////////////////////////////////////////////////*/

    function _stake(address worker) internal {
        vm.prank(worker);
        market.stake{value: STAKE}(CAPACITY);
    }

    function _post(uint32 tiles, uint8 replication) internal returns (uint256) {
        return _post(tiles, replication, uint40(block.timestamp + 1 days));
    }

    function _post(uint32 tiles, uint8 replication, uint40 deadline) internal returns (uint256) {
        vm.prank(client);
        return market.postJob{value: uint256(tiles) * replication * REWARD}(
            CID, KERNEL, tiles, replication, REWARD, LEASE, deadline, PRIORITY, DEPTH, 0, NO_FAULT_LIMIT
        );
    }

    /// @dev A job whose claimers (and jurors) need `minCompleted` paid tiles and at most
    /// `maxFaults` faults.
    function _postGated(uint32 tiles, uint8 replication, uint32 minCompleted, uint16 maxFaults)
        internal
        returns (uint256)
    {
        vm.prank(client);
        return market.postJob{value: uint256(tiles) * replication * REWARD}(
            CID,
            KERNEL,
            tiles,
            replication,
            REWARD,
            LEASE,
            uint40(block.timestamp + 1 days),
            PRIORITY,
            DEPTH,
            minCompleted,
            maxFaults
        );
    }

    function _claim(address worker, uint256 jobId, uint32 lane, uint32 first, uint16 count)
        internal
        returns (uint256)
    {
        vm.prank(worker);
        return market.claim(jobId, lane, first, count);
    }

    function _salt(uint256 leaseId) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", leaseId));
    }

    /// @dev The output leaves of every tile of the lease, as its worker computes them.
    function _tiles(uint256 leaseId) internal view returns (bytes32[][] memory) {
        IRenderMarket.Lease memory l = market.getLease(leaseId);
        uint8 depth = market.getJob(l.jobId).leafDepth;
        return TileTrees.leaseTiles(l.jobId, l.firstTile, l.count, depth, l.worker, forged[leaseId]);
    }

    function _root(uint256 leaseId) internal view returns (bytes32) {
        return TileTrees.leaseRoot(_tiles(leaseId));
    }

    function _commit(uint256 leaseId) internal {
        address worker = market.getLease(leaseId).worker;
        bytes32 commitment = keccak256(abi.encode(_root(leaseId), worker, _salt(leaseId)));
        vm.prank(worker);
        market.commit(leaseId, commitment);
    }

    function _reveal(uint256 leaseId) internal {
        address worker = market.getLease(leaseId).worker;
        bytes32 root = _root(leaseId); // before the prank: it makes calls
        vm.prank(worker);
        market.reveal(leaseId, root, RESULT_CID, _salt(leaseId));
    }

    function _commitReveal(uint256 leaseId) internal {
        _commit(leaseId);
        _reveal(leaseId);
    }

    /// @dev Opens leaves `leaves` of `tile` against lease `a` (as A) and lease `b` (as B).
    function _openings(uint256 a, uint256 b, uint32 tile, uint256[] memory leaves)
        internal
        view
        returns (IRenderMarket.Opening[] memory o)
    {
        bytes32[][] memory ta = _tiles(a);
        bytes32[][] memory tb = _tiles(b);
        uint256 offA = tile - market.getLease(a).firstTile;
        uint256 offB = tile - market.getLease(b).firstTile;
        o = new IRenderMarket.Opening[](leaves.length);
        for (uint256 i; i < leaves.length; ++i) {
            o[i].leaf = uint32(leaves[i]);
            o[i].leafA = ta[offA][leaves[i]];
            o[i].leafB = tb[offB][leaves[i]];
            o[i].proofA = TileTrees.proof(ta, offA, leaves[i]);
            o[i].proofB = TileTrees.proof(tb, offB, leaves[i]);
        }
    }

    /// @dev A replication-2 job of 4 tiles: alice (honest) holds lane 0, bob (forged) lane 1, both
    /// revealed. Returns the job and both leases.
    function _twoReplicas() internal returns (uint256 job, uint256 a, uint256 b) {
        return _twoReplicas(0, 1);
    }

    /// @dev As above with the given forgeries for alice (lane 0) and bob (lane 1).
    function _twoReplicas(uint8 forgeA, uint8 forgeB) internal returns (uint256 job, uint256 a, uint256 b) {
        _stake(alice);
        _stake(bob);
        job = _post(4, 2);
        a = _claim(alice, job, 0, 0, 4);
        b = _claim(bob, job, 1, 0, 4);
        (forged[a], forged[b]) = (forgeA, forgeB);
        _commit(a);
        _commit(b);
        _reveal(a);
        _reveal(b);
    }

    /// @dev `_twoReplicas`, then eve proves the disagreement on `tile`.
    function _contested(uint32 tile) internal returns (uint256 job, uint256 a, uint256 b, uint256 contestId) {
        (job, a, b) = _twoReplicas();
        contestId = _proveDisagreement(eve, job, tile, a, b);
    }

    function _proveDisagreement(address prover, uint256 job, uint32 tile, uint256 a, uint256 b)
        internal
        returns (uint256)
    {
        IRenderMarket.Opening[] memory o = _openings(a, b, tile, _allLeaves());
        vm.prank(prover);
        return market.proveDisagreement(job, tile, a, b, o);
    }

    function _proveFar(address prover, uint256 contestId, uint8 side) internal {
        IRenderMarket.Contest memory c = _contestLive(contestId);
        IRenderMarket.Opening[] memory o = _openings(side == 0 ? c.leaseA : c.leaseB, c.leaseT, c.tile, _allLeaves());
        vm.prank(prover);
        market.proveFar(contestId, side, o);
    }

    /// @dev Proves replica lease `leaseId` (not a side) far from the contest's verdict.
    function _proveReplicaFar(address prover, uint256 contestId, uint256 leaseId) internal {
        IRenderMarket.Contest memory c = _contestLive(contestId);
        IRenderMarket.Opening[] memory o = _openings(leaseId, c.leaseT, c.tile, _allLeaves());
        vm.prank(prover);
        market.proveReplicaFar(contestId, leaseId, o);
    }

    /// @dev Stakes the juror pool (once): with them, every draw fills its seats.
    function _stakeJurors() internal {
        if (market.workerInfo(jurorPool[0]).stake != 0) return;
        for (uint256 i; i < JURORS; ++i) {
            _stake(jurorPool[i]);
        }
    }

    /// @dev Moves past the contest's armed draw block, gives it a hash derived from `salt`
    /// (Foundry's hashes of past blocks may be zero) and draws.
    function _drawWith(uint256 contestId, uint256 salt) internal {
        uint256 b = _contestLive(contestId).drawBlock;
        if (block.number <= b) vm.roll(b + 1);
        vm.setBlockhash(b, keccak256(abi.encode("block", contestId, b, salt)));
        market.drawJury(contestId);
    }

    /// @dev Draws the contest's jury (staking the juror pool first), trying block hashes until
    /// every seat is filled. Returns the juror leases by seat.
    function _draw(uint256 contestId) internal returns (uint256[] memory ids) {
        return _drawIncluding(contestId, address(0));
    }

    /// @dev As `_draw`, trying block hashes until `who` (unless zero) sits on the full jury: how
    /// a test makes a chosen worker (a sybil) be drawn.
    function _drawIncluding(uint256 contestId, address who) internal returns (uint256[] memory ids) {
        _stakeJurors();
        for (uint256 salt; salt < 256; ++salt) {
            uint256 snap = vm.snapshotState();
            _drawWith(contestId, salt);
            ids = market.jurors(contestId);
            bool full = ids.length == p.jurySize;
            bool found = who == address(0);
            for (uint256 i; i < ids.length; ++i) {
                if (ids[i] == 0) full = false;
                else if (market.getLease(ids[i]).worker == who) found = true;
            }
            if (full && found) return ids;
            vm.revertToState(snap);
        }
        revert("no draw seats the jury");
    }

    /// @dev Every juror in `ids` commits (its output as `jurorForge` says), then every one reveals.
    function _jurorsVote(uint256[] memory ids) internal {
        for (uint256 i; i < ids.length; ++i) {
            forged[ids[i]] = jurorForge[market.getLease(ids[i]).worker];
            _commit(ids[i]);
        }
        for (uint256 i; i < ids.length; ++i) {
            _reveal(ids[i]);
        }
    }

    /// @dev Draws the contest's jury and has every juror commit and reveal: the verdict is final
    /// at once (every juror revealed). Returns the juror leases by seat.
    function _jury(uint256 contestId) internal returns (uint256[] memory ids) {
        ids = _draw(contestId);
        _jurorsVote(ids);
    }

    /// @dev The worker of a lease.
    function _workerOf(uint256 leaseId) internal view returns (address) {
        return market.getLease(leaseId).worker;
    }

    /// @dev `challenger` demands leaves `leaves` of `tile` of lease `leaseId`, posting the bond.
    function _challenge(address challenger, uint256 leaseId, uint32 tile, uint32[] memory leaves)
        internal
        returns (uint256 id)
    {
        vm.prank(challenger);
        id = market.challengeAvailability{value: p.disputeBond}(leaseId, tile, leaves);
        challengeLeaves[id] = leaves;
    }

    /// @dev `answerer` opens the challenged leaves from the lease's output.
    function _answer(address answerer, uint256 challengeId) internal {
        IRenderMarket.AvailabilityChallenge memory a = market.getAvailabilityChallenge(challengeId);
        (uint32[] memory leaves, bytes32[] memory data, bytes32[][] memory proofs) =
            _answerOf(a.leaseId, a.tile, challengeLeaves[challengeId]);
        vm.prank(answerer);
        market.answerAvailability(challengeId, leaves, data, proofs);
    }

    /// @dev The leaves asked by each challenge (the test remembers them; the chain keeps a hash).
    mapping(uint256 challengeId => uint32[]) internal challengeLeaves;

    function _answerOf(uint256 leaseId, uint32 tile, uint32[] memory leaves)
        internal
        view
        returns (uint32[] memory, bytes32[] memory data, bytes32[][] memory proofs)
    {
        bytes32[][] memory t = _tiles(leaseId);
        uint256 off = tile - market.getLease(leaseId).firstTile;
        data = new bytes32[](leaves.length);
        proofs = new bytes32[][](leaves.length);
        for (uint256 i; i < leaves.length; ++i) {
            data[i] = t[off][leaves[i]];
            proofs[i] = TileTrees.proof(t, off, leaves[i]);
        }
        return (leaves, data, proofs);
    }

    function _leaves(uint32 a) internal pure returns (uint32[] memory l) {
        l = new uint32[](1);
        l[0] = a;
    }

    function _leaves(uint32 a, uint32 b) internal pure returns (uint32[] memory l) {
        l = new uint32[](2);
        (l[0], l[1]) = (a, b);
    }

    function _dispute(uint256 job, uint32 tile, uint256 leaseId) internal returns (uint256) {
        vm.prank(client);
        return market.dispute{value: p.disputeBond}(job, tile, leaseId);
    }

    /// @dev Every leaf of a tile of depth DEPTH: 4 leaves, 16 coefficient pairs.
    function _allLeaves() internal pure returns (uint256[] memory leaves) {
        leaves = new uint256[](uint256(1) << DEPTH);
        for (uint256 i; i < leaves.length; ++i) {
            leaves[i] = i;
        }
    }

    function _ids(uint256 a) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](1);
        ids[0] = a;
    }

    function _ids(uint256 a, uint256 b) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](2);
        (ids[0], ids[1]) = (a, b);
    }

    /// @dev Warps just past the lease's verification time.
    function _warpVerified(uint256 leaseId) internal {
        vm.warp(market.verifiedAt(leaseId) + 1);
    }

    /// @dev Sum of everything the market owes: escrow, stakes, credits, open bonds, over the
    /// given jobs and accounts (all there are in a test).
    function _owed(uint256 jobs, address[] memory accounts) internal view returns (uint256 total) {
        for (uint256 j = 1; j <= jobs; ++j) {
            total += market.getJob(j).escrow;
        }
        for (uint256 i; i < accounts.length; ++i) {
            total += market.pendingBalance(accounts[i]);
            total += market.workerInfo(accounts[i]).stake + market.workerInfo(accounts[i]).unbonding;
        }
        (,, uint256 contests) = market.counts();
        for (uint256 c = 1; c <= contests; ++c) {
            IRenderMarket.Contest memory k = _contestLive(c);
            if (k.outcome == IRenderMarket.ContestOutcome.Pending) total += k.bond;
        }
        uint256 challenges = market.challengeCount();
        for (uint256 i = 1; i <= challenges; ++i) {
            IRenderMarket.AvailabilityChallenge memory a = market.getAvailabilityChallenge(i);
            if (a.status == IRenderMarket.AvailabilityStatus.Open) total += a.bond;
        }
    }

    function _everyone() internal view returns (address[] memory a) {
        a = new address[](6 + JURORS);
        (a[0], a[1], a[2], a[3], a[4], a[5]) = (client, alice, bob, carol, dave, eve);
        for (uint256 i; i < JURORS; ++i) {
            a[6 + i] = jurorPool[i];
        }
    }

    /// @dev Wei slashed for one proven fraud on one tile: the tile's collateral share plus
    /// slashBps of the minimum stake (while the worker's free stake covers it).
    function _fraudSlash() internal view returns (uint256) {
        return uint256(p.collateralPerTile) * p.slashBps / 10_000 + uint256(p.minStake) * p.slashBps / 10_000;
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
