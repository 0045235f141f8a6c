"""Posting a job: scene and options checked, funds and gas estimated, encrypted, uploaded."""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils.address import to_checksum_address
from web3.exceptions import Web3Exception
from web3.types import Wei

from blindframe.client import jobdir as jd
from blindframe.client.errors import (
    ClientError,
    ConfirmationError,
    JobOptionsError,
)
from blindframe.client.fftplan import job_plan
from blindframe.client.jobdir import JobDir, JobRef
from blindframe.client.keys import ensure_keys, upload_evaluation_keys
from blindframe.client.options import DEFAULT_FRAME, JobOptions, default_canaries
from blindframe.client.progress import ENCRYPT, UPLOAD, Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.quote import Quote, build_quote, check_max_cost
from blindframe.client.reports import (
    PostedJob,
)
from blindframe.client.scene import Scene, default_kernel, load_scene
from blindframe.client.scene import to_kernel_input as _to_kernel_input
from blindframe.client.scene._framing import volume_camera
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
from blindframe.errors import BlindframeError

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, SceneLike
    from blindframe.client.fftplan import PlanChoice
    from blindframe.client.keys import KeySet
    from blindframe.fhe_core.artist_jobs import EncryptedJob

__all__ = ["check_not_empty", "post", "quote"]

# A CIDv0 ("Qm" + 44 base58 characters): the length of the manifest CID postJob will carry, used
# to estimate postJob's gas before the manifest exists.
_PLACEHOLDER_CID = b"Qm" + b"1" * 44
# A valid CIDv1 (raw, sha2-256: of no bytes), as long as those the IPFS node gives: the stand-in
# for the CIDs a quote's manifest cannot know before the upload.
_STAND_IN_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


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
    # The frame's own tiles (tile_count less the canary tiles); None: every tile is.
    real_tiles: int | None = None
    # An animation's frames: each one's camera angles over ``params`` (None: one frame).
    frames: tuple[dict[str, float], ...] | None = None
    # surface: the baked palette the decrypted indices are painted with (a job secret).
    palette: np.ndarray[Any, np.dtype[np.float64]] | None = None

    @property
    def frame_count(self) -> int:
        """Frames the job renders."""
        return 1 if self.frames is None else len(self.frames)


def _prepare(artist: Artist, scene: SceneLike, options: JobOptions) -> _Prepared:
    from blindframe.fhe_core.artist_jobs import check_volume_camera
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.server import tile_clear_args
    from blindframe.fhe_core.tiling import tile_grid

    options.check()
    palette = None
    inputs: Callable[[], tuple[np.ndarray[Any, np.dtype[np.int64]], ...]]
    if isinstance(scene, str) and scene == SAMPLE:
        kernel_id = options.kernel or "volume@1"
        kernel = get_kernel(kernel_id)
        frame = options.frame or DEFAULT_FRAME
        summary: dict[str, Any] = {"kind": "sample", "source": "the sample torus knot"}
        inputs = functools.partial(sample_inputs, kernel.name, frame)
        density = None
        if kernel.brick_values:
            inputs, palette = _surface_input(_sample_density(), None)
    else:
        loaded = (
            scene
            if isinstance(scene, Scene)
            else load_scene(Path(scene), resolution=options.resolution, up=options.up)
        )
        kernel_id = options.kernel or default_kernel(loaded.kind)
        kernel = get_kernel(kernel_id)
        if kernel.brick_values:
            # surface: the model baked here (its grey or its colours under the public light),
            # the palette kept for decryption.
            inputs, palette = _surface_input(loaded.density, getattr(loaded, "albedo", None))
        else:
            converted = _to_kernel_input(loaded, kernel_id)  # now: a wrong scene fails early
            inputs = functools.partial(tuple, converted)
        summary = loaded.summary()
        density = loaded.density
        if kernel.gathered:
            frame = options.frame or DEFAULT_FRAME
        else:
            frame = loaded.frame_hw
            if options.frame is not None and tuple(options.frame) != frame:
                raise JobOptionsError(
                    f"the scene is {frame[1]}x{frame[0]} pixels; --size "
                    f"{options.frame[1]}x{options.frame[0]} would need resampling",
                    hint="drop --size, or re-render the passes at that size",
                )
    if kernel.gathered:
        # A model is framed unless the artist gives the camera (each of yaw, pitch, zoom).
        params = volume_camera(density, frame, options.params)
        check_volume_camera(params)
    else:
        params = dict(options.params) if options.params is not None else default_params(kernel.name)
    th, tw = kernel.tile_hw
    real = tile_grid(frame, kernel.tile_hw, kernel.halo)
    canaries = options.canaries
    if canaries is None:
        canaries = default_canaries("volume" if kernel.gathered else kernel.name, real.count)
    if kernel.gathered:
        if frame[0] % th or frame[1] % tw:
            raise JobOptionsError(
                f"volume frames are whole {tw}x{th} tiles: {frame[1]}x{frame[0]} is not",
                hint=f"use a width and height that are multiples of {th}",
            )
        if canaries > 16:
            raise JobOptionsError(f"volume jobs take 0..16 canary margin tiles (not {canaries})")
        tiles = (real.tiles_y + 2 * canaries) * (real.tiles_x + 2 * canaries)
    else:
        tiles = real.count + canaries
    tile_clear_args(kernel_id, params, real.padded_hw, 0)  # the public params, checked now
    frames = _frame_angles(kernel_id, params, options)
    count = 1 if frames is None else len(frames)
    for angles in frames or ():
        tile_clear_args(kernel_id, {**params, **angles}, real.padded_hw, 0)
    if options.fft_plan is not None:
        job_plan(kernel_id, artist.home, given=options.fft_plan)  # a given plan, checked now
    if tiles * count > 4096:
        each = f" ({count} frames of {tiles})" if count > 1 else ""
        raise JobOptionsError(
            f"{tiles * count} tiles{each} is more than one job takes here (4096)",
            hint="render a smaller frame or fewer --frames, or split it into several jobs",
        )
    return _Prepared(
        kernel_id,
        inputs,
        frame,
        params,
        canaries,
        tiles * count,
        summary,
        real.count * count,
        frames,
        palette,
    )


