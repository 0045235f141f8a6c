"""IPFS store throughput against a plain file copy, and evaluation-key fetches warm and cold.

Two real local nodes (Helia under Node 22, separate processes and blockstores) on loopback: A is
the client's, B a worker's, joined with swarm connect. For 1 MB, 100 MB and 500 MB it times
`add_file` on A, a verified `get` from A (local blocks) and from B (blocks over libp2p), each as
MB/s and as a ratio to `shutil.copyfile` of the same file measured in the same run. Then a
126 MB key set (4-bit TLU evaluation keys, DESIGN.md) through B's `KeyCache`: cold (blocks
fetched from A), cache dropped but blocks on B, and warm (cached file).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.figures import record
from blindframe.coordinator.store import IpfsStore, KeyCache
from blindframe.deploy.ipfs import start_node

MB = 1_000_000
SIZES = [1 * MB, 100 * MB, 500 * MB]
KEY_SIZE = 126 * MB
T = TypeVar("T")


def _write(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as out:
        left = size
        while left:
            piece = rng.randbytes(min(1 << 20, left))
            out.write(piece)
            left -= len(piece)


def _timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _rate(size: int, seconds: float) -> float:
    return size / MB / seconds


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-ipfs-"))
    node_a = start_node(root / "node-a")
    node_b = start_node(root / "node-b")
    try:
        with IpfsStore(node_a.api_url) as store_a, IpfsStore(node_b.api_url) as store_b:
            store_b.connect(node_a.multiaddrs[0])
            print(f"nodes: A {node_a.api_url}  B {node_b.api_url}  ({store_a.version()})")
            header = (
                f"{'size':>7} {'copy MB/s':>10} {'add MB/s':>9} {'x copy':>7} "
                f"{'get A MB/s':>11} {'x copy':>7} {'get B<-A MB/s':>14} {'x copy':>7}"
            )
            print(header)
            rows = []
            for index, size in enumerate(SIZES):
                source = root / f"data-{size}"
                _write(source, size, seed=index)
                copy, _ = _timed(lambda s=source: shutil.copyfile(s, root / "copy"))
                (root / "copy").unlink()
                add, added = _timed(lambda s=source: store_a.add_file(s))
                get_a, _ = _timed(lambda c=added.cid: store_a.get(c, root / "out-a"))
                get_b, _ = _timed(lambda c=added.cid: store_b.get(c, root / "out-b"))
                for name in ("out-a", "out-b"):
                    (root / name).unlink()
                source.unlink()
                c, a, ga, gb = (_rate(size, t) for t in (copy, add, get_a, get_b))
                print(
                    f"{size // MB:>5}MB {c:>10.0f} {a:>9.1f} {a / c:>7.3f} "
                    f"{ga:>11.1f} {ga / c:>7.3f} {gb:>14.1f} {gb / c:>7.3f}",
                    flush=True,
                )
                rows.append(
                    {
                        "mb": size // MB,
                        "copy_mbps": c,
                        "add_mbps": a,
                        "get_a_mbps": ga,
                        "get_b_mbps": gb,
                    }
                )
            # The ceiling (bench/ceiling.py) reads the largest size's fetch from another node.
            record("ipfs", {"rows": rows[-1:], "all": rows})

            keys = root / "eval-keys.bin"
            _write(keys, KEY_SIZE, seed=99)
            baseline, _ = _timed(lambda: shutil.copyfile(keys, root / "copy"))
            (root / "copy").unlink()
            cid = store_a.add_file(keys).cid
            cache = KeyCache(store_b, root / "key-cache")
            cold, _ = _timed(lambda: cache.get(cid))
            warm, _ = _timed(lambda: cache.get(cid))
            cache.evict(cid)
            local, _ = _timed(lambda: cache.get(cid))
            print(f"evaluation keys {KEY_SIZE // MB} MB via worker B's KeyCache:")
            print(f"  plain copy of the file        {baseline:8.3f} s")
            print(f"  cold (blocks from A, libp2p)  {cold:8.3f} s  ({cold / baseline:.1f}x copy)")
            print(f"  cache dropped, blocks on B    {local:8.3f} s  ({local / baseline:.1f}x copy)")
            print(f"  warm (cached file)            {warm:8.6f} s  ({cold / warm:.0f}x faster)")
            print(f"  cache: {cache.misses} fetches, {cache.hits} hit, {cache.total_bytes} bytes")
    finally:
        node_a.stop()
        node_b.stop()
        shutil.rmtree(root, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
