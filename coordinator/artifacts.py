"""Compiled contract artifacts: the project's Solidity compiled by py-solc-x through solcjs.

Forge and this module use the same compiler (``deploy/bin/solc``) and the same settings, read from
``foundry.toml``, so the bytecode deployed from Python is the bytecode the Forge tests exercised.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindframe.coordinator.errors import CoordinatorError

__all__ = ["Artifact", "abi_hash", "compile_contracts", "project_root"]

_SOURCES = "contracts/src"
_CACHE = "contracts/cache/py-solc-x"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str

    @property
    def abi_hash(self) -> str:
        """keccak-free content hash of the ABI (sha256 of its canonical JSON), 0x-prefixed."""
        return abi_hash(self.abi)


def abi_hash(abi: list[dict[str, Any]]) -> str:
    """sha256 over the ABI's canonical JSON (sorted keys, no spaces, entries sorted)."""
    entries = sorted(json.dumps(entry, sort_keys=True, separators=(",", ":")) for entry in abi)
    return "0x" + hashlib.sha256(("[" + ",".join(entries) + "]").encode()).hexdigest()


def project_root() -> Path:
    """The checkout that holds ``contracts/`` (the parent of the ``blindframe`` package folder)."""
    override = os.environ.get("BLINDFRAME_PROJECT_ROOT")
    root = Path(override) if override else Path(__file__).resolve().parent.parent
    if not (root / _SOURCES).is_dir():
        raise CoordinatorError(
            f"no Solidity sources under {root / _SOURCES}",
            hint="run from a blindframe checkout or set BLINDFRAME_PROJECT_ROOT",
        )
    return root


def _compiler_settings(root: Path) -> tuple[dict[str, Any], list[str]]:
    profile = tomllib.loads((root / "foundry.toml").read_text(encoding="utf-8"))["profile"][
        "default"
    ]
    settings: dict[str, Any] = {
        "optimizer": {
            "enabled": bool(profile.get("optimizer", True)),
            "runs": int(profile.get("optimizer_runs", 200)),
        },
        "evmVersion": profile.get("evm_version", "cancun"),
        "viaIR": bool(profile.get("via_ir", False)),
        "metadata": {"bytecodeHash": profile.get("bytecode_hash", "ipfs")},
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }
    return settings, list(profile.get("remappings", []))


def compile_contracts(root: Path | None = None) -> dict[str, Artifact]:
    """Every contract under ``contracts/src`` by name, compiled (or taken from the cache)."""
    root = project_root() if root is None else root
    settings, remappings = _compiler_settings(root)
    sources = sorted((root / _SOURCES).rglob("*.sol"))
    if not sources:
        raise CoordinatorError(f"no .sol files under {root / _SOURCES}")
    digest = hashlib.sha256(json.dumps([settings, remappings]).encode())
    for path in sources:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    cache_file = root / _CACHE / f"{digest.hexdigest()[:32]}.json"
    if cache_file.is_file():
        output = json.loads(cache_file.read_text(encoding="utf-8"))
    else:
        output = _run_solc(root, sources, settings, remappings)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Several processes may compile at once (pytest's workers): each writes its own file.
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(output), encoding="utf-8")
        tmp.replace(cache_file)
    artifacts: dict[str, Artifact] = {}
    for source, contracts in output.items():
        if not source.startswith(_SOURCES):
            continue
        for name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            artifacts[name] = Artifact(name=name, source=source, abi=data["abi"], bytecode=bytecode)
    return artifacts


def _run_solc(
    root: Path, sources: list[Path], settings: dict[str, Any], remappings: list[str]
) -> dict[str, Any]:
    import solcx
    from solcx.exceptions import SolcError

    standard_input = {
        "language": "Solidity",
        "sources": {
            str(p.relative_to(root)): {"content": p.read_text(encoding="utf-8")} for p in sources
        },
        "settings": {**settings, "remappings": remappings},
    }
    try:
        result = solcx.compile_standard(
            standard_input,
            solc_binary=root / "deploy" / "bin" / "solc",
            base_path=root,
            allow_paths=[root],
        )
    except SolcError as exc:
        raise CoordinatorError(
            f"the Solidity compiler failed: {str(exc).splitlines()[0]}",
            hint="run `make forge` to see the full compiler output",
        ) from None
    except FileNotFoundError:
        raise CoordinatorError(
            "node or the solcjs wrapper is missing", hint="run `make bootstrap` to install them"
        ) from None
    contracts: dict[str, Any] = result.get("contracts", {})
    return contracts
