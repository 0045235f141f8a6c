"""The IPFS store of client and worker: Kubo RPC client, verified downloads, key cache."""

from __future__ import annotations

from blindframe.coordinator.store.cache import CacheEntry, KeyCache
from blindframe.coordinator.store.cid import Cid
from blindframe.coordinator.store.client import (
    AddResult,
    ContentStat,
    IpfsStore,
    NodeIdentity,
    Progress,
    normalize_api_url,
)
from blindframe.coordinator.store.errors import (
    ContentIntegrityError,
    ContentNotFoundError,
    ContentTooLargeError,
    InvalidCidError,
    StoreConnectionError,
    StoreError,
    StoreResponseError,
    UnsupportedContentError,
)
from blindframe.coordinator.store.unixfs import KuboDagBuilder, kubo_cid_of_bytes, kubo_cid_of_file

__all__ = [
    "AddResult",
    "CacheEntry",
    "Cid",
    "ContentIntegrityError",
    "ContentNotFoundError",
    "ContentStat",
    "ContentTooLargeError",
    "InvalidCidError",
    "IpfsStore",
    "KeyCache",
    "KuboDagBuilder",
    "NodeIdentity",
    "Progress",
    "StoreConnectionError",
    "StoreError",
    "StoreResponseError",
    "UnsupportedContentError",
    "kubo_cid_of_bytes",
    "kubo_cid_of_file",
    "normalize_api_url",
]
