"""The `blindframe` command: a root group that imports each side's commands only when used."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from blindframe.errors import BlindframeError

__all__ = ["main"]

# name -> (module, attribute, one-line help). Modules are imported on use, so `blindframe --help`
# does not pay for concrete, torch or web3.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "stack": ("blindframe.deploy._cli", "stack", "Start and stop the local stack (Anvil, IPFS)."),
    "deploy": ("blindframe.deploy._cli", "deploy", "Deploy the contracts to an EVM chain."),
    "account": ("blindframe.coordinator._cli", "account", "Encrypted account keystores."),
    "worker": ("blindframe.worker._cli", "worker", "Run and manage a render node."),
    "client": ("blindframe.client._cli", "client", "Encrypt, post, watch, verify, decrypt."),
    "demo": ("blindframe._demo", "demo", "The whole product locally: stack, nodes, a render."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attribute, _ = spec
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.startswith("blindframe"):
                return None
            raise
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="blindframe")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="BLINDFRAME_CONFIG",
    help="Config file (TOML). Default: ./blindframe.toml if present, else the user config dir.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """blindframe: render encrypted 3D scenes on a decentralized market.

    Artists encrypt scenes with FHE and post render jobs with escrow; render nodes stake, claim
    tiles, compute on ciphertexts they cannot read, and prove their work on chain; the artist
    verifies, pays and decrypts locally.

    \b
    Everything lives under the blindframe home: BLINDFRAME_HOME, else the config's `home`,
    else the user data dir (~/.local/share/blindframe). Every config key has a variable
    BLINDFRAME_<KEY> (RPC_URL, IPFS_API, ACCOUNT, PASSWORD_FILE, ...); the command line wins.
    Start here: `blindframe demo`, or `blindframe stack up` and `blindframe client --help`.
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["json"] = as_json


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; a BlindframeError becomes one line on stderr and exit status 1."""
    try:
        return cli.main(args=argv, prog_name="blindframe", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BlindframeError as exc:
        if "--json" in (argv if argv is not None else sys.argv[1:]):
            click.echo(json.dumps(exc.as_dict()))
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
