"""`blindframe client`: the artist's commands, a thin layer over ``client.artist.Artist``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from blindframe.client._frames import frame_format as frame_format_of
from blindframe.client.dashboard._cli import dashboard
from blindframe.client.errors import ClientError, ConfirmationError, JobOptionsError
from blindframe.client.scene.importer import KERNEL_CHOICES, import_scene
from blindframe.client.snapshot import CLOCK_FIELDS, JobSnapshot
from blindframe.client.units import (
    format_duration,
    format_eth,
    parse_duration,
    parse_eth,
)
from blindframe.coordinator.cli_support import (
    IPFS_API_HELP,
    RPC_HELP,
    console,
    emit,
    home_option,
    ipfs_api_option,
    is_json,
    password,
    settings,
)

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from blindframe.client._retrying import RetryReport
    from blindframe.client.artist import Artist, JobOptions
    from blindframe.client.quote import Quote
    from blindframe.client.snapshot import ContestState, JobSnapshot

__all__ = ["client"]

F = TypeVar("F", bound=Callable[..., Any])

_STEP_LABELS = {
    "keygen": "generating FHE keys",
    "plan": "choosing the FFT plan",
    "encrypt": "encrypting",
    "upload": "uploading",
    "download": "downloading results",
    "verify": "verifying tiles",
    "decrypt": "decrypting",
}


# Job options an artist may set once: in the config file's [client] table (dashes or
# underscores) or as BLINDFRAME_CLIENT_<NAME>; the command line wins, then the environment.
_CONFIGURABLE = (
    "kernel",
    "size",
    "replication",
    "reward",
    "lease_length",
    "deadline",
    "priority",
    "canaries",
    "resolution",
    "up",
    "min_completed",
    "max_faults",
)


def _client_env(name: str) -> str:
    return f"BLINDFRAME_CLIENT_{name.upper()}"


@click.group()
@click.pass_context
def client(ctx: click.Context) -> None:
    """The artist's side: encrypt a scene, post it as a render job, watch it, verify, pay, decrypt.

    \b
    A first render, on the local stack (`blindframe stack up`):
      blindframe account new artist               # an encrypted keystore
      blindframe stack fund artist                # test ETH (local stack only)
      blindframe client keygen                    # FHE keys, kept in <home>/keys
      blindframe client render --scene sample --size 16x16 --account artist -o knot.png

    \b
    Step by step: quote (cost and time, nothing sent), post, then watch / status, verify,
    settle, fetch (decrypt), and dispute a tile that fails verification; cancel a job
    early; refund unfinished tiles after the deadline (or after a cancel); retry them as a
    follow-up job.
    JOB is a job id on this home's market, a job key from `jobs`, or omitted for the latest.
    Secret FHE keys never leave <home>/keys; jobs live in <home>/jobs/<chain>-<market>-<id>/.

    \b
    Defaults for quote, post and render (kernel, size, replication, reward, lease-length,
    deadline, priority, canaries, resolution, up, min-completed, max-faults) come from the
    config file's [client] table or BLINDFRAME_CLIENT_<NAME> variables; the command line
    wins over both.
    """
    table = settings(ctx).sections.get("client") or {}
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        name = str(key).replace("-", "_")
        if name not in _CONFIGURABLE:
            known = ", ".join(n.replace("_", "-") for n in _CONFIGURABLE)
            raise JobOptionsError(f"unknown setting {key!r} in [client]", hint=f"known: {known}")
        defaults[name] = value
    ctx.default_map = {"quote": defaults, "post": defaults, "render": defaults}


client.add_command(import_scene)
client.add_command(dashboard)


# --------------------------------------------------------------------------------- options


def _network(func: F) -> F:
    for option in reversed(
        [
            click.option("--rpc", "rpc_url", help=RPC_HELP),
            ipfs_api_option(IPFS_API_HELP),
            click.option(
                "--deployment",
                type=click.Path(dir_okay=False),
                help="Deployment file (default <home>/deployment.json).",
            ),
            home_option,
        ]
    ):
        func = option(func)
    return func


def _signer(func: F) -> F:
    func = click.option(
        "--password-file",
        type=click.Path(dir_okay=False),
        help="File whose first line is the keystore password (else a prompt on a terminal).",
    )(func)
    return click.option(
        "--account", help="Keystore name, address or file that signs (BLINDFRAME_ACCOUNT)."
    )(func)


def _job_argument(func: F) -> F:
    return click.argument("job", required=False)(func)


_KERNEL_NAMES = {k.partition("@")[0]: k for k in KERNEL_CHOICES}


def _kernel(value: str | None) -> str | None:
    if value is None:
        return None
    if value in KERNEL_CHOICES:
        return value
    if value in _KERNEL_NAMES:
        return _KERNEL_NAMES[value]
    raise JobOptionsError(
        f"unknown kernel {value!r}: expected one of {'|'.join(KERNEL_CHOICES)}",
        hint="volume renders meshes, shade G-buffers, post frames",
    )


def _size(value: str | None) -> tuple[int, int] | None:
    """``WxH`` (or one number for a square) -> (height, width)."""
    if value is None:
        return None
    text = value.lower().strip()
    try:
        if "x" in text:
            width, height = (int(part) for part in text.split("x", 1))
        else:
            width = height = int(text)
    except ValueError:
        raise JobOptionsError(f"--size must be WIDTHxHEIGHT, e.g. 64x48 (not {value!r})") from None
    if width <= 0 or height <= 0:
        raise JobOptionsError(f"--size must be positive (not {value!r})")
    return height, width


def _vector(value: str, what: str) -> list[float]:
    try:
        parts = [float(p) for p in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3:
        raise JobOptionsError(f"{what} must be three numbers x,y,z (not {value!r})")
    return parts


# The job's options, shared by `post` and `render` (each command gets its own Option objects:
# a click.option decorator builds one each time it is applied).
_JOB_OPTIONS = [
    click.option(
        "--scene",
        required=True,
        help="'sample' (the sample torus knot), a scene file (.npz from `client import`), "
        "a mesh (glTF/GLB, OBJ, STL, PLY: voxelized) or a PNG/EXR frame or G-buffer.",
    ),
    click.option(
        "--kernel",
        envvar=_client_env("kernel"),
        help="volume@1 (meshes), shade@1 (G-buffers) or post@1 (frames); "
        "default: the one the scene needs.",
    ),
    click.option(
        "--size",
        envvar=_client_env("size"),
        help="Frame size WIDTHxHEIGHT for volume (multiples of 8; default 64x64); G-buffer "
        "and frame scenes bring their own. Tiles are 8x8: the tile count follows.",
    ),
    click.option(
        "--replication",
        envvar=_client_env("replication"),
        type=int,
        default=1,
        show_default=True,
        help="Render nodes computing each tile independently (1..8).",
    ),
    click.option(
        "--reward",
        envvar=_client_env("reward"),
        default="0.0001",
        show_default=True,
        help="ETH paid per tile and replica; escrow = tiles x replication x reward.",
    ),
    click.option(
        "--lease-length",
        envvar=_client_env("lease_length"),
        default="10m",
        show_default=True,
        help="How long a node has to compute and commit the tiles it claims (90s, 10m, 2h).",
    ),
    click.option(
        "--deadline",
        envvar=_client_env("deadline"),
        default="1h",
        show_default=True,
        help="Time from now until the job closes; unfinished tiles are refundable after it.",
    ),
    click.option(
        "--priority",
        envvar=_client_env("priority"),
        type=int,
        default=0,
        show_default=True,
        help="Scheduling hint for render nodes (0..255).",
    ),
    click.option(
        "--canaries",
        envvar=_client_env("canaries"),
        type=int,
        help="volume: canary tiles of margin around the frame (0..16, default 0: the twin "
        "check of every tile already catches what a ring would); shade/post: canary tasks "
        "(default one per 8 tiles). The quote prints what each check catches.",
    ),
    click.option(
        "--min-completed",
        envvar=_client_env("min_completed"),
        type=int,
        default=0,
        show_default=True,
        help="Reputation gate, enforced on chain: only nodes paid for at least N tiles, ever, "
        "may claim the job's tiles or judge its contests (0: any staked node).",
    ),
    click.option(
        "--max-faults",
        envvar=_client_env("max_faults"),
        type=int,
        help="Reputation gate, enforced on chain: only nodes slashed at most N times may claim "
        "or judge (0: a clean record; default: any). `blindframe worker account` shows a "
        "node's record.",
    ),
    click.option("--yaw", type=float, help="volume camera yaw in degrees (default 20)."),
    click.option("--pitch", type=float, help="volume camera pitch in degrees (default 15)."),
    click.option(
        "--zoom", type=float, help="volume camera zoom 0.25..4 (default: the model framed)."
    ),
    click.option(
        "--frames",
        type=int,
        help="volume: render N frames of the one encrypted scene as one job (1..256; one "
        "upload, one key set): a numbered PNG sequence and an animated preview.",
    ),
    click.option(
        "--orbit",
        type=float,
        help="volume, with --frames: degrees the camera's yaw turns over the frames (a "
        "turntable: --frames 48 --orbit 360 turns 7.5 degrees a frame; -360..360).",
    ),
    click.option("--light", help="shade light direction x,y,z (sample: -0.4,0.6,0.7)."),
    click.option(
        "--filter",
        "filter_name",
        help="post filter: identity, blur, sharpen, edge... (sample: sharpen).",
    ),
    click.option(
        "--resolution",
        envvar=_client_env("resolution"),
        type=int,
        default=64,
        show_default=True,
        help="Voxel grid side when the scene is a mesh.",
    ),
    click.option(
        "--up",
        envvar=_client_env("up"),
        type=click.Choice(["y", "z"]),
        default="y",
        show_default=True,
        help="A mesh file's up axis.",
    ),
    click.option(
        "--fft-plan",
        help="Experts: the FFT plan replicas pin (ISA:N=16HEX[+...], as render nodes log "
        "it); default: the most common plan on this machine, chosen in about 5 s and "
        "remembered for an hour.",
    ),
]


def _job_options(func: F) -> F:
    for option in reversed(_JOB_OPTIONS):
        func = option(func)
    return func


# What stands between a quote and a post (`post`, `render`).
_POST_GATE = [
    click.option(
        "-y",
        "--yes",
        is_flag=True,
        help="Post without asking to confirm the quote. Without it, a terminal is asked; "
        "with no terminal (stdin not a TTY) the command refuses, unless --json is given "
        "(scripts: the quote is in the JSON output).",
    ),
    click.option(
        "--max-cost",
        help="Refuse to post when the quote (escrow plus gas, in ETH) is above this.",
    ),
    click.option(
        "--allow-empty",
        is_flag=True,
        help="Post a volume frame even when its plaintext twin shows nothing (the camera "
        "misses the model); without it such a job is refused before anything is paid.",
    ),
]


def _post_gate(func: F) -> F:
    for option in reversed(_POST_GATE):
        func = option(func)
    return func


def _gate(
    ctx: click.Context, display: _Display, yes: bool, max_cost: str | None
) -> tuple[Callable[[Quote], bool], int | None]:
    """The ``confirm`` callback and the ``max_cost_wei`` of a post: the quote shown (stderr),
    then confirmed on a terminal unless --yes or --json."""
    limit = parse_eth(max_cost, "--max-cost") if max_cost is not None else None

    def confirm(quote: Quote) -> bool:
        if is_json(ctx):
            return True  # scripted: the quote comes back in the JSON output
        if not yes and not sys.stdin.isatty():
            raise ConfirmationError(
                f"posting asks to confirm its quote ({format_eth(quote.total_wei)}), and there "
                "is no terminal to ask on: nothing was posted",
                hint="pass --yes (and --max-cost ETH to cap it), or --json",
            )
        with display.paused():
            for line in quote.lines():
                console.print(line)
            return yes or click.confirm("Post this job?", default=False, err=True)

    return confirm, limit


def _build_options(values: dict[str, Any]) -> tuple[str, JobOptions]:
    from blindframe.client.artist import JobOptions

    kernel = _kernel(values.pop("kernel"))
    params: dict[str, Any] | None = None
    camera = {k: values.pop(k) for k in ("yaw", "pitch", "zoom")}
    light, filter_name = values.pop("light"), values.pop("filter_name")
    family = (kernel or "").partition("@")[0]
    if any(v is not None for v in camera.values()):
        if family not in ("", "volume"):
            raise JobOptionsError("--yaw, --pitch and --zoom are volume camera options")
        # Only what was given: post fills the rest (a model framed, or the sample's camera).
        params = {k: v for k, v in camera.items() if v is not None}
    if light is not None:
        if family not in ("", "shade") or params is not None:
            raise JobOptionsError("--light is a shade option")
        params = {"light": _vector(light, "--light")}
    if filter_name is not None:
        if family not in ("", "post") or params is not None:
            raise JobOptionsError("--filter is a post option")
        params = {"filter": filter_name}
    options = JobOptions(
        kernel=kernel,
        frame=_size(values.pop("size")),
        replication=values.pop("replication"),
        reward_wei=parse_eth(values.pop("reward"), "--reward"),
        lease_length=parse_duration(values.pop("lease_length"), "--lease-length"),
        deadline=parse_duration(values.pop("deadline"), "--deadline"),
        priority=values.pop("priority"),
        canaries=values.pop("canaries"),
        params=params,
        resolution=values.pop("resolution"),
        up="z" if values.pop("up") == "z" else "y",
        fft_plan=values.pop("fft_plan"),
        min_completed=values.pop("min_completed"),
        max_faults=values.pop("max_faults"),
        frames=values.pop("frames"),
        orbit=values.pop("orbit"),
    )
    options.check()  # a bad option is said before any account, chain or IPFS is touched
    scene = str(values.pop("scene"))
    return scene, options


# --------------------------------------------------------------------------------- plumbing


def _fetch_timeout(func: F) -> F:
    return click.option(
        "--fetch-timeout",
        default="60s",
        show_default=True,
        help="How long to look for a revealed result before counting it unavailable (then it "
        "is challenged for availability).",
    )(func)


def _artist(
    ctx: click.Context, *, sign: bool = False, fetch_timeout: str | None = None, **overrides: Any
) -> Artist:
    """An Artist for this invocation; with ``sign``, its account unlocked now (prompting for
    the password on a terminal when no password file is given). ``fetch_timeout``: the
    --fetch-timeout option's text."""
    from blindframe.client.artist import Artist
    from blindframe.coordinator.accounts import find_keystore, unlock

    cfg = settings(ctx, **overrides)
    account = None
    if sign:
        if cfg.account is None:
            raise ClientError(
                "this command signs transactions: name the account",
                hint="pass --account NAME (see `blindframe account list`) or set "
                "BLINDFRAME_ACCOUNT",
            )
        path = find_keystore(cfg.keystores, cfg.account)
        account = unlock(path, password(cfg, prompt=f"Password of {cfg.account}"))
    if fetch_timeout is None:
        return Artist(cfg, account=account)
    seconds = parse_duration(fetch_timeout, "--fetch-timeout")
    return Artist(cfg, account=account, ipfs_timeout=float(max(seconds, 1)))


