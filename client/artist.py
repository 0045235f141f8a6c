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

Methods are safe to call from several threads (the dashboard serves snapshots while ``render``
runs): connections are made once under a lock, each call opens its own event-index connection,
and decryption is serialized.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils.address import to_checksum_address
from web3.types import Wei

from blindframe.client import jobdir as jd
from blindframe.client._frames import write_frame_png
from blindframe.client.errors import (
    ClientError,
    InsufficientFundsError,
    JobExpiredError,
    JobNotFoundError,
    JobOptionsError,
    JobStateError,
    RenderTimeoutError,
    ResultUnavailableError,
)
from blindframe.client.fftplan import job_plan
from blindframe.client.jobdir import JobDir, JobRef, LeaseVerdict, Verdicts
from blindframe.client.keys import (
    KeySet,
    ensure_keys,
    key_directory,
    keygen,
    upload_evaluation_keys,
)
from blindframe.client.options import (
    DEFAULT_DEADLINE,
    DEFAULT_FRAME,
    DEFAULT_LEASE_LENGTH,
    DEFAULT_REWARD_WEI,
    JobOptions,
)
from blindframe.client.progress import DECRYPT, DOWNLOAD, ENCRYPT, UPLOAD, VERIFY, Progress
from blindframe.client.progress import no_progress as _no_progress
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
from blindframe.client.scene import Scene, default_kernel, load_scene
from blindframe.client.scene import to_kernel_input as _to_kernel_input
from blindframe.client.snapshot import (
    JobSnapshot,
    TileLayout,
    build_snapshot,
    job_events,
    job_ids,
)
from blindframe.client.units import format_duration, format_eth
from blindframe.coordinator.accounts import find_keystore, read_password_file, unlock
from blindframe.coordinator.chain import connect, with_retries
from blindframe.coordinator.config import Settings
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.coordinator.events import ChainEvent, EventIndexer
from blindframe.coordinator.manifest import ContentRef, Manifest
from blindframe.coordinator.market import (
    AvailabilityChallengeView,
    ContestView,
    LeaseStatus,
    LeaseView,
    Market,
    kernel_id_bytes,
)
from blindframe.coordinator.results import LeaseResult, open_lease_result
from blindframe.coordinator.store import (
    ContentIntegrityError,
    ContentTooLargeError,
    IpfsStore,
    StoreError,
    UnsupportedContentError,
)
from blindframe.coordinator.store.cid import Cid
from blindframe.coordinator.tx import TxSender
from blindframe.errors import BlindframeError
from blindframe.fhe_core.errors import FheCoreError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.jobs import JobSecrets, PublicJob

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_FRAME",
    "DEFAULT_LEASE_LENGTH",
    "DEFAULT_REWARD_WEI",
    "SAMPLE",
    "Artist",
    "CancelReport",
    "ChallengeRecord",
    "DecryptResult",
    "DisputeRecord",
    "JobOptions",
    "JobSummary",
    "PostedJob",
    "RefundReport",
    "RenderResult",
    "SettleReport",
    "StepReport",
    "VerifyReport",
]

SAMPLE = "sample"
# A CIDv0 ("Qm" + 44 base58 characters): the length of the manifest CID postJob will carry, used
# to estimate postJob's gas before the manifest exists.
_PLACEHOLDER_CID = b"Qm" + b"1" * 44
_RESULT_HEADER_SLACK = 1 << 16
# Leaves an availability challenge demands of one tile: the digest leaf (the whole bundle's
# hash) and random coefficient leaves; the answer costs the node a proof per leaf (its gas comes
# out of the bond).
_CHALLENGE_LEAVES = 8
# Anvil's chain id: there the client may mine an empty block so a jury draw armed on the latest
# block can happen now (on a real chain the next block comes by itself).
_DEV_CHAIN_ID = 31337

SceneLike = Scene | str | Path
JobLike = JobRef | int | str | None


