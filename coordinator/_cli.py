"""`blindframe account`: encrypted keystores for artists, render nodes and deployers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from blindframe.coordinator import accounts
from blindframe.coordinator.cli_support import emit, home_option, password, settings

__all__ = ["account"]

_F = TypeVar("_F", bound=Callable[..., Any])

_password_file = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File whose first line is the keystore password (else BLINDFRAME_PASSWORD_FILE, "
    "else a prompt).",
)
_keystore_option = click.option(
    "--keystore-dir",
    type=click.Path(file_okay=False),
    help="Folder of keystores (default: <home>/keystores; BLINDFRAME_KEYSTORE_DIR).",
)


def _keystore_dir(func: _F) -> _F:
    """--keystore-dir, and --home (whose keystores folder is the default)."""
    return home_option(_keystore_option(func))


@click.group()
def account() -> None:
    """Create, import and list encrypted account keystores (Web3 Secret Storage, scrypt).

    Account keys live only in these files, encrypted with your password; commands that sign
    transactions take --account NAME|ADDRESS|FILE and a password file or prompt.
    """


@account.command("new")
@click.argument("name")
@_keystore_dir
@_password_file
@click.pass_context
def new(ctx: click.Context, name: str, keystore_dir: str | None, password_file: str | None) -> None:
    """Generate a new account and store its key encrypted as NAME."""
    cfg = settings(ctx, keystore_dir=keystore_dir, password_file=password_file)
    secret = password(cfg, prompt="Password for the new keystore", confirm=True)
    entry = accounts.create_account(cfg.keystores, name, secret)
    emit(ctx, {"name": entry.name, "address": entry.address, "keystore": str(entry.path)})


@account.command("import")
@click.argument("name")
@_keystore_dir
@_password_file
@click.pass_context
def import_(
    ctx: click.Context, name: str, keystore_dir: str | None, password_file: str | None
) -> None:
    """Encrypt an existing private key, read from standard input, into keystore NAME."""
    cfg = settings(ctx, keystore_dir=keystore_dir, password_file=password_file)
    if sys.stdin.isatty():
        key: str = click.prompt("Private key (hex)", hide_input=True)
    else:
        key = sys.stdin.readline().strip()
    secret = password(cfg, prompt="Password for the keystore", confirm=True)
    entry = accounts.import_private_key(cfg.keystores, name, key, secret)
    emit(ctx, {"name": entry.name, "address": entry.address, "keystore": str(entry.path)})


@account.command("list")
@_keystore_dir
@click.pass_context
def list_(ctx: click.Context, keystore_dir: str | None) -> None:
    """List the keystores: name, address, file."""
    cfg = settings(ctx, keystore_dir=keystore_dir)
    entries = accounts.list_accounts(cfg.keystores)
    rows = [{"name": e.name, "address": e.address, "keystore": str(e.path)} for e in entries]

    def human(data: list[dict[str, str]]) -> None:
        if not data:
            click.echo(f"no keystores in {cfg.keystores} (create one: blindframe account new NAME)")
        for row in data:
            click.echo(f"{row['name']:<20} {row['address']}  {row['keystore']}")

    emit(ctx, rows, human)
