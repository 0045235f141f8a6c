"""Typed access to RenderMarket: views as dataclasses, actions as methods, errors as sentences.

Worker and client both go through :class:`Market`; every transaction goes through the project's
:class:`~blindframe.coordinator.tx.TxSender`, so nonces, gas, retries and revert decoding behave the
same everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from eth_utils.address import to_checksum_address
from web3.exceptions import BlockNotFound, ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from blindframe.coordinator.artifacts import Artifact, compile_contracts
from blindframe.coordinator.deployment import Deployment, bind
from blindframe.coordinator.errors import CoordinatorError
from blindframe.coordinator.tx import ErrorDecoder, TxSender

if TYPE_CHECKING:
    from collections.abc import Sequence

    from web3 import Web3
    from web3.contract.contract import Contract, ContractFunction
    from web3.types import TxReceipt

__all__ = [
    "MARKET",
    "NO_FAULT_LIMIT",
    "PROFILE_FIELDS",
    "AvailabilityChallengeView",
    "AvailabilityStatus",
    "ContestOutcome",
    "ContestView",
    "JobView",
    "LeaseStatus",
    "LeaseView",
    "Market",
    "Opening",
    "WorkerProfile",
    "WorkerView",
    "kernel_id_bytes",
    "kernel_id_text",
    "market_decoder",
]

MARKET = "RenderMarket"

# `postJob`'s maxFaults meaning "any number of faults" (type(uint16).max); minCompleted 0 and this
# together are a job with no reputation gate.
NO_FAULT_LIMIT = 2**16 - 1

# IRenderMarket.WorkerProfile's fields, in ABI order (tests check them against the ABI).
PROFILE_FIELDS = (
    "worker",
    "stake",
    "capacity",
    "activeTiles",
    "completed",
    "faults",
    "msPerTile",
    "advertisedAt",
)
# Pool members read per `workerProfiles` call: a view, so only the RPC's own limits matter.
_PROFILE_PAGE = 512

# A sentence per custom error: what went wrong, in the words of the person who hit it.
SENTENCES: dict[str, str] = {
    "MarketUnknownJob": "there is no job {jobId}",
    "MarketUnknownLease": "there is no lease {leaseId}",
    "MarketUnknownContest": "there is no contest {contestId}",
    "MarketWrongEscrow": "the escrow must be exactly {expected} wei, {sent} wei was sent",
    "MarketBadCid": "the CID is {length} bytes long; 1..{maximum} bytes are accepted",
    "MarketBadTileCount": "a job has 1..{maximum} tiles, not {tileCount}",
    "MarketBadReplication": "replication must be 1..{maximum}, not {replication}",
    "MarketZeroReward": "the reward per tile must be more than 0 wei",
    "MarketBadLeaseLength": "the lease length must be 1..{maximum} seconds, not {leaseLength}",
    "MarketBadDeadline": "the deadline {deadline} leaves no time for a lease: it must be at least "
    "{earliest}",
    "MarketBadLeafDepth": "the leaf depth must be at most {maximum}, not {leafDepth}",
    "MarketBadRange": "tiles {firstTile}..+{count} are not a valid range of a {tileCount}-tile job",
    "MarketBadLane": "lane {lane} is not open in job {jobId}",
    "MarketClaimClosed": "job {jobId} takes no new leases: one would end at {commitDeadline}, "
    "after the deadline {deadline}",
    "MarketTilesTaken": "some of tiles {firstTile}..+{count} of lane {lane} in job {jobId} are "
    "already leased",
    "MarketTileHeld": "{worker} already holds a replica of some of tiles {firstTile}..+{count} of "
    "job {jobId}",
    "MarketTileRevealed": "tile {tile} of job {jobId} was already revealed in another lane: a "
    "replica of it now could be a copy",
    "MarketLeafDepthTooShallow": "a leaf depth of {leafDepth} leaves too few coefficient leaves to "
    "open {farCount} far pairs",
    "MarketNotLeaseWorker": "lease {leaseId} belongs to {worker}, not {caller}",
    "MarketWrongLeaseStatus": "lease {leaseId} is {status}, this needs it {expected}",
    "MarketLeaseExpired": "lease {leaseId} expired at {deadline} (now {now})",
    "MarketCommitmentMismatch": "the revealed root and salt do not match lease {leaseId}'s "
    "commitment",
    "MarketRevealTooEarly": "lease {leaseId} may reveal once all {totalSlots} slots (jurors: "
    "seats) committed ({committedSlots} did) or after {commitDeadline}",
    "MarketLeaseNotExpired": "lease {leaseId} runs until {deadline} (now {now})",
    "MarketTileNotInLease": "lease {leaseId} does not cover tile {tile}",
    "MarketTileAlreadyContested": "tile {tile} of job {jobId} was already contested",
    "MarketChallengeClosed": "the challenge window closed at {deadline} (now {now})",
    "MarketBadProof": "the opening of leaf {leaf} does not verify against lease {leaseId}'s root",
    "MarketNotFarEnough": "the openings show {far} far coefficients; {required} are needed",
    "MarketContestResolved": "contest {contestId} is already resolved",
    "MarketContestPending": "contest {contestId} cannot be resolved before {until} (0: before "
    "every juror revealed or missed its deadline)",
    "MarketBadSide": "side {side} of contest {contestId} is not one that can still be proven far",
    "MarketDrawNotReady": "contest {contestId} has no jury draw ready: its draw block is "
    "{drawBlock} (0: none armed), the chain is at block {blockNumber}",
    "MarketDrawClosed": "contest {contestId} drew jurors until {claimDeadline} (now {now})",
    "MarketNoVerdict": "contest {contestId}'s jury has no final verdict (yet)",
    "MarketContestSide": "lease {leaseId} is a side of contest {contestId}: prove it far with "
    "proveFar",
    "MarketUnknownChallenge": "there is no availability challenge {challengeId}",
    "MarketAvailabilityOpen": "lease {leaseId} has an open availability challenge ({challengeId})",
    "MarketChallengeNotOpen": "availability challenge {challengeId} is no longer open",
    "MarketAnswerWindow": "availability challenge {challengeId} is answered until {deadline} and "
    "resolved after it (now {now})",
    "MarketWrongLeaves": "the leaves answered are not the ones availability challenge "
    "{challengeId} named",
    "MarketNotClient": "only job {jobId}'s client {client} may do this, not {caller}",
    "MarketWrongBond": "the dispute bond is exactly {expected} wei, {sent} wei was sent",
    "MarketDisputeClosed": "lease {leaseId} could be disputed until {deadline} (now {now})",
    "MarketBadBatch": "a batch holds 1..{maximum} items, not {length}",
    "MarketNotVerified": "lease {leaseId} is verified at {verifiedAt} (now {now})",
    "MarketLeaseContested": "lease {leaseId} has {openContests} unresolved contest(s)",
    "MarketAcceptanceOpen": "the client may settle lease {leaseId} until {until} (now {now})",
    "MarketJobNotExpired": "job {jobId} runs until its deadline {deadline} (now {now})",
    "MarketNothingToRefund": "job {jobId} has nothing left to refund",
    "MarketJobCancelled": "job {jobId} was cancelled: it takes no new claims",
    "MarketJobExpired": "job {jobId} ended at its deadline {deadline} (now {now}): there is "
    "nothing to cancel",
    "MarketReputationTooLow": "{worker} has {completed} paid tiles and {faults} faults; this job "
    "takes nodes with at least {minCompleted} paid tiles and at most {maxFaults} faults",
    "MarketFaultsMismatch": "the MarketFaults module at {faults} was built with other parameters "
    "(params hash {faultsHash}, not {expected})",
    "StakingBelowMinimum": "the stake would be {stake} wei; the minimum is {minimum} wei",
    "StakingBadCapacity": "capacity must be 1..{maximum} tiles, not {capacity}",
    "StakingCapacityExceeded": "{requested} more tiles would exceed the capacity {capacity} "
    "({active} in work)",
    "StakingInsufficientFree": "the lease needs {required} wei of free stake as collateral; "
    "{free} is free",
    "StakingNothingToUnstake": "{worker} has nothing unbonding",
    "StakingStillUnbonding": "the stake unbonds until {unbondingEnd} (now {now})",
    "PaymentsNothingToWithdraw": "{account} has nothing to withdraw",
}

HINTS: dict[str, str] = {
    "MarketTilesTaken": "another node was faster; the claim loop will pick other tiles",
    "StakingInsufficientFree": "stake more: `blindframe worker stake --amount ETH`",
    "StakingBelowMinimum": "stake at least the minimum: `blindframe worker stake --amount ETH`",
    "StakingCapacityExceeded": "raise capacity: `blindframe worker stake --capacity N`",
    "MarketJobNotExpired": "wait for the deadline, or cancel the job (`blindframe client cancel`)",
    "MarketJobExpired": "run `blindframe client refund` to take back the unfinished tiles' escrow",
    "MarketNotVerified": "wait for the challenge window to pass",
    "MarketDrawNotReady": "the draw needs a later block: any transaction mines one",
    "MarketAvailabilityOpen": "wait for the challenge to be answered or resolved",
    "MarketReputationTooLow": "render other jobs first: a node earns reputation with every paid "
    "tile",
    "StakingStillUnbonding": "run `blindframe worker unstake` again after that time",
}


def market_decoder(abi: Sequence[Any]) -> ErrorDecoder:
    """The error decoder of RenderMarket (and its modules) with the sentences above."""
    return ErrorDecoder(abis=[abi], sentences=SENTENCES, hints=HINTS)


class LeaseStatus(enum.IntEnum):
    """IRenderMarket.LeaseStatus."""

    NONE = 0
    CLAIMED = 1
    COMMITTED = 2
    REVEALED = 3
    SETTLED = 4
    RECLAIMED = 5
    FORFEITED = 6  # an availability challenge on it went unanswered


class AvailabilityStatus(enum.IntEnum):
    """IRenderMarket.AvailabilityStatus."""

    NONE = 0
    OPEN = 1
    ANSWERED = 2
    FAILED = 3


class ContestOutcome(enum.IntEnum):
    """IRenderMarket.ContestOutcome."""

    PENDING = 0
    A_FAR = 1
    B_FAR = 2
    BOTH_FAR = 3
    NONE_FAR = 4
    NO_TIE_BREAKER = 5


def kernel_id_bytes(kernel_id: str) -> bytes:
    """A kernel id (``volume@1``) as the contract's bytes32: UTF-8, zero-padded on the right."""
    raw = kernel_id.encode()
    if not 0 < len(raw) <= 32:
        raise CoordinatorError(f"kernel id {kernel_id!r} must be 1..32 bytes")
    return raw.ljust(32, b"\0")


