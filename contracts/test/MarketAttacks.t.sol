// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "../src/interfaces/IPayments.sol";
import {IRenderMarket} from "../src/interfaces/IRenderMarket.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";
import {TileTrees} from "./utils/TileTrees.sol";

/// @dev An attacker's contract: draws the jury and reverts the whole transaction unless its
/// sybil got a seat (trying to re-roll a draw it dislikes).
contract DrawReroller {
    function drawOrRevert(IRenderMarket market, uint256 contestId, address sybil) external {
        market.drawJury(contestId);
        uint256[] memory ids = market.jurors(contestId);
        for (uint256 i; i < ids.length; ++i) {
            if (market.getLease(ids[i]).worker == sybil) return;
        }
        revert("sybil not drawn");
    }
}

/// @dev A contract acting as a worker: stakes, claims, commits and reveals in one transaction
/// each, and copies a partner's revealed root when it can.
contract CopyingWorker {
    IRenderMarket internal immutable market;

    constructor(IRenderMarket market_) payable {
        market = market_;
    }

    function stake(uint32 capacity) external payable {
        market.stake{value: msg.value}(capacity);
    }

    function claim(uint256 jobId, uint32 lane, uint32 first, uint16 count) external returns (uint256) {
        return market.claim(jobId, lane, first, count);
    }

    /// @dev Commits to the root another lease revealed (a copy), in one transaction.
    function copy(uint256 leaseId, uint256 victim) external {
        bytes32 root = market.getLease(victim).digest;
        market.commit(leaseId, keccak256(abi.encode(root, address(this), bytes32("s"))));
    }

    receive() external payable {}
}

