"""The network's ceiling (bench/ceiling.py) and issue 12's table (bench/report.py) from figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import ceiling, report


def _figures() -> dict[str, Any]:
    split = [
        {"name": name, "seconds": seconds, "note": ""}
        for name, seconds in (("setup", 30.0), ("compute", 60.0), ("settle", 61.0))
    ]
    run = {
        "frame": [64, 64],
        "tiles": 64,
        "canaryTiles": 0,
        "replication": 2,
        "wallSeconds": 151.0,
        "split": split,
        "gas": 1_280_000,
        "uploadedBytes": 27_600_000,
        "resultBytes": 134_000_000,
        "detection": {"byTwin": 1.0, "byCanariesOneTile": 0.0, "byCanariesLazy": 0.0},
    }
    baseline = {**run, "tiles": 100, "canaryTiles": 36, "wallSeconds": 302.0}
    one = {**run, "replication": 1, "split": [{**split[1], "seconds": 80.0}], "wallSeconds": 120.0}
    two = {**one, "split": [{**split[1], "seconds": 44.0}], "wallSeconds": 90.0}
    return {
        "machine": {"date": "2026-12-07 10:00 UTC", "cpu": "test", "cores": 2},
        "fhe": {
            "rows": [{"kernel": "volume@1", "ms": 13.5, "baseline_ms": 27.0, "out_bytes": 16397}]
        },
        "demo": {
            "size": 64,
            "runs": {"demo": run, "baseline": baseline, "one-node": one, "two-nodes": two},
        },
        "client": {
            "frame": [64, 64],
            "tileReplicasChecked": 128,
            "seconds": {"keygen": 3.6, "verify": 0.8192},
            "usPerPixel": {"keygen": 879.0, "verify": 200.0},
        },
    }


def test_the_ceiling_follows_its_formulas() -> None:
    x = ceiling.inputs(_figures())
    assert (x.ms_per_px, x.bench_cores, x.replication, x.canary_overhead) == (13.5, 2, 2, 0.0)
    assert x.verify_us_per_px == pytest.approx(0.8192e6 / (128 * 64))  # 100 us
    rows = {(r["frame"], r["nodes"]): r for r in ceiling.ceiling_rows(x)}
    hd = rows[("1920x1080", 100)]
    tile_replicas = 135 * 240 * 2
    assert hd["chain"] == pytest.approx(300 * 30e6 / x.gas_per_tile_replica / tile_replicas)
    assert hd["FHE compute"] == pytest.approx(100 * 8 * 3.6e6 / 13.5 / (1920 * 1080 * 2))
    assert hd["IPFS"] == pytest.approx(3600 * x.client_mbps * 1e6 / (1920 * 1080 * 2 * 16397))
    assert hd["verify"] == pytest.approx(3.6e9 / (100 * 1920 * 1080 * 2))
    assert hd["bottleneck"] == min(("chain", "IPFS", "FHE compute", "verify"), key=hd.__getitem__)
    # Compute grows with the nodes; nothing else does.
    assert rows[("128x128", 1000)]["FHE compute"] == pytest.approx(
        10 * rows[("128x128", 100)]["FHE compute"]
    )
    assert rows[("128x128", 1000)]["chain"] == rows[("128x128", 10)]["chain"]
    assert "| 1920x1080 | 100 |" in ceiling.markdown(x)


def test_the_table_sets_each_figure_beside_its_same_run_baseline(tmp_path: Path) -> None:
    rows = {row[0]: row for row in report.table(_figures())}
    assert rows["volume@1 ms per pixel"][1:] == ("13.5", "27.0 (today's path)", "0.50x", "<= 15")
    assert rows["demo 64x64 wall s (2 nodes, replication 2)"][1:4] == ("151", "302", "0.50x")
    assert rows["tiles x replicas computed"][1:4] == ("128", "200", "0.64x")
    assert rows["canary overhead % (canary / real tiles)"][1:3] == ("0.0", "56.2")
    assert rows["2 nodes vs 1 on one job (replication 1), compute s"][1:4] == (
        "44",
        "80 (1 node)",
        "0.55x",
    )
    assert rows["client verify s per 64x64 frame"][1] == "0.82"
    png = report.chart(_figures(), tmp_path / "chart.png")
    assert png is not None
    assert png.read_bytes().startswith(b"\x89PNG")
    # Canaries alone: about 35 catch a node faking an eighth of a 1920x1080 job with p 0.99.
    assert (
        "| 32,400 (1920x1080) | 1/8 of the tiles | 6 (0 %) | 18 (0 %) | 35 (0 %) | 35, 0.990 |"
        in (report.canary_table())
    )
