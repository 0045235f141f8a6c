"""FFT plans: fingerprint the ones a process uses, pick a job's, and pin a compute process to it.

Concrete's bootstrapping FFT (concrete-fft 0.5 inside tfhe 0.10) picks its algorithm per
polynomial size by timing the candidates the first time the size is used in a process
(``Plan::new(N/2, Method::Measure(10 ms))``), then caches that plan for the process's lifetime.
Different plans round differently, so two honest outputs are bit-identical exactly when their
processes hold the same plans (``AGREEMENT.md``).

- :func:`size_fingerprint` fixes this process's plan for one polynomial size (through the
  runtime library's own ``concrete_cpu_construct_concrete_fft``, the call the runtime makes) and
  fingerprints it with a *micro-probe*: Concrete's own key conversion and one bootstrap, through
  its C API, on fixed pseudo-random inputs. No key set, no file, no secret: the probe is the same
  on every machine, and its output depends only on the plan and the CPU's code path.
- :func:`plan_fingerprint` does that for every size a kernel uses; the result is an *FFT plan*
  string, ``"<isa>:<N>=<16 hex>[+<N>=<16 hex>...]"``, e.g. ``"x86-64-v4:2048=4122cbb55e4d6f70"``.
- :func:`choose_plan` (client) surveys fresh processes and returns the most common plan of each
  size: the target a job carries in its manifest.
- :func:`pin_plans` (sandbox child) forks candidate processes until one holds the target plan of
  each size, so that the process that computes has exactly the job's plans.

A plan pins bit-identical results only between machines on the same SIMD code path (the
``isa`` part: concrete-fft dispatches on AVX-512 at run time); a worker never reaches the plan of
another code path, and says so.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core.errors import FheCoreError, ParameterError, SandboxError

__all__ = [
    "DEFAULT_PLAN_ATTEMPTS",
    "DEFAULT_SURVEY_SAMPLES",
    "FftPlan",
    "PinReport",
    "PlanSurvey",
    "PlanUnreachableError",
    "choose_plan",
    "isa_level",
    "parse_plan",
    "pin_plans",
    "plan_fingerprint",
    "plan_sizes",
    "size_fingerprint",
    "survey_plans",
]

# Candidates per polynomial size before giving up. The rarest mode measured here (N = 4096 under
# load) came up in ~1 process of 3, but plan frequencies shift with the machine's load between the
# client's survey and a node's pinning: a full `make test` once saw a node miss the job's plan 40
# times in a row (four other plans came up) while its neighbour reached it in 6. 120 candidates
# cost about 30 s in that rare case and nothing otherwise.
DEFAULT_PLAN_ATTEMPTS = 120
DEFAULT_SURVEY_SAMPLES = 16
# Exit status of a candidate process whose plan is not the target's.
PLAN_MISMATCH_EXIT = 5
# Exit status of a sandbox child that gave up: the answer file says why.
PLAN_UNREACHABLE_EXIT = 6

_SIZE_RE = re.compile(r"^([1-9][0-9]{0,5})=([0-9a-f]{16})$")
_ISA_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_MAX_SIZES = 8
# Fixed micro-probe shape: GLWE dimension, decomposition, and a short blind rotation.
_PROBE_GLWE = 1
_PROBE_LEVELS = 2
_PROBE_BASE_LOG = 12
_PROBE_LWE = 8
_PROBE_TAG = b"blindframe-fft-plan-v1"
# pulp (concrete-fft's SIMD dispatch) takes its AVX-512 path when all of these are present.
_V4_FLAGS = frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})
_V3_FLAGS = frozenset({"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"})


class PlanUnreachableError(SandboxError):
    """A compute process could not get the job's FFT plan on this machine."""


@dataclass(frozen=True)
class FftPlan:
    """The FFT plans of a process for some polynomial sizes, on one SIMD code path."""

    isa: str
    sizes: tuple[tuple[int, str], ...]

    def __str__(self) -> str:
        return self.isa + ":" + "+".join(f"{n}={fp}" for n, fp in self.sizes)

    @property
    def polynomial_sizes(self) -> tuple[int, ...]:
        """The sizes this plan covers, ascending."""
        return tuple(n for n, _ in self.sizes)

    def fingerprint_of(self, size: int) -> str:
        """The fingerprint of ``size``'s plan."""
        for n, fp in self.sizes:
            if n == size:
                return fp
        raise ParameterError(f"FFT plan {self} has no polynomial size {size}")


