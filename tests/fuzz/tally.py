"""Counting generated bad inputs and how each ended: accepted, refused (the package's own error,
one line) or crashed (anything else). The figures go to tests/RELIABILITY.md ("bad input")."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from support.reliability import record

from blindframe.errors import BlindframeError

__all__ = ["CASES", "FUZZ", "MESSAGE_CHARS", "SLOWEST_S", "Tally", "json_values", "tally"]

T = TypeVar("T")

# The bar: at least this many generated cases per kind of bad input.
CASES = 1000
# Reproducible in CI: the same cases every run (derandomize), no example database on disk.
FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# No single input may take more CPU seconds than this: a refusal is a check, not work.
SLOWEST_S = 2.0

# A refusal is one line a person reads: never the whole of a hostile value.
MESSAGE_CHARS = 500

# Any JSON value, with the awkward ones over-represented: huge and negative integers, NaN and
# infinities (Python's json writes and reads them), booleans where numbers belong, deep nesting.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64 + 1, -(2**70), 10**100])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
# Values far larger than any field needs (the message must not quote them whole).
_bulky = st.integers(300, 5000).flatmap(
    lambda n: st.sampled_from([[7] * n, "x" * n, {"k": list(range(n))}])
)
json_values: st.SearchStrategy[Any] = _bulky | st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


class Tally:
    """How the cases of one kind of bad input ended."""

    def __init__(self, kind: str, refusal: type[BlindframeError]) -> None:
        self.kind = kind
        self.refusal = refusal
        self.accepted = 0
        self.refused = 0
        self.crashes = 0
        self.slowest = 0.0
        self.last_refusal = ""
        # More figures for the report, beside tried, refused, accepted, crashes.
        self.figures: dict[str, int] = {}

    @property
    def tried(self) -> int:
        return self.accepted + self.refused + self.crashes

    def check(
        self,
        call: Callable[[], T | None],
        *,
        names: tuple[str, ...] = (),
        none_refuses: bool = False,
    ) -> T | None:
        """Run ``call`` on one generated input: its result when accepted, None when refused
        with :attr:`refusal` in one line (naming one of ``names`` when given), or when it
        returned None and ``none_refuses`` (a reader that says "not one" without raising);
        anything else is a crash, counted and raised (hypothesis then shrinks and reports it)."""
        # CPU time, not wall time: other processes of a loaded CI machine must not fail this;
        # a loop that never ends in pure Python burns CPU all the same.
        start = time.process_time()
        try:
            result = call()
        except self.refusal as exc:
            self.refused += 1
            text = self.last_refusal = str(exc)
            assert text.strip(), f"{self.kind}: refused with an empty message"
            assert "\n" not in text, f"{self.kind}: a refusal of several lines: {text!r}"
            assert len(text) <= MESSAGE_CHARS, f"{self.kind}: a refusal of {len(text)} chars"
            if names:
                assert any(n.lower() in text.lower() for n in names), (
                    f"{self.kind}: the refusal {text!r} names none of {names}"
                )
            return None
        except Exception:
            self.crashes += 1
            raise
        finally:
            took = time.process_time() - start
            self.slowest = max(self.slowest, took)
            assert took < SLOWEST_S, (
                f"{self.kind}: one input took {took:.1f} s of CPU (a hang in the making)"
            )
        if result is None and none_refuses:
            self.refused += 1
        else:
            self.accepted += 1
        return result


@contextmanager
def tally(kind: str, refusal: type[BlindframeError], *, cases: int = CASES) -> Iterator[Tally]:
    """A Tally for ``kind``, recorded when the block ends (a failing run records its crash),
    then checked: at least ``cases`` cases tried, none crashed."""
    counts = Tally(kind, refusal)
    try:
        yield counts
    finally:
        record(
            "bad input",
            kind,
            cases_tried=counts.tried,
            refused=counts.refused,
            accepted=counts.accepted,
            crashes=counts.crashes,
            slowest_cpu_ms=math.ceil(counts.slowest * 1000),
            **counts.figures,
        )
    assert counts.crashes == 0
    assert counts.tried >= cases, f"{kind}: only {counts.tried} cases ran, not {cases}"
