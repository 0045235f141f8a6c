// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";
import {console} from "forge-std/console.sol";

import {RenderMarket} from "../../src/RenderMarket.sol";
import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {Defaults} from "../utils/Defaults.sol";
import {MarketHandler} from "./MarketHandler.sol";

/// @title RenderMarketInvariantTest
/// @notice Random sequences of every market action (MarketHandler) must keep the books exact, in
/// aggregate and per actor and job (against the handler's GhostLedger), never fault an honest worker except for a missed deadline, pay every honest, timely replica,
/// and leave no wei behind once every deadline has passed and every exit has run.
contract RenderMarketInvariantTest is Test {
    RenderMarket internal market;
    MarketHandler internal handler;

    function setUp() public {
        // Short windows so that random warps cross them; a tolerance far above the honest noise
        // (2^20) and far below the forgeries' offsets (2^62, 2^63); depth-1 tiles: 8 pairs.
        market = Defaults.deploy(
            IRenderMarket.Params({
                minStake: 0.1 ether,
                collateralPerTile: 0.01 ether,
                unbondingDelay: 2 hours,
                maxLeaseLength: 2 hours,
                revealWindow: 1 hours,
                challengeWindow: 1 hours,
                acceptanceWindow: 2 hours,
                tieBreakWindow: 3 hours,
                slashBps: 5000,
                bountyBps: 2000,
                disputeBond: 0.05 ether,
                tolerance: uint64(1) << 40,
                farCount: 4,
                jurySize: 3
            })
        );
        handler = new MarketHandler(market);
        bytes4[] memory selectors = new bytes4[](23);
        selectors[0] = MarketHandler.stake.selector;
        selectors[1] = MarketHandler.claim.selector;
        selectors[2] = MarketHandler.commit.selector;
        selectors[3] = MarketHandler.reveal.selector;
        selectors[4] = MarketHandler.requestUnstake.selector;
        selectors[5] = MarketHandler.unstake.selector;
        selectors[6] = MarketHandler.postJob.selector;
        selectors[7] = MarketHandler.settle.selector;
        selectors[8] = MarketHandler.dispute.selector;
        selectors[9] = MarketHandler.reclaim.selector;
        selectors[10] = MarketHandler.proveDisagreement.selector;
        selectors[11] = MarketHandler.drawJury.selector;
        selectors[12] = MarketHandler.proveFar.selector;
        selectors[13] = MarketHandler.resolveContest.selector;
        selectors[14] = MarketHandler.finalize.selector;
        selectors[15] = MarketHandler.refund.selector;
        selectors[16] = MarketHandler.withdraw.selector;
        selectors[17] = MarketHandler.warp.selector;
        selectors[18] = MarketHandler.cancelJob.selector;
        selectors[19] = MarketHandler.proveReplicaFar.selector;
        selectors[20] = MarketHandler.challengeAvailability.selector;
        selectors[21] = MarketHandler.resolveAvailability.selector;
        selectors[22] = MarketHandler.reveal.selector; // jurors reveal through it too: weigh it up
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
        // The fuzzer draws senders from addresses it has seen: never the market itself (its own
        // balance would move with the sender's gas accounting).
        excludeSender(address(market));
    }

    /// @notice Every property below, after every call of every run. One campaign, deep runs: a
    /// contest's whole life (two reveals, a proof, a jury draw, jurors' commits and reveals, a far proof, resolution,
    /// settlement) takes a dozen well-placed calls.
    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 256
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.runs = 64
    /// forge-config: ci.invariant.depth = 512
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_marketHolds() public view {
        _assertBalanceIsEverythingOwed();
        _assertBalanceIsDepositsLessWithdrawals();
        _assertWorkerAccountsMatchTheirLeases();
        _assertEscrowCoversReservedSlots();
        _assertHonestWorkersFaultOnlyByMissedDeadlines();
        _assertCancelledJobsTookNoNewReplicas();
        _assertEveryActorsBooks();
        _assertEveryJobsBooks();
    }

    /// @notice Per actor, the market holds exactly what the handler's ledger (GhostLedger: each
    /// outcome's payouts computed from the rules) says: each worker's, client's, juror's,
    /// challenger's and the keeper's pending balance, each worker's stake, unbonding stake and
    /// locked collateral, and each wallet (its start, less stakes, escrows and bonds, plus
    /// withdrawals). The aggregate checks above cannot see a payout credited to the wrong actor.
    function _assertEveryActorsBooks() internal view {
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            address a = actors[i];
            IStaking.WorkerInfo memory w = market.workerInfo(a);
            uint256[5] memory ledger = handler.books(a);
            _same(market.pendingBalance(a), ledger[0], "pending balance of ", i);
            _same(a.balance, ledger[1], "wallet of ", i);
            _same(w.stake, ledger[2], "stake of ", i);
            _same(w.unbonding, ledger[3], "unbonding stake of ", i);
            _same(w.locked, ledger[4], "locked collateral of ", i);
        }
    }

    /// @notice Per job, the escrow and the reserved slots are what the ledger says.
    function _assertEveryJobsBooks() internal view {
        uint256[] memory jobs = handler.jobs();
        for (uint256 j; j < jobs.length; ++j) {
            IRenderMarket.Job memory job = market.getJob(jobs[j]);
            (uint256 escrow, uint256 reserved) = handler.jobBooks(jobs[j]);
            if (job.escrow != escrow || job.reservedSlots != reserved) {
                string memory name = string.concat(" of job ", vm.toString(jobs[j]));
                assertEq(job.escrow, escrow, string.concat("escrow", name));
                assertEq(job.reservedSlots, reserved, string.concat("reserved slots", name));
            }
        }
    }

    /// @dev assertEq naming actor `i`, its message built only on a failure (the check runs after
    /// every call of every run).
    function _same(uint256 market_, uint256 ledger, string memory what, uint256 i) internal view {
        if (market_ != ledger) assertEq(market_, ledger, string.concat(what, handler.actorName(i)));
    }

    /// @notice The market holds exactly what it owes: escrow + stakes (incl. unbonding) +
    /// pending balances + open bonds (disputes and availability challenges).
    function _assertBalanceIsEverythingOwed() internal view {
        uint256 owed;
        uint256[] memory jobs = handler.jobs();
        for (uint256 i; i < jobs.length; ++i) {
            owed += market.getJob(jobs[i]).escrow;
        }
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            IStaking.WorkerInfo memory w = market.workerInfo(actors[i]);
            owed += w.stake + w.unbonding + market.pendingBalance(actors[i]);
        }
        uint256[] memory contests = handler.contests();
        for (uint256 i; i < contests.length; ++i) {
            IRenderMarket.Contest memory c = market.getContest(contests[i]);
            if (c.outcome == IRenderMarket.ContestOutcome.Pending) owed += c.bond;
        }
        uint256[] memory challenges = handler.challenges();
        for (uint256 i; i < challenges.length; ++i) {
            IRenderMarket.AvailabilityChallenge memory a = market.getAvailabilityChallenge(challenges[i]);
            if (a.status == IRenderMarket.AvailabilityStatus.Open) owed += a.bond;
        }
        assertEq(address(market).balance, owed, "balance != everything owed");
    }

    /// @notice Ghost accounting: every wei in came from a stake, escrow or bond and every wei
    /// out left through withdraw.
    function _assertBalanceIsDepositsLessWithdrawals() internal view {
        assertEq(address(market).balance, handler.ghostIn() - handler.ghostOut(), "balance != in - out");
    }

    /// @notice Each worker's capacity in use and collateral match its live leases.
    function _assertWorkerAccountsMatchTheirLeases() internal view {
        address[] memory actors = handler.actors();
        uint256[] memory leases = handler.leases();
        IRenderMarket.Params memory p = market.params();
        for (uint256 a; a < 6; ++a) {
            uint256 active;
            uint256 locked;
            for (uint256 i; i < leases.length; ++i) {
                IRenderMarket.Lease memory l = market.getLease(leases[i]);
                if (l.worker != actors[a]) continue;
                if (l.status == IRenderMarket.LeaseStatus.Claimed || l.status == IRenderMarket.LeaseStatus.Committed) {
                    active += l.count;
                }
                if (_live(l.status)) locked += (uint256(l.count) - l.forfeitedCount) * p.collateralPerTile;
            }
            IStaking.WorkerInfo memory w = market.workerInfo(actors[a]);
            assertEq(w.activeTiles, active, "active tiles");
            assertEq(w.locked, locked, "locked collateral");
            assertLe(w.locked, w.stake);
        }
    }

    /// @notice Each job's reserved slots are its live replica leases' unforfeited tiles, and its
    /// escrow funds all of them.
    function _assertEscrowCoversReservedSlots() internal view {
        uint256[] memory jobs = handler.jobs();
        uint256[] memory leases = handler.leases();
        for (uint256 j; j < jobs.length; ++j) {
            IRenderMarket.Job memory job = market.getJob(jobs[j]);
            uint256 reserved;
            for (uint256 i; i < leases.length; ++i) {
                IRenderMarket.Lease memory l = market.getLease(leases[i]);
                if (l.jobId != jobs[j] || l.lane >= job.replication) continue;
                if (_live(l.status)) reserved += uint256(l.count) - l.forfeitedCount;
            }
            assertEq(job.reservedSlots, reserved, "reserved slots");
            assertGe(job.escrow, reserved * job.rewardPerTileReplica, "escrow");
        }
    }

    /// @dev A lease that still holds collateral (and, in a replica lane, a reserved slot).
    function _live(IRenderMarket.LeaseStatus status) internal pure returns (bool) {
        return status != IRenderMarket.LeaseStatus.Settled && status != IRenderMarket.LeaseStatus.Reclaimed
            && status != IRenderMarket.LeaseStatus.Forfeited;
    }

    /// @notice An honest worker is only ever slashed for a missed commit or reveal deadline, or
    /// by a contest whose verdict was a forger's root (no honest majority among the revealed
    /// jurors: the handler counts these, see ghostDishonestVerdicts).
    function _assertHonestWorkersFaultOnlyByMissedDeadlines() internal view {
        address[] memory actors = handler.actors();
        for (uint256 a; a < 4; ++a) {
            assertEq(market.workerInfo(actors[a]).faults, handler.ghostReclaims(actors[a]), "honest worker faulted");
        }
    }

    /// @notice A cancel refunded exactly the unreserved escrow, and no replica lease of a
    /// cancelled job was claimed after the cancel (its lanes closed at once).
    function _assertCancelledJobsTookNoNewReplicas() internal view {
        assertEq(handler.ghostBadCancels(), 0, "a cancel refunded a reserved slot or left a free one");
        uint256[] memory leases = handler.leases();
        for (uint256 i; i < leases.length; ++i) {
            IRenderMarket.Lease memory l = market.getLease(leases[i]);
            IRenderMarket.Job memory job = market.getJob(l.jobId);
            if (job.cancelledAt == 0 || l.lane >= job.replication) continue;
            assertLe(l.commitDeadline - job.leaseLength, job.cancelledAt, "replica claimed after the cancel");
        }
    }

    /// @notice After every deadline and every permissionless exit, nothing is left in the market,
    /// and every honest replica that revealed was paid for every tile except those a contest
    /// without a verdict refunded.
    function afterInvariant() public {
        handler.drain();
        assertEq(address(market).balance, 0, "wei left in the market");
        // Every actor withdrew exactly what the rules gave it, and every job paid out its escrow.
        _assertEveryActorsBooks();
        _assertEveryJobsBooks();
        uint256[] memory leases = handler.leases();
        for (uint256 i; i < leases.length; ++i) {
            IRenderMarket.Lease memory l = market.getLease(leases[i]);
            if (!handler.isHonest(l.worker) || l.revealedAt == 0) continue;
            assertEq(uint8(l.status), uint8(IRenderMarket.LeaseStatus.Settled), "honest lease not settled");
            if (l.lane < market.getJob(l.jobId).replication) {
                assertEq(l.forfeitedCount, handler.ghostExempt(leases[i]), "honest tile unpaid");
            }
        }
        address[] memory actors = handler.actors();
        for (uint256 a; a < 4; ++a) {
            assertEq(market.workerInfo(actors[a]).faults, handler.ghostReclaims(actors[a]));
        }
    }

    /// @notice The handler is not idle: a fixed pseudo-random walk of 5,000 steps through it
    /// reaches every action (prints the counts with -vv), and the books still balance after it.
    function test_handler_reachesEveryAction() public {
        // A deterministic walk of 5,000 steps, continued (up to 20,000) while some action has
        // not run yet: the rare contest actions need a replica pair, a forger and a jury to line
        // up, and where that happens shifts whenever the market's rules change.
        for (uint256 i; i < 20_000; ++i) {
            if (i >= 5000 && i % 1000 == 0 && _everyActionRan()) break;
            _walkStep(i);
        }
        _callSummary();
        string[23] memory names = _names();
        for (uint256 i; i < names.length; ++i) {
            assertGt(handler.calls(bytes32(bytes(names[i]))), 0, names[i]);
        }
        _assertBalanceIsEverythingOwed();
        _assertWorkerAccountsMatchTheirLeases();
        _assertEscrowCoversReservedSlots();
        _assertEveryActorsBooks();
        _assertEveryJobsBooks();
        afterInvariant();
    }

    /// @dev One step of the walk: the action and its arguments from keccak256("walk", i).
    function _walkStep(uint256 i) internal {
        uint256 r = uint256(keccak256(abi.encode("walk", i)));
        uint256 x = r >> 8;
        uint256 action = r % 21;
        if (action == 0) handler.stake(x, x >> 40, x >> 80);
        else if (action == 1) handler.claim(x, x >> 20, x >> 40, x >> 60, x >> 80);
        else if (action == 2) handler.commit(x);
        else if (action == 3) handler.reveal(x);
        else if (action == 4) handler.requestUnstake(x, x >> 40);
        else if (action == 5) handler.unstake(x);
        else if (action == 6) handler.postJob(x, x >> 20, x >> 40, x >> 60, x >> 80, x >> 120);
        else if (action == 7) handler.settle(x);
        else if (action == 8) handler.dispute(x, x >> 40);
        else if (action == 9) handler.reclaim(x);
        else if (action == 10) handler.proveDisagreement(x, x >> 40);
        else if (action == 11) handler.drawJury(x);
        else if (action == 12) handler.proveFar(x, x >> 40);
        else if (action == 13) handler.resolveContest(x);
        else if (action == 14) handler.finalize(x);
        else if (action == 15) handler.refund(x);
        else if (action == 16) handler.withdraw(x);
        else if (action == 17) handler.proveReplicaFar(x);
        else if (action == 18) handler.challengeAvailability(x, x >> 40);
        else if (action == 19) handler.resolveAvailability(x);
        else handler.warp(x);
        // Cancels come on top, in the last fifth (before it, the walk is the one the other actions were tuned on).
        if (i >= 4000 && (r >> 248) % 4 == 0) handler.cancelJob(x >> 128);
    }

    function _everyActionRan() internal view returns (bool) {
        string[23] memory names = _names();
        for (uint256 i; i < names.length; ++i) {
            if (handler.calls(bytes32(bytes(names[i]))) == 0) return false;
        }
        return true;
    }

    function _names() internal pure returns (string[23] memory) {
        return [
            "stake", "claim", "commit", "reveal", "requestUnstake", "unstake", "postJob", "settle", "dispute",
            "reclaim", "proveDisagreement", "drawJury", "proveFar", "resolveContest", "finalize", "refund",
            "withdraw", "cancelJob", "warp", "jurorReveal", "challengeAvailability", "answerAvailability",
            "resolveAvailability"
        ];
    }

    /// @dev Prints how often each action ran (forge test -vv).
    function _callSummary() internal view {
        string[23] memory names = _names();
        for (uint256 i; i < names.length; ++i) {
            console.log(names[i], handler.calls(bytes32(bytes(names[i]))));
        }
        console.log("settledWithForfeits", handler.calls("settledWithForfeits"));
        console.log("jurorDrawn", handler.calls("jurorDrawn"));
        console.log("proveReplicaFar", handler.calls("proveReplicaFar"));
        console.log("dishonestVerdicts (a forger's root was the majority)", handler.ghostDishonestVerdicts());
        console.log("claimRefused (cancelled)", handler.calls("claimRefused"));
        console.log("claimGated (reputation)", handler.calls("claimGated"));
        console.log("refundBeforeDeadline (cancelled)", handler.calls("refundBeforeDeadline"));
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            console.log(string.concat("wei credited to ", handler.actorName(i)), handler.ghostCredited(actors[i]));
        }
    }
}