def parse_plan(text: object, kernel_id: str | None = None) -> FftPlan:
    """Validate an FFT plan string (it crosses a trust boundary in the manifest); with
    ``kernel_id``, also check that it covers exactly the polynomial sizes the kernel uses."""
    if not isinstance(text, str) or len(text) > 400 or ":" not in text:
        raise ParameterError(
            f"malformed FFT plan {str(text)[:80]!r}: expected '<isa>:<N>=<16 hex>[+...]'"
        )
    isa, _, rest = text.partition(":")
    if not _ISA_RE.match(isa):
        raise ParameterError(f"malformed FFT plan {text[:80]!r}: bad code path name {isa!r}")
    sizes = []
    for part in rest.split("+"):
        match = _SIZE_RE.match(part)
        if not match:
            raise ParameterError(
                f"malformed FFT plan {text[:80]!r}: {part!r} is not <N>=<16 lowercase hex>"
            )
        n = int(match.group(1))
        if n < 256 or n & (n - 1):
            raise ParameterError(f"FFT plan {text[:80]!r}: {n} is not a polynomial size")
        sizes.append((n, match.group(2)))
    if len(sizes) > _MAX_SIZES or [n for n, _ in sizes] != sorted({n for n, _ in sizes}):
        raise ParameterError(
            f"FFT plan {text[:80]!r}: sizes must be distinct and ascending (at most {_MAX_SIZES})"
        )
    plan = FftPlan(isa, tuple(sizes))
    if kernel_id is not None and plan.polynomial_sizes != plan_sizes(kernel_id):
        raise ParameterError(
            f"FFT plan {text[:80]!r} covers sizes {list(plan.polynomial_sizes)}, but {kernel_id} "
            f"bootstraps with {list(plan_sizes(kernel_id))}",
            hint="the job's manifest names a plan for another kernel",
        )
    return plan


def isa_level() -> str:
    """The SIMD code path concrete-fft takes on this CPU: ``x86-64-v4`` (AVX-512),
    ``x86-64-v3`` (AVX2 + FMA), ``x86-64``, or the machine name elsewhere."""
    machine = platform.machine().lower()
    if machine not in {"x86_64", "amd64"}:
        return re.sub(r"[^a-z0-9_-]", "-", machine)[:32] or "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "x86-64"
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    if flags >= _V3_FLAGS | _V4_FLAGS:
        return "x86-64-v4"
    if flags >= _V3_FLAGS:
        return "x86-64-v3"
    return "x86-64"


@functools.cache
def plan_sizes(kernel_id: str) -> tuple[int, ...]:
    """The polynomial sizes a kernel's bootstraps use (from its compiled client specs)."""
    from blindframe.fhe_core.kernels import concrete_client

    info = concrete_client(kernel_id).specs.program_info.get_keyset_info()
    return tuple(sorted({int(key.polynomial_size()) for key in info.bootstrap_keys()}))


# -- the micro-probe (ctypes on Concrete's runtime library) --------------------------------------

_usize = ctypes.c_size_t
_ptr = ctypes.c_void_p


class _Runtime:
    """The already loaded ``libConcretelangRuntime`` and the few C functions the probe calls."""

    def __init__(self) -> None:
        from blindframe.fhe_core.kernels import import_concrete

        import_concrete()  # loads the runtime library this process computes with
        path = _runtime_path()
        self.lib = ctypes.CDLL(str(path), mode=os.RTLD_NOLOAD | os.RTLD_NOW)
        self.fft_size = _usize.in_dll(self.lib, "CONCRETE_FFT_SIZE").value
        self.fft_align = _usize.in_dll(self.lib, "CONCRETE_FFT_ALIGN").value
        sigs: dict[str, tuple[list[Any], Any]] = {
            "concrete_cpu_construct_concrete_fft": ([_ptr, _usize], None),
            "concrete_cpu_destroy_concrete_fft": ([_ptr], None),
            "concrete_cpu_bootstrap_key_size_u64": ([_usize] * 4, _usize),
            "concrete_cpu_fourier_bootstrap_key_size_u64": ([_usize] * 4, _usize),
            "concrete_cpu_bootstrap_key_convert_u64_to_fourier_scratch": (
                [ctypes.POINTER(_usize), ctypes.POINTER(_usize), _ptr],
                ctypes.c_int,
            ),
            "concrete_cpu_bootstrap_key_convert_u64_to_fourier": (
                [_ptr, _ptr, _usize, _usize, _usize, _usize, _usize, _ptr, _ptr, _usize],
                None,
            ),
            "concrete_cpu_bootstrap_lwe_ciphertext_u64_scratch": (
                [ctypes.POINTER(_usize), ctypes.POINTER(_usize), _usize, _usize, _ptr],
                ctypes.c_int,
            ),
            "concrete_cpu_bootstrap_lwe_ciphertext_u64": (
                [_ptr] * 4 + [_usize] * 5 + [_ptr, _ptr, _usize],
                None,
            ),
        }
        for name, (args, res) in sigs.items():
            func = getattr(self.lib, name)
            func.argtypes = args
            func.restype = res


