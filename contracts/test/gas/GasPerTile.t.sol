// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {console} from "forge-std/console.sol";

import {IRenderMarket} from "../../src/interfaces/IRenderMarket.sol";
import {GasMeter} from "../utils/GasMeter.sol";

/// @title GasPerTileTest
/// @notice Gas per tile-replica of one job's whole lifecycle (post, claim, commit, reveal,
/// settle, withdraw) at replication 1 and 2 and lease sizes 1, 16 and 64, for a 64-tile job.
/// Each market call is priced as its own transaction: the market's storage and account are made
/// cold first (vm.cool), and the call's execution gas (vm.lastCallGas) gets the intrinsic cost
/// added (21,000 + 16 per non-zero and 4 per zero calldata byte) and the refund taken off
/// (capped at a fifth, EIP-3529). Staking is left out (once per worker, not per job).
contract GasPerTileTest is GasMeter {
    uint32 internal constant TILES = 64;

    struct Totals {
        uint256 post;
        uint256 claim;
        uint256 commit;
        uint256 reveal;
        uint256 settle;
        uint256 withdraw;
    }

    Totals internal totals;

    function test_gas_replication1_batch1() public {
        _report(1, 1);
    }

    function test_gas_replication1_batch16() public {
        _report(1, 16);
    }

    function test_gas_replication1_batch64() public {
        _report(1, 64);
    }

    function test_gas_replication2_batch1() public {
        _report(2, 1);
    }

    function test_gas_replication2_batch16() public {
        uint256 perTile = _report(2, 16);
        assertLe(perTile, 40_000, "target: <= 40k gas per tile-replica at batch 16");
    }

    function test_gas_replication2_batch64() public {
        uint256 perTile = _report(2, 64);
        assertLe(perTile, 25_000, "target: <= 25k gas per tile-replica at batch 64");
    }

    /// @dev Sanity check of the method: a cold view costs its intrinsic 21,000 plus a cold
    /// account-less SLOAD (2,100) and a little ABI work.
    function test_gas_methodPricesAColdRead() public {
        uint256 gas = _tx(eve, 0, abi.encodeCall(market.pendingBalance, (alice)));
        assertGt(gas, 21_000 + 2_100);
        assertLt(gas, 21_000 + 2_100 + 1_000);
    }

    function _report(uint8 replication, uint16 batch) internal returns (uint256 perTile) {
        _run(replication, batch);
        uint256 replicas = uint256(TILES) * replication;
        Totals memory t = totals;
        uint256 total = t.post + t.claim + t.commit + t.reveal + t.settle + t.withdraw;
        perTile = total / replicas;
        string memory key = string.concat("replication", vm.toString(replication), "_batch", vm.toString(batch));
        vm.snapshotValue("GasPerTileReplica", key, perTile);
        // Each step's share too: contracts/README.md's table shows them, and the gas guard
        // (tests/coordinator/test_gas_table.py) checks every figure there against this snapshot.
        string[6] memory steps = ["post", "claim", "commit", "reveal", "settle", "withdraw"];
        uint256[6] memory gas = [t.post, t.claim, t.commit, t.reveal, t.settle, t.withdraw];
        for (uint256 i; i < steps.length; ++i) {
            vm.snapshotValue("GasPerTileReplica", string.concat(key, "_", steps[i]), gas[i] / replicas);
        }
        console.log("replication %s, lease size %s: gas per tile-replica", replication, batch, perTile);
        console.log("  post %s  claim %s  commit %s", t.post / replicas, t.claim / replicas, t.commit / replicas);
        console.log("  reveal %s  settle %s  withdraw %s", t.reveal / replicas, t.settle / replicas, t.withdraw / replicas);
    }

    function _run(uint8 replication, uint16 batch) internal {
        address[2] memory workers = [alice, bob];
        for (uint256 r; r < replication; ++r) {
            _stake(workers[r]);
        }
        uint40 deadline = uint40(block.timestamp + 1 days);
        totals.post = _tx(
            client,
            uint256(TILES) * replication * REWARD,
            abi.encodeCall(
                market.postJob, (CID, KERNEL, TILES, replication, REWARD, LEASE, deadline, PRIORITY, DEPTH, 0, NO_FAULT_LIMIT)
            )
        );
        uint256 jobId = 1;
        uint256 leases = uint256(TILES) / batch;
        uint256[] memory ids = new uint256[](leases * replication);
        for (uint256 r; r < replication; ++r) {
            for (uint256 i; i < leases; ++i) {
                bytes memory data = abi.encodeCall(market.claim, (jobId, uint32(r), uint32(i * batch), batch));
                totals.claim += _tx(workers[r], 0, data);
                ids[r * leases + i] = r * leases + i + 1;
            }
        }
        for (uint256 i; i < ids.length; ++i) {
            IRenderMarket.Lease memory l = market.getLease(ids[i]);
            // A stand-in root: the lifecycle's gas does not depend on the tree.
            bytes32 root = keccak256(abi.encode("root", ids[i]));
            totals.commit += _tx(
                l.worker, 0, abi.encodeCall(market.commit, (ids[i], keccak256(abi.encode(root, l.worker, _salt(ids[i])))))
            );
        }
        for (uint256 i; i < ids.length; ++i) {
            IRenderMarket.Lease memory l = market.getLease(ids[i]);
            bytes32 root = keccak256(abi.encode("root", ids[i]));
            totals.reveal +=
                _tx(l.worker, 0, abi.encodeCall(market.reveal, (ids[i], root, RESULT_CID, _salt(ids[i]))));
        }
        vm.warp(block.timestamp + 1 hours + 1);
        uint256 maxBatch = market.MAX_BATCH();
        for (uint256 start; start < ids.length; start += maxBatch) {
            uint256 n = ids.length - start < maxBatch ? ids.length - start : maxBatch;
            uint256[] memory chunk = new uint256[](n);
            for (uint256 i; i < n; ++i) {
                chunk[i] = ids[start + i];
            }
            totals.settle += _tx(client, 0, abi.encodeCall(market.settle, (jobId, chunk)));
        }
        for (uint256 r; r < replication; ++r) {
            totals.withdraw += _tx(workers[r], 0, abi.encodeWithSignature("withdraw()"));
            assertEq(workers[r].balance, 1000 ether - STAKE + uint256(TILES) * REWARD);
        }
    }
}
