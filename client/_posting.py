"""Posting a job: scene and options checked, funds and gas estimated, encrypted, uploaded."""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils.address import to_checksum_address
from web3.types import Wei

from blindframe.client import jobdir as jd
from blindframe.client.errors import (
    ClientError,
    JobOptionsError,
)
from blindframe.client.fftplan import job_plan
from blindframe.client.jobdir import JobDir, JobRef
from blindframe.client.keys import ensure_keys, upload_evaluation_keys
from blindframe.client.options import DEFAULT_FRAME, JobOptions
from blindframe.client.progress import ENCRYPT, UPLOAD, Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.reports import (
    PostedJob,
)
from blindframe.client.scene import Scene, default_kernel, load_scene
from blindframe.client.scene import to_kernel_input as _to_kernel_input
from blindframe.client.scene._sample import SAMPLE, default_params, sample_inputs
from blindframe.client.units import format_duration, format_eth
from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.manifest import ContentRef, Manifest
from blindframe.coordinator.market import (
    Market,
    kernel_id_bytes,
)
from blindframe.coordinator.store import (
    IpfsStore,
    StoreError,
)
from blindframe.coordinator.tx import TxSender

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, SceneLike
    from blindframe.client.fftplan import PlanChoice
    from blindframe.client.keys import KeySet
    from blindframe.fhe_core.jobs import EncryptedJob

__all__ = ["post"]

# A CIDv0 ("Qm" + 44 base58 characters): the length of the manifest CID postJob will carry, used
# to estimate postJob's gas before the manifest exists.
_PLACEHOLDER_CID = b"Qm" + b"1" * 44


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


def _prepare(artist: Artist, scene: SceneLike, options: JobOptions) -> _Prepared:
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.server import tile_clear_args
    from blindframe.fhe_core.tiling import tile_grid

    options.check()
    if isinstance(scene, str) and scene == SAMPLE:
        kernel_id = options.kernel or "volume@1"
        kernel = get_kernel(kernel_id)
        frame = options.frame or DEFAULT_FRAME
        summary: dict[str, Any] = {"kind": "sample", "source": "the sample torus knot"}
        inputs = functools.partial(sample_inputs, kernel.name, frame)
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
    params = dict(options.params) if options.params is not None else default_params(kernel.name)
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
            raise JobOptionsError(f"volume jobs take 0..16 canary margin tiles (not {canaries})")
        tiles = (real.tiles_y + 2 * canaries) * (real.tiles_x + 2 * canaries)
    else:
        canaries = max(1, real.count // 8) if options.canaries is None else options.canaries
        tiles = real.count + canaries
    tile_clear_args(kernel_id, params, real.padded_hw, 0)  # the public params, checked now
    if options.fft_plan is not None:
        job_plan(kernel_id, artist.home, given=options.fft_plan)  # a given plan, checked now
    if tiles > 4096:
        raise JobOptionsError(
            f"{tiles} tiles is more than one job takes here (4096)",
            hint="render a smaller frame, or split it into several jobs",
        )
    return _Prepared(kernel_id, inputs, frame, params, canaries, tiles, summary)


def _estimate_post(
    artist: Artist,
    market: Market,
    prepared: _Prepared,
    options: JobOptions,
    deadline: int,
    depth: int,
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
            artist._rpc(
                lambda: function.estimate_gas(
                    {"from": to_checksum_address(artist.address), "value": Wei(escrow)}
                ),
                "estimate the gas of postJob",
            )
        )
    except ContractLogicError as exc:
        raise TxSender.revert_error(market.decoder, exc, "posting the job") from None
    except Web3RPCError as exc:
        if "insufficient funds" in str(exc).lower():
            artist._check_funds(market, escrow, 200_000, "posting the job")
        raise JobOptionsError(f"the node refused to estimate postJob: {exc}") from None


def post(
    artist: Artist,
    scene: SceneLike,
    options: JobOptions | None = None,
    *,
    progress: Progress = _no_progress,
) -> PostedJob:
    """Encrypt ``scene`` (a Scene, a scene/mesh/image file, or ``"sample"``), upload it, and
    post the job with its escrow. Every check happens before anything is sent on chain."""
    from blindframe.fhe_core.merkle import leaf_depth

    options = options or JobOptions()
    timings: dict[str, float] = {}
    prepared = _prepare(artist, scene, options)
    depth = leaf_depth(prepared.kernel)
    escrow = prepared.tile_count * options.replication * options.reward_wei

    market = artist._signing_market()
    deadline, gas = _check_chain(artist, market, prepared, options, escrow, depth)

    # The IPFS node: answering before we spend time encrypting.
    with IpfsStore(artist.settings.ipfs_api, retry_for=artist._preflight_retry_for) as probe:
        probe.version()

    started = time.perf_counter()
    keys = ensure_keys(prepared.kernel, artist.home, progress=progress)
    timings["keygen"] = time.perf_counter() - started

    # The FFT plan every replica pins (honest replicas are then bit-identical).
    started = time.perf_counter()
    plan = job_plan(prepared.kernel, artist.home, given=options.fft_plan, progress=progress)
    timings["plan"] = time.perf_counter() - started

    started = time.perf_counter()
    encrypted = _encrypt(artist, prepared, progress)
    timings["encrypt"] = time.perf_counter() - started

    started = time.perf_counter()
    store = artist.store()
    uploaded = _upload(store, keys, encrypted, prepared, plan, depth, progress)
    timings["upload"] = time.perf_counter() - started

    chain_id, market_address = artist._deployment_ref()
    state = _job_state(
        artist, prepared, options, encrypted, plan, uploaded, escrow, deadline, depth
    )
    pending = jd.create_pending(
        artist.home,
        uploaded.manifest_cid,
        manifest=uploaded.manifest_bytes,
        secrets=encrypted.secrets,
        state=state,
    )

    # Funds may have moved while we encrypted: check again, then post.
    artist._check_funds(market, escrow, gas, "posting the job")
    started = time.perf_counter()
    job_id = _post_job(market, prepared, options, uploaded, deadline, depth, pending, store)
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
        manifest_cid=uploaded.manifest_cid,
        evaluation_keys_cid=uploaded.evaluation_keys.cid,
        uploaded_bytes=uploaded.size,
        keys_created=keys.created,
        fft_plan=plan,
        seconds=timings,
    )


