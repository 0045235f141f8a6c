"""Lease results: the file a worker uploads for a lease, and the checks anyone can make on it.

A lease result holds the OUTPUT bundle of every tile of the lease, in tile order, behind a small
header. Whoever downloads it (the client, another replica's worker) recomputes every tile root
from the ciphertext coefficients and the lease root from those, and refuses the file unless that
root is the one the worker revealed on chain: the bytes are bound to the commitment, so a client
never pays for bytes that do not match.

Layout: ``b"BFLR" | version u16 | reserved u16 | header length u32 | header JSON | bundles``.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from blindframe.coordinator.errors import LeaseResultError
from blindframe.coordinator.market import Opening
from blindframe.fhe_core.errors import FheCoreError
from blindframe.fhe_core.kernels import expected_outputs
from blindframe.fhe_core.merkle import (
    TileTree,
    U64Array,
    coefficient_stream,
    digest_leaf_at,
    lease_proof,
    lease_root,
    torus_distance,
)

__all__ = [
    "MAGIC",
    "LeaseResult",
    "disagreement_openings",
    "max_result_bytes",
    "open_lease_result",
    "pack_lease_result",
]

MAGIC = b"BFLR"
VERSION = 1
_FIXED = struct.Struct("<4sHHI")
_MAX_HEADER = 1 << 16
MAX_OPENINGS = 32  # the contract's MAX_OPENINGS
_BUNDLE_FRAMING = 4096  # an OUTPUT bundle's header and framing around its one value, at most


def max_result_bytes(kernel: str, tiles: int) -> int:
    """The most bytes an honest result file of ``tiles`` tiles can have: every download of a
    result (the client's, a replica's, a juror's) stops there, so a hostile CID cannot fill a
    disk."""
    return _FIXED.size + _MAX_HEADER + tiles * (expected_outputs(kernel)[0][2] + _BUNDLE_FRAMING)


@dataclass
class LeaseResult:
    """A lease's outputs with their tile roots; each tile's coefficient stream and Merkle tree
    are built when first asked for (a proof, an opening): checking a root needs only the roots,
    and those of outputs seen before come from :func:`_tile_root`'s memo."""

    kernel: str
    job_id: int
    lease_id: int
    first_tile: int
    outputs: list[bytes]
    leaf_depth: int
    tile_roots: list[bytes]
    _built: dict[int, tuple[U64Array, TileTree]] = field(default_factory=dict, repr=False)

    def _tree_of(self, position: int) -> tuple[U64Array, TileTree]:
        if position not in self._built:
            stream = _stream(self.kernel, self.outputs[position], self.leaf_depth, position)
            self._built[position] = (stream, TileTree.build(stream, self.leaf_depth))
        return self._built[position]

    def stream(self, tile: int) -> U64Array:
        """``tile``'s coefficient stream."""
        return self._tree_of(self._position(tile))[0]

    def tree(self, tile: int) -> TileTree:
        """``tile``'s Merkle tree."""
        return self._tree_of(self._position(tile))[1]

    @property
    def root(self) -> bytes:
        """The lease root the worker commits to."""
        return lease_root(self.tile_roots)

    @property
    def tiles(self) -> range:
        """The tiles covered."""
        return range(self.first_tile, self.first_tile + len(self.outputs))

    def output(self, tile: int) -> bytes:
        """The OUTPUT bundle of ``tile``."""
        return self.outputs[self._position(tile)]

    def _position(self, tile: int) -> int:
        if tile not in self.tiles:
            raise LeaseResultError(f"lease {self.lease_id} does not cover tile {tile}")
        return tile - self.first_tile

    def proof(self, tile: int, leaf: int) -> list[bytes]:
        """leafDepth siblings of ``leaf`` in ``tile``'s tree, then the lease-tree siblings."""
        position = self._position(tile)
        return self.tree(tile).proof(leaf) + lease_proof(self.tile_roots, position)

    def to_bytes(self) -> bytes:
        """The file to upload."""
        header = json.dumps(
            {
                "kernel": self.kernel,
                "jobId": self.job_id,
                "leaseId": self.lease_id,
                "firstTile": self.first_tile,
                "sizes": [len(o) for o in self.outputs],
                "root": "0x" + self.root.hex(),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return _FIXED.pack(MAGIC, VERSION, 0, len(header)) + header + b"".join(self.outputs)


def _stream(kernel: str, output: bytes, leaf_depth: int, index: int) -> U64Array:
    try:
        return coefficient_stream(kernel, output, leaf_depth)
    except FheCoreError as exc:
        raise LeaseResultError(
            f"the output of tile #{index} of the lease is invalid: {exc.message}"
        ) from None


# Tile roots of outputs seen before, by a hash of the bytes: bit-identical replicas (the
# honest case) and a result opened again to decrypt it cost one tree, not one per opening.
# A tree is ~2^leafDepth keccak calls (0.2-1.7 s a tile); an entry here is 64 bytes.
_ROOTS: OrderedDict[bytes, bytes] = OrderedDict()
_ROOTS_KEPT = 1 << 14
_ROOTS_LOCK = threading.Lock()


def _tile_root(kernel: str, output: bytes, leaf_depth: int, index: int) -> bytes:
    """The root of one tile's tree (checking its output, unless the same bytes were seen)."""
    key = hashlib.blake2b(f"{kernel}/{leaf_depth}/".encode() + output, digest_size=32).digest()
    with _ROOTS_LOCK:
        root = _ROOTS.get(key)
        if root is not None:
            _ROOTS.move_to_end(key)
            return root
    root = TileTree.build(_stream(kernel, output, leaf_depth, index), leaf_depth).root
    with _ROOTS_LOCK:
        _ROOTS[key] = root
        while len(_ROOTS) > _ROOTS_KEPT:
            _ROOTS.popitem(last=False)
    return root


def _result(
    kernel: str,
    job_id: int,
    lease_id: int,
    first_tile: int,
    outputs: Sequence[bytes],
    leaf_depth: int,
) -> LeaseResult:
    roots = [_tile_root(kernel, o, leaf_depth, i) for i, o in enumerate(outputs)]
    return LeaseResult(
        kernel, job_id, lease_id, first_tile, [bytes(o) for o in outputs], leaf_depth, roots
    )


def pack_lease_result(
    *,
    kernel: str,
    job_id: int,
    lease_id: int,
    first_tile: int,
    leaf_depth: int,
    outputs: Sequence[bytes],
) -> LeaseResult:
    """Wrap a lease's OUTPUT bundles (tile order) and compute their trees and root."""
    if not outputs:
        raise LeaseResultError("a lease result holds at least one tile")
    return _result(kernel, job_id, lease_id, first_tile, outputs, leaf_depth)


def open_lease_result(
    data: bytes,
    *,
    kernel: str,
    job_id: int,
    lease_id: int,
    first_tile: int,
    count: int,
    leaf_depth: int,
    root: bytes,
) -> LeaseResult:
    """Parse a downloaded lease result and check it against the lease on chain and its root."""
    if len(data) < _FIXED.size:
        raise LeaseResultError(
            f"lease {lease_id}'s result is {len(data)} bytes: too short to be one"
        )
    magic, version, _reserved, header_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise LeaseResultError(f"lease {lease_id}'s result is not a blindframe lease result")
    if version != VERSION:
        raise LeaseResultError(
            f"lease {lease_id}'s result has format version {version}; this reads {VERSION}"
        )
    if not 0 < header_len <= _MAX_HEADER or _FIXED.size + header_len > len(data):
        raise LeaseResultError(f"lease {lease_id}'s result has a bad header length {header_len}")
    try:
        header = json.loads(data[_FIXED.size : _FIXED.size + header_len])
        sizes = [int(s) for s in header["sizes"]]
        claimed = (
            str(header["kernel"]),
            int(header["jobId"]),
            int(header["leaseId"]),
            int(header["firstTile"]),
        )
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        # OverflowError: a size of Infinity (Python's json reads it); the message stays short
        # whatever the header quotes.
        raise LeaseResultError(
            f"lease {lease_id}'s result header is malformed: {str(exc)[:200]}"
        ) from None
    except RecursionError:
        raise LeaseResultError(f"lease {lease_id}'s result header nests too deeply") from None
    if claimed != (kernel, job_id, lease_id, first_tile):
        # (What the header claims is shown cut short: it is whatever the file says.)
        said = f"{claimed[0]} job {claimed[1]} lease {claimed[2]} from tile {claimed[3]}"
        raise LeaseResultError(
            f"the result is for {said if len(said) <= 120 else said[:117] + '...'}, "
            f"not {kernel} job {job_id} lease {lease_id} from tile {first_tile}"
        )
    if len(sizes) != count or any(s <= 0 for s in sizes):
        raise LeaseResultError(
            f"lease {lease_id} covers {count} tiles; its result lists {len(sizes)} outputs"
        )
    body = _FIXED.size + header_len
    if body + sum(sizes) != len(data):
        raise LeaseResultError(
            f"lease {lease_id}'s result is {len(data)} bytes, its header says {body + sum(sizes)}"
        )
    outputs, offset = [], body
    for size in sizes:
        outputs.append(data[offset : offset + size])
        offset += size
    result = _result(kernel, job_id, lease_id, first_tile, outputs, leaf_depth)
    if result.root != root:
        raise LeaseResultError(
            f"lease {lease_id}'s bytes give root 0x{result.root.hex()}, "
            f"but its worker revealed 0x{root.hex()}",
            hint="the result was tampered with or is not the committed one: do not pay for it",
        )
    return result


def disagreement_openings(
    a: LeaseResult, b: LeaseResult, tile: int, *, tolerance: int, far_count: int
) -> list[Opening] | None:
    """Openings proving ``a`` and ``b`` far apart on ``tile``, or None when they cannot be.

    When the two tiles' digest leaves (the last leaf, the OUTPUT bundle's sha256) differ, that
    one opening suffices: the contract counts a differing digest leaf as ``farCount`` far pairs.
    Two outputs that differ in any byte differ there. Otherwise the coefficient rule applies:
    the leaves with the most coefficient pairs farther apart than ``tolerance`` (fewest leaves,
    ascending indices), None when the whole tile does not hold ``far_count`` of them within the
    contract's limit of openings. Equal tile roots (bit-identical replicas, the honest case)
    are None at once, without building either tree."""
    if a.tile_roots[a._position(tile)] == b.tile_roots[b._position(tile)]:
        return None
    ta, tb = a.tree(tile), b.tree(tile)
    if ta.depth != tb.depth:
        raise LeaseResultError(
            f"leases {a.lease_id} and {b.lease_id} have tile trees of depth {ta.depth} and "
            f"{tb.depth}: they are not replicas of one job"
        )
    digest = digest_leaf_at(ta.depth)
    chosen: list[int] | None = [digest]
    if ta.leaf(digest) == tb.leaf(digest):
        chosen = _far_leaves(a, b, tile, tolerance=tolerance, far_count=far_count)
    if chosen is None:
        return None
    return [
        Opening(
            leaf=leaf,
            leafA=ta.leaf(leaf),
            leafB=tb.leaf(leaf),
            proofA=a.proof(tile, leaf),
            proofB=b.proof(tile, leaf),
        )
        for leaf in sorted(chosen)
    ]


def _far_leaves(
    a: LeaseResult, b: LeaseResult, tile: int, *, tolerance: int, far_count: int
) -> list[int] | None:
    """The coefficient rule: the fewest leaves holding ``far_count`` far pairs (most far pairs
    first), None when the whole tile does not hold them within MAX_OPENINGS leaves."""
    sa, sb = a.stream(tile), b.stream(tile)
    n = max(len(sa), len(sb))
    pa = np.pad(sa, (0, (-n) % 4 + n - len(sa)))
    pb = np.pad(sb, (0, (-n) % 4 + n - len(sb)))
    per_leaf = (torus_distance(pa, pb) > np.uint64(tolerance)).reshape(-1, 4).sum(axis=1)
    order = np.argsort(-per_leaf, kind="stable")
    chosen: list[int] = []
    total = 0
    for leaf in order[:MAX_OPENINGS]:
        if per_leaf[leaf] == 0 or total >= far_count:
            break
        chosen.append(int(leaf))
        total += int(per_leaf[leaf])
    return chosen if total >= far_count else None
