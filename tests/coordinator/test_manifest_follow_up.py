"""Follow-up manifests (failed tiles posted again): the first job's description, inputs and keys,
with ``followUp`` mapping each tile to the first job's task, validated like everything else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from blindframe.coordinator.errors import ManifestError
from blindframe.coordinator.manifest import MAX_FOLLOW_UPS, ContentRef, FollowUp, Manifest
from blindframe.fhe_core import sample
from blindframe.fhe_core.jobs import PublicJob
from blindframe.fhe_core.kernels import client_spec_hash
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.fhe_core.plans import isa_level

KEYS = ContentRef("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN", 1000)
# Three distinct CIDs (CIDv0 of different bytes), one input per task of a post@1 job.
INPUTS = [
    ContentRef("QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51", 11),
    ContentRef("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", 12),
    ContentRef("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn", 13),
]


def _first_job(kernel: str, follow_up: FollowUp | None = None) -> Manifest:
    if kernel == "post@1":
        public = PublicJob(kernel, dict(sample.SAMPLE_FILTER), (8, 24), 3, False)
        inputs = INPUTS
        plan = f"{isa_level()}:512=5e1b685f17f459e5+4096=5e1b685f17f459e5"
    else:
        public = PublicJob(kernel, dict(sample.SAMPLE_CAMERA), (32, 32), 16, True)
        inputs = INPUTS[:1]
        plan = f"{isa_level()}:2048=5e1b685f17f459e5"
    return Manifest.create(
        kernel=kernel,
        client_spec_hash=client_spec_hash(kernel),
        leaf_depth=leaf_depth(kernel),
        job=public.to_json(),
        evaluation_keys=KEYS,
        inputs=inputs,
        fft_plan=plan,
        follow_up=follow_up,
    )


def test_a_follow_up_computes_the_first_jobs_tasks_on_its_inputs() -> None:
    first = _first_job("post@1")
    assert first.follow_up is None
    assert "followUp" not in first.to_json()  # a first job's manifest (and CID) is unchanged
    follow_up = _first_job("post@1", FollowUp(ancestors=(7,), tasks=(2, 0)))
    parsed = Manifest.parse(follow_up.to_bytes())
    assert parsed == follow_up
    assert parsed.tile_count == 2  # the contract's tileCount: the retried tasks
    assert [parsed.task_of(t) for t in range(2)] == [2, 0]
    # The first job's per-task inputs, found through the task each tile retries.
    assert [parsed.input_for(t) for t in range(2)] == [INPUTS[2], INPUTS[0]]
    assert parsed.evaluation_keys == first.evaluation_keys
    parsed.check_against_chain(kernel="post@1", tile_count=2, leaf_depth=leaf_depth("post@1"))
    with pytest.raises(ManifestError, match="the chain says 3 tiles"):
        parsed.check_against_chain(kernel="post@1", tile_count=3, leaf_depth=leaf_depth("post@1"))
    with pytest.raises(ManifestError, match="tile 2 is outside a job of 2 tiles"):
        parsed.task_of(2)

    volume = Manifest.parse(_first_job("volume@1", FollowUp((3, 5), (15, 4, 9))).to_bytes())
    assert volume.follow_up == FollowUp((3, 5), (15, 4, 9))
    assert volume.tile_count == 3
    assert volume.task_of(0) == 15
    assert {volume.input_for(t) for t in range(3)} == {INPUTS[0]}  # the shared volume


@pytest.mark.parametrize(
    ("follow_up", "message"),
    [
        ({"ancestors": [1], "tasks": [3]}, "distinct tasks of the first job (0..2)"),
        ({"ancestors": [1], "tasks": [0, 0]}, "distinct tasks"),
        ({"ancestors": [1], "tasks": []}, "distinct tasks"),
        ({"ancestors": [], "tasks": [0]}, f"1..{MAX_FOLLOW_UPS} distinct job ids"),
        ({"ancestors": [1, 1], "tasks": [0]}, "distinct job ids"),
        ({"ancestors": [-1], "tasks": [0]}, "distinct job ids"),
        ({"ancestors": [True], "tasks": [0]}, "distinct job ids"),
        ({"ancestors": list(range(MAX_FOLLOW_UPS + 1)), "tasks": [0]}, "distinct job ids"),
        ({"ancestors": [1]}, "exactly 'ancestors' and 'tasks'"),
        ([1, 2], "exactly 'ancestors' and 'tasks'"),
    ],
)
def test_bad_follow_ups_are_refused(follow_up: Any, message: str) -> None:
    document = _first_job("post@1").to_json()
    document["followUp"] = follow_up
    with pytest.raises(ManifestError, match=re.escape(message)):
        Manifest.parse(json.dumps(document).encode())