@dataclass(frozen=True)
class _Prepared:
    kernel: str
    # The kernel's plaintext input, made on demand: the sample scene takes seconds to compute,
    # which post spends only once the chain, the funds and the IPFS node passed their checks.
    inputs: Callable[[], tuple[np.ndarray[Any, np.dtype[np.int64]], ...]]
    frame: tuple[int, int]
    params: dict[str, Any]
    canaries: int
    tile_count: int
    scene: dict[str, Any]


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
        """The time the next block will carry at the earliest: the later of the latest block's
        timestamp and the wall clock (an idle local chain mines no blocks, so its latest
        timestamp lags)."""
        market = self.market()
        return max(int(self._rpc(market.now, "read the latest block")), int(time.time()))

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
        _, deployment = self._chain()
        return deployment.chain_id, self.market().address

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
        found. ``with_status`` reads each job's state on this deployment's chain."""
        dirs = jd.list_jobs(self.home)
        if any(d.pending for d in dirs):
            with contextlib.suppress(BlindframeError):
                self._adopt_pending()
                dirs = jd.list_jobs(self.home)
        out = []
        here: tuple[int, str] | None = None
        if with_status:
            with contextlib.suppress(BlindframeError):
                here = self._deployment_ref()
        for job in dirs:
            try:
                state = job.state()
            except JobNotFoundError:
                state = {}
            phase, counts = None, {}
            if here is not None and not job.pending:
                ref = job.ref
                if (ref.chain_id, ref.market) == here:
                    with contextlib.suppress(BlindframeError):
                        snap = self.snapshot(ref)
                        phase, counts = snap.phase, snap.tile_counts
            out.append(
                JobSummary(
                    key=job.path.name,
                    directory=job.path,
                    pending=job.pending,
                    state=state,
                    phase=phase,
                    tile_states=counts,
                    decrypted=(job.path / "frame.png").is_file(),
                )
            )
        return out

    def _adopt_pending(self) -> None:
        chain_id, market = self._deployment_ref()
        posted = [e for e in self.events() if e.name == "JobPosted"]
        for job in jd.list_jobs(self.home):
            if not job.pending:
                continue
            state = job.state()
            if (state.get("chainId"), state.get("market")) != (chain_id, market):
                continue
            cid = state.get("manifestCid")
            for event in posted:
                if (
                    str(event.args.get("client", "")).lower() == str(state.get("client")).lower()
                    and _event_cid(event.args.get("manifestCid")) == cid
                ):
                    jd.promote(job, JobRef(chain_id, market, int(event.args["jobId"])))
                    break

    # -- post ------------------------------------------------------------------------------------

    def _prepare(self, scene: SceneLike, options: JobOptions) -> _Prepared:
        from blindframe.fhe_core.kernels import get_kernel
        from blindframe.fhe_core.server import tile_clear_args
        from blindframe.fhe_core.tiling import tile_grid

        options.check()
        if isinstance(scene, str) and scene == SAMPLE:
            kernel_id = options.kernel or "volume@1"
            kernel = get_kernel(kernel_id)
            frame = options.frame or DEFAULT_FRAME
            summary: dict[str, Any] = {"kind": "sample", "source": "the sample torus knot"}
            inputs = functools.partial(_sample_inputs, kernel.name, frame)
        else:
            loaded = (
                scene
                if isinstance(scene, Scene)
                else load_scene(Path(scene), resolution=options.resolution, up=options.up)
            )
            kernel_id = options.kernel or default_kernel(loaded.kind)
            kernel = get_kernel(kernel_id)
            converted = _to_kernel_input(loaded, kernel_id)  # now: a wrong scene fails early
            inputs = functools.partial(tuple, converted)
            summary = loaded.summary()
            if kernel.name == "volume":
                frame = options.frame or DEFAULT_FRAME
            else:
                frame = loaded.frame_hw
                if options.frame is not None and tuple(options.frame) != frame:
                    raise JobOptionsError(
                        f"the scene is {frame[1]}x{frame[0]} pixels; --size "
                        f"{options.frame[1]}x{options.frame[0]} would need resampling",
                        hint="drop --size, or re-render the passes at that size",
                    )
        params = (
            dict(options.params) if options.params is not None else _default_params(kernel.name)
        )
        th, tw = kernel.tile_hw
        real = tile_grid(frame, kernel.tile_hw, kernel.halo)
        if kernel.name == "volume":
            if frame[0] % th or frame[1] % tw:
                raise JobOptionsError(
                    f"volume frames are whole {tw}x{th} tiles: {frame[1]}x{frame[0]} is not",
                    hint=f"use a width and height that are multiples of {th}",
                )
            canaries = 1 if options.canaries is None else options.canaries
            if canaries > 16:
                raise JobOptionsError(
                    f"volume jobs take 0..16 canary margin tiles (not {canaries})"
                )
            tiles = (real.tiles_y + 2 * canaries) * (real.tiles_x + 2 * canaries)
        else:
            canaries = max(1, real.count // 8) if options.canaries is None else options.canaries
            tiles = real.count + canaries
        tile_clear_args(kernel_id, params, real.padded_hw, 0)  # the public params, checked now
        if options.fft_plan is not None:
            job_plan(kernel_id, self.home, given=options.fft_plan)  # a given plan, checked now
        if tiles > 4096:
            raise JobOptionsError(
                f"{tiles} tiles is more than one job takes here (4096)",
                hint="render a smaller frame, or split it into several jobs",
            )
        return _Prepared(kernel_id, inputs, frame, params, canaries, tiles, summary)

    def _check_funds(self, market: Market, need: int, gas: int, what: str) -> int:
        w3 = market.w3
        address = to_checksum_address(self.address)
        balance = int(self._rpc(lambda: w3.eth.get_balance(address), "read the balance"))
        block = self._rpc(lambda: w3.eth.get_block("latest"), "read the latest block")
        base = int(block.get("baseFeePerGas") or 0)
        tip = (
            int(self._rpc(lambda: w3.eth.max_priority_fee, "read the priority fee")) if base else 0
        )
        price = 2 * base + tip if base else int(self._rpc(lambda: w3.eth.gas_price, "gas price"))
        fees = int(gas * 1.25) * price
        if balance < need + fees:
            detail = f" ({format_eth(need)} plus about {format_eth(fees)} of gas)" if fees else ""
            raise InsufficientFundsError(
                f"{address} holds {format_eth(balance)}; {what} needs "
                f"{format_eth(need + fees)}{detail}",
                hint="fund the account, or lower --reward, --replication or the frame size",
            )
        return balance

    def _estimate_post(
        self, market: Market, prepared: _Prepared, options: JobOptions, deadline: int, depth: int
    ) -> int:
        from web3.exceptions import ContractLogicError, Web3RPCError

        escrow = prepared.tile_count * options.replication * options.reward_wei
        function = market.contract.functions.postJob(
            _PLACEHOLDER_CID,
            kernel_id_bytes(prepared.kernel),
            prepared.tile_count,
            options.replication,
            options.reward_wei,
            options.lease_length,
            deadline,
            options.priority,
            depth,
        )
        try:
            return int(
                self._rpc(
                    lambda: function.estimate_gas(
                        {"from": to_checksum_address(self.address), "value": Wei(escrow)}
                    ),
                    "estimate the gas of postJob",
                )
            )
        except ContractLogicError as exc:
            raise TxSender.revert_error(market.decoder, exc, "posting the job") from None
        except Web3RPCError as exc:
            if "insufficient funds" in str(exc).lower():
                self._check_funds(market, escrow, 200_000, "posting the job")
            raise JobOptionsError(f"the node refused to estimate postJob: {exc}") from None

    def post(
        self,
        scene: SceneLike,
        options: JobOptions | None = None,
        *,
        progress: Progress = _no_progress,
    ) -> PostedJob:
        """Encrypt ``scene`` (a Scene, a scene/mesh/image file, or ``"sample"``), upload it, and
        post the job with its escrow. Every check happens before anything is sent on chain."""
        from blindframe.fhe_core.jobs import encrypt_frame_job, encrypt_volume_job
        from blindframe.fhe_core.kernels import client_spec_hash, get_kernel
        from blindframe.fhe_core.merkle import leaf_depth

        options = options or JobOptions()
        timings: dict[str, float] = {}
        prepared = self._prepare(scene, options)
        kernel = get_kernel(prepared.kernel)
        depth = leaf_depth(prepared.kernel)
        escrow = prepared.tile_count * options.replication * options.reward_wei

        # The chain: reachable, our deployment, parameters the contract accepts, funds enough.
        market = self._signing_market()
        params = market.params
        max_lease = int(params.get("maxLeaseLength", 0))
        if max_lease and options.lease_length > max_lease:
            raise JobOptionsError(
                f"this market allows leases of at most {format_duration(max_lease)} "
                f"(not {format_duration(options.lease_length)})"
            )
        deadline = self.chain_now() + options.deadline
        what = (
            f"posting {prepared.tile_count} tiles x {options.replication} replica(s) at "
            f"{format_eth(options.reward_wei)}"
        )
        self._check_funds(market, escrow, 0, what)  # the escrow alone, before estimating gas
        gas = self._estimate_post(market, prepared, options, deadline, depth)
        self._check_funds(market, escrow, gas, what)

        # The IPFS node: answering before we spend time encrypting.
        with IpfsStore(self.settings.ipfs_api, retry_for=self._preflight_retry_for) as probe:
            probe.version()

        started = time.perf_counter()
        keys = ensure_keys(prepared.kernel, self.home, progress=progress)
        timings["keygen"] = time.perf_counter() - started

        # The FFT plan every replica pins (honest replicas are then bit-identical).
        started = time.perf_counter()
        plan = job_plan(prepared.kernel, self.home, given=options.fft_plan, progress=progress)
        timings["plan"] = time.perf_counter() - started

        started = time.perf_counter()
        progress(ENCRYPT, 0, prepared.tile_count)
        plain = prepared.inputs()
        with self._fhe_lock:
            client = self._kernel_client(prepared.kernel)
            if kernel.name == "volume":
                encrypted = encrypt_volume_job(
                    client,
                    plain[0],
                    prepared.params,
                    prepared.frame,
                    margin_tiles=prepared.canaries,
                )
            else:
                encrypted = encrypt_frame_job(
                    client, plain, prepared.params, canaries=prepared.canaries
                )
        progress(ENCRYPT, prepared.tile_count, prepared.tile_count)
        timings["encrypt"] = time.perf_counter() - started
        if encrypted.public.tasks != prepared.tile_count:
            raise ClientError(
                f"encryption made {encrypted.public.tasks} tasks, {prepared.tile_count} expected"
            )

        started = time.perf_counter()
        store = self.store()
        added: list[str] = []
        try:
            eval_ref = upload_evaluation_keys(store, keys, progress=progress)
            total = sum(len(b) for b in encrypted.inputs)
            done = 0
            inputs = []
            for index, bundle in enumerate(encrypted.inputs):
                result = store.add_bytes(bundle, name=f"input-{index}.bundle")
                added.append(result.cid)
                inputs.append(ContentRef(result.cid, result.size))
                done += len(bundle)
                progress(UPLOAD, done, total)
            manifest = Manifest.create(
                kernel=prepared.kernel,
                client_spec_hash=client_spec_hash(prepared.kernel),
                leaf_depth=depth,
                job=encrypted.public.to_json(),
                evaluation_keys=eval_ref,
                inputs=inputs,
                fft_plan=plan.plan,
            )
            manifest_bytes = manifest.to_bytes()
            manifest_cid = store.add_bytes(manifest_bytes, name="manifest.json").cid
            added.append(manifest_cid)
        except BaseException:
            _unpin(store, added)
            raise
        timings["upload"] = time.perf_counter() - started
        uploaded = sum(len(b) for b in encrypted.inputs) + len(manifest_bytes)

        chain_id, market_address = self._deployment_ref()
        state = {
            "chainId": chain_id,
            "market": market_address,
            "client": self.address,
            "kernel": prepared.kernel,
            "frame": list(prepared.frame),
            "virtualFrame": list(encrypted.public.frame_hw),
            "tileCount": prepared.tile_count,
            "replication": options.replication,
            "rewardPerTileReplica": str(options.reward_wei),
            "escrow": str(escrow),
            "leaseLength": options.lease_length,
            "deadline": deadline,
            "priority": options.priority,
            "leafDepth": depth,
            "fftPlan": plan.to_json(),
            "canaries": prepared.canaries,
            "params": prepared.params,
            "manifestCid": manifest_cid,
            "evaluationKeysCid": eval_ref.cid,
            "inputCids": [ref.cid for ref in inputs],
            "scene": prepared.scene,
            "options": options.to_json(),
        }
        pending = jd.create_pending(
            self.home,
            manifest_cid,
            manifest=manifest_bytes,
            secrets=encrypted.secrets,
            state=state,
        )

        # Funds may have moved while we encrypted: check again, then post.
        self._check_funds(market, escrow, gas, "posting the job")
        started = time.perf_counter()
        try:
            job_id = market.post_job(
                manifest_cid=manifest_cid,
                kernel_id=prepared.kernel,
                tile_count=prepared.tile_count,
                replication=options.replication,
                reward_per_tile_replica=options.reward_wei,
                lease_length=options.lease_length,
                deadline=deadline,
                priority=options.priority,
                leaf_depth=depth,
            )
        except ContractRevertError:
            # Refused before anything was mined: nothing exists on chain, forget the attempt.
            shutil.rmtree(pending.path, ignore_errors=True)
            _unpin(store, added)
            raise
        timings["post"] = time.perf_counter() - started
        ref = JobRef(chain_id, market_address, job_id)
        job = jd.promote(pending, ref)
        return PostedJob(
            ref=ref,
            directory=job.path,
            kernel=prepared.kernel,
            frame=prepared.frame,
            tile_count=prepared.tile_count,
            replication=options.replication,
            reward_wei=options.reward_wei,
            escrow_wei=escrow,
            deadline=deadline,
            manifest_cid=manifest_cid,
            evaluation_keys_cid=eval_ref.cid,
            uploaded_bytes=uploaded,
            keys_created=keys.created,
            fft_plan=plan,
            seconds=timings,
        )

    # -- state -----------------------------------------------------------------------------------

    def _check_here(self, ref: JobRef) -> None:
        chain_id, market = self._deployment_ref()
        if (ref.chain_id, ref.market) != (chain_id, market):
            raise JobStateError(
                f"job {ref.key} is on market {ref.market} (chain {ref.chain_id}), but this "
                f"home's deployment is market {market} (chain {chain_id})",
                hint="point --deployment / --rpc at the job's network",
            )

    def _lease(self, lease_id: int) -> LeaseView:
        cached = self._final_leases.get(lease_id)
        if cached is not None:
            return cached
        market = self.market()
        view: LeaseView = self._rpc(lambda: market.lease(lease_id), f"read lease {lease_id}")
        if view.state in (LeaseStatus.RECLAIMED, LeaseStatus.FORFEITED) or (
            view.state == LeaseStatus.SETTLED and view.openContests == 0
        ):
            self._final_leases[lease_id] = view
        return view

    def _verified_at(self, lease_id: int) -> int:
        market = self.market()
        return int(self._rpc(lambda: market.verified_at(lease_id), "read verifiedAt"))

    def _contest(self, contest_id: int) -> ContestView:
        market = self.market()
        view: ContestView = self._rpc(
            lambda: market.contest(contest_id), f"read contest {contest_id}"
        )
        return view

    def _jury(self, contest_id: int) -> tuple[list[int], tuple[int, int]]:
        """A contest's juror leases by seat, and its live verdict (lease, fixed at)."""
        market = self.market()
        seats: list[int] = self._rpc(
            lambda: market.jurors(contest_id), f"read contest {contest_id}'s jury"
        )
        ruling: tuple[int, int] = self._rpc(
            lambda: market.verdict(contest_id), f"read contest {contest_id}'s verdict"
        )
        return seats, ruling

    def _challenge(self, challenge_id: int) -> AvailabilityChallengeView:
        market = self.market()
        view: AvailabilityChallengeView = self._rpc(
            lambda: market.availability_challenge(challenge_id),
            f"read availability challenge {challenge_id}",
        )
        return view

    def _layout(
        self, job: JobDir
    ) -> tuple[dict[int, TileLayout], tuple[int, int], tuple[int, int]]:
        from blindframe.fhe_core.kernels import get_kernel
        from blindframe.fhe_core.tiling import tile_grid

        key = job.path.name
        cached = self._layouts.get(key)
        if cached is not None:
            return cached
        public = job.public()
        secrets = job.secrets()
        kernel = get_kernel(public.kernel_id)
        layout: dict[int, TileLayout] = {}
        if public.shared_input:
            grid = tile_grid(public.frame_hw, kernel.tile_hw)
            frame = public.frame_hw
            for task in secrets.tasks:
                row, col = divmod(task.task_index, grid.tiles_x)
                layout[task.task_index] = TileLayout(row, col, task.canary)
        else:
            grid = tile_grid(secrets.real_hw, kernel.tile_hw, kernel.halo)
            frame = secrets.real_hw
            for task in secrets.tasks:
                row, col = divmod(task.source_tile, grid.tiles_x)
                layout[task.task_index] = TileLayout(row, col, task.canary)
        out = (layout, (int(frame[0]), int(frame[1])), (grid.tiles_y, grid.tiles_x))
        self._layouts[key] = out
        return out

    def snapshot(self, job: JobLike = None) -> JobSnapshot:
        """The job's state now: every tile's state and holder, leases, contests, escrow and
        payments, recent events (``snapshot.to_json()`` is what the dashboard serves)."""
        directory = self.job_dir(job)
        ref = directory.ref
        self._check_here(ref)
        market = self.market()
        indexed = self.events()
        events, lease_ids, contest_ids = job_events(indexed, ref.job_id)
        challenge_ids = job_ids(indexed, ref.job_id)[2]
        view = self._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
        leases = {lease_id: self._lease(lease_id) for lease_id in sorted(lease_ids)}
        verified_at = {
            lease_id: self._verified_at(lease_id)
            for lease_id, lease in leases.items()
            if lease.state == LeaseStatus.REVEALED
        }
        contests = {cid: self._contest(cid) for cid in sorted(contest_ids)}
        juries = {cid: self._jury(cid) for cid in contests}
        challenges = {cid: self._challenge(cid) for cid in sorted(challenge_ids)}
        latest = self._rpc(lambda: market.w3.eth.get_block("latest"), "read the latest block")
        layout, frame, grid = self._layout(directory)
        client = view.client
        return build_snapshot(
            ref=ref,
            job=view,
            manifest_cid=str(directory.state().get("manifestCid", "")),
            frame=frame,
            grid=grid,
            layout=layout,
            events=events,
            leases=leases,
            verified_at=verified_at,
            contests=contests,
            verdicts=directory.verdicts(),
            now=int(latest["timestamp"]),
            block=int(latest["number"]),
            client_pending=int(self._rpc(lambda: market.pending_balance(client), "read balance")),
            refundable=int(self._rpc(lambda: market.refundable(ref.job_id), "read refundable")),
            jurors={cid: seats for cid, (seats, _) in juries.items()},
            rulings={cid: ruling for cid, (_, ruling) in juries.items()},
            challenges=challenges,
        )

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
        stop = until or _finished
        started = time.monotonic()
        ref = self.job_dir(job).ref
        while True:
            snap = self.snapshot(ref)
            yield snap
            if stop(snap):
                return
            if timeout is not None and time.monotonic() - started >= timeout:
                return
            time.sleep(interval)

    # -- verify ----------------------------------------------------------------------------------

    def verify(self, job: JobLike = None, *, progress: Progress = _no_progress) -> VerifyReport:
        """Fetch every revealed lease result not checked yet, check its bytes give the revealed
        root, decrypt each tile and compare it (canaries included) with the plaintext twin.
        Verdicts are saved per lease and tile; an unreachable result is retried next time."""
        directory = self.job_dir(job)
        ref = directory.ref
        self._check_here(ref)
        public = directory.public()
        secrets = directory.secrets()
        manifest = directory.manifest()
        events, lease_ids, _ = job_events(self.events(), ref.job_id)
        cids = {
            int(e.args["leaseId"]): _event_cid(e.args.get("resultCid"))
            for e in events
            if e.name == "Revealed"
        }
        verdicts = directory.verdicts()
        todo = []
        for lease_id in sorted(lease_ids):
            lease = self._lease(lease_id)
            if lease.state not in (LeaseStatus.REVEALED, LeaseStatus.SETTLED):
                continue
            if lease_id not in cids:
                # Revealed after the events above were read: its CID comes with the next poll
                # (judging it now would call an honest result tampered).
                continue
            known = verdicts.leases.get(lease_id)
            if known is not None and known.final:
                continue
            if known is not None and known.status == "unavailable" and self._challenged(lease_id):
                # Its node is asked to open leaves on chain: fetch again once that is answered
                # (an unanswered challenge forfeits the lease).
                continue
            todo.append((lease_id, lease))
        checked: list[LeaseVerdict] = []
        downloaded = 0
        tiles_total = sum(lease.count for _, lease in todo)
        tiles_done = 0
        progress(VERIFY, 0, tiles_total)
        for lease_id, lease in todo:
            verdict, size = self._verify_lease(
                directory, public, secrets, manifest, lease_id, lease, cids.get(lease_id), progress
            )
            previous = verdicts.leases.get(lease_id)
            if previous is not None and verdict.status == "unavailable":
                verdict.attempts = previous.attempts + 1
            # Save after each lease: a crash later keeps what was learned.
            verdicts = directory.verdicts()
            verdicts.leases[lease_id] = verdict
            directory.save_verdicts(verdicts)
            checked.append(verdict)
            downloaded += size
            tiles_done += lease.count
            progress(VERIFY, tiles_done, tiles_total)
        return VerifyReport(ref, tuple(checked), directory.verdicts(), downloaded)

    def _challenged(self, lease_id: int) -> bool:
        market = self.market()
        return bool(self._rpc(lambda: market.open_challenge(lease_id), "read open challenges"))

    def _verify_lease(
        self,
        directory: JobDir,
        public: PublicJob,
        secrets: JobSecrets,
        manifest: Manifest,
        lease_id: int,
        lease: LeaseView,
        cid: str | None,
        progress: Progress,
    ) -> tuple[LeaseVerdict, int]:
        from blindframe.fhe_core.kernels import expected_outputs

        root = bytes(lease.digest)
        verdict = LeaseVerdict(
            lease_id=lease_id,
            lane=lease.lane,
            first_tile=lease.firstTile,
            count=lease.count,
            worker=lease.worker,
            cid=cid or "",
            root="0x" + root.hex(),
            checked_at=int(time.time()),
            attempts=1,
        )
        if cid is None:
            verdict.status, verdict.reason = "tampered", "the revealed result CID is not text"
            verdict.undelivered = True
            return verdict, 0
        try:
            Cid.parse(cid)
        except StoreError as exc:
            verdict.status, verdict.reason = "tampered", f"the revealed CID is invalid: {exc}"
            verdict.undelivered = True
            return verdict, 0
        per_tile = expected_outputs(manifest.kernel)[0][2]
        limit = lease.count * per_tile + _RESULT_HEADER_SLACK
        incoming = directory.outputs / f".incoming-{lease_id}.bflr"
        target = directory.outputs / f"lease-{lease_id}.bflr"
        try:
            self.store().get(
                cid,
                incoming,
                max_size=limit,
                progress=lambda done, total: progress(DOWNLOAD, done, total),
            )
            data = incoming.read_bytes()
        except (StoreError, OSError) as exc:
            incoming.unlink(missing_ok=True)
            message = exc.message if isinstance(exc, BlindframeError) else str(exc)
            # Bytes that fail their CID, oversized files, non-files: the worker's doing. A node
            # that cannot find or reach the content may succeed later.
            bad_content = isinstance(
                exc, ContentIntegrityError | ContentTooLargeError | UnsupportedContentError
            )
            verdict.status = "tampered" if bad_content else "unavailable"
            verdict.reason = message
            verdict.undelivered = True
            return verdict, 0
        try:
            result = open_lease_result(
                data,
                kernel=manifest.kernel,
                job_id=lease.jobId,
                lease_id=lease_id,
                first_tile=lease.firstTile,
                count=lease.count,
                leaf_depth=manifest.leaf_depth,
                root=root,
            )
        except LeaseResultError as exc:
            incoming.unlink(missing_ok=True)
            verdict.status, verdict.reason = "tampered", exc.message
            verdict.undelivered = True
            return verdict, len(data)
        incoming.replace(target)
        verdict.file = target.name
        for tile in lease.tiles:
            wrong, unreadable = self._check_task(public, secrets, tile, result.output(tile))
            if unreadable is not None:
                # The coefficients gave the revealed root, yet the bundle around them does not
                # decrypt: bytes the root does not cover were altered. A dispute compares only
                # coefficients and could not win, so this is not a "wrong" tile to dispute.
                verdict.status = "tampered"
                verdict.reason = (
                    f"tile {tile} does not decrypt although its coefficients give the revealed "
                    f"root (its bundle framing was altered): {unreadable}"
                )
                verdict.tiles.clear()
                verdict.reasons.clear()
                return verdict, len(data)
            verdict.tiles[tile] = "ok" if wrong is None else "wrong"
            if wrong is not None:
                verdict.reasons[tile] = wrong
        verdict.status = "ok" if all(v == "ok" for v in verdict.tiles.values()) else "wrong"
        return verdict, len(data)

    def _check_task(
        self, public: PublicJob, secrets: JobSecrets, task_index: int, output: bytes
    ) -> tuple[str | None, str | None]:
        """(why the decryption differs from the twin, why it does not decrypt): both None
        when the task's output decrypts to exactly the twin's pixels."""
        from blindframe.fhe_core.client import check_against_twin
        from blindframe.fhe_core.errors import TwinMismatchError
        from blindframe.fhe_core.jobs import task_clear_args

        tasks = {t.task_index: t for t in secrets.tasks}
        task = tasks.get(task_index)
        if task is None:
            return None, f"task {task_index} is not part of this job"
        if public.shared_input:
            if secrets.volume is None:
                return None, "the job's secrets hold no volume to check against"
            plain: tuple[Any, ...] = (secrets.volume,)
        else:
            plain = secrets.plain[task.source_tile]
        kind = "canary tile" if task.canary else "tile"
        with self._fhe_lock:
            client = self._kernel_client(public.kernel_id)
            try:
                got = client.decrypt(output, tile_index=task_index)
            except FheCoreError as exc:
                return None, exc.message
            except Exception as exc:  # noqa: BLE001 - Concrete refusing a worker's ciphertext
                return None, f"{kind} {task_index}: {type(exc).__name__}: {exc}"
            try:
                check_against_twin(
                    client.kernel,
                    got,
                    plain,
                    task_clear_args(public, task_index),
                    f"{kind} {task_index}",
                )
            except TwinMismatchError as exc:
                return exc.message, None
        return None, None

    # -- settle, dispute, contests ---------------------------------------------------------------

    def settle(
        self, job: JobLike = None, *, verify: bool = True, progress: Progress = _no_progress
    ) -> SettleReport:
        """Pay for leases whose every tile the client verified, once the chain counts them as
        verified and no contest holds them (``verify`` first checks what is new)."""
        directory = self.job_dir(job)
        ref = directory.ref
        if verify:
            self.verify(ref, progress=progress)
        snap = self.snapshot(ref)
        verdicts = directory.verdicts()
        now = self.chain_now()
        ready, waiting = [], []
        for lease in snap.leases:
            if lease.juror or lease.status != "revealed":
                continue
            why = _settle_blocker(lease, verdicts, now)
            if why is None:
                ready.append(lease.lease_id)
            else:
                waiting.append({"leaseId": lease.lease_id, "reason": why})
        settled: list[int] = []
        paid = 0
        if ready:
            market = self._signing_market()
            # The snapshot comes from indexed events, which can lag the chain by a block: read
            # each lease's status now, so a lease settled a moment ago is not settled twice.
            ready = [i for i in ready if market.lease(i).state is LeaseStatus.REVEALED]
            for start in range(0, len(ready), 128):
                batch = ready[start : start + 128]
                try:
                    receipt = market.settle(ref.job_id, batch)
                except ContractRevertError as exc:
                    if exc.name in (
                        "MarketNotVerified",
                        "MarketLeaseContested",
                        "MarketAvailabilityOpen",
                    ):
                        waiting += [{"leaseId": i, "reason": exc.message} for i in batch]
                        continue
                    raise
                amounts = [int(e["amount"]) for e in market.events(receipt, "LeaseSettled")]
                paid += sum(amounts)
                settled += batch
                directory.log_action(
                    "settle",
                    leases=batch,
                    paid=str(sum(amounts)),
                    tx="0x" + bytes(receipt["transactionHash"]).hex(),
                )
        return SettleReport(ref, tuple(settled), paid, tuple(waiting))

    def dispute(
        self,
        job: JobLike = None,
        *,
        tile: int | None = None,
        lease: int | None = None,
        verify: bool = True,
        progress: Progress = _no_progress,
    ) -> list[DisputeRecord]:
        """Dispute tiles whose results failed verification, posting the market's dispute bond
        each; a jury of render nodes drawn at random (by stake) then recomputes the tile and
        decides on chain, and a juror's result (verified like any other) stands in for the
        disputed one. The client draws the jury itself once the draw's block has passed.

        Without ``tile``: every tile not contested yet whose result decrypted wrong, and every
        tile of a tampered lease whose bytes gave the revealed root yet do not decrypt, that no
        other replica delivered correctly; leases whose dispute window closed are left. Results
        whose bytes never came (unreachable, or not the revealed root's) are challenged for
        availability instead (:meth:`challenge_availability`): no jury could prove a root far
        whose bytes nobody has. With ``tile``: that tile (of ``lease``, else of the replica lease
        holding it)."""
        directory = self.job_dir(job)
        ref = directory.ref
        if verify:
            self.verify(ref, progress=progress)
        verdicts = directory.verdicts()
        if tile is None and not any(
            v.status in ("wrong", "tampered") for v in verdicts.leases.values()
        ):
            return []
        snap = self.snapshot(ref)
        contested = {c.tile for c in snap.contests}
        by_id = {s.lease_id: s for s in snap.leases}
        market = self._signing_market()
        window = int(market.params.get("acceptanceWindow", 0))
        now = self.chain_now()
        targets: list[tuple[int, int, str]] = []
        if tile is None:
            delivered = {
                t for v in verdicts.leases.values() for t, state in v.tiles.items() if state == "ok"
            }
            for lease_state in snap.leases:
                verdict = verdicts.leases.get(lease_state.lease_id)
                if lease_state.juror or verdict is None or lease_state.status != "revealed":
                    continue
                if verdict.undelivered:
                    continue  # challenged for availability instead
                if lease_state.verified_at and now > lease_state.verified_at + window:
                    continue  # too late: the chain takes no dispute of it any more
                if verdict.status == "wrong":
                    wrong = [t for t, state in sorted(verdict.tiles.items()) if state == "wrong"]
                    if not (lease_state.verified_at and now > lease_state.verified_at):
                        # Another replica delivered these tiles right, or may still: during the
                        # challenge window the render nodes prove the disagreement for free (and
                        # earn the bounty); the client posts a bond only if none of them did.
                        hopeful = _hopeful_tiles(snap, verdicts, lease_state.lease_id)
                        wrong = [t for t in wrong if t not in delivered and t not in hopeful]
                    reasons = {t: verdict.reasons.get(t, "wrong") for t in wrong}
                elif verdict.status == "tampered":
                    wrong = [
                        t for t in range(verdict.first_tile, verdict.first_tile + verdict.count)
                    ]
                    wrong = [t for t in wrong if t not in delivered]
                    reasons = dict.fromkeys(wrong, verdict.reason)
                else:
                    continue
                for t in wrong:
                    if t not in contested and t not in verdicts.disputes:
                        targets.append((t, lease_state.lease_id, reasons[t]))
        else:
            if not 0 <= tile < snap.tile_count:
                raise JobOptionsError(f"job {ref.job_id} has tiles 0..{snap.tile_count - 1}")
            if tile in contested:
                raise JobStateError(f"tile {tile} of job {ref.job_id} was already contested")
            holders = [
                s
                for s in snap.leases
                if not s.juror
                and s.status == "revealed"
                and s.first_tile <= tile < s.first_tile + s.count
                and (lease is None or s.lease_id == lease)
            ]
            if not holders:
                raise JobStateError(
                    f"no revealed replica lease of job {ref.job_id} covers tile {tile}"
                    + (f" as lease {lease}" if lease is not None else ""),
                    hint="a tile can be disputed once its lease revealed and until its "
                    "acceptance window closes",
                )
            holders.sort(key=lambda s: verdicts.tile_verdict(s.lease_id, tile) != "wrong")
            chosen = holders[0]
            reason = (
                verdicts.leases[chosen.lease_id].reasons.get(tile, "")
                if (chosen.lease_id in verdicts.leases)
                else ""
            )
            targets.append((tile, chosen.lease_id, reason or "disputed by the client"))
        if not targets:
            return []
        bond = int(market.params["disputeBond"])
        records = []
        for t, lease_id, reason in targets:
            holder = by_id[lease_id]
            if holder.verified_at and now > holder.verified_at + window:
                raise JobStateError(
                    f"lease {lease_id} could be disputed until {holder.verified_at + window} "
                    f"(now {now}): tile {t} can no longer be disputed"
                )
            self._check_funds(market, bond, 300_000, f"disputing tile {t}")
            try:
                contest = market.dispute(ref.job_id, t, lease_id)
            except ContractRevertError as exc:
                if tile is None and exc.name == "MarketTileAlreadyContested":
                    continue  # a render node proved the disagreement a moment ago
                raise
            record = DisputeRecord(t, lease_id, contest, bond, reason)
            records.append(record)
            verdicts = directory.verdicts()
            verdicts.disputes[t] = {**record.to_json(), "at": int(time.time())}
            directory.save_verdicts(verdicts)
        if records:
            self.draw_juries(ref)
        return records

    def draw_juries(self, job: JobLike = None) -> list[int]:
        """Draw the jurors of this job's contests whose draw is armed on a past block (anyone
        may; the render nodes do it too). On a local Anvil chain an empty block is mined when
        the draw was armed on the latest one. Returns the contests whose draw was made."""
        directory = self.job_dir(job)
        snap = self.snapshot(directory.ref)
        # Jurors are drawn until a whole lease before the claim deadline (the last one drawn
        # still has its lease to commit).
        draw_end = {c.contest_id: c.claim_deadline - snap.lease_length for c in snap.contests}
        armed = [
            c
            for c in snap.contests
            if c.open and c.draw_block and self.chain_now() <= draw_end[c.contest_id]
        ]
        if not armed:
            return []
        market = self._signing_market()
        _, deployment = self._chain()
        drawn = []
        for contest in armed:
            block = int(self._rpc(market.block_number, "read the block number"))
            if block <= contest.draw_block:
                if deployment.chain_id != _DEV_CHAIN_ID:
                    continue  # the next block comes by itself: draw on a later step
                self._rpc(functools.partial(_mine_block, market.w3), "mine a block")
            try:
                seats = market.draw_jury(contest.contest_id)
            except ContractRevertError as exc:
                # Someone drew first, or the draw window closed meanwhile.
                if exc.name in ("MarketDrawNotReady", "MarketDrawClosed", "MarketContestResolved"):
                    continue
                raise
            directory.log_action(
                "drawJury",
                contest=contest.contest_id,
                jurors=[{"seat": int(e["seat"]), "leaseId": int(e["leaseId"])} for e in seats],
            )
            drawn.append(contest.contest_id)
        return drawn

    def resolve_contests(self, job: JobLike = None) -> list[int]:
        """Resolve this job's open contests whose jury's verdict is final and past its challenge
        window, or that drew nobody by their draw deadline (anyone may; it returns a won
        dispute's bond). Returns the contests resolved."""
        directory = self.job_dir(job)
        snap = self.snapshot(directory.ref)
        window = int(self.market().params.get("challengeWindow", 0))
        now = self.chain_now()
        done = []
        for contest in snap.contests:
            if not contest.open:
                continue
            # A verdict waits out its challenge window (sides and replicas are proven far from
            # it in there); no verdict (nobody drawn, or no majority) resolves as soon as fixed.
            ripe = bool(contest.verdict_at) and (
                not contest.lease_t or now > contest.verdict_at + window
            )
            if not ripe:
                continue
            try:
                self._signing_market().resolve_contest(contest.contest_id)
            except ContractRevertError as exc:
                if exc.name in ("MarketContestPending", "MarketContestResolved", "MarketNoVerdict"):
                    continue
                raise
            directory.log_action("resolveContest", contest=contest.contest_id)
            done.append(contest.contest_id)
        return done

    # -- availability ----------------------------------------------------------------------------

    def challenge_availability(self, job: JobLike = None) -> list[ChallengeRecord]:
        """Challenge the availability of every revealed replica lease whose result the client
        could not get (unreachable, or bytes that do not give the revealed root), posting the
        market's dispute bond each: the lease's node must open a few leaves of one tile on chain
        by the challenge's deadline. Answered, the bond comes back less the node's gas; left
        unanswered, :meth:`resolve_availability` forfeits the lease (none of its tiles is paid,
        its node is slashed) and the bond comes back with a share of the slash. A lease with an
        open challenge is not challenged again; one whose challenge was answered is challenged
        again only after another failed fetch."""
        directory = self.job_dir(job)
        ref = directory.ref
        verdicts = directory.verdicts()
        if not any(v.undelivered for v in verdicts.leases.values()):
            return []
        snap = self.snapshot(ref)
        market = self._signing_market()
        window = int(market.params.get("acceptanceWindow", 0))
        depth = int(directory.state().get("leafDepth", directory.manifest().leaf_depth))
        now = self.chain_now()
        records = []
        for lease in snap.leases:
            verdict = verdicts.leases.get(lease.lease_id)
            if verdict is None or not verdict.undelivered:
                continue
            if lease.juror or lease.status != "revealed" or lease.challenge:
                continue
            if lease.verified_at and now > lease.verified_at + window:
                continue  # too late: the chain takes no challenge of it any more
            previous = verdicts.challenges.get(lease.lease_id)
            if previous is not None and int(previous.get("attempts", 0)) >= verdict.attempts:
                continue  # answered, and not fetched again since
            tile = lease.first_tile + random.SystemRandom().randrange(lease.count)
            leaves = _challenge_leaves(depth)
            bond = int(market.params["disputeBond"])
            self._check_funds(market, bond, 400_000, f"challenging lease {lease.lease_id}")
            try:
                challenge = market.challenge_availability(lease.lease_id, tile, leaves)
            except ContractRevertError as exc:
                if exc.name == "MarketAvailabilityOpen":
                    continue  # someone else challenged it a moment ago
                raise
            record = ChallengeRecord(
                challenge, lease.lease_id, tile, tuple(leaves), bond, verdict.reason
            )
            records.append(record)
            verdicts = directory.verdicts()
            verdicts.challenges[lease.lease_id] = {
                **record.to_json(),
                "attempts": verdict.attempts,
                "at": int(time.time()),
            }
            directory.save_verdicts(verdicts)
        return records

    def resolve_availability(self, job: JobLike = None) -> list[int]:
        """Resolve this job's availability challenges left unanswered past their deadline
        (anyone may): each forfeits its lease. Returns the challenges resolved."""
        directory = self.job_dir(job)
        snap = self.snapshot(directory.ref)
        now = self.chain_now()
        done = []
        for challenge in snap.challenges:
            if challenge.status != "open" or now <= challenge.deadline:
                continue
            try:
                self._signing_market().resolve_availability(challenge.challenge_id)
            except ContractRevertError as exc:
                if exc.name in ("MarketChallengeNotOpen", "MarketAnswerWindow"):
                    continue  # answered or resolved a moment ago, or the block came too early
                raise
            directory.log_action(
                "resolveAvailability", challenge=challenge.challenge_id, lease=challenge.lease_id
            )
            done.append(challenge.challenge_id)
        return done

    # -- refund, withdraw ------------------------------------------------------------------------

    def withdraw(self) -> int:
        """Take this account's pending balance (refunds, returned bonds, compensation) out of the
        market; returns the wei withdrawn (0: nothing was pending, nothing sent)."""
        market = self._signing_market()
        pending = int(self._rpc(lambda: market.pending_balance(self.address), "read balance"))
        if pending == 0:
            return 0
        market.withdraw()
        return pending

    def cancel(self, job: JobLike = None, *, withdraw: bool = True) -> CancelReport:
        """Cancel a job before its deadline: no render node can claim its tiles any more, and
        the escrow of every tile-slot no live lease holds comes back now (with ``withdraw``, sent
        to the account). Leases already claimed go on: they are verified and paid as usual, or
        their escrow becomes refundable (``refund``) when they end."""
        directory = self.job_dir(job)
        ref = directory.ref
        self._check_here(ref)
        market = self._signing_market()
        view = self._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
        if view.client.lower() != self.address.lower():
            raise JobStateError(
                f"job {ref.job_id} belongs to {view.client}, not {self.address}",
                hint="use the account that posted it (--account)",
            )
        if view.cancelledAt != 0:
            raise JobStateError(
                f"job {ref.job_id} was already cancelled",
                hint=f"`blindframe client refund {ref.job_id}` returns what its leases freed since",
            )
        now = self.chain_now()
        if now > view.deadline:
            raise JobStateError(
                f"job {ref.job_id} passed its deadline {format_duration(now - view.deadline)} ago: "
                "there is nothing to cancel",
                hint=f"`blindframe client refund {ref.job_id}` returns the unfinished escrow",
            )
        receipt = market.cancel(ref.job_id)
        refunded = sum(int(e["refunded"]) for e in market.events(receipt, "JobCancelled"))
        directory.log_action(
            "cancel", amount=str(refunded), tx="0x" + bytes(receipt["transactionHash"]).hex()
        )
        after = self._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
        withdrawn = self.withdraw() if withdraw and refunded > 0 else 0
        return CancelReport(
            ref,
            refunded_wei=refunded,
            withdrawn_wei=withdrawn,
            held_slots=after.reservedSlots,
            held_wei=after.escrow,
        )

    def refund(self, job: JobLike = None, *, withdraw: bool = True) -> RefundReport:
        """After the deadline (or once the job was cancelled), take back the escrow of tiles no
        live lease holds (and, with ``withdraw``, send the pending balance to the account)."""
        directory = self.job_dir(job)
        ref = directory.ref
        self._check_here(ref)
        market = self._signing_market()
        view = self._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
        now = self.chain_now()
        if now <= view.deadline and view.cancelledAt == 0:
            raise JobStateError(
                f"job {ref.job_id} runs until its deadline, in "
                f"{format_duration(view.deadline - now)}; the escrow of unfinished tiles is "
                "refundable after it",
                hint=f"wait, or stop it now: `blindframe client cancel {ref.job_id}`",
            )
        amount = int(self._rpc(lambda: market.refundable(ref.job_id), "read refundable"))
        refunded = 0
        if amount > 0:
            receipt = market.refund(ref.job_id)
            refunded = sum(int(e["amount"]) for e in market.events(receipt, "Refunded"))
            directory.log_action(
                "refund", amount=str(refunded), tx="0x" + bytes(receipt["transactionHash"]).hex()
            )
        elif not withdraw:
            raise JobStateError(f"job {ref.job_id} has nothing left to refund")
        withdrawn = self.withdraw() if withdraw else 0
        if refunded == 0 and withdrawn == 0:
            raise JobStateError(
                f"job {ref.job_id} has nothing left to refund and nothing is pending for "
                f"{self.address}"
            )
        return RefundReport(ref, refunded, withdrawn)

    # -- decrypt ---------------------------------------------------------------------------------

    def decrypt(
        self,
        job: JobLike = None,
        *,
        output: Path | None = None,
        twin: Path | bool = False,
        scale: int = 1,
        verify: bool = True,
        progress: Progress = _no_progress,
    ) -> DecryptResult:
        """Decrypt the whole frame from verified results (every task checked against the twin
        again by ``fhe_core.jobs.decrypt_job``) and write it as PNG (the job directory's
        ``frame.png``, and ``output`` if given). ``twin``: also write the plaintext twin's frame
        (True: ``twin.png`` in the job directory; a path: there)."""
        from blindframe.fhe_core.jobs import decrypt_job, plain_frame
        from blindframe.fhe_core.kernels import get_kernel

        directory = self.job_dir(job)
        ref = directory.ref
        if verify:
            self.verify(ref, progress=progress)
        public = directory.public()
        secrets = directory.secrets()
        manifest = directory.manifest()
        verdicts = directory.verdicts()
        replication = int(directory.state().get("replication", 1))
        chosen: dict[int, LeaseVerdict] = {}
        # Prefer replica lanes, then jurors; older leases first.
        ordered = sorted(
            verdicts.leases.values(), key=lambda v: (v.lane >= replication, v.lease_id)
        )
        for verdict in ordered:
            if verdict.file is None:
                continue
            for tile, state in verdict.tiles.items():
                if state == "ok" and tile not in chosen:
                    chosen[tile] = verdict
        missing = [t for t in range(public.tasks) if t not in chosen]
        if missing:
            shown = ", ".join(map(str, missing[:12])) + ("…" if len(missing) > 12 else "")
            raise ResultUnavailableError(
                f"{len(missing)} of {public.tasks} tiles of job {ref.job_id} have no verified "
                f"result yet (tiles {shown})",
                hint="wait for the render nodes (`blindframe client watch`), then fetch again",
            )
        results: dict[int, LeaseResult] = {}
        outputs: dict[int, bytes] = {}
        for tile, verdict in sorted(chosen.items()):
            result = results.get(verdict.lease_id)
            if result is None:
                path = directory.outputs / str(verdict.file)
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise ResultUnavailableError(
                        f"the verified result of lease {verdict.lease_id} is gone ({exc})",
                        hint="delete its entry from verdicts.json and verify again",
                    ) from None
                result = open_lease_result(
                    data,
                    kernel=manifest.kernel,
                    job_id=ref.job_id,
                    lease_id=verdict.lease_id,
                    first_tile=verdict.first_tile,
                    count=verdict.count,
                    leaf_depth=manifest.leaf_depth,
                    root=bytes.fromhex(verdict.root.removeprefix("0x")),
                )
                results[verdict.lease_id] = result
            outputs[tile] = result.output(tile)
        progress(DECRYPT, 0, public.tasks)
        with self._fhe_lock:
            frame = decrypt_job(self._kernel_client(public.kernel_id), public, secrets, outputs)
        progress(DECRYPT, public.tasks, public.tasks)
        top = get_kernel(public.kernel_id).out_max
        array = directory.path / "frame.npy"
        np.save(array, frame)
        png = write_frame_png(directory.path / "frame.png", frame, top, scale=scale)
        if output is not None:
            png = write_frame_png(Path(output), frame, top, scale=scale)
        twin_png: Path | None = None
        matches: bool | None = None
        if twin:
            expected = plain_frame(public, secrets)
            np.save(directory.path / "twin.npy", expected)
            target = directory.path / "twin.png" if twin is True else Path(twin)
            twin_png = write_frame_png(target, expected, top, scale=scale)
            matches = bool(np.array_equal(frame, expected))
        directory.log_action("decrypt", png=str(png))
        return DecryptResult(ref, frame, png, array, twin_png, matches, tuple(sorted(results)))

    # -- the whole loop --------------------------------------------------------------------------

    def step(
        self, job: JobLike = None, *, dispute: bool = True, progress: Progress = _no_progress
    ) -> StepReport:
        """One round of the client's duties: verify what is new, challenge the availability of
        results that never came, dispute wrong tiles (with ``dispute``), draw juries, resolve
        contests and availability challenges whose windows passed, settle what is verified."""
        ref = self.job_dir(job).ref
        report = self.verify(ref, progress=progress)
        challenges = tuple(self.challenge_availability(ref))
        disputes = tuple(self.dispute(ref, verify=False)) if dispute else ()
        drawn = tuple(self.draw_juries(ref))
        resolved = tuple(self.resolve_contests(ref))
        forfeited = tuple(self.resolve_availability(ref))
        settled = self.settle(ref, verify=False)
        return StepReport(report, disputes, settled, resolved, challenges, drawn, forfeited)

    def _check_progress(self, ref: JobRef, snap: JobSnapshot, dispute: bool) -> None:
        """Raise when a render cannot finish: failed tiles without ``dispute``, tiles nothing
        can fix any more, or a job past its deadline (or cancelled) with nothing in flight
        (then the unfinished escrow is refunded first)."""
        failed = [t.tile for t in snap.tiles if t.state == "failed"]
        if failed and not dispute:
            raise JobStateError(
                f"tiles {failed} of job {ref.job_id} failed verification",
                hint=f"dispute them: `blindframe client dispute {ref.job_id}`",
            )
        stuck = _stuck_tiles(
            snap, self.chain_now(), int(self.market().params.get("acceptanceWindow", 0))
        )
        if stuck:
            raise JobStateError(
                f"tiles {stuck} of job {ref.job_id} failed verification and have no way left "
                "to a correct result (their dispute was decided, or its window closed)",
                hint=f"after the deadline, `blindframe client refund {ref.job_id}` returns "
                "the escrow of unfinished tiles; post the frame again",
            )
        if _finished(snap):
            refund = None
            with contextlib.suppress(JobStateError):
                refund = self.refund(ref)
            unfinished = [t.tile for t in snap.tiles if t.state != "settled"]
            ended = "was cancelled" if snap.cancelled else "passed its deadline"
            raise JobExpiredError(
                f"job {ref.job_id} {ended} with {len(unfinished)} of "
                f"{snap.tile_count} tiles unfinished"
                + (f"; {format_eth(refund.refunded_wei)} refunded" if refund else ""),
                hint="post again with a later --deadline or a higher --reward",
            )

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
        progress: Progress = _no_progress,
        on_posted: Callable[[PostedJob], None] | None = None,
        on_snapshot: Callable[[JobSnapshot], None] | None = None,
    ) -> RenderResult:
        """post -> watch -> verify -> settle -> decrypt, in one call. Wrong tiles are disputed
        (unless ``dispute`` is False: then a wrong tile ends the render with an error). Past the
        deadline with tiles unfinished, the unfinished escrow is refunded and JobExpiredError
        raised; past ``timeout`` seconds, RenderTimeoutError (the job keeps running)."""
        started = time.monotonic()
        posted = self.post(scene, options, progress=progress)
        if on_posted is not None:
            on_posted(posted)
        ref = posted.ref
        disputes: list[DisputeRecord] = []
        challenges: list[ChallengeRecord] = []
        while True:
            report = self.step(ref, dispute=dispute, progress=progress)
            disputes += report.disputes
            challenges += report.challenges
            snap = self.snapshot(ref)
            if on_snapshot is not None:
                on_snapshot(snap)
            if snap.complete:
                # An open availability challenge is resolved first: its lease is never paid.
                if not any(c.status == "open" for c in snap.challenges):
                    break
            else:
                self._check_progress(ref, snap, dispute)
            if timeout is not None and time.monotonic() - started > timeout:
                raise RenderTimeoutError(
                    f"job {ref.job_id} is not finished after {format_duration(int(timeout))} "
                    f"({snap.tile_counts.get('settled', 0)} of {snap.tile_count} tiles settled)",
                    hint=f"it keeps running: `blindframe client watch {ref.job_id}`, then "
                    f"`blindframe client settle` and `fetch`",
                )
            time.sleep(interval)
        decrypted = self.decrypt(ref, output=output, twin=twin, scale=scale, verify=False)
        return RenderResult(
            posted,
            decrypted,
            snap,
            time.monotonic() - started,
            tuple(disputes),
            tuple(challenges),
        )