def _overrides(values: dict[str, Any]) -> dict[str, Any]:
    keys = ("rpc_url", "ipfs_api", "deployment", "home", "account", "password_file")
    return {k: values.pop(k) for k in keys if k in values}


def _show_bars(ctx: click.Context) -> bool:
    return not is_json(ctx) and console.is_terminal


class _Display:
    """One live rich display on stderr: bars for the long steps (keygen, encrypt, upload,
    download, verify, decrypt) and, once a job runs, bars of its replica slots per state.

    Without a terminal (or under --json) there are no bars; with ``lines``, each changed job
    status is printed as one line instead.
    """

    def __init__(self, enabled: bool, *, lines: bool = False) -> None:
        self.enabled = enabled
        self.lines = lines
        self._progress: RichProgress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last = ""

    def __enter__(self) -> _Display:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description:<20}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                console=console,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The bars stopped while something else talks to the terminal (a prompt)."""
        if self._progress is None:
            yield
            return
        self._progress.stop()
        try:
            yield
        finally:
            self._progress.start()

    def _task(self, key: str, label: str, total: int | None) -> TaskID:
        assert self._progress is not None
        task = self._tasks.get(key)
        if task is None:
            task = self._progress.add_task(label, total=total, amount="", note="")
            self._tasks[key] = task
        return task

    def __call__(self, step: str, done: int, total: int | None) -> None:
        """The Progress callback of the client library."""
        if self._progress is None:
            return
        task = self._task(step, _STEP_LABELS.get(step, step), total)
        if step in ("upload", "download"):
            amount = f"{done / 2**20:.1f}" + (f"/{total / 2**20:.1f} MiB" if total else " MiB")
        else:
            amount = f"{done}/{total}" if total is not None else str(done)
        self._progress.update(task, completed=done, total=total, amount=amount)

    def update(self, snap: JobSnapshot) -> None:
        """Show a job snapshot."""
        if self._progress is None:
            # A line when the job's state changed (the time left alone changes every poll).
            line = _status_line(snap)
            if self.lines and line != self._last:
                click.echo(_with_pace(line, snap))
            self._last = line
            return
        total = snap.tile_count * snap.replication
        for state, count in snap.progress().items():  # claimed .. settled
            task = self._task(f"state:{state}", f"tiles {state}", total)
            self._progress.update(task, completed=count, total=total, amount=f"{count}/{total}")
        status = self._task("state:line", f"job {snap.ref.job_id}", None)
        self._progress.update(status, note=_with_pace(_status_note(snap), snap))


def _with_pace(text: str, snap: JobSnapshot) -> str:
    """``text`` and, while the job renders, its pace and time left (client/pace.py)."""
    from blindframe.client.pace import format_pace
    from blindframe.client.snapshot import JobPhase

    if snap.phase != JobPhase.RENDERING:
        return text
    return f"{text}; {format_pace(snap.pace)}"


def _status_note(snap: JobSnapshot) -> str:
    from blindframe.client.snapshot import TileStatus

    failed = snap.tile_counts.get(TileStatus.FAILED, 0)
    contested = snap.tile_counts.get(TileStatus.CONTESTED, 0)
    parts: list[str] = [snap.phase]
    if failed:
        parts.append(f"{failed} failed")
    if contested:
        parts.append(f"{contested} contested")
    parts.append(f"paid {format_eth(int(snap.payments['paidToWorkers']))}")
    if snap.events:
        parts.append(f"last event {snap.events[-1].name}")
    return ", ".join(parts)


def _status_line(snap: JobSnapshot) -> str:
    total = snap.tile_count * snap.replication
    bars = " ".join(f"{state} {count}/{total}" for state, count in snap.progress().items())
    return f"job {snap.ref.job_id}: {bars} ({_status_note(snap)})"


@contextmanager
def _interruptible() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        console.print("stopped watching; the job goes on (`blindframe client watch` resumes)")
        raise click.exceptions.Exit(130) from None


# --------------------------------------------------------------------------------- commands


@client.command("keygen")
@click.option(
    "--kernel",
    "kernels",
    multiple=True,
    help="Kernel to make keys for (volume@1, shade@1, post@1; repeatable). Default volume@1.",
)
@click.option("--all", "all_kernels", is_flag=True, help="Keys for every kernel.")
@click.option(
    "--force", is_flag=True, help="Replace an existing key set (old jobs: undecryptable)."
)
@click.option("--upload", is_flag=True, help="Also add the evaluation keys to the IPFS node now.")
@_network
@click.pass_context
def keygen_command(
    ctx: click.Context,
    /,
    kernels: tuple[str, ...],
    all_kernels: bool,
    force: bool,
    upload: bool,
    **values: Any,
) -> None:
    """Generate FHE key sets (once per kernel) in <home>/keys, 0700/0600.

    The secret keys never leave that folder; only evaluation keys (public: render nodes compute
    with them) are uploaded, once per key set, and their CID is remembered beside the keys.
    An existing key set is kept (and reported) unless --force.
    """
    ids = (
        list(KERNEL_CHOICES) if all_kernels else [_kernel(k) or k for k in kernels] or ["volume@1"]
    )
    artist = _artist(ctx, **_overrides(values))
    out = []
    with _Display(_show_bars(ctx)) as bars:
        for kernel in ids:
            out.append(artist.keygen(kernel, force=force, upload=upload, progress=bars).to_json())

    def human(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            what = "generated" if row["created"] else "exists   "
            cid = (
                f", evaluation keys {row['evaluationKeysCid']}" if row["evaluationKeysCid"] else ""
            )
            size = row["evaluationKeysBytes"] / 2**20
            click.echo(
                f"{what} {row['kernel']:<9} {row['directory']} ({size:.1f} MiB eval keys{cid})"
            )

    emit(ctx, out, human)


@client.command("quote")
@_job_options
@_signer
@_network
@click.pass_context
def quote_command(ctx: click.Context, /, **values: Any) -> None:
    """What `post` with these options would cost and take; nothing is uploaded or sent.

    \b
    escrow  tiles x replication x reward, canary tiles included
    gas     postJob (estimated by the node) and the settle calls of a normal render (one per
            lease at worst), at the chain's current fee with the sender's margin
    upload  the encrypted inputs, the evaluation keys (unless the IPFS node pins them) and
            the manifest
    time    rendering at the pace the staked nodes advertise for the kernel (each lease is
            settled once every replica of its tiles verified, so an honest render waits no
            challenge window); "unknown" when too few advertise

    It makes the same checks as post (the account's balance included) and encrypts the scene
    to measure it, making the FHE keys when missing.
    """
    overrides = _overrides(values)
    scene, options = _build_options(values)
    artist = _artist(ctx, sign=True, **overrides)
    with _Display(_show_bars(ctx)) as bars:
        quote = artist.quote(scene, options, progress=bars)

    def human(_: dict[str, Any]) -> None:
        for line in quote.lines():
            click.echo(line)

    emit(ctx, quote.to_json(), human)


@client.command("post")
@_job_options
@_post_gate
@_signer
@_network
@click.pass_context
def post_command(
    ctx: click.Context, /, yes: bool, max_cost: str | None, allow_empty: bool, **values: Any
) -> None:
    """Encrypt a scene into tiles (canaries mixed in), upload it, and post the job with escrow.

    Everything is checked before the job is posted: options, the scene, the chain, the account's
    balance against escrow and gas, the IPFS node. Then the quote (`blindframe client quote`)
    is shown and, on a terminal, confirmed (--yes skips that; --max-cost caps it). Nothing is
    uploaded or posted when a check fails or the quote is declined.
    """
    overrides = _overrides(values)
    scene, options = _build_options(values)
    artist = _artist(ctx, sign=True, **overrides)
    with _Display(_show_bars(ctx)) as bars:
        confirm, limit = _gate(ctx, bars, yes, max_cost)
        posted = artist.post(
            scene,
            options,
            progress=bars,
            confirm=confirm,
            max_cost_wei=limit,
            allow_empty=allow_empty,
        )

    def human(data: dict[str, Any]) -> None:
        h, w = data["frame"]
        click.echo(f"posted    job {data['jobId']} ({data['key']})")
        click.echo(
            f"render    {data['kernel']} {w}x{h}, {data['tileCount']} tiles x "
            f"{data['replication']} replica(s), escrow {format_eth(int(data['escrow']))}"
        )
        click.echo(f"manifest  {data['manifestCid']}")
        click.echo(f"pins      {posted.fft_plan.describe()}")
        click.echo(f"deadline  in {format_duration(data['deadline'] - int(time.time()))}")
        click.echo(f"next      blindframe client watch {data['jobId']}")

    emit(ctx, posted.to_json(), human)


@client.command("status")
@_job_argument
@_network
@click.pass_context
def status_command(ctx: click.Context, /, job: str | None, **values: Any) -> None:
    """One snapshot of a job: tiles per state, leases, contests, escrow and payments.

    With --json: the whole snapshot (every tile, lease, contest, payment, recent events).
    """
    artist = _artist(ctx, **_overrides(values))
    snap = artist.snapshot(job)

    def human(_: dict[str, Any]) -> None:
        _print_snapshot(snap)

    emit(ctx, snap.to_json(), human)


def _print_snapshot(snap: JobSnapshot) -> None:
    click.echo(_with_pace(_status_line(snap), snap))
    pay = snap.payments
    click.echo(
        f"escrow    {format_eth(int(pay['escrowLeft']))} left of "
        f"{format_eth(int(pay['escrowPosted']))}; paid {format_eth(int(pay['paidToWorkers']))}; "
        f"refundable {format_eth(int(pay['refundable']))}"
    )
    for lease in snap.leases:
        tiles = f"{lease.first_tile}..{lease.first_tile + lease.count - 1}"
        verdict = f", verdict {lease.verdict}" if lease.verdict else ""
        click.echo(
            f"lease {lease.lease_id:<4} lane {lease.lane} tiles {tiles:<9} {lease.status:<9} "
            f"{lease.worker}{verdict}"
        )
    for contest in snap.contests:
        click.echo(
            f"contest {contest.contest_id} ({contest.kind}) tile {contest.tile}: "
            f"{contest.outcome}; {_jury_text(contest)}"
        )
    for challenge in snap.challenges:
        click.echo(
            f"availability challenge {challenge.challenge_id} on lease {challenge.lease_id} tile "
            f"{challenge.tile}: {challenge.status} (deadline {challenge.deadline})"
        )


def _jury_text(contest: ContestState) -> str:
    """A contest's jury in a few words: each seat's lease, worker, status and vote; the verdict."""
    from blindframe.client.snapshot import JurorVote

    if not contest.seats:
        return "jury not drawn yet" if contest.open else "no juror was drawn"
    seats = ", ".join(
        f"seat {s.seat} lease {s.lease_id} {s.worker} {s.status}"
        + (f" ({s.vote})" if s.vote not in (JurorVote.PENDING, JurorVote.ABSENT) else "")
        for s in contest.seats
    )
    verdict = f"verdict lease {contest.lease_t}" if contest.lease_t else "no verdict yet"
    if not contest.lease_t and contest.verdict_at:
        verdict = "no majority"
    return f"jury [{seats}], {verdict}"


@client.command("watch")
@_job_argument
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between polls."
)
@click.option("--timeout", help="Stop watching after this long (90s, 10m...).")
@_network
@click.pass_context
def watch_command(
    ctx: click.Context, /, job: str | None, interval: float, timeout: str | None, **values: Any
) -> None:
    """Follow a job live: progress bars of its tiles per state, until it is complete or expired.

    With --json: one JSON snapshot per line whenever something changed. Ctrl-C stops watching
    (the job goes on).
    """
    artist = _artist(ctx, **_overrides(values))
    limit = parse_duration(timeout, "--timeout") if timeout else None
    last: JobSnapshot | None = None
    seen = ""
    with _interruptible(), _Display(_show_bars(ctx), lines=not is_json(ctx)) as display:
        for snap in artist.watch(job, interval=max(interval, 0.1), timeout=limit):
            last = snap
            if is_json(ctx):
                document = snap.to_json()
                key = json.dumps(
                    {k: v for k, v in document.items() if k not in CLOCK_FIELDS}, sort_keys=True
                )
                if key != seen:
                    click.echo(json.dumps(document, sort_keys=True))
                    seen = key
            else:
                display.update(snap)
    if last is not None and not is_json(ctx):
        click.echo(f"job {last.ref.job_id}: {last.phase}")


@client.command("verify")
@_job_argument
@_fetch_timeout
@_network
@click.pass_context
def verify_command(
    ctx: click.Context, /, job: str | None, fetch_timeout: str, **values: Any
) -> None:
    """Check every revealed result: its bytes give the revealed root, and every tile decrypts
    to exactly what the plaintext twin computes (canaries included). Verdicts are kept."""
    artist = _artist(ctx, fetch_timeout=fetch_timeout, **_overrides(values))
    with _Display(_show_bars(ctx)) as bars:
        report = artist.verify(job, progress=bars)

    def human(data: dict[str, Any]) -> None:
        if not data["leases"]:
            click.echo("no lease of this job has revealed a result yet")
        for lease in data["leases"]:
            tiles = f"{lease['firstTile']}..{lease['firstTile'] + lease['count'] - 1}"
            line = f"lease {lease['leaseId']:<4} tiles {tiles:<9} {lease['status']}"
            if lease["reason"]:
                line += f": {lease['reason']}"
            click.echo(line)
            for tile, why in lease["reasons"].items():
                click.echo(f"  tile {tile}: {why}")
        if data["wrongTiles"]:
            click.echo(f"dispute them: blindframe client dispute ({len(data['wrongTiles'])} tiles)")

    emit(ctx, report.to_json(), human)


@client.command("settle")
@_job_argument
@_signer
@_network
@click.pass_context
def settle_command(ctx: click.Context, /, job: str | None, **values: Any) -> None:
    """Pay the render nodes for leases whose every tile verified (after verifying what is new).

    A lease is paid once the chain counts it verified (its challenge window over), or at once
    when every replica of its tiles verified: the market allows that early accept."""
    artist = _artist(ctx, sign=True, **_overrides(values))
    with _Display(_show_bars(ctx)) as bars:
        report = artist.settle(job, progress=bars)

    def human(data: dict[str, Any]) -> None:
        if data["settled"]:
            click.echo(
                f"settled leases {data['settled']}: {format_eth(int(data['paid']))} credited"
            )
        else:
            click.echo("nothing to settle now")
        for row in data["waiting"]:
            click.echo(f"lease {row['leaseId']} waits: {row['reason']}")

    emit(ctx, report.to_json(), human)


def _frame_output_options(func: F) -> F:
    """-o, --format, --twin and --scale: the frame file `fetch` and `render` write."""
    for option in reversed(
        [
            click.option(
                "-o",
                "--output",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Frame file to write: .png (8-bit unless --format png16) or .exr.",
            ),
            click.option(
                "--format",
                "frame_format",
                metavar="png8|png16|exr",
                help="png8: 8-bit RGB PNG; png16: 16-bit PNG, v*65535/out_max exactly; exr: "
                "OpenEXR, 32-bit float RGB, scene-linear (v/out_max sRGB-decoded). Default: "
                "from -o's extension. Without -o: the job directory's frame16.png or frame.exr.",
            ),
            click.option(
                "--twin",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Also write the plaintext twin's frame (what the frame must equal) here.",
            ),
            click.option(
                "--scale",
                type=click.IntRange(1, 64),
                default=1,
                show_default=True,
                help="Upscale each pixel to SCALE x SCALE (nearest neighbour).",
            ),
        ]
    ):
        func = option(func)
    return func


@client.command("fetch")
@_job_argument
@_frame_output_options
@_network
@click.pass_context
def fetch_command(
    ctx: click.Context,
    /,
    job: str | None,
    output: Path | None,
    twin: Path | None,
    scale: int,
    frame_format: str | None,
    **values: Any,
) -> None:
    """Decrypt the frame from verified results and write it (also `decrypt`).

    -o frame.png writes an 8-bit PNG, -o frame.exr an OpenEXR (linear float), and
    --format png16 a 16-bit PNG (see --format). The job directory keeps frame.png and
    frame.npy (the integers); every tile is checked against the plaintext twin once more
    while decrypting.
    """
    frame_format_of(output, frame_format)  # a bad name fails before the chain is asked
    artist = _artist(ctx, **_overrides(values))
    with _Display(_show_bars(ctx)) as bars:
        result = artist.decrypt(
            job,
            output=output,
            twin=twin or False,
            scale=scale,
            progress=bars,
            frame_format=frame_format,
        )

    def human(data: dict[str, Any]) -> None:
        shape = "x".join(map(str, data["shape"]))
        click.echo(f"frame     {data['image']} ({shape}, {data['format']})")
        _animation_lines(data)
        if data["twinPng"]:
            same = "equal" if data["matchesTwin"] else "DIFFERENT"
            click.echo(f"twin      {data['twinPng']} ({same})")
        if data["emptyFrame"]:
            from blindframe.client.reports import EMPTY_FRAME

            click.echo(f"warning   {EMPTY_FRAME}")

    emit(ctx, result.to_json(), human)


client.add_command(fetch_command, "decrypt")


@client.command("dispute")
@_job_argument
@click.option("--tile", type=int, help="Dispute this tile (default: every tile that failed).")
@click.option("--lease", type=int, help="The lease of --tile to dispute (default: its replica).")
@_signer
@_network
@click.pass_context
def dispute_command(
    ctx: click.Context, /, job: str | None, tile: int | None, lease: int | None, **values: Any
) -> None:
    """Dispute tiles whose results failed verification, posting the market's bond per tile.

    A jury of render nodes, drawn at random by stake (the client draws it once the next block
    is mined), recomputes the tile; if the disputed result is far from the jury's verdict, its
    node is slashed and the bond comes back, else the bond pays the node and the jurors. Results
    that never came are challenged for availability instead (`blindframe client challenge`).
    """
    if lease is not None and tile is None:
        raise JobOptionsError("--lease needs --tile")
    artist = _artist(ctx, sign=True, **_overrides(values))
    records = artist.dispute(job, tile=tile, lease=lease)

    def human(rows: list[dict[str, Any]]) -> None:
        if not rows:
            click.echo("nothing to dispute: every verified tile matched the plaintext twin")
        for row in rows:
            click.echo(
                f"disputed tile {row['tile']} of lease {row['leaseId']}: contest "
                f"{row['contestId']}, bond {format_eth(int(row['bond']))}"
            )

    emit(ctx, [r.to_json() for r in records], human)


@client.command("challenge")
@_job_argument
@_fetch_timeout
@_signer
@_network
@click.pass_context
def challenge_command(
    ctx: click.Context, /, job: str | None, fetch_timeout: str, **values: Any
) -> None:
    """Challenge the availability of results that could not be fetched, posting the bond each.

    Each such lease's node must open a few leaves of a tile on chain in time (its gas comes out
    of the bond, the rest back); unanswered, the challenge is resolved here on a later run: the
    lease is forfeited (none of its tiles paid, its node slashed) and the bond comes back with a
    share of the slash. Verifies what is new first.
    """
    artist = _artist(ctx, sign=True, fetch_timeout=fetch_timeout, **_overrides(values))
    with _Display(_show_bars(ctx)) as bars:
        artist.verify(job, progress=bars)
    records = artist.challenge_availability(job)
    resolved = artist.resolve_availability(job)

    def human(data: dict[str, Any]) -> None:
        if not data["challenged"] and not data["resolved"]:
            click.echo("nothing to challenge: every revealed result was fetched")
        for row in data["challenged"]:
            click.echo(
                f"challenged lease {row['leaseId']} tile {row['tile']}: challenge "
                f"{row['challengeId']}, bond {format_eth(int(row['bond']))}"
            )
        for challenge in data["resolved"]:
            click.echo(f"challenge {challenge} went unanswered: its lease is forfeited")

    emit(ctx, {"challenged": [r.to_json() for r in records], "resolved": resolved}, human)


@client.command("cancel")
@_job_argument
@click.option("--no-withdraw", is_flag=True, help="Credit the refund but leave it in the market.")
@_signer
@_network
@click.pass_context
def cancel_command(
    ctx: click.Context, /, job: str | None, no_withdraw: bool, **values: Any
) -> None:
    """Stop a job before its deadline and take back the escrow of tiles nobody holds.

    Render nodes can no longer claim its tiles. Leases already claimed go on: verify and
    settle them as usual (or they are finalized), and what they free when they fail comes
    back with `blindframe client refund` at once, without waiting for the deadline.
    """
    artist = _artist(ctx, sign=True, **_overrides(values))
    report = artist.cancel(job, withdraw=not no_withdraw)

    def human(data: dict[str, Any]) -> None:
        click.echo(
            f"cancelled; refunded {format_eth(int(data['refunded']))}, "
            f"withdrawn {format_eth(int(data['withdrawn']))}"
        )
        if data["heldSlots"]:
            click.echo(
                f"still held {data['heldSlots']} tile-slot(s) in live leases "
                f"({format_eth(int(data['heldEscrow']))}): paid when they deliver, refundable "
                "when they fail"
            )

    emit(ctx, report.to_json(), human)


@client.command("refund")
@_job_argument
@click.option("--no-withdraw", is_flag=True, help="Credit the refund but leave it in the market.")
@_signer
@_network
@click.pass_context
def refund_command(
    ctx: click.Context, /, job: str | None, no_withdraw: bool, **values: Any
) -> None:
    """Take back the escrow of tiles nobody delivered, and withdraw it.

    After the deadline, or at any time once the job was cancelled (`blindframe client
    cancel`); leases in flight keep their tiles' escrow until they end.
    """
    artist = _artist(ctx, sign=True, **_overrides(values))
    report = artist.refund(job, withdraw=not no_withdraw)

    def human(data: dict[str, Any]) -> None:
        click.echo(
            f"refunded  {format_eth(int(data['refunded']))}; "
            f"withdrawn {format_eth(int(data['withdrawn']))}"
        )

    emit(ctx, report.to_json(), human)


@client.command("retry")
@_job_argument
@click.option("--reward", help="ETH per tile-replica (default: the failed job's reward).")
@click.option("--deadline", help="Time from now until the follow-up closes (default: as posted).")
@click.option("--dry-run", is_flag=True, help="Show the follow-up's quote; post nothing.")
@click.option("--yes", is_flag=True, help="Post without asking to confirm the quote.")
@_signer
@_network
@click.pass_context
def retry_command(
    ctx: click.Context,
    /,
    job: str | None,
    reward: str | None,
    deadline: str | None,
    dry_run: bool,
    yes: bool,
    **values: Any,
) -> None:
    """Post the tiles a job ended without a verified result for again, as a follow-up job.

    Tiles whose lease was reclaimed (its node died or missed a deadline), forfeited (its
    result was withheld) or lost a contest, and tiles nobody claimed in time. The follow-up
    reuses the job's uploaded inputs and evaluation keys (only a new manifest is uploaded) and
    its market terms; the job's unfinished escrow is refunded first. JOB may name any attempt
    at the frame: the latest is retried once it ended (its deadline passed or it was cancelled,
    with no lease in flight). `blindframe client fetch` then assembles the frame from every
    attempt. Render nodes that failed a tile of an earlier attempt keep out of the follow-up.
    On a terminal the quote is confirmed first (--yes skips; --json never asks).
    """
    reward_wei = parse_eth(reward, "--reward") if reward is not None else None
    seconds = parse_duration(deadline, "--deadline") if deadline is not None else None
    overrides = _overrides(values)
    _artist(ctx, **overrides).job_dir(job)  # an unknown job is said before a password is asked
    artist = _artist(ctx, sign=True, **overrides)
    if not (dry_run or yes or is_json(ctx)):
        quoted = artist.retry(job, reward_wei=reward_wei, deadline=seconds, dry_run=True)
        if not sys.stdin.isatty():
            raise ConfirmationError(
                f"retrying asks to confirm its quote ({format_eth(quoted.quote.total_wei)}), "
                "and there is no terminal to ask on: nothing was posted",
                hint="pass --yes, or --json",
            )
        for line in quoted.quote.lines():
            console.print(line)
        if not click.confirm("Post this follow-up job?", default=False, err=True):
            raise ConfirmationError("the follow-up job was not confirmed: nothing was posted")
    report = artist.retry(job, reward_wei=reward_wei, deadline=seconds, dry_run=dry_run)

    def human(data: dict[str, Any]) -> None:
        posted = data["job"]
        tiles = f"{data['tileCount']} tile(s) of job {data['parent']['jobId']}"
        if posted is None:
            click.echo(f"would retry {tiles} (dry run: nothing posted)")
        else:
            click.echo(f"retried   {tiles} as job {posted['jobId']} ({posted['key']})")
        if int(data["refunded"]):
            click.echo(f"refunded  {format_eth(int(data['refunded']))} of the failed job")
        for line in report.quote.lines():
            click.echo(line)

    emit(ctx, report.to_json(), human)


@client.command("withdraw")
@_signer
@_network
@click.pass_context
def withdraw_command(ctx: click.Context, /, **values: Any) -> None:
    """Send the account's pending balance (refunds, returned bonds, compensation) to it."""
    artist = _artist(ctx, sign=True, **_overrides(values))
    amount = artist.withdraw()
    emit(
        ctx,
        {"withdrawn": str(amount)},
        lambda d: click.echo(f"withdrawn {format_eth(int(d['withdrawn']))}"),
    )


