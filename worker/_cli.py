"""`blindframe worker`: run a render node and manage its stake, payments and leases."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from blindframe.coordinator.cli_support import (
    RPC_HELP,
    emit,
    home_option,
    ipfs_api_option,
    settings,
)
from blindframe.worker.errors import NodeOptionError, NotStakedError, WorkerError
from blindframe.worker.logs import duration, eth, when

if TYPE_CHECKING:
    from blindframe.coordinator.config import Settings
    from blindframe.worker.logs import NodeLog
    from blindframe.worker.options import NodeOptions

__all__ = ["worker"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _account_options(func: _F) -> _F:
    """--account, --password-file, --keystore-dir, --rpc, --deployment, --home, --json."""
    options = [
        click.option(
            "--account",
            help="The node's account: keystore name, address or file (else BLINDFRAME_ACCOUNT).",
        ),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False),
            help="File whose first line is the keystore password (else "
            "BLINDFRAME_PASSWORD_FILE, else a prompt).",
        ),
        click.option(
            "--keystore-dir",
            type=click.Path(file_okay=False),
            help="Folder of keystores (default <home>/keystores; BLINDFRAME_KEYSTORE_DIR).",
        ),
        click.option("--rpc", "rpc_url", help=RPC_HELP),
        click.option(
            "--deployment",
            type=click.Path(dir_okay=False),
            help="Deployment file (default <home>/deployment.json; BLINDFRAME_DEPLOYMENT).",
        ),
        home_option,
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _cfg(ctx: click.Context, /, **kwargs: Any) -> Any:
    """Settings with the account options applied; --json noted for emit()."""
    if kwargs.pop("as_json", False):
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["json"] = True
    return settings(
        ctx,
        account=kwargs.get("account"),
        password_file=kwargs.get("password_file"),
        keystore_dir=kwargs.get("keystore_dir"),
        rpc_url=kwargs.get("rpc_url"),
        deployment=kwargs.get("deployment"),
        ipfs_api=kwargs.get("ipfs_api"),
    )


def _address_option(func: _F) -> _F:
    """--address: a read-only command for any node's address, with no keystore."""
    option = click.option(
        "--address",
        metavar="0x...",
        help="Read this address's account instead of --account's (no keystore needed).",
    )
    return option(func)


@click.group()
def worker() -> None:
    """Run a render node: stake, claim tiles of encrypted render jobs, compute, get paid.

    A node stakes ETH and declares a capacity (tiles it works on at once); `run` then watches
    the market's events, claims tiles by priority and pay per compute second, computes them on
    ciphertexts in a sandboxed child process, commits to and reveals a Merkle root of its
    results, proves disagreements with other replicas of its tiles, and finalizes what it is
    owed. Payments accrue to a pending balance: `withdraw` takes them out.

    Account keys come only from encrypted keystores (`blindframe account new NAME`); pass
    --account and a --password-file (or answer the prompt).
    """


# -- account ---------------------------------------------------------------------------------------


@worker.command("account")
@_account_options
@click.option(
    "--job",
    "job_id",
    type=int,
    metavar="ID",
    help="Also say whether this node's reputation admits it to job ID (its --min-completed "
    "and --max-faults gate, enforced on chain).",
)
@_address_option
@click.pass_context
def account_cmd(
    ctx: click.Context, /, job_id: int | None, address: str | None, **kwargs: Any
) -> None:
    """Show the node's account: address, ETH balance, stake, locked collateral, capacity,
    tiles in work, unbonding stake, reputation (tiles paid, faults), pending balance, and its
    keystore file; with --job, whether the job's reputation gate admits it.

    Needs no password; with --address, no keystore either (any node's account, read-only).
    """
    from blindframe.worker.context import open_market, read_only_account
    from blindframe.worker.info import account_report, job_admission

    cfg = _cfg(ctx, **kwargs)
    address, keystore = read_only_account(cfg, address)
    market = open_market(cfg)
    report = account_report(market, address, keystore)
    if job_id is not None:
        report["job"] = job_admission(market, address, job_id)
    emit(ctx, report, _print_account)