# --------------------------------------------------------------------------------- helpers


def _finished(snap: JobSnapshot) -> bool:
    """Nothing more will happen by itself: complete, or closed (expired or cancelled) with no
    lease in flight."""
    if snap.complete:
        return True
    in_flight = any(
        lease.status in ("claimed", "committed") for lease in snap.leases if not lease.juror
    )
    return (
        snap.closed
        and not in_flight
        and not any(c.open for c in snap.contests)
        and not any(c.status == "open" for c in snap.challenges)
    )


def _stuck_tiles(snap: JobSnapshot, now: int, acceptance_window: int) -> list[int]:
    """Failed tiles nothing more can fix: their contest was decided without giving a verified
    result, or no contest was opened and every failed replica's dispute window has closed."""
    contests = {c.tile: c for c in snap.contests}
    leases = {lease.lease_id: lease for lease in snap.leases}
    stuck = []
    for tile in snap.tiles:
        if tile.state != "failed":
            continue
        contest = contests.get(tile.tile)
        if contest is not None:
            if not contest.open:
                stuck.append(tile.tile)
            continue
        failed = [leases[s.lease_id] for s in tile.slots if s.state == "failed" and s.lease_id]
        in_progress = any(s.state not in ("failed", "open") for s in tile.slots)
        if (
            failed
            and not in_progress
            and all(
                lease.verified_at and now > lease.verified_at + acceptance_window
                for lease in failed
            )
        ):
            stuck.append(tile.tile)
    return stuck


