"""What a job will cost and take, known before anything is signed: the quote.

``client quote``, ``post``, ``render`` and the Blender add-on show it. Its parts:

- **escrow**: tiles x replication x reward, canary tiles included (what postJob sends);
- **gas** of the client's own transactions in a normal render, priced at the chain's current
  fee by the rule the sender itself applies (``TxSender.max_fee``: the estimate times the
  sender's margin, times its highest price per gas): ``postJob`` estimated by the node, and the
  ``settle`` calls, one per lease in the worst case, from the measured costs below (a lease's
  size follows what the nodes advertise). A normal render sends nothing else; ``withdraw``
  follows only a cancel or a refund;
- **upload**: the input bundles, the evaluation keys (unless the IPFS node already pins them)
  and the manifest;
- **checks**: what catches a wrong tile, with what probability (:mod:`.canaries`): the twin
  check of every tile, replicas compared, and what the canary tiles alone would catch;
- **wall time**: rendering at the pace online nodes advertise (ms per tile, free capacity;
  :mod:`.pace`). The client settles a lease as soon as every replica of its tiles verified, so
  an honest render waits no challenge window (a wrong or missing replica does: not quoted).
  "unknown" when fewer nodes advertise the kernel than the job has replicas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from blindframe.client.canaries import Detection
from blindframe.client.errors import CostLimitError
from blindframe.client.pace import expected_render_seconds, lease_size
from blindframe.client.units import format_duration, format_eth
from blindframe.coordinator.market import WorkerProfile

__all__ = [
    "SETTLE_LEASE_GAS",
    "SETTLE_TILE_GAS",
    "TX_GAS",
    "Quote",
    "build_quote",
    "check_max_cost",
]

# settle's gas, from contracts/README.md's "Gas per tile-replica" table (GasPerTile.t.sol, each
# call priced as its own transaction on cold storage): one settle call of n leases of k tiles
# costs about TX_GAS + n x (SETTLE_LEASE_GAS + k x SETTLE_TILE_GAS) (64 one-tile leases:
# 1.44 M; four of 16: 166 k; one of 64: 103 k).
TX_GAS = 21_000
SETTLE_LEASE_GAS = 21_300
SETTLE_TILE_GAS = 940


@dataclass(frozen=True)
class Quote:
    """A job's expected cost and time (amounts in wei, sizes in bytes, times in seconds)."""

    kernel: str
    frame: tuple[int, int]  # (height, width)
    tile_count: int  # canaries included
    canary_tiles: int
    replication: int
    reward_wei: int
    escrow_wei: int
    gas: Mapping[str, int]  # per transaction kind: postJob, settle
    gas_fee_wei: int
    leases: int  # the lease plan: leases over every replica lane
    lease_size: int  # tiles per lease
    lease_length: int
    upload: Mapping[str, int]  # inputs, evaluationKeys, manifest
    nodes: int  # nodes advertising the kernel with room to claim
    render_seconds: int | None  # None: unknown
    # Frames of an animation job: tile_count and canary_tiles are over all of them.
    frames: int = 1

    @property
    def detection(self) -> Detection:
        """What the job's checks catch (a ``volume`` job's canaries are its margin ring)."""
        return Detection(
            self.tile_count,
            self.canary_tiles,
            self.replication,
            ring=self.kernel.partition("@")[0] == "volume",
        )

    @property
    def total_wei(self) -> int:
        """Escrow plus gas: what the job takes from the account."""
        return self.escrow_wei + self.gas_fee_wei

    @property
    def upload_bytes(self) -> int:
        """Every byte the post adds to the IPFS node."""
        return sum(self.upload.values())

    @property
    def expected_seconds(self) -> int | None:
        """Post to the last settlement (None: unknown): the render, every replica honest."""
        return self.render_seconds

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (wei as strings); kept in the job's job.json."""
        return {
            "kernel": self.kernel,
            "frame": list(self.frame),
            "frames": self.frames,
            "tileCount": self.tile_count,
            "canaryTiles": self.canary_tiles,
            "detection": self.detection.to_json(),
            "replication": self.replication,
            "rewardPerTileReplica": str(self.reward_wei),
            "escrow": str(self.escrow_wei),
            "gas": dict(self.gas),
            "gasFee": str(self.gas_fee_wei),
            "total": str(self.total_wei),
            "leases": self.leases,
            "leaseSize": self.lease_size,
            "leaseLength": self.lease_length,
            "upload": dict(self.upload),
            "uploadBytes": self.upload_bytes,
            "nodes": self.nodes,
            "renderSeconds": self.render_seconds,
            "expectedSeconds": self.expected_seconds,
        }

    def time_text(self) -> str:
        """``about 3m (3m rendering on 2 node(s))``, or why it is unknown."""
        if self.render_seconds is None:
            return (
                f"unknown ({self.nodes} node(s) advertise {self.kernel} with room; "
                f"replication {self.replication} needs {self.replication})"
            )
        rendering = f"{format_duration(self.render_seconds)} rendering on {self.nodes} node(s)"
        return f"about {format_duration(self.render_seconds)} ({rendering})"

    def lines(self) -> list[str]:
        """The quote as the CLI prints it, one line per part."""
        h, w = self.frame
        gas = sum(self.gas.values())
        keys = _mib(self.upload["evaluationKeys"]) if self.upload["evaluationKeys"] else "pinned"
        frames = f" x {self.frames} frames" if self.frames > 1 else ""
        return [
            f"render    {self.kernel} {w}x{h}{frames}: {self.tile_count} tiles "
            f"({self.canary_tiles} canary) x {self.replication} replica(s), {self.leases} "
            f"lease(s) of up to "
            f"{self.lease_size} tiles, {format_duration(self.lease_length)} each",
            f"escrow    {format_eth(self.escrow_wei)} ({self.tile_count} x {self.replication} x "
            f"{format_eth(self.reward_wei)})",
            f"gas       {_about_eth(self.gas_fee_wei)} for {gas:,} gas at the current fee "
            f"(postJob {self.gas['postJob']:,}, settle {self.gas['settle']:,})",
            f"total     {_about_eth(self.total_wei)}",
            f"upload    {_mib(self.upload_bytes)} (inputs {_mib(self.upload['inputs'])}, "
            f"evaluation keys {keys}, manifest {self.upload['manifest']:,} B)",
            f"time      {self.time_text()}",
            f"checks    {self.detection.text()}",
        ]

    def summary(self) -> str:
        """One line: the add-on's status line."""
        expected = self.expected_seconds
        time_text = f"~{format_duration(expected)}" if expected is not None else "time unknown"
        return (
            f"Quote: {_about_eth(self.total_wei)} (escrow {format_eth(self.escrow_wei)} + gas "
            f"{_about_eth(self.gas_fee_wei)}), upload {_mib(self.upload_bytes)}, {time_text}"
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _about_eth(wei: int) -> str:
    """An estimate in ETH to 4 significant digits (the JSON keeps the wei)."""
    value = Decimal(int(wei)) / 10**18
    if value:
        value = value.quantize(Decimal(1).scaleb(value.adjusted() - 3))
    return f"about {format(value.normalize(), 'f')} ETH"


def build_quote(
    *,
    kernel: str,
    frame: tuple[int, int],
    tile_count: int,
    canary_tiles: int,
    replication: int,
    reward_wei: int,
    lease_length: int,
    post_gas: int,
    upload: Mapping[str, int],
    profiles: Sequence[WorkerProfile],
    max_fee: Callable[[int], int],
    frames: int = 1,
) -> Quote:
    """The quote of a prepared job: ``post_gas`` is postJob's estimate, ``profiles`` the staked
    nodes (:meth:`Market.worker_profiles`), ``max_fee`` the sender's fee rule; ``frames``: of an
    animation, whose every frame's tiles (canaries too) ``tile_count`` counts."""
    nodes = [(p.ms_per_tile, p.free_capacity) for p in profiles if p.ms_per_tile > 0]
    size = lease_size(tile_count, lease_length, nodes)
    leases = replication * math.ceil(tile_count / size)
    # Worst case: every lease verified in a round of its own, so settled in a call of its own.
    settle_gas = leases * (TX_GAS + SETTLE_LEASE_GAS) + replication * tile_count * SETTLE_TILE_GAS
    gas = {"postJob": post_gas, "settle": settle_gas}
    return Quote(
        kernel=kernel,
        frame=frame,
        tile_count=tile_count,
        canary_tiles=canary_tiles,
        replication=replication,
        reward_wei=reward_wei,
        escrow_wei=tile_count * replication * reward_wei,
        gas=gas,
        gas_fee_wei=max_fee(sum(gas.values())),
        leases=leases,
        lease_size=size,
        lease_length=lease_length,
        upload=dict(upload),
        nodes=sum(1 for ms, free in nodes if free > 0),
        render_seconds=expected_render_seconds(tile_count, replication, nodes),
        frames=frames,
    )


def check_max_cost(quote: Quote, max_cost_wei: int) -> None:
    """CostLimitError when the quote's total is above ``max_cost_wei``."""
    if quote.total_wei > max_cost_wei:
        raise CostLimitError(
            f"the quote is {format_eth(quote.total_wei)} (escrow {format_eth(quote.escrow_wei)} "
            f"+ gas {format_eth(quote.gas_fee_wei)}), above --max-cost "
            f"{format_eth(max_cost_wei)}: nothing was posted",
            hint="raise --max-cost, or lower --reward, --replication or the frame size",
        )