def _print_account(r: dict[str, Any]) -> None:
    keystore = f"keystore {r['keystore']}" if r["keystore"] else "by address, read-only"
    click.echo(f"account     {r['address']} ({keystore})")
    click.echo(f"market      {r['market']} on chain {r['chainId']}")
    click.echo(f"balance     {eth(r['balance'])}")
    if r["stake"] or r["capacity"]:
        click.echo(
            f"stake       {eth(r['stake'])}: {eth(r['free'])} free, {eth(r['locked'])} locked as "
            f"collateral (minimum {eth(r['minStake'])}; {eth(r['collateralPerTile'])} per tile)"
        )
        click.echo(f"capacity    {r['capacity']} tiles, {r['activeTiles']} in work")
    else:
        click.echo(
            f"stake       none (minimum {eth(r['minStake'])}): "
            "`blindframe worker stake --amount ETH --capacity N`"
        )
    if r["unbonding"]:
        click.echo(f"unbonding   {eth(r['unbonding'])} until {when(r['unbondingEnd'], r['now'])}")
    else:
        click.echo("unbonding   none")
    click.echo(f"reputation  {r['completed']} tiles paid, {r['faults']} fault(s)")
    if "job" in r:
        click.echo(f"job {r['job']['jobId']:<7} {r['job']['sentence']}")
    pending = f"{eth(r['pending'])}"
    if r["pending"]:
        pending += " to withdraw (`blindframe worker withdraw`)"
    click.echo(f"pending     {pending}")


# -- stake -----------------------------------------------------------------------------------------


@worker.command("stake")
@click.option("--amount", metavar="ETH", help="ETH to add to the stake (e.g. 0.5).")
@click.option(
    "--capacity",
    type=click.IntRange(1, 65_535),
    help="Tiles the node may hold in work at once (kept as is when left out).",
)
@_account_options
@click.pass_context
def stake_cmd(
    ctx: click.Context, /, amount: str | None, capacity: int | None, **kwargs: Any
) -> None:
    """Add stake (--amount ETH) and/or set the capacity (--capacity N).

    The stake must reach the market's minimum before the node can claim; each claimed tile
    locks the market's collateral per tile until its lease ends.
    """
    from blindframe.coordinator.tx import TxSender
    from blindframe.worker.context import open_market, unlock_account
    from blindframe.worker.info import account_report, collateral_shortfall, parse_eth

    if amount is None and capacity is None:
        raise NodeOptionError(
            "nothing to do: give --amount ETH and/or --capacity N",
            hint="e.g. blindframe worker stake --amount 0.5 --capacity 16",
        )
    wei = parse_eth(amount) if amount is not None else 0
    cfg = _cfg(ctx, **kwargs)
    account = unlock_account(cfg)
    market = open_market(cfg, account)
    sender = market.sender
    assert isinstance(sender, TxSender)
    me = sender.address
    view = market.worker(me)
    minimum = int(market.params["minStake"])
    if capacity is None:
        if view.capacity == 0:
            raise NodeOptionError(
                "a first stake needs a capacity: add --capacity N (tiles in work at once)"
            )
        capacity = view.capacity
    if view.stake + wei < minimum:
        raise NotStakedError(
            f"the stake would be {eth(view.stake + wei)}; the market's minimum is {eth(minimum)}",
            hint=f"stake at least {eth(minimum - view.stake)} more with --amount",
        )
    balance = int(market.w3.eth.get_balance(me))
    if wei > balance:
        raise WorkerError(
            f"{me} holds {eth(balance)}; staking {eth(wei)} needs more (plus gas)",
            hint="fund the account first",
        )
    market.stake(capacity, wei)
    report = account_report(market, me, cfg.keystores)
    report["staked_now"] = wei
    # The market takes a capacity its stake cannot back (a claim checks both): say so.
    report["warning"] = collateral_shortfall(market, me)

    def human(r: dict[str, Any]) -> None:
        added = f"added {eth(wei)}: " if wei else ""
        click.echo(
            f"{added}stake {eth(r['stake'])} ({eth(r['free'])} free), capacity {r['capacity']} "
            "tiles"
        )
        if r["warning"]:
            click.echo(f"warning: {r['warning']}", err=True)

    emit(ctx, report, human)