def _runtime_path() -> Path:
    """Where this process loaded Concrete's runtime library from."""
    try:
        with Path("/proc/self/maps").open() as maps:
            for line in maps:
                if "libConcretelangRuntime" in line:
                    return Path(line.split()[-1])
    except OSError:
        pass
    from concrete import fhe  # the wheel keeps its native libraries beside the package

    base = Path(fhe.__file__).resolve().parents[2]
    found = sorted(base.glob("concrete_python.libs/libConcretelangRuntime*.so"))
    if not found:
        raise FheCoreError(
            "cannot find Concrete's runtime library (libConcretelangRuntime) in this process",
            hint="FFT plans can only be pinned with the concrete-python wheel's runtime",
        )
    return found[0]


@functools.cache
def _runtime() -> _Runtime:
    return _Runtime()


def _aligned(nbytes: int, align: int, keep: list[Any]) -> npt.NDArray[np.uint8]:
    raw = np.zeros(nbytes + align, dtype=np.uint8)
    offset = (-raw.ctypes.data) % align
    keep.append(raw)
    return raw[offset : offset + nbytes]


def _scratch(status: int, size: ctypes.c_size_t, what: str) -> int:
    if status != 0:
        raise FheCoreError(f"Concrete refused the micro-probe's {what} scratch size")
    return int(size.value)


def size_fingerprint(polynomial_size: int) -> str:
    """Fix this process's FFT plan for ``polynomial_size`` (measured now unless it already is)
    and return its fingerprint: 16 hex digits of sha256 over a key conversion and a bootstrap
    computed with it on fixed inputs. Stable for the process's lifetime."""
    n = int(polynomial_size)
    if n < 256 or n > 1 << 16 or n & (n - 1):
        raise ParameterError(f"{n} is not a polynomial size (a power of two, 256..65536)")
    rt = _runtime()
    lib = rt.lib
    keep: list[Any] = []
    fft = _aligned(rt.fft_size, max(rt.fft_align, 64), keep)
    lib.concrete_cpu_construct_concrete_fft(fft.ctypes.data, n)
    try:
        k, levels, base_log, n_in = _PROBE_GLWE, _PROBE_LEVELS, _PROBE_BASE_LOG, _PROBE_LWE
        rng = np.random.default_rng([0xB1F, n])  # PCG64: the same numbers on every machine
        standard = rng.integers(
            0, 1 << 64, lib.concrete_cpu_bootstrap_key_size_u64(levels, k, n, n_in), dtype=np.uint64
        )
        fourier_len = lib.concrete_cpu_fourier_bootstrap_key_size_u64(levels, k, n, n_in)
        fourier = _aligned(16 * fourier_len, 128, keep)
        size, align = _usize(), _usize()
        stack_len = _scratch(
            lib.concrete_cpu_bootstrap_key_convert_u64_to_fourier_scratch(
                ctypes.byref(size), ctypes.byref(align), fft.ctypes.data
            ),
            size,
            "key conversion",
        )
        stack = _aligned(stack_len, max(int(align.value), 64), keep)
        lib.concrete_cpu_bootstrap_key_convert_u64_to_fourier(
            standard.ctypes.data,
            fourier.ctypes.data,
            levels,
            base_log,
            k,
            n,
            n_in,
            fft.ctypes.data,
            stack.ctypes.data,
            stack_len,
        )
        ct_in = rng.integers(0, 1 << 64, n_in + 1, dtype=np.uint64)
        accumulator = rng.integers(0, 1 << 64, (k + 1) * n, dtype=np.uint64)
        ct_out = np.zeros(k * n + 1, dtype=np.uint64)
        stack_len = _scratch(
            lib.concrete_cpu_bootstrap_lwe_ciphertext_u64_scratch(
                ctypes.byref(size), ctypes.byref(align), k, n, fft.ctypes.data
            ),
            size,
            "bootstrap",
        )
        stack = _aligned(stack_len, max(int(align.value), 64), keep)
        lib.concrete_cpu_bootstrap_lwe_ciphertext_u64(
            ct_out.ctypes.data,
            ct_in.ctypes.data,
            accumulator.ctypes.data,
            fourier.ctypes.data,
            levels,
            base_log,
            k,
            n,
            n_in,
            fft.ctypes.data,
            stack.ctypes.data,
            stack_len,
        )
    finally:
        lib.concrete_cpu_destroy_concrete_fft(fft.ctypes.data)
    digest = hashlib.sha256(_PROBE_TAG + n.to_bytes(8, "little"))
    digest.update(fourier.tobytes())
    digest.update(ct_out.astype("<u8").tobytes())
    return digest.hexdigest()[:16]


