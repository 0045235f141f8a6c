"""One job's whole life through web3 on a fresh Anvil, every balance checked to the wei."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import numpy as np
from web3.logs import DISCARD

from blindframe.fhe_core.merkle import TileTree, lease_root

if TYPE_CHECKING:
    from web3.types import TxReceipt

    from tests.conftest import Chain


def _gas_cost(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def test_one_job_lifecycle_pays_exactly(fresh_chain: Chain) -> None:
    chain = fresh_chain
    w3, market = chain.w3, chain.market
    params = chain.deployment.parameters
    client, worker = chain.account(), chain.account()
    client_tx, worker_tx = chain.sender(client), chain.sender(worker)
    start = {a.address: w3.eth.get_balance(a.address) for a in (client, worker)}
    spent = {client.address: 0, worker.address: 0}

    def pay(who: str, receipt: TxReceipt) -> TxReceipt:
        spent[who] += _gas_cost(receipt)
        return receipt

    stake = params["minStake"]
    pay(worker.address, worker_tx.transact(market.functions.stake(8), value=stake))

    tiles, reward, depth = 4, 10**15 + 7, 2
    escrow = tiles * reward
    deadline = chain.now() + 3_600
    receipt = pay(
        client.address,
        client_tx.transact(
            market.functions.postJob(
                b"QmManifestCidBytes",
                b"volume@1".ljust(32, b"\0"),
                tiles,
                1,
                reward,
                600,
                deadline,
                0,
                depth,
                0,  # minCompleted: no reputation gate
                2**16 - 1,  # maxFaults: any number
            ),
            value=escrow,
        ),
    )
    (posted,) = market.events.JobPosted().process_receipt(receipt, errors=DISCARD)
    job_id = posted["args"]["jobId"]
    assert posted["args"]["escrow"] == escrow
    assert w3.eth.get_balance(market.address) == stake + escrow

    receipt = pay(worker.address, worker_tx.transact(market.functions.claim(job_id, 0, 0, tiles)))
    (claimed,) = market.events.TilesClaimed().process_receipt(receipt, errors=DISCARD)
    lease_id = claimed["args"]["leaseId"]

    rng = np.random.default_rng(7)
    roots = [
        TileTree.build(rng.integers(0, 2**63, size=16, dtype=np.uint64), depth).root
        for _ in range(tiles)
    ]
    root = lease_root(roots)
    salt = secrets.token_bytes(32)
    commitment = market.functions.commitmentOf(root, worker.address, salt).call()
    pay(worker.address, worker_tx.transact(market.functions.commit(lease_id, commitment)))
    pay(
        worker.address,
        worker_tx.transact(market.functions.reveal(lease_id, root, b"QmResult", salt)),
    )
    assert market.functions.getLease(lease_id).call()[3] == 3  # LeaseStatus.Revealed

    chain.warp(params["challengeWindow"] + 1)
    pay(client.address, client_tx.transact(market.functions.settle(job_id, [lease_id])))
    assert market.functions.pendingBalance(worker.address).call() == escrow
    pay(worker.address, worker_tx.transact(market.functions.withdraw()))
    assert market.functions.pendingBalance(worker.address).call() == 0
    assert w3.eth.get_balance(market.address) == stake

    pay(worker.address, worker_tx.transact(market.functions.requestUnstake(stake)))
    chain.warp(params["unbondingDelay"] + 1)
    pay(worker.address, worker_tx.transact(market.functions.unstake()))
    assert market.functions.pendingBalance(worker.address).call() == stake
    pay(worker.address, worker_tx.transact(market.functions.withdraw()))

    assert w3.eth.get_balance(market.address) == 0
    assert (
        w3.eth.get_balance(client.address) == start[client.address] - escrow - spent[client.address]
    )
    assert (
        w3.eth.get_balance(worker.address) == start[worker.address] + escrow - spent[worker.address]
    )
