"""The client's shared flags: --ipfs-api (the worker's name for it) with --ipfs, its old name,
kept hidden for one release, and --home, as on every group that reads the home."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from .conftest import run_cli

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_ipfs_api_is_the_flag_and_ipfs_its_hidden_old_name(
    tmp_path: Path, keys_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BLINDFRAME_IPFS_API", "BLINDFRAME_HOME", "BLINDFRAME_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["client", "keygen", "--help"], {})
    assert code == 0, err
    assert "--ipfs-api URL" in out
    assert "--ipfs " not in out  # the old name works, but is no longer offered
    assert "--home" in out

    # Each name routes its value to the upload's IPFS node (an address that is no URL stops
    # it there, naming the value); the old one also says it is renamed.
    home = tmp_path / "home"
    shutil.copytree(keys_home / "keys", home / "keys")
    upload = ["client", "keygen", "--upload", "--home", str(home)]
    code, _out, err = run_cli([*upload, "--ipfs-api", "nowhere"], {})
    assert code == 1
    (error,) = err.strip().splitlines()
    assert error.startswith(
        "Error: IPFS API address must be an http(s) URL or a multiaddr (not 'nowhere')"
    ), error
    code, _out, err = run_cli([*upload, "--ipfs", "elsewhere"], {})
    assert code == 1
    note, error = err.strip().splitlines()
    assert note == "note: --ipfs is now --ipfs-api; the old name goes after the next release"
    assert "(not 'elsewhere')" in error, error