def _hopeful_tiles(snap: JobSnapshot, verdicts: Verdicts, lease_id: int) -> set[int]:
    """Tiles of which another replica lease (than ``lease_id``) is still in flight or revealed
    and not found wrong by the client: it may deliver them right, and its node then proves the
    disagreement itself."""
    hopeful: set[int] = set()
    for other in snap.leases:
        if other.juror or other.lease_id == lease_id:
            continue
        if other.status not in ("claimed", "committed", "revealed"):
            continue
        for t in range(other.first_tile, other.first_tile + other.count):
            if verdicts.tile_verdict(other.lease_id, t) not in ("wrong", "tampered", "unavailable"):
                hopeful.add(t)
    return hopeful


def _settle_blocker(lease: Any, verdicts: Verdicts, now: int) -> str | None:
    """Why a revealed replica lease cannot be settled now (None: it can)."""
    verdict = verdicts.leases.get(lease.lease_id)
    if verdict is None or verdict.status == "pending":
        return "not verified by the client yet"
    if verdict.status in ("tampered", "unavailable"):
        return f"result {verdict.status}: {verdict.reason}"
    bad = [
        t
        for t in range(lease.first_tile, lease.first_tile + lease.count)
        if verdict.tiles.get(t) != "ok" and t not in lease.forfeited
    ]
    if bad:
        return f"tiles {bad} failed verification (dispute them)"
    if lease.open_contests:
        return f"{lease.open_contests} contest(s) still open"
    if not lease.verified_at:
        return "the chain does not count it as verified yet"
    if now <= lease.verified_at:
        return f"the challenge window runs {lease.verified_at - now + 1} s more"
    return None