def plan_fingerprint(kernel_id: str) -> str:
    """This process's FFT plan for every polynomial size ``kernel_id`` uses (fixing the ones not
    used yet). Two processes with equal plans compute bit-identical outputs of the kernel."""
    sizes = plan_sizes(kernel_id)
    return str(FftPlan(isa_level(), tuple((n, size_fingerprint(n)) for n in sizes)))


# -- surveying and pinning (fork-based: run these only in a process made for it) ---------------


@dataclass
class PlanSurvey:
    """How often each plan of each size came up in fresh candidate processes on this machine."""

    isa: str
    samples: int
    counts: dict[int, collections.Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def mode(self) -> FftPlan:
        """The most common plan of each size (ties: the smallest fingerprint)."""
        sizes = []
        for n in sorted(self.counts):
            best = max(self.counts[n].items(), key=lambda item: (item[1], _neg(item[0])))
            sizes.append((n, best[0]))
        return FftPlan(self.isa, tuple(sizes))

    def share(self, plan: FftPlan) -> float:
        """Estimated chance that one fresh process holds ``plan`` (sizes are independent)."""
        if plan.isa != self.isa or set(plan.polynomial_sizes) != set(self.counts):
            return 0.0
        out = 1.0
        for n, fp in plan.sizes:
            out *= self.counts[n][fp] / max(1, self.samples)
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "isa": self.isa,
            "samples": self.samples,
            "counts": {str(n): dict(c) for n, c in self.counts.items()},
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanSurvey:
        """Inverse of :meth:`to_json`."""
        return cls(
            isa=str(data["isa"]),
            samples=int(data["samples"]),
            counts={
                int(n): collections.Counter({str(k): int(v) for k, v in c.items()})
                for n, c in data["counts"].items()
            },
            seconds=float(data.get("seconds", 0.0)),
        )


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _end_like(status: int) -> None:
    """End this process the way a child whose wait status is ``status`` ended (never returns)."""
    _flush()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def survey_plans(
    sizes: Iterable[int],
    samples: int = DEFAULT_SURVEY_SAMPLES,
    *,
    measure: Callable[[int], str] = size_fingerprint,
) -> PlanSurvey:
    """Fork ``samples`` candidate processes that each measure a fresh plan of every size; count
    what they got. The calling process must not hold plans of these sizes yet (forks would
    inherit them): call it in a fresh process (``choose_plan`` does)."""
    sizes = sorted({int(n) for n in sizes})
    if not sizes:
        raise ParameterError("a plan survey needs at least one polynomial size")
    if not 1 <= samples <= 1000:
        raise ParameterError(f"a plan survey takes 1..1000 samples, not {samples}")
    if measure is size_fingerprint:
        _runtime()  # import Concrete once, here, not in every candidate
    start = time.monotonic()
    survey = PlanSurvey(isa_level(), samples, {n: collections.Counter() for n in sizes})
    for _ in range(samples):
        read_fd, write_fd = os.pipe()
        _flush()
        pid = os.fork()
        if pid == 0:  # candidate: measure, report, leave without touching the parent's state
            code = 0
            try:
                os.close(read_fd)
                os.write(write_fd, " ".join(measure(n) for n in sizes).encode())
            except BaseException:  # noqa: BLE001 - reported as a failed sample by the parent
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        got = _read_all(read_fd).decode().split()
        _pid, status = os.waitpid(pid, 0)
        if status != 0 or len(got) != len(sizes):
            raise FheCoreError(f"a plan-survey candidate failed (wait status {status})")
        for n, fp in zip(sizes, got, strict=True):
            survey.counts[n][fp] += 1
    survey.seconds = time.monotonic() - start
    return survey


@dataclass(frozen=True)
class PinReport:
    """How a pinned process got its plans: candidates forked per size, and the time it took."""

    plan: str
    attempts: dict[int, int]
    seconds: float

    @property
    def total_attempts(self) -> int:
        """Candidates forked, all sizes together."""
        return sum(self.attempts.values())


def pin_plans(
    target: FftPlan,
    *,
    attempts: int = DEFAULT_PLAN_ATTEMPTS,
    measure: Callable[[int], str] = size_fingerprint,
) -> PinReport:
    """Fork candidates until one holds ``target``'s plan of each size; return in that process.

    For each size in turn, a candidate fixes and fingerprints its plan; on a mismatch it exits
    and the next is forked; on a match it goes on (and pins the next size). Every process that
    forked a matching candidate waits for it and then ends exactly as it did (exit status or
    signal), so the sandbox's parent sees the pinned process's fate. Raises
    PlanUnreachableError after ``attempts`` mismatches on one size (in the process that tried).
    Run only in a sandbox child that holds no plan of these sizes and runs no threads of its own.
    """
    if target.isa != isa_level():
        raise PlanUnreachableError(
            f"could not reach FFT plan {target}: it was measured on the {target.isa} code path, "
            f"this machine runs {isa_level()}",
            hint="leave this job to workers whose CPU takes the same SIMD code path",
        )
    if not 1 <= attempts <= 10_000:
        raise ParameterError(f"plan attempts must be 1..10000, not {attempts}")
    if measure is size_fingerprint:
        _runtime()  # import Concrete once, here, not in every candidate
    start = time.monotonic()
    tried: dict[int, int] = {}
    for n, want in target.sizes:
        seen: collections.Counter[str] = collections.Counter()
        tried[n] = 0
        while True:
            if tried[n] >= attempts:
                others = ", ".join(f"{fp} x{c}" for fp, c in seen.most_common(4))
                raise PlanUnreachableError(
                    f"could not reach FFT plan {target} after {tried[n]} attempts: size {n} "
                    f"never came out {want} on this machine (it gave {others})",
                    hint="this CPU model may never pick that plan: leave the job to others",
                )
            tried[n] += 1
            read_fd, write_fd = os.pipe()
            _flush()
            pid = os.fork()
            if pid == 0:  # candidate
                os.close(read_fd)
                got = measure(n)
                os.write(write_fd, got.encode())
                os.close(write_fd)
                if got == want:
                    break  # pinned for n: this candidate goes on with the next size
                os._exit(PLAN_MISMATCH_EXIT)
            os.close(write_fd)
            got = _read_all(read_fd).decode()
            _pid, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == PLAN_MISMATCH_EXIT:
                seen[got] += 1
                continue
            _end_like(status)  # the pinned descendant finished (or failed): end as it did
    return PinReport(str(target), tried, time.monotonic() - start)


def _survey_job(payload: dict[str, Any]) -> dict[str, Any]:
    """The sandbox child's ``survey`` call: survey the plans of ``payload['sizes']`` with fresh
    forks."""
    survey = survey_plans([int(n) for n in payload["sizes"]], int(payload["samples"]))
    return survey.to_json()


def choose_plan(
    kernel_id: str,
    *,
    samples: int = DEFAULT_SURVEY_SAMPLES,
    timeout_s: float = 300.0,
) -> str:
    """The FFT plan a job of ``kernel_id`` should pin (client side, put it in the manifest):
    the most common plan of each polynomial size among ``samples`` fresh processes here."""
    return str(survey_kernel(kernel_id, samples=samples, timeout_s=timeout_s).mode())


def survey_kernel(
    kernel_id: str,
    *,
    samples: int = DEFAULT_SURVEY_SAMPLES,
    timeout_s: float = 300.0,
) -> PlanSurvey:
    """Survey the plans of ``kernel_id``'s sizes in a fresh sandbox child (plans of the calling
    process are untouched)."""
    from blindframe.fhe_core.sandbox import SURVEY, run_in_child

    result = run_in_child(
        SURVEY,
        {"sizes": list(plan_sizes(kernel_id)), "samples": int(samples)},
        timeout_s=timeout_s,
    )
    return PlanSurvey.from_json(result.answer)
