"""SQLite as the event index and a node's state use it: autocommit, WAL, explicit transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["open_db", "transaction"]


def open_db(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (``transaction`` groups writes), WAL for writers.

    A reader opened ``read_only`` (the dashboard, ``worker status``) never takes a write lock,
    so it can look at a running node's database without stalling it.
    """
    if read_only:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Group writes: all or nothing. ``BEGIN IMMEDIATE`` takes the write lock up front, so two
    processes on one file wait for each other instead of failing half-way with SQLITE_BUSY."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