def _mine_block(w3: Web3) -> None:
    """Mine an empty block (Anvil's ``evm_mine``; local chains only)."""
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _challenge_leaves(leaf_depth: int) -> list[int]:
    """The leaves an availability challenge names: the digest leaf (the last) and random
    coefficient leaves, strictly increasing."""
    digest = (1 << leaf_depth) - 1
    chosen = {digest}
    pick = random.SystemRandom()
    while len(chosen) < min(_CHALLENGE_LEAVES, digest + 1):
        chosen.add(pick.randrange(digest))
    return sorted(chosen)


def _event_cid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value.removeprefix("0x")).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


def _unpin(store: IpfsStore, cids: Sequence[str]) -> None:
    for cid in cids:
        with contextlib.suppress(StoreError):
            store.unpin(cid)


def _default_params(kernel_name: str) -> dict[str, Any]:
    from blindframe.fhe_core import sample

    if kernel_name == "volume":
        return dict(sample.SAMPLE_CAMERA)
    if kernel_name == "shade":
        return {k: list(v) for k, v in sample.SAMPLE_LIGHT.items()}
    return dict(sample.SAMPLE_FILTER)


@functools.cache
def _sample_volume() -> np.ndarray[Any, np.dtype[np.int64]]:
    """The sample knot for volume@1, computed once per process (it takes seconds)."""
    from blindframe.fhe_core import sample

    volume = sample.sample_volume()
    volume.flags.writeable = False
    return volume