def kernel_id_text(raw: bytes | str) -> str:
    """The contract's bytes32 kernel id back as text."""
    data = bytes.fromhex(raw.removeprefix("0x")) if isinstance(raw, str) else bytes(raw)
    return data.rstrip(b"\0").decode(errors="replace")


_V = TypeVar("_V")


def _view(cls: type[_V], value: Any) -> _V:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**dict(zip(names, value, strict=True)))


@dataclass(frozen=True)
class JobView:
    """IRenderMarket.Job."""

    client: str
    deadline: int
    leaseLength: int  # noqa: N815 - the contract's field names, so views read like the ABI
    replication: int
    leafDepth: int  # noqa: N815
    priority: int
    tileCount: int  # noqa: N815
    rewardPerTileReplica: int  # noqa: N815
    committedSlots: int  # noqa: N815
    reservedSlots: int  # noqa: N815
    contestCount: int  # noqa: N815
    cancelledAt: int  # noqa: N815 - 0 while the job is open
    escrow: int
    minCompleted: int  # noqa: N815 - the reputation gate: least paid tiles a claimer has had
    maxFaults: int  # noqa: N815 - most faults a claimer may have had (NO_FAULT_LIMIT: any)
    manifestHash: bytes  # noqa: N815
    kernelId: bytes  # noqa: N815

    @property
    def kernel(self) -> str:
        """The kernel id as text."""
        return kernel_id_text(self.kernelId)

    @property
    def gated(self) -> bool:
        """Whether the job asks its nodes for a reputation."""
        return self.minCompleted > 0 or self.maxFaults != NO_FAULT_LIMIT

    def admits(self, completed: int, faults: int) -> bool:
        """Whether a node with ``completed`` paid tiles and ``faults`` faults may claim (and be
        drawn as a juror of) this job, by the rule the contract applies."""
        return completed >= self.minCompleted and (
            self.maxFaults == NO_FAULT_LIMIT or faults <= self.maxFaults
        )


