"""What the README claims of keystores, checked: scrypt-encrypted Web3 Secret Storage, files
0600 in a 0700 folder, the key never in clear, and no password ever taken from the command
line (it would show in `ps` and in the shell's history)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import click
import pytest
from eth_account import Account

from blindframe._cli import cli
from blindframe.coordinator.accounts import create_account, import_private_key, unlock
from blindframe.coordinator.errors import KeystorePasswordError

PASSWORD = "correct horse battery"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keystores_are_scrypt_encrypted_private_files(tmp_path: Path) -> None:
    folder = tmp_path / "keystores"
    created = create_account(folder, "artist", PASSWORD)
    key = "0x" + "5a" * 32
    imported = import_private_key(folder, "node", key, PASSWORD)
    assert _mode(folder) == 0o700
    for entry in (created, imported):
        assert _mode(entry.path) == 0o600
        document = json.loads(entry.path.read_text())
        crypto = document["crypto"]
        assert document["version"] == 3
        assert crypto["kdf"] == "scrypt"
        params = crypto["kdfparams"]
        # eth_account's standard cost (n = 2**18, r = 1, p = 8): never a cheap test setting.
        assert params["n"] >= 2**18
        assert params["n"] * params["r"] * params["p"] >= 2**21
        assert params["dklen"] == 32
    # (Each unlock derives the key at that cost: about a second; two are enough.)
    assert unlock(created.path, PASSWORD).address == created.address
    with pytest.raises(KeystorePasswordError, match="wrong password"):
        unlock(created.path, PASSWORD + "!")
    # The imported key is in the file only encrypted.
    text = imported.path.read_text().lower()
    assert key[2:] not in text
    assert imported.address == Account.from_key(key).address


def _commands(group: click.Group, ctx: click.Context, path: str) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(path, group)]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found += _commands(command, click.Context(command, parent=ctx), f"{path} {name}")
        else:
            found.append((f"{path} {name}", command))
    return found


def test_no_command_takes_a_password_on_the_command_line() -> None:
    commands = _commands(cli, click.Context(cli), "blindframe")
    assert len(commands) > 20  # every group was reached
    seen = 0
    for path, command in commands:
        for param in command.params:
            names = [*param.opts, *param.secondary_opts, param.name or ""]
            if not any("pass" in n.lower() for n in names):
                continue
            seen += 1
            # Only a file holding the password: its name, never its value.
            assert isinstance(param, click.Option), (path, names)
            assert param.opts == ["--password-file"], (path, names)
            assert isinstance(param.type, click.Path), (path, names)
            assert param.envvar in (None, "BLINDFRAME_PASSWORD_FILE"), (path, param.envvar)
    assert seen >= 3  # account, client, worker and deploy commands take --password-file
    with pytest.raises(click.NoSuchOption, match="--password"):
        cli.main(
            ["account", "new", "alice", "--password", PASSWORD],
            prog_name="blindframe",
            standalone_mode=False,
        )
