"""A worker's cache of evaluation keys by CID: fetched once, verified on insert, evicted LRU.

Evaluation keys are hundreds of MB and one key set serves every job of a kernel version, so a
worker fetches each CID once and every later job reads the local file. An entry appears only by an
atomic rename after a download whose every block matched its CID, so a file in the cache is whole
and verified. Entries are named by CIDv1, so ``Qm...`` and ``bafy...`` share one entry. Several
threads or processes asking for the same CID at once wait for one download (a file lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blindframe.coordinator.store.cid import Cid
from blindframe.coordinator.store.client import IpfsStore, Progress
from blindframe.coordinator.store.errors import StoreError

__all__ = ["CacheEntry", "KeyCache"]

_LOCKS = ".locks"
_STALE_PART_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CacheEntry:
    """One cached file: its CID (v1), path, size, and when a job last used it (ns since epoch)."""

    cid: str
    path: Path
    size: int
    last_used_ns: int


class KeyCache:
    """Files by CID in ``directory``, at most ``max_bytes`` in all (None: no limit).

    ``get(cid)`` returns the local path, downloading through ``store`` only on a miss. When an
    insert takes the total over ``max_bytes``, the least recently used other entries are removed
    (a job holding one open keeps reading it: Linux frees the bytes on close).
    """

    def __init__(self, store: IpfsStore, directory: Path, *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive (not {max_bytes})")
        self.store = store
        self.directory = Path(directory).expanduser().resolve()
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._clock = 0
        try:
            (self.directory / _LOCKS).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the key cache directory {self.directory}: {exc.strerror}",
                hint="choose a writable directory for the worker's cache",
            ) from None
        self._remove_stale_parts()

    def get(
        self, cid: str | Cid, *, progress: Progress | None = None, max_size: int | None = None
    ) -> Path:
        """The local path of ``cid``'s bytes, fetched and verified once, reused afterwards;
        a fetch stops past ``max_size`` bytes (and the cache's own limit)."""
        key = _key(cid)
        path = self.directory / key
        with self._thread_lock(key), self._file_lock(key):
            if path.is_file():
                with self._guard:
                    self.hits += 1
                self._touch(path)
                return path
            with self._guard:
                self.misses += 1
            limits = [n for n in (self.max_bytes, max_size) if n is not None]
            self.store.get(key, path, max_size=min(limits, default=None), progress=progress)
            self._touch(path)
        self._evict(keep=key)
        return path

    def __contains__(self, cid: object) -> bool:
        if not isinstance(cid, str | Cid):
            return False
        return (self.directory / _key(cid)).is_file()

    def entries(self) -> list[CacheEntry]:
        """Cached files, least recently used first."""
        found: list[CacheEntry] = []
        for path in self.directory.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                found.append(CacheEntry(path.name, path, info.st_size, info.st_mtime_ns))
        return sorted(found, key=lambda entry: (entry.last_used_ns, entry.cid))

    @property
    def total_bytes(self) -> int:
        """Bytes held by cached files."""
        return sum(entry.size for entry in self.entries())

    def evict(self, cid: str | Cid) -> bool:
        """Drop one entry; False if it was not cached."""
        key = _key(cid)
        with self._thread_lock(key), self._file_lock(key):
            try:
                (self.directory / key).unlink()
            except FileNotFoundError:
                return False
        return True

    def _evict(self, keep: str) -> None:
        if self.max_bytes is None:
            return
        entries = self.entries()
        total = sum(entry.size for entry in entries)
        for entry in entries:
            if total <= self.max_bytes:
                return
            if entry.cid != keep and self.evict(entry.cid):
                total -= entry.size

    def _touch(self, path: Path) -> None:
        # mtime is the LRU clock. Set explicitly in nanoseconds: the kernel stamps writes with a
        # coarse clock (milliseconds), which would tie entries used in quick succession.
        with self._guard:
            self._clock = max(self._clock + 1, time.time_ns())
            stamp = self._clock
        os.utime(path, ns=(stamp, stamp))

    @contextlib.contextmanager
    def _thread_lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def _file_lock(self, key: str) -> Iterator[None]:
        # flock: other worker processes sharing the directory wait instead of fetching twice.
        with (self.directory / _LOCKS / key).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_stale_parts(self) -> None:
        # A process killed mid-download leaves its temporary file: clear old ones.
        cutoff = time.time() - _STALE_PART_SECONDS
        for part in self.directory.glob(".*.part"):
            with contextlib.suppress(FileNotFoundError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()


def _key(cid: str | Cid) -> str:
    parsed = cid if isinstance(cid, Cid) else Cid.parse(cid)
    return str(parsed.v1())