# -- unstake ---------------------------------------------------------------------------------------


@worker.command("unstake")
@click.option("--amount", metavar="ETH", help="Start unbonding this much free stake.")
@click.option("--all", "everything", is_flag=True, help="Start unbonding all free stake.")
@_account_options
@click.pass_context
def unstake_cmd(ctx: click.Context, /, amount: str | None, everything: bool, **kwargs: Any) -> None:
    """Unstake in two steps: request (--amount ETH or --all), wait the unbonding delay, then
    run `unstake` again to complete it (the stake moves to the pending balance; `withdraw`
    takes it out). Says which step it did and when the next one is possible.
    """
    from blindframe.coordinator.tx import TxSender
    from blindframe.worker.context import open_market, unlock_account
    from blindframe.worker.info import chain_now, parse_eth

    if amount is not None and everything:
        raise NodeOptionError("--amount and --all exclude each other: choose one")
    wei = parse_eth(amount) if amount is not None else None
    if wei == 0:
        raise NodeOptionError("--amount must be more than 0 ETH")
    cfg = _cfg(ctx, **kwargs)
    market = open_market(cfg, unlock_account(cfg))
    sender = market.sender
    assert isinstance(sender, TxSender)
    me = sender.address
    view = market.worker(me)
    now = chain_now(market)
    delay = int(market.params["unbondingDelay"])
    out: dict[str, Any] = {"address": me, "actions": []}
    messages: list[str] = []
    if view.unbonding and now >= view.unbondingEnd:
        market.unstake()
        out["actions"].append({"action": "completed", "amount": view.unbonding})
        messages.append(
            f"unstaked {eth(view.unbonding)}: it is in your pending balance; take it out with "
            "`blindframe worker withdraw`"
        )
        view = market.worker(me)
    wanted = wei if wei is not None else ((view.stake - view.locked) if everything else None)
    if wanted is not None:
        free = view.stake - view.locked
        if wanted == 0 or wanted > free:
            raise NotStakedError(
                f"{eth(free)} of the stake is free to unstake"
                + (f" ({eth(view.locked)} is locked as collateral)" if view.locked else "")
                + ("" if wanted == 0 else f"; {eth(wanted)} was asked"),
                hint="wait for leases in work to end" if view.locked else None,
            )
        if view.unbonding:
            messages.append(
                f"note: {eth(view.unbonding)} already unbonding; the delay restarts for all of it"
            )
        market.request_unstake(wanted)
        after = market.worker(me)
        out["actions"].append(
            {"action": "requested", "amount": wanted, "unbondingEnd": after.unbondingEnd}
        )
        messages.append(
            f"requested unstaking {eth(wanted)}: {eth(after.unbonding)} unbonds until "
            f"{when(after.unbondingEnd, chain_now(market))} (delay {delay} s); then run "
            "`blindframe worker unstake` again to complete it"
        )
        minimum = int(market.params["minStake"])
        if after.stake < minimum:
            messages.append(
                f"the stake left ({eth(after.stake)}) is below the minimum {eth(minimum)}: this "
                "node can no longer claim tiles"
            )
    elif not out["actions"]:
        if view.unbonding:
            out["actions"].append(
                {"action": "waiting", "amount": view.unbonding, "unbondingEnd": view.unbondingEnd}
            )
            messages.append(
                f"{eth(view.unbonding)} unbonds until {when(view.unbondingEnd, now)}; run "
                "`blindframe worker unstake` again then to complete it"
            )
        else:
            raise NotStakedError(
                "nothing is unbonding" + ("" if view.stake else f" and {me} has no stake"),
                hint="start with `blindframe worker unstake --amount ETH` (or --all)"
                if view.stake
                else None,
            )
    emit(ctx, out, lambda _data: click.echo("\n".join(messages)))


