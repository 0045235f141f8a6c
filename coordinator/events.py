"""Event indexing: logs fetched in block ranges behind a confirmation depth, kept in SQLite.

The cursor and the events live in one SQLite file, so a restarted process resumes where it stopped,
and a handler marks each event handled in the same database: an event is handed to a handler until
the handler returns without raising (at-least-once; handlers are written to be idempotent). The
hash of every indexed block near the head is kept; when the chain's hash for one of them changes
(a reorganisation), the index rewinds to the last block that still matches and drops the orphaned
events, and the handlers see the replacement events afterwards.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hexbytes import HexBytes
from web3._utils.events import get_event_data
from web3.exceptions import BlockNotFound, MismatchedABI

from blindframe.coordinator.chain import with_retries
from blindframe.coordinator.errors import CoordinatorError
from blindframe.coordinator.sqlite import open_db, transaction

if TYPE_CHECKING:
    from web3 import Web3
    from web3.contract.contract import Contract

__all__ = ["ChainEvent", "EventIndexer", "event_cid"]

_REORG_WINDOW = 128  # block hashes kept for reorganisation checks


def event_cid(value: Any) -> str | None:
    """The CID in an event's ``bytes`` argument (``0x``-hex text once indexed), or None when the
    bytes are not ASCII text. A CID is ASCII by construction: anything else is garbled or hostile,
    and every reader refuses it rather than guess (a replaced character would name other bytes)."""
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value.removeprefix("0x")).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract event, as indexed."""

    id: int
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the dashboard and --json output use it)."""
        return {
            "id": self.id,
            "event": self.name,
            "args": self.args,
            "block": self.block_number,
            "tx": self.tx_hash,
            "logIndex": self.log_index,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, int) and abs(value) > 2**53:
        return str(value)
    return value


class EventIndexer:
    """Indexes one contract's events into ``db_path`` under the cursor ``name``."""

    def __init__(
        self,
        w3: Web3,
        contract: Contract,
        db_path: Path,
        *,
        name: str,
        start_block: int,
        endpoint: str,
        confirmations: int = 0,
        batch_size: int = 2_000,
    ) -> None:
        self.w3 = w3
        self.contract = contract
        self.name = name
        self.start_block = start_block
        self.endpoint = endpoint
        self.confirmations = confirmations
        self.batch_size = batch_size
        self._abis = {
            HexBytes(w3.keccak(text=_signature(item))): item
            for item in cast("list[dict[str, Any]]", contract.abi)
            if item.get("type") == "event"
        }
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_db(db_path)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        self._address = contract.address
        self._rewound_to: int | None = None

    # -- reading ---------------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """The last block fully indexed (``start_block - 1`` before the first poll)."""
        row = self._db.execute("SELECT block FROM cursors WHERE name = ?", (self.name,)).fetchone()
        return int(row[0]) if row else self.start_block - 1

    def events(self, *, after_id: int = 0, names: tuple[str, ...] = ()) -> list[ChainEvent]:
        """Indexed events with id > ``after_id`` (optionally only these names), in chain order."""
        query = "SELECT * FROM events WHERE cursor = ? AND id > ?"
        params: list[Any] = [self.name, after_id]
        if names:
            query += f" AND name IN ({','.join('?' * len(names))})"
            params.extend(names)
        rows = self._db.execute(query + " ORDER BY block, log_index", params).fetchall()
        return [_row_event(r) for r in rows]

    # -- indexing --------------------------------------------------------------------------------

    def poll(self) -> int:
        """Index up to ``head - confirmations``; returns the number of new events."""
        head = with_retries(
            lambda: self.w3.eth.block_number, what="read the head", endpoint=self.endpoint
        )
        target = head - self.confirmations
        self._check_reorg()
        added = 0
        while self.cursor < target:
            first = self.cursor + 1
            last = min(target, first + self.batch_size - 1)
            added += self._store(first, last, self._logs(first, last))
        return added

    @property
    def rewound_to(self) -> int | None:
        """The lowest block a reorganisation rewound the index to since :meth:`clear_rewind`
        (the events after it were dropped), or None. State built from the dropped events is
        the caller's to line up with the chain again; then it calls :meth:`clear_rewind`."""
        return self._rewound_to

    def clear_rewind(self) -> None:
        """The caller lined its state up with the rewound index."""
        self._rewound_to = None

    def handle(self, handler: Callable[[ChainEvent], None], *, consumer: str) -> int:
        """Give each indexed event not yet handled by ``consumer`` to ``handler``, in order.

        An event counts as handled once the handler returns; if it raises, the error propagates and
        the same event is offered again next time.
        """
        done = 0
        rows = self._db.execute(
            "SELECT e.* FROM events e WHERE e.cursor = ? AND NOT EXISTS (SELECT 1 FROM handled h "
            "WHERE h.consumer = ? AND h.event_key = e.event_key) ORDER BY e.block, e.log_index",
            (self.name, consumer),
        ).fetchall()
        for row in rows:
            event = _row_event(row)
            handler(event)
            self._db.execute(
                "INSERT OR IGNORE INTO handled (consumer, event_key) VALUES (?, ?)",
                (consumer, row["event_key"]),
            )
            done += 1
        return done

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- internal --------------------------------------------------------------------------------

    def _store(self, first: int, last: int, logs: list[Any]) -> int:
        hashes: dict[int, str] = {}
        for block_number in {first, last}:
            hashes[block_number] = self._block_hash(block_number)
        added = 0
        with transaction(self._db):
            for log in logs:
                event = self._decode(log)
                if event is None:
                    continue
                number = int(log["blockNumber"])
                block_hash = "0x" + bytes(log["blockHash"]).hex()
                hashes[number] = block_hash
                key = f"{block_hash}:{int(log['logIndex'])}"
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO events (cursor, event_key, name, args, block, "
                    "block_hash, tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.name,
                        key,
                        event[0],
                        json.dumps(event[1]),
                        number,
                        block_hash,
                        "0x" + bytes(log["transactionHash"]).hex(),
                        int(log["logIndex"]),
                    ),
                )
                added += cur.rowcount
            for number, block_hash in hashes.items():
                if number > last - _REORG_WINDOW:
                    self._db.execute(
                        "INSERT OR REPLACE INTO blocks (cursor, block, hash) VALUES (?, ?, ?)",
                        (self.name, number, block_hash),
                    )
            self._db.execute(
                "DELETE FROM blocks WHERE cursor = ? AND block <= ?",
                (self.name, last - _REORG_WINDOW),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO cursors (name, block) VALUES (?, ?)", (self.name, last)
            )
        return added

    def _logs(self, first: int, last: int) -> list[Any]:
        def fetch() -> list[Any]:
            return list(
                self.w3.eth.get_logs(
                    {"address": self._address, "fromBlock": first, "toBlock": last}
                )
            )

        return with_retries(
            fetch, what=f"read events of blocks {first}..{last}", endpoint=self.endpoint
        )

    def _check_reorg(self) -> None:
        rows = self._db.execute(
            "SELECT block, hash FROM blocks WHERE cursor = ? ORDER BY block DESC", (self.name,)
        ).fetchall()
        for number, known_hash in rows:
            try:
                current = self._block_hash(int(number))
            except CoordinatorError:
                continue  # the block is gone (the chain got shorter): keep rewinding
            if current == known_hash:
                if int(number) < self.cursor:
                    self._rewind(int(number))
                return
        if rows:
            self._rewind(self.start_block - 1)

    def _rewind(self, block: int) -> None:
        self._rewound_to = block if self._rewound_to is None else min(self._rewound_to, block)
        with transaction(self._db):
            self._db.execute(
                "DELETE FROM events WHERE cursor = ? AND block > ?", (self.name, block)
            )
            self._db.execute(
                "DELETE FROM blocks WHERE cursor = ? AND block > ?", (self.name, block)
            )
            self._db.execute(
                "INSERT OR REPLACE INTO cursors (name, block) VALUES (?, ?)", (self.name, block)
            )

    def _block_hash(self, number: int) -> str:
        try:
            block = with_retries(
                lambda: self.w3.eth.get_block(number),
                what=f"read block {number}",
                endpoint=self.endpoint,
            )
        except BlockNotFound:
            block = None
        if block is None or block.get("hash") is None:
            raise CoordinatorError(f"block {number} is not available")
        return "0x" + bytes(block["hash"]).hex()

    def _decode(self, log: Any) -> tuple[str, dict[str, Any]] | None:
        topics = log.get("topics") or []
        if not topics:
            return None
        abi = self._abis.get(HexBytes(topics[0]))
        if abi is None:
            return None
        try:
            data = get_event_data(self.w3.codec, abi, log)
        except MismatchedABI:
            return None
        return str(data["event"]), _jsonable(dict(data["args"]))


def _signature(item: dict[str, Any]) -> str:
    def kind(i: dict[str, Any]) -> str:
        t = str(i["type"])
        if t.startswith("tuple"):
            return "(" + ",".join(kind(c) for c in i["components"]) + ")" + t[5:]
        return t

    return f"{item['name']}({','.join(kind(i) for i in item.get('inputs', []))})"


def _row_event(row: sqlite3.Row) -> ChainEvent:
    return ChainEvent(
        id=int(row["id"]),
        name=str(row["name"]),
        args=json.loads(row["args"]),
        block_number=int(row["block"]),
        block_hash=str(row["block_hash"]),
        tx_hash=str(row["tx_hash"]),
        log_index=int(row["log_index"]),
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    cursor TEXT NOT NULL, block INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (cursor, block)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cursor TEXT NOT NULL,
    event_key TEXT NOT NULL,
    name TEXT NOT NULL,
    args TEXT NOT NULL,
    block INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    UNIQUE (cursor, event_key)
);
CREATE INDEX IF NOT EXISTS events_by_block ON events (cursor, block, log_index);
CREATE TABLE IF NOT EXISTS handled (
    consumer TEXT NOT NULL, event_key TEXT NOT NULL, PRIMARY KEY (consumer, event_key)
);
"""