def _surface_input(
    density: Any, albedo: Any
) -> tuple[Callable[[], tuple[np.ndarray[Any, np.dtype[np.int64]], ...]], Any]:
    """A model baked for ``surface``: (its plaintext input, made now, and its palette). The
    scene's sRGB colours are lit in linear light and the palette encoded back to sRGB, the
    space the decrypted frame is shown in (as a renderer's "Standard" view transform does)."""
    from blindframe.client.scene._images import srgb_decode, srgb_encode
    from blindframe.fhe_core._surface import scene_grid

    linear = None if albedo is None else srgb_decode(albedo)
    baked = scene_grid(density, linear)  # a model that does not fit: a one-line ParameterError
    return functools.partial(tuple, (baked.values,)), srgb_encode(baked.palette).astype(np.float64)


def _sample_density() -> Any:
    from blindframe.fhe_core import sample
    from blindframe.fhe_core._surface import GRID

    return sample.sample_density(GRID)


def _frame_angles(
    kernel_id: str, params: Mapping[str, Any], options: JobOptions
) -> tuple[dict[str, float], ...] | None:
    """Each frame's camera angles (the manifest's ``frames``): ``options.frame_angles`` as
    given, or a turntable of ``options.frames`` whose yaw advances ``orbit / frames`` degrees a
    frame from the camera's own; None for a one-frame job."""
    from blindframe.fhe_core.kernels import get_kernel

    if options.frames is None and options.frame_angles is None:
        return None
    if not get_kernel(kernel_id).gathered:
        # Frames share the one encrypted input; per-tile inputs would be uploaded per frame.
        raise JobOptionsError(
            f"--frames renders a volume scene from each frame's camera; {kernel_id} jobs "
            "render the one frame their scene is",
            hint="drop --frames, or render a mesh or the sample with a volume kernel",
        )
    if options.frame_angles is not None:
        return tuple({k: float(v) for k, v in a.items()} for a in options.frame_angles)
    assert options.frames is not None
    yaw, step = float(params.get("yaw", 0.0)), (options.orbit or 0.0) / options.frames
    # Wrapped to [-180, 180): the camera takes -360..360, and a turn from yaw 300 leaves it.
    return tuple(
        {"yaw": round((yaw + i * step + 180.0) % 360.0 - 180.0, 6)} for i in range(options.frames)
    )


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
        options.min_completed,
        options.max_faults_on_chain,
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


