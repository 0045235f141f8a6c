"""Deploying RenderMarket to any EVM chain and writing the deployment file.

The market is two contracts: ``MarketFaults`` (the unhappy paths) is deployed first with the
parameters, then ``RenderMarket`` with the same parameters and MarketFaults' address, which its
constructor checks (``paramsHash``). Created inside RenderMarket's constructor, MarketFaults'
creation code would push RenderMarket's initcode past EIP-3860's 49,152 bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindframe.coordinator.artifacts import Artifact, compile_contracts, project_root
from blindframe.coordinator.deployment import ContractRecord, Deployment
from blindframe.deploy.errors import DeployError

if TYPE_CHECKING:
    from blindframe.coordinator.tx import TxSender

__all__ = ["FAULTS", "LOCAL_OVERRIDES", "MARKET", "deploy_market", "market_parameters"]

MARKET = "RenderMarket"
FAULTS = "MarketFaults"
_DEFAULTS = "contracts/params.defaults.json"

# The local stack (and its demo) runs in wall-clock time: windows of hours would make a render
# wait for hours. These shorten every window and lower the stakes; deadlines stay enforced.
LOCAL_OVERRIDES: dict[str, int] = {
    "minStake": 10**17,
    "unbondingDelay": 60,
    "maxLeaseLength": 3600,
    "revealWindow": 120,
    # Long enough for a node to fetch a replica's result, rebuild its trees and prove a
    # disagreement (about 0.3 s per tile), and for a client to verify before finalization.
    "challengeWindow": 60,
    "acceptanceWindow": 120,
    "tieBreakWindow": 120,
    # One juror per contest: a local stack rarely stakes more than a few nodes (tests that need
    # a jury of several override it).
    "jurySize": 1,
}


def _constructor_fields(artifact: Artifact) -> list[dict[str, Any]]:
    """The fields of the Params tuple, the constructor's first argument."""
    for item in artifact.abi:
        if item.get("type") == "constructor":
            inputs = item.get("inputs", [])
            if inputs and inputs[0].get("type") == "tuple":
                return list(inputs[0]["components"])
    raise DeployError(f"{artifact.name} has no constructor(Params, ...) in its ABI")


def market_parameters(
    overrides: dict[str, int] | None = None, *, defaults_file: Path | None = None
) -> dict[str, int]:
    """The defaults of ``contracts/params.defaults.json`` with ``overrides`` applied, checked."""
    path = defaults_file or project_root() / _DEFAULTS
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"cannot read the default parameters {path}: {exc}") from None
    params = {k: int(v) for k, v in document.items() if not k.startswith("_")}
    for key, value in (overrides or {}).items():
        if key not in params:
            raise DeployError(
                f"unknown market parameter {key!r}", hint=f"known: {', '.join(sorted(params))}"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DeployError(f"market parameter {key} must be a whole number ≥ 0 (not {value!r})")
        params[key] = value
    return params


def deploy_market(
    sender: TxSender,
    parameters: dict[str, int],
    *,
    rpc_url: str | None = None,
    artifacts: dict[str, Artifact] | None = None,
) -> Deployment:
    """Deploy MarketFaults, then RenderMarket, with ``parameters`` (two transactions); returns
    the deployment (not yet saved)."""
    artifacts = compile_contracts() if artifacts is None else artifacts
    market = artifacts[MARKET]
    faults = artifacts[FAULTS]
    fields = _constructor_fields(market)
    names = [f["name"] for f in fields]
    missing = [n for n in names if n not in parameters]
    extra = [n for n in parameters if n not in names]
    if missing or extra:
        raise DeployError(
            f"the parameters do not match RenderMarket's constructor "
            f"(missing: {', '.join(missing) or '-'}; unknown: {', '.join(extra) or '-'})"
        )
    for f in fields:
        bits = int(f["type"].removeprefix("uint") or 256)
        if parameters[f["name"]] >= 2**bits:
            raise DeployError(f"{f['name']} = {parameters[f['name']]} does not fit in {f['type']}")
    values = tuple(parameters[n] for n in names)
    faults_address, faults_receipt = sender.deploy(faults.abi, faults.bytecode, values)
    address, _ = sender.deploy(market.abi, market.bytecode, values, faults_address)
    return Deployment(
        chain_id=int(sender.w3.eth.chain_id),
        # The first of the two: every event of the market is after it.
        deploy_block=int(faults_receipt["blockNumber"]),
        deployer=sender.address,
        contracts={
            MARKET: ContractRecord(address=address, abi_hash=market.abi_hash),
            FAULTS: ContractRecord(address=faults_address, abi_hash=faults.abi_hash),
        },
        parameters=dict(parameters),
        rpc_url=rpc_url,
    )
