"""FFT plans: fingerprints, the client's choice, pinning compute processes (retries, give-up,
a long-lived pinned child). Bit-identical pinned replicas of a real tile are checked in
test_fhe_agreement.py; the many-process measurement is ``python -m blindframe.fhe_core.agreement``.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from blindframe.fhe_core.errors import ParameterError, SandboxError
from blindframe.fhe_core.plans import (
    FftPlan,
    PlanUnreachableError,
    isa_level,
    parse_plan,
    plan_fingerprint,
    plan_sizes,
    size_fingerprint,
    survey_kernel,
)
from blindframe.fhe_core.sandbox import PING, PinnedChild, run_in_child

# The misbehaving calls run in a test child program (faulty.py) built on the real child entry.
FAULTY = "faulty"
ENV = {"PYTHONPATH": str(Path(__file__).parent)}
ISA = isa_level()


def test_plan_strings_are_validated() -> None:
    plan = parse_plan(f"{ISA}:512=00112233445566ff+4096=0123456789abcdef", "post@1")
    assert plan.polynomial_sizes == (512, 4096)
    assert plan.fingerprint_of(4096) == "0123456789abcdef"
    assert str(plan) == f"{ISA}:512=00112233445566ff+4096=0123456789abcdef"
    assert parse_plan(str(plan)) == plan
    bad = {
        "": "malformed",
        "x86-64-v4": "malformed",
        "X86:2048=0123456789abcdef": "code path",
        "x86:2048=0123456789ABCDEF": "16 lowercase hex",
        "x86:2048=0123456789abcde": "16 lowercase hex",
        "x86:2000=0123456789abcdef": "not a polynomial size",
        "x86:4096=0123456789abcdef+2048=0123456789abcdef": "ascending",
        "x86:2048=0123456789abcdef+2048=0123456789abcdef": "distinct",
    }
    for text, message in bad.items():
        with pytest.raises(ParameterError, match=message):
            parse_plan(text)
    with pytest.raises(ParameterError, match="post@1 bootstraps with"):
        parse_plan(f"{ISA}:2048=0123456789abcdef", "post@1")
    with pytest.raises(ParameterError, match="malformed"):
        parse_plan(12)


def test_kernel_sizes_and_fingerprints() -> None:
    assert plan_sizes("volume@1") == (2048,)
    assert plan_sizes("post@1") == (512, 4096)
    assert plan_sizes("shade@1") == (4096,)
    first = plan_fingerprint("post@1")
    assert re.fullmatch(rf"{ISA}:512=[0-9a-f]{{16}}\+4096=[0-9a-f]{{16}}", first)
    # the plans of a process are fixed once measured: the fingerprint never changes
    assert plan_fingerprint("post@1") == first
    assert size_fingerprint(4096) == parse_plan(first).fingerprint_of(4096)
    with pytest.raises(ParameterError, match="not a polynomial size"):
        size_fingerprint(1000)


def test_survey_and_choice() -> None:
    survey = survey_kernel("post@1", samples=6)
    assert survey.isa == ISA
    assert set(survey.counts) == {512, 4096}
    assert all(sum(c.values()) == 6 for c in survey.counts.values())
    mode = survey.mode()
    assert parse_plan(str(mode), "post@1") == mode
    assert 0 < survey.share(mode) <= 1
    assert survey.share(FftPlan("other-isa", mode.sizes)) == 0


def _scripted(tmp_path: Path, target: str, script: dict[int, list[str]], **extra: object) -> dict:  # type: ignore[type-arg]
    payload = {
        "target": target,
        "script": {str(n): s for n, s in script.items()},
        "log": str(tmp_path / "calls.log"),
        "attempts": 4,
        **extra,
    }
    return run_in_child("pin_scripted", payload, entry=FAULTY, extra_env=ENV, timeout_s=120).answer


def test_a_mismatching_candidate_is_retried(tmp_path: Path) -> None:
    """The real fork-and-retry loop with a scripted measurement: candidates whose plan is not
    the target's exit, the next is forked, and the call runs in the one that matched."""
    a, b, c = "a" * 16, "b" * 16, "c" * 16
    target = f"{ISA}:512={a}+4096={c}"
    script = {512: [b, b, a, b], 4096: [c, a, a, a]}
    answer = _scripted(tmp_path, target, script)
    assert answer == {"attempts": {"512": 3, "4096": 1}, "plan": target}
    # every candidate measured exactly once: 3 for size 512, then 1 for 4096 in the pinned one
    assert (tmp_path / "calls.log").read_text().split() == ["512"] * 3 + ["4096"]