@client.command("render")
@_job_options
@_post_gate
@_frame_output_options
@click.option("--timeout", help="Give up waiting after this long (the job keeps running).")
@click.option("--no-dispute", is_flag=True, help="Stop on a wrong tile instead of disputing it.")
@click.option(
    "--retries",
    type=int,
    # Literal here: client.options (DEFAULT_RETRIES, MAX_RETRIES) loads web3, which `client
    # --help` should not wait for; tests/client/test_client_retry.py ties the two together.
    help="Follow-up jobs (0..10, default 1) of the tiles a job ends without a verified result "
    "for (a node died, a result was withheld or lost its contest); each reuses the uploaded "
    "inputs and keys.",
)
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between polls."
)
@_fetch_timeout
@_signer
@_network
@click.pass_context
def render_command(
    ctx: click.Context,
    /,
    output: Path | None,
    twin: Path | None,
    scale: int,
    frame_format: str | None,
    timeout: str | None,
    no_dispute: bool,
    retries: int | None,
    interval: float,
    fetch_timeout: str,
    yes: bool,
    max_cost: str | None,
    allow_empty: bool,
    **values: Any,
) -> None:
    """All in one: post, watch the render nodes, verify, settle, decrypt to PNG or EXR.

    The quote is shown first and, on a terminal, confirmed (as for `post`: --yes, --max-cost).
    While the job renders, the progress shows tile-replicas verified per minute and the time
    left (from the job's own pace; before the first tile, from the quote).

    Wrong tiles are disputed on chain (bond per tile); a jury drawn from the staked render
    nodes decides. Results that cannot be fetched are challenged for availability (bond per
    lease) and never paid unless their node opens the asked leaves on chain in time. A job
    that ends with tiles unfinished (reclaimed, forfeited, a lost contest) has its unfinished
    escrow refunded and those tiles posted again as a follow-up job, up to --retries times
    (`blindframe client retry` does it by hand); the frame assembles every attempt. With no
    retry left, the command fails.
    """
    from blindframe.client.options import DEFAULT_RETRIES, check_retries

    retries = DEFAULT_RETRIES if retries is None else retries
    check_retries(retries)
    frame_format_of(output, frame_format)  # before anything is posted or paid for
    overrides = _overrides(values)
    scene, options = _build_options(values)
    artist = _artist(ctx, sign=True, fetch_timeout=fetch_timeout, **overrides)
    limit = parse_duration(timeout, "--timeout") if timeout else None
    with _interruptible(), _Display(_show_bars(ctx), lines=not is_json(ctx)) as display:
        confirm, cost_limit = _gate(ctx, display, yes, max_cost)

        def posted(job: Any) -> None:
            if not is_json(ctx):
                console.print(
                    f"posted job {job.ref.job_id} ({job.tile_count} tiles, pinning "
                    f"{job.fft_plan.describe()}); rendering…"
                )

        def retried(report: RetryReport) -> None:
            if not is_json(ctx) and report.posted is not None:
                console.print(
                    f"job {report.parent.job_id} ended with {len(report.tasks)} tile(s) "
                    f"unfinished; posted them again as job {report.posted.ref.job_id} "
                    f"({format_eth(report.quote.total_wei)})"
                )

        result = artist.render(
            scene,
            options,
            output=output,
            twin=twin or False,
            scale=scale,
            frame_format=frame_format,
            interval=max(interval, 0.1),
            timeout=limit,
            dispute=not no_dispute,
            retries=retries,
            on_retry=retried,
            progress=display,
            on_posted=posted,
            on_snapshot=display.update,
            confirm=confirm,
            max_cost_wei=cost_limit,
            allow_empty=allow_empty,
        )
    emit(ctx, result.to_json(), lambda data: _render_human(data, result.snapshot))