@dataclass(frozen=True)
class LeaseView:
    """IRenderMarket.Lease."""

    worker: str
    commitDeadline: int  # noqa: N815
    revealedAt: int  # noqa: N815
    status: int
    jobId: int  # noqa: N815
    lane: int
    firstTile: int  # noqa: N815
    count: int
    forfeitedCount: int  # noqa: N815
    openContests: int  # noqa: N815
    digest: bytes
    forfeited: int

    @property
    def state(self) -> LeaseStatus:
        """The status as an enum."""
        return LeaseStatus(self.status)

    @property
    def tiles(self) -> range:
        """The tiles of the lease."""
        return range(self.firstTile, self.firstTile + self.count)


@dataclass(frozen=True)
class ContestView:
    """IRenderMarket.Contest."""

    jobId: int  # noqa: N815
    tile: int
    lane: int
    claimDeadline: int  # noqa: N815
    kind: int
    outcome: int
    farMask: int  # noqa: N815
    leaseA: int  # noqa: N815
    leaseB: int  # noqa: N815
    leaseT: int  # noqa: N815
    challenger: str
    bond: int
    proverA: str  # noqa: N815
    proverB: str  # noqa: N815
    drawBlock: int  # noqa: N815 - a jury draw is armed on this block's hash (0: none)
    seated: int  # seats drawn so far (seats 0 .. seated - 1; a replaced seat keeps its number)
    committedSeats: int  # noqa: N815 - seats whose current juror committed
    revealedSeats: int  # noqa: N815 - seats whose juror revealed
    rounds: int  # draws made (the first one and replacements)
    jurorDeadline: int  # noqa: N815 - the latest commit deadline among the jurors
    verdictAt: int  # noqa: N815 - when the verdict became final (0 while jurors may still act)