# -- withdraw --------------------------------------------------------------------------------------


@worker.command("withdraw")
@_account_options
@click.pass_context
def withdraw_cmd(ctx: click.Context, /, **kwargs: Any) -> None:
    """Send the pending balance (rewards, bounties, unstaked stake) to the node's account."""
    from blindframe.coordinator.tx import TxSender
    from blindframe.worker.context import open_market, unlock_account

    cfg = _cfg(ctx, **kwargs)
    market = open_market(cfg, unlock_account(cfg))
    sender = market.sender
    assert isinstance(sender, TxSender)
    me = sender.address
    pending = market.pending_balance(me)
    if pending == 0:
        raise WorkerError(
            f"{me} has nothing to withdraw",
            hint="rewards arrive when the client settles or anyone finalizes a lease; "
            "`blindframe worker status` shows what is on its way",
        )
    market.withdraw()
    balance = int(market.w3.eth.get_balance(me))
    data = {"address": me, "withdrawn": pending, "balance": balance}
    emit(
        ctx,
        data,
        lambda d: click.echo(
            f"withdrew {eth(d['withdrawn'])} to {d['address']} (balance now {eth(d['balance'])})"
        ),
    )


# -- status ----------------------------------------------------------------------------------------


@worker.command("status")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="BLINDFRAME_WORKER_DATA_DIR",
    help="The node's data directory (default <home>/worker/<address>).",
)
@click.option("--all", "show_all", is_flag=True, help="Also list settled and lost leases.")
@_account_options
@_address_option
@click.pass_context
def status_cmd(
    ctx: click.Context, /, data_dir: str | None, show_all: bool, address: str | None, **kwargs: Any
) -> None:
    """The node's leases in flight (from its state database, with the chain's view of each):
    tiles, state, deadlines, earnings; jobs it refused and why; contests it is part of."""
    from pathlib import Path

    from blindframe.worker.context import (
        default_data_dir,
        node_paths,
        open_market,
        read_only_account,
    )
    from blindframe.worker.info import status_report
    from blindframe.worker.options import resolve_options

    cfg = _cfg(ctx, **kwargs)
    address, _keystore = read_only_account(cfg, address)
    options = resolve_options({"data_dir": data_dir}, cfg.sections.get("worker"))
    market = open_market(cfg)
    base = options.data_dir or default_data_dir(cfg.home, address)
    paths = node_paths(Path(base), market.deployment.chain_id, market.address)
    report = status_report(market, address, paths.state_db, show_all=show_all)
    emit(ctx, report, _print_status)


