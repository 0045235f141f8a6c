"""`blindframe stack` (local Anvil + IPFS + contracts) and `blindframe deploy` (any EVM chain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from blindframe.coordinator.cli_support import (
    console,
    emit,
    home_option,
    password,
    settings,
)
from blindframe.deploy.errors import DeployError

__all__ = ["deploy", "stack"]


@click.group()
def stack() -> None:
    """Run a complete local stack on loopback: an Anvil chain, IPFS nodes, the contracts.

    Everything lives under the blindframe home (--home or BLINDFRAME_HOME; see `blindframe
    --help`): the chain state, the IPFS blockstores, the deployment file other commands read.
    Every `client` and `worker` command of the same home then uses this stack's chain and IPFS
    node unless told otherwise (--rpc, --ipfs-api, their variables or the config file).
    """


@stack.command("up")
@click.option(
    "--rpc-port",
    type=click.IntRange(1, 65535),
    help="Anvil's JSON-RPC port (default: the port of this home's last `up`, else 8545).",
)
@click.option(
    "--ipfs-port",
    type=click.IntRange(1, 65535),
    help="The client IPFS node's API port (default: the port of this home's last `up`, else 5001).",
)
@click.option(
    "--ipfs-node",
    "extra_ipfs",
    multiple=True,
    metavar="NAME",
    help="Start another IPFS node, e.g. one per local render node named like its account "
    "(`worker run --account NAME` uses it); repeatable; later `up`s start it again.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Stop what runs, wipe the chain, forget the ports and nodes, deploy anew.",
)
@home_option
@click.pass_context
def up(
    ctx: click.Context,
    rpc_port: int | None,
    ipfs_port: int | None,
    extra_ipfs: tuple[str, ...],
    fresh: bool,
) -> None:
    """Start Anvil and IPFS, deploy RenderMarket, write the deployment file.

    Repeat runs reuse what already runs (asking for another port is refused: `stack down`
    first) and start again what stopped, on the same ports. A port another process holds
    (another home's stack, say) is refused before anything starts. The local market uses short
    windows (seconds, not hours) so a render settles while you watch; see deploy/deployer.py
    LOCAL_OVERRIDES.
    """
    from blindframe.deploy.stack import stack_up

    cfg = settings(ctx)
    with console.status("starting Anvil and IPFS, deploying the contracts…"):
        info = stack_up(
            cfg.home,
            cfg.keystores,
            rpc_port=rpc_port,
            ipfs_port=ipfs_port,
            extra_ipfs=extra_ipfs,
            fresh=fresh,
        )

    def human(data: dict[str, Any]) -> None:
        click.echo(f"chain     {data['rpc_url']} (chain id {data['chain_id']})")
        for name, url in data["ipfs"].items():
            click.echo(f"ipfs      {name}: {url}")
        click.echo(f"market    {data['market']}")
        click.echo(f"deployed  {data['deployment']}")
        click.echo("stop it with `blindframe stack down`")

    emit(ctx, info.to_dict(), human)


@stack.command("down")
@home_option
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the local stack's chain and IPFS nodes (their data stays for the next `up`)."""
    from blindframe.deploy.stack import stack_down

    stopped = stack_down(settings(ctx).home)

    def human(data: list[str]) -> None:
        click.echo("stopped: " + ", ".join(data) if data else "nothing was running")

    emit(ctx, stopped, human)


@stack.command("status")
@home_option
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say whether the local stack runs, and where: the chain and each IPFS node, checked now.

    With --json: the state `stack up` wrote plus `running` (everything runs), `chain_running`
    and `ipfs_down` (nodes not running); `{"running": false}` when nothing runs.
    """
    from blindframe.deploy.stack import stack_report

    data = stack_report(settings(ctx).home)

    def human(d: dict[str, Any]) -> None:
        if len(d) == 1:
            click.echo("the local stack is not running (start it: blindframe stack up)")
            return
        if d["running"]:
            click.echo("running")
        else:
            parts = ([] if d["chain_running"] else ["the chain"]) + [
                f"IPFS node {name}" for name in d["ipfs_down"]
            ]
            click.echo(
                f"not running: {', '.join(parts)} (`blindframe stack up` starts it again, "
                "`blindframe stack down` stops the rest)"
            )
        if "rpc_url" in d:
            chain = "" if d["chain_running"] else " (not running)"
            click.echo(f"chain     {d['rpc_url']} (chain id {d['chain_id']}){chain}")
        for name, url in d["ipfs"].items():
            click.echo(
                f"ipfs      {name}: {url}" + (" (not running)" if name in d["ipfs_down"] else "")
            )
        if d.get("market"):
            click.echo(f"market    {d['market']}")

    emit(ctx, data, human)


@stack.command("fund")
@click.argument("account")
@click.option(
    "--eth", "amount", default="10", show_default=True, help="ETH to send to the account."
)
@home_option
@click.pass_context
def fund_command(ctx: click.Context, account: str, amount: str) -> None:
    """Send local test ETH to ACCOUNT (a keystore name, file or 0x address).

    It comes from Anvil's first dev account: this works on the local stack only, which is how
    an artist or a render node gets ETH there (`blindframe account new NAME` first).
    """
    from eth_utils.address import is_hex_address, to_checksum_address

    from blindframe.coordinator.accounts import find_keystore, keystore_address
    from blindframe.coordinator.chain import connect
    from blindframe.deploy.stack import fund, stack_status
    from blindframe.units import format_eth, parse_eth

    cfg = settings(ctx)
    wei = parse_eth(amount, "--eth", error=DeployError)
    info = stack_status(cfg.home)
    if info is None:
        raise DeployError(
            "the local stack is not running", hint="start it with `blindframe stack up`"
        )
    address = (
        str(to_checksum_address(account))
        if is_hex_address(account)
        else keystore_address(find_keystore(cfg.keystores, account))
    )
    fund(info.rpc_url, address, wei)
    balance = int(connect(info.rpc_url).eth.get_balance(to_checksum_address(address)))
    data = {"account": address, "sent": str(wei), "balance": str(balance)}

    def human(d: dict[str, Any]) -> None:
        click.echo(
            f"sent {format_eth(int(d['sent']))} to {d['account']}; "
            f"balance {format_eth(int(d['balance']))}"
        )

    emit(ctx, data, human)


def _parameters_file(path: str | None) -> dict[str, int]:
    if path is None:
        return {}
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"cannot read parameters file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise DeployError(f"{path} must hold a JSON object of parameter names to integers")
    return {str(k): v for k, v in document.items() if not str(k).startswith("_")}


@click.command("deploy")
@click.option(
    "--rpc",
    "rpc_url",
    help="JSON-RPC URL of the chain (BLINDFRAME_RPC_URL; default: the RPC URL the home's "
    "deployment file records, else http://127.0.0.1:8545).",
)
@click.option("--chain-id", type=int, help="Refuse to deploy unless the RPC serves this chain.")
@click.option(
    "--keystore",
    required=True,
    help="The deployer's keystore: a file, or a name/address in the keystore folder.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="File whose first line is the keystore password (else a prompt).",
)
@click.option(
    "--params",
    "params_file",
    type=click.Path(dir_okay=False),
    help='JSON object overriding contracts/params.defaults.json (e.g. {"challengeWindow": 600}).',
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Where to write the deployment file (default <home>/deployment.json).",
)
@home_option
@click.pass_context
def deploy(
    ctx: click.Context,
    rpc_url: str | None,
    chain_id: int | None,
    keystore: str,
    password_file: str | None,
    params_file: str | None,
    out: str | None,
) -> None:
    """Deploy RenderMarket to any EVM chain and write the deployment file.

    The market has no admin: every parameter is fixed now. Defaults are in
    contracts/params.defaults.json and explained in contracts/README.md.
    """
    from blindframe.coordinator.accounts import find_keystore, unlock
    from blindframe.coordinator.chain import connect
    from blindframe.coordinator.tx import TxSender
    from blindframe.deploy.deployer import deploy_market, market_parameters

    cfg = settings(ctx, rpc_url=rpc_url, password_file=password_file, deployment=out)
    params = market_parameters(_parameters_file(params_file))
    w3 = connect(cfg.rpc_url, expected_chain_id=chain_id)
    account = unlock(
        find_keystore(cfg.keystores, keystore), password(cfg, prompt="Keystore password")
    )
    sender = TxSender(w3, account, endpoint=cfg.rpc_url, lock_dir=cfg.home / "nonces")
    with console.status(f"deploying RenderMarket to chain {w3.eth.chain_id}…"):
        deployment = deploy_market(sender, params, rpc_url=cfg.rpc_url)
    deployment.save(cfg.deployment_path)
    data = {**deployment.to_dict(), "file": str(cfg.deployment_path)}

    def human(d: dict[str, Any]) -> None:
        click.echo(
            f"RenderMarket {d['contracts']['RenderMarket']['address']} on chain {d['chainId']}"
        )
        click.echo(f"deployment file: {d['file']}")

    emit(ctx, data, human)