@dataclass(frozen=True)
class AvailabilityChallengeView:
    """IRenderMarket.AvailabilityChallenge."""

    leaseId: int  # noqa: N815
    tile: int
    deadline: int
    status: int
    challenger: str
    bond: int
    leavesHash: bytes  # noqa: N815 - keccak256(abi.encode(uint32[] leaves))

    @property
    def state(self) -> AvailabilityStatus:
        """The status as an enum."""
        return AvailabilityStatus(self.status)


@dataclass(frozen=True)
class WorkerView:
    """IStaking.WorkerInfo."""

    stake: int
    locked: int
    capacity: int
    activeTiles: int  # noqa: N815
    unbonding: int
    unbondingEnd: int  # noqa: N815
    completed: int
    faults: int

    @property
    def free_capacity(self) -> int:
        """Tiles the worker may still claim."""
        return max(self.capacity - self.activeTiles, 0)


@dataclass(frozen=True)
class WorkerProfile:
    """A staked render node as a quote sees it: what it can take now, how fast it says it is at
    one kernel, and its reputation (IRenderMarket.WorkerProfile, read with
    :meth:`Market.worker_profiles`)."""

    address: str
    capacity: int  # tiles it may hold in work at once (declared at stake)
    free_capacity: int  # capacity minus the tiles in work now
    ms_per_tile: int  # its advertised milliseconds per tile of the kernel (0: not advertised)
    advertised_at: int  # when it advertised that figure (0: never)
    completed: int  # tiles paid to it, ever
    faults: int  # slashes, ever


