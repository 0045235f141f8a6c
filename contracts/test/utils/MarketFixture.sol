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

    /// @dev Leases whose worker outputs forged data (the TileTrees forgery kind; 0 = honest).
    mapping(uint256 leaseId => uint8) internal forged;

    function setUp() public virtual {
        vm.warp(START);
        p = Defaults.params();
        market = new RenderMarket(p);
        address[6] memory actors = [client, alice, bob, carol, dave, eve];
        for (uint256 i; i < actors.length; ++i) {
            vm.deal(actors[i], 1000 ether);
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
            CID, KERNEL, tiles, replication, REWARD, LEASE, deadline, PRIORITY, DEPTH
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
        IRenderMarket.Contest memory c = market.getContest(contestId);
        IRenderMarket.Opening[] memory o = _openings(side == 0 ? c.leaseA : c.leaseB, c.leaseT, c.tile, _allLeaves());
        vm.prank(prover);
        market.proveFar(contestId, side, o);
    }

    /// @dev `worker` takes the contest's tie-breaker lane and commits and reveals (forged or not).
    function _tieBreak(address worker, uint256 contestId, uint8 forge) internal returns (uint256 t) {
        IRenderMarket.Contest memory c = market.getContest(contestId);
        t = _claim(worker, c.jobId, c.lane, c.tile, 1);
        forged[t] = forge;
        _commitReveal(t);
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
            IRenderMarket.Contest memory k = market.getContest(c);
            if (k.outcome == IRenderMarket.ContestOutcome.Pending) total += k.bond;
        }
    }

    function _everyone() internal view returns (address[] memory a) {
        a = new address[](6);
        (a[0], a[1], a[2], a[3], a[4], a[5]) = (client, alice, bob, carol, dave, eve);
    }
}
