"""What canary tiles catch (client/canaries.py), and the defaults chosen from it."""

from __future__ import annotations

import itertools

import pytest

from blindframe.client.canaries import Detection, canaries_for, caught_by_canaries
from blindframe.client.options import default_canaries


@pytest.mark.parametrize(
    ("tasks", "canaries", "faked"), [(6, 2, 1), (6, 2, 3), (7, 3, 5), (5, 0, 2)]
)
def test_canary_probability_counts_every_choice_of_faked_tasks(
    tasks: int, canaries: int, faked: int
) -> None:
    # Every set of `faked` tasks a node could fake, equally likely: the share meeting a canary.
    sets = list(itertools.combinations(range(tasks), faked))
    meeting = sum(1 for chosen in sets if any(t < canaries for t in chosen))
    assert caught_by_canaries(tasks, canaries, faked) == pytest.approx(meeting / len(sets))


def test_the_fewest_canaries_for_a_target_reach_it_and_one_less_does_not() -> None:
    m = canaries_for(64, 1 / 8, 0.9, 1024)
    assert m is not None
    for have, reached in ((m, True), (m - 1, False)):
        tasks = 64 + have
        faked = -(-tasks // 8)
        assert (caught_by_canaries(tasks, have, faked) >= 0.9) is reached
    assert canaries_for(64, 0, 0.99, 10) is None  # one faked tile of 74: 10 cannot do it


def test_defaults_follow_the_checks() -> None:
    # volume: the ring is visible to the node and the twin check catches every wrong tile.
    assert default_canaries("volume", 64) == 0
    ring = Detection(100, 36, 2, ring=True)
    assert ring.adaptive == 0.0
    assert ring.by_canaries(1) == pytest.approx(0.36)
    # shade/post: shuffled canaries, one per 8 tiles and at least one, but no more than catch a
    # node faking an eighth of the tiles with p 0.99 (a 1920x1080 frame: 35, not 4,050).
    assert [default_canaries("post", n) for n in (1, 8, 64, 256)] == [1, 1, 8, 32]
    m = default_canaries("shade", 32_400)
    assert m < 32_400 // 8
    assert caught_by_canaries(32_400 + m, m, -(-(32_400 + m) // 8)) >= 0.99
    assert caught_by_canaries(32_400 + m - 1, m - 1, -(-(32_400 + m - 1) // 8)) < 0.99
    shuffled = Detection(72, 8, 1, ring=False)
    assert shuffled.adaptive == shuffled.by_canaries(1) == pytest.approx(8 / 72)
    assert "no canaries" in Detection(64, 0, 2, ring=True).text()
    assert Detection(64, 0, 2, ring=True).to_json()["byTwin"] == 1.0