def _sample_inputs(
    kernel_name: str, frame: tuple[int, int]
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], ...]:
    """The sample scene as ``kernel_name``'s plaintext input for a ``frame`` (height, width)."""
    from blindframe.fhe_core import sample

    if kernel_name == "volume":
        return (_sample_volume(),)
    if kernel_name == "shade":
        return sample.sample_gbuffer(frame)
    return (_sample_volume_frame(frame) >> 2,)


def _sample_volume_frame(frame: tuple[int, int]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The sample knot rendered plainly by volume@1's twin: the sample scene of ``post``."""
    from blindframe.fhe_core import sample
    from blindframe.fhe_core.jobs import JobSecrets, PublicJob, plain_frame
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.tiling import Task, tile_grid

    kernel = get_kernel("volume@1")
    grid = tile_grid(frame, kernel.tile_hw)
    padded = grid.padded_hw
    public = PublicJob("volume@1", dict(sample.SAMPLE_CAMERA), padded, grid.count, True)
    secrets = JobSecrets(
        "volume@1",
        [Task(i, i, False) for i in range(grid.count)],
        padded,
        (0, 0),
        volume=_sample_volume(),
    )
    out: np.ndarray[Any, np.dtype[np.int64]] = plain_frame(public, secrets)[: frame[0], : frame[1]]
    return out
