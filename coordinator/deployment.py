"""The deployment file (chain id, addresses, ABI hashes, deploy block) and contract bindings.

A deployment file is what `blindframe stack up` and `blindframe deploy` write and what every other
command reads to find the contracts. Binding checks it against the chain it is used with (chain id,
code at the address) and against this checkout's compiled ABI (ABI hash), so a client never talks
to a contract its code was not written for.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eth_utils.address import is_checksum_address, to_checksum_address

from blindframe.coordinator.artifacts import Artifact, compile_contracts
from blindframe.coordinator.errors import DeploymentError

if TYPE_CHECKING:
    from eth_typing import ABI
    from web3 import Web3
    from web3.contract.contract import Contract

__all__ = ["FORMAT", "ContractRecord", "Deployment", "bind"]

FORMAT = "blindframe-deployment/1"


@dataclass(frozen=True)
class ContractRecord:
    """One deployed contract."""

    address: str
    abi_hash: str


@dataclass(frozen=True)
class Deployment:
    """Where the contracts of one network live."""

    chain_id: int
    deploy_block: int
    deployer: str
    contracts: dict[str, ContractRecord]
    parameters: dict[str, int] = field(default_factory=dict)
    rpc_url: str | None = None
    deployed_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    def address(self, name: str) -> str:
        """The address of contract ``name``."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise DeploymentError(
                f"the deployment has no contract {name!r} (it has {', '.join(self.contracts)})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written to disk."""
        data = asdict(self)
        return {
            "format": FORMAT,
            "chainId": data["chain_id"],
            "deployBlock": data["deploy_block"],
            "deployer": data["deployer"],
            "deployedAt": data["deployed_at"],
            "rpcUrl": data["rpc_url"],
            "contracts": {
                name: {"address": rec["address"], "abiHash": rec["abi_hash"]}
                for name, rec in data["contracts"].items()
            },
            "parameters": data["parameters"],
        }

    def save(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read and validate a deployment file."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DeploymentError(
                f"no deployment file at {path}",
                hint="start a local stack with `blindframe stack up`, deploy with "
                "`blindframe deploy`, or point --deployment / BLINDFRAME_DEPLOYMENT at one",
            ) from None
        except (OSError, ValueError) as exc:
            raise DeploymentError(f"deployment file {path} is not readable JSON: {exc}") from None
        return cls.from_dict(document, origin=str(path))

    @classmethod
    def from_dict(cls, document: Any, *, origin: str = "deployment") -> Deployment:
        """Validate a parsed deployment document."""

        def bad(what: str) -> DeploymentError:
            return DeploymentError(f"{origin}: {what}", hint="rewrite it with `blindframe deploy`")

        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise bad(f"not a {FORMAT} document")
        try:
            chain_id = int(document["chainId"])
            deploy_block = int(document["deployBlock"])
            deployer = str(document["deployer"])
            raw_contracts = document["contracts"]
            parameters = {str(k): int(v) for k, v in dict(document.get("parameters", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"missing or malformed field ({exc})") from None
        if not isinstance(raw_contracts, dict) or not raw_contracts:
            raise bad("no contracts listed")
        contracts = {}
        for name, rec in raw_contracts.items():
            address = rec.get("address") if isinstance(rec, dict) else None
            abi = rec.get("abiHash") if isinstance(rec, dict) else None
            if not isinstance(address, str) or not is_checksum_address(address):
                raise bad(f"contract {name!r} has no valid checksummed address")
            if not isinstance(abi, str) or not abi.startswith("0x"):
                raise bad(f"contract {name!r} has no ABI hash")
            contracts[str(name)] = ContractRecord(address=address, abi_hash=abi)
        return cls(
            chain_id=chain_id,
            deploy_block=deploy_block,
            deployer=deployer,
            contracts=contracts,
            parameters=parameters,
            rpc_url=document.get("rpcUrl"),
            deployed_at=str(document.get("deployedAt", "")),
        )


def bind(
    w3: Web3, deployment: Deployment, name: str, artifacts: dict[str, Artifact] | None = None
) -> Contract:
    """A web3 contract for ``name``, after checking chain id, ABI hash and code at the address."""
    chain_id = int(w3.eth.chain_id)
    if chain_id != deployment.chain_id:
        raise DeploymentError(
            f"the deployment is for chain {deployment.chain_id}, the RPC serves chain {chain_id}",
            hint="use the deployment file of this network, or the RPC of the deployment's network",
        )
    artifacts = compile_contracts() if artifacts is None else artifacts
    if name not in artifacts:
        raise DeploymentError(f"this checkout has no contract {name!r}")
    artifact = artifacts[name]
    record = deployment.contracts.get(name)
    if record is None:
        raise DeploymentError(f"the deployment has no contract {name!r}")
    if record.abi_hash != artifact.abi_hash:
        raise DeploymentError(
            f"{name} at {record.address} was deployed from other sources than this checkout's "
            f"(ABI hash {record.abi_hash[:10]}…, here {artifact.abi_hash[:10]}…)",
            hint="update blindframe to the deployment's version, or redeploy",
        )
    address = to_checksum_address(record.address)
    if not w3.eth.get_code(address):
        raise DeploymentError(
            f"no contract code at {record.address} on chain {chain_id}",
            hint="the chain was reset since the deployment: redeploy (`blindframe stack up` does)",
        )
    return w3.eth.contract(address=address, abi=cast("ABI", artifact.abi))