def test_the_pinned_process_fate_reaches_the_parent(tmp_path: Path) -> None:
    """A crash in the process that got the plan is reported like any crash in the child."""
    a, b = "a" * 16, "b" * 16
    with pytest.raises(SandboxError, match="SIGSEGV"):
        _scripted(tmp_path, f"{ISA}:2048={a}", {2048: [b, a]}, crash=True)


def test_an_unreachable_plan_gives_up(tmp_path: Path) -> None:
    a, b = "a" * 16, "b" * 16
    with pytest.raises(PlanUnreachableError, match=r"after 4 attempts: size 2048 never came"):
        _scripted(tmp_path, f"{ISA}:2048={a}", {2048: [b, b, b, b, a]})
    # for real: a fingerprint no plan has, 3 fresh measurements, then a clear error
    with pytest.raises(PlanUnreachableError, match=r"could not reach FFT plan .* after 3 attempts"):
        run_in_child(
            PING,
            {},
            fft_plan=f"{ISA}:2048=0000000000000000",
            plan_attempts=3,
            timeout_s=120,
        )
    # another SIMD code path: refused at once, no child
    with pytest.raises(PlanUnreachableError, match="other-isa code path"):
        run_in_child(PING, {}, fft_plan="other-isa:2048=0000000000000000")


@pytest.fixture(scope="module")
def volume_plan() -> str:
    """The plan a client here would choose for volume@1 (one size: reached in a few tries)."""
    return str(survey_kernel("volume@1", samples=8).mode())


def test_real_pinning_in_a_fresh_child(volume_plan: str) -> None:
    res = run_in_child(PING, {"x": 2}, fft_plan=volume_plan)
    assert res.answer == {"x": 2}
    assert res.fft_plan == volume_plan
    assert res.plan_attempts >= 1


def test_pinned_child_survives_its_calls_failures(volume_plan: str) -> None:
    with PinnedChild(volume_plan, extra_env=ENV, threads=1, entry=FAULTY) as child:
        first = child.run("echo", {"x": 1}, timeout_s=60)
        assert first.answer == {"x": 1}
        assert first.fft_plan == volume_plan
        assert first.plan_attempts >= 1
        with pytest.raises(SandboxError, match="SIGSEGV"):
            child.run("segfault", {}, timeout_s=60)
        with pytest.raises(SandboxError, match="ran out of time"):
            child.run("sleep", {"seconds": 60}, timeout_s=1)
        with pytest.raises(SandboxError, match="ValueError: boom"):
            child.run("fail", {"message": "boom"}, timeout_s=60)
        again = child.run("echo", {"x": 3}, timeout_s=60)
        assert again.answer == {"x": 3}
        assert again.plan_attempts == 0  # the same pinned process: no new pinning
        assert child.restarts == 0
        # the pinned process dies during a call: the call says so, the next one restarts it
        with pytest.raises(SandboxError, match="pinned compute process died"):
            child.run("kill_parent", {"seconds": 30}, timeout_s=60)
        assert not child.alive
        restarted = child.run("echo", {"x": 4}, timeout_s=60)
        assert restarted.answer == {"x": 4}
        assert restarted.plan_attempts >= 1  # pinned again
        assert child.restarts == 1
        # killed between calls: the next call restarts it too
        assert child._proc is not None
        os.killpg(child._proc.pid, signal.SIGKILL)
        child._proc.wait()
        assert child.run("echo", {"x": 5}, timeout_s=60).answer == {"x": 5}
        assert child.restarts == 2
    assert not child.alive
