"""The time arithmetic (client/pace.py) and the quote's sums (client/quote.py), without a chain:
a job's pace and time left from its own history or its quote, the wall time expected from the
nodes' advertisements, the lease plan, and the quote's escrow, gas and limit."""

from __future__ import annotations

import pytest

from blindframe.client.errors import CostLimitError
from blindframe.client.pace import (
    Pace,
    PaceSource,
    expected_render_seconds,
    format_pace,
    job_pace,
    lease_size,
)
from blindframe.client.quote import (
    SETTLE_LEASE_GAS,
    SETTLE_TILE_GAS,
    TX_GAS,
    build_quote,
    check_max_cost,
)
from blindframe.coordinator.market import WorkerProfile


def test_the_pace_comes_from_the_jobs_own_history() -> None:
    # 6 of 16 tile-replicas verified 3 minutes after the first claim: 2 per minute, 5 min left.
    pace = job_pace(done=6, total=16, first_claim_at=1000, now=1180)
    assert pace == Pace(2.0, 300, PaceSource.JOB)
    assert format_pace(pace) == "2 tiles/min, about 5m left"
    # The quote does not override what the job has shown.
    assert job_pace(
        done=6, total=16, first_claim_at=1000, now=1180, quoted_seconds=60, posted_at=990
    ) == Pace(2.0, 300, PaceSource.JOB)
    # A remainder that is not a whole number of seconds rounds up.
    assert job_pace(done=3, total=4, first_claim_at=0, now=100).eta_seconds == 34


def test_before_the_first_verified_tile_the_quote_stands_in() -> None:
    quoted = job_pace(
        done=0, total=8, first_claim_at=1010, now=1100, quoted_seconds=300, posted_at=1000
    )
    assert quoted == Pace(None, 200, PaceSource.QUOTE)
    assert format_pace(quoted) == "about 3m 20s left (quoted)"
    late = job_pace(
        done=0, total=8, first_claim_at=None, now=2000, quoted_seconds=300, posted_at=1000
    )
    assert late == Pace(None, 0, PaceSource.QUOTE)
    assert format_pace(late) == "past the quoted time"
    # No quote (a job posted before quotes, or no node advertised): unknown, not invented.
    unknown = job_pace(done=0, total=8, first_claim_at=None, now=2000, posted_at=1000)
    assert unknown == Pace(None, None, PaceSource.UNKNOWN)
    assert format_pace(unknown) == "time left unknown"
    # Everything verified: nothing left.
    assert job_pace(done=8, total=8, first_claim_at=None, now=5).eta_seconds == 0


def test_expected_render_time_from_what_nodes_advertise() -> None:
    # Two nodes at 1 tile/s each, 10 tiles x 1 replica: 5 s.
    assert expected_render_seconds(10, 1, [(1000, 8), (1000, 8)]) == 5
    # Nodes that did not advertise (0 ms) or have no room do not count.
    assert expected_render_seconds(10, 1, [(1000, 8), (0, 8), (500, 0)]) == 10
    # Replication 2 needs two nodes; one is not enough, whatever its speed.
    assert expected_render_seconds(10, 2, [(10, 64)]) is None
    assert expected_render_seconds(10, 2, []) is None
    # A fast node takes at most one replica of every tile: 10 tiles at 10/s (1 s) while the
    # slow one computes the other 10 replicas at 1/s.
    assert expected_render_seconds(10, 2, [(100, 64), (1000, 64)]) == 10
    # Three nodes for two replicas: the fast one is capped, the two slow ones share the rest.
    assert expected_render_seconds(10, 2, [(100, 64), (1000, 64), (1000, 64)]) == 5


def test_lease_plan() -> None:
    # Free capacity bounds a lease, and so does what fits in the lease length.
    assert lease_size(100, 600, [(1000, 16)]) == 16
    assert lease_size(100, 10, [(1000, 64)]) == 10
    assert lease_size(4, 600, [(1000, 64)]) == 4
    # The median node's lease; nobody advertising: the whole lane in one lease.
    assert lease_size(100, 600, [(1000, 8), (1000, 16), (1000, 32)]) == 16
    assert lease_size(100, 600, []) == 100


def _profile(ms: int, free: int) -> WorkerProfile:
    return WorkerProfile(
        address="0x" + "11" * 20,
        capacity=64,
        free_capacity=free,
        ms_per_tile=ms,
        advertised_at=1,
        completed=0,
        faults=0,
    )


def test_quote_sums_escrow_gas_and_upload() -> None:
    quote = build_quote(
        kernel="volume@1",
        frame=(16, 16),
        tile_count=16,
        canary_tiles=12,
        replication=2,
        reward_wei=10**15,
        lease_length=600,
        post_gas=250_000,
        upload={"inputs": 100, "evaluationKeys": 1000, "manifest": 10},
        profiles=[_profile(2000, 8), _profile(2000, 8)],
        max_fee=lambda gas: gas * 3,  # 3 wei per gas
    )
    assert quote.escrow_wei == 16 * 2 * 10**15
    assert (quote.lease_size, quote.leases) == (8, 4)
    settle = 4 * (TX_GAS + SETTLE_LEASE_GAS) + 32 * SETTLE_TILE_GAS
    assert quote.gas == {"postJob": 250_000, "settle": settle}
    assert quote.gas_fee_wei == 3 * (250_000 + settle)
    assert quote.total_wei == quote.escrow_wei + quote.gas_fee_wei
    assert quote.upload_bytes == 1110
    # 32 tile-replicas at 0.5 tile/s on each of two nodes: 32 s. Every replica verified, each
    # lease is settled at once: no challenge window is quoted.
    assert (quote.render_seconds, quote.expected_seconds) == (32, 32)
    document = quote.to_json()
    assert document["total"] == str(quote.total_wei)
    assert document["expectedSeconds"] == 32
    lines = quote.lines()
    assert [line.split()[0] for line in lines] == [
        "render", "escrow", "gas", "total", "upload", "time", "checks"
    ]  # fmt: skip
    assert lines[1] == "escrow    0.032 ETH (16 x 2 x 0.001 ETH)"
    assert lines[5] == "time      about 32s (32s rendering on 2 node(s))"
    # 12 canary tiles of 16 are the ring around a 16x16 frame: a faked tile is one with p 12/16,
    # two both miss them with p 4/16 x 3/15; a node faking only the 4 inner tiles meets none.
    assert lines[6] == (
        "checks    twin check of every tile of every replica: p 1; replicas compared (x2): p 1 "
        "unless all faked alike; 12 ring canaries alone: p 0.750 (1 faked tile), 0.950 (2, 1/8 "
        "of the tasks), 0 (faking away from the border)"
    )

    check_max_cost(quote, quote.total_wei)  # at the limit: allowed
    with pytest.raises(CostLimitError, match="above --max-cost"):
        check_max_cost(quote, quote.total_wei - 1)


def test_quote_without_advertisements_says_unknown() -> None:
    quote = build_quote(
        kernel="volume@1",
        frame=(16, 16),
        tile_count=4,
        canary_tiles=0,
        replication=1,
        reward_wei=1,
        lease_length=600,
        post_gas=1,
        upload={"inputs": 0, "evaluationKeys": 0, "manifest": 0},
        profiles=[_profile(0, 64)],
        max_fee=lambda gas: gas,
    )
    assert quote.render_seconds is None
    assert quote.expected_seconds is None
    assert quote.to_json()["expectedSeconds"] is None
    assert quote.time_text().startswith("unknown (0 node(s) advertise volume@1")
    assert "time unknown" in quote.summary()
