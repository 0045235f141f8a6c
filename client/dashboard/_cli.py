"""`blindframe client dashboard`: serve the live dashboard of this home's jobs on loopback."""

from __future__ import annotations

import signal
import sys
import webbrowser
from typing import Any

import click

from blindframe.coordinator.cli_support import (
    IPFS_API_HELP,
    RPC_HELP,
    console,
    emit,
    home_option,
    ipfs_api_option,
    is_json,
    settings,
)

__all__ = ["dashboard"]


@click.command("dashboard")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on (127.0.0.1 or ::1; any other address is refused).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port to listen on (0: a free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 60),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes of a watched job.",
)
@click.option("--rpc", "rpc_url", help=RPC_HELP)
@ipfs_api_option(IPFS_API_HELP)
@click.option(
    "--deployment",
    type=click.Path(dir_okay=False),
    help="Deployment file (default <home>/deployment.json).",
)
@home_option
@click.pass_context
def dashboard(
    ctx: click.Context,
    /,
    host: str,
    port: int,
    open_browser: bool,
    interval: float,
    **values: Any,
) -> None:
    """Watch your jobs live in the browser: tiles by state and the node holding each, escrow
    and payments, chain events as they arrive, and the frame once decrypted on this machine.

    \b
    The page is served on 127.0.0.1 only, under a random token printed here (other users
    and web pages cannot read it), with a strict Content-Security-Policy: it loads nothing
    from elsewhere and sends nothing anywhere. Ctrl-C stops it.
    """
    from blindframe.client.artist import Artist
    from blindframe.client.dashboard.server import DashboardServer

    cfg = settings(ctx, **{k: v for k, v in values.items() if v is not None})
    with Artist(cfg) as artist:
        server = DashboardServer(artist, host=host, port=port, interval=interval)
        emit(ctx, {"url": server.url, "home": str(cfg.home)}, lambda d: click.echo(d["url"]))
        sys.stdout.flush()
        if not is_json(ctx):
            console.print(f"serving the jobs of {cfg.home} on loopback; Ctrl-C stops")
        if open_browser:
            webbrowser.open(server.url)
        # A parent that ignores SIGINT (Blender, nohup, a test runner) hands that on to its
        # children, and Python then never raises KeyboardInterrupt: Ctrl-C and SIGTERM must
        # still stop the server.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