def _print_status(r: dict[str, Any]) -> None:
    now = r["now"]
    click.echo(f"node {r['address']} (state {r['stateDb']})")
    if not r["leases"]:
        click.echo("no lease in flight")
    for lease in r["leases"]:
        tiles = (
            f"tile {lease['firstTile']}"
            if lease["count"] == 1
            else f"tiles {lease['firstTile']}-{lease['firstTile'] + lease['count'] - 1}"
        )
        line = (
            f"lease {lease['lease']:>4}  job {lease['job']} lane {lease['lane']} {tiles:<12} "
            f"{lease['state']:<10} (chain: {lease['chainStatus']})"
        )
        if lease["state"] in ("claimed", "computing", "computed"):
            line += f"  commit by {when(lease['commitDeadline'], now)}"
        elif lease["state"] == "committed":
            line += f"  reveal by {when(lease['revealDeadline'], now)}"
        elif lease.get("finalizableAt"):
            line += f"  finalizable {when(lease['finalizableAt'], now)}"
        if lease["paid"]:
            line += f"  paid {eth(lease['paid'])}"
        if lease["openContests"]:
            line += f"  {lease['openContests']} open contest(s)"
        if lease["error"]:
            line += f"  [{lease['error']}]"
        if lease.get("recordedState"):
            # The state database moves on only while the node runs: say how old its record is.
            age = max(0, int(time.time()) - lease["recordedAt"])
            line += (
                f"  [node's record: {lease['recordedState']}, {duration(age)} old; `worker run` "
                "catches up]"
            )
        click.echo(line)
    jobs = ", ".join(f"{n} {status}" for status, n in sorted(r["jobs"].items())) or "none"
    click.echo(f"jobs seen: {jobs}")
    for refused in r["refused"]:
        click.echo(f"  refused job {refused['job']}: {refused['reason']}")
    for contest in r["contests"]:
        click.echo(
            f"contest {contest['contest']} (job {contest['job']}, tile {contest['tile']}, "
            f"{contest['kind']}): {contest['outcome']}"
        )
    click.echo(
        f"earned {eth(r['earned'])} in {r['settledLeases']} settled lease(s); credited "
        f"{eth(r['credited'])} in all; pending {eth(r['pending'])}"
    )


# -- run -------------------------------------------------------------------------------------------


def _env(name: str) -> str:
    return f"BLINDFRAME_WORKER_{name}"


@worker.command("run")
@_account_options
@ipfs_api_option(
    "The node's own IPFS (Kubo RPC) API URL (BLINDFRAME_IPFS_API; default: the home's local "
    "stack node named like --account, e.g. `stack up --ipfs-node node-1`, else its client node, "
    "else http://127.0.0.1:5001)."
)
@click.option(
    "--kernels",
    envvar=_env("KERNELS"),
    help="Kernels this node runs, comma-separated (default: every kernel of the registry).",
)
@click.option(
    "--capacity",
    type=int,
    envvar=_env("CAPACITY"),
    help="Hold at most N tiles in work in this run (never more than the capacity staked).",
)
@click.option(
    "--min-price",
    metavar="WEI_PER_S",
    envvar=_env("MIN_PRICE"),
    help="Skip jobs paying less than this many wei per expected compute second.",
)
@click.option(
    "--tile-seconds",
    multiple=True,
    metavar="KERNEL=S",
    envvar=_env("TILE_SECONDS"),
    help="Expected seconds per tile until measured here (repeatable); without one the node "
    "measures a kernel on a single tile first.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar=_env("DATA_DIR"),
    help="Where the node keeps its state, caches and results (default <home>/worker/<address>).",
)
@click.option("--poll", type=float, envvar=_env("POLL"), help="Seconds between rounds (1).")
@click.option("--parallel", type=int, envvar=_env("PARALLEL"), help="Leases computed at once (1).")
@click.option(
    "--memory-limit",
    "memory_limit_mb",
    type=int,
    metavar="MIB",
    envvar=_env("MEMORY_LIMIT"),
    help="Memory limit of the sandboxed computation (8192 MiB).",
)
@click.option(
    "--reclaim/--no-reclaim",
    default=None,
    envvar=_env("RECLAIM"),
    help="Reclaim other workers' expired leases for the bounty (on).",
)
@click.option(
    "--once",
    is_flag=True,
    default=None,
    envvar=_env("ONCE"),
    help="Work on what is open now; exit once its leases are revealed.",
)
@click.option(
    "--max-idle",
    type=float,
    metavar="S",
    envvar=_env("MAX_IDLE"),
    help="Exit after S seconds with nothing in flight (no lease before payment, no contest).",
)
@click.option(
    "--json-log",
    is_flag=True,
    default=None,
    envvar=_env("JSON_LOG"),
    help="Log JSON lines (time, level, event, message, fields) instead of sentences.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also log waits and retries.")
