"""`blindframe worker account|stake|unstake|withdraw|status|run` against a real chain with real
keystores: what each says and does, and one clean line for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from worker_helpers import PASSWORD, stake

from blindframe._cli import main
from blindframe.coordinator.market import Market
from blindframe.deploy.processes import free_port
from blindframe.worker.errors import NodeOptionError
from blindframe.worker.faults import check_fault_allowed
from blindframe.worker.info import parse_eth
from blindframe.worker.options import resolve_options

if TYPE_CHECKING:
    from pathlib import Path

    from worker_helpers import Home, Ipfs

    from tests.conftest import Chain

ETH = 10**18


class Cli:
    """Runs `blindframe worker ...` in this process as a user would (env, cwd, no tty)."""

    def __init__(self, home: Home, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self.capsys = capsys

    def common(self, account: str) -> list[str]:
        return [
            "--account",
            account,
            "--keystore-dir",
            str(self.home.keystores),
            "--rpc",
            self.home.rpc_url,
            "--deployment",
            str(self.home.deployment),
        ]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main(["worker", *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> dict[str, Any]:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        data = json.loads(out)
        assert isinstance(data, dict)
        return data

    def error(self, *args: str) -> str:
        code, _out, err = self(*args)
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("Error: ")
        assert "Traceback" not in err
        return lines[0]


@pytest.fixture
def cli(
    home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Cli:
    for key in list(__import__("os").environ):
        if key.startswith("BLINDFRAME_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BLINDFRAME_HOME", str(home.path))
    monkeypatch.chdir(tmp_path)
    return Cli(home, capsys)


def test_stake_unstake_withdraw_and_account(fresh_chain: Chain, home: Home, cli: Cli) -> None:
    address = home.new_account(fresh_chain, "node", eth=3)
    common = cli.common("node")
    pw = ["--password-file", str(home.password_file)]
    params = fresh_chain.deployment.parameters

    report = cli.ok("account", *common)
    assert report["address"] == address
    assert report["keystore"].endswith("node.json")
    assert (report["stake"], report["capacity"], report["staked"]) == (0, 0, False)
    assert report["balance"] == 3 * ETH
    code, out, _ = cli("account", *common)
    assert code == 0
    assert "stake       none" in out
    # A bare address reads the same account with no keystore at all.
    chain_only = ["--rpc", home.rpc_url, "--deployment", str(home.deployment)]
    by_address = cli.ok("account", "--address", address.lower(), *chain_only)
    assert by_address == {**report, "keystore": None, "now": by_address["now"]}

    assert "nothing to do" in cli.error("stake", *common, *pw)
    assert "minimum" in cli.error("stake", *common, *pw, "--amount", "0.01", "--capacity", "4")
    assert "needs a capacity" in cli.error("stake", *common, *pw, "--amount", "0.5")
    assert "holds 3 ETH" in cli.error("stake", *common, *pw, "--amount", "5", "--capacity", "4")
    assert "--amount must be" in cli.error("stake", *common, *pw, "--amount", "lots")

    staked = cli.ok("stake", *common, *pw, "--amount", "0.5", "--capacity", "4")
    assert (staked["stake"], staked["capacity"], staked["staked"]) == (ETH // 2, 4, True)
    staked = cli.ok("stake", *common, *pw, "--capacity", "8")
    assert (staked["stake"], staked["capacity"]) == (ETH // 2, 8)

    # Where the node stands against a job's reputation gate (enforced on chain at claim).
    artist = fresh_chain.account()
    gated = Market(fresh_chain.w3, fresh_chain.deployment, sender=fresh_chain.sender(artist))
    job = gated.post_job(
        manifest_cid="QmGated",
        kernel_id="volume@1",
        tile_count=1,
        replication=1,
        reward_per_tile_replica=1000,
        lease_length=600,
        deadline=fresh_chain.now() + 3600,
        priority=0,
        leaf_depth=4,
        min_completed=5,
    )
    standing = cli.ok("account", *common, "--job", str(job))["job"]
    assert (standing["admitted"], standing["minCompleted"], standing["maxFaults"]) == (
        False,
        5,
        None,
    )
    code, out, _ = cli("account", *common, "--job", str(job))
    assert code == 0
    assert "refuses this node: it asks for at least 5 tiles paid" in out
    assert "there is no job 999" in cli.error("account", *common, "--job", "999")

    assert "nothing is unbonding" in cli.error("unstake", *common, *pw)
    assert "is free to unstake" in cli.error("unstake", *common, *pw, "--amount", "0.9")
    requested = cli.ok("unstake", *common, *pw, "--amount", "0.2")
    (action,) = requested["actions"]
    assert action["action"] == "requested"
    assert action["amount"] == ETH // 5
    code, out, _ = cli("unstake", *common, *pw)
    assert code == 0
    assert "unbonds until" in out
    assert "again then" in out
    fresh_chain.warp(int(params["unbondingDelay"]) + 1)
    completed = cli.ok("unstake", *common, *pw)
    assert completed["actions"] == [{"action": "completed", "amount": ETH // 5}]
    report = cli.ok("account", *common)
    assert (report["stake"], report["unbonding"], report["pending"]) == (
        3 * ETH // 10,
        0,
        ETH // 5,
    )

    before = fresh_chain.w3.eth.get_balance(address)
    withdrawn = cli.ok("withdraw", *common, *pw)
    assert withdrawn["withdrawn"] == ETH // 5
    assert before < withdrawn["balance"] < before + ETH // 5  # less the gas
    assert "nothing to withdraw" in cli.error("withdraw", *common, *pw)

    # Unstaking everything leaves the node below the minimum: it says so.
    code, out, _ = cli("unstake", *common, *pw, "--all")
    assert code == 0
    assert "below the minimum" in out


def test_bad_input_gets_one_clean_line(
    fresh_chain: Chain, home: Home, cli: Cli, ipfs: Ipfs, tmp_path: Path
) -> None:
    stake(home, fresh_chain, "staked")
    home.new_account(fresh_chain, "unstaked")
    pw = ["--password-file", str(home.password_file)]
    run = ["run", "--ipfs-api", ipfs.workers[0].api_url, "--kernels", "volume@1"]

    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    assert "wrong password" in cli.error(*run, *cli.common("staked"), "--password-file", str(wrong))
    assert "no keystore for account 'ghost'" in cli.error(*run, *cli.common("ghost"), *pw)
    assert "no password file given" in cli.error("withdraw", *cli.common("staked"))
    dead_rpc = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach the Ethereum RPC" in cli.error(
        "account", *cli.common("staked"), "--rpc", dead_rpc
    )
    dead_ipfs = f"http://127.0.0.1:{free_port()}"  # checked as a real process below
    assert "a render node needs at least" in cli.error(*run, *cli.common("unstaked"), *pw)
    assert "unknown kernel 'volum@1'" in cli.error(
        "run", "--kernels", "volum@1", *cli.common("staked"), *pw
    )
    assert "--once and --max-idle" in cli.error(
        *run, "--once", "--max-idle", "5", *cli.common("staked"), *pw
    )
    assert "has not run for this deployment yet" in cli.error("status", *cli.common("staked"))
    assert "--address must be a 20-byte hex address" in cli.error(
        "account", "--address", "0x12", "--rpc", home.rpc_url, "--deployment", str(home.deployment)
    )
    assert "no deployment file" in cli.error(
        "account", *cli.common("staked"), "--deployment", str(tmp_path / "none.json")
    )

    assert "capacity must be 1..65535 (not 0)" in cli.error(
        *run, "--capacity", "0", *cli.common("staked"), *pw
    )

    # As a real process too: one line on stderr (the IPFS client's retries stay out of it),
    # exit status 1, and --json gives the error as JSON on stdout.
    result = subprocess.run(
        [
            sys.executable, "-m", "blindframe", "worker", "run", "--ipfs-api", dead_ipfs,
            *cli.common("staked"), *pw, "--json",
        ],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: cannot reach the IPFS RPC API"), result.stderr
    assert json.loads(result.stdout)["error"] == "StoreConnectionError"


def test_capacity_beyond_the_stake_is_explained_with_the_numbers(
    fresh_chain: Chain, home: Home, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The market takes a capacity the stake cannot back (a claim checks both), so `stake`
    warns with the numbers; `run --capacity N` beyond what the stake covers says what it holds
    and what to stake. Also: --home and the RPC URL the home's deployment file records."""
    home.new_account(fresh_chain, "node", eth=3)
    pw = ["--password-file", str(home.password_file)]
    # --home alone (BLINDFRAME_HOME points elsewhere): keystores, deployment and, from the
    # deployment file, the RPC URL all come from that home.
    monkeypatch.setenv("BLINDFRAME_HOME", str(tmp_path / "elsewhere"))
    mine = ["--account", "node", "--home", str(home.path)]

    staked = cli.ok("stake", *mine, *pw, "--amount", "0.5", "--capacity", "1000")
    assert (staked["stake"], staked["capacity"]) == (ETH // 2, 1000)
    assert staked["warning"] == (
        "capacity 1000 tiles, but the stake (0.5 ETH) is the collateral of only 500 at 0.001 ETH "
        "a tile: the node holds at most 500 at once; for all 1000, add 0.5 ETH with "
        "`blindframe worker stake --amount 0.5`"
    )
    code, out, err = cli("stake", *mine, *pw, "--capacity", "16")
    assert code == 0, err
    assert "capacity 16 tiles" in out
    assert "warning" not in err

    # The warning comes first, before the IPFS node is even looked at (a bad address ends the
    # run right after it).
    code, _out, err = cli("run", *mine, *pw, "--capacity", "600", "--ipfs-api", "nowhere")
    assert code == 1
    warning, error = err.strip().splitlines()
    assert warning.endswith(
        "warning: --capacity 600 is more than the stake covers: 16 tiles at once (capacity 16 "
        "staked; 0.5 ETH of stake is the collateral of 500 at 0.001 ETH a tile), so this run "
        "holds at most 16; for 600, add 0.1 ETH of stake and run "
        "`blindframe worker stake --amount 0.1 --capacity 600`"
    ), warning
    assert error.startswith("Error: IPFS API address must be an http(s) URL"), error


def test_node_options_resolve_and_validate(tmp_path: Path) -> None:
    options = resolve_options(
        {"capacity": None, "kernels": "volume@1", "tile_seconds": ("volume@1=2.5",)},
        {"capacity": 4, "min-price": "100", "max_idle": 30, "reclaim": False},
    )
    assert options.kernels == ("volume@1",)
    assert options.capacity == 4  # from the [worker] table: the command line gave none
    assert options.min_price == 100
    assert options.tile_seconds == {"volume@1": 2.5}
    assert options.max_idle == 30.0
    assert options.reclaim is False
    assert resolve_options({"capacity": "8"}, {"capacity": 4}).capacity == 8
    with pytest.raises(NodeOptionError, match="unknown setting 'speed'"):
        resolve_options({}, {"speed": 1})
    with pytest.raises(NodeOptionError, match="KERNEL=SECONDS"):
        resolve_options({"tile_seconds": ("volume@1",)})
    with pytest.raises(NodeOptionError, match="fault must be one of lazy"):
        resolve_options({"fault": "evil"})
    with pytest.raises(NodeOptionError, match="test-only option for a local chain"):
        check_fault_allowed("lazy", 1)
    check_fault_allowed(None, 1)
    check_fault_allowed("lazy", 31337)
    assert parse_eth("0.25") == ETH // 4
    with pytest.raises(NodeOptionError, match="more than 18 decimals"):
        parse_eth("0.0000000000000000001")
    with pytest.raises(NodeOptionError, match="positive"):
        parse_eth("-1")
    assert PASSWORD
