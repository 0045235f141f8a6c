"""The quote against what a job really costs: `client quote` of a small job, the same job posted
and run to settlement with a render node the test plays through the market, the artist's spend
(escrow paid out plus gas, from the account's balance and the receipts) within 10 % of the
quote; a quote above --max-cost, or a post nobody can confirm, is a one-line error and nothing
is uploaded or sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from support.wei import gas_paid

from blindframe.coordinator.market import Market
from blindframe.coordinator.store import IpfsStore

from .conftest import Home, RenderNode, one_line_error, run_cli

if TYPE_CHECKING:
    from tests.conftest import Chain

REWARD = 10**15
SMALL = ["--scene", "sample", "--size", "16x16", "--canaries", "0", "--reward", "0.001"]


def _nothing_posted(
    chain: Chain, home: Home, store: IpfsStore, counts: object, pins: object
) -> None:
    assert Market(chain.w3, chain.deployment).counts() == counts
    assert store.pins() == pins  # no input bundle, no manifest left pinned
    jobs = home.path / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def test_the_quote_is_within_ten_percent_of_the_spend(
    fresh_chain: Chain, make_home: Callable[..., Home], worker_store: IpfsStore
) -> None:
    chain = fresh_chain
    home = make_home(chain)
    w3, address = chain.w3, home.account.address

    code, out, err = run_cli(["--json", "client", "quote", *SMALL], home.env)
    assert code == 0, err
    quote = json.loads(out)
    assert quote["tileCount"] == 4
    assert quote["canaryTiles"] == 0
    assert quote["escrow"] == str(4 * REWARD)
    assert quote["gas"]["postJob"] > 0
    assert quote["gas"]["settle"] > 0
    assert int(quote["total"]) == 4 * REWARD + int(quote["gasFee"])
    assert quote["upload"]["inputs"] > 0
    assert quote["upload"]["evaluationKeys"] == 0  # `keygen --upload` pinned them already
    assert quote["uploadBytes"] == sum(quote["upload"].values())
    # No render node advertises here: the time is unknown, not invented.
    assert quote["renderSeconds"] is None
    assert quote["expectedSeconds"] is None

    # Above --max-cost, and unconfirmed without a terminal: one line each, nothing posted.
    with IpfsStore(home.settings.ipfs_api) as store:
        counts, pins = Market(w3, chain.deployment).counts(), store.pins()
        args = ["client", "post", *SMALL, "--yes", "--max-cost", "0.001"]
        code, _out, err = run_cli(args, home.env)
        line = one_line_error(code, err)
        assert "the quote is" in line
        assert "above --max-cost 0.001 ETH" in line
        _nothing_posted(chain, home, store, counts, pins)
        code, _out, err = run_cli(["client", "post", *SMALL], home.env)
        assert "no terminal to ask on" in one_line_error(code, err)
        _nothing_posted(chain, home, store, counts, pins)

    # The same job, posted (--json: scripted, no question) and run to settlement.
    balance = w3.eth.get_balance(address)
    first_block = w3.eth.block_number + 1
    code, out, err = run_cli(["--json", "client", "post", *SMALL], home.env)
    assert code == 0, err
    posted = json.loads(out)
    assert posted["quote"]["escrow"] == quote["escrow"]
    artist = home.artist()
    ref = artist.job_dir(posted["jobId"]).ref
    document = artist.snapshot(ref).to_json()
    assert (document["etaSeconds"], document["etaSource"]) == (None, "unknown")

    node = RenderNode(chain, worker_store)
    lease = node.claim(ref.job_id, 0, 4)
    outputs = node.compute(ref.job_id, range(4))
    result, salt = node.commit(ref.job_id, lease, 0, [outputs[t] for t in range(4)])
    node.reveal(lease, result, salt)
    assert artist.verify(ref).checked[0].status == "ok"
    document = artist.snapshot(ref).to_json()
    assert document["phase"] == "rendering"  # verified, not settled yet
    assert (document["etaSeconds"], document["etaSource"]) == (0, "job")
    chain.warp(int(chain.deployment.parameters["challengeWindow"]) + 1)
    assert artist.settle(ref).paid_wei == 4 * REWARD
    assert artist.snapshot(ref).complete

    spend = balance - w3.eth.get_balance(address)
    assert spend == 4 * REWARD + gas_paid(w3, address, first_block)
    print(f"spent {spend} wei of a {quote['total']} wei quote")  # under -s: the margin
    assert abs(spend - int(quote["total"])) <= int(quote["total"]) // 10, (spend, quote)
