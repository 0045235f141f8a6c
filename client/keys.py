"""The artist's FHE key sets: generated once per kernel under ``<home>/keys``, never uploaded.

Only the evaluation keys (public: workers compute with them) go to IPFS, once per key set; their
CID is remembered next to the key set in ``uploads.json``, tied to the evaluation keys' hash so a
regenerated key set is uploaded again. The secret key set stays in its 0600 file in the 0700 key
directory (:mod:`blindframe.fhe_core.keys` writes it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindframe.client.progress import KEYGEN, UPLOAD, Progress, no_progress
from blindframe.coordinator.manifest import ContentRef
from blindframe.coordinator.store import IpfsStore
from blindframe.fhe_core.errors import KeyStoreError
from blindframe.fhe_core.keys import evaluation_keys_path, generate_keys, key_info

__all__ = [
    "KeySet",
    "ensure_keys",
    "key_directory",
    "key_set",
    "keygen",
    "upload_evaluation_keys",
]

_UPLOADS = "uploads.json"


@dataclass(frozen=True)
class KeySet:
    """A key set on disk, and the CID of its evaluation keys once uploaded."""

    kernel: str
    directory: Path
    spec_hash: str
    evaluation_keys_hash: str
    evaluation_keys_bytes: int
    keygen_seconds: float
    evaluation_keys_cid: str | None
    created: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (``--json`` output)."""
        return {
            "kernel": self.kernel,
            "directory": str(self.directory),
            "specHash": self.spec_hash,
            "evaluationKeysHash": self.evaluation_keys_hash,
            "evaluationKeysBytes": self.evaluation_keys_bytes,
            "evaluationKeysCid": self.evaluation_keys_cid,
            "keygenSeconds": self.keygen_seconds,
            "created": self.created,
        }


def key_directory(home: Path) -> Path:
    """``<home>/keys``, created 0700 (and made 0700 if it was not)."""
    path = Path(home) / "keys"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _memo(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / _UPLOADS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def key_set(kernel_id: str, home: Path) -> KeySet:
    """The key set of ``kernel_id`` in ``home`` (KeyStoreError if there is none)."""
    info = key_info(kernel_id, key_directory(home))
    memo = _memo(info.directory)
    cid = memo.get("cid") if memo.get("evaluation_keys_hash") == info.evaluation_keys_hash else None
    return KeySet(
        kernel=kernel_id,
        directory=info.directory,
        spec_hash=info.spec_hash,
        evaluation_keys_hash=info.evaluation_keys_hash,
        evaluation_keys_bytes=info.evaluation_keys_bytes,
        keygen_seconds=info.keygen_seconds,
        evaluation_keys_cid=str(cid) if cid else None,
    )


def keygen(
    kernel_id: str, home: Path, *, force: bool = False, progress: Progress = no_progress
) -> KeySet:
    """Generate the key set of ``kernel_id`` unless one exists (``force`` replaces it: jobs
    encrypted under the old keys can then never be decrypted)."""
    directory = key_directory(home)
    if not force:
        try:
            return key_set(kernel_id, home)
        except KeyStoreError:
            pass
    progress(KEYGEN, 0, 1)
    info = generate_keys(kernel_id, directory, overwrite=force)
    (info.directory / _UPLOADS).unlink(missing_ok=True)
    progress(KEYGEN, 1, 1)
    out = key_set(kernel_id, home)
    return dataclasses.replace(out, created=True)


def ensure_keys(kernel_id: str, home: Path, *, progress: Progress = no_progress) -> KeySet:
    """The key set of ``kernel_id``, generated first if this home has none."""
    return keygen(kernel_id, home, progress=progress)


def upload_evaluation_keys(
    store: IpfsStore, keys: KeySet, *, progress: Progress = no_progress
) -> ContentRef:
    """The evaluation keys' CID on ``store``'s node: added (streamed) unless the node already
    pins the CID remembered for this key set."""
    path = evaluation_keys_path(keys.kernel, keys.directory.parent)
    size = path.stat().st_size
    if keys.evaluation_keys_cid is not None and store.is_pinned(keys.evaluation_keys_cid):
        progress(UPLOAD, size, size)
        return ContentRef(keys.evaluation_keys_cid, size)
    added = store.add_file(path, progress=lambda done, total: progress(UPLOAD, done, total))
    memo = {
        "evaluation_keys_hash": keys.evaluation_keys_hash,
        "cid": added.cid,
        "size": added.size,
        "uploaded_at": int(time.time()),
        "ipfs_api": store.api_url,
    }
    tmp = keys.directory / f".{_UPLOADS}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(memo, indent=2) + "\n", encoding="utf-8")
    tmp.replace(keys.directory / _UPLOADS)
    return ContentRef(added.cid, added.size)