@dataclass(frozen=True)
class _Staged:
    """A job checked, keyed and encrypted, not uploaded: what its quote and its post share."""

    prepared: _Prepared
    options: JobOptions
    market: Market
    depth: int
    escrow: int
    deadline: int
    post_gas: int  # postJob's estimate
    keys: KeySet
    plan: PlanChoice
    encrypted: EncryptedJob
    timings: dict[str, float]


def _stage(artist: Artist, scene: SceneLike, options: JobOptions, progress: Progress) -> _Staged:
    """Every check (options, scene, chain, funds, IPFS node), then keys, plan, encryption."""
    from blindframe.fhe_core.merkle import leaf_depth

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
    return _Staged(
        prepared, options, market, depth, escrow, deadline, gas, keys, plan, encrypted, timings
    )


def _quote(artist: Artist, staged: _Staged) -> Quote:
    """The staged job's quote (see :mod:`blindframe.client.quote`)."""
    from blindframe.fhe_core.keys import evaluation_keys_path

    prepared, options, market = staged.prepared, staged.options, staged.market
    store = artist.store()
    keys = staged.keys
    pinned = keys.evaluation_keys_cid is not None and store.is_pinned(keys.evaluation_keys_cid)
    eval_size = evaluation_keys_path(keys.kernel, keys.directory.parent).stat().st_size
    # The manifest as it will be, but for the input CIDs (stand-ins of the same length).
    manifest = _manifest(
        prepared,
        staged.encrypted,
        staged.plan,
        staged.depth,
        ContentRef(keys.evaluation_keys_cid or _STAND_IN_CID, eval_size),
        [ContentRef(_STAND_IN_CID, len(b)) for b in staged.encrypted.inputs],
    )
    try:
        profiles = market.worker_profiles(prepared.kernel)
    except (BlindframeError, Web3Exception):
        profiles = []  # a market without advertisements: the time is unknown, not invented
    assert market.sender is not None  # a signing market
    return build_quote(
        kernel=prepared.kernel,
        frame=prepared.frame,
        tile_count=prepared.tile_count,
        canary_tiles=prepared.tile_count - (prepared.real_tiles or prepared.tile_count),
        replication=options.replication,
        reward_wei=options.reward_wei,
        lease_length=options.lease_length,
        post_gas=staged.post_gas,
        upload={
            "inputs": sum(len(b) for b in staged.encrypted.inputs),
            "evaluationKeys": 0 if pinned else eval_size,
            "manifest": len(manifest.to_bytes()),
        },
        profiles=profiles,
        max_fee=market.sender.max_fee,
        frames=prepared.frame_count,
    )


def quote(
    artist: Artist,
    scene: SceneLike,
    options: JobOptions | None = None,
    *,
    progress: Progress = _no_progress,
) -> Quote:
    """What posting ``scene`` would cost and take, after every check ``post`` makes (the scene
    is encrypted to measure its upload; the FHE keys are made when missing). Nothing is
    uploaded or sent."""
    return _quote(artist, _stage(artist, scene, options or JobOptions(), progress))


