"""`blindframe demo`: the whole product on one machine, from an empty chain to a decrypted PNG.

It starts the local stack (Anvil, one IPFS node for the artist and one per render node), deploys
the market, creates encrypted keystores and funds them, stakes the render nodes and starts them
as separate processes (each with its own IPFS node), then renders the sample 3D asset as an
artist would, with `blindframe client render`, and ends with a summary measured on chain.
"""

from __future__ import annotations

import json
import os
import shutil
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
# The client's steps before postJob, in the order it takes them (job.json's ``seconds``).
_CLIENT_STEPS = ("keygen", "plan", "encrypt", "upload")


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


@click.command("demo")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".blindframe/demo"),
    show_default=True,
    help="Where the demo keeps the chain, IPFS nodes, keystores, jobs and logs; a previous "
    "run's are removed first (a directory the demo did not make is refused).",
)
@click.option(
    "--size",
    default="64",
    show_default=True,
    help="Frame side in pixels (multiple of 8), or SIDExSIDE.",
)
@click.option(
    "--kernel",
    type=click.Choice(["volume@1", "surface@1"]),
    default="volume@1",
    show_default=True,
    help="The kernel: surface@1 (colour, nearest surface, 64^3 grid) costs ~1 s a pixel; "
    "try --size 32x32.",
)
@click.option("--nodes", default=2, show_default=True, help="Render nodes to start.")
@click.option("--replication", default=2, show_default=True, help="Replicas of every tile.")
@click.option(
    "--canaries",
    type=click.IntRange(0, 16),
    default=None,
    help="Rings of canary tiles around the frame (default: the client's, none for volume; "
    "the summary says what each check catches).",
)
@click.option(
    "--challenge-window",
    type=click.IntRange(5, 3600),
    default=None,
    help="Seconds replicas may challenge each other after the last reveal (default: the local "
    "stack's 60). The artist settles at once a lease whose every replica it verified; a "
    "wrong or missing replica makes the settle wait the window out.",
)
@click.option("--keep", is_flag=True, help="Leave the stack and the render nodes running.")
@click.pass_context
def demo(
    ctx: click.Context,
    home: Path,
    size: str,
    kernel: str,
    nodes: int,
    replication: int,
    canaries: int | None,
    challenge_window: int | None,
    keep: bool,
) -> None:
    """Run the whole product locally and end with a decrypted PNG and a settled job.

    Starts Anvil and IPFS nodes, deploys the market, funds and stakes render nodes (separate
    processes, separate IPFS nodes), encrypts the sample 3D asset (a trefoil knot as a voxel
    grid) for the `volume` kernel, posts the job with escrow, and waits while the nodes render
    it on ciphertexts; the artist then verifies, settles and decrypts the frame. The summary
    splits the wall time into its phases (`blindframe --json demo`: as one JSON document).
    """
    from blindframe.coordinator.cli_support import is_json

    side = _side(size)
    if not 1 <= replication <= nodes:
        raise click.BadParameter(f"replication must be 1..{nodes} with {nodes} node(s)")
    as_json = is_json(ctx)
    started = time.monotonic()
    clock = _Clock(time.time())
    home = home.resolve()
    _empty_home(home)
    names = [f"node-{i + 1}" for i in range(nodes)]
    parameters = None if challenge_window is None else {"challengeWindow": challenge_window}
    info, env, password = _start_stack(home, names, parameters)
    addresses = _create_funded_accounts(home, info, names, password)
    running: list[_Node] = []
    try:
        _start_render_nodes(home, env, info, names, addresses, running)
        frame_png, twin_png = home / "frame.png", home / "twin.png"
        clock.render_started = time.time()
        status = _render_as_artist(
            env,
            info,
            side,
            replication,
            canaries,
            (frame_png, twin_png),
            quiet=as_json,
            kernel=kernel,
        )
        clock.render_ended = time.time()
        _check_render_finished(running, status)
        _say("5/5 summary")
        summary = _summary(info, home, side, names, addresses, (frame_png, twin_png), clock)
        summary["wallSeconds"] = round(time.monotonic() - started, 1)
        if as_json:
            click.echo(json.dumps(summary, sort_keys=True))
        else:
            click.echo("\n".join(_summary_lines(summary)))
    finally:
        _tear_down(home, running, keep)


# Written into the demo's home: the next run may empty a directory that holds it.
_HOME_MARK = ".blindframe-demo"


def _empty_home(home: Path) -> None:
    """Start from an empty home: a previous run's chain, keystores, jobs and node state go (its
    stack stopped first). A directory the demo did not make is refused, not emptied."""
    from blindframe.deploy.stack import stack_down

    if home.is_dir() and any(home.iterdir()):
        # A run from before the mark existed is known by its stack's keystore password.
        if not (home / _HOME_MARK).is_file() and not (home / "stack" / "password").is_file():
            raise DemoError(
                f"{home} holds files the demo did not write, and the demo empties its home",
                hint="choose a new or empty directory with --home",
            )
        stack_down(home)
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / _HOME_MARK).write_text(
        "`blindframe demo` runs here; its next run empties this directory\n"
    )


