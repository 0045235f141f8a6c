"""Key sets, client side: generate per kernel version, store 0600, load, export evaluation keys.

Layout of a key directory (mode 0700)::

    KEY_DIR/volume@1/keyset.bin          secret + evaluation keys (0600; never leaves KEY_DIR)
    KEY_DIR/volume@1/evaluation.bundle   evaluation keys as an EVAL_KEYS bundle (upload once)
    KEY_DIR/volume@1/meta.json           kernel id, client-spec hash, evaluation-key hash

Concrete seeds secret-key generation with 0 unless told otherwise: every key set here is made
from 128 fresh bits of ``secrets``.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindframe.fhe_core import wire
from blindframe.fhe_core.errors import BundleFormatError, KeyStoreError
from blindframe.fhe_core.kernels import client_spec_hash, concrete_client, import_concrete

__all__ = [
    "KeyInfo",
    "evaluation_keys_path",
    "export_evaluation_keys",
    "generate_keys",
    "key_info",
    "load_fhe_client",
    "read_evaluation_keys",
]

_KEYSET = "keyset.bin"
_EVAL = "evaluation.bundle"
_META = "meta.json"
EVAL_VALUE = "evaluation_keys"
# Compressed evaluation keys of every kernel here are < 100 MB; 1 GiB bounds what a worker reads.
MAX_EVAL_BYTES = 1 << 30


@dataclass(frozen=True)
class KeyInfo:
    """A key set on disk: where, for which kernel and client specs, its evaluation-key hash."""

    kernel_id: str
    directory: Path
    spec_hash: str
    evaluation_keys_hash: str
    evaluation_keys_bytes: int
    keygen_seconds: float


def _kernel_dir(kernel_id: str, key_dir: Path) -> Path:
    client_spec_hash(kernel_id)  # validates the id before it becomes a path
    return Path(key_dir) / kernel_id


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def generate_keys(kernel_id: str, key_dir: Path, *, overwrite: bool = False) -> KeyInfo:
    """Generate a fresh key set for ``kernel_id`` under ``key_dir`` and export its eval keys."""
    kdir = _kernel_dir(kernel_id, key_dir)
    if (kdir / _KEYSET).exists() and not overwrite:
        raise KeyStoreError(
            f"a key set for {kernel_id} already exists in {kdir}",
            hint="load it, or pass overwrite=True to replace it (old results become unreadable)",
        )
    _private_dir(Path(key_dir))
    _private_dir(kdir)
    fhe = import_concrete()
    client = fhe.Client(concrete_client(kernel_id).specs)
    start = time.perf_counter()
    client.keygen(
        force=True, secret_seed=secrets.randbits(128), encryption_seed=secrets.randbits(128)
    )
    seconds = time.perf_counter() - start
    keyset = kdir / _KEYSET
    keyset.unlink(missing_ok=True)
    # Create the file 0600 first: Concrete writes into it without touching its mode.
    os.close(os.open(keyset, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    client.keys.serialize_to_file(keyset)
    bundle = wire.write_bundle(
        wire.BundleKind.EVAL_KEYS,
        kernel_id,
        client_spec_hash(kernel_id),
        [wire.ValueEntry(EVAL_VALUE, (), client.evaluation_keys.serialize())],
    )
    (kdir / _EVAL).write_bytes(bundle)
    meta = {
        "kernel_id": kernel_id,
        "spec_hash": client_spec_hash(kernel_id),
        "evaluation_keys_hash": wire.bundle_hash(bundle),
        "evaluation_keys_bytes": len(bundle),
        "keygen_seconds": round(seconds, 3),
    }
    (kdir / _META).write_text(json.dumps(meta, indent=2) + "\n")
    return key_info(kernel_id, key_dir)


def key_info(kernel_id: str, key_dir: Path) -> KeyInfo:
    """Describe the key set of ``kernel_id`` in ``key_dir``; check it is complete and private."""
    kdir = _kernel_dir(kernel_id, key_dir)
    for name in (_KEYSET, _EVAL, _META):
        if not (kdir / name).is_file():
            raise KeyStoreError(
                f"no complete key set for {kernel_id} in {kdir} ({name} is missing)",
                hint="run keygen for this kernel first",
            )
    mode = stat.S_IMODE((kdir / _KEYSET).stat().st_mode)
    if mode & 0o077:
        raise KeyStoreError(
            f"{kdir / _KEYSET} is readable by others (mode {mode:o})",
            hint=f"chmod 600 {kdir / _KEYSET}",
        )
    meta = json.loads((kdir / _META).read_text())
    if meta.get("spec_hash") != client_spec_hash(kernel_id):
        raise KeyStoreError(
            f"the key set in {kdir} was made for other client specs than this build's {kernel_id}",
            hint="generate a new key set with this version of blindframe",
        )
    return KeyInfo(
        kernel_id=kernel_id,
        directory=kdir,
        spec_hash=str(meta["spec_hash"]),
        evaluation_keys_hash=str(meta["evaluation_keys_hash"]),
        evaluation_keys_bytes=int(meta["evaluation_keys_bytes"]),
        keygen_seconds=float(meta["keygen_seconds"]),
    )


def load_fhe_client(kernel_id: str, key_dir: Path) -> Any:
    """A Concrete client for ``kernel_id`` holding the key set of ``key_dir`` (secret keys)."""
    info = key_info(kernel_id, key_dir)
    fhe = import_concrete()
    client = fhe.Client(concrete_client(kernel_id).specs)
    client.keys = fhe.Keys.deserialize(info.directory / _KEYSET)
    return client


def evaluation_keys_path(kernel_id: str, key_dir: Path) -> Path:
    """The EVAL_KEYS bundle file to upload (never the key set itself)."""
    return key_info(kernel_id, key_dir).directory / _EVAL


def export_evaluation_keys(kernel_id: str, key_dir: Path) -> bytes:
    """The EVAL_KEYS bundle's bytes."""
    return evaluation_keys_path(kernel_id, key_dir).read_bytes()


def read_evaluation_keys(kernel_id: str, data: bytes | memoryview) -> Any:
    """Validate an EVAL_KEYS bundle (worker side) and deserialize Concrete's evaluation keys."""
    if len(data) > MAX_EVAL_BYTES:
        raise BundleFormatError(
            f"evaluation keys of {len(data)} bytes exceed the {MAX_EVAL_BYTES} limit"
        )
    bundle = wire.read_bundle(
        data,
        kind=wire.BundleKind.EVAL_KEYS,
        kernel_id=kernel_id,
        spec_hash=client_spec_hash(kernel_id),
        expected=[(EVAL_VALUE, (), MAX_EVAL_BYTES)],
    )
    fhe = import_concrete()
    try:
        return fhe.EvaluationKeys.deserialize(bytes(bundle.values[0].data))
    except RuntimeError as exc:  # Concrete's refusal of bytes that are not its keys
        raise BundleFormatError(
            f"the evaluation keys do not parse as {kernel_id}'s ({str(exc)[:120]})"
        ) from exc
