// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {console} from "forge-std/console.sol";

import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {GasMeter} from "../utils/GasMeter.sol";

/// @title GasContestTest
/// @notice Gas of every unhappy path, each call priced as its own transaction (GasMeter), with the
/// default parameters (a jury of 3) on a 4-tile lease of depth-2 tiles: a disagreement proven
/// with one opening of the digest leaf, the jury's draw, a juror's commit and reveal, a side proven
/// far, the resolution; a client dispute and its resolution; an availability challenge answered
/// and one left unanswered. Figures go to contracts/README.md ("Gas of the unhappy paths") and to
/// snapshots/GasContest.json.
contract GasContestTest is GasMeter {
    function test_gas_disagreementPath() public {
        (uint256 job, uint256 a, uint256 b) = _twoReplicas(); // bob (b) forged
        uint32 tile = 1;
        IRenderMarket.Opening[] memory o = _openings(a, b, tile, _digestLeaf());
        uint256 prove = _tx(eve, 0, abi.encodeCall(market.proveDisagreement, (job, tile, a, b, o)));
        uint256 contestId = 1;

        _stakeJurors();
        uint256 drawBlock = _contestLive(contestId).drawBlock;
        vm.roll(drawBlock + 1);
        vm.setBlockhash(drawBlock, keccak256("a block"));
        uint256 draw = _tx(eve, 0, abi.encodeCall(market.drawJury, (contestId)));
        uint256[] memory ids = market.jurors(contestId);
        assertEq(ids.length, p.jurySize, "every seat drawn");

        uint256 commit;
        uint256 reveal;
        for (uint256 i; i < ids.length; ++i) {
            address w = _workerOf(ids[i]);
            bytes32 commitment = keccak256(abi.encode(_root(ids[i]), w, _salt(ids[i])));
            commit += _tx(w, 0, abi.encodeCall(market.commit, (ids[i], commitment)));
        }
        for (uint256 i; i < ids.length; ++i) {
            bytes32 root = _root(ids[i]);
            reveal += _tx(_workerOf(ids[i]), 0, abi.encodeCall(market.reveal, (ids[i], root, RESULT_CID, _salt(ids[i]))));
        }
        IRenderMarket.Contest memory c = _contestLive(contestId);
        assertTrue(c.leaseT != 0 && c.verdictAt != 0, "verdict final");
        IRenderMarket.Opening[] memory far = _openings(b, c.leaseT, tile, _digestLeaf());
        uint256 proveFar = _tx(alice, 0, abi.encodeCall(market.proveFar, (contestId, 1, far)));
        vm.warp(block.timestamp + p.challengeWindow + 1);
        uint256 resolve = _tx(eve, 0, abi.encodeCall(market.resolveContest, (contestId)));
        assertEq(uint8(_contestLive(contestId).outcome), uint8(IRenderMarket.ContestOutcome.BFar));

        _record("proveDisagreement", prove);
        _record("drawJury_3", draw);
        _record("jurorCommit", commit / ids.length);
        _record("jurorReveal", reveal / ids.length);
        _record("proveFar", proveFar);
        _record("resolveContest_disagreement", resolve);
    }

    function test_gas_disputePath() public {
        _stake(alice);
        uint256 job = _post(4, 1);
        uint256 a = _claim(alice, job, 0, 0, 4);
        forged[a] = 1;
        _commitReveal(a);
        uint256 dispute = _tx(client, p.disputeBond, abi.encodeCall(market.dispute, (job, uint32(2), a)));
        uint256 contestId = 1;
        uint256[] memory ids = _jury(contestId);
        IRenderMarket.Contest memory c = _contestLive(contestId);
        IRenderMarket.Opening[] memory far = _openings(a, c.leaseT, 2, _digestLeaf());
        _tx(client, 0, abi.encodeCall(market.proveFar, (contestId, 0, far)));
        vm.warp(block.timestamp + p.challengeWindow + 1);
        uint256 resolve = _tx(eve, 0, abi.encodeCall(market.resolveContest, (contestId)));
        assertEq(uint8(_contestLive(contestId).outcome), uint8(IRenderMarket.ContestOutcome.AFar));
        assertEq(ids.length, p.jurySize);

        _record("dispute", dispute);
        _record("resolveContest_dispute", resolve);
    }

    function test_gas_availabilityPaths() public {
        _stake(alice);
        _stake(bob);
        uint256 job = _post(4, 1);
        uint256 a = _claim(alice, job, 0, 0, 4);
        _commitReveal(a);
        uint32[] memory leaves = _leaves(0, 3);
        bytes memory data = abi.encodeCall(market.challengeAvailability, (a, uint32(1), leaves));
        uint256 challenge = _tx(client, p.disputeBond, data);
        (, bytes32[] memory leafData, bytes32[][] memory proofs) = _answerOf(a, 1, leaves);
        uint256 answer = _tx(alice, 0, abi.encodeCall(market.answerAvailability, (1, leaves, leafData, proofs)));

        uint256 job2 = _post(4, 1);
        uint256 b = _claim(bob, job2, 0, 0, 4);
        _commitReveal(b);
        _tx(client, p.disputeBond, abi.encodeCall(market.challengeAvailability, (b, uint32(0), leaves)));
        vm.warp(block.timestamp + p.revealWindow + 1);
        uint256 unanswered = _tx(eve, 0, abi.encodeCall(market.resolveAvailability, (2)));
        assertEq(uint8(market.getLease(b).status), uint8(IRenderMarket.LeaseStatus.Forfeited));

        _record("challengeAvailability_2leaves", challenge);
        _record("answerAvailability_2leaves", answer);
        _record("resolveAvailability_unanswered", unanswered);
    }

    /// @dev The digest leaf of a depth-DEPTH tile: one opening of it proves any difference.
    function _digestLeaf() internal pure returns (uint256[] memory leaves) {
        leaves = new uint256[](1);
        leaves[0] = (uint256(1) << DEPTH) - 1;
    }

    function _record(string memory name, uint256 gas) internal {
        vm.snapshotValue("GasContest", name, gas);
        console.log("%s: %s gas", name, gas);
    }
}