@dataclass(frozen=True)
class Opening:
    """One leaf index of a tile opened against two lease roots (IRenderMarket.Opening)."""

    leaf: int
    leafA: bytes  # noqa: N815
    leafB: bytes  # noqa: N815
    proofA: list[bytes]  # noqa: N815
    proofB: list[bytes]  # noqa: N815

    def as_tuple(self) -> tuple[int, bytes, bytes, list[bytes], list[bytes]]:
        """The ABI tuple."""
        return (self.leaf, self.leafA, self.leafB, self.proofA, self.proofB)


class Market:
    """RenderMarket bound to a deployment, optionally with a sender for transactions."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        *,
        sender: TxSender | None = None,
        artifacts: dict[str, Artifact] | None = None,
    ) -> None:
        artifacts = compile_contracts() if artifacts is None else artifacts
        self.w3 = w3
        self.deployment = deployment
        self.contract: Contract = bind(w3, deployment, MARKET, artifacts)
        self.decoder = market_decoder(artifacts[MARKET].abi)
        if sender is not None:
            sender.decoder = self.decoder
        self.sender = sender
        self.params = deployment.parameters

    @property
    def address(self) -> str:
        """The market's address."""
        return str(self.contract.address)

    # -- views -----------------------------------------------------------------------------------

    def _call(self, function: ContractFunction, action: str) -> Any:
        try:
            return function.call()
        except ContractLogicError as exc:
            raise TxSender.revert_error(self.decoder, exc, action) from None

    def job(self, job_id: int) -> JobView:
        """Job ``job_id`` (raises if there is none)."""
        return _view(
            JobView, self._call(self.contract.functions.getJob(job_id), f"reading job {job_id}")
        )

    def lease(self, lease_id: int) -> LeaseView:
        """Lease ``lease_id``."""
        raw = self._call(self.contract.functions.getLease(lease_id), f"reading lease {lease_id}")
        return _view(LeaseView, raw)

    def contest(self, contest_id: int) -> ContestView:
        """Contest ``contest_id``."""
        raw = self._call(
            self.contract.functions.getContest(contest_id), f"reading contest {contest_id}"
        )
        return _view(ContestView, raw)

    def worker(self, address: str) -> WorkerView:
        """The staking account of ``address``."""
        raw = self._call(
            self.contract.functions.workerInfo(to_checksum_address(address)), "reading a worker"
        )
        return _view(WorkerView, raw)

    def worker_profiles(self, kernel_id: str) -> list[WorkerProfile]:
        """Every worker of the draw pool (the first 4,096 addresses to stake) that holds at least
        minStake, with its advertisement for ``kernel_id`` (``volume@1``): capacity, free
        capacity, milliseconds per tile, reputation."""
        kernel = kernel_id_bytes(kernel_id)
        min_stake = int(self.params["minStake"])
        profiles: list[WorkerProfile] = []
        start = 0
        while True:
            rows = self._call(
                self.contract.functions.workerProfiles(kernel, start, _PROFILE_PAGE),
                "reading the render nodes' profiles",
            )
            for row in rows:
                info = dict(zip(PROFILE_FIELDS, row, strict=True))
                if int(info["stake"]) < min_stake:
                    continue
                capacity = int(info["capacity"])
                profiles.append(
                    WorkerProfile(
                        address=to_checksum_address(info["worker"]),
                        capacity=capacity,
                        free_capacity=max(capacity - int(info["activeTiles"]), 0),
                        ms_per_tile=int(info["msPerTile"]),
                        advertised_at=int(info["advertisedAt"]),
                        completed=int(info["completed"]),
                        faults=int(info["faults"]),
                    )
                )
            if len(rows) < _PROFILE_PAGE:
                return profiles
            start += _PROFILE_PAGE

    def advertisement(self, worker: str, kernel_id: str) -> tuple[int, int]:
        """(milliseconds per tile, when) that ``worker`` advertised for ``kernel_id`` ((0, 0):
        never)."""
        ms, at = self.contract.functions.advertisement(
            to_checksum_address(worker), kernel_id_bytes(kernel_id)
        ).call()
        return int(ms), int(at)

    def pending_balance(self, address: str) -> int:
        """Wei ``address`` can withdraw."""
        return int(self.contract.functions.pendingBalance(to_checksum_address(address)).call())

    def counts(self) -> tuple[int, int, int]:
        """(jobs, leases, contests) numbered so far."""
        jobs, leases, contests = self.contract.functions.counts().call()
        return int(jobs), int(leases), int(contests)

    def free_range(
        self, job_id: int, lane: int, worker: str, from_tile: int, max_count: int
    ) -> tuple[int, int]:
        """First run of tiles from ``from_tile`` free in ``lane`` and not held by ``worker``."""
        first, count = self.contract.functions.freeRange(
            job_id, lane, to_checksum_address(worker), from_tile, max_count
        ).call()
        return int(first), int(count)

    def verified_at(self, lease_id: int) -> int:
        """When a revealed replica lease counts as verified (0 if not computable yet)."""
        return int(self.contract.functions.verifiedAt(lease_id).call())

    def refundable(self, job_id: int) -> int:
        """What `refund` would credit the client after the deadline."""
        return int(self.contract.functions.refundable(job_id).call())

    def commitment(self, root: bytes, worker: str, salt: bytes) -> bytes:
        """keccak256(abi.encode(root, worker, salt)), as the contract computes it."""
        return bytes(
            self.contract.functions.commitmentOf(root, to_checksum_address(worker), salt).call()
        )

    def jurors(self, contest_id: int) -> list[int]:
        """The juror leases of a contest, by seat."""
        raw = self._call(
            self.contract.functions.jurors(contest_id), f"reading contest {contest_id}'s jurors"
        )
        return [int(lease) for lease in raw]

    def verdict(self, contest_id: int) -> tuple[int, int]:
        """(leaseT, fixedAt): a juror lease whose root a strict majority of the revealed jurors
        share (0: none) and when that became final (0: not final yet)."""
        lease, fixed = self._call(
            self.contract.functions.verdict(contest_id), f"reading contest {contest_id}'s verdict"
        )
        return int(lease), int(fixed)

    def availability_challenge(self, challenge_id: int) -> AvailabilityChallengeView:
        """Availability challenge ``challenge_id``."""
        raw = self._call(
            self.contract.functions.getAvailabilityChallenge(challenge_id),
            f"reading availability challenge {challenge_id}",
        )
        return _view(AvailabilityChallengeView, raw)

    def open_challenge(self, lease_id: int) -> int:
        """The open availability challenge of a lease (0 if none)."""
        return int(self.contract.functions.openChallenge(lease_id).call())

    def block_number(self) -> int:
        """The latest block's number (draws are armed on block numbers)."""
        return int(self.w3.eth.block_number)

    def now(self) -> int:
        """The latest block's timestamp: the contract's clock."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def next_block_time(self) -> int | None:
        """The timestamp the node gives its pending block: what the next transaction's block
        will carry (an idle Anvil's latest block can be minutes old, and after a clock warp the
        wall clock lags too); None where the node keeps no pending block."""
        try:
            timestamp = self.w3.eth.get_block("pending").get("timestamp")
        except (BlockNotFound, Web3RPCError):
            return None
        return None if timestamp is None else int(timestamp)

    # -- actions ---------------------------------------------------------------------------------

    def _send(self, function: ContractFunction, action: str, value: int = 0) -> TxReceipt:
        if self.sender is None:
            raise CoordinatorError(
                f"{action} needs an account", hint="pass --account and a password"
            )
        return self.sender.transact(function, value=value, action=action)

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        """The ``name`` events of a receipt, as dicts of their arguments."""
        return [
            dict(e["args"])
            for e in self.contract.events[name]().process_receipt(receipt, errors=DISCARD)
        ]

    def stake(self, capacity: int, value: int) -> TxReceipt:
        """Add ``value`` wei of stake and declare ``capacity`` tiles."""
        return self._send(self.contract.functions.stake(capacity), f"staking {value} wei", value)

    def request_unstake(self, amount: int) -> TxReceipt:
        """Start unbonding ``amount`` wei of free stake."""
        return self._send(self.contract.functions.requestUnstake(amount), f"unbonding {amount} wei")

    def unstake(self) -> TxReceipt:
        """Credit the unbonded stake to the pending balance."""
        return self._send(self.contract.functions.unstake(), "unstaking")

    def withdraw(self) -> TxReceipt:
        """Take the pending balance out."""
        return self._send(self.contract.functions.withdraw(), "withdrawing")

    def advertise(self, kernel_id: str, ms_per_tile: int) -> TxReceipt:
        """Advertise this node's milliseconds per tile of ``kernel_id`` (0 withdraws it)."""
        return self._send(
            self.contract.functions.advertise(kernel_id_bytes(kernel_id), ms_per_tile),
            f"advertising {ms_per_tile} ms per tile of {kernel_id}",
        )

    def post_job(
        self,
        *,
        manifest_cid: str,
        kernel_id: str,
        tile_count: int,
        replication: int,
        reward_per_tile_replica: int,
        lease_length: int,
        deadline: int,
        priority: int,
        leaf_depth: int,
        min_completed: int = 0,
        max_faults: int = NO_FAULT_LIMIT,
    ) -> int:
        """Post a job with exact escrow; returns its id. ``min_completed`` and ``max_faults``
        gate who may claim it (defaults: anyone staked)."""
        escrow = tile_count * replication * reward_per_tile_replica
        receipt = self._send(
            self.contract.functions.postJob(
                manifest_cid.encode(),
                kernel_id_bytes(kernel_id),
                tile_count,
                replication,
                reward_per_tile_replica,
                lease_length,
                deadline,
                priority,
                leaf_depth,
                min_completed,
                max_faults,
            ),
            f"posting a {tile_count}-tile job",
            escrow,
        )
        (posted,) = self.events(receipt, "JobPosted")
        return int(posted["jobId"])

    def claim(
        self, job_id: int, lane: int, first_tile: int, count: int
    ) -> tuple[int, dict[str, Any]]:
        """Lease tiles; returns (lease id, the TilesClaimed event)."""
        receipt = self._send(
            self.contract.functions.claim(job_id, lane, first_tile, count),
            f"claiming tiles {first_tile}..{first_tile + count - 1} of job {job_id} lane {lane}",
        )
        (claimed,) = self.events(receipt, "TilesClaimed")
        return int(claimed["leaseId"]), claimed

    def commit(self, lease_id: int, commitment: bytes) -> TxReceipt:
        """Commit to a lease's result."""
        return self._send(
            self.contract.functions.commit(lease_id, commitment), f"committing lease {lease_id}"
        )

    def reveal(self, lease_id: int, root: bytes, result_cid: str, salt: bytes) -> TxReceipt:
        """Reveal a lease's root and result CID."""
        return self._send(
            self.contract.functions.reveal(lease_id, root, result_cid.encode(), salt),
            f"revealing lease {lease_id}",
        )

    def reclaim(self, lease_id: int) -> TxReceipt:
        """End an expired lease (anyone)."""
        return self._send(self.contract.functions.reclaim(lease_id), f"reclaiming lease {lease_id}")

    def prove_disagreement(
        self, job_id: int, tile: int, lease_a: int, lease_b: int, openings: Sequence[Opening]
    ) -> int:
        """Prove two replicas of ``tile`` far apart; returns the contest id."""
        receipt = self._send(
            self.contract.functions.proveDisagreement(
                job_id, tile, lease_a, lease_b, [o.as_tuple() for o in openings]
            ),
            f"proving leases {lease_a} and {lease_b} disagree on tile {tile}",
        )
        (proven,) = self.events(receipt, "DisagreementProven")
        return int(proven["contestId"])

    def draw_jury(self, contest_id: int) -> list[dict[str, Any]]:
        """Draw a contest's empty jury seats (anyone, after its armed draw block); returns the
        JurorDrawn events (empty when the draw was only re-armed: JuryDrawArmed)."""
        receipt = self._send(
            self.contract.functions.drawJury(contest_id), f"drawing contest {contest_id}'s jury"
        )
        return self.events(receipt, "JurorDrawn")

    def prove_far(self, contest_id: int, side: int, openings: Sequence[Opening]) -> TxReceipt:
        """Prove side ``side`` (0 = A, 1 = B) of a contest far from the jury's verdict (in the
        openings, A is the side and B the verdict lease)."""
        return self._send(
            self.contract.functions.proveFar(contest_id, side, [o.as_tuple() for o in openings]),
            f"proving side {'AB'[side]} of contest {contest_id} far from the verdict",
        )

    def prove_replica_far(
        self, contest_id: int, lease_id: int, openings: Sequence[Opening]
    ) -> TxReceipt:
        """Prove another replica lease of a contest's tile (not a side) far from the verdict (in
        the openings, A is that lease and B the verdict lease)."""
        return self._send(
            self.contract.functions.proveReplicaFar(
                contest_id, lease_id, [o.as_tuple() for o in openings]
            ),
            f"proving lease {lease_id} far from contest {contest_id}'s verdict",
        )

    def challenge_availability(self, lease_id: int, tile: int, leaves: Sequence[int]) -> int:
        """Demand that ``leaves`` of ``tile`` of a revealed lease be opened on chain, posting the
        dispute bond; returns the challenge id."""
        receipt = self._send(
            self.contract.functions.challengeAvailability(lease_id, tile, list(leaves)),
            f"challenging the availability of tile {tile} of lease {lease_id}",
            int(self.params["disputeBond"]),
        )
        (challenged,) = self.events(receipt, "AvailabilityChallenged")
        return int(challenged["challengeId"])

    def answer_availability(
        self,
        challenge_id: int,
        leaves: Sequence[int],
        leaf_data: Sequence[bytes],
        proofs: Sequence[Sequence[bytes]],
    ) -> TxReceipt:
        """Open the challenged leaves (their indices, as the challenge named them) against the
        lease root (proofs as in Opening.proofA)."""
        return self._send(
            self.contract.functions.answerAvailability(
                challenge_id, list(leaves), list(leaf_data), [list(p) for p in proofs]
            ),
            f"answering availability challenge {challenge_id}",
        )

    def resolve_availability(self, challenge_id: int) -> TxReceipt:
        """End an unanswered availability challenge past its deadline (anyone)."""
        return self._send(
            self.contract.functions.resolveAvailability(challenge_id),
            f"resolving availability challenge {challenge_id}",
        )

    def resolve_contest(self, contest_id: int) -> TxReceipt:
        """End a contest whose windows passed (anyone)."""
        return self._send(
            self.contract.functions.resolveContest(contest_id), f"resolving contest {contest_id}"
        )

    def dispute(self, job_id: int, tile: int, lease_id: int) -> int:
        """The client disputes a tile of a lease, posting the bond; returns the contest id."""
        receipt = self._send(
            self.contract.functions.dispute(job_id, tile, lease_id),
            f"disputing tile {tile} of lease {lease_id}",
            int(self.params["disputeBond"]),
        )
        (disputed,) = self.events(receipt, "Disputed")
        return int(disputed["contestId"])

    def settle(self, job_id: int, lease_ids: Sequence[int]) -> TxReceipt:
        """The client accepts verified leases."""
        return self._send(
            self.contract.functions.settle(job_id, list(lease_ids)),
            f"settling {len(lease_ids)} lease(s) of job {job_id}",
        )

    def finalize(self, job_id: int, lease_ids: Sequence[int]) -> TxReceipt:
        """Anyone settles leases whose acceptance window passed."""
        return self._send(
            self.contract.functions.finalize(job_id, list(lease_ids)),
            f"finalizing {len(lease_ids)} lease(s) of job {job_id}",
        )

    def refund(self, job_id: int) -> TxReceipt:
        """Escrow of unfinished tiles goes back to the client (after the deadline, or at any time
        once the job was cancelled)."""
        return self._send(self.contract.functions.refund(job_id), f"refunding job {job_id}")

    def cancel(self, job_id: int) -> TxReceipt:
        """The client cancels its job: no new claims; the unreserved escrow is credited back."""
        return self._send(self.contract.functions.cancelJob(job_id), f"cancelling job {job_id}")