/// @title MarketAttacksTest
/// @notice Each test mounts one attack on the market (two staked addresses of one attacker, a
/// contract acting as a worker, calls bundled in one transaction) and checks that the honest
/// party ends whole (paid, not slashed, bond back) and the attacker worse off.
contract MarketAttacksTest is MarketFixture {
    address internal mallory = makeAddr("mallory"); // the attacker's second (sybil) address

    uint256 internal fraud; // one proven fraud's slash (tile collateral share + stake share)
    uint256 internal fraudBounty; // its bounty share

    function setUp() public override {
        super.setUp();
        vm.deal(mallory, 1000 ether);
        fraud = _fraudSlash();
        fraudBounty = fraud * p.bountyBps / 10_000;
    }

    /*//////////////////////////////////////////////////////////////
                                 HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev A replication-1 job of 2 tiles; alice's lease revealed (forged or not).
    function _single(uint8 forge) internal returns (uint256 job, uint256 a) {
        _stake(alice);
        job = _post(2, 1);
        a = _claim(alice, job, 0, 0, 2);
        forged[a] = forge;
        _commitReveal(a);
    }

    function _contains(uint256[] memory ids, address who) internal view returns (bool) {
        for (uint256 i; i < ids.length; ++i) {
            if (_workerOf(ids[i]) == who) return true;
        }
        return false;
    }

    function _commitRoot(uint256 leaseId, bytes32 root) internal {
        address w = _workerOf(leaseId);
        vm.prank(w);
        market.commit(leaseId, keccak256(abi.encode(root, w, _salt(leaseId))));
    }

    function _revealRoot(uint256 leaseId, bytes32 root) internal {
        address w = _workerOf(leaseId);
        vm.prank(w);
        market.reveal(leaseId, root, RESULT_CID, _salt(leaseId));
    }

    /*//////////////////////////////////////////////////////////////
                        JURY: SYBILS, COPIES, SQUATTERS
    //////////////////////////////////////////////////////////////*/

    /// Attack: the client disputes a correct tile and tries to judge it itself with a second
    /// address. Cost: the bond and the sybil's fraud slash. Stopped by: jury lanes are never
    /// claimed, the draw excludes the client and the sides, and one sybil of three jurors is
    /// outvoted (and slashed for being off the verdict).
    function test_attack_clientSybilJuror_outvotedAndSlashed() public {
        (uint256 job, uint256 a) = _single(0);
        vm.prank(client); // the client is staked too: the draw must skip it
        market.stake{value: STAKE}(CAPACITY);
        vm.prank(mallory);
        market.stake{value: STAKE}(CAPACITY);
        uint256 c = _dispute(job, 1, a);
        // 1. Claiming the jury lane is refused to the sybil and to the client.
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 1));
        vm.prank(mallory);
        market.claim(job, 1, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 1));
        vm.prank(client);
        market.claim(job, 1, 1, 1);
        // 2. The draw (a block the client could not choose) seats the sybil: the worst case.
        uint256[] memory ids = _drawIncluding(c, mallory);
        assertFalse(_contains(ids, client));
        assertFalse(_contains(ids, alice));
        jurorForge[mallory] = 1; // the sybil reveals a wrong tile to make alice look far
        _jurorsVote(ids);
        (uint256 leaseT,) = market.verdict(c);
        assertTrue(_workerOf(leaseT) != mallory);
        // 3. Alice's tile is not far from the honest verdict.
        IRenderMarket.Opening[] memory o = _openings(a, leaseT, 1, _allLeaves());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotFarEnough.selector, 0, p.farCount));
        vm.prank(client);
        market.proveFar(c, 0, o);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.NoneFar));
        // The sybil juror lost its fraud slash, which the honest jurors share with the bond.
        assertEq(market.workerInfo(mallory).stake, STAKE - fraud);
        assertEq(market.workerInfo(mallory).faults, 1);
        uint256 pool = p.disputeBond - p.disputeBond / 2 + fraud;
        for (uint256 i; i < ids.length; ++i) {
            address w = _workerOf(ids[i]);
            assertEq(market.pendingBalance(w), w == mallory ? 0 : pool / 2);
        }
        // Alice: half the bond, then her whole reward, her stake untouched.
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), p.disputeBond / 2 + 2 * REWARD);
        assertEq(market.workerInfo(alice).stake, STAKE);
        assertEq(market.workerInfo(alice).faults, 0);
        // The attacker (client + mallory) is out the bond and the sybil's slash.
        assertEq(market.pendingBalance(client) + market.pendingBalance(mallory), pool % 2);
        assertEq(address(market).balance, _owed(1, _everyoneAnd(mallory)));
    }

    /// Attack: a juror copies a side's revealed root (the forged one) instead of computing.
    /// Cost: its fraud slash. Stopped by: the honest majority's root is the verdict; jurors off
    /// it are slashed (LostJury) and unpaid.
    function test_attack_jurorCopiesASideRoot_slashed() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        uint256[] memory ids = _draw(c);
        bytes32 copied = TileTrees.root(TileTrees.tileLeaves(job, 1, DEPTH, bob, 1), true); // bob's tile 1
        address copier = _workerOf(ids[0]);
        _commitRoot(ids[0], copied);
        _commit(ids[1]);
        _commit(ids[2]);
        _revealRoot(ids[0], copied);
        _reveal(ids[1]);
        _reveal(ids[2]);
        (uint256 leaseT,) = market.verdict(c);
        assertEq(leaseT, ids[1]);
        _proveFar(alice, c, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        vm.expectEmit(address(market));
        emit IStaking.Slashed(copier, ids[0], fraud, IStaking.SlashReason.LostJury);
        market.resolveContest(c);
        assertEq(market.pendingBalance(copier), 0);
        assertEq(market.workerInfo(copier).stake, STAKE - fraud);
        uint256 pool = REWARD + fraud; // bob's forfeited reward and the copier's slash
        assertEq(market.pendingBalance(_workerOf(ids[1])), pool / 2);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD + fraudBounty);
        assertEq(market.workerInfo(alice).faults, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /// Attack: a drawn juror squats its seat (never commits) to stall or void the contest.
    /// Cost: its missed-commit slash. Stopped by: anyone reclaims it after its commit window and
    /// a new draw refills the seat; the contest resolves on time.
    function test_attack_squattingJuror_reclaimedSlashedReplaced() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        uint256[] memory ids = _draw(c);
        address squatter = _workerOf(ids[0]);
        _commit(ids[1]);
        _commit(ids[2]);
        vm.warp(block.timestamp + LEASE + 1);
        uint256 missed = uint256(p.collateralPerTile) * p.slashBps / 10_000;
        vm.expectEmit(address(market));
        emit IStaking.Slashed(squatter, ids[0], missed, IStaking.SlashReason.MissedCommit);
        vm.prank(eve);
        market.reclaim(ids[0]);
        uint256[] memory again = _draw(c);
        assertTrue(_workerOf(again[0]) != squatter);
        forged[again[0]] = 0;
        _commit(again[0]);
        for (uint256 i; i < 3; ++i) {
            _reveal(again[i]);
        }
        _proveFar(alice, c, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.BFar));
        assertEq(market.workerInfo(squatter).stake, STAKE - missed);
        assertEq(market.pendingBalance(squatter), 0);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD + fraudBounty);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /// Attack: the attacker, having staked two addresses, reverts the draw transaction until
    /// its sybil is drawn (or waits for a better block). Cost: gas. Stopped by: the seed is the
    /// hash of the block armed when the contest opened: every call draws the same jury.
    function test_attack_reRollDrawByReverting_sameJury() public {
        (,,, uint256 c) = _contested(1);
        _stakeJurors();
        vm.prank(mallory);
        market.stake{value: STAKE}(CAPACITY);
        uint256 armed = _contestLive(c).drawBlock;
        DrawReroller reroller = new DrawReroller();
        // A block hash whose jury leaves mallory out.
        uint256 salt;
        address[3] memory expected;
        for (;; ++salt) {
            vm.roll(armed + 1);
            vm.setBlockhash(armed, keccak256(abi.encode("reroll", salt)));
            uint256 snap = vm.snapshotState();
            market.drawJury(c);
            uint256[] memory seated = market.jurors(c);
            bool without = !_contains(seated, mallory) && seated.length == 3;
            for (uint256 i; i < seated.length && without; ++i) {
                expected[i] = _workerOf(seated[i]);
            }
            vm.revertToState(snap);
            if (without) break;
        }
        vm.expectRevert(bytes("sybil not drawn"));
        reroller.drawOrRevert(market, c, mallory);
        // Later blocks change nothing: the armed block decides.
        vm.roll(armed + 50);
        vm.expectRevert(bytes("sybil not drawn"));
        reroller.drawOrRevert(market, c, mallory);
        vm.prank(eve);
        market.drawJury(c);
        uint256[] memory ids = market.jurors(c);
        for (uint256 i; i < 3; ++i) {
            assertEq(_workerOf(ids[i]), expected[i]);
        }
        assertFalse(_contains(ids, mallory));
    }

    /*//////////////////////////////////////////////////////////////
                           DATA AVAILABILITY
    //////////////////////////////////////////////////////////////*/

    /// Attack: a worker reveals a root and withholds the result bytes (nobody can open or check
    /// them). Cost: the lease's rewards and its fraud slash. Stopped by: an availability
    /// challenge left unanswered forfeits the lease; its tiles reopen for an honest worker.
    function test_attack_withheldBytes_unansweredChallengeForfeits() public {
        (uint256 job, uint256 a) = _single(0); // alice withholds
        uint256 ch = _challenge(carol, a, 1, _leaves(0, 3));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketAvailabilityOpen.selector, a, ch));
        vm.prank(client);
        market.settle(job, _ids(a));
        uint256 deadline = market.getAvailabilityChallenge(ch).deadline;
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketAnswerWindow.selector, ch, deadline, deadline));
        market.resolveAvailability(ch);
        vm.warp(deadline + 1);
        uint256 slashed = 2 * uint256(p.collateralPerTile) * p.slashBps / 10_000 + uint256(p.minStake) * p.slashBps
            / 10_000;
        uint256 bounty = slashed * p.bountyBps / 10_000;
        vm.expectEmit(address(market));
        emit IRenderMarket.AvailabilityFailed(ch, a, job);
        vm.expectEmit(address(market));
        emit IStaking.Slashed(alice, a, slashed, IStaking.SlashReason.Unavailable);
        market.resolveAvailability(ch);
        assertEq(uint8(market.getLease(a).status), uint8(IRenderMarket.LeaseStatus.Forfeited));
        assertEq(market.workerInfo(alice).stake, STAKE - slashed);
        assertEq(market.workerInfo(alice).locked, 0);
        // The challenger: bond back plus the bounty; the client the rest of the slash.
        assertEq(market.pendingBalance(carol), p.disputeBond + bounty);
        assertEq(market.pendingBalance(client), slashed - bounty);
        // The tiles reopen: bob computes them and is paid; the client paid nothing for alice's.
        assertEq(market.laneBitmap(job, 0, 0), 0);
        assertEq(market.getJob(job).escrow, 2 * REWARD);
        _stake(bob);
        uint256 b = _claim(bob, job, 0, 0, 2);
        _commitReveal(b);
        _warpVerified(b);
        vm.prank(client);
        market.settle(job, _ids(b));
        assertEq(market.pendingBalance(bob), 2 * REWARD);
        assertEq(market.pendingBalance(alice), 0);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /// Attack: a client griefs an honest worker with availability challenges (gas to answer).
    /// Cost: the answer's gas, out of the challenger's bond. Stopped by: the answerer is credited
    /// gas used x gas price from the bond; the worker is then paid as usual.
    function test_attack_griefingChallenge_answerPaysTheWorkersGas() public {
        (uint256 job, uint256 a) = _single(0);
        uint256 ch = _challenge(client, a, 0, _leaves(1, 2));
        vm.txGasPrice(20 gwei);
        _answer(alice, ch);
        uint256 compensation = market.pendingBalance(alice);
        assertGt(compensation, 50_000 * 20 gwei); // at least the intrinsic and the credits' gas
        assertLt(compensation, p.disputeBond);
        assertEq(market.pendingBalance(client), p.disputeBond - compensation);
        assertEq(uint8(market.getAvailabilityChallenge(ch).status), uint8(IRenderMarket.AvailabilityStatus.Answered));
        assertEq(market.openChallenge(a), 0);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), compensation + 2 * REWARD);
        assertEq(market.workerInfo(alice).faults, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /// Attack: a worker withholds its bytes and also wins a dispute on its (correct) root,
    /// hoping for half the bond. Cost: its lease and fraud slash. Stopped by: a dispute never
    /// awards the bond to a side whose data was proven unavailable; the client gets it back.
    function test_attack_disputeAfterUnavailable_noHalfBondToWithholder() public {
        (uint256 job, uint256 a) = _single(0);
        uint256 c = _dispute(job, 1, a);
        uint256 ch = _challenge(client, a, 1, _leaves(0));
        vm.warp(market.getAvailabilityChallenge(ch).deadline + 1);
        market.resolveAvailability(ch);
        uint256[] memory ids = _jury(c);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.NoneFar));
        uint256 half = p.disputeBond / 2;
        uint256 pool = p.disputeBond - half;
        assertEq(market.pendingBalance(alice), 0);
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), pool / 3);
        }
        uint256 slashed = 2 * uint256(p.collateralPerTile) * p.slashBps / 10_000 + uint256(p.minStake) * p.slashBps
            / 10_000;
        // The client: the challenge bond, the whole slash (it challenged), half the dispute bond, dust.
        assertEq(market.pendingBalance(client), p.disputeBond + slashed + half + pool % 3);
        assertEq(market.getJob(job).escrow, 2 * REWARD); // refundable: nothing was paid for alice's tiles
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /*//////////////////////////////////////////////////////////////
                                 COPIES
    //////////////////////////////////////////////////////////////*/

    /// Attack: wait for a partner to reveal, then claim the other lane and submit its root (no
    /// work). Cost: nothing. Stopped by: no replica claim on a revealed tile.
    function test_attack_claimAfterPartnerRevealed_refused() public {
        _stake(alice);
        uint256 job = _post(2, 2);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commit(a);
        vm.warp(block.timestamp + LEASE + 1); // alice's window closed: she reveals alone
        _reveal(a);
        CopyingWorker copier = new CopyingWorker(market);
        copier.stake{value: STAKE}(CAPACITY);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileRevealed.selector, job, 0));
        copier.claim(job, 1, 0, 2);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileRevealed.selector, job, 1));
        copier.claim(job, 1, 1, 1);
        // Alice is paid in full; the copier holds nothing.
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
        assertEq(market.workerInfo(address(copier)).locked, 0);
    }

    /// Attack: a contract claims the second lane early, sits on the claim and commits to the
    /// partner's root once it is revealed (one transaction). Cost: its missed-commit slash.
    /// Stopped by: no commit on a tile another lane revealed; the lease is reclaimed as any
    /// missed commit.
    function test_attack_commitAfterPartnerRevealed_refusedAndSlashed() public {
        _stake(alice);
        uint256 job = _post(2, 2);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commit(a);
        vm.warp(block.timestamp + 30 minutes);
        CopyingWorker copier = new CopyingWorker(market);
        copier.stake{value: STAKE}(CAPACITY);
        uint256 squat = copier.claim(job, 1, 0, 2); // sits on the claim, its window still open
        vm.warp(market.getLease(a).commitDeadline + 1); // alice's window closed: she reveals alone
        _reveal(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileRevealed.selector, job, 0));
        copier.copy(squat, a);
        uint256 missed = 2 * uint256(p.collateralPerTile) * p.slashBps / 10_000;
        vm.warp(market.getLease(squat).commitDeadline + 1);
        vm.prank(eve);
        market.reclaim(squat);
        assertEq(market.workerInfo(address(copier)).stake, STAKE - missed);
        assertEq(market.workerInfo(address(copier)).faults, 1);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
        assertEq(market.workerInfo(alice).faults, 0);
    }

    /// Attack: one operator runs two lanes (bob and his sybil mallory) revealing the same wrong
    /// root; only one can be contested per tile, hoping the other is paid. Cost: a fraud slash
    /// per lane. Stopped by: proveReplicaFar judges every other replica of the contested tile
    /// against the verdict; it forfeits the tile, is slashed and unpaid.
    function test_attack_sybilLanes_replicaProvenFarAndUnpaid() public {
        _stake(alice);
        _stake(bob);
        vm.prank(mallory);
        market.stake{value: STAKE}(CAPACITY);
        uint256 job = _post(4, 3);
        uint256 a = _claim(alice, job, 0, 0, 4);
        uint256 b = _claim(bob, job, 1, 0, 4);
        vm.prank(mallory);
        uint256 m = market.claim(job, 2, 0, 4);
        (forged[b], forged[m]) = (1, 1); // the same forged output
        _commit(a);
        _commit(b);
        _commit(m);
        _reveal(a);
        _reveal(b);
        _reveal(m);
        assertEq(market.getLease(b).digest, market.getLease(m).digest);
        uint256 c = _proveDisagreement(alice, job, 1, a, b);
        uint256[] memory ids = _jury(c);
        assertFalse(_contains(ids, mallory)); // a replica holder of the tile is never drawn
        _proveFar(alice, c, 1);
        // Mallory's lane waits for the contest too (though not one of its sides).
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketLeaseContested.selector, m, 1));
        vm.prank(client);
        market.settle(job, _ids(m));
        vm.expectEmit(address(market));
        emit IStaking.Slashed(mallory, m, fraud, IStaking.SlashReason.FarFromTieBreaker);
        _proveReplicaFar(eve, c, m);
        assertEq(market.getLease(m).forfeitedCount, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        vm.prank(client);
        market.settle(job, _ids(m));
        assertEq(market.pendingBalance(alice), 4 * REWARD + fraudBounty);
        assertEq(market.pendingBalance(bob), 3 * REWARD);
        assertEq(market.pendingBalance(mallory), 3 * REWARD);
        assertEq(market.pendingBalance(eve), 0); // the replica prover takes nothing
        assertEq(market.workerInfo(mallory).stake, STAKE - fraud);
        assertEq(market.workerInfo(bob).stake, STAKE - fraud);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyoneAnd(mallory)));
    }

    /*//////////////////////////////////////////////////////////////
                            PROOFS AND BOUNTIES
    //////////////////////////////////////////////////////////////*/

    /// Attack: a client posts a job whose tiles are too shallow to ever prove farCount far
    /// pairs (so forged results could never be proven). Stopped by: postJob refuses it.
    function test_attack_leafDepthTooShallow_refusedAtPost() public {
        for (uint8 depth; depth < 2; ++depth) {
            vm.expectRevert(
                abi.encodeWithSelector(IRenderMarket.MarketLeafDepthTooShallow.selector, depth, p.farCount)
            );
            vm.prank(client);
            market.postJob{value: REWARD}(CID, KERNEL, 1, 1, REWARD, LEASE, uint40(block.timestamp + 1 days), 0, depth, 0, NO_FAULT_LIMIT
            );
        }
        vm.prank(client);
        market.postJob{value: REWARD}(CID, KERNEL, 1, 1, REWARD, LEASE, uint40(block.timestamp + 1 days), 0, 2, 0, NO_FAULT_LIMIT);
    }

    /// Attack: forge only the digest leaf (the bundle's framing or extra bytes), keeping every
    /// coefficient honest, so no tolerance comparison catches it. Cost: a fraud slash. Stopped
    /// by: the digest leaf is compared exactly and counts as farCount far pairs alone.
    function test_attack_digestOnlyForgery_provenFar() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas(0, TileTrees.DIGEST_ONLY);
        uint256 last = (uint256(1) << DEPTH) - 1;
        uint256[] memory coefficients = new uint256[](last);
        for (uint256 i; i < last; ++i) {
            coefficients[i] = i;
        }
        IRenderMarket.Opening[] memory o = _openings(a, b, 1, coefficients);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotFarEnough.selector, 0, p.farCount));
        market.proveDisagreement(job, 1, a, b, o);
        uint256[] memory digest = new uint256[](1);
        digest[0] = last;
        o = _openings(a, b, 1, digest);
        vm.prank(alice);
        uint256 c = market.proveDisagreement(job, 1, a, b, o);
        uint256[] memory ids = _jury(c);
        o = _openings(b, ids[0], 1, digest);
        vm.prank(alice);
        market.proveFar(c, 1, o);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.BFar));
        assertEq(market.workerInfo(bob).stake, STAKE - fraud);
        assertEq(market.pendingBalance(alice), fraudBounty);
    }

    /// Attack: a worker that will miss its commit reclaims its own lease to collect the bounty on
    /// its own slash. Stopped by: a self-reclaim's bounty goes to the client.
    function test_attack_selfReclaim_earnsNoBounty() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        vm.warp(block.timestamp + LEASE + 1);
        uint256 missed = 2 * uint256(p.collateralPerTile) * p.slashBps / 10_000;
        vm.prank(alice);
        market.reclaim(a);
        assertEq(market.pendingBalance(alice), 0);
        assertEq(market.pendingBalance(client), missed);
        assertEq(market.workerInfo(alice).stake, STAKE - missed);
    }

    /// Attack: copy a pending proveDisagreement / proveFar from the mempool and send it first
    /// to take the bounty. Cost: gas. Stopped by: slash bounties go to the contest parties (the
    /// honest side, the jury), never to msg.sender.
    function test_attack_frontRunProofs_earnNothing() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas();
        uint256 c = _proveDisagreement(eve, job, 1, a, b); // eve front-ran alice's proof
        uint256[] memory ids = _jury(c);
        _proveFar(eve, c, 1); // and alice's far proof
        vm.warp(block.timestamp + p.challengeWindow + 1);
        vm.prank(eve);
        market.resolveContest(c);
        assertEq(market.pendingBalance(eve), 0);
        assertEq(market.pendingBalance(alice), fraudBounty);
        assertEq(market.pendingBalance(_workerOf(ids[0])), REWARD / 3);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD + fraudBounty);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /// Attack: delay a partner's payment by revealing late elsewhere in the same 256-tile
    /// bitmap word (verifiedAt is tracked per word). Stopped by: verifiedAt is capped at
    /// revealedAt + leaseLength + revealWindow + challengeWindow.
    function test_attack_lateRevealInTheSameWord_verifiedAtCapped() public {
        _stake(alice);
        _stake(bob);
        _stake(carol);
        _stake(dave);
        uint256 job = _post(8, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        uint256 b = _claim(bob, job, 1, 0, 4);
        _commit(a);
        _commit(b);
        vm.warp(block.timestamp + LEASE + 1);
        _reveal(a);
        _reveal(b);
        uint256 cap = market.getLease(a).revealedAt + LEASE + p.revealWindow + p.challengeWindow;
        assertLe(market.verifiedAt(a), cap);
        // The attacker's lanes on tiles 4..7 (same bitmap word) reveal as late as they can.
        vm.warp(block.timestamp + 50 minutes);
        uint256 c3 = _claim(carol, job, 0, 4, 4);
        uint256 d = _claim(dave, job, 1, 4, 4);
        _commit(c3);
        _commit(d);
        vm.warp(market.getLease(d).commitDeadline + p.revealWindow);
        _reveal(c3);
        _reveal(d);
        assertGt(block.timestamp + p.challengeWindow, cap);
        assertEq(market.verifiedAt(a), cap);
        vm.warp(cap + 1);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
    }

    /// Attack: a forger requests unstake of all its free stake before it is proven far, hoping
    /// the fraud slash finds only the tile's collateral. Stopped by: the fraud slash takes its
    /// extra from free stake, then from unbonding stake.
    function test_attack_unstakeBeforeFraudProof_unbondingSlashed() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        IStaking.WorkerInfo memory w = market.workerInfo(bob);
        uint96 free = w.stake - w.locked;
        vm.prank(bob);
        market.requestUnstake(free);
        _jury(c);
        _proveFar(alice, c, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        uint256 lockedPart = uint256(p.collateralPerTile) * p.slashBps / 10_000;
        uint256 extra = uint256(p.minStake) * p.slashBps / 10_000;
        w = market.workerInfo(bob);
        assertEq(w.unbonding, free - extra);
        assertEq(w.stake, STAKE - free - lockedPart);
        assertEq(market.pendingBalance(alice), fraudBounty);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD + fraudBounty);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /*//////////////////////////////////////////////////////////////
                  REPUTATION GATE AND REPLICATION 1
    //////////////////////////////////////////////////////////////*/

    /// @dev Gives each of `workers` `tiles` paid tiles of an ungated replication-1 job (honest
    /// results, settled at once: at replication 1 a lease is verified at its reveal).
    function _earnReputation(address[] memory workers, uint16 tiles) internal {
        uint256 job = _post(uint32(workers.length) * tiles, 1);
        uint256[] memory ids = new uint256[](workers.length);
        for (uint256 i; i < workers.length; ++i) {
            if (market.workerInfo(workers[i]).stake == 0) _stake(workers[i]);
            ids[i] = _claim(workers[i], job, 0, uint32(i) * tiles, tiles);
            _commit(ids[i]);
        }
        for (uint256 i; i < workers.length; ++i) {
            _reveal(ids[i]);
        }
        vm.warp(block.timestamp + 1);
        vm.prank(client);
        market.settle(job, ids);
    }

    /// Attack: a fresh address (no history, or a new sybil of a slashed operator) stakes and
    /// claims a job that asks for reputation, several addresses and a contract worker in turn.
    /// Cost: gas. Stopped by: claim checks the Staking record (tiles paid, faults) against the
    /// job's gate and reverts with both; the job's tiles stay free for a node that qualifies.
    function test_attack_freshAddressClaimsAGatedJob_refused() public {
        address[] memory reputed = new address[](1);
        reputed[0] = alice;
        _earnReputation(reputed, 4);
        uint256 job = _postGated(4, 1, 4, NO_FAULT_LIMIT);
        address[2] memory fresh = [mallory, eve];
        for (uint256 i; i < fresh.length; ++i) {
            vm.prank(fresh[i]);
            market.stake{value: STAKE}(CAPACITY);
            vm.expectRevert(
                abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, fresh[i], 0, 0, 4, NO_FAULT_LIMIT)
            );
            vm.prank(fresh[i]);
            market.claim(job, 0, 0, 4);
        }
        CopyingWorker bot = new CopyingWorker(market); // a contract staking and claiming itself
        bot.stake{value: STAKE}(CAPACITY);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, address(bot), 0, 0, 4, NO_FAULT_LIMIT)
        );
        bot.claim(job, 0, 0, 4);
        assertEq(market.getJob(job).reservedSlots, 0);
        uint256 a = _claim(alice, job, 0, 0, 4);
        assertEq(market.getLease(a).worker, alice);
        assertEq(market.getJob(job).reservedSlots, 4);
    }

    /// Attack: a node slashed once (it missed a commit) claims a job that admits no fault, with
    /// its own address or a fresh one. Cost: gas. Stopped by: faults never decrease (restaking
    /// does not reset them), and a fresh address has no paid tiles for the job's minCompleted.
    function test_attack_slashedNodeClaimsAZeroFaultJob_refused() public {
        address[] memory reputed = new address[](2);
        (reputed[0], reputed[1]) = (bob, carol);
        _earnReputation(reputed, 2);
        uint256 missed = _claim(bob, _post(1, 1), 0, 0, 1);
        vm.warp(block.timestamp + LEASE + 1);
        market.reclaim(missed);
        assertEq(market.workerInfo(bob).faults, 1);
        vm.prank(bob);
        market.stake{value: STAKE}(CAPACITY); // more stake changes nothing
        uint256 job = _postGated(4, 1, 1, 0);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, bob, 2, 1, 1, 0));
        _claim(bob, job, 0, 0, 2);
        vm.prank(mallory);
        market.stake{value: STAKE}(CAPACITY);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, mallory, 0, 0, 1, 0));
        _claim(mallory, job, 0, 0, 2);
        _claim(carol, job, 0, 0, 2); // clean record: admitted
        // A job admitting one fault takes bob.
        _claim(bob, _postGated(4, 1, 1, 1), 0, 0, 2);
    }

    /// Attack: a client disputes a correct tile of a gated job and floods the draw pool with
    /// fresh, heavily staked sybils, hoping they judge it. Cost: their stake's opportunity and
    /// the bond. Stopped by: the draw applies the job's gate to jurors too, so no seat of any
    /// draw goes to a sybil (on the ungated twin of the job, some draw does seat one).
    function test_attack_unreputedSybilJurors_neverSeatedOnAGatedJob() public {
        address[] memory reputed = new address[](4);
        (reputed[0], reputed[1], reputed[2], reputed[3]) = (alice, bob, carol, dave);
        _earnReputation(reputed, 1);
        _stakeJurors(); // six fresh sybils, as heavily staked as the honest nodes
        for (uint256 gated; gated < 2; ++gated) {
            uint256 job = gated == 1 ? _postGated(2, 1, 1, NO_FAULT_LIMIT) : _post(2, 1);
            uint256 a = _claim(alice, job, 0, 0, 2);
            _commitReveal(a);
            uint256 c = _dispute(job, 1, a);
            bool sybilSeated = false;
            for (uint256 salt; salt < 16; ++salt) {
                uint256 snap = vm.snapshotState();
                _drawWith(c, salt);
                uint256[] memory ids = market.jurors(c);
                for (uint256 i; i < ids.length; ++i) {
                    if (ids[i] == 0) continue; // a seat left empty (eight refused picks)
                    address w = _workerOf(ids[i]);
                    bool isReputed = w == bob || w == carol || w == dave;
                    if (!isReputed) sybilSeated = true;
                    if (gated == 1) assertTrue(isReputed, "a gated job's juror has its reputation");
                }
                vm.revertToState(snap);
            }
            if (gated == 0) assertTrue(sybilSeated, "ungated, the same pool seats sybils");
        }
    }

    /// Attack: exploit that a replication-1 lease is verified at its reveal (no replica exists to
    /// prove a disagreement against, so no challenge window runs): the worker finalizes a forged
    /// tile early, or the client is rushed past its chance to dispute. Stopped by: finalize
    /// still waits for the acceptance window after the reveal, in which the client disputes and
    /// challenges availability as before; a disagreement needs a second revealed replica, which
    /// a replication-1 job never has.
    function test_attack_replicationOneVerifiedAtReveal_acceptanceWindowStands() public {
        (uint256 job, uint256 a) = _single(1); // alice forged both tiles
        uint256 revealed = market.getLease(a).revealedAt;
        assertEq(market.verifiedAt(a), revealed);
        vm.warp(revealed + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketAcceptanceOpen.selector, a, revealed + p.acceptanceWindow, revealed + 1
            )
        );
        vm.prank(alice);
        market.finalize(job, _ids(a));
        // No second replica of the tile can exist to prove a disagreement against.
        _stake(bob);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTilesTaken.selector, job, 0, 1, 1));
        _claim(bob, job, 0, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 1));
        _claim(bob, job, 1, 1, 1);
        // At the acceptance window's last second the client still disputes; the verdict takes
        // the forged tile from alice and she is slashed.
        vm.warp(revealed + p.acceptanceWindow);
        uint256 c = _dispute(job, 1, a);
        uint256[] memory ids = _jury(c);
        assertEq(ids.length, p.jurySize);
        _proveFar(client, c, 0);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.AFar));
        assertEq(market.workerInfo(alice).faults, 1);
    }

    /*//////////////////////////////////////////////////////////////
                         EARLY ACCEPTANCE BY THE CLIENT
    //////////////////////////////////////////////////////////////*/

    /// Attack: the client's sybil replica reveals a wrong tile beside an honest one, and the
    /// client accepts its sybil at once, before the challenge window, so the honest worker can no
    /// longer prove the disagreement (and the sybil escapes its slash). Cost: the sybil's reward
    /// is the client's own escrow; the client then refuses to accept the honest lease. Stopped
    /// by: the honest lease stays Revealed and anyone finalizes it after the acceptance window;
    /// alice is paid in full, her stake untouched. All she misses is the bounty the slash of a
    /// replica the client paid itself would have brought.
    function test_attack_clientAcceptsItsWrongSybilEarly_honestReplicaPaidInFull() public {
        _stake(alice);
        vm.prank(mallory);
        market.stake{value: STAKE}(CAPACITY);
        uint256 job = _post(4, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        vm.prank(mallory);
        uint256 m = market.claim(job, 1, 0, 4);
        forged[m] = 1;
        _commit(a);
        _commit(m);
        _reveal(a);
        _reveal(m);
        // The client's sybil replica, accepted in the reveal's own block.
        vm.prank(client);
        market.settle(job, _ids(m));
        assertEq(market.pendingBalance(mallory), 4 * REWARD);
        IRenderMarket.Opening[] memory o = _openings(a, m, 1, _allLeaves());
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                m,
                IRenderMarket.LeaseStatus.Settled,
                IRenderMarket.LeaseStatus.Revealed
            )
        );
        vm.prank(alice);
        market.proveDisagreement(job, 1, a, m, o);
        // The client never accepts alice: the acceptance window runs out and eve finalizes.
        uint256 v = market.verifiedAt(a);
        vm.warp(v + p.acceptanceWindow + 1);
        vm.prank(eve);
        market.finalize(job, _ids(a));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
        assertEq(market.workerInfo(alice).stake, STAKE);
        assertEq(market.workerInfo(alice).faults, 0);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyoneAnd(mallory)));
    }

    /// Attack: the client sees a disagreement coming and races the proof with an early accept
    /// of the replica it wants paid. Stopped by: a proof mined first blocks the accept of both
    /// sides (and of every replica of the tile) until the contest resolves; the loser is slashed.
    function test_attack_earlyAcceptRacesAProof_contestWins() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1); // bob forged
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketLeaseContested.selector, b, 1));
        vm.prank(client);
        market.settle(job, _ids(b));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketLeaseContested.selector, a, 1));
        vm.prank(client);
        market.settle(job, _ids(a));
        _jury(c);
        _proveFar(alice, c, 1);
        vm.warp(block.timestamp + p.challengeWindow + 1);
        market.resolveContest(c);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD + fraudBounty);
        assertEq(market.pendingBalance(bob), 3 * REWARD);
        assertEq(market.workerInfo(bob).stake, STAKE - fraud);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /*//////////////////////////////////////////////////////////////
                                  FUZZ
    //////////////////////////////////////////////////////////////*/

    /// @notice Whatever the stakes and the block hash, the jury is exactly what a model of the
    /// stake-weighted draw predicts (seat s, attempt k: r = keccak(seed, contest, s, k) mod the
    /// stake of the members not excluded picks the member whose stake interval holds r, in
    /// staking order; the client, the sides and seated workers are stepped over, however much
    /// they stake), so weights count and exclusions hold.
    function testFuzz_drawJury_matchesTheWeightedModel(bytes32 hash, uint96[6] memory stakes, uint96 clientStake)
        public
    {
        (uint256 job,,, uint256 c) = _contested(1); // alice (pool index 1) and bob (2) are the sides
        vm.prank(client);
        market.stake{value: bound(clientStake, p.minStake, 5 ether)}(CAPACITY); // index 3, excluded
        address[] memory members = new address[](3 + JURORS);
        (members[0], members[1], members[2]) = (alice, bob, client);
        for (uint256 i; i < JURORS; ++i) {
            vm.prank(jurorPool[i]);
            market.stake{value: bound(stakes[i], p.minStake, 20 ether)}(CAPACITY);
            members[3 + i] = jurorPool[i];
        }
        if (hash == bytes32(0)) hash = bytes32(uint256(1));
        uint256 armed = _contestLive(c).drawBlock;
        vm.roll(armed + 1);
        vm.setBlockhash(armed, hash);
        market.drawJury(c);
        // The model: each pick lands on the stake of the members not excluded (the parties, the
        // jurors seated so far), walked in pool order.
        address[3] memory seat;
        for (uint256 s; s < 3; ++s) {
            uint256 eligible;
            for (uint256 i; i < members.length; ++i) {
                if (!_skipped(members[i], seat)) eligible += market.workerInfo(members[i]).stake;
            }
            uint256 r = uint256(keccak256(abi.encode(hash, c, s, uint256(0)))) % eligible;
            for (uint256 i; i < members.length; ++i) {
                if (_skipped(members[i], seat)) continue;
                uint256 w = market.workerInfo(members[i]).stake;
                if (r < w) {
                    seat[s] = members[i];
                    break;
                }
                r -= w;
            }
        }
        uint256[] memory ids = market.jurors(c);
        uint256 seated = seat[2] != address(0) ? 3 : seat[1] != address(0) ? 2 : seat[0] != address(0) ? 1 : 0;
        assertEq(ids.length, seated);
        for (uint256 s; s < seated; ++s) {
            if (seat[s] == address(0)) {
                assertEq(ids[s], 0);
                continue;
            }
            IRenderMarket.Lease memory l = market.getLease(ids[s]);
            assertEq(l.worker, seat[s]);
            assertEq(l.jobId, job);
            assertEq(l.lane, 2);
            assertEq(l.firstTile, 1);
            assertEq(market.workerInfo(l.worker).locked, p.collateralPerTile);
        }
        // Nobody drawn: the draw is re-armed on this block.
        if (seated == 0) assertEq(_contestLive(c).drawBlock, block.number);
    }

    /// @dev The draw model's exclusions: the contest's parties and the jurors seated so far.
    function _skipped(address who, address[3] memory seat) internal view returns (bool) {
        return who == client || who == alice || who == bob || who == seat[0] || who == seat[1] || who == seat[2];
    }

    /// @notice challengeAvailability accepts exactly 1..32 strictly increasing leaves below
    /// 2^leafDepth of a tile of the lease with the exact bond, and an answer then opens them.
    function testFuzz_challengeAvailability_inputs(uint256 n, uint256 seed, uint32 tile, uint96 bond) public {
        (, uint256 a) = _single(0);
        uint256 leafCount = uint256(1) << DEPTH;
        bool ordered = seed % 2 == 0; // half the runs: leaves 0, 1, 2, ... (valid up to leafCount)
        n = ordered ? bound(n, 0, leafCount + 1) : bound(n, 0, 34);
        uint32[] memory leaves = new uint32[](n);
        bool valid = n >= 1 && n <= 32;
        uint256 previous;
        uint256 badLeaf = type(uint256).max;
        uint256 badPrevious;
        for (uint256 i; i < n; ++i) {
            leaves[i] = ordered ? uint32(i) : uint32(bound(uint256(keccak256(abi.encode(seed, i))), 0, leafCount));
            if (valid && badLeaf == type(uint256).max && ((i != 0 && leaves[i] <= previous) || leaves[i] >= leafCount)) {
                (badLeaf, badPrevious) = (leaves[i], previous);
            }
            previous = leaves[i];
        }
        tile = uint32(bound(tile, 0, 3));
        bond = uint96(bound(bond, p.disputeBond - 1, p.disputeBond + 1));
        vm.deal(carol, 1 ether);
        vm.prank(carol);
        if (tile >= 2) {
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileNotInLease.selector, a, tile));
        } else if (bond != p.disputeBond) {
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketWrongBond.selector, p.disputeBond, bond));
        } else if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadOpeningCount.selector, n, 32));
        } else if (badLeaf != type(uint256).max) {
            vm.expectRevert(
                abi.encodeWithSelector(IRenderMarket.MarketBadLeafIndex.selector, badLeaf, badPrevious, leafCount)
            );
        }
        uint256 id = market.challengeAvailability{value: bond}(a, tile, leaves);
        if (tile >= 2 || bond != p.disputeBond || !valid || badLeaf != type(uint256).max) return;
        challengeLeaves[id] = leaves;
        assertEq(market.openChallenge(a), id);
        _answer(alice, id);
        assertEq(market.openChallenge(a), 0);
        assertEq(market.pendingBalance(carol) + market.pendingBalance(alice), p.disputeBond);
    }

    function _everyoneAnd(address extra) internal view returns (address[] memory all) {
        address[] memory base = _everyone();
        all = new address[](base.length + 1);
        for (uint256 i; i < base.length; ++i) {
            all[i] = base[i];
        }
        all[base.length] = extra;
    }
}
