"""`blindframe stack` and `blindframe deploy` as a user runs them: real processes, clean errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blindframe._cli import main
from blindframe.coordinator.accounts import create_account
from blindframe.coordinator.config import load_settings
from blindframe.coordinator.deployment import Deployment
from blindframe.deploy.ipfs import stop_node
from blindframe.deploy.processes import free_port

if TYPE_CHECKING:
    from tests.conftest import Chain

PASSWORD = "correct horse battery"


def is_setting(variable: str) -> bool:
    """A blindframe setting from the environment (the tools' locations are kept)."""
    keep = ("BLINDFRAME_NODE_BIN", "BLINDFRAME_PROJECT_ROOT")
    return variable.startswith("BLINDFRAME_") and variable not in keep


def run(
    home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not is_setting(k)},
        "BLINDFRAME_HOME": str(home),
        **(env or {}),
    }
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


def error_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one `Error:` line of `blindframe ARGS` run in this process (no interpreter to start)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    _out, err = capsys.readouterr()
    assert exited.value.code == 1, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("Error: ")
    return line


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_stack_up_refuses_taken_ports_and_leaves_nothing_running(
    tmp_path: Path, chain: Chain
) -> None:
    home = tmp_path / "home"
    not_running = {"running": False}
    # Another chain answers on the port: refused before anything starts (no deployment onto it).
    line = one_line_error(
        run(home, "stack", "up", "--rpc-port", str(chain.anvil.port), check=False)
    )
    assert f"port {chain.anvil.port} on 127.0.0.1 is taken by anvil (pid {chain.anvil.pid})" in line
    assert "pass --rpc-port with a free port" in line
    assert not (home / "deployment.json").exists()
    assert json.loads(run(home, "--json", "stack", "status").stdout) == not_running

    rpc_port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        line = one_line_error(
            run(
                home,
                "stack",
                "up",
                "--rpc-port",
                str(rpc_port),
                "--ipfs-port",
                str(taken),
                check=False,
            )
        )
    assert f"port {taken} on 127.0.0.1 is taken" in line
    assert "the client IPFS node's API cannot listen there" in line
    assert "pass --ipfs-port with a free port" in line
    assert "api_port" not in line
    assert json.loads(run(home, "--json", "stack", "status").stdout) == not_running

    # An IPFS node that fails after Anvil started: Anvil is stopped again, no state is left.
    fake_node = tmp_path / "node"
    fake_node.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo v22.0.0; exit 0; fi\n'
        "echo 'fake node: cannot start' >&2\nexit 1\n"
    )
    fake_node.chmod(0o755)
    line = one_line_error(
        run(
            home,
            "stack",
            "up",
            "--rpc-port",
            str(rpc_port),
            "--ipfs-port",
            str(free_port()),
            check=False,
            env={"BLINDFRAME_NODE_BIN": str(fake_node)},
        )
    )
    assert "the IPFS node exited with status 1 while starting: fake node: cannot start" in line
    assert json.loads(run(home, "--json", "stack", "status").stdout) == not_running
    assert port_free(rpc_port)  # the Anvil this `up` started is stopped


def test_stack_up_status_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
        assert deployment.rpc_url == info["rpc_url"]
        status = json.loads(run(home, "--json", "stack", "status").stdout)
        assert status["market"] == info["market"]
        assert (status["running"], status["ipfs_down"]) == (True, [])
        # Every other command of this home defaults to this stack's chain and IPFS node.
        cfg = load_settings(env={"BLINDFRAME_HOME": str(home)})
        assert (cfg.rpc_url, cfg.ipfs_api) == (info["rpc_url"], info["ipfs"]["client"])
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
        # A worker command with no --rpc, --deployment or --home finds the stack's market.
        report = json.loads(run(home, "--json", "worker", "account", "--account", "artist").stdout)
        assert report["market"] == info["market"]

        # A repeat `up` reuses the running chain and its deployment; another port is refused.
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
        other = free_port()
        line = one_line_error(run(home, "stack", "up", "--rpc-port", str(other), check=False))
        assert f"already runs on port {rpc_port}, not {other}" in line
        # Another home's `up` on this stack's ports: refused, naming whose they are.
        line = one_line_error(
            run(tmp_path / "other", "stack", "up", "--rpc-port", str(rpc_port), check=False)
        )
        assert f"taken by Anvil of the local stack of {home}" in line
        assert f"`blindframe stack down --home {home}`" in line

        # A dead IPFS node: `status` says so; the worker named like it looks for it there
        # (not at the artist's node); `up` starts it again on the same port.
        stop_node(home / "stack" / "ipfs" / "worker-1")
        status = json.loads(run(home, "--json", "stack", "status").stdout)
        assert (status["running"], status["chain_running"], status["ipfs_down"]) == (
            False,
            True,
            ["worker-1"],
        )
        assert "not running: IPFS node worker-1" in run(home, "stack", "status").stdout
        create_account(home / "keystores", "worker-1", PASSWORD)
        for key in [k for k in os.environ if is_setting(k)]:
            monkeypatch.delenv(key)
        monkeypatch.chdir(tmp_path)
        line = error_in_process(
            capsys,
            *("worker", "run", "--home", str(home), "--account", "worker-1"),
            *("--password-file", str(password_file)),
        )
        assert f"cannot reach the IPFS RPC API at {info['ipfs']['worker-1']}" in line

        # Down and up again without flags: the same ports (the dead node's too), the same market.
        run(home, "stack", "down")
        again = json.loads(run(home, "--json", "stack", "up").stdout)
        assert (again["rpc_url"], again["ipfs"], again["market"]) == (
            info["rpc_url"],
            info["ipfs"],
            info["market"],
        )
        assert json.loads(run(home, "--json", "stack", "status").stdout)["running"] is True
    finally:
        stopped = json.loads(run(home, "--json", "stack", "down").stdout)
    assert any(s.startswith("anvil") for s in stopped)
    assert json.loads(run(home, "--json", "stack", "status").stdout) == {"running": False}
    assert "the local stack is not running" in one_line_error(
        run(home, "stack", "fund", "artist", check=False)
    )
