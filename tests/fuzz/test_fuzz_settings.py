"""Generated malformed keystores, password files and config files through the functions every
command reads them with (coordinator/accounts.py, coordinator/config.py): each is refused with
KeystoreError or ConfigError in one line, or read exactly; never another exception, never a
hang (a keystore's scrypt cost is part of the file)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from blindframe.coordinator.accounts import (
    keystore_address,
    list_accounts,
    read_password_file,
    unlock,
)
from blindframe.coordinator.config import load_settings
from blindframe.coordinator.errors import ConfigError, KeystoreError

from .tally import FUZZ, json_values, tally

PASSWORD = "correct horse battery"
KEY = "0x" + "11" * 32


@pytest.fixture(scope="module")
def keystore() -> dict[str, Any]:
    """A real keystore (scrypt, cheap parameters: each case decrypts it)."""
    return dict(Account.encrypt(KEY, PASSWORD, kdf="scrypt", iterations=2))


_PATHS = [
    ("address",),
    ("version",),
    ("id",),
    ("crypto",),
    ("crypto", "cipher"),
    ("crypto", "ciphertext"),
    ("crypto", "cipherparams"),
    ("crypto", "cipherparams", "iv"),
    ("crypto", "kdf"),
    ("crypto", "kdfparams"),
    ("crypto", "kdfparams", "n"),
    ("crypto", "kdfparams", "r"),
    ("crypto", "kdfparams", "p"),
    ("crypto", "kdfparams", "c"),
    ("crypto", "kdfparams", "prf"),
    ("crypto", "kdfparams", "dklen"),
    ("crypto", "kdfparams", "salt"),
    ("crypto", "mac"),
]
_VALUES = (
    json_values
    | st.sampled_from([0, 1, 2, 3, 2**20, 2**31, 2**40, 2**64, -2, 32, 31, 33, 1e9])
    | st.sampled_from(["scrypt", "pbkdf2", "aes-128-ctr", "aes-256-gcm", "hmac-sha256", ""])
    | st.binary(max_size=48).map(bytes.hex)
    | st.from_regex(r"[0-9a-fA-Fx]{0,70}", fullmatch=True)
)


@st.composite
def keystore_files(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """The keystore with fields replaced or removed, or its bytes cut, spliced or nested."""
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        document = copy.deepcopy(base)
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(_PATHS))
            parent: Any = document
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                if draw(st.integers(0, 3)) == 0:
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = draw(_VALUES)
        return json.dumps(document).encode()
    valid = json.dumps(base).encode()
    if kind == 3:
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(max_size=8)) + valid[at + 1 :]
    if kind == 4:
        return draw(st.sampled_from([b"[", b'{"crypto":'])) * draw(st.integers(1, 100_000))
    return draw(st.binary(max_size=200))


def test_malformed_keystores_are_refused(tmp_path: Path, keystore: dict[str, Any]) -> None:
    path = tmp_path / "keystores" / "node.json"
    path.parent.mkdir()
    address = Account.from_key(KEY).address
    with tally("keystores (fields, KDF parameters, bytes)", KeystoreError) as t:

        @FUZZ
        @given(keystore_files(keystore), st.sampled_from([PASSWORD, "wrong password"]))
        def case(data: bytes, password: str) -> None:
            path.write_bytes(data)
            # Listing a folder holding a broken file skips it; reading its address refuses it.
            listed = list_accounts(path.parent)
            assert [e.path for e in listed] in ([], [path])
            try:
                read = keystore_address(path)
            except KeystoreError as exc:
                read = str(exc)
            assert read == address or "\n" not in read
            account = t.check(lambda: unlock(path, password))
            if account is not None:
                assert account.address == address  # decrypted: it can only be the real key

        case()


def test_malformed_password_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "password"
    with tally("password files (bytes, encodings)", KeystoreError) as t:

        @FUZZ
        @given(st.binary(max_size=64) | st.text(max_size=30).map(str.encode))
        def case(data: bytes) -> None:
            path.write_bytes(data)
            password = t.check(lambda: read_password_file(path))
            if password is not None:
                assert "\n" not in password

        case()


def _toml(value: Any) -> str:
    """A value in TOML syntax (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items() if v is not None)
            + "}"
        )
    return json.dumps(str(value))


_KEYS = [
    "home",
    "rpc_url",
    "ipfs_api",
    "deployment",
    "keystore_dir",
    "account",
    "password_file",
    "confirmations",
    "source",
    "colour",
    "worker",
    "client",
]
_CONFIG_VALUES = (
    json_values.filter(lambda v: v is not None)
    | st.sampled_from([0, 3, -1, 2**64, float("inf"), float("nan"), 1.5, True, "12", "x"])
    | st.sampled_from(["/tmp/x", "~/y", "rel/path", "a\x00b", "", "http://127.0.0.1:9"])
    | st.sampled_from([{"kernels": ["volume@1"]}, [], {}])
)


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """A config file: settings (known, unknown, sections) of any TOML type, or broken bytes."""
    lines = []
    for key in draw(st.lists(st.sampled_from(_KEYS), max_size=4, unique=True)):
        lines.append(f"{key} = {_toml(draw(_CONFIG_VALUES))}")
    text = "\n".join(lines).encode()
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return text + b"\n" + draw(st.binary(min_size=1, max_size=20))
    if kind == 1:
        return b"x = " + b"[" * draw(st.integers(1, 50_000))
    return text


def test_malformed_config_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with tally("config files and variables (types, ranges, unknown keys, bytes)", ConfigError) as t:

        @FUZZ
        @given(
            config_files(),
            st.dictionaries(
                st.sampled_from(
                    ["BLINDFRAME_CONFIRMATIONS", "BLINDFRAME_HOME", "BLINDFRAME_RPC_URL"]
                ),
                st.text(st.characters(exclude_characters="\x00"), max_size=12),
                max_size=2,
            ),
            st.booleans(),
        )
        def case(data: bytes, env: dict[str, str], directory: bool) -> None:
            if directory:
                # --config naming a folder, as a slip of the shell's completion does.
                target = tmp_path / "a-folder"
                target.mkdir(exist_ok=True)
            else:
                target = path
                path.write_bytes(data)
            settings = t.check(lambda: load_settings(target, env={"HOME": str(tmp_path), **env}))
            if settings is not None:
                assert isinstance(settings.confirmations, int)
                assert settings.confirmations >= 0
                assert settings.home.is_absolute()

        case()
