"""The FFT plan a job pins: chosen on this machine per kernel, remembered beside the key set.

Honest replicas are bit-identical only when their compute processes hold the same Concrete FFT
plans (``fhe_core/AGREEMENT.md``), so every job's manifest names the plan its workers pin.
:func:`job_plan` chooses it with :func:`blindframe.fhe_core.plans.survey_kernel` (16 fresh
processes, the most common plan of each polynomial size: 4-6 s) and remembers the choice in
``<home>/keys/<kernel>/fft-plan.json`` with the time, the SIMD code path and the kernel's
client-spec hash, so posts within :data:`PLAN_MAX_AGE_S` reuse it. A remembered choice is
surveyed again when it is older, when this machine's code path or the kernel build changed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindframe.client.errors import JobOptionsError
from blindframe.client.progress import PLAN, Progress, no_progress
from blindframe.fhe_core.errors import FheCoreError

__all__ = ["PLAN_FILE", "PLAN_MAX_AGE_S", "PlanChoice", "job_plan", "plan_file"]

PLAN_FILE = "fft-plan.json"
# Plans drift with the machine's load (AGREEMENT.md: the mode of N = 2048 moved from 75 % to
# 44 % under load); an hour keeps repeated posts free without pinning a stale mode for long.
PLAN_MAX_AGE_S = 3600


@dataclass(frozen=True)
class PlanChoice:
    """A job's FFT plan and where it came from (``survey``, ``cache`` or ``given``)."""

    kernel: str
    plan: str
    isa: str
    source: str
    chosen_at: int
    survey_seconds: float
    samples: int
    share: float  # estimated chance that one fresh process here holds the plan

    @property
    def cached(self) -> bool:
        """Whether the plan came from an earlier survey."""
        return self.source == "cache"

    def describe(self) -> str:
        """One line for people: the plan and how it was chosen."""
        if self.source == "given":
            return f"FFT plan {self.plan} (given)"
        how = (
            f"{self.share:.0%} of {self.samples} fresh processes, surveyed in "
            f"{self.survey_seconds:.1f} s"
        )
        if self.source == "cache":
            return f"FFT plan {self.plan} (remembered from {_ago(self.chosen_at)}: {how})"
        return f"FFT plan {self.plan} ({how})"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (``--json`` output, job.json)."""
        return {
            "kernel": self.kernel,
            "plan": self.plan,
            "isa": self.isa,
            "source": self.source,
            "chosenAt": self.chosen_at,
            "surveySeconds": round(self.survey_seconds, 3),
            "samples": self.samples,
            "share": round(self.share, 4),
        }


def plan_file(kernel_id: str, home: Path) -> Path:
    """Where ``home`` remembers the plan of ``kernel_id``: beside its key set."""
    from blindframe.fhe_core.kernels import client_spec_hash

    client_spec_hash(kernel_id)  # validates the id before it becomes a path
    return Path(home) / "keys" / kernel_id / PLAN_FILE


def job_plan(
    kernel_id: str,
    home: Path,
    *,
    given: str | None = None,
    max_age: float = PLAN_MAX_AGE_S,
    progress: Progress = no_progress,
) -> PlanChoice:
    """The FFT plan a new job of ``kernel_id`` pins: ``given`` (checked to fit the kernel; it may
    name another SIMD code path, for render nodes on that path), else
    the one this home chose less than ``max_age`` seconds ago on this machine, else a fresh
    survey (remembered)."""
    from blindframe.fhe_core.kernels import client_spec_hash
    from blindframe.fhe_core.plans import isa_level, parse_plan, survey_kernel

    isa = isa_level()
    if given is not None:
        try:
            plan = parse_plan(given.strip(), kernel_id)
        except FheCoreError as exc:
            raise JobOptionsError(f"--fft-plan: {exc.message}", hint=exc.hint) from None
        # Another code path is allowed: only render nodes on that path will take the job.
        return PlanChoice(kernel_id, str(plan), plan.isa, "given", int(time.time()), 0.0, 0, 0.0)
    spec = client_spec_hash(kernel_id)
    path = plan_file(kernel_id, home)
    remembered = _read(path, kernel_id, spec, isa, max_age)
    if remembered is not None:
        progress(PLAN, 1, 1)
        return remembered
    progress(PLAN, 0, 1)
    survey = survey_kernel(kernel_id)
    mode = survey.mode()
    choice = PlanChoice(
        kernel=kernel_id,
        plan=str(mode),
        isa=mode.isa,
        source="survey",
        chosen_at=int(time.time()),
        survey_seconds=survey.seconds,
        samples=survey.samples,
        share=survey.share(mode),
    )
    _write(path, {**choice.to_json(), "specHash": spec})
    progress(PLAN, 1, 1)
    return choice


def _read(path: Path, kernel_id: str, spec: str, isa: str, max_age: float) -> PlanChoice | None:
    """The remembered choice, if it still holds (same kernel build and code path, recent)."""
    from blindframe.fhe_core.plans import parse_plan

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("specHash") != spec or data.get("isa") != isa:
            return None
        chosen = int(data["chosenAt"])
        if not 0 <= time.time() - chosen <= max_age:
            return None
        plan = parse_plan(data["plan"], kernel_id)
        return PlanChoice(
            kernel=kernel_id,
            plan=str(plan),
            isa=plan.isa,
            source="cache",
            chosen_at=chosen,
            survey_seconds=float(data.get("surveySeconds", 0.0)),
            samples=int(data.get("samples", 0)),
            share=float(data.get("share", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError, FheCoreError):
        return None  # missing, unreadable or stale: survey again


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _ago(stamp: int) -> str:
    seconds = max(int(time.time()) - stamp, 0)
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"