def _post_job(
    market: Market,
    prepared: _Prepared,
    options: JobOptions,
    uploaded: _Uploaded,
    deadline: int,
    depth: int,
    pending: JobDir,
    store: IpfsStore,
) -> int:
    """Send postJob; returns the job id. Refused, the pending directory and the uploads go."""
    try:
        return market.post_job(
            manifest_cid=uploaded.manifest_cid,
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
        _unpin(store, uploaded.added)
        raise


def _check_chain(
    artist: Artist,
    market: Market,
    prepared: _Prepared,
    options: JobOptions,
    escrow: int,
    depth: int,
) -> tuple[int, int]:
    """The chain reachable, our deployment, parameters the contract accepts, funds enough:
    (the job's deadline, postJob's estimated gas)."""
    max_lease = int(market.params.get("maxLeaseLength", 0))
    if max_lease and options.lease_length > max_lease:
        raise JobOptionsError(
            f"this market allows leases of at most {format_duration(max_lease)} "
            f"(not {format_duration(options.lease_length)})"
        )
    deadline = artist.chain_now() + options.deadline
    what = (
        f"posting {prepared.tile_count} tiles x {options.replication} replica(s) at "
        f"{format_eth(options.reward_wei)}"
    )
    artist._check_funds(market, escrow, 0, what)  # the escrow alone, before estimating gas
    gas = _estimate_post(artist, market, prepared, options, deadline, depth)
    artist._check_funds(market, escrow, gas, what)
    return deadline, gas


def _encrypt(artist: Artist, prepared: _Prepared, progress: Progress) -> EncryptedJob:
    """The prepared scene encrypted with this home's keys, one task per tile."""
    from blindframe.fhe_core.jobs import encrypt_frame_job, encrypt_volume_job
    from blindframe.fhe_core.kernels import get_kernel

    kernel = get_kernel(prepared.kernel)
    progress(ENCRYPT, 0, prepared.tile_count)
    plain = prepared.inputs()
    with artist._fhe_lock:
        client = artist._kernel_client(prepared.kernel)
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
    if encrypted.public.tasks != prepared.tile_count:
        raise ClientError(
            f"encryption made {encrypted.public.tasks} tasks, {prepared.tile_count} expected"
        )
    return encrypted


@dataclass(frozen=True)
class _Uploaded:
    evaluation_keys: ContentRef
    inputs: list[ContentRef]
    manifest_bytes: bytes
    manifest_cid: str
    # What this post pinned (the evaluation keys aside, shared by every job of the kernel):
    # unpinned again when the post is refused.
    added: list[str]
    size: int  # the input bundles and the manifest, in bytes


def _upload(
    store: IpfsStore,
    keys: KeySet,
    encrypted: EncryptedJob,
    prepared: _Prepared,
    plan: PlanChoice,
    depth: int,
    progress: Progress,
) -> _Uploaded:
    """The evaluation keys, the input bundles and the manifest added to the IPFS node (all
    unpinned again if any of it fails)."""
    from blindframe.fhe_core.kernels import client_spec_hash

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
    size = sum(len(b) for b in encrypted.inputs) + len(manifest_bytes)
    return _Uploaded(eval_ref, inputs, manifest_bytes, manifest_cid, added, size)


def _job_state(
    artist: Artist,
    prepared: _Prepared,
    options: JobOptions,
    encrypted: EncryptedJob,
    plan: PlanChoice,
    uploaded: _Uploaded,
    escrow: int,
    deadline: int,
    depth: int,
) -> dict[str, Any]:
    """The job directory's ``job.json``: what was posted, and how."""
    chain_id, market_address = artist._deployment_ref()
    return {
        "chainId": chain_id,
        "market": market_address,
        "client": artist.address,
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
        "manifestCid": uploaded.manifest_cid,
        "evaluationKeysCid": uploaded.evaluation_keys.cid,
        "inputCids": [ref.cid for ref in uploaded.inputs],
        "scene": prepared.scene,
        "options": options.to_json(),
    }


def _unpin(store: IpfsStore, cids: Sequence[str]) -> None:
    for cid in cids:
        with contextlib.suppress(StoreError):
            store.unpin(cid)