@click.option("--fault", hidden=True, envvar=_env("FAULT"))
@click.pass_context
def run_cmd(ctx: click.Context, /, verbose: bool, **kwargs: Any) -> None:
    """Run the render node until Ctrl-C.

    Watches the market's events; validates each job's manifest (trusted kernel registry,
    client-spec hash, the job on chain); claims tiles by priority, pay per compute second and
    deadline, within the node's capacity and what fits a lease at the measured speed; computes
    each lease in a sandboxed child (memory and time limits); commits, then reveals; compares
    other replicas of its tiles and proves disagreements on chain; draws contests' juries and,
    when drawn as a juror, computes the contested tile; proves sides far from a jury's verdict;
    answers availability challenges on its leases; finalizes its verified leases.

    Ctrl-C stops claiming and finishes the leases in flight (commit and reveal), then exits; a
    second Ctrl-C abandons them, saying which and what collateral is at stake. Every option
    also reads BLINDFRAME_WORKER_<OPTION> or the [worker] table of the config file.
    """
    from blindframe.worker.logs import NodeLog
    from blindframe.worker.node import EXIT_ABANDONED
    from blindframe.worker.options import resolve_options

    node_keys = (
        "kernels", "capacity", "min_price", "tile_seconds", "data_dir", "poll", "parallel",
        "memory_limit_mb", "reclaim", "once", "max_idle", "json_log", "fault",
    )  # fmt: skip
    given = {key: kwargs.pop(key) for key in node_keys}
    cfg = _own_ipfs_node(_cfg(ctx, **kwargs))
    options = resolve_options(given, cfg.sections.get("worker"))
    log = NodeLog(json_mode=options.json_log, debug=verbose)
    with log.library_logs():
        code = _run_node(cfg, options, log)
    if code == EXIT_ABANDONED:
        # Abandoned: a download or child still running must not hold the exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    ctx.exit(code)


def _own_ipfs_node(cfg: Settings) -> Settings:
    """With no IPFS API given, the home's local stack node named like the account (`stack up
    --ipfs-node node-1` for `--account node-1`): a render node's own peer, not the artist's."""
    from blindframe.coordinator.config import stack_ipfs_nodes

    if "ipfs_api" not in cfg.defaulted or not cfg.account:
        return cfg
    own = stack_ipfs_nodes(cfg.home).get(cfg.account)
    return cfg if own is None else cfg.replace(ipfs_api=own)


def _run_node(cfg: Settings, options: NodeOptions, log: NodeLog) -> int:
    """Open the account, chain, IPFS node and data directory; run the node; its exit status."""
    from pathlib import Path

    from blindframe.coordinator.store import IpfsStore
    from blindframe.worker import faults
    from blindframe.worker.context import default_data_dir, node_paths, open_market, unlock_account
    from blindframe.worker.info import capacity_shortfall
    from blindframe.worker.node import Node

    account = unlock_account(cfg)
    market = open_market(cfg, account)
    faults.check_fault_allowed(options.fault, market.deployment.chain_id)
    if options.capacity is not None:
        shortfall = capacity_shortfall(market, account.address, options.capacity)
        if shortfall is not None:
            log.warning("capacity_above_stake", shortfall, wanted=options.capacity)
    store = IpfsStore(cfg.ipfs_api, retry_for=5.0)
    store.node_id()  # an unreachable IPFS node is a one-line error now, not a warning later
    base = options.data_dir or default_data_dir(cfg.home, account.address)
    paths = node_paths(Path(base), market.deployment.chain_id, market.address)
    node = Node(
        account=account,
        market=market,
        store=store,
        paths=paths,
        options=options,
        log=log,
        endpoint=cfg.rpc_url,
        confirmations=cfg.confirmations,
    )
    return node.run()
