"""`blindframe demo`: the whole product on one machine, from an empty chain to a decrypted PNG.

It starts the local stack (Anvil, one IPFS node for the artist and one per render node), deploys
the market, creates encrypted keystores and funds them, stakes the render nodes and starts them
as separate processes (each with its own IPFS node), then renders the sample 3D asset as an
artist would, with `blindframe client render`, and ends with a summary measured on chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blindframe.errors import BlindframeError

if TYPE_CHECKING:
    from blindframe.coordinator.market import Market
    from blindframe.deploy.stack import StackInfo

__all__ = ["demo"]

ETH = 10**18


class DemoError(BlindframeError, RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


@dataclass
class _Node:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def _blindframe(*args: str) -> list[str]:
    return [sys.executable, "-m", "blindframe", *args]


def _run(argv: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DemoError(f"{what} failed: {last}")
    out = result.stdout.strip()
    return dict(json.loads(out.splitlines()[-1])) if out.startswith(("{", "[")) else {}


def _say(text: str) -> None:
    click.secho(text, fg="cyan", err=True)


def _gas_since(w3: Any, market: str, first_block: int) -> tuple[int, int]:
    """(gas used, transactions) of every transaction to the market from ``first_block``."""
    total, count = 0, 0
    for number in range(first_block, int(w3.eth.block_number) + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["to"] is not None and tx["to"].lower() == market.lower():
                total += int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])
                count += 1
    return total, count


@click.command("demo")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".blindframe/demo"),
    show_default=True,
    help="Where the demo keeps the chain, IPFS nodes, keystores, jobs and logs (wiped first).",
)
@click.option("--size", default=64, show_default=True, help="Frame side in pixels (multiple of 8).")
@click.option("--nodes", default=2, show_default=True, help="Render nodes to start.")
@click.option("--replication", default=2, show_default=True, help="Replicas of every tile.")
@click.option("--keep", is_flag=True, help="Leave the stack and the render nodes running.")
def demo(home: Path, size: int, nodes: int, replication: int, keep: bool) -> None:
    """Run the whole product locally and end with a decrypted PNG and a settled job.

    Starts Anvil and IPFS nodes, deploys the market, funds and stakes render nodes (separate
    processes, separate IPFS nodes), encrypts the sample 3D asset (a trefoil knot as a voxel
    grid) for the `volume` kernel, posts the job with escrow, and waits while the nodes render
    it on ciphertexts; the artist then verifies, settles and decrypts the frame.
    """
    if size <= 0 or size % 8:
        raise click.BadParameter(f"the frame side must be a positive multiple of 8 (not {size})")
    if not 1 <= replication <= nodes:
        raise click.BadParameter(f"replication must be 1..{nodes} with {nodes} node(s)")
    started = time.monotonic()
    home = home.resolve()
    names = [f"node-{i + 1}" for i in range(nodes)]
    info, env, password = _start_stack(home, names)
    addresses = _create_funded_accounts(home, info, names, password)
    running: list[_Node] = []
    try:
        _start_render_nodes(home, env, info, names, addresses, running)
        frame_png, twin_png = home / "frame.png", home / "twin.png"
        status = _render_as_artist(env, info, size, replication, frame_png, twin_png)
        _check_render_finished(running, status)
        _say("5/5 summary")
        lines = _summary_lines(info, home, size, names, addresses, (frame_png, twin_png), started)
        click.echo("\n".join(lines))
    finally:
        _tear_down(home, running, keep)


def _start_stack(home: Path, names: list[str]) -> tuple[StackInfo, dict[str, str], str]:
    """Step 1: Anvil, the artist's IPFS node and one per render node, and the deployed market.

    Returns the stack, the environment every `blindframe` child runs with (pointing it at this
    stack rather than at the user's configuration) and the keystore password."""
    from blindframe.deploy.processes import free_port
    from blindframe.deploy.stack import local_password_file, stack_up

    # The default ports unless something already listens there (another stack, a dev chain).
    rpc_port = 8545 if _port_free(8545) else free_port()
    ipfs_port = 5001 if _port_free(5001) else free_port()
    _say(f"1/5 starting Anvil, {len(names) + 1} IPFS nodes and deploying the market in {home}")
    info = stack_up(
        home,
        home / "keystores",
        rpc_port=rpc_port,
        ipfs_port=ipfs_port,
        extra_ipfs=tuple(names),
        fresh=True,
    )
    password_file = local_password_file(home)
    password = password_file.read_text().splitlines()[0]
    env = {
        **os.environ,
        "BLINDFRAME_HOME": str(home),
        "BLINDFRAME_RPC_URL": info.rpc_url,
        "BLINDFRAME_DEPLOYMENT": info.deployment,
        "BLINDFRAME_KEYSTORE_DIR": str(home / "keystores"),
        "BLINDFRAME_PASSWORD_FILE": str(password_file),
        "PYTHONUNBUFFERED": "1",
    }
    # The children take their settings from this environment alone, not from a user's config.
    env.pop("BLINDFRAME_CONFIG", None)
    return info, env, password


def _create_funded_accounts(
    home: Path, info: StackInfo, names: list[str], password: str
) -> dict[str, str]:
    """Step 2: an encrypted keystore for the artist and each render node, each funded with
    100 ETH; returns their addresses by name."""
    from blindframe.coordinator.accounts import create_account
    from blindframe.deploy.stack import fund

    _say("2/5 creating encrypted keystores for the artist and the render nodes, funding them")
    addresses = {}
    for name in ["artist", *names]:
        entry = create_account(home / "keystores", name, password)
        fund(info.rpc_url, entry.address, 100 * ETH)
        addresses[name] = entry.address
    return addresses


def _start_render_nodes(
    home: Path,
    env: dict[str, str],
    info: StackInfo,
    names: list[str],
    addresses: dict[str, str],
    running: list[_Node],
) -> None:
    """Step 3: stake each render node and start it as its own process with its own IPFS node.

    Started nodes are appended to ``running`` as they start (not returned at the end), so that
    the caller stops them even when a later node fails to stake or start."""
    _say(f"3/5 staking and starting {len(names)} render nodes (separate processes and IPFS nodes)")
    for name in names:
        node_env = {**env, "BLINDFRAME_ACCOUNT": name, "BLINDFRAME_IPFS_API": info.ipfs[name]}
        _run(
            _blindframe("--json", "worker", "stake", "--amount", "1", "--capacity", "256"),
            node_env,
            f"staking {name}",
        )
        log = home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            process = subprocess.Popen(
                _blindframe("worker", "run", "--data-dir", str(home / "nodes" / name)),
                env=node_env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group, so that _stop can signal the node and its children.
                start_new_session=True,
            )
        running.append(_Node(name, process, log))
        _say(f"    {name} {addresses[name]} (log: {log})")


def _render_as_artist(
    env: dict[str, str],
    info: StackInfo,
    size: int,
    replication: int,
    frame_png: Path,
    twin_png: Path,
) -> int:
    """Step 4: `blindframe client render` as the artist: encrypt the sample asset, post the job,
    wait for the nodes, verify, settle and decrypt. Its output goes straight to the terminal;
    returns its exit status."""
    _say(
        f"4/5 the artist encrypts the sample asset, posts a {size}x{size} volume render at "
        f"replication {replication}, and waits for the nodes"
    )
    artist_env = {
        **env,
        "BLINDFRAME_ACCOUNT": "artist",
        "BLINDFRAME_IPFS_API": info.ipfs["client"],
    }
    render = subprocess.run(
        _blindframe(
            "client",
            "render",
            "--yes",  # the demo's quote is shown, not asked about
            "--scene",
            "sample",
            "--kernel",
            "volume@1",
            "--size",
            f"{size}x{size}",
            "--replication",
            str(replication),
            "--reward",
            "0.001",
            "--lease-length",
            "30m",
            "--deadline",
            "2h",
            "-o",
            str(frame_png),
            "--twin",
            str(twin_png),
            "--scale",
            "4",
        ),
        env=artist_env,
        check=False,
    )
    return render.returncode


def _check_render_finished(running: list[_Node], render_status: int) -> None:
    """Fail if a render node died or the render failed; a dead node is reported first, since
    it is the likelier cause of a failed render and its log says why."""
    for node in running:
        if node.process.poll() is not None:
            raise DemoError(
                f"{node.name} stopped (status {node.process.returncode}); see {node.log}"
            )
    if render_status != 0:
        raise DemoError("the render did not finish; see the error above and the node logs")


def _summary_lines(
    info: StackInfo,
    home: Path,
    size: int,
    names: list[str],
    addresses: dict[str, str],
    pngs: tuple[Path, Path],
    started: float,
) -> list[str]:
    """Step 5: the job's frame, wall time, gas, bytes moved and each node's earnings, measured
    on chain and in the artist's job directory. ``pngs``: the decrypted frame and its twin."""
    from blindframe.coordinator.chain import connect
    from blindframe.coordinator.deployment import Deployment
    from blindframe.coordinator.market import Market

    w3 = connect(info.rpc_url)
    deployment = Deployment.load(Path(info.deployment))
    market = Market(w3, deployment)
    job_id = market.counts()[0]
    job = market.job(job_id)
    gas, txs = _gas_since(w3, market.address, deployment.deploy_block + 1)
    uploaded, results = _bytes_moved(home, job_id)
    slots = job.tileCount * job.replication
    pixels = size * size
    frame_png, twin_png = pngs
    lines = [
        f"frame          {size}x{size} px, {job.tileCount} tiles x {job.replication} replicas "
        f"(volume@1, 1 lookup per pixel)",
        f"decrypted      {frame_png}  (plaintext twin: {twin_png})",
        f"wall time      {time.monotonic() - started:.0f} s in all",
        f"gas            {gas:,} in {txs} transactions: {gas // slots:,} per tile-replica, "
        f"{gas // job.tileCount:,} per tile (staking included)",
        f"bytes moved    uploaded {uploaded:,} (evaluation keys, encrypted "
        f"volume, manifest); results {results:,} = {results // max(pixels, 1):,} per pixel "
        f"verified",
    ]
    return lines + _earnings_lines(market, names, addresses)


def _bytes_moved(home: Path, job_id: int) -> tuple[int, int]:
    """(bytes the artist uploaded, bytes of verified results) of job ``job_id``, from the
    client's job directory; (0, 0) when it has none."""
    from blindframe.coordinator.manifest import Manifest

    jobs = sorted((home / "jobs").glob(f"*-{job_id}"))
    uploaded = 0
    if jobs:
        raw = (jobs[-1] / "manifest.json").read_bytes()
        manifest = Manifest.parse(raw)
        uploaded = len(raw) + manifest.evaluation_keys.size + sum(i.size for i in manifest.inputs)
    results = sum(p.stat().st_size for p in (jobs[-1] / "outputs").glob("*")) if jobs else 0
    return uploaded, results


def _earnings_lines(market: Market, names: list[str], addresses: dict[str, str]) -> list[str]:
    """What each render node earned, as the market records it (not yet withdrawn)."""
    lines = []
    for name in names:
        pending = market.pending_balance(addresses[name])
        done = market.worker(addresses[name]).completed
        lines.append(
            f"{name:<14} earned {pending / ETH:.4f} ETH for {done} tiles (pending withdrawal)"
        )
    return lines


def _tear_down(home: Path, running: list[_Node], keep: bool) -> None:
    """Stop the render nodes and the stack, unless ``keep``."""
    if not keep:
        for node in running:
            _stop(node)
        from blindframe.deploy.stack import stack_down

        stack_down(home)
    else:
        _say(f"left running: the stack (`BLINDFRAME_HOME={home} blindframe stack down` stops it)")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop(node: _Node) -> None:
    if node.process.poll() is not None:
        return
    os.killpg(node.process.pid, signal.SIGINT)
    try:
        node.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()
