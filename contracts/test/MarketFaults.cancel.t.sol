// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {MarketFaults} from "../src/MarketFaults.sol";
import {IPayments} from "../src/interfaces/IPayments.sol";
import {IRenderMarket} from "../src/interfaces/IRenderMarket.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";

/// @notice The client's cancel (MarketFaults.cancelJob through RenderMarket): replica lanes close
/// at once, free escrow returns at once, live leases and contests go on as before, escrow they
/// free later is refundable before the deadline, and the reveal horizon comes forward.
contract MarketFaultsCancelTest is MarketFixture {
    /*//////////////////////////////////////////////////////////////
                                 CANCEL
    //////////////////////////////////////////////////////////////*/

    function test_cancelJob_refundsEveryFreeSlotAtOnce() public {
        _stake(alice);
        uint256 job = _post(4, 2); // 8 tile-slots
        _claim(alice, job, 0, 1, 2); // 2 of them reserved
        uint256 free = 6 * REWARD;
        vm.expectEmit(address(market));
        emit IRenderMarket.JobCancelled(job, client, free);
        vm.expectEmit(address(market));
        emit IPayments.Credited(client, job, free, IPayments.CreditReason.Refund);
        vm.prank(client);
        assertEq(market.cancelJob(job), free);

        IRenderMarket.Job memory j = market.getJob(job);
        assertEq(j.cancelledAt, block.timestamp);
        assertEq(j.escrow, 2 * REWARD);
        assertEq(j.reservedSlots, 2);
        assertEq(market.refundable(job), 0);
        assertEq(market.pendingBalance(client), free);
        assertEq(address(market).balance, _owed(1, _everyone()));
        uint256 before = client.balance;
        vm.prank(client);
        market.withdraw();
        assertEq(client.balance, before + free);
    }

    function test_cancelJob_withEverySlotReservedRefundsNothing() public {
        _stake(alice);
        uint256 job = _post(3, 1);
        _claim(alice, job, 0, 0, 3);
        vm.expectEmit(address(market));
        emit IRenderMarket.JobCancelled(job, client, 0);
        vm.prank(client);
        assertEq(market.cancelJob(job), 0);
        assertEq(market.getJob(job).cancelledAt, block.timestamp);
        assertEq(market.getJob(job).escrow, 3 * REWARD);
        assertEq(market.pendingBalance(client), 0);
        // Nothing freed yet: refund has nothing to credit, but is not refused for the deadline.
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNothingToRefund.selector, job));
        market.refund(job);
    }

    function test_cancelJob_closesTheReplicaLanesOnly() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(4, 2);
        _claim(alice, job, 0, 0, 1);
        _cancel(job);
        for (uint32 lane; lane < 2; ++lane) {
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobCancelled.selector, job));
            _claim(bob, job, lane, 2, 1);
            (uint32 first, uint16 count) = market.freeRange(job, lane, address(0), 0, 4);
            assertEq(first, 0);
            assertEq(count, 0);
        }
        // A lane above the replicas is still a tie-breaker lane, and there is no contest yet.
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 2));
        _claim(bob, job, 2, 0, 1);
        // Other jobs are untouched.
        uint256 other = _post(1, 1);
        _claim(bob, other, 0, 0, 1);
    }

    function test_cancelJob_revertsForAnyoneButTheClient() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        _claim(alice, job, 0, 0, 1);
        address[2] memory others = [alice, eve];
        for (uint256 i; i < others.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotClient.selector, job, others[i], client));
            vm.prank(others[i]);
            market.cancelJob(job);
        }
        assertEq(market.getJob(job).cancelledAt, 0);
    }

    function test_cancelJob_revertsTwice() public {
        uint256 job = _post(2, 1);
        _cancel(job);
        vm.warp(block.timestamp + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobCancelled.selector, job));
        vm.prank(client);
        market.cancelJob(job);
    }

    function test_cancelJob_revertsAfterTheDeadline() public {
        uint40 deadline = uint40(block.timestamp + 1 days);
        uint256 late = _post(2, 1, deadline);
        uint256 onTime = _post(2, 1, deadline);
        vm.warp(deadline);
        assertEq(_cancel(onTime), 2 * REWARD); // the deadline itself is still in time
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobExpired.selector, late, deadline, deadline + 1));
        vm.prank(client);
        market.cancelJob(late);
        // After the deadline `refund` is the way out, for anyone.
        vm.prank(eve);
        assertEq(market.refund(late), 2 * REWARD);
    }

    function test_cancelJob_revertsOnAnUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 7));
        vm.prank(client);
        market.cancelJob(7);
    }

    function test_cancelJob_moduleCalledDirectlySeesNoJob() public {
        _post(1, 1);
        MarketFaults module = MarketFaults(market.faultsModule());
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 1));
        vm.prank(client);
        module.cancelJob(1);
        assertEq(market.getJob(1).cancelledAt, 0);
    }

    /*//////////////////////////////////////////////////////////////
                       LIVE LEASES GO ON AS BEFORE
    //////////////////////////////////////////////////////////////*/

    function test_cancelJob_liveLeasesCommitRevealAndArePaid() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(4, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        uint256 b = _claim(bob, job, 0, 2, 1);
        _commit(b);
        assertEq(_cancel(job), REWARD); // tile 3 was free
        _commit(a); // a claimed lease still commits after the cancel
        // Tile 3 never commits now, so reveals wait for the commit window, as on any job
        // whose slots were not all claimed.
        bytes32 root = _root(a);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketRevealTooEarly.selector, a, 3, 4, market.getLease(a).commitDeadline
            )
        );
        vm.prank(alice);
        market.reveal(a, root, RESULT_CID, _salt(a));
        vm.warp(block.timestamp + LEASE + 1);
        _reveal(a);
        _reveal(b);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a));
        vm.warp(market.verifiedAt(b) + p.acceptanceWindow + 1);
        vm.prank(eve);
        market.finalize(job, _ids(b));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
        assertEq(market.pendingBalance(bob), REWARD);
        assertEq(market.pendingBalance(client), REWARD);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(market.workerInfo(alice).completed, 2);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_cancelJob_reclaimedLeasesKeepTheirTilesClosed() public {
        _stake(alice);
        _stake(bob);
        _stake(carol);
        uint256 job = _post(4, 1);
        uint256 a = _claim(alice, job, 0, 0, 2); // will miss its commit
        uint256 b = _claim(bob, job, 0, 2, 1); // will miss its reveal
        _commit(b);
        assertEq(_cancel(job), REWARD);
        vm.warp(block.timestamp + LEASE + 1);
        vm.prank(eve);
        market.reclaim(a);
        // The reclaimed tiles are free in the lane bitmap, and still take no claim.
        assertEq(market.laneBitmap(job, 0, 0), 1 << 2);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobCancelled.selector, job));
        _claim(carol, job, 0, 0, 2);
        // Their escrow is refundable at once, by anyone, long before the deadline.
        assertEq(market.refundable(job), 2 * REWARD);
        assertLt(block.timestamp, market.getJob(job).deadline);
        vm.expectEmit(address(market));
        emit IRenderMarket.Refunded(job, client, 2 * REWARD);
        vm.prank(eve);
        assertEq(market.refund(job), 2 * REWARD);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNothingToRefund.selector, job));
        market.refund(job);

        vm.warp(block.timestamp + p.revealWindow);
        vm.prank(eve);
        market.reclaim(b);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobCancelled.selector, job));
        _claim(carol, job, 0, 2, 1);
        vm.prank(eve);
        assertEq(market.refund(job), REWARD);
        IRenderMarket.Job memory j = market.getJob(job);
        assertEq(j.escrow, 0);
        assertEq(j.reservedSlots, 0);
        assertEq(j.committedSlots, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /*//////////////////////////////////////////////////////////////
                         CONTESTS GO ON AS BEFORE
    //////////////////////////////////////////////////////////////*/

    function test_cancelJob_anOpenContestStillGetsItsJuryAndResolves() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(1);
        assertEq(_cancel(job), 0); // every slot is held
        uint256[] memory ids = _jury(c); // the jury is still drawn
        _proveFar(dave, c, 1); // bob forged
        vm.warp(market.getLease(ids[2]).revealedAt + p.challengeWindow + 1);
        vm.prank(eve);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.BFar));
        vm.prank(client); // verified: the jury's window was after the replicas'
        market.settle(job, _ids(a, b));
        uint256 fraud = _fraudSlash();
        uint256 bounty = fraud * p.bountyBps / 10_000;
        assertEq(market.pendingBalance(alice), 4 * REWARD + bounty); // the honest side's bounty
        assertEq(market.pendingBalance(bob), 3 * REWARD); // tile 1 forfeited
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), REWARD / 3);
        }
        assertEq(market.pendingBalance(client), fraud - bounty + REWARD % 3);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_cancelJob_aContestOpenedAfterTheCancelWorksToo() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a); // every slot committed: it reveals at once
        assertEq(_cancel(job), 0);
        uint256 c = _dispute(job, 1, a);
        uint256[] memory ids = _jury(c); // an honest jury: the client loses
        vm.warp(market.getLease(ids[2]).revealedAt + p.challengeWindow + 1);
        market.resolveContest(c);
        assertEq(uint8(_contestLive(c).outcome), uint8(IRenderMarket.ContestOutcome.NoneFar));
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD + p.disputeBond / 2);
        uint256 pool = p.disputeBond - p.disputeBond / 2;
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.pendingBalance(_workerOf(ids[i])), pool / 3);
        }
        assertEq(market.pendingBalance(client), pool % 3);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    function test_cancelJob_aContestWithoutTieBreakerStillRefundsItsTile() public {
        (uint256 job, uint256 a, uint256 b, uint256 c) = _contested(2);
        _cancel(job);
        vm.warp(_contestLive(c).claimDeadline + 1);
        market.resolveContest(c);
        assertEq(market.pendingBalance(client), 2 * REWARD); // both replicas of tile 2
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
    }

    /*//////////////////////////////////////////////////////////////
                            REVEAL HORIZON
    //////////////////////////////////////////////////////////////*/

    function test_cancelJob_bringsTheRevealHorizonForward() public {
        _stake(alice);
        uint40 deadline = uint40(block.timestamp + 10 days);
        uint256 job = _post(2, 2, deadline);
        uint256 a = _claim(alice, job, 0, 0, 2); // lane 1 is never claimed
        _commit(a);
        vm.warp(block.timestamp + 10 minutes);
        uint256 cancelledAt = block.timestamp;
        _cancel(job);
        vm.warp(block.timestamp + LEASE);
        _reveal(a);
        uint256 window = p.revealWindow + p.challengeWindow;
        // No replica can be claimed any more, so none commits after cancelledAt + LEASE: sooner
        // than the deadline's horizon and than alice's own cap (revealedAt + LEASE + windows).
        assertEq(market.verifiedAt(a), cancelledAt + LEASE + window);
        assertLt(market.verifiedAt(a), block.timestamp + LEASE + window);
        vm.warp(cancelledAt + LEASE + window);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketNotVerified.selector, a, block.timestamp, block.timestamp)
        );
        vm.prank(client);
        market.settle(job, _ids(a));
        vm.warp(block.timestamp + 1);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
    }

    function test_cancelJob_keepsAnEarlierDeadlineAsTheHorizon() public {
        _stake(alice);
        uint40 deadline = uint40(block.timestamp + LEASE + 10 minutes);
        uint256 job = _post(2, 2, deadline);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commit(a);
        vm.warp(block.timestamp + 15 minutes);
        _cancel(job); // cancelledAt + LEASE is 5 minutes after the deadline
        vm.warp(block.timestamp + LEASE);
        _reveal(a);
        assertEq(market.verifiedAt(a), deadline + p.revealWindow + p.challengeWindow);
    }

    /*//////////////////////////////////////////////////////////////
                                  FUZZ
    //////////////////////////////////////////////////////////////*/

    /// @notice Whatever was claimed and committed, and whenever the client cancels before the
    /// deadline: it gets exactly the unreserved escrow, no replica lane takes a claim after, the
    /// live leases finish (honest timely ones are paid, late ones reclaimed), and everything
    /// drains to the client and the workers.
    function testFuzz_cancelJob_refundsTheFreeSlotsAndDrains(
        uint8 tiles,
        uint8 replication,
        uint256 claims,
        uint256 commits,
        uint256 cancelDelay,
        uint256 slack
    ) public {
        tiles = uint8(bound(tiles, 1, 12));
        replication = uint8(bound(replication, 1, 3));
        uint40 deadline = uint40(block.timestamp + LEASE + bound(slack, 0, 3 days));
        uint256 job = _post(tiles, replication, deadline);
        (uint256[] memory leases, uint256 reserved) = _claimSome(job, tiles, replication, claims, commits);
        uint256 escrow = uint256(tiles) * replication * REWARD;
        uint256 cancelAt = block.timestamp + bound(cancelDelay, 0, deadline - block.timestamp);
        uint256 revealAt = block.timestamp + LEASE + 1; // the leases' commit windows have closed
        // Committed leases reveal on time (honest, timely), before or after the cancel.
        if (cancelAt > revealAt) _revealCommitted(leases, revealAt);
        vm.warp(cancelAt);
        assertEq(_cancel(job), escrow - reserved * REWARD);
        assertEq(market.getJob(job).escrow, reserved * REWARD);
        assertEq(market.refundable(job), 0);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketJobCancelled.selector, job));
        _claim(dave, job, uint32(cancelDelay % replication), 0, 1);
        if (cancelAt <= revealAt) _revealCommitted(leases, revealAt);
        // The rest missed their commit: anyone reclaims them (slots stay closed).
        for (uint256 w; w < 3; ++w) {
            if (leases[w] == 0 || market.getLease(leases[w]).status != IRenderMarket.LeaseStatus.Claimed) continue;
            vm.prank(eve);
            market.reclaim(leases[w]);
        }
        vm.warp(block.timestamp + LEASE + p.revealWindow + p.challengeWindow + p.acceptanceWindow + 1);
        uint256 paid = _finalizeRevealed(job, leases);
        if (market.refundable(job) > 0) {
            vm.prank(eve);
            market.refund(job); // cancelled: whether or not the deadline has passed
        }
        assertEq(market.getJob(job).escrow, 0);
        assertEq(address(market).balance, _owed(1, _everyone()));
        // The client got back all it did not pay for, plus its share of the slashes.
        uint256 compensation = market.pendingBalance(client) - (escrow - paid);
        assertLe(compensation, 3 * 4 * uint256(p.collateralPerTile));
    }

    /// @notice After a cancel, a revealed replica lease never verifies before every replica
    /// claimed before the cancel could have revealed and been challenged, and verifies exactly
    /// at min(deadline, cancelledAt + leaseLength) + revealWindow + challengeWindow while a
    /// replica of its tiles is missing. Events run in time order whatever the fuzzed times.
    function testFuzz_cancelJob_horizonCoversEveryLiveReplica(uint256 claimDelay, uint256 cancelDelay, uint256 slack)
        public
    {
        _stake(alice);
        _stake(bob);
        uint40 deadline = uint40(block.timestamp + LEASE + bound(slack, 0, 5 days));
        uint256 job = _post(2, 2, deadline);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commit(a);
        uint256 revealA = block.timestamp + LEASE + 1; // alice reveals once her commit window closed
        uint256 claimB = block.timestamp + bound(claimDelay, 0, deadline - LEASE - block.timestamp);
        uint256 cancelAt = claimB + bound(cancelDelay, 0, deadline - claimB);
        uint256 b;
        if (revealA < claimB) {
            _revealAt(a, revealA);
            vm.warp(claimB);
            // The copy gate: no replica of a revealed tile is claimed any more.
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileRevealed.selector, job, 0));
            _claim(bob, job, 1, 0, 1);
        } else {
            vm.warp(claimB);
            b = _claim(bob, job, 1, 0, 1); // tile 1 of lane 1 stays unclaimed
            _commit(b); // before alice reveals: allowed
        }
        if (revealA >= claimB && revealA < cancelAt) _revealAt(a, revealA);
        vm.warp(cancelAt);
        _cancel(job);
        if (revealA >= cancelAt) _revealAt(a, revealA);

        uint256 last = cancelAt + LEASE < deadline ? cancelAt + LEASE : deadline;
        uint256 horizon = last + p.revealWindow;
        uint256 cap = revealA + LEASE + p.revealWindow;
        assertEq(market.verifiedAt(a), (horizon < cap ? horizon : cap) + p.challengeWindow);
        if (b == 0) return;
        // Bob committed before alice revealed: he reveals at his last moment, inside alice's verification time.
        uint256 bobReveals = market.getLease(b).commitDeadline + p.revealWindow;
        assertGe(market.verifiedAt(a), bobReveals + p.challengeWindow);
        if (block.timestamp <= bobReveals) {
            vm.warp(bobReveals);
            _reveal(b);
            assertLe(block.timestamp + p.challengeWindow, market.verifiedAt(a));
        }
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _cancel(uint256 job) internal returns (uint256) {
        vm.prank(client);
        return market.cancelJob(job);
    }

    /// @dev alice, bob and carol each claim (or not) a fuzzed range in lane w % replication, and
    /// commit (or not); returns the leases (0 = none) and the tile-slots they reserve.
    function _claimSome(uint256 job, uint8 tiles, uint8 replication, uint256 claims, uint256 commits)
        internal
        returns (uint256[] memory leases, uint256 reserved)
    {
        address[3] memory workers = [alice, bob, carol];
        leases = new uint256[](3);
        for (uint256 w; w < 3; ++w) {
            _stake(workers[w]);
            uint256 seed = claims >> (8 * w);
            (uint32 first, uint16 count) = market.freeRange(
                job, uint32(w % replication), workers[w], uint32(seed % tiles), uint16(1 + (seed >> 4) % 4)
            );
            if (count == 0 || (seed >> 6) % 4 == 0) continue; // some workers stay out
            leases[w] = _claim(workers[w], job, uint32(w % replication), first, count);
            reserved += count;
            if ((commits >> w) & 1 == 1) _commit(leases[w]);
        }
    }

    /// @dev Finalizes every revealed lease of `leases` (by eve) and checks its worker's credit.
    function _finalizeRevealed(uint256 job, uint256[] memory leases) internal returns (uint256 paid) {
        for (uint256 i; i < leases.length; ++i) {
            if (leases[i] == 0) continue;
            IRenderMarket.Lease memory l = market.getLease(leases[i]);
            if (l.status != IRenderMarket.LeaseStatus.Revealed) continue;
            vm.prank(eve);
            market.finalize(job, _ids(leases[i]));
            assertEq(market.pendingBalance(l.worker), uint256(l.count) * REWARD, "an honest, timely lease is paid");
            paid += uint256(l.count) * REWARD;
        }
    }

    function _revealAt(uint256 leaseId, uint256 time) internal {
        vm.warp(time);
        _reveal(leaseId);
    }

    /// @dev At `time`, reveals every committed lease of `leases` (0 = none).
    function _revealCommitted(uint256[] memory leases, uint256 time) internal {
        vm.warp(time);
        for (uint256 i; i < leases.length; ++i) {
            if (leases[i] != 0 && market.getLease(leases[i]).status == IRenderMarket.LeaseStatus.Committed) {
                _reveal(leases[i]);
            }
        }
    }
}