@dataclass
class _Clock:
    """The demo's own wall-clock times (``time.time()``): the start, and the render's span."""

    started: float
    render_started: float = 0.0
    render_ended: float = 0.0


def _start_stack(
    home: Path, names: list[str], parameters: dict[str, int] | None
) -> tuple[StackInfo, dict[str, str], str]:
    """Step 1: Anvil, the artist's IPFS node and one per render node, and the deployed market
    (with ``parameters`` over the local stack's).

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
        parameters=parameters,
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
    canaries: int | None,
    pngs: tuple[Path, Path],
    *,
    quiet: bool,
    kernel: str = "volume@1",
) -> int:
    """Step 4: `blindframe client render` as the artist: encrypt the sample asset, post the job,
    wait for the nodes, verify, settle and decrypt. Its output goes straight to the terminal
    (to stderr when ``quiet``: the demo's JSON owns stdout); returns its exit status.
    ``pngs``: where the decrypted frame and its twin go."""
    frame_png, twin_png = pngs
    _say(
        f"4/5 the artist encrypts the sample asset, posts a {size}x{size} {kernel} render at "
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
            kernel,
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
            *(() if canaries is None else ("--canaries", str(canaries))),
        ),
        env=artist_env,
        check=False,
        stdout=sys.stderr if quiet else None,
    )
    return render.returncode


def _side(size: str) -> int:
    """``--size``: ``N`` or ``NxN`` (the demo's frame is square), a positive multiple of 8."""
    parts = size.lower().split("x")
    if len(parts) > 2 or not all(p.isdigit() for p in parts) or len(set(parts)) != 1:
        raise click.BadParameter(f"the frame size must be N or NxN, a square (not {size!r})")
    side = int(parts[0])
    if side <= 0 or side % 8:
        raise click.BadParameter(f"the frame side must be a positive multiple of 8 (not {side})")
    return side


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


def _summary(
    info: StackInfo,
    home: Path,
    size: int,
    names: list[str],
    addresses: dict[str, str],
    pngs: tuple[Path, Path],
    clock: _Clock,
) -> dict[str, Any]:
    """Step 5: the job's frame, gas, bytes moved, checks, time split and each node's earnings,
    measured on chain and in the artist's job directory. ``pngs``: the decrypted frame and its
    twin."""
    from blindframe.client.canaries import Detection
    from blindframe.coordinator.chain import connect
    from blindframe.coordinator.deployment import Deployment
    from blindframe.coordinator.market import Market

    w3 = connect(info.rpc_url)
    deployment = Deployment.load(Path(info.deployment))
    market = Market(w3, deployment)
    job_id = market.counts()[0]
    job = market.job(job_id)
    calls = _market_calls(w3, market, deployment.deploy_block + 1)
    gas = sum(call.gas for call in calls)
    jobdir = _job_dir(home, job_id)
    uploaded, results = _bytes_moved(jobdir)
    state = _job_state(jobdir)
    canary_tiles = int(state.get("quote", {}).get("canaryTiles", 0))
    detection = Detection(job.tileCount, canary_tiles, job.replication, ring=True)
    frame_png, twin_png = pngs
    return {
        "frame": [size, size],
        "tiles": job.tileCount,
        "canaryTiles": canary_tiles,
        "replication": job.replication,
        "png": str(frame_png),
        "twinPng": str(twin_png),
        "gas": gas,
        "transactions": len(calls),
        "uploadedBytes": uploaded,
        "resultBytes": results,
        "detection": detection.to_json(),
        "detectionText": detection.text(),
        "split": _time_split(clock, calls, jobdir, frame_png),
        "clientSeconds": state.get("seconds", {}),
        "nodes": [_earnings(market, name, addresses[name]) for name in names],
    }


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary for people, one figure per line."""
    size = summary["frame"][0]
    tiles, replication = summary["tiles"], summary["replication"]
    gas, results = summary["gas"], summary["resultBytes"]
    lines = [
        f"frame          {size}x{size} px, {tiles} tiles x {replication} replicas "
        f"(volume@1, 1 lookup per pixel)",
        f"decrypted      {summary['png']}  (plaintext twin: {summary['twinPng']})",
        f"wall time      {summary['wallSeconds']:.0f} s in all",
        f"gas            {gas:,} in {summary['transactions']} transactions: "
        f"{gas // (tiles * replication):,} per tile-replica, {gas // tiles:,} per tile "
        f"(staking included)",
        f"bytes moved    uploaded {summary['uploadedBytes']:,} (evaluation keys, encrypted "
        f"volume, manifest); results {results:,} = {results // max(size * size, 1):,} per pixel "
        f"verified",
        f"checks         {summary['canaryTiles']} canary tiles; {summary['detectionText']}",
    ]
    client = summary["clientSeconds"]
    for i, phase in enumerate(summary["split"]):
        label = "time split" if i == 0 else ""
        note = phase["note"]
        if phase["name"] == "encrypt+upload" and client:
            steps = sorted(
                client, key=lambda k: _CLIENT_STEPS.index(k) if k in _CLIENT_STEPS else 9
            )
            note += " (" + ", ".join(f"{k} {client[k]:.1f} s" for k in steps) + ")"
        lines.append(f"{label:<15}{phase['name']:<16}{phase['seconds']:>6.0f} s  {note}")
    for node in summary["nodes"]:
        lines.append(
            f"{node['name']:<14} earned {node['earnedEth']:.4f} ETH for {node['tiles']} tiles "
            f"(pending withdrawal)"
        )
    return lines


@dataclass(frozen=True)
class _Call:
    """One transaction to the market: its block's time, the function called, its gas."""

    at: int
    function: str
    gas: int


def _market_calls(w3: Any, market: Market, first_block: int) -> list[_Call]:
    """Every transaction to the market from ``first_block``, in order."""
    calls = []
    for number in range(first_block, int(w3.eth.block_number) + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["to"] is None or tx["to"].lower() != market.address.lower():
                continue
            try:
                function = market.contract.decode_function_input(tx["input"])[0].fn_name
            except ValueError:  # a function of the faults module, reached through the fallback
                function = "other"
            gas = int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])
            calls.append(_Call(int(block["timestamp"]), function, gas))
    return calls


def _time_split(
    clock: _Clock, calls: list[_Call], jobdir: Path | None, frame_png: Path
) -> list[dict[str, Any]]:
    """The demo's wall time in consecutive phases, from the demo's clock, the chain's block
    times (whole seconds) and the artist's job directory: each phase ends at a milestone
    (the last commit, the last reveal, ...) and starts where the one before ended, so the
    phases add up to the time from the start to the render's end (the summary's own reading of
    the chain comes after)."""

    def last(*functions: str) -> float | None:
        times = [c.at for c in calls if c.function in functions]
        return float(max(times)) if times else None

    def first(function: str) -> float | None:
        times = [c.at for c in calls if c.function == function]
        return float(min(times)) if times else None

    outputs = sorted(jobdir.glob("outputs/*")) if jobdir else []
    milestones: list[tuple[str, float | None, str]] = [
        ("setup", clock.render_started, "stack, market, keystores, staking, nodes started"),
        ("encrypt+upload", _created_at(jobdir), "keys, FFT plan, encryption, upload"),
        ("post", first("postJob"), "postJob mined"),
        ("claim", first("claim"), "until the first claim"),
        ("compute", last("commit"), "until the last commit (every node's leases)"),
        ("commit/reveal", last("reveal"), "until the last reveal"),
        (
            "verify",
            max((p.stat().st_mtime for p in outputs), default=None),
            "until the last result was downloaded (its check follows)",
        ),
        (
            "settle",
            last("settle", "finalize"),
            "until the last settle (at once when every replica verified)",
        ),
        (
            "decrypt",
            frame_png.stat().st_mtime if frame_png.exists() else None,
            "until the PNG was written",
        ),
        ("render exit", clock.render_ended, "the render's own end"),
    ]
    split = []
    previous = clock.started
    for name, at, note in milestones:
        # A milestone not reached (or read to the second before the one before): a zero phase.
        end = previous if at is None else max(at, previous)
        split.append({"name": name, "seconds": round(end - previous, 1), "note": note})
        previous = end
    return split


def _job_dir(home: Path, job_id: int) -> Path | None:
    """The artist's directory of job ``job_id`` (None if it has none)."""
    jobs = sorted((home / "jobs").glob(f"*-{job_id}"))
    return jobs[-1] if jobs else None


def _job_state(jobdir: Path | None) -> dict[str, Any]:
    """The job directory's job.json ({} without one)."""
    if jobdir is None or not (jobdir / "job.json").is_file():
        return {}
    return dict(json.loads((jobdir / "job.json").read_text(encoding="utf-8")))


def _created_at(jobdir: Path | None) -> float | None:
    """When the client wrote the job directory: after the upload, before postJob."""
    created = _job_state(jobdir).get("createdAt")
    return float(created) if created is not None else None


def _bytes_moved(jobdir: Path | None) -> tuple[int, int]:
    """(bytes the artist uploaded, bytes of verified results) of the job in ``jobdir``, from
    the client's job directory; (0, 0) when it has none."""
    from blindframe.coordinator.manifest import Manifest

    if jobdir is None:
        return 0, 0
    raw = (jobdir / "manifest.json").read_bytes()
    manifest = Manifest.parse(raw)
    uploaded = len(raw) + manifest.evaluation_keys.size + sum(i.size for i in manifest.inputs)
    results = sum(p.stat().st_size for p in (jobdir / "outputs").glob("*"))
    return uploaded, results


def _earnings(market: Market, name: str, address: str) -> dict[str, Any]:
    """What a render node earned, as the market records it (not yet withdrawn)."""
    return {
        "name": name,
        "address": address,
        "earnedEth": market.pending_balance(address) / ETH,
        "tiles": market.worker(address).completed,
    }


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