def _animation_lines(frame: dict[str, Any]) -> None:
    """An animation's sequence and preview (DecryptResult JSON), for people."""
    if frame.get("frames"):
        click.echo(f"frames    {len(frame['frames'])}: {frame['frames'][0]} ...")
        click.echo(f"preview   {frame['preview']} (animated PNG)")
        if frame["emptyFrames"]:
            click.echo(f"warning   frames {frame['emptyFrames']} are all background")


def _render_human(data: dict[str, Any], snapshot: JobSnapshot) -> None:
    """`client render`'s summary for people: the frame, payments, contests and retries."""
    job, frame = data["job"], data["frame"]
    click.echo(f"job       {job['jobId']} ({job['key']})")
    click.echo(f"frame     {frame['image']} ({frame['format']})")
    _animation_lines(frame)
    if frame["twinPng"]:
        click.echo(
            f"twin      {frame['twinPng']} ({'equal' if frame['matchesTwin'] else 'DIFFERENT'})"
        )
    if frame["emptyFrame"]:
        from blindframe.client.reports import EMPTY_FRAME

        click.echo(f"warning   {EMPTY_FRAME}")
    click.echo(f"paid      {format_eth(int(data['payments']['paidToWorkers']))}")
    for row in data["disputes"]:
        click.echo(f"disputed  tile {row['tile']} of lease {row['leaseId']}: {row['reason']}")
    for contest in snapshot.contests:
        click.echo(
            f"contest   {contest.contest_id} tile {contest.tile}: {contest.outcome}; "
            + _jury_text(contest)
        )
    for row in data["challenges"]:
        click.echo(
            f"challenge lease {row['leaseId']} tile {row['tile']} (not delivered: {row['reason']})"
        )
    for row in data["followUps"]:
        click.echo(
            f"retried   {row['tileCount']} tile(s) of job {row['parent']['jobId']} as job "
            f"{row['job']['jobId']}"
        )
    click.echo(f"took      {data['seconds']:.1f} s")


