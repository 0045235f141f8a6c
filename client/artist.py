"""The artist's library: keygen, post, snapshot, watch, verify, settle, dispute (and its jury),
availability challenges, decrypt, refund, and render (all of it in one call). The CLI, the
Blender add-on and the dashboard all call this.

One :class:`Artist` per home (settings): it connects to the chain and the IPFS node lazily, signs
with the account it was given (or unlocks ``settings.account`` with ``settings.password_file``
when a transaction needs it), and keeps every job's secrets and verdicts in the job's directory
(:mod:`blindframe.client.jobdir`). Secret FHE keys never leave ``<home>/keys``; only public data
(evaluation keys, encrypted inputs, the manifest) goes to IPFS, and only CIDs and amounts to the
chain.

Nothing half-done on chain: ``post`` validates the options and the scene, reads the chain, checks
the balance against escrow and gas (by estimating ``postJob`` itself), reaches the IPFS node,
encrypts and uploads, and only then sends ``postJob``.

The work happens in one module per step of a job's path, each a set of functions taking the
Artist: :mod:`._posting`, :mod:`._watching`, :mod:`._verifying`, :mod:`._contesting`,
:mod:`._settling`, :mod:`._decrypting` and :mod:`._rendering` (the whole loop); the Artist keeps
the connections, the keys and the job directories, and one method per operation.

Methods are safe to call from several threads (the dashboard serves snapshots while ``render``
runs): connections are made once under a lock, each call opens its own event-index connection,
and decryption is serialized.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address

from blindframe.client import (
    _contesting,
    _decrypting,
    _listing,
    _posting,
    _rendering,
    _retrying,
    _settling,
    _verifying,
    _watching,
)
from blindframe.client import jobdir as jd
from blindframe.client._retrying import DEFAULT_RETRIES, MAX_RETRIES, RetryReport
from blindframe.client.errors import (
    ClientError,
    InsufficientFundsError,
    JobNotFoundError,
    JobStateError,
)
from blindframe.client.jobdir import JobDir, JobRef
from blindframe.client.keys import KeySet, key_directory, keygen, upload_evaluation_keys
from blindframe.client.options import (
    DEFAULT_DEADLINE,
    DEFAULT_FRAME,
    DEFAULT_LEASE_LENGTH,
    DEFAULT_REWARD_WEI,
    JobOptions,
)
from blindframe.client.progress import Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.quote import Quote
from blindframe.client.reports import (
    CancelReport,
    ChallengeRecord,
    DecryptResult,
    DisputeRecord,
    JobSummary,
    PostedJob,
    RefundReport,
    RenderResult,
    SettleReport,
    StepReport,
    VerifyReport,
)
from blindframe.client.scene import Scene
from blindframe.client.scene._sample import SAMPLE
from blindframe.client.snapshot import JobSnapshot, TileLayout
from blindframe.client.units import format_eth
from blindframe.coordinator.accounts import find_keystore, read_password_file, unlock
from blindframe.coordinator.chain import connect, with_retries
from blindframe.coordinator.config import Settings
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.events import ChainEvent, EventIndexer
from blindframe.coordinator.market import MARKET, LeaseView, Market
from blindframe.coordinator.store import IpfsStore
from blindframe.coordinator.tx import TxSender

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

    from blindframe.fhe_core.client import KernelClient

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_FRAME",
    "DEFAULT_LEASE_LENGTH",
    "DEFAULT_RETRIES",
    "DEFAULT_REWARD_WEI",
    "MAX_RETRIES",
    "SAMPLE",
    "Artist",
    "CancelReport",
    "ChallengeRecord",
    "DecryptResult",
    "DisputeRecord",
    "JobOptions",
    "JobSummary",
    "PostedJob",
    "Quote",
    "RefundReport",
    "RenderResult",
    "RetryReport",
    "SettleReport",
    "StepReport",
    "VerifyReport",
]

SceneLike = Scene | str | Path
JobLike = JobRef | int | str | None


# --------------------------------------------------------------------------------- the artist


class Artist:
    """The artist side of blindframe for one home (see the module docstring).

    ``account`` signs transactions; without it, ``settings.account`` is unlocked with
    ``settings.password_file`` the first time a transaction is needed. ``ipfs_timeout``: how
    long a download may wait for content no reachable node provides.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        account: LocalAccount | None = None,
        ipfs_timeout: float = 60.0,
        ipfs_retry_for: float = 15.0,
        preflight_retry_for: float = 3.0,
    ) -> None:
        self.settings = settings
        self.home = Path(settings.home)
        self._account = account
        self._ipfs_timeout = ipfs_timeout
        self._ipfs_retry_for = ipfs_retry_for
        self._preflight_retry_for = preflight_retry_for
        self._lock = threading.RLock()
        self._fhe_lock = threading.Lock()
        self._w3: Web3 | None = None
        self._deployment: Deployment | None = None
        self._reader: Market | None = None
        self._writer: Market | None = None
        self._store: IpfsStore | None = None
        self._clients: dict[str, KernelClient] = {}
        self._final_leases: dict[int, LeaseView] = {}
        self._layouts: dict[
            str, tuple[dict[int, TileLayout], tuple[int, int], tuple[int, int]]
        ] = {}

    def close(self) -> None:
        """Close the IPFS connection pool."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> Artist:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -----------------------------------------------------------------------------

    @property
    def key_dir(self) -> Path:
        """``<home>/keys`` (0700)."""
        return key_directory(self.home)

    def _chain(self) -> tuple[Web3, Deployment]:
        with self._lock:
            if self._w3 is None or self._deployment is None:
                deployment = Deployment.load(self.settings.deployment_path)
                self._w3 = connect(self.settings.rpc_url, expected_chain_id=deployment.chain_id)
                self._deployment = deployment
            return self._w3, self._deployment

    def market(self) -> Market:
        """The market, read-only (views)."""
        with self._lock:
            if self._reader is None:
                w3, deployment = self._chain()
                self._reader = Market(w3, deployment)
            return self._reader

    def _signing_market(self) -> Market:
        with self._lock:
            if self._writer is None:
                w3, deployment = self._chain()
                sender = TxSender(
                    w3,
                    self.account(),
                    endpoint=self.settings.rpc_url,
                    lock_dir=self.home / "nonces",
                )
                self._writer = Market(w3, deployment, sender=sender)
            return self._writer

    def account(self) -> LocalAccount:
        """The signing account (unlocked from the keystore on first use)."""
        with self._lock:
            if self._account is None:
                name = self.settings.account
                if name is None:
                    raise ClientError(
                        "this needs an account to sign transactions, and none was given",
                        hint="pass --account NAME (see `blindframe account list`) or set "
                        "BLINDFRAME_ACCOUNT",
                    )
                if self.settings.password_file is None:
                    raise ClientError(
                        f"account {name!r} needs its keystore password",
                        hint="pass --password-file FILE or set BLINDFRAME_PASSWORD_FILE",
                    )
                path = find_keystore(self.settings.keystores, name)
                self._account = unlock(path, read_password_file(self.settings.password_file))
            return self._account

    @property
    def address(self) -> str:
        """The signing account's address."""
        return str(self.account().address)

    def store(self) -> IpfsStore:
        """The client's IPFS node."""
        with self._lock:
            if self._store is None:
                self._store = IpfsStore(
                    self.settings.ipfs_api,
                    retry_for=self._ipfs_retry_for,
                    find_timeout=self._ipfs_timeout,
                )
            return self._store

    def _rpc(self, call: Callable[[], Any], what: str) -> Any:
        return with_retries(call, what=what, endpoint=self.settings.rpc_url)

    def chain_now(self) -> int:
        """The time the next block will carry at the earliest: the later of the pending block's
        timestamp (the latest block's where the node keeps no pending one) and the wall clock
        (an idle local chain mines no blocks, so its latest timestamp lags; after a clock warp
        the wall clock lags too, and a job's deadline could pass unseen)."""
        market = self.market()
        chain = self._rpc(market.next_block_time, "read the pending block")
        if chain is None:  # never before the latest block's
            chain = int(self._rpc(market.now, "read the latest block"))
        return max(int(chain), int(time.time()))

    def _indexer(self) -> EventIndexer:
        w3, deployment = self._chain()
        market = self.market()
        return EventIndexer(
            w3,
            market.contract,
            self.home / "client" / "events.sqlite",
            name=f"client-{deployment.chain_id}-{market.address.lower()}",
            start_block=deployment.deploy_block,
            endpoint=self.settings.rpc_url,
            confirmations=self.settings.confirmations,
        )

    def events(self) -> list[ChainEvent]:
        """Every market event indexed so far (polled up to the head first)."""
        indexer = self._indexer()
        try:
            indexer.poll()
            return indexer.events()
        finally:
            indexer.close()

    def _kernel_client(self, kernel: str) -> KernelClient:
        from blindframe.fhe_core.client import KernelClient

        with self._lock:
            client = self._clients.get(kernel)
            if client is None:
                client = KernelClient(kernel, self.key_dir)
                self._clients[kernel] = client
            return client

    # -- keys ------------------------------------------------------------------------------------

    def keygen(
        self,
        kernel: str,
        *,
        force: bool = False,
        upload: bool = False,
        progress: Progress = _no_progress,
    ) -> KeySet:
        """Generate the key set of ``kernel`` (kept if it exists, unless ``force``); with
        ``upload``, also add its evaluation keys to the IPFS node and remember the CID."""
        keys = keygen(kernel, self.home, force=force, progress=progress)
        if upload:
            ref = upload_evaluation_keys(self.store(), keys, progress=progress)
            keys = dataclasses.replace(keys, evaluation_keys_cid=ref.cid)
        return keys

    # -- jobs on disk ----------------------------------------------------------------------------

    def _deployment_ref(self) -> tuple[int, str]:
        # From the deployment file alone: naming a job's directory must work with the chain
        # down (`client fetch` of a decrypted job, `client jobs`).
        deployment = self._deployment or Deployment.load(self.settings.deployment_path)
        return deployment.chain_id, to_checksum_address(deployment.address(MARKET))

    def job_dir(self, job: JobLike = None) -> JobDir:
        """The directory of ``job``: a JobRef, a job id on this home's deployment, a job key, or
        None for the latest job posted from this home on this deployment."""
        if isinstance(job, JobRef):
            ref = job
        elif isinstance(job, str) and not job.strip().isdigit():
            ref = JobRef.parse(job)
        elif job is None:
            chain_id, market = self._deployment_ref()
            prefix = f"{chain_id}-{market.lower()}-"
            mine = [d for d in jd.list_jobs(self.home) if d.path.name.startswith(prefix)]
            if not mine:
                raise JobNotFoundError(
                    f"no job was posted from {self.home} on market {market} (chain {chain_id})",
                    hint="post one with `blindframe client post` or name the job",
                )
            return mine[-1]
        else:
            chain_id, market = self._deployment_ref()
            ref = JobRef(chain_id, market, int(job))
        path = jd.jobs_root(self.home) / ref.key
        if not path.is_dir():
            raise JobNotFoundError(
                f"job {ref.job_id} (market {ref.market}, chain {ref.chain_id}) has no directory "
                f"in {self.home / 'jobs'}",
                hint="only jobs posted from this home can be verified and decrypted; "
                "`blindframe client jobs` lists them",
            )
        return JobDir(path)

    def jobs(self, *, with_status: bool = True) -> list[JobSummary]:
        """This home's jobs, oldest first; pending ones are adopted once their JobPosted event is
        found. ``with_status`` reads each job's state on this deployment's chain; with the chain
        unreachable, each row carries the state last read (``status_at``) and ``chain_error``."""
        return _listing.jobs(self, with_status=with_status)

    def _check_here(self, ref: JobRef) -> None:
        chain_id, market = self._deployment_ref()
        if (ref.chain_id, ref.market) != (chain_id, market):
            raise JobStateError(
                f"job {ref.key} is on market {ref.market} (chain {ref.chain_id}), but this "
                f"home's deployment is market {market} (chain {chain_id})",
                hint="point --deployment / --rpc at the job's network",
            )

    def _check_funds(self, market: Market, need: int, gas: int, what: str) -> int:
        w3 = market.w3
        address = to_checksum_address(self.address)
        balance = int(self._rpc(lambda: w3.eth.get_balance(address), "read the balance"))
        # Priced as the sender will price the transaction (one fee rule: TxSender.max_fee).
        fees = market.sender.max_fee(gas) if gas and market.sender is not None else 0
        if balance < need + fees:
            detail = f" ({format_eth(need)} plus about {format_eth(fees)} of gas)" if fees else ""
            raise InsufficientFundsError(
                f"{address} holds {format_eth(balance)}; {what} needs "
                f"{format_eth(need + fees)}{detail}",
                hint="fund the account, or lower --reward, --replication or the frame size",
            )
        return balance

    # -- the job's path: post, watch, verify, contest, settle, decrypt ---------------------------

    def quote(
        self,
        scene: SceneLike,
        options: JobOptions | None = None,
        *,
        progress: Progress = _no_progress,
    ) -> Quote:
        """What posting ``scene`` would cost (escrow, gas, upload) and take, after every check
        ``post`` makes; nothing is uploaded or sent (see :mod:`blindframe.client.quote`)."""
        return _posting.quote(self, scene, options, progress=progress)

    def post(
        self,
        scene: SceneLike,
        options: JobOptions | None = None,
        *,
        progress: Progress = _no_progress,
        confirm: Callable[[Quote], bool] | None = None,
        max_cost_wei: int | None = None,
        allow_empty: bool = False,
    ) -> PostedJob:
        """Encrypt ``scene`` (a Scene, a scene/mesh/image file, or ``"sample"``), upload it, and
        post the job with its escrow. Every check happens before anything is sent on chain;
        the quote comes before the upload (above ``max_cost_wei``: CostLimitError; declined by
        ``confirm(quote)``: ConfirmationError). A volume frame that would be all background is
        refused unless ``allow_empty``."""
        return _posting.post(
            self,
            scene,
            options,
            progress=progress,
            confirm=confirm,
            max_cost_wei=max_cost_wei,
            allow_empty=allow_empty,
        )

    def snapshot(self, job: JobLike = None) -> JobSnapshot:
        """The job's state now: every tile's state and holder, leases, contests, escrow and
        payments, recent events (``snapshot.to_json()`` is what the dashboard serves)."""
        return _watching.snapshot(self, job)

    def watch(
        self,
        job: JobLike = None,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        until: Callable[[JobSnapshot], bool] | None = None,
    ) -> Iterator[JobSnapshot]:
        """Snapshots every ``interval`` seconds until ``until(snapshot)`` (default: the job is
        complete, or expired or cancelled with no lease still able to deliver) or ``timeout``
        passes."""
        return _watching.watch(self, job, interval=interval, timeout=timeout, until=until)

    def verify(self, job: JobLike = None, *, progress: Progress = _no_progress) -> VerifyReport:
        """Fetch, check and decrypt against the twin every revealed lease result not checked
        yet; verdicts are saved per lease and tile."""
        return _verifying.verify(self, job, progress=progress)

    def dispute(
        self,
        job: JobLike = None,
        *,
        tile: int | None = None,
        lease: int | None = None,
        verify: bool = True,
        progress: Progress = _no_progress,
    ) -> list[DisputeRecord]:
        """Dispute tiles whose results failed verification (``tile``: that one), posting the
        market's dispute bond each, and draw their juries."""
        return _contesting.dispute(
            self, job, tile=tile, lease=lease, verify=verify, progress=progress
        )

    def draw_juries(self, job: JobLike = None) -> list[int]:
        """Draw the jurors of this job's contests whose draw is armed on a past block."""
        return _contesting.draw_juries(self, job)

    def resolve_contests(self, job: JobLike = None) -> list[int]:
        """Resolve this job's open contests whose verdict is final and past its window."""
        return _contesting.resolve_contests(self, job)

    def challenge_availability(self, job: JobLike = None) -> list[ChallengeRecord]:
        """Challenge the availability of every revealed replica lease whose result the client
        could not get, posting the market's dispute bond each."""
        return _contesting.challenge_availability(self, job)

    def resolve_availability(self, job: JobLike = None) -> list[int]:
        """Resolve this job's availability challenges left unanswered past their deadline."""
        return _contesting.resolve_availability(self, job)

    def settle(
        self, job: JobLike = None, *, verify: bool = True, progress: Progress = _no_progress
    ) -> SettleReport:
        """Pay for leases whose every tile the client verified, once the chain counts them as
        verified and no contest holds them (``verify`` first checks what is new)."""
        return _settling.settle(self, job, verify=verify, progress=progress)

    def withdraw(self) -> int:
        """Take this account's pending balance out of the market; returns the wei withdrawn."""
        return _settling.withdraw(self)

    def cancel(self, job: JobLike = None, *, withdraw: bool = True) -> CancelReport:
        """Cancel a job before its deadline, taking back the escrow no live lease holds."""
        return _settling.cancel(self, job, withdraw=withdraw)

    def refund(self, job: JobLike = None, *, withdraw: bool = True) -> RefundReport:
        """After the deadline (or a cancel), take back the escrow no live lease holds."""
        return _settling.refund(self, job, withdraw=withdraw)

    def retry(
        self,
        job: JobLike = None,
        *,
        reward_wei: int | None = None,
        deadline: int | None = None,
        dry_run: bool = False,
    ) -> RetryReport:
        """Post the tiles ``job``'s frame still lacks as a follow-up job, reusing its uploaded
        inputs and keys, once its latest attempt ended (``dry_run``: only the quote; see
        :mod:`._retrying`)."""
        return _retrying.retry(self, job, reward_wei=reward_wei, deadline=deadline, dry_run=dry_run)

    def decrypt(
        self,
        job: JobLike = None,
        *,
        output: Path | None = None,
        twin: Path | bool = False,
        scale: int = 1,
        verify: bool = True,
        progress: Progress = _no_progress,
        frame_format: str | None = None,
    ) -> DecryptResult:
        """Decrypt the whole frame from verified results and write it as PNG, or ``output`` in
        ``frame_format`` (png8|png16|exr) or its extension's format (``twin``: the plaintext
        twin's frame too)."""
        return _decrypting.decrypt(
            self,
            job,
            output=output,
            twin=twin,
            scale=scale,
            verify=verify,
            progress=progress,
            frame_format=frame_format,
        )

    # -- the whole loop --------------------------------------------------------------------------

    def step(
        self, job: JobLike = None, *, dispute: bool = True, progress: Progress = _no_progress
    ) -> StepReport:
        """One round of the client's duties: verify, challenge, dispute, draw, resolve, settle."""
        return _rendering.step(self, job, dispute=dispute, progress=progress)

    def render(
        self,
        scene: SceneLike,
        options: JobOptions | None = None,
        *,
        output: Path | None = None,
        twin: Path | bool = False,
        scale: int = 1,
        interval: float = 1.0,
        timeout: float | None = None,
        dispute: bool = True,
        retries: int = DEFAULT_RETRIES,
        progress: Progress = _no_progress,
        on_posted: Callable[[PostedJob], None] | None = None,
        on_snapshot: Callable[[JobSnapshot], None] | None = None,
        on_retry: Callable[[RetryReport], None] | None = None,
        confirm: Callable[[Quote], bool] | None = None,
        max_cost_wei: int | None = None,
        frame_format: str | None = None,
        allow_empty: bool = False,
    ) -> RenderResult:
        """post -> watch -> verify -> settle -> decrypt, in one call (see :mod:`._rendering`)."""
        return _rendering.render(
            self,
            scene,
            options,
            output=output,
            twin=twin,
            scale=scale,
            frame_format=frame_format,
            interval=interval,
            timeout=timeout,
            dispute=dispute,
            retries=retries,
            progress=progress,
            on_posted=on_posted,
            on_snapshot=on_snapshot,
            on_retry=on_retry,
            confirm=confirm,
            max_cost_wei=max_cost_wei,
            allow_empty=allow_empty,
        )
