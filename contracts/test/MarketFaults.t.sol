// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {MarketFaults} from "../src/MarketFaults.sol";
import {IPayments} from "../src/interfaces/IPayments.sol";
import {IRenderMarket} from "../src/interfaces/IRenderMarket.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";

/// @notice The unhappy paths, run by MarketFaults through RenderMarket: reclaim, disagreement
/// and far proofs, contest outcomes, client disputes, refunds.
contract MarketFaultsTest is MarketFixture {
    uint256 internal slash; // slashed wei per proven-fraud tile (collateral share + stake share)
    uint256 internal bounty; // the honest side's (or the jury's) share of it

    function setUp() public override {
        super.setUp();
        slash = _fraudSlash();
        bounty = slash * p.bountyBps / 10_000;
    }

    /*//////////////////////////////////////////////////////////////
                                RECLAIM
    //////////////////////////////////////////////////////////////*/

    function test_reclaim_missedCommitReopensTheTilesAndSlashes() public {
        _stake(alice);
        uint256 job = _post(8, 1);
        uint256 a = _claim(alice, job, 0, 2, 4);
        vm.warp(block.timestamp + LEASE + 1);
        uint256 slashed = 4 * uint256(p.collateralPerTile) * p.slashBps / 10_000;
        uint256 paid = slashed * p.bountyBps / 10_000;
        vm.expectEmit(address(market));
        emit IRenderMarket.LeaseReclaimed(a, job, eve, false);
        vm.expectEmit(address(market));
        emit IStaking.Slashed(alice, a, slashed, IStaking.SlashReason.MissedCommit);
        vm.expectEmit(address(market));
        emit IStaking.CollateralReleased(alice, a, 4 * p.collateralPerTile - slashed);
        vm.expectEmit(address(market));
        emit IPayments.Credited(eve, job, paid, IPayments.CreditReason.Bounty);
        vm.expectEmit(address(market));
        emit IPayments.Credited(client, job, slashed - paid, IPayments.CreditReason.Compensation);
        vm.prank(eve);
        market.reclaim(a);
        assertEq(uint8(market.getLease(a).status), uint8(IRenderMarket.LeaseStatus.Reclaimed));
        assertEq(market.laneBitmap(job, 0, 0), 0);
        assertEq(market.heldBitmap(job, alice, 0), 0);
        assertEq(market.getJob(job).reservedSlots, 0);
        IStaking.WorkerInfo memory w = market.workerInfo(alice);
        assertEq(w.stake, STAKE - slashed);
        assertEq(w.locked, 0);
        assertEq(w.activeTiles, 0);
        assertEq(w.faults, 1);
        // The tiles can be leased again, by anyone.
        _stake(bob);
        _claim(bob, job, 0, 2, 4);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_reclaim_missedRevealDropsTheCommittedSlots() public {
        _stake(alice);
        uint256 job = _post(8, 1);
        uint256 a = _claim(alice, job, 0, 0, 3);
        _commit(a);
        assertEq(market.getJob(job).committedSlots, 3);
        vm.warp(block.timestamp + LEASE + p.revealWindow + 1);
        vm.expectEmit(address(market));
        emit IRenderMarket.LeaseReclaimed(a, job, eve, true);
        vm.prank(eve);
        market.reclaim(a);
        assertEq(market.getJob(job).committedSlots, 0);
        assertEq(market.workerInfo(alice).faults, 1);
    }

    function test_reclaim_jurorThatMissedItsCommitIsReplacedByANewDraw() public {
        (uint256 job,,, uint256 c) = _contested(1);
        uint256[] memory ids = _draw(c);
        _commit(ids[1]);
        _commit(ids[2]);
        vm.warp(block.timestamp + LEASE + 1);
        address squatter = _workerOf(ids[0]);
        vm.expectEmit(address(market));
        emit IRenderMarket.JuryDrawArmed(c, job, uint64(block.number));
        vm.prank(eve);
        market.reclaim(ids[0]);
        assertEq(_contestLive(c).drawBlock, block.number);
        assertEq(market.workerInfo(squatter).faults, 1);
        uint256[] memory again = _draw(c);
        assertTrue(again[0] != ids[0]);
        assertTrue(_workerOf(again[0]) != squatter);
        assertEq(again[1], ids[1]);
        assertEq(again[2], ids[2]);
        assertEq(_contestLive(c).rounds, 2);
    }

    function test_reclaim_revertsOnUnknownLease() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownLease.selector, 4));
        market.reclaim(4);
    }

    function test_reclaim_revertsBeforeTheDeadlines() public {
        _stake(alice);
        uint256 job = _post(8, 1);
        uint256 a = _claim(alice, job, 0, 0, 1);
        uint256 commitDeadline = block.timestamp + LEASE;
        vm.warp(commitDeadline);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketLeaseNotExpired.selector, a, commitDeadline, commitDeadline)
        );
        market.reclaim(a);
        _commit(a);
        uint256 revealDeadline = commitDeadline + p.revealWindow;
        vm.warp(revealDeadline);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketLeaseNotExpired.selector, a, revealDeadline, revealDeadline)
        );
        market.reclaim(a);
    }

    function test_reclaim_revertsOnARevealedLease() public {
        (, uint256 a,) = _twoReplicas();
        vm.warp(block.timestamp + 10 days);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                a,
                IRenderMarket.LeaseStatus.Revealed,
                IRenderMarket.LeaseStatus.Claimed
            )
        );
        market.reclaim(a);
    }

    /*//////////////////////////////////////////////////////////////
                           PROVE DISAGREEMENT
    //////////////////////////////////////////////////////////////*/

    function test_proveDisagreement_opensAJuryLaneAndArmsADraw() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        IRenderMarket.Opening[] memory o = _openings(a, b, 2, _allLeaves());
        uint40 claimDeadline = uint40(block.timestamp + p.tieBreakWindow + LEASE);
        vm.expectEmit(address(market));
        emit IRenderMarket.JuryDrawArmed(1, job, uint64(block.number));
        vm.expectEmit(address(market));
        emit IRenderMarket.DisagreementProven(1, job, 2, a, b, eve, 12 + p.farCount); // 3 leaves + the digest leaf
        vm.expectEmit(address(market));
        emit IRenderMarket.TieBreakerOpened(1, job, 2, 2, claimDeadline);
        vm.prank(eve);
        uint256 c = market.proveDisagreement(job, 2, a, b, o);
        IRenderMarket.Contest memory k = _contestLive(c);
        assertEq(k.jobId, job);
        assertEq(k.tile, 2);
        assertEq(k.lane, 2);
        assertEq(k.claimDeadline, claimDeadline);
        assertEq(k.leaseA, a);
        assertEq(k.leaseB, b);
        assertEq(k.challenger, eve);
        assertEq(k.drawBlock, block.number);
        assertEq(k.seated, 0);
        assertEq(uint8(k.kind), uint8(IRenderMarket.ContestKind.Disagreement));
        assertEq(market.getLease(a).openContests, 1);
        assertEq(market.getLease(b).openContests, 1);
        assertEq(market.getJob(job).contestCount, 1);
        assertEq(market.contestedBitmap(job, 0), 4);
    }

    function test_proveDisagreement_twoLeavesAreEnoughAgainstAForgery() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        uint256[] memory leaves = new uint256[](2);
        (leaves[0], leaves[1]) = (1, 3);
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, leaves);
        vm.prank(eve);
        market.proveDisagreement(job, 0, a, b, o);
    }

    function test_proveDisagreement_revertsBetweenHonestReplicas() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas(0, 0);
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotFarEnough.selector, 0, p.farCount));
        market.proveDisagreement(job, 0, a, b, o);
    }

    function test_proveDisagreement_revertsBelowFarCount() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        uint256[] memory leaves = new uint256[](1);
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, leaves);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotFarEnough.selector, 4, p.farCount));
        market.proveDisagreement(job, 0, a, b, o);
    }

    function test_proveDisagreement_revertsOnUnknownJobOrSameLease() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 9));
        market.proveDisagreement(9, 0, a, b, o);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketSameLease.selector, a));
        market.proveDisagreement(job, 0, a, a, o);
    }

    function test_proveDisagreement_revertsOnLeasesThatCannotBeCompared() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownLease.selector, 99));
        market.proveDisagreement(job, 0, a, 99, o);
        uint256 other = _post(4, 2);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketWrongJob.selector, a, job, other));
        market.proveDisagreement(other, 0, a, b, o);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileNotInLease.selector, a, 4));
        market.proveDisagreement(job, 4, a, b, o);
        _stake(carol);
        uint256 c3 = _claim(carol, other, 0, 0, 4);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                c3,
                IRenderMarket.LeaseStatus.Claimed,
                IRenderMarket.LeaseStatus.Revealed
            )
        );
        market.proveDisagreement(other, 0, c3, c3 + 1, o);
    }

    function test_proveDisagreement_revertsOnAJurorLease() public {
        (uint256 job, uint256 a,, uint256 c) = _contested(1);
        uint256 t = _draw(c)[0];
        IRenderMarket.Opening[] memory o = _openings(a, t, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotReplicaLane.selector, t, 2));
        market.proveDisagreement(job, 1, a, t, o);
    }

    function test_proveDisagreement_revertsAfterTheChallengeWindow() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, _allLeaves());
        uint256 end = block.timestamp + p.challengeWindow;
        vm.warp(end + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketChallengeClosed.selector, end, end + 1));
        market.proveDisagreement(job, 0, a, b, o);
    }

    function test_proveDisagreement_revertsOnASecondContestOfTheTile() public {
        (uint256 job, uint256 a, uint256 b,) = _contested(1);
        IRenderMarket.Opening[] memory o = _openings(a, b, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileAlreadyContested.selector, job, 1));
        market.proveDisagreement(job, 1, a, b, o);
        // Another tile of the same leases can still be contested.
        _proveDisagreement(eve, job, 2, a, b);
    }

    function test_proveDisagreement_revertsOnBadOpeningCounts() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadOpeningCount.selector, 0, 32));
        market.proveDisagreement(job, 0, a, b, new IRenderMarket.Opening[](0));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadOpeningCount.selector, 33, 32));
        market.proveDisagreement(job, 0, a, b, new IRenderMarket.Opening[](33));
    }

    function test_proveDisagreement_revertsOnRepeatedOrOutOfRangeLeaves() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        uint256[] memory leaves = new uint256[](3);
        (leaves[0], leaves[1], leaves[2]) = (0, 2, 2);
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, leaves);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLeafIndex.selector, 2, 2, 4));
        market.proveDisagreement(job, 0, a, b, o);
        o = _openings(a, b, 0, _allLeaves());
        o[3].leaf = 4;
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLeafIndex.selector, 4, 2, 4));
        market.proveDisagreement(job, 0, a, b, o);
    }

    function test_proveDisagreement_revertsOnABadProof() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        IRenderMarket.Opening[] memory o = _openings(a, b, 0, _allLeaves());
        o[2].leafA = ~o[2].leafA; // a made-up leaf
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadProof.selector, a, 2));
        market.proveDisagreement(job, 0, a, b, o);
        o = _openings(a, b, 0, _allLeaves());
        o[1].proofB[0] = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadProof.selector, b, 1));
        market.proveDisagreement(job, 0, a, b, o);
    }

    /*//////////////////////////////////////////////////////////////
                               PROVE FAR
    //////////////////////////////////////////////////////////////*/

    function test_proveFar_recordsTheSideAndProver() public {
        (, uint256 a, uint256 b, uint256 c) = _contested(1);
        uint256 t = _jury(c)[0];
        assertEq(_contestLive(c).leaseT, t);
        IRenderMarket.Opening[] memory o = _openings(b, t, 1, _allLeaves());
        vm.expectEmit(address(market));
        emit IRenderMarket.FarProven(c, b, dave, 12 + p.farCount);
        vm.prank(dave);
        market.proveFar(c, 1, o);
        IRenderMarket.Contest memory k = _contestLive(c);
        assertEq(k.farMask, 2);
        assertEq(k.proverB, dave);
        // Alice (honest) is not far from an honest verdict.
        o = _openings(a, t, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotFarEnough.selector, 0, p.farCount));
        market.proveFar(c, 0, o);
    }

    function test_proveFar_toleratesNoiseOnCoefficientLeaves() public {
        // NOISY (TileTrees kind 4): coefficients within tolerance of the truth, same digest leaf.
        (uint256 job, uint256 a, uint256 b) = _twoReplicas(4, 1);
        uint256 c = _proveDisagreement(eve, job, 1, a, b);
        uint256 t = _jury(c)[0];
        IRenderMarket.Opening[] memory o = _openings(a, t, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotFarEnough.selector, 0, p.farCount));
        market.proveFar(c, 0, o);
    }

    function test_proveFar_revertsOnUnknownOrResolvedContest() public {
        IRenderMarket.Opening[] memory none = new IRenderMarket.Opening[](1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownContest.selector, 1));
        market.proveFar(1, 0, none);
        (,,, uint256 c) = _contested(1);
        vm.warp(block.timestamp + p.tieBreakWindow + 1);
        market.resolveContest(c);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketContestResolved.selector, c));
        market.proveFar(c, 0, none);
    }

    function test_proveFar_revertsOnBadSides() public {
        (,, uint256 b, uint256 c) = _contested(1);
        uint256 t = _jury(c)[0];
        IRenderMarket.Opening[] memory o = _openings(b, t, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadSide.selector, c, 2));
        market.proveFar(c, 2, o);
        market.proveFar(c, 1, o);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadSide.selector, c, 1));
        market.proveFar(c, 1, o);
    }

    function test_proveFar_revertsOnSideBOfADispute() public {
        (,, uint256 c) = _disputed(0);
        _jury(c);
        IRenderMarket.Opening[] memory o = new IRenderMarket.Opening[](1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadSide.selector, c, 1));
        market.proveFar(c, 1, o);
    }

    function test_proveFar_revertsWithoutAFinalVerdict() public {
        (,,, uint256 c) = _contested(1);
        IRenderMarket.Opening[] memory o = new IRenderMarket.Opening[](1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNoVerdict.selector, c));
        market.proveFar(c, 0, o);
        uint256[] memory ids = _draw(c);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNoVerdict.selector, c));
        market.proveFar(c, 0, o);
        // Two of three revealed: the third may still reveal, the verdict is not final.
        forged[ids[0]] = 0;
        _commit(ids[0]);
        _commit(ids[1]);
        _commit(ids[2]);
        _reveal(ids[0]);
        _reveal(ids[1]);
        // The third juror may still reveal: no verdict yet, not even a partial one.
        (uint256 leaseT, uint256 fixedAt) = market.verdict(c);
        assertEq(leaseT, 0);
        assertEq(fixedAt, 0);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNoVerdict.selector, c));
        market.proveFar(c, 0, o);
    }

    function test_proveFar_revertsWithoutAMajority() public {
        (,, uint256 b, uint256 c) = _contested(1);
        uint256[] memory ids = _draw(c);
        // Three different roots: no strict majority, no verdict.
        forged[ids[0]] = 0;
        forged[ids[1]] = 1;
        forged[ids[2]] = 2;
        for (uint256 i; i < 3; ++i) {
            _commit(ids[i]);
        }
        for (uint256 i; i < 3; ++i) {
            _reveal(ids[i]);
        }
        (uint256 leaseT, uint256 fixedAt) = market.verdict(c);
        assertEq(leaseT, 0);
        assertEq(fixedAt, block.timestamp);
        IRenderMarket.Opening[] memory o = _openings(b, ids[0], 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNoVerdict.selector, c));
        market.proveFar(c, 1, o);
    }

    function test_proveFar_revertsAfterTheVerdictsWindow() public {
        (,, uint256 b, uint256 c) = _contested(1);
        uint256 t = _jury(c)[0];
        IRenderMarket.Opening[] memory o = _openings(b, t, 1, _allLeaves());
        uint256 end = block.timestamp + p.challengeWindow;
        vm.warp(end + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketChallengeClosed.selector, end, end + 1));
        market.proveFar(c, 1, o);
    }

    /*//////////////////////////////////////////////////////////////
                          PROVE REPLICA FAR
    //////////////////////////////////////////////////////////////*/

    function test_proveReplicaFar_revertsOnASideOrAJurorLease() public {
        (, uint256 a,, uint256 c) = _contested(1);
        uint256 t = _jury(c)[0];
        IRenderMarket.Opening[] memory o = _openings(a, t, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketContestSide.selector, c, a));
        market.proveReplicaFar(c, a, o);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotReplicaLane.selector, t, 2));
        market.proveReplicaFar(c, t, o);
    }

    /*//////////////////////////////////////////////////////////////
                       DISAGREEMENT OUTCOMES
    //////////////////////////////////////////////////////////////*/

    function test_resolveContest_sideBFarIsSlashedAndPaysTheJury() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        uint256[] memory ids = _jury(c);
        _proveFar(dave, c, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        uint256 share = REWARD / 3;
        vm.expectEmit(address(market));
        emit IRenderMarket.ContestResolved(c, job, 1, IRenderMarket.ContestOutcome.BFar);
        vm.expectEmit(address(market));
        emit IStaking.Slashed(bob, b, slash, IStaking.SlashReason.FarFromTieBreaker);
        vm.expectEmit(address(market));
        emit IPayments.Credited(alice, job, bounty, IPayments.CreditReason.Bounty);
        vm.expectEmit(address(market));
        emit IRenderMarket.TieBreakerSettled(ids[0], c, _workerOf(ids[0]), share);
        vm.prank(eve);
        market.resolveContest(c);
        // The provers (eve, dave) and the caller take nothing: the bounty is the honest side's.
        assertEq(market.pendingBalance(eve), 0);
        assertEq(market.pendingBalance(dave), 0);
        assertEq(market.pendingBalance(alice), bounty);
        assertEq(market.pendingBalance(client), slash - bounty + REWARD % 3);
        for (uint256 i; i < ids.length; ++i) {
            address w = _workerOf(ids[i]);
            assertEq(market.pendingBalance(w), share);
            assertEq(market.workerInfo(w).completed, 1);
            assertEq(market.workerInfo(w).locked, 0);
            assertEq(uint8(market.getLease(ids[i]).status), uint8(IRenderMarket.LeaseStatus.Settled));
        }
        assertEq(market.workerInfo(bob).faults, 1);
        assertEq(market.workerInfo(bob).stake, STAKE - slash);
        assertEq(market.getLease(b).forfeited, 2); // bit of tile 1
        assertEq(market.getLease(b).forfeitedCount, 1);
        assertEq(market.getLease(b).openContests, 0);
        // Settling: alice is paid all 4 tiles, bob the 3 he was not proven wrong on.
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD + bounty);
        assertEq(market.pendingBalance(bob), 3 * REWARD);
        assertEq(market.workerInfo(bob).locked, 0);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_resolveContest_sideAFar() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas(1, 0);
        uint256 c = _proveDisagreement(eve, job, 3, a, b);
        uint256[] memory ids = _jury(c);
        _proveFar(dave, c, 0);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.AFar));
        assertEq(market.getLease(a).forfeited, 8);
        assertEq(market.workerInfo(alice).stake, STAKE - slash);
        assertEq(market.pendingBalance(bob), bounty);
        assertEq(market.pendingBalance(_workerOf(ids[1])), REWARD / 3);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_resolveContest_bothFarSlashesBothAndPaysTheJury() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas(1, 2); // two different forgeries
        uint256 c = _proveDisagreement(eve, job, 1, a, b);
        uint256[] memory ids = _jury(c);
        _proveFar(dave, c, 0);
        _proveFar(dave, c, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.BothFar));
        uint256 bounties = 2 * slash * p.bountyBps / 10_000;
        uint256 pool = 2 * REWARD + bounties;
        assertEq(market.pendingBalance(client), 2 * slash - bounties + pool % 3);
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), pool / 3);
            assertEq(uint8(market.getLease(ids[i]).status), uint8(IRenderMarket.LeaseStatus.Settled));
        }
        assertEq(market.workerInfo(alice).faults, 1);
        assertEq(market.workerInfo(bob).faults, 1);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 3 * REWARD);
        assertEq(market.pendingBalance(bob), 3 * REWARD);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_resolveContest_noneFarLeavesBothSidesPaid() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        uint256[] memory ids = _jury(c);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        vm.expectEmit(address(market));
        emit IRenderMarket.TieBreakerSettled(ids[0], c, _workerOf(ids[0]), 0);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.NoneFar));
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), 0);
            assertEq(market.workerInfo(_workerOf(ids[i])).locked, 0);
        }
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
        assertEq(market.pendingBalance(bob), 4 * REWARD);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_resolveContest_noTieBreakerRefundsTheTile() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        vm.warp(_contestLive(c).claimDeadline + 1);
        vm.expectEmit(address(market));
        emit IRenderMarket.ContestResolved(c, job, 1, IRenderMarket.ContestOutcome.NoTieBreaker);
        vm.expectEmit(address(market));
        emit IPayments.Credited(client, job, 2 * REWARD, IPayments.CreditReason.Refund);
        market.resolveContest(c);
        assertEq(market.getLease(a).forfeitedCount, 1);
        assertEq(market.getLease(b).forfeitedCount, 1);
        assertEq(market.workerInfo(alice).locked, 3 * p.collateralPerTile);
        assertEq(market.workerInfo(alice).faults + market.workerInfo(bob).faults, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_resolveContest_revertsWhileUndecided() public {
        (,,, uint256 c) = _contested(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketContestPending.selector, c, 0));
        market.resolveContest(c);
        uint256[] memory ids = _draw(c);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketContestPending.selector, c, 0));
        market.resolveContest(c);
        _jurorsVote(ids);
        uint256 end = block.timestamp + p.challengeWindow;
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketContestPending.selector, c, end));
        market.resolveContest(c);
        vm.warp(end + 1);
        market.resolveContest(c);
    }

    function test_resolveContest_revertsOnUnknownOrResolvedContest() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownContest.selector, 1));
        market.resolveContest(1);
        (,,, uint256 c) = _contested(1);
        vm.warp(block.timestamp + p.tieBreakWindow + 1);
        market.resolveContest(c);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketContestResolved.selector, c));
        market.resolveContest(c);
    }

    /*//////////////////////////////////////////////////////////////
                                DISPUTE
    //////////////////////////////////////////////////////////////*/

    /// @dev A replication-1 job of 2 tiles, alice's lease revealed (forged or not), disputed on tile 1.
    function _disputed(uint8 forgeA) internal returns (uint256 job, uint256 a, uint256 c) {
        _stake(alice);
        job = _post(2, 1);
        a = _claim(alice, job, 0, 0, 2);
        forged[a] = forgeA;
        _commitReveal(a);
        c = _dispute(job, 1, a);
    }

    function test_dispute_opensAContestWithTheBond() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a);
        vm.expectEmit(address(market));
        emit IRenderMarket.Disputed(1, job, 1, a, p.disputeBond);
        vm.expectEmit(address(market));
        emit IRenderMarket.TieBreakerOpened(1, job, 1, 1, uint40(block.timestamp + p.tieBreakWindow + LEASE));
        uint256 c = _dispute(job, 1, a);
        IRenderMarket.Contest memory k = _contestLive(c);
        assertEq(uint8(k.kind), uint8(IRenderMarket.ContestKind.Dispute));
        assertEq(k.bond, p.disputeBond);
        assertEq(k.leaseB, 0);
        assertEq(k.challenger, client);
        assertEq(k.drawBlock, block.number);
        assertEq(market.getLease(a).openContests, 1);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_dispute_workerFarLosesTheTile() public {
        (uint256 job, uint256 a, uint256 c) = _disputed(1);
        uint256[] memory ids = _jury(c);
        _proveFar(client, c, 0);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.AFar));
        // Client: bond back and the slash less the bounty (the bounty and the tile go to the jury).
        uint256 pool = REWARD + bounty;
        assertEq(market.pendingBalance(client), p.disputeBond + slash - bounty + pool % 3);
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), pool / 3);
            assertEq(uint8(market.getLease(ids[i]).status), uint8(IRenderMarket.LeaseStatus.Settled));
        }
        assertEq(market.workerInfo(alice).faults, 1);
        vm.warp(market.verifiedAt(a) + p.acceptanceWindow + 1);
        market.finalize(job, _ids(a));
        assertEq(market.pendingBalance(alice), REWARD);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_dispute_workerNotFarWinsTheBond() public {
        (uint256 job, uint256 a, uint256 c) = _disputed(0);
        uint256[] memory ids = _jury(c);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.NoneFar));
        uint256 pool = p.disputeBond - p.disputeBond / 2;
        assertEq(market.pendingBalance(alice), p.disputeBond / 2);
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), pool / 3);
        }
        assertEq(market.pendingBalance(client), pool % 3);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), p.disputeBond / 2 + 2 * REWARD);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_dispute_withoutTieBreakerReturnsTheBond() public {
        (uint256 job, uint256 a, uint256 c) = _disputed(0);
        vm.warp(block.timestamp + p.tieBreakWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.NoTieBreaker));
        assertEq(market.pendingBalance(client), p.disputeBond);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_dispute_revertsForOthersAndWrongBonds() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 5));
        market.dispute{value: p.disputeBond}(5, 1, a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotClient.selector, job, eve, client));
        vm.prank(eve);
        market.dispute{value: p.disputeBond}(job, 1, a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketWrongBond.selector, p.disputeBond, 1));
        vm.prank(client);
        market.dispute{value: 1}(job, 1, a);
    }

    function test_dispute_revertsOnAnUnrevealedLease() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                a,
                IRenderMarket.LeaseStatus.Claimed,
                IRenderMarket.LeaseStatus.Revealed
            )
        );
        vm.prank(client);
        market.dispute{value: p.disputeBond}(job, 1, a);
    }

    function test_dispute_revertsAfterTheAcceptanceWindow() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a);
        uint256 end = market.verifiedAt(a) + p.acceptanceWindow;
        vm.warp(end + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketDisputeClosed.selector, a, end, end + 1));
        vm.prank(client);
        market.dispute{value: p.disputeBond}(job, 1, a);
    }

    function test_dispute_revertsOnAContestedTile() public {
        (uint256 job, uint256 a,,) = _contested(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileAlreadyContested.selector, job, 1));
        vm.prank(client);
        market.dispute{value: p.disputeBond}(job, 1, a);
    }

    /*//////////////////////////////////////////////////////////////
                                 REFUND
    //////////////////////////////////////////////////////////////*/

    function test_refund_returnsUnclaimedEscrowAfterTheDeadline() public {
        _stake(alice);
        uint40 deadline = uint40(block.timestamp + 1 days);
        uint256 job = _post(10, 1, deadline);
        uint256 a = _claim(alice, job, 0, 0, 4);
        vm.warp(deadline + 1);
        vm.expectEmit(address(market));
        emit IRenderMarket.Refunded(job, client, 6 * REWARD);
        vm.prank(eve); // anyone may trigger it; the client is credited
        assertEq(market.refund(job), 6 * REWARD);
        assertEq(market.pendingBalance(client), 6 * REWARD);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNothingToRefund.selector, job));
        market.refund(job);
        // The lease expires unused: its 4 tiles become refundable too.
        vm.prank(eve);
        market.reclaim(a);
        assertEq(market.refund(job), 4 * REWARD);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_refund_revertsBeforeTheDeadline() public {
        uint40 deadline = uint40(block.timestamp + 1 days);
        uint256 job = _post(1, 1, deadline);
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobNotExpired.selector, job, deadline, deadline));
        market.refund(job);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 2));
        market.refund(2);
    }

    /*//////////////////////////////////////////////////////////////
                                MODULE
    //////////////////////////////////////////////////////////////*/

    function test_module_calledDirectlySeesAnEmptyMarket() public {
        _post(1, 1);
        MarketFaults module = MarketFaults(market.faultsModule());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 1));
        module.refund(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownLease.selector, 1));
        module.reclaim(1);
        assertEq(address(module).balance, 0);
    }
}