@client.command("jobs")
@click.option("--local", is_flag=True, help="Do not read the chain (no phase column).")
@_network
@click.pass_context
def jobs_command(ctx: click.Context, /, local: bool, **values: Any) -> None:
    """List the jobs posted from this home (their directories), with their state on chain."""
    artist = _artist(ctx, **_overrides(values))
    rows = [job.to_json() for job in artist.jobs(with_status=not local)]
    stale = next((row["chainError"] for row in rows if row["chainError"]), None)
    if stale is not None:
        # On stderr, so --json output stays one document; the rows carry it too (chainError).
        click.echo(
            f"Warning: chain unreachable, showing each job's last known state: {stale}",
            err=True,
        )
    now = int(time.time())

    def human(data: list[dict[str, Any]]) -> None:
        if not data:
            click.echo("no jobs yet (post one: blindframe client post --scene sample)")
        for row in data:
            frame = "x".join(map(str, reversed(row["frame"] or [])))
            phase = row["phase"] or ("pending" if row["pending"] else "-")
            if row["chainError"] and row["phase"]:
                phase += f" (as of {format_duration(max(1, now - row['statusAt']))} ago)"
            elif row["chainError"] and not row["pending"]:
                phase = "unknown (chain unreachable)"
            done = " decrypted" if row["decrypted"] else ""
            click.echo(
                f"{row['jobId'] if row['jobId'] is not None else '?':<5} {row['kernel'] or '?':<9} "
                f"{frame:<9} {row['tileCount'] or '?':>5} tiles  {phase}{done}  {row['key']}"
            )

    emit(ctx, rows, human)
