"""Account keys in encrypted keystores (Web3 Secret Storage, scrypt): create, import, unlock."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from eth_account import Account
from eth_utils.address import is_hex_address, to_checksum_address

from blindframe.coordinator.errors import KeystoreError, KeystorePasswordError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "KeystoreEntry",
    "create_account",
    "find_keystore",
    "import_private_key",
    "keystore_address",
    "list_accounts",
    "read_password_file",
    "unlock",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class KeystoreEntry:
    """One keystore file: its alias (file stem), checksum address and path."""

    name: str
    address: str
    path: Path


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise KeystoreError(
            f"invalid account name {name!r}",
            hint="use letters, digits, '.', '_' or '-' (at most 64, not starting with a symbol)",
        )


def _write_keystore(directory: Path, name: str, keystore: dict[str, Any]) -> KeystoreEntry:
    _check_name(name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{name}.json"
    address = to_checksum_address("0x" + str(keystore["address"]))
    for entry in list_accounts(directory):
        if entry.address == address:
            raise KeystoreError(f"account {address} already has a keystore: {entry.path}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(
            f"a keystore named {name!r} already exists in {directory}", hint="choose another name"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keystore, handle)
    return KeystoreEntry(name=name, address=address, path=path)


def create_account(directory: Path, name: str, password: str) -> KeystoreEntry:
    """Generate a fresh key and store it encrypted under ``directory/<name>.json`` (0600)."""
    _check_password(password)
    account = Account.create()
    return _write_keystore(directory, name, Account.encrypt(account.key, password))


def import_private_key(
    directory: Path, name: str, private_key: str, password: str
) -> KeystoreEntry:
    """Encrypt an existing private key (hex) into a keystore; the key is never written in clear."""
    _check_password(password)
    try:
        account = Account.from_key(private_key.strip())
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"not a valid private key: {exc}") from None
    return _write_keystore(directory, name, Account.encrypt(account.key, password))


def list_accounts(directory: Path) -> list[KeystoreEntry]:
    """The keystores found in ``directory``, sorted by name; unreadable files are skipped."""
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob("*.json")):
        address = _keystore_address(path)
        if address is not None:
            entries.append(KeystoreEntry(name=path.stem, address=address, path=path))
    return entries


def _keystore_address(path: Path) -> str | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    raw = document.get("address") if isinstance(document, dict) else None
    if not isinstance(raw, str) or not is_hex_address("0x" + raw.removeprefix("0x")):
        return None
    return to_checksum_address("0x" + raw.removeprefix("0x"))


def keystore_address(path: Path) -> str:
    """The checksummed address a keystore file holds (read without unlocking it)."""
    address = _keystore_address(path)
    if address is None:
        raise KeystoreError(
            f"{path} is not a keystore file",
            hint="list the accounts with `blindframe account list`",
        )
    return address


def find_keystore(directory: Path, account: str) -> Path:
    """A keystore by file path, name (file stem) or address."""
    candidate = Path(account).expanduser()
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    entries = list_accounts(directory)
    for entry in entries:
        if entry.name == account or (
            is_hex_address(account) and entry.address.lower() == account.lower()
        ):
            return entry.path
    known = ", ".join(f"{e.name} ({e.address})" for e in entries) or "none"
    raise KeystoreError(
        f"no keystore for account {account!r} in {directory}",
        hint=f"known accounts: {known}; create one with `blindframe account new NAME`",
    )


def unlock(path: Path, password: str) -> LocalAccount:
    """Decrypt a keystore file into a signing account (the key stays in memory only)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeystoreError(f"keystore file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"keystore file {path} is not readable JSON: {exc}") from None
    except RecursionError:
        raise KeystoreError(f"keystore file {path} nests too deeply to be a keystore") from None
    if not isinstance(document, dict) or ("crypto" not in document and "Crypto" not in document):
        raise KeystoreError(f"{path} is not an Ethereum keystore (no 'crypto' section)")
    problem = _keystore_problem(document)
    if problem is not None:
        raise KeystoreError(f"{path} is not a usable keystore: {problem}")
    try:
        key = Account.decrypt(document, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystorePasswordError(
                f"wrong password for keystore {path}",
                hint="check the password file or BLINDFRAME_PASSWORD_FILE",
            ) from None
        raise KeystoreError(f"cannot decrypt keystore {path}: {exc}") from None
    account: LocalAccount = Account.from_key(key)
    # The MAC covers the ciphertext, not the IV: a keystore whose IV was damaged decrypts, with
    # the right password, to another key. The address the file names catches that.
    named = _keystore_address(path)
    if named is not None and named != account.address:
        raise KeystoreError(
            f"keystore {path} decrypts to {account.address}, not the {named} it names: "
            "the file is damaged",
            hint="restore it from a backup",
        )
    return account


# The costliest key derivation a keystore may ask for: geth's standard scrypt (n = 2**18, r = 8,
# p = 1) and eth_account's (n = 2**18, r = 1, p = 8) are 2**21 blocks; a file asking for far more
# would hold the command for hours or take all memory before its password could be checked.
_MAX_SCRYPT_WORK = 2**23
_MAX_SCRYPT_N = 2**20
_MAX_PBKDF2_ROUNDS = 10_000_000


def _hex_field(value: Any, digits: int | None = None) -> bool:
    if not isinstance(value, str):
        return False
    text = value.removeprefix("0x")
    if digits is not None and len(text) != digits:
        return False
    return (
        len(text) % 2 == 0 and len(text) <= 1024 and re.fullmatch(r"[0-9a-fA-F]*", text) is not None
    )


def _whole(value: Any, low: int, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _keystore_problem(document: dict[str, Any]) -> str | None:
    """What makes a version-3 keystore unusable (None: nothing), checked before any key
    derivation: eth_account would otherwise fail on it with whatever Python error a missing or
    mistyped field causes, or spend hours in scrypt."""
    crypto = document.get("crypto", document.get("Crypto"))
    if document.get("version") != 3:
        return "only version 3 keystores are supported"
    if not isinstance(crypto, dict):
        return "'crypto' is not an object"
    if crypto.get("cipher") != "aes-128-ctr":
        return "its cipher is not aes-128-ctr"
    params = crypto.get("cipherparams")
    if not isinstance(params, dict) or not _hex_field(params.get("iv"), 32):
        return "cipherparams.iv is not 16 bytes of hex"
    if not _hex_field(crypto.get("ciphertext")) or not crypto["ciphertext"].removeprefix("0x"):
        return "the ciphertext is not hex"
    if not _hex_field(crypto.get("mac"), 64):
        return "the mac is not 32 bytes of hex"
    kdf, kdf_params = crypto.get("kdf"), crypto.get("kdfparams")
    if not isinstance(kdf_params, dict):
        return "kdfparams is not an object"
    if kdf_params.get("dklen") != 32 or not _hex_field(kdf_params.get("salt")):
        return "kdfparams needs dklen 32 and a hex salt"
    if kdf == "scrypt":
        n, r, p = (kdf_params.get(k) for k in ("n", "r", "p"))
        if not (_whole(n, 2, _MAX_SCRYPT_N) and _whole(r, 1, 64) and _whole(p, 1, 64)):
            return f"scrypt needs n a power of two up to {_MAX_SCRYPT_N}, r and p of 1..64"
        if n & (n - 1) or n * r * p > _MAX_SCRYPT_WORK:
            return f"scrypt n={n}, r={r}, p={p} is not a power of two or far too costly"
        return None
    if kdf == "pbkdf2":
        if kdf_params.get("prf") != "hmac-sha256":
            return "pbkdf2 needs prf hmac-sha256"
        if not _whole(kdf_params.get("c"), 1, _MAX_PBKDF2_ROUNDS):
            return f"pbkdf2 needs c of 1..{_MAX_PBKDF2_ROUNDS} rounds"
        return None
    return "its kdf is neither scrypt nor pbkdf2"


def read_password_file(path: Path) -> str:
    """The password in ``path`` (first line, without its newline); the file should be 0600."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError(f"password file {path} does not exist") from None
    except OSError as exc:
        raise KeystoreError(f"cannot read password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KeystoreError(f"password file {path} is not UTF-8 text") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise KeystoreError("the password must have at least 8 characters")
