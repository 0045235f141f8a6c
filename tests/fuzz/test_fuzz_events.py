"""Generated garbled CIDs in chain events (a JobPosted manifestCid, a Revealed resultCid, as the
event index stores them: ``0x``-hex of the event's bytes) through what both sides read them with
(coordinator/events.py: event_cid, then the store's Cid.parse): each gives back a CID exactly as
posted, or None (not text), or is refused with the coordinator's InvalidCidError in one line."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from blindframe.coordinator.errors import CoordinatorError
from blindframe.coordinator.events import event_cid
from blindframe.coordinator.store.cid import Cid

from .tally import FUZZ, json_values, tally

CIDS = [
    "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
]


@st.composite
def event_values(draw: st.DrawFn) -> Any:
    """What an event's CID argument may hold once indexed: hex of a CID with bytes changed,
    cut or added (any byte value, so non-ASCII and control characters too), hex of random
    bytes, hex that is not hex, or not a string at all."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        raw = bytearray(draw(st.sampled_from(CIDS)).encode())
        for _ in range(draw(st.integers(1, 3))):
            action = draw(st.sampled_from(["set", "cut", "add"]))
            if action == "set" and raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            elif action == "cut" and raw:
                del raw[draw(st.integers(0, len(raw) - 1))]
            else:
                raw.insert(draw(st.integers(0, len(raw))), draw(st.integers(0, 255)))
        return "0x" + bytes(raw).hex()
    if kind == 1:
        return "0x" + draw(st.binary(max_size=80)).hex()
    if kind == 2:
        return draw(st.sampled_from(["", "0x"])) + draw(st.text(max_size=60))
    if kind == 3:
        return draw(st.from_regex(r"(0x)?[0-9a-fA-F]{0,99}", fullmatch=True))
    return draw(json_values | st.binary(max_size=40))


def read_cid(value: Any) -> Cid | None:
    """An event's CID as every reader takes it: None when the bytes are not text (the worker
    refuses the job, the client marks the lease unavailable), else parsed before any use."""
    text = event_cid(value)
    return None if text is None else Cid.parse(text)


def test_garbled_event_cids_are_refused() -> None:
    with tally("chain events with garbled CIDs", CoordinatorError) as t:
        t.figures["not_text"] = 0

        @FUZZ
        @given(event_values())
        def case(value: Any) -> None:
            text = event_cid(value)
            if text is not None:
                # A CID is ASCII text: anything else is refused, never "repaired".
                assert text.isascii()
                assert bytes.fromhex(str(value).removeprefix("0x")) == text.encode()
            cid = t.check(lambda: read_cid(value), none_refuses=True)
            if text is None:
                t.figures["not_text"] += 1
            elif cid is not None:
                assert Cid.parse(str(cid)) == cid

        case()


def test_a_clean_event_cid_reads_back() -> None:
    for text in CIDS:
        assert str(read_cid("0x" + text.encode().hex())) == text
