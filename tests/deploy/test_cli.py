"""`blindframe stack` and `blindframe deploy` as a user runs them: real processes, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blindframe.coordinator.deployment import Deployment
from blindframe.deploy.processes import free_port

if TYPE_CHECKING:
    from tests.conftest import Chain

PASSWORD = "correct horse battery"


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLINDFRAME_HOME": str(home)}
    env.pop("BLINDFRAME_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "blindframe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def deployer(tmp_path: Path, chain: Chain) -> tuple[Path, Path]:
    """A home with a funded deployer keystore and its password file."""
    home = tmp_path / "home"
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    created = json.loads(
        run(
            home, "--json", "account", "new", "deployer", "--password-file", str(password_file)
        ).stdout
    )
    tx = chain.w3.eth.send_transaction(
        {"from": chain.w3.eth.accounts[0], "to": created["address"], "value": 10**19}  # type: ignore[typeddict-item]
    )
    chain.w3.eth.wait_for_transaction_receipt(tx)
    return home, password_file


def test_deploy_to_a_running_chain_writes_the_deployment_file(
    chain: Chain, deployer: tuple[Path, Path]
) -> None:
    home, password_file = deployer
    params = home / "params.json"
    params.write_text(json.dumps({"challengeWindow": 600}))
    out = json.loads(
        run(
            home,
            "--json",
            "deploy",
            "--rpc",
            chain.anvil.rpc_url,
            "--chain-id",
            "31337",
            "--keystore",
            "deployer",
            "--password-file",
            str(password_file),
            "--params",
            str(params),
        ).stdout
    )
    deployment = Deployment.load(Path(out["file"]))
    assert deployment.chain_id == 31337
    assert deployment.parameters["challengeWindow"] == 600
    assert chain.w3.eth.get_code(deployment.address("RenderMarket"))


def test_deploy_bad_inputs_are_one_line_errors(
    tmp_path: Path, chain: Chain, deployer: tuple[Path, Path]
) -> None:
    home, password_file = deployer
    dead = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(
        run(
            home,
            "deploy",
            "--rpc",
            dead,
            "--keystore",
            "deployer",
            "--password-file",
            str(password_file),
            check=False,
        )
    )
    assert dead in line
    assert "stack up" in line

    line = one_line_error(
        run(
            home,
            "deploy",
            "--rpc",
            chain.anvil.rpc_url,
            "--chain-id",
            "1",
            "--keystore",
            "deployer",
            "--password-file",
            str(password_file),
            check=False,
        )
    )
    assert "serves chain 31337, expected chain 1" in line

    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    line = one_line_error(
        run(
            home,
            "deploy",
            "--rpc",
            chain.anvil.rpc_url,
            "--keystore",
            "deployer",
            "--password-file",
            str(wrong),
            check=False,
        )
    )
    assert "wrong password" in line

    line = one_line_error(
        run(
            home,
            "deploy",
            "--rpc",
            chain.anvil.rpc_url,
            "--keystore",
            "nobody",
            "--password-file",
            str(wrong),
            check=False,
        )
    )
    assert "no keystore for account 'nobody'" in line

    bad_params = tmp_path / "params.json"
    bad_params.write_text(json.dumps({"challengeWindo": 5}))
    line = one_line_error(
        run(
            home,
            "deploy",
            "--rpc",
            chain.anvil.rpc_url,
            "--keystore",
            "deployer",
            "--password-file",
            str(password_file),
            "--params",
            str(bad_params),
            check=False,
        )
    )
    assert "unknown market parameter 'challengeWindo'" in line


def test_stack_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "stack-home"
    rpc_port, ipfs_port = free_port(), free_port()
    try:
        info = json.loads(
            run(
                home,
                "--json",
                "stack",
                "up",
                "--rpc-port",
                str(rpc_port),
                "--ipfs-port",
                str(ipfs_port),
                "--ipfs-node",
                "worker-1",
            ).stdout
        )
        assert info["rpc_url"] == f"http://127.0.0.1:{rpc_port}"
        assert set(info["ipfs"]) == {"client", "worker-1"}
        deployment = Deployment.load(Path(info["deployment"]))
        assert deployment.address("RenderMarket") == info["market"]
        status = json.loads(run(home, "--json", "stack", "status").stdout)
        assert status["market"] == info["market"]
        # Test ETH for a new account, by keystore name or address, exact to the wei.
        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD + "\n")
        artist = json.loads(
            run(
                home, "--json", "account", "new", "artist", "--password-file", str(password_file)
            ).stdout
        )["address"]
        funded = json.loads(run(home, "--json", "stack", "fund", "artist", "--eth", "2.5").stdout)
        assert (funded["account"], funded["balance"]) == (artist, str(25 * 10**17))
        funded = json.loads(run(home, "--json", "stack", "fund", artist.lower()).stdout)
        assert funded["balance"] == str(125 * 10**17)
        assert "--eth must be a positive amount" in one_line_error(
            run(home, "stack", "fund", "artist", "--eth", "-1", check=False)
        )
        assert "no keystore for account 'nobody'" in one_line_error(
            run(home, "stack", "fund", "nobody", check=False)
        )
        # A repeat `up` reuses the running chain and its deployment.
        again = json.loads(
            run(
                home,
                "--json",
                "stack",
                "up",
                "--rpc-port",
                str(rpc_port),
                "--ipfs-port",
                str(ipfs_port),
            ).stdout
        )
        assert again["market"] == info["market"]
        assert again["anvil_pid"] == info["anvil_pid"]
    finally:
        stopped = json.loads(run(home, "--json", "stack", "down").stdout)
    assert any(s.startswith("anvil") for s in stopped)
    assert json.loads(run(home, "--json", "stack", "status").stdout) == {"running": False}
    assert "the local stack is not running" in one_line_error(
        run(home, "stack", "fund", "artist", check=False)
    )
