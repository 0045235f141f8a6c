"""The network's ceiling on paper: what limits a network of N render nodes, from measured figures.

`python -m bench.ceiling` prints a markdown section (the one in bench/RESULTS.md) computed from
the figures of the last `make bench` run (bench/out/figures.json) where it has them, else from
the figures bench/RESULTS.md documents (each input says which). Four limits, in frames per hour,
for a frame of P pixels (T = P / 64 tiles of 8x8, ``volume@1``) at replication r with a canary
overhead c (canary tiles per real tile):

- **chain**: ``blocks_per_hour x block_gas / gas_per_tile_replica / (T (1 + c) r)``: every
  tile-replica's claim, commit, reveal and settle share of a lease, in blocks of 30 M gas.
- **FHE compute**: ``N x (cores / bench_cores) x 3.6e6 / ms_per_px / (P (1 + c) r)``: each node
  runs at the measured ms per pixel scaled by its cores (linear: tiles are independent and the
  demo's two nodes share cores without loss; see the 1 vs 2 nodes run).
- **IPFS bandwidth**: the artist fetches every replica's result of every tile:
  ``3600 x client_MBps x 1e6 / (P (1 + c) r x out_B_per_px)``; the nodes' own uploads are spread
  over N links and come later.
- **client verification**: decrypting and checking every tile-replica against the twin, at the
  measured microseconds per checked pixel: ``3.6e9 / (us_per_checked_px x P (1 + c) r)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.figures import load

__all__ = ["Inputs", "ceiling_rows", "inputs", "main", "markdown"]

# Frames the ceiling is computed for (height, width).
FRAMES = {"128x128": (128, 128), "1920x1080": (1080, 1920)}
NODE_COUNTS = (10, 100, 1000)
NODE_CORES = 16
BLOCK_GAS = 30_000_000
BLOCK_SECONDS = 12  # Ethereum mainnet's slot
TILE_PIXELS = 64
GAS_RECORD = Path(__file__).parent.parent / "contracts" / "snapshots" / "GasPerTileReplica.json"


@dataclass(frozen=True)
class Inputs:
    """The measured figures the ceiling uses, each with where it comes from."""

    ms_per_px: float  # volume@1, one process using bench_cores
    bench_cores: int
    out_bytes_per_px: float
    gas_per_tile_replica: float
    client_mbps: float  # what the artist's IPFS node fetches per second from a node's
    verify_us_per_px: float | None  # client: decrypt + twin check per tile-replica pixel
    replication: int
    canary_overhead: float  # canary tiles per real tile
    sources: dict[str, str]


# The figures bench/RESULTS.md and contracts/README.md document, when a run has none.
DOCUMENTED: dict[str, tuple[float, str]] = {
    "ms_per_px": (26.9, "RESULTS.md, volume@1 quiet (2 cores)"),
    "bench_cores": (2, "RESULTS.md's machine"),
    "out_bytes_per_px": (16_397, "RESULTS.md, volume@1 output bundle"),
    "gas_per_tile_replica": (8_097, "contracts/README.md, 64 tiles per lease, replication 2"),
    "client_mbps": (34.3, "RESULTS.md, Helia get on B from A, 500 MB"),
}


def inputs(figures: dict[str, Any] | None = None) -> Inputs:
    """The ceiling's inputs: this run's figures where measured, else :data:`DOCUMENTED`."""
    figures = load() if figures is None else figures
    values: dict[str, float | None] = {k: v for k, (v, _) in DOCUMENTED.items()}
    sources = {k: s for k, (_, s) in DOCUMENTED.items()}
    values["verify_us_per_px"], sources["verify_us_per_px"] = None, "not measured yet"
    here = "this run"
    machine = figures.get("machine", {})
    for row in figures.get("fhe", {}).get("rows", []):
        if row["kernel"] == "volume@1":
            values["ms_per_px"], sources["ms_per_px"] = row["ms"], f"{here} (bench fhe)"
            values["out_bytes_per_px"] = row["out_bytes"]
            sources["out_bytes_per_px"] = f"{here} (bench fhe)"
            values["bench_cores"], sources["bench_cores"] = machine.get("cores", 2), here
    demo = figures.get("demo", {}).get("runs", {}).get("demo")
    replication, overhead = 2, 0.0
    if demo:
        replication = int(demo["replication"])
        real = demo["tiles"] - demo["canaryTiles"]
        overhead = demo["canaryTiles"] / max(real, 1)
    # The gas table's figure (leases of 64 tiles; the demo's own, with staking and leases of a
    # few tiles, is in the report's table), from the committed gas record when there is one.
    if GAS_RECORD.is_file():
        key = f"replication{replication}_batch64"
        recorded = json.loads(GAS_RECORD.read_text()).get(key)
        if recorded is not None:
            values["gas_per_tile_replica"] = float(recorded)
            sources["gas_per_tile_replica"] = f"contracts/snapshots/{GAS_RECORD.name}, {key}"
    client = figures.get("client")
    if client:
        checked_px = client["tileReplicasChecked"] * TILE_PIXELS
        values["verify_us_per_px"] = 1e6 * client["seconds"]["verify"] / max(checked_px, 1)
        sources["verify_us_per_px"] = f"{here} (bench client)"
    for row in figures.get("ipfs", {}).get("rows", []):
        values["client_mbps"], sources["client_mbps"] = row["get_b_mbps"], f"{here} (bench ipfs)"
    return Inputs(
        ms_per_px=float(values["ms_per_px"] or 0),
        bench_cores=int(values["bench_cores"] or 0),
        out_bytes_per_px=float(values["out_bytes_per_px"] or 0),
        gas_per_tile_replica=float(values["gas_per_tile_replica"] or 0),
        client_mbps=float(values["client_mbps"] or 0),
        verify_us_per_px=_maybe(values["verify_us_per_px"]),
        replication=replication,
        canary_overhead=overhead,
        sources=sources,
    )


def _maybe(value: float | None) -> float | None:
    return None if value is None else float(value)


def ceiling_rows(x: Inputs) -> list[dict[str, Any]]:
    """Frames per hour by each limit, per frame size and node count, and the first bottleneck."""
    rows = []
    for label, (h, w) in FRAMES.items():
        pixels = h * w
        tiles = math.ceil(h / 8) * math.ceil(w / 8)
        work = (1 + x.canary_overhead) * x.replication  # tile-replicas per real tile
        chain = 3600 / BLOCK_SECONDS * BLOCK_GAS / x.gas_per_tile_replica / (tiles * work)
        ipfs = 3600 * x.client_mbps * 1e6 / (pixels * work * x.out_bytes_per_px)
        verify = (
            math.inf if x.verify_us_per_px is None else 3.6e9 / (x.verify_us_per_px * pixels * work)
        )
        for nodes in NODE_COUNTS:
            compute = nodes * NODE_CORES / x.bench_cores * 3.6e6 / x.ms_per_px / (pixels * work)
            limits = {"chain": chain, "IPFS": ipfs, "FHE compute": compute, "verify": verify}
            first = min(limits, key=lambda k: limits[k])
            rows.append({"frame": label, "nodes": nodes, **limits, "bottleneck": first})
    return rows


def markdown(x: Inputs) -> str:
    """The ceiling as a markdown section: inputs with sources, the formulas, the table."""
    per_block = BLOCK_GAS / x.gas_per_tile_replica
    lines = [
        "Inputs (frames of `volume@1`, 8x8 tiles):",
        "",
        "| input | value | from |",
        "| --- | --- | --- |",
        f"| FHE ms per pixel | {x.ms_per_px:.1f} on {x.bench_cores} cores | "
        f"{x.sources['ms_per_px']} |",
        f"| output bytes per pixel | {x.out_bytes_per_px:,.0f} | {x.sources['out_bytes_per_px']} |",
        f"| gas per tile-replica | {x.gas_per_tile_replica:,.0f} | "
        f"{x.sources['gas_per_tile_replica']} |",
        f"| artist's IPFS fetch MB/s | {x.client_mbps:.1f} | {x.sources['client_mbps']} |",
        f"| client verify us per checked pixel | {_num(x.verify_us_per_px, '.1f')} | "
        f"{x.sources['verify_us_per_px']} |",
        f"| replication, canary tiles per real tile | {x.replication}, "
        f"{x.canary_overhead:.2f} | the demo's defaults |",
        "",
        f"Chain: {per_block:,.0f} tile-replicas per {BLOCK_GAS / 1e6:.0f} M-gas block "
        f"({per_block * 3600 / BLOCK_SECONDS:,.0f} per hour at one block per {BLOCK_SECONDS} s). "
        f"Bytes per frame pixel through IPFS: "
        f"{x.out_bytes_per_px * x.replication * (1 + x.canary_overhead):,.0f} "
        "(every replica's result; inputs and keys are per job, not per pixel). "
        f"Nodes of {NODE_CORES} cores.",
        "",
        "| frame | nodes | chain | IPFS (artist's fetch) | FHE compute | client verify "
        "| first bottleneck |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in ceiling_rows(x):
        lines.append(
            f"| {row['frame']} | {row['nodes']} | {row['chain']:,.1f} | {row['IPFS']:,.1f} "
            f"| {row['FHE compute']:,.1f} | {_num(row['verify'], ',.1f')} | {row['bottleneck']} |"
        )
    lines.append("")
    lines.append("Frames per hour by each limit alone; the smallest is the ceiling.")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    """``value`` formatted, or "not measured" (None, or the infinity of a missing input)."""
    return "not measured" if value is None or math.isinf(value) else format(value, spec)


def main() -> None:
    print(markdown(inputs()))


if __name__ == "__main__":
    main()
