"""Helpers of the end-to-end suites: the market of a render stack, `client render` run as the
artist in its own process, a job's leases, and the money checks (to the wei) every scenario
ends with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from blindframe.client.jobdir import JobDir
from blindframe.coordinator.chain import connect
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import LeaseStatus, LeaseView, Market
from blindframe.fhe_core.artist_jobs import JobSecrets, plain_frame
from blindframe.fhe_core.jobs import PublicJob
from support.wei import gas_paid

if TYPE_CHECKING:
    from web3 import Web3

    from support.render_stack import RenderStack

BPS = 10_000


def stack_market(stack: RenderStack) -> tuple[Web3, Market]:
    """The stack's chain and market (read-only)."""
    deployment = Deployment.load(Path(stack.info.deployment))
    w3 = connect(stack.info.rpc_url, expected_chain_id=deployment.chain_id)
    return w3, Market(w3, deployment)


def start_render(
    stack: RenderStack, out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`blindframe --json client render` of the sample scene as the artist, in its own process
    (``args`` after the defaults: a later option wins; ``env``: the artist's environment,
    default the stack's)."""
    argv = [
        sys.executable, "-m", "blindframe", "--json", "client", "render",
        "--scene", "sample", "--kernel", "volume@1", "--reward", "0.001",
        "--lease-length", "10m", "--deadline", "1h", "--interval", "0.5",
        # Each test counts every wei of one job: follow-up jobs only where a test asks for them.
        "--retries", "0",
        "-o", str(out / "frame.png"), "--twin", str(out / "twin.png"), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, env=env or stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_render(
    stack: RenderStack,
    process: subprocess.Popen[str],
    timeout: float,
    stderr: list[str] | None = None,
) -> dict[str, Any]:
    """The render's JSON result (it must succeed within ``timeout`` seconds); its standard
    error is appended to ``stderr`` when given. A job whose every replica verified is settled
    at once (the contract's early acceptance): no challenge window is waited out."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"render timed out:\n{err[-3000:]}\n{stack.worker_logs()}") from None
    if stderr is not None:
        stderr.append(err)
    assert process.returncode == 0, f"{err[-3000:]}\n{stack.worker_logs()}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def job_leases(market: Market, job_id: int) -> list[tuple[int, LeaseView]]:
    """Every lease of the job (juror leases included), by id."""
    leases = []
    for lease_id in range(1, market.counts()[1] + 1):
        lease = market.lease(lease_id)
        if lease.jobId == job_id:
            leases.append((lease_id, lease))
    return leases


def withdraw(stack: RenderStack, name: str) -> int:
    """Withdraw keystore ``name``'s pending balance; returns the amount."""
    market = stack.market_as(name)
    assert market.sender is not None
    pending = market.pending_balance(market.sender.account.address)
    if pending:
        market.withdraw()
    return pending


def check_frame(result: dict[str, Any]) -> None:
    """The decrypted frame equals the plaintext twin, recomputed here from the job's secrets."""
    assert result["frame"]["matchesTwin"] is True
    job = JobDir(Path(result["job"]["directory"]))
    manifest = Manifest.parse((job.path / "manifest.json").read_bytes())
    twin = plain_frame(PublicJob.from_json(manifest.job), JobSecrets.load(job.path / "secrets.npz"))
    decrypted = np.load(result["frame"]["array"])
    np.testing.assert_array_equal(decrypted, twin)
    # The PNGs the artist looks at: the decrypted frame's is pixel for pixel the twin's.
    assert result["frame"]["png"].endswith("frame.png")
    with Image.open(result["frame"]["png"]) as got, Image.open(result["frame"]["twinPng"]) as want:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def contract_books(market: Market, accounts: list[str], job_ids: list[int]) -> int:
    """What the market owes: stakes, unbonding and pending balances of ``accounts``, escrow."""
    owed = sum(market.job(j).escrow for j in job_ids)
    for address in accounts:
        info = market.worker(address)
        owed += info.stake + info.unbonding + market.pending_balance(address)
    return owed


def fraud_slash(params: dict[str, Any], worker_free_stake: int) -> int:
    """What a proven fraud on one tile costs its worker (a far result, a juror off the verdict,
    withheld data): slashBps of the tile's collateral, plus slashBps of the minimum stake taken
    from its free stake (as much as there is; the unbonding stake is not touched here)."""
    locked_part = int(params["collateralPerTile"]) * int(params["slashBps"]) // BPS
    extra = int(params["minStake"]) * int(params["slashBps"]) // BPS
    return locked_part + min(extra, worker_free_stake)


def bounty(params: dict[str, Any], slashed: int) -> int:
    """The share of a slash paid as a bounty (bountyBps)."""
    return slashed * int(params["bountyBps"]) // BPS


def warp_past(w3: Web3, timestamp: int) -> None:
    """Move the local chain's clock past ``timestamp`` (Anvil) and mine a block."""
    now = int(w3.eth.get_block("latest")["timestamp"])
    if now <= timestamp:
        w3.provider.make_request("evm_increaseTime", [timestamp - now + 1])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def fault_books(
    market: Market, job_ids: list[int], first_block: int
) -> tuple[dict[str, int], dict[str, int]]:
    """What the contract's rules say each account is owed and loses on jobs of replication 1
    without contests, from their leases' outcomes alone: (credits, slashes) by lowercase address.
    A settled lease pays its worker ``count`` rewards; a reclaimed one slashes slashBps of its
    collateral, of which bountyBps go to whoever reclaimed it (the client, when its own worker
    did) and the rest to the client."""
    params = market.params
    credits: dict[str, int] = {}
    slashes: dict[str, int] = {}
    reclaimers = {
        int(e["args"]["leaseId"]): str(e["args"]["caller"]).lower()
        for e in market.contract.events.LeaseReclaimed().get_logs(from_block=first_block)
    }
    for job_id in job_ids:
        job = market.job(job_id)
        assert job.replication == 1, "fault_books covers replication 1 only"
        client = str(job.client).lower()
        for lease_id, lease in job_leases(market, job_id):
            worker = str(lease.worker).lower()
            if lease.state is LeaseStatus.SETTLED:
                credits[worker] = credits.get(worker, 0) + lease.count * int(
                    job.rewardPerTileReplica
                )
            elif lease.state is LeaseStatus.RECLAIMED:
                slashed = lease.count * int(params["collateralPerTile"]) * int(params["slashBps"])
                slashed //= BPS
                slashes[worker] = slashes.get(worker, 0) + slashed
                caller = reclaimers[lease_id]
                beneficiary = client if caller == worker else caller
                credits[beneficiary] = credits.get(beneficiary, 0) + bounty(params, slashed)
                credits[client] = credits.get(client, 0) + slashed - bounty(params, slashed)
            else:
                raise AssertionError(f"lease {lease_id} ended {lease.state!r}")
    return credits, slashes


# A piece of a secret key long enough that finding it anywhere else is no coincidence: Concrete
# stores an LWE secret key as one little-endian u64 per binary coefficient, so a piece of 512
# bytes carries 64 bits of the key (a 64-byte piece, 8 bits, would match any array of 0/1 words).
# Any contiguous copy of 1,023 bytes or more of a key's body contains one whole aligned piece.
_KEY_PIECE = 512
_BITS_PIECE = 16  # the key's coefficients packed 8 to a byte: 128 bits a piece


def secret_key_pieces(key_dir: Path) -> list[bytes]:
    """Pieces of every LWE secret key of every key set in ``key_dir`` (the artist's
    ``<home>/keys``): the serialized coefficients in aligned 512-byte pieces, and the same bits
    packed 8 to a byte (either bit order) in 16-byte pieces."""
    from concrete.compiler import Keyset

    pieces: list[bytes] = []
    keysets = sorted(key_dir.glob("*/keyset.bin"))
    assert keysets, f"no key set in {key_dir}"
    for path in keysets:
        stored = path.read_bytes()
        keyset = Keyset.deserialize_from_file(str(path))
        for key in keyset.get_client_keys().get_secret_keys():
            dimension = int(key.param.dimension())
            body = bytes(key.serialize())[-8 * dimension :]
            coefficients = np.frombuffer(body, dtype="<u8")
            # The layout the pieces assume: binary coefficients, one word each.
            assert set(np.unique(coefficients).tolist()) <= {0, 1}, f"{path}: not a binary key"
            # The search can succeed: the key set file holds the key as serialized here.
            assert stored.find(body) >= 0, f"{path}: the key's serialization is not in its file"
            pieces += [
                body[i : i + _KEY_PIECE] for i in range(0, len(body) - _KEY_PIECE + 1, _KEY_PIECE)
            ]
            for order in ("big", "little"):
                bits = np.packbits(coefficients.astype(np.uint8), bitorder=order).tobytes()
                step = _BITS_PIECE
                pieces += [bits[i : i + step] for i in range(0, len(bits) - step + 1, step)]
    return pieces


def assert_secret_keys_stayed_home(stack: RenderStack, key_dir: Path) -> None:
    """No piece of the artist's secret keys (:func:`secret_key_pieces`) is in any block of any
    IPFS node of the stack (the artist's, every render node's: whatever was uploaded, fetched or
    published) nor in any transaction sent on its chain."""
    pieces = secret_key_pieces(key_dir)
    ipfs_root = stack.home / "stack" / "ipfs"
    blocks: list[Path] = []
    for name in stack.info.ipfs:  # every node's blockstore, each a folder of block files
        store = ipfs_root / name / "blocks"
        assert store.is_dir(), f"no blockstore at {store}"
        blocks += sorted(p for p in store.rglob("*") if p.is_file())
    # The artist's node holds at least what it uploaded: the search reads real blocks.
    assert any(p.is_relative_to(ipfs_root / "client") for p in blocks)
    w3, _ = stack_market(stack)
    calldata: list[bytes] = []
    for number in range(int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert not isinstance(tx, bytes)  # full transactions, not hashes
            calldata.append(bytes(tx["input"]))
    assert calldata
    places = [(str(p), p.read_bytes()) for p in blocks]
    places += [(f"transaction {i}", data) for i, data in enumerate(calldata)]
    for where, data in places:
        for piece in pieces:
            assert data.find(piece) < 0, f"a piece of the artist's secret keys is in {where}"


def no_duplicates(market: Market, first_block: int) -> None:
    """Nothing was acted on twice from ``first_block`` on: each lease was committed, revealed
    and reclaimed at most once, and no account sent a call that reverted after the same call
    of its own went through (a commit or claim sent again after a lost answer would). Two
    accounts racing for one reclaim may see one revert: that is not a duplicate."""
    events = market.contract.events
    for event in (events.Committed(), events.Revealed(), events.LeaseReclaimed()):
        counts = Counter(e["args"]["leaseId"] for e in event.get_logs(from_block=first_block))
        assert all(n == 1 for n in counts.values()), counts
    w3 = market.w3
    sent: dict[tuple[str, str], list[int]] = {}
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
            key = (str(tx["from"]), bytes(tx["input"]).hex())  # type: ignore[index]
            sent.setdefault(key, []).append(int(receipt["status"]))
    twice = [key for key, statuses in sent.items() if len(statuses) > 1 and 0 in statuses]
    assert not twice, twice


def check_books(
    stack: RenderStack,
    market: Market,
    job_ids: list[int],
    first_block: int,
    before: dict[str, int],
    staked: dict[str, int],
) -> None:
    """Every account to the wei, on jobs of replication 1 without contests: what the rules say
    from the leases' outcomes (:func:`fault_books`) is what each node's stake, withdrawn
    earnings and ETH balance show, and the artist's (``before``'s first account) pending
    balance plus what it withdrew; the market holds exactly what it owes. ``before``: ETH
    balances, ``staked``: the nodes' stakes, both read at ``first_block``."""
    w3 = market.w3
    credits, slashes = fault_books(market, job_ids, first_block)
    artist = next(iter(before))
    names = {address: name for name, address in stack.accounts.items()}
    for address, stake in staked.items():
        name = names[address]
        info = market.worker(address)
        assert info.stake == stake - slashes.get(address.lower(), 0), name
        assert info.locked == 0, name
        earned = withdraw(stack, name)
        assert earned == credits.get(address.lower(), 0), name
        gas = gas_paid(w3, address, first_block)
        assert w3.eth.get_balance(address) == before[address] + earned - gas, name
    paid = sum(market.job(j).tileCount * market.job(j).rewardPerTileReplica for j in job_ids)
    gas = gas_paid(w3, artist, first_block)
    withdrawn = w3.eth.get_balance(artist) - (before[artist] - paid - gas)
    assert market.pending_balance(artist) + withdrawn == credits.get(artist.lower(), 0)
    for job_id in job_ids:
        assert market.job(job_id).escrow == 0
    assert w3.eth.get_balance(market.address) == contract_books(market, list(before), job_ids)


def skip_verdict_window_once_proven_far(
    stack: RenderStack, render: subprocess.Popen[str], first_block: int, timeout: float
) -> None:
    """Once the contest of the render's job (the first proven since ``first_block``) has a
    fixed verdict and a side proven far from it, move the chain's clock past the verdict's
    window (the challenge window after the verdict was fixed): nothing is left for it to catch
    (jurors off the verdict are judged by their roots when the contest ends), and waiting it out
    in real time would only cost the suite time. Nothing is moved if the render ends first: its
    result says why."""
    w3, market = stack_market(stack)
    deadline = time.monotonic() + timeout
    while render.poll() is None:
        proven = market.contract.events.DisagreementProven().get_logs(from_block=first_block)
        if proven:
            contest_id = int(proven[0]["args"]["contestId"])
            far = [
                e
                for e in market.contract.events.FarProven().get_logs(from_block=first_block)
                if int(e["args"]["contestId"]) == contest_id
            ]
            fixed_at = market.verdict(contest_id)[1]
            if far and fixed_at:
                warp_past(w3, fixed_at + int(market.params["challengeWindow"]))
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"no side proven far in {timeout} s\n{stack.worker_logs()}")
        time.sleep(0.5)