def post(
    artist: Artist,
    scene: SceneLike,
    options: JobOptions | None = None,
    *,
    progress: Progress = _no_progress,
    confirm: Callable[[Quote], bool] | None = None,
    max_cost_wei: int | None = None,
    allow_empty: bool = False,
) -> PostedJob:
    """Encrypt ``scene`` (a Scene, a scene/mesh/image file, or ``"sample"``), upload it, and
    post the job with its escrow. Every check happens before anything is sent on chain.

    A volume job whose frame would be all background (the plaintext twin's, computed from the
    client's own secrets: the camera misses the model) is refused unless ``allow_empty``.
    The quote comes before the upload: above ``max_cost_wei`` it is a CostLimitError, and
    ``confirm(quote)`` returning False a ConfirmationError; either way nothing is uploaded or
    sent."""
    options = options or JobOptions()
    staged = _stage(artist, scene, options, progress)
    if not allow_empty:
        check_not_empty(staged.prepared.kernel, staged.prepared.params, staged.encrypted)
    prepared, market, depth, escrow = staged.prepared, staged.market, staged.depth, staged.escrow
    deadline, gas, keys, plan = staged.deadline, staged.post_gas, staged.keys, staged.plan
    encrypted, timings = staged.encrypted, staged.timings

    job_quote = _quote(artist, staged)
    if max_cost_wei is not None:
        check_max_cost(job_quote, max_cost_wei)
    if confirm is not None and not confirm(job_quote):
        raise ConfirmationError("not posted: the quote was declined")

    started = time.perf_counter()
    store = artist.store()
    uploaded = _upload(store, keys, encrypted, prepared, plan, depth, progress)
    timings["upload"] = time.perf_counter() - started

    chain_id, market_address = artist._deployment_ref()
    state = _job_state(
        artist, prepared, options, encrypted, plan, uploaded, escrow, deadline, depth
    )
    state["quote"] = job_quote.to_json()
    state["postedAt"] = artist.chain_now()
    # The client's own cost of this job so far (keygen, plan, encrypt, upload), kept for the
    # demo's time split and the bench.
    state["seconds"] = {step: round(spent, 3) for step, spent in timings.items()}
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
        quote=job_quote,
    )


def check_not_empty(kernel_id: str, camera: Mapping[str, Any], encrypted: EncryptedJob) -> None:
    """Refuse a volume job whose frame would be all background, before anything is paid for:
    its plaintext twin, from the client's own secrets, is what the render nodes' results must
    decrypt to (G-buffers without a surface are refused at import; a post frame is a picture
    the artist made)."""
    from blindframe.fhe_core.artist_jobs import plain_frame
    from blindframe.fhe_core.kernels import get_kernel

    if not get_kernel(kernel_id).gathered:
        return
    frame = plain_frame(encrypted.public, encrypted.secrets)
    if frame.any():
        return  # an animation: some frame shows the model (one may pass out of view)
    view = ", ".join(f"{key} {camera[key]:g}" for key in ("yaw", "pitch", "zoom") if key in camera)
    raise JobOptionsError(
        f"the frame would be empty: the camera misses the model ({view} at "
        f"{frame.shape[-1]}x{frame.shape[-2]}: every pixel of the plaintext twin's frame is "
        "background); nothing was uploaded or posted",
        hint="leave --zoom out to frame the model, or give a smaller --zoom or other angles; "
        "--allow-empty posts it anyway",
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
            min_completed=options.min_completed,
            max_faults=options.max_faults_on_chain,
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
    from blindframe.fhe_core.artist_jobs import encrypt_frame_job, encrypt_volume_job
    from blindframe.fhe_core.kernels import get_kernel

    kernel = get_kernel(prepared.kernel)
    progress(ENCRYPT, 0, prepared.tile_count)
    plain = prepared.inputs()
    with artist._fhe_lock:
        client = artist._kernel_client(prepared.kernel)
        if kernel.gathered:
            encrypted = encrypt_volume_job(
                client,
                plain[0],
                prepared.params,
                prepared.frame,
                margin_tiles=prepared.canaries,
                frames=prepared.frames,
            )
            encrypted.secrets.palette = prepared.palette
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
        manifest = _manifest(prepared, encrypted, plan, depth, eval_ref, inputs)
        manifest_bytes = manifest.to_bytes()
        manifest_cid = store.add_bytes(manifest_bytes, name="manifest.json").cid
        added.append(manifest_cid)
    except BaseException:
        _unpin(store, added)
        raise
    size = sum(len(b) for b in encrypted.inputs) + len(manifest_bytes)
    return _Uploaded(eval_ref, inputs, manifest_bytes, manifest_cid, added, size)


def _manifest(
    prepared: _Prepared,
    encrypted: EncryptedJob,
    plan: PlanChoice,
    depth: int,
    evaluation_keys: ContentRef,
    inputs: list[ContentRef],
) -> Manifest:
    from blindframe.fhe_core.kernels import client_spec_hash

    return Manifest.create(
        kernel=prepared.kernel,
        client_spec_hash=client_spec_hash(prepared.kernel),
        leaf_depth=depth,
        job=encrypted.public.to_json(),
        evaluation_keys=evaluation_keys,
        inputs=inputs,
        fft_plan=plan.plan,
    )


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
        "frames": None if prepared.frames is None else list(prepared.frames),
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
