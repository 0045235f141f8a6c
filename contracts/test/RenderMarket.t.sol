// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IPayments} from "../src/interfaces/IPayments.sol";
import {IRenderMarket} from "../src/interfaces/IRenderMarket.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";

/// @notice The happy-path entry points of RenderMarket and its views.
contract RenderMarketTest is MarketFixture {
    /*//////////////////////////////////////////////////////////////
                                POST JOB
    //////////////////////////////////////////////////////////////*/

    function test_postJob_storesTheJobAndEmitsTheCid() public {
        uint40 deadline = uint40(block.timestamp + 1 days);
        vm.expectEmit(address(market));
        emit IRenderMarket.JobPosted(1, client, KERNEL, CID, 10, 2, REWARD, LEASE, deadline, PRIORITY, DEPTH, 20 * REWARD);
        uint256 job = _post(10, 2, deadline);
        assertEq(job, 1);
        IRenderMarket.Job memory j = market.getJob(job);
        assertEq(j.client, client);
        assertEq(j.deadline, deadline);
        assertEq(j.leaseLength, LEASE);
        assertEq(j.replication, 2);
        assertEq(j.leafDepth, DEPTH);
        assertEq(j.priority, PRIORITY);
        assertEq(j.tileCount, 10);
        assertEq(j.rewardPerTileReplica, REWARD);
        assertEq(j.escrow, 20 * REWARD);
        assertEq(j.manifestHash, keccak256(CID));
        assertEq(j.kernelId, KERNEL);
        assertEq(address(market).balance, 20 * REWARD);
        assertEq(_post(1, 1), 2);
        (uint256 jobs,,) = market.counts();
        assertEq(jobs, 2);
    }

    function testFuzz_postJob_takesExactEscrow(uint32 tiles, uint8 replication, uint96 reward, uint256 extra) public {
        tiles = uint32(bound(tiles, 1, market.MAX_TILES()));
        replication = uint8(bound(replication, 1, market.MAX_REPLICATION()));
        reward = uint96(bound(reward, 1, 1 ether));
        uint256 escrow = uint256(tiles) * replication * reward;
        uint40 deadline = uint40(block.timestamp + LEASE);
        vm.deal(client, escrow + 1);
        extra = bound(extra, 0, 1);
        if (extra == 1) {
            vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketWrongEscrow.selector, escrow, escrow + 1));
        }
        vm.prank(client);
        market.postJob{value: escrow + extra}(CID, KERNEL, tiles, replication, reward, LEASE, deadline, 0, DEPTH, 0, NO_FAULT_LIMIT);
        if (extra == 0) assertEq(market.getJob(1).escrow, escrow);
    }

    function _postExpectingRevert(
        bytes memory err,
        bytes memory cid,
        uint32 tiles,
        uint8 replication,
        uint96 reward,
        uint32 leaseLength,
        uint40 deadline,
        uint8 depth,
        uint256 value
    ) internal {
        vm.expectRevert(err);
        vm.prank(client);
        market.postJob{value: value}(cid, KERNEL, tiles, replication, reward, leaseLength, deadline, 0, depth, 0, NO_FAULT_LIMIT);
    }

    function test_postJob_revertsOnBadCid() public {
        uint40 d = uint40(block.timestamp + 1 days);
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadCid.selector, 0, 128), "", 1, 1, REWARD, LEASE, d, DEPTH, REWARD
        );
        bytes memory long = new bytes(129);
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadCid.selector, 129, 128), long, 1, 1, REWARD, LEASE, d, DEPTH, REWARD
        );
    }

    function test_postJob_revertsOnBadTileCount() public {
        uint40 d = uint40(block.timestamp + 1 days);
        uint32 max = uint32(market.MAX_TILES());
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadTileCount.selector, 0, max), CID, 0, 1, REWARD, LEASE, d, DEPTH, 0
        );
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadTileCount.selector, max + 1, max),
            CID,
            max + 1,
            1,
            REWARD,
            LEASE,
            d,
            DEPTH,
            0
        );
    }

    function test_postJob_revertsOnBadReplication() public {
        uint40 d = uint40(block.timestamp + 1 days);
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadReplication.selector, 0, 8), CID, 1, 0, REWARD, LEASE, d, DEPTH, 0
        );
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadReplication.selector, 9, 8), CID, 1, 9, REWARD, LEASE, d, DEPTH, 0
        );
    }

    function test_postJob_revertsOnZeroReward() public {
        uint40 d = uint40(block.timestamp + 1 days);
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketZeroReward.selector), CID, 1, 1, 0, LEASE, d, DEPTH, 0
        );
    }

    function test_postJob_revertsOnBadLeaseLength() public {
        uint40 d = uint40(block.timestamp + 10 days);
        uint32 max = p.maxLeaseLength;
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadLeaseLength.selector, 0, max), CID, 1, 1, REWARD, 0, d, DEPTH, REWARD
        );
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadLeaseLength.selector, max + 1, max),
            CID,
            1,
            1,
            REWARD,
            max + 1,
            d,
            DEPTH,
            REWARD
        );
    }

    function test_postJob_revertsOnDeadlineTooSoon() public {
        uint40 d = uint40(block.timestamp + LEASE - 1);
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadDeadline.selector, d, block.timestamp + LEASE),
            CID,
            1,
            1,
            REWARD,
            LEASE,
            d,
            DEPTH,
            REWARD
        );
    }

    function test_postJob_revertsOnBadLeafDepth() public {
        uint40 d = uint40(block.timestamp + 1 days);
        _postExpectingRevert(
            abi.encodeWithSelector(IRenderMarket.MarketBadLeafDepth.selector, 25, 24), CID, 1, 1, REWARD, LEASE, d, 25, REWARD
        );
    }

    /*//////////////////////////////////////////////////////////////
                                 CLAIM
    //////////////////////////////////////////////////////////////*/

    function test_claim_leasesTheRangeAndLocksCollateral() public {
        _stake(alice);
        uint256 job = _post(300, 2);
        uint40 commitDeadline = uint40(block.timestamp + LEASE);
        vm.expectEmit(address(market));
        emit IStaking.CollateralLocked(alice, 1, 12 * p.collateralPerTile);
        vm.expectEmit(address(market));
        emit IRenderMarket.TilesClaimed(1, job, alice, 1, 250, 12, commitDeadline, commitDeadline + p.revealWindow);
        uint256 lease = _claim(alice, job, 1, 250, 12);
        IRenderMarket.Lease memory l = market.getLease(lease);
        assertEq(l.worker, alice);
        assertEq(uint8(l.status), uint8(IRenderMarket.LeaseStatus.Claimed));
        assertEq(l.jobId, job);
        assertEq(l.lane, 1);
        assertEq(l.firstTile, 250);
        assertEq(l.count, 12);
        assertEq(l.commitDeadline, commitDeadline);
        // Tiles 250..261 straddle two bitmap words.
        assertEq(market.laneBitmap(job, 1, 0), uint256(0x3f) << 250);
        assertEq(market.laneBitmap(job, 1, 1), 0x3f);
        assertEq(market.laneBitmap(job, 0, 0), 0);
        assertEq(market.heldBitmap(job, alice, 1), 0x3f);
        IStaking.WorkerInfo memory w = market.workerInfo(alice);
        assertEq(w.locked, 12 * p.collateralPerTile);
        assertEq(w.activeTiles, 12);
        assertEq(market.getJob(job).reservedSlots, 12);
    }

    function testFuzz_claim_disjointRangesAllSucceed(uint16 c1, uint16 c2) public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(600, 1);
        c1 = uint16(bound(c1, 1, 256));
        c2 = uint16(bound(c2, 1, 256));
        uint256 a = _claim(alice, job, 0, 0, c1);
        uint256 b = _claim(bob, job, 0, c1, c2);
        assertEq(market.getLease(b).firstTile, c1);
        assertEq(market.getJob(job).reservedSlots, uint256(c1) + c2);
        (uint32 first, uint16 count) = market.freeRange(job, 0, address(0), 0, 1000);
        assertEq(first, uint256(c1) + c2);
        assertEq(count, 600 - uint256(c1) - c2);
        assertTrue(a != b);
    }

    function test_claim_revertsOnUnknownJob() public {
        _stake(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 9));
        _claim(alice, 9, 0, 0, 1);
    }

    function test_claim_revertsOnBadRange() public {
        _stake(alice);
        uint256 job = _post(300, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadRange.selector, 0, 0, 300));
        _claim(alice, job, 0, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadRange.selector, 0, 257, 300));
        _claim(alice, job, 0, 0, 257);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadRange.selector, 299, 2, 300));
        _claim(alice, job, 0, 299, 2);
    }

    function test_claim_revertsWhenTheLeaseWouldOutliveTheDeadline() public {
        _stake(alice);
        uint40 deadline = uint40(block.timestamp + 2 * LEASE);
        uint256 job = _post(4, 1, deadline);
        vm.warp(deadline - LEASE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketClaimClosed.selector, job, deadline, deadline + 1)
        );
        _claim(alice, job, 0, 0, 1);
    }

    function test_claim_revertsOnTakenTiles() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(8, 1);
        _claim(alice, job, 0, 2, 3);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTilesTaken.selector, job, 0, 4, 2));
        _claim(bob, job, 0, 4, 2);
    }

    function test_claim_revertsOnASecondReplicaOfATile() public {
        _stake(alice);
        uint256 job = _post(8, 2);
        _claim(alice, job, 0, 0, 4);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketTileHeld.selector, job, alice, 3, 2));
        _claim(alice, job, 1, 3, 2);
        _claim(alice, job, 1, 4, 2); // other tiles of lane 1 are fine
    }

    function test_claim_revertsWithoutMinimumStake() public {
        uint256 job = _post(8, 1);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingBelowMinimum.selector, 0, p.minStake));
        _claim(eve, job, 0, 0, 1);
    }

    function test_claim_revertsBeyondCapacity() public {
        vm.prank(alice);
        market.stake{value: STAKE}(5);
        uint256 job = _post(8, 1);
        _claim(alice, job, 0, 0, 3);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingCapacityExceeded.selector, 3, 3, 5));
        _claim(alice, job, 0, 3, 3);
    }

    function test_claim_revertsWithoutFreeStake() public {
        vm.prank(alice);
        market.stake{value: p.minStake}(1000);
        uint256 job = _post(200, 1);
        uint256 perTile = p.collateralPerTile;
        uint16 fits = uint16(p.minStake / perTile);
        _claim(alice, job, 0, 0, fits);
        vm.expectRevert(abi.encodeWithSelector(IStaking.StakingInsufficientFree.selector, perTile, 0));
        _claim(alice, job, 0, fits, 1);
    }

    function test_claim_revertsOnALaneWithoutContest() public {
        _stake(alice);
        uint256 job = _post(8, 2);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 2));
        _claim(alice, job, 2, 0, 1);
    }

    /*//////////////////////////////////////////////////////////////
                   REPUTATION GATE AND ADVERTISEMENTS
    //////////////////////////////////////////////////////////////*/

    function test_postJob_storesTheReputationGate() public {
        IRenderMarket.Job memory open = market.getJob(_post(1, 1));
        assertEq(open.minCompleted, 0);
        assertEq(open.maxFaults, NO_FAULT_LIMIT);
        assertEq(market.NO_FAULT_LIMIT(), NO_FAULT_LIMIT);
        uint256 job = _postGated(1, 1, 40, 2);
        IRenderMarket.Job memory j = market.getJob(job);
        assertEq(j.minCompleted, 40);
        assertEq(j.maxFaults, 2);
        assertEq(j.escrow, REWARD); // shares its slot with the gate
    }

    function test_claim_revertsBelowTheReputationGateUntilTheTilesArePaid() public {
        _stake(alice);
        uint256 gated = _postGated(4, 1, 2, NO_FAULT_LIMIT);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, alice, 0, 0, 2, NO_FAULT_LIMIT)
        );
        _claim(alice, gated, 0, 0, 1);
        // Two tiles revealed but not yet paid do not count.
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, alice, 0, 0, 2, NO_FAULT_LIMIT)
        );
        _claim(alice, gated, 0, 0, 1);
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.workerInfo(alice).completed, 2);
        _claim(alice, gated, 0, 0, 1);
    }

    function test_claim_maxFaultsCountsEverySlash() public {
        _stake(alice);
        uint256 missed = _claim(alice, _post(1, 1), 0, 0, 1);
        vm.warp(block.timestamp + LEASE + 1);
        market.reclaim(missed);
        uint256 strict = _postGated(2, 1, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketReputationTooLow.selector, alice, 0, 1, 0, 0));
        _claim(alice, strict, 0, 0, 1);
        _claim(alice, _postGated(2, 1, 0, 1), 0, 0, 1);
    }

    function test_advertise_storesTheFigureAndItsTime() public {
        (uint32 ms, uint40 updatedAt) = market.advertisement(alice, KERNEL);
        assertEq(ms, 0);
        assertEq(updatedAt, 0);
        vm.expectEmit(address(market));
        emit IRenderMarket.WorkerAdvertised(alice, KERNEL, 2500);
        vm.prank(alice);
        market.advertise(KERNEL, 2500);
        (ms, updatedAt) = market.advertisement(alice, KERNEL);
        assertEq(ms, 2500);
        assertEq(updatedAt, block.timestamp);
        (ms,) = market.advertisement(alice, keccak256("shade-v1"));
        assertEq(ms, 0, "per kernel");
        vm.warp(block.timestamp + 60);
        vm.prank(alice);
        market.advertise(KERNEL, 0); // withdrawn
        (ms, updatedAt) = market.advertisement(alice, KERNEL);
        assertEq(ms, 0);
        assertEq(updatedAt, block.timestamp);
    }

    function test_workerProfiles_pagesThroughTheDrawPool() public {
        _stake(alice);
        _stake(bob);
        vm.prank(carol);
        market.stake{value: STAKE}(7);
        vm.prank(bob);
        market.advertise(KERNEL, 1200);
        _claim(carol, _post(4, 1), 0, 0, 3);
        IRenderMarket.WorkerProfile[] memory page = market.workerProfiles(KERNEL, 0, 2);
        assertEq(page.length, 2);
        assertEq(page[0].worker, alice);
        assertEq(page[0].msPerTile, 0);
        assertEq(page[1].worker, bob);
        assertEq(page[1].msPerTile, 1200);
        assertEq(page[1].advertisedAt, block.timestamp);
        assertEq(page[1].stake, STAKE);
        page = market.workerProfiles(KERNEL, 2, 100);
        assertEq(page.length, 1);
        assertEq(page[0].worker, carol);
        assertEq(page[0].capacity, 7);
        assertEq(page[0].activeTiles, 3);
        assertEq(page[0].completed, 0);
        assertEq(page[0].faults, 0);
        assertEq(market.workerProfiles(KERNEL, 3, 100).length, 0);
        assertEq(market.workerProfiles(KERNEL, type(uint256).max, type(uint256).max).length, 0);
        assertEq(market.workerProfiles(KERNEL, 1, type(uint256).max).length, 2);
    }

    /*//////////////////////////////////////////////////////////////
                        JURY LANES ARE NEVER CLAIMED
    //////////////////////////////////////////////////////////////*/

    function test_claim_juryLaneIsRefusedToEveryone() public {
        (uint256 job,,, uint256 c) = _contested(1);
        _stake(carol);
        IRenderMarket.Contest memory k = _contestLive(c);
        assertEq(k.lane, 2);
        assertEq(market.tieBreakerContest(job, 2), c);
        // Whoever could claim the jury lane could choose to judge: nobody may, on any tile.
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 2));
        _claim(carol, job, 2, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 2));
        _claim(carol, job, 2, 0, 1);
        vm.prank(client);
        market.stake{value: STAKE}(10);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 2));
        _claim(client, job, 2, 1, 1);
        assertEq(_contestLive(c).leaseT, 0);
        assertEq(market.getJob(job).reservedSlots, 8);
    }

    function test_claim_juryLaneIsRefusedOnAResolvedContest() public {
        (uint256 job,,, uint256 c) = _contested(1);
        _stake(carol);
        vm.warp(_contestLive(c).claimDeadline + 1);
        market.resolveContest(c);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadLane.selector, job, 2));
        _claim(carol, job, 2, 1, 1);
    }

    function test_drawJury_seatsJurorsInTheJuryLane() public {
        (uint256 job,,, uint256 c) = _contested(1);
        uint256[] memory ids = _draw(c);
        assertEq(ids.length, 3);
        IRenderMarket.Contest memory k = _contestLive(c);
        assertEq(k.seated, 3);
        assertEq(k.drawBlock, 0);
        assertEq(k.rounds, 1);
        for (uint256 i; i < ids.length; ++i) {
            IRenderMarket.Lease memory l = market.getLease(ids[i]);
            assertEq(l.lane, 2);
            assertEq(l.firstTile, 1);
            assertEq(l.count, 1);
            assertEq(uint8(l.status), uint8(IRenderMarket.LeaseStatus.Claimed));
            assertEq(l.commitDeadline, block.timestamp + LEASE);
            assertTrue(l.worker != alice && l.worker != bob && l.worker != client);
            assertEq(market.workerInfo(l.worker).locked, p.collateralPerTile);
        }
        assertEq(market.getJob(job).reservedSlots, 8); // jurors reserve no replica slot
    }

    function test_drawJury_revertsInTheOpeningBlockAndAfterTheWindow() public {
        (,,, uint256 c) = _contested(1);
        _stakeJurors();
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketDrawNotReady.selector, c, block.number, block.number));
        market.drawJury(c);
        IRenderMarket.Contest memory k = _contestLive(c);
        uint256 drawEnd = k.claimDeadline - LEASE;
        vm.warp(drawEnd + 1);
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketDrawClosed.selector, c, drawEnd, drawEnd + 1));
        market.drawJury(c);
    }

    function test_drawJury_revertsOnceDrawn() public {
        (,,, uint256 c) = _contested(1);
        _draw(c);
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketDrawNotReady.selector, c, 0, block.number));
        market.drawJury(c);
    }

    function test_drawJury_reArmsAStaleBlock() public {
        (uint256 job,,, uint256 c) = _contested(1);
        _stakeJurors();
        uint256 armed = _contestLive(c).drawBlock;
        vm.roll(armed + 300);
        vm.setBlockhash(armed, bytes32(0));
        vm.expectEmit(address(market));
        emit IRenderMarket.JuryDrawArmed(c, job, uint64(armed + 300));
        market.drawJury(c);
        assertEq(_contestLive(c).drawBlock, armed + 300);
        assertEq(_contestLive(c).seated, 0);
        _draw(c);
        assertEq(_contestLive(c).seated, 3);
    }

    /*//////////////////////////////////////////////////////////////
                                 COMMIT
    //////////////////////////////////////////////////////////////*/

    function test_commit_storesTheCommitment() public {
        _stake(alice);
        uint256 job = _post(4, 2);
        uint256 lease = _claim(alice, job, 0, 0, 3);
        bytes32 commitment = keccak256("c");
        vm.expectEmit(address(market));
        emit IRenderMarket.Committed(lease, job, alice, commitment);
        vm.prank(alice);
        market.commit(lease, commitment);
        assertEq(market.getLease(lease).digest, commitment);
        assertEq(uint8(market.getLease(lease).status), uint8(IRenderMarket.LeaseStatus.Committed));
        assertEq(market.getJob(job).committedSlots, 3);
    }

    function test_commit_revertsOnUnknownLease() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownLease.selector, 5));
        market.commit(5, bytes32(uint256(1)));
    }

    function test_commit_revertsForAnotherWorker() public {
        _stake(alice);
        uint256 lease = _claim(alice, _post(4, 1), 0, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotLeaseWorker.selector, lease, bob, alice));
        vm.prank(bob);
        market.commit(lease, bytes32(uint256(1)));
    }

    function test_commit_revertsWhenAlreadyCommitted() public {
        _stake(alice);
        uint256 lease = _claim(alice, _post(4, 1), 0, 0, 1);
        _commit(lease);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                lease,
                IRenderMarket.LeaseStatus.Committed,
                IRenderMarket.LeaseStatus.Claimed
            )
        );
        vm.prank(alice);
        market.commit(lease, bytes32(uint256(1)));
    }

    function test_commit_revertsAfterTheCommitDeadline() public {
        _stake(alice);
        uint256 lease = _claim(alice, _post(4, 1), 0, 0, 1);
        uint256 deadline = block.timestamp + LEASE;
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderMarket.MarketLeaseExpired.selector, lease, deadline, deadline + 1)
        );
        vm.prank(alice);
        market.commit(lease, bytes32(uint256(1)));
    }

    function test_commit_revertsOnZeroCommitment() public {
        _stake(alice);
        uint256 lease = _claim(alice, _post(4, 1), 0, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketZeroCommitment.selector, lease));
        vm.prank(alice);
        market.commit(lease, bytes32(0));
    }

    /*//////////////////////////////////////////////////////////////
                                 REVEAL
    //////////////////////////////////////////////////////////////*/

    function test_reveal_onceEveryReplicaSlotCommitted() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(2, 2);
        uint256 a = _claim(alice, job, 0, 0, 2);
        uint256 b = _claim(bob, job, 1, 0, 2);
        _commit(a);
        _commit(b);
        bytes32 root = _root(a);
        vm.expectEmit(address(market));
        emit IRenderMarket.Revealed(a, job, alice, root, RESULT_CID);
        _reveal(a);
        IRenderMarket.Lease memory l = market.getLease(a);
        assertEq(l.digest, root);
        assertEq(l.revealedAt, block.timestamp);
        assertEq(uint8(l.status), uint8(IRenderMarket.LeaseStatus.Revealed));
        assertEq(market.workerInfo(alice).activeTiles, 0);
        assertEq(market.revealedBitmap(job, 0, 0), 3);
    }

    function test_reveal_afterTheCommitWindowWithoutAllCommits() public {
        _stake(alice);
        uint256 job = _post(4, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commit(a);
        uint256 deadline = block.timestamp + LEASE;
        bytes32 root = _root(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketRevealTooEarly.selector, a, 2, 4, deadline));
        vm.prank(alice);
        market.reveal(a, root, RESULT_CID, _salt(a));
        vm.warp(deadline + 1);
        _reveal(a);
        // Replication 1 keeps no revealed bitmap and has no replica to compare: verified at
        // the reveal.
        assertEq(market.revealedBitmap(job, 0, 0), 0);
        assertEq(market.verifiedAt(a), block.timestamp);
    }

    function test_reveal_revertsForAnotherWorker() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        _commit(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotLeaseWorker.selector, a, bob, alice));
        vm.prank(bob);
        market.reveal(a, bytes32(uint256(1)), RESULT_CID, bytes32(0));
    }

    function test_reveal_revertsBeforeCommit() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                a,
                IRenderMarket.LeaseStatus.Claimed,
                IRenderMarket.LeaseStatus.Committed
            )
        );
        vm.prank(alice);
        market.reveal(a, bytes32(uint256(1)), RESULT_CID, bytes32(0));
    }

    function test_reveal_revertsAfterTheRevealDeadline() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        _commit(a);
        uint256 deadline = block.timestamp + LEASE + p.revealWindow;
        vm.warp(deadline + 1);
        bytes32 root = _root(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketLeaseExpired.selector, a, deadline, deadline + 1));
        vm.prank(alice);
        market.reveal(a, root, RESULT_CID, _salt(a));
    }

    function test_reveal_revertsOnZeroRoot() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        _commit(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketZeroRoot.selector, a));
        vm.prank(alice);
        market.reveal(a, bytes32(0), RESULT_CID, _salt(a));
    }

    function test_reveal_revertsOnBadResultCid() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        _commit(a);
        bytes32 root = _root(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadCid.selector, 0, 128));
        vm.prank(alice);
        market.reveal(a, root, "", _salt(a));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadCid.selector, 129, 128));
        vm.prank(alice);
        market.reveal(a, root, new bytes(129), _salt(a));
    }

    function test_reveal_revertsOnAnotherRootOrSalt() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        _commit(a);
        bytes32 commitment = market.getLease(a).digest;
        bytes32 root = _root(a);
        bytes32 wrong = keccak256(abi.encode(root, alice, bytes32(uint256(7))));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketCommitmentMismatch.selector, a, commitment, wrong));
        vm.prank(alice);
        market.reveal(a, root, RESULT_CID, bytes32(uint256(7)));
        wrong = keccak256(abi.encode(~root, alice, _salt(a)));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketCommitmentMismatch.selector, a, commitment, wrong));
        vm.prank(alice);
        market.reveal(a, ~root, RESULT_CID, _salt(a));
    }

    function test_reveal_bindsTheWorkerAddress() public {
        // Bob copies alice's commitment; his reveal of her root and salt cannot match it.
        _stake(alice);
        _stake(bob);
        uint256 job = _post(1, 2);
        uint256 a = _claim(alice, job, 0, 0, 1);
        uint256 b = _claim(bob, job, 1, 0, 1);
        _commit(a);
        bytes32 copied = market.getLease(a).digest;
        vm.prank(bob);
        market.commit(b, copied);
        bytes32 root = _root(a);
        bytes32 computed = keccak256(abi.encode(root, bob, _salt(a)));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketCommitmentMismatch.selector, b, copied, computed));
        vm.prank(bob);
        market.reveal(b, root, RESULT_CID, _salt(a));
    }

    function test_reveal_jurorMayRevealAContestedRoot() public {
        // Honest replicas that ran the same FFT plans are bit-identical (fhe_core/AGREEMENT.md):
        // jurors' roots equal to side A's are accepted, and the verdict is A's root.
        _stake(alice);
        _stake(bob);
        uint256 job = _post(1, 2);
        uint256 a = _claim(alice, job, 0, 0, 1);
        uint256 b = _claim(bob, job, 1, 0, 1);
        forged[b] = 1;
        _commit(a);
        _commit(b);
        _reveal(a);
        _reveal(b);
        uint256 c = _proveDisagreement(eve, job, 0, a, b);
        uint256[] memory ids = _jury(c);
        bytes32 same = market.getLease(a).digest;
        for (uint256 i; i < ids.length; ++i) {
            assertEq(market.getLease(ids[i]).digest, same);
            assertEq(uint8(market.getLease(ids[i]).status), uint8(IRenderMarket.LeaseStatus.Revealed));
        }
        (uint256 leaseT, uint256 fixedAt) = market.verdict(c);
        assertEq(leaseT, ids[0]);
        assertEq(fixedAt, block.timestamp);
        assertEq(_contestLive(c).leaseT, ids[0]);
    }

    function test_reveal_jurorWaitsForTheOtherJurorsCommits() public {
        (,,, uint256 c) = _contested(1);
        uint256[] memory ids = _draw(c);
        _commit(ids[0]);
        address w = market.getLease(ids[0]).worker;
        bytes32 root = _root(ids[0]);
        uint256 jurorDeadline = _contestLive(c).jurorDeadline;
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketRevealTooEarly.selector, ids[0], 1, 3, jurorDeadline));
        vm.prank(w);
        market.reveal(ids[0], root, RESULT_CID, _salt(ids[0]));
    }

    /*//////////////////////////////////////////////////////////////
                            SETTLE / FINALIZE
    //////////////////////////////////////////////////////////////*/

    function test_settle_paysVerifiedLeases() public {
        (uint256 job, uint256 a, uint256 b) = _honestPair();
        _warpVerified(a);
        vm.expectEmit(address(market));
        emit IRenderMarket.LeaseSettled(a, job, alice, 4, 4 * REWARD);
        vm.expectEmit(address(market));
        emit IStaking.CollateralReleased(alice, a, 4 * p.collateralPerTile);
        vm.expectEmit(address(market));
        emit IPayments.Credited(alice, job, 4 * REWARD, IPayments.CreditReason.Reward);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
        assertEq(market.pendingBalance(bob), 4 * REWARD);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(market.getJob(job).reservedSlots, 0);
        IStaking.WorkerInfo memory w = market.workerInfo(alice);
        assertEq(w.locked, 0);
        assertEq(w.completed, 4);
        assertEq(uint8(market.getLease(a).status), uint8(IRenderMarket.LeaseStatus.Settled));
        vm.prank(alice);
        market.withdraw();
        assertEq(alice.balance, 1000 ether - STAKE + 4 * REWARD);
    }

    function test_settle_revertsOnUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 3));
        market.settle(3, _ids(1));
    }

    function test_settle_revertsForAnyoneButTheClient() public {
        (uint256 job, uint256 a,) = _honestPair();
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotClient.selector, job, eve, client));
        vm.prank(eve);
        market.settle(job, _ids(a));
    }

    function test_settle_revertsOnBadBatchSizes() public {
        (uint256 job,,) = _honestPair();
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadBatch.selector, 0, 128));
        vm.prank(client);
        market.settle(job, new uint256[](0));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketBadBatch.selector, 129, 128));
        vm.prank(client);
        market.settle(job, new uint256[](129));
    }

    function test_settle_revertsOnALeaseOfAnotherJob() public {
        (uint256 job, uint256 a,) = _honestPair();
        uint256 other = _post(1, 1);
        _warpVerified(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketWrongJob.selector, a, job, other));
        vm.prank(client);
        market.settle(other, _ids(a));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketWrongJob.selector, 77, 0, job));
        vm.prank(client);
        market.settle(job, _ids(77));
    }

    function test_settle_revertsOnUnrevealedOrSettledLeases() public {
        (uint256 job, uint256 a, uint256 b) = _honestPair();
        _stake(carol);
        uint256 job2 = _post(1, 1);
        uint256 c = _claim(carol, job2, 0, 0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                c,
                IRenderMarket.LeaseStatus.Claimed,
                IRenderMarket.LeaseStatus.Revealed
            )
        );
        vm.prank(client);
        market.settle(job2, _ids(c));
        _warpVerified(a);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketWrongLeaseStatus.selector,
                a,
                IRenderMarket.LeaseStatus.Settled,
                IRenderMarket.LeaseStatus.Revealed
            )
        );
        vm.prank(client);
        market.settle(job, _ids(a));
    }

    function test_settle_revertsBeforeVerificationWhileAReplicaIsUnrevealed() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(4, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        uint256 b = _claim(bob, job, 1, 0, 4);
        _commit(a);
        _commit(b);
        _reveal(a);
        uint256 v = market.verifiedAt(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotVerified.selector, a, v, block.timestamp));
        vm.prank(client);
        market.settle(job, _ids(a));
        vm.warp(v);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotVerified.selector, a, v, v));
        vm.prank(client);
        market.settle(job, _ids(a));
    }

    function test_settle_acceptsEarlyOnceEveryReplicaRevealed() public {
        (uint256 job, uint256 a, uint256 b) = _honestPair();
        uint256 v = market.verifiedAt(a);
        assertLt(block.timestamp, v);
        vm.expectEmit(address(market));
        emit IRenderMarket.LeaseSettled(a, job, alice, 4, 4 * REWARD);
        vm.prank(client);
        market.settle(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
        assertEq(market.pendingBalance(bob), 4 * REWARD);
        assertEq(market.getJob(job).escrow, 0);
        assertEq(market.workerInfo(alice).completed, 4);
    }

    function test_settle_earlyAcceptanceIsClientOnlyAndFinalizeStillWaits() public {
        (uint256 job, uint256 a,) = _honestPair();
        uint256 v = market.verifiedAt(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotClient.selector, job, eve, client));
        vm.prank(eve);
        market.settle(job, _ids(a));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotVerified.selector, a, v, block.timestamp));
        vm.prank(eve);
        market.finalize(job, _ids(a));
    }

    function test_settle_earlyAcceptanceReadsEachLeasesOwnTiles() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(4, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        uint256 b = _claim(bob, job, 1, 0, 2); // lane 1's tiles 2 and 3 stay unclaimed
        _commit(a);
        _commit(b);
        vm.warp(market.getLease(a).commitDeadline + 1); // reveals wait for the commit window
        _reveal(a);
        _reveal(b);
        // Bob's tiles were revealed in both lanes; alice's tiles 2 and 3 only in hers.
        vm.prank(client);
        market.settle(job, _ids(b));
        assertEq(market.pendingBalance(bob), 2 * REWARD);
        uint256 v = market.verifiedAt(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotVerified.selector, a, v, block.timestamp));
        vm.prank(client);
        market.settle(job, _ids(a));
    }

    function test_settle_revertsOnContestedOrJurorLeases() public {
        (uint256 job, uint256 a,, uint256 c) = _contested(1);
        uint256 t = _jury(c)[0];
        _warpVerified(a);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketLeaseContested.selector, a, 1));
        vm.prank(client);
        market.settle(job, _ids(a));
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketNotReplicaLane.selector, t, 2));
        vm.prank(client);
        market.settle(job, _ids(t));
    }

    function test_finalize_paysAfterTheAcceptanceWindow() public {
        (uint256 job, uint256 a, uint256 b) = _honestPair();
        uint256 v = market.verifiedAt(a);
        vm.warp(v + p.acceptanceWindow);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderMarket.MarketAcceptanceOpen.selector, a, v + p.acceptanceWindow, v + p.acceptanceWindow
            )
        );
        vm.prank(eve);
        market.finalize(job, _ids(a, b));
        vm.warp(v + p.acceptanceWindow + 1);
        vm.expectEmit(address(market));
        emit IRenderMarket.LeaseFinalized(a, job, alice, 4, 4 * REWARD);
        vm.prank(eve);
        market.finalize(job, _ids(a, b));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
        assertEq(market.getJob(job).escrow, 0);
    }

    function test_finalize_revertsOnUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 1));
        market.finalize(1, _ids(1));
    }

    /*//////////////////////////////////////////////////////////////
                          VERIFICATION TIMING
    //////////////////////////////////////////////////////////////*/

    function test_verifiedAt_waitsForTheLaterReplica() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(4, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        uint256 b = _claim(bob, job, 1, 0, 4);
        _commit(a);
        _commit(b);
        _reveal(a);
        // Bob committed before alice revealed, so he may still reveal, at the latest by his
        // reveal deadline: verification waits until then (alice's cap), not the job's horizon.
        uint256 cap = market.getLease(a).revealedAt + LEASE + p.revealWindow;
        assertEq(market.verifiedAt(a), cap + p.challengeWindow);
        vm.warp(block.timestamp + 10);
        _reveal(b);
        // Bob revealed now: both wait for his reveal's challenge window.
        assertEq(market.verifiedAt(a), market.getLease(b).revealedAt + p.challengeWindow);
        assertEq(market.verifiedAt(b), market.getLease(b).revealedAt + p.challengeWindow);
    }

    function test_verifiedAt_isCappedWhenNoReplicaCanStillCommit() public {
        _stake(alice);
        uint256 job = _post(4, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        _commit(a);
        vm.warp(block.timestamp + LEASE + 1);
        _reveal(a);
        // Lane 1 is empty, but no replica of these tiles may be claimed or committed after
        // alice's reveal (copy gate): verification is capped short of the job's reveal horizon.
        uint256 cap = block.timestamp + LEASE + p.revealWindow;
        assertLt(cap, market.getJob(job).deadline + p.revealWindow);
        assertEq(market.verifiedAt(a), cap + p.challengeWindow);
    }

    function test_verifiedAt_replicationOneIsTheRevealAndSettlesAtIt() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a);
        uint256 t = block.timestamp;
        assertEq(market.verifiedAt(a), t);
        // Its only lane revealed, so the client may accept in the reveal's own block.
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
    }

    function test_finalize_replicationOneWaitsForTheAcceptanceWindowAfterTheReveal() public {
        _stake(alice);
        uint256 job = _post(2, 1);
        uint256 a = _claim(alice, job, 0, 0, 2);
        _commitReveal(a);
        uint256 end = block.timestamp + p.acceptanceWindow;
        vm.warp(end);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketAcceptanceOpen.selector, a, end, end));
        market.finalize(job, _ids(a));
        vm.warp(end + 1);
        market.finalize(job, _ids(a));
        assertEq(market.pendingBalance(alice), 2 * REWARD);
    }

    function test_verifiedAt_isZeroUntilRevealed() public {
        _stake(alice);
        uint256 a = _claim(alice, _post(1, 1), 0, 0, 1);
        assertEq(market.verifiedAt(a), 0);
    }

    function test_settle_afterTheHorizonWithAMissingReplica() public {
        _stake(alice);
        uint256 job = _post(4, 2);
        uint256 a = _claim(alice, job, 0, 0, 4);
        _commit(a);
        vm.warp(block.timestamp + LEASE + 1);
        _reveal(a);
        uint256 v = market.verifiedAt(a);
        vm.warp(v + 1);
        vm.prank(client);
        market.settle(job, _ids(a));
        assertEq(market.pendingBalance(alice), 4 * REWARD);
        // The other lane's escrow is the client's after the deadline.
        vm.warp(market.getJob(job).deadline + 1);
        market.refund(job);
        assertEq(market.pendingBalance(client), 4 * REWARD);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_params_returnsTheConstructorArguments() public view {
        assertEq(abi.encode(market.params()), abi.encode(p));
    }

    function test_faultsModule_isAContract() public view {
        address module = market.faultsModule();
        assertTrue(module.code.length > 0);
        assertTrue(module != address(market));
    }

    function test_getters_revertOnUnknownIds() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 1));
        market.getJob(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownLease.selector, 1));
        market.getLease(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownContest.selector, 1));
        market.getContest(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownContest.selector, 1));
        market.verdict(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownLease.selector, 1));
        market.verifiedAt(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 1));
        market.refundable(1);
        vm.expectRevert(abi.encodeWithSelector(IRenderMarket.MarketUnknownJob.selector, 1));
        market.freeRange(1, 0, address(0), 0, 1);
    }

    function test_freeRange_findsRunsAroundLeases() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(600, 2);
        _claim(alice, job, 0, 0, 256); // a full first word of lane 0
        _claim(alice, job, 0, 300, 10);
        _claim(bob, job, 1, 5, 5);
        (uint32 first, uint16 count) = market.freeRange(job, 0, address(0), 0, 1000);
        assertEq(first, 256);
        assertEq(count, 44);
        (first, count) = market.freeRange(job, 0, address(0), 301, 20);
        assertEq(first, 310);
        assertEq(count, 20);
        // Alice holds tiles 0..255 and 300..309 in lane 0: lane 1 is free for her only from 256.
        (first, count) = market.freeRange(job, 1, alice, 0, 1000);
        assertEq(first, 256);
        assertEq(count, 44);
        (first, count) = market.freeRange(job, 1, address(0), 0, 1000);
        assertEq(first, 0);
        assertEq(count, 5);
        (first, count) = market.freeRange(job, 1, address(0), 600, 10);
        assertEq(count, 0);
    }

    function test_refundable_countsUnreservedEscrow() public {
        _stake(alice);
        uint256 job = _post(10, 1);
        assertEq(market.refundable(job), 10 * REWARD);
        _claim(alice, job, 0, 0, 4);
        assertEq(market.refundable(job), 6 * REWARD);
    }

    function test_commitmentOf_matchesTheVectors() public view {
        string memory json = vm.readFile("contracts/test/vectors/merkle.json");
        bytes32 root = vm.parseJsonBytes32(json, ".commitment.root");
        address worker = vm.parseJsonAddress(json, ".commitment.worker");
        bytes32 salt = vm.parseJsonBytes32(json, ".commitment.salt");
        assertEq(market.commitmentOf(root, worker, salt), vm.parseJsonBytes32(json, ".commitment.commitment"));
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev A replication-2 job of 4 tiles, both replicas honest and revealed.
    function _honestPair() internal returns (uint256 job, uint256 a, uint256 b) {
        _stake(alice);
        _stake(bob);
        job = _post(4, 2);
        a = _claim(alice, job, 0, 0, 4);
        b = _claim(bob, job, 1, 0, 4);
        _commit(a);
        _commit(b);
        _reveal(a);
        _reveal(b);
    }
}
