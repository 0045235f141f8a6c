"""What a render job asks for: kernel, frame, canaries, public parameters and market terms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blindframe.client.canaries import LAZY_FRACTION, canaries_for
from blindframe.client.errors import JobOptionsError
from blindframe.client.scene import DEFAULT_RESOLUTION, UpAxis
from blindframe.client.units import format_duration
from blindframe.coordinator.market import NO_FAULT_LIMIT

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_FRAME",
    "DEFAULT_LEASE_LENGTH",
    "DEFAULT_RETRIES",
    "DEFAULT_REWARD_WEI",
    "MAX_CANARIES",
    "MAX_ORBIT",
    "MAX_RETRIES",
    "JobOptions",
    "check_retries",
    "default_canaries",
]

DEFAULT_FRAME = (64, 64)
DEFAULT_REWARD_WEI = 10**14
DEFAULT_LEASE_LENGTH = 600
DEFAULT_DEADLINE = 3600
MAX_CANARIES = 1024
# Follow-up jobs of failed tiles `client render` may post (`--retries`). One by default: a node
# dying mid-lease is the common failure and one follow-up covers it; more cost more escrow and
# time, so they are asked for.
DEFAULT_RETRIES = 1
MAX_RETRIES = 10
# The widest turntable (--orbit, degrees over the frame range): one turn either way.
MAX_ORBIT = 360.0


def default_canaries(kernel_name: str, real_tiles: int) -> int:
    """The canaries a job of ``real_tiles`` tiles gets unless asked for: none for ``volume``
    (margin rings), and for ``shade``/``post`` (shuffled canary tasks) one per 8 tiles, at least
    one, but no more than make canaries alone catch a node faking an eighth of the job's tiles
    with probability 0.99 (about 35 whatever the size: 4,050 would be one per 8 tiles of a
    1920x1080 frame). Chosen from what each check catches (client/canaries.py): the client
    checks every tile against the plaintext twin, which catches any wrong tile; a volume ring
    sits where a node can see it, so it adds no check of its own and cost 56 % more work on a
    64x64 frame, while shuffled canaries stay a check that holds without the plaintext."""
    if kernel_name == "volume":
        return 0
    enough = canaries_for(real_tiles, LAZY_FRACTION, 0.99, max(1, real_tiles // 8))
    return max(1, real_tiles // 8 if enough is None else enough)


def check_retries(retries: int) -> None:
    """Refuse a ``--retries`` outside 0..MAX_RETRIES."""
    if not 0 <= retries <= MAX_RETRIES:
        raise JobOptionsError(
            f"--retries must be 0..{MAX_RETRIES} (not {retries})",
            hint="each retry posts one follow-up job of the tiles still missing",
        )


@dataclass(frozen=True)
class JobOptions:
    """How to render: kernel, frame, market terms. Durations in seconds, amounts in wei.

    ``kernel``: ``volume@1`` / ``shade@1`` / ``post@1``; None picks the one the scene's kind
    needs (``volume@1`` for the sample). ``frame``: (height, width) pixels, a multiple of 8 for
    ``volume``; G-buffer and frame scenes bring their own size (None, or equal to it). The tile
    count follows from frame and canaries. ``canaries``: for ``volume``, tiles of margin around the
    frame (0..16, default 0) whose known answers catch lazy workers; for ``shade``/``post``, extra
    tasks that re-encrypt random tiles (default one per 8 tiles); None: :func:`default_canaries`.
    ``params``: the kernel's public parameters (volume: ``{"yaw", "pitch", "zoom"}``; shade:
    ``{"light": [x, y, z]}``; post: ``{"filter": name}``), default the sample's.
    ``deadline``: seconds from now until the job's deadline (claims must fit before it; refunds
    after it). ``fft_plan``: the FFT plan replicas
    pin (``<isa>:<N>=<16 hex>[+...]``); None chooses it on this machine (experts only).
    ``min_completed`` and ``max_faults``: the reputation gate the chain enforces on claims (and
    on the jurors of the job's contests): nodes with at least that many tiles paid, ever, and at
    most that many faults (slashes); 0 and None (any number) leave the job open to every staked
    node.
    ``frames``: render that many frames of the one encrypted scene as one job (an animation;
    1..``fhe_core.jobs.MAX_FRAMES``, volume kernels), the camera's yaw advancing ``orbit``
    degrees over them (a turntable: frame ``i`` at ``yaw + i * orbit / frames``; -360..360,
    default 0); or ``frame_angles``, each frame's ``yaw``/``pitch`` given (the Blender add-on's
    camera path). None: one frame, as before.
    """

    kernel: str | None = None
    frame: tuple[int, int] | None = None
    replication: int = 1
    reward_wei: int = DEFAULT_REWARD_WEI
    lease_length: int = DEFAULT_LEASE_LENGTH
    deadline: int = DEFAULT_DEADLINE
    priority: int = 0
    canaries: int | None = None
    params: Mapping[str, Any] | None = None
    resolution: int = DEFAULT_RESOLUTION
    up: UpAxis = "y"
    fft_plan: str | None = None
    min_completed: int = 0
    max_faults: int | None = None
    frames: int | None = None
    orbit: float | None = None
    frame_angles: tuple[Mapping[str, float], ...] | None = None

    @property
    def max_faults_on_chain(self) -> int:
        """``max_faults`` as postJob takes it (NO_FAULT_LIMIT: any number)."""
        return NO_FAULT_LIMIT if self.max_faults is None else self.max_faults

    def check(self) -> None:
        """Refuse values no job can have (the chain's own limits are checked by ``post``)."""
        if self.kernel is not None:
            from blindframe.fhe_core.kernels import parse_kernel_id

            parse_kernel_id(self.kernel)
        if self.frame is not None:
            h, w = self.frame
            if not (0 < h <= 4096 and 0 < w <= 4096):
                raise JobOptionsError(f"the frame must be 1..4096 pixels a side (not {w}x{h})")
        if not 1 <= self.replication <= 8:
            raise JobOptionsError(f"replication must be 1..8 (not {self.replication})")
        if self.reward_wei <= 0 or self.reward_wei >= 1 << 96:
            raise JobOptionsError(
                f"the reward per tile-replica must be more than 0 (not {self.reward_wei} wei)"
            )
        if not 0 < self.lease_length < 1 << 32:
            raise JobOptionsError(f"the lease length must be positive (not {self.lease_length} s)")
        if self.deadline < self.lease_length:
            raise JobOptionsError(
                f"the deadline (in {format_duration(self.deadline)}) leaves no room for one "
                f"lease of {format_duration(self.lease_length)}",
                hint="give a later --deadline or a shorter --lease-length",
            )
        if not 0 <= self.priority <= 255:
            raise JobOptionsError(f"priority must be 0..255 (not {self.priority})")
        if self.canaries is not None and not 0 <= self.canaries <= MAX_CANARIES:
            raise JobOptionsError(f"canaries must be 0..{MAX_CANARIES} (not {self.canaries})")
        if not 0 <= self.min_completed < 1 << 32:
            raise JobOptionsError(
                f"--min-completed must be 0..{(1 << 32) - 1} paid tiles (not {self.min_completed})"
            )
        if self.max_faults is not None and not 0 <= self.max_faults < NO_FAULT_LIMIT:
            raise JobOptionsError(
                f"--max-faults must be 0..{NO_FAULT_LIMIT - 1} (not {self.max_faults})",
                hint="leave --max-faults out to admit nodes with any number of faults",
            )
        self._check_frames()
        if self.fft_plan is not None:
            from blindframe.fhe_core.errors import FheCoreError
            from blindframe.fhe_core.plans import parse_plan

            try:
                parse_plan(self.fft_plan)  # its sizes are checked once the kernel is known
            except FheCoreError as exc:
                raise JobOptionsError(f"--fft-plan: {exc.message}") from None

    def _check_frames(self) -> None:
        """--frames, --orbit and frame_angles: a frame count the manifest takes, finite angles."""
        from blindframe.fhe_core.jobs import MAX_FRAMES

        if self.orbit is not None and self.frames is None:
            raise JobOptionsError(
                "--orbit needs --frames: it is the turn over the frame range",
                hint="e.g. --frames 48 --orbit 360 (a turntable of 48 frames)",
            )
        if self.frame_angles is not None and (self.frames is not None or self.orbit is not None):
            raise JobOptionsError("give either the frames' angles or --frames/--orbit, not both")
        count = len(self.frame_angles) if self.frame_angles is not None else self.frames
        if count is not None and (isinstance(count, bool) or not 1 <= count <= MAX_FRAMES):
            raise JobOptionsError(
                f"--frames must be 1..{MAX_FRAMES} (not {count})",
                hint="render a longer animation as several jobs",
            )
        if self.orbit is not None and not (
            math.isfinite(self.orbit) and -MAX_ORBIT <= self.orbit <= MAX_ORBIT
        ):
            raise JobOptionsError(
                f"--orbit must be a finite number of degrees in -{MAX_ORBIT:g}..{MAX_ORBIT:g} "
                f"(not {self.orbit})"
            )
        for index, angles in enumerate(self.frame_angles or ()):
            for key, value in angles.items():
                if key not in ("yaw", "pitch") or not math.isfinite(value):
                    raise JobOptionsError(
                        f"frame {index}: {key} = {value!r} is not a finite yaw or pitch angle"
                    )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (kept in job.json)."""
        return {
            "kernel": self.kernel,
            "frame": list(self.frame) if self.frame else None,
            "replication": self.replication,
            "rewardPerTileReplica": str(self.reward_wei),
            "leaseLength": self.lease_length,
            "deadlineIn": self.deadline,
            "priority": self.priority,
            "canaries": self.canaries,
            "params": dict(self.params) if self.params is not None else None,
            "resolution": self.resolution,
            "up": self.up,
            "fftPlan": self.fft_plan,
            "minCompleted": self.min_completed,
            "maxFaults": self.max_faults,
            "frames": self.frames,
            "orbit": self.orbit,
            "frameAngles": (
                None if self.frame_angles is None else [dict(a) for a in self.frame_angles]
            ),
        }
