"""The gas guard: the committed gas snapshot is what the contracts cost now, and the READMEs say so.

`contracts/snapshots/*.json` is the committed record, written only by `make gas-snapshot`
(an ordinary `forge test` writes its figures under contracts/cache/snapshots, ignored). Here
the gas tests run again into a scratch folder and every figure must be within 2 % of the
committed one; every gas figure in the READMEs' tables must equal the committed snapshot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from blindframe.deploy.toolchain import foundry_binary

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "contracts" / "snapshots"
TOLERANCE = 0.02
REFRESH = (
    "if the change is intended, run `make gas-snapshot` and commit contracts/snapshots/ "
    "with the README tables (README.md, contracts/README.md) updated to match"
)

# contracts/README.md's contest table: its first column's label -> (snapshot group, key).
CONTEST_ROWS = {
    "`proveDisagreement`": ("GasContest", "proveDisagreement"),
    "`dispute`": ("GasContest", "dispute"),
    "`drawJury`": ("GasContest", "drawJury_3"),
    "juror `commit`": ("GasContest", "jurorCommit"),
    "juror `reveal`": ("GasContest", "jurorReveal"),
    "`proveFar`": ("GasContest", "proveFar"),
    "`resolveContest` (disagreement)": ("GasContest", "resolveContest_disagreement"),
    "`resolveContest` (dispute)": ("GasContest", "resolveContest_dispute"),
    "`challengeAvailability`": ("GasContest", "challengeAvailability_2leaves"),
    "`answerAvailability`": ("GasContest", "answerAvailability_2leaves"),
    "`resolveAvailability` (unanswered)": ("GasContest", "resolveAvailability_unanswered"),
    "`advertise` (first)": ("GasAdvertise", "advertise_first"),
    "`advertise` (update)": ("GasAdvertise", "advertise_update"),
}
STEPS = ("post", "claim", "commit", "reveal", "settle", "withdraw")


def _load(folder: Path) -> dict[str, dict[str, int]]:
    return {
        path.stem: {key: int(value) for key, value in json.loads(path.read_text()).items()}
        for path in sorted(folder.glob("*.json"))
    }


def _number(cell: str) -> int:
    return int(cell.strip().strip("*").replace(",", ""))


def _rows(text: str) -> list[list[str]]:
    """Every Markdown table row of `text`, as its cells."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    ]


def compare(committed: dict[str, dict[str, int]], measured: dict[str, dict[str, int]]) -> list[str]:
    """One line per figure that moved more than TOLERANCE, appeared or disappeared."""
    problems = []
    for group in sorted(committed.keys() | measured.keys()):
        old, new = committed.get(group, {}), measured.get(group, {})
        for key in sorted(old.keys() | new.keys()):
            name = f"{group}.{key}"
            if key not in new:
                problems.append(f"{name}: committed {old[key]:,}, no longer measured")
            elif key not in old:
                problems.append(f"{name}: measured {new[key]:,}, not in the committed snapshot")
            elif abs(new[key] - old[key]) > TOLERANCE * old[key]:
                change = (new[key] - old[key]) / old[key]
                problems.append(
                    f"{name}: committed {old[key]:,}, measured {new[key]:,}"
                    f" ({change:+.1%}, beyond 2 %)"
                )
    return problems


def test_compare_names_the_figure_and_both_values() -> None:
    committed = {"G": {"a": 100_000, "b": 100_000, "gone": 1}}
    measured = {"G": {"a": 101_999, "b": 102_001, "new": 2}}
    assert compare(committed, measured) == [
        "G.b: committed 100,000, measured 102,001 (+2.0%, beyond 2 %)",
        "G.gone: committed 1, no longer measured",
        "G.new: measured 2, not in the committed snapshot",
    ]


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, int]]:
    out = tmp_path_factory.mktemp("snapshots")
    env = {**os.environ, "FOUNDRY_SNAPSHOTS": str(out)}
    run = subprocess.run(
        [str(foundry_binary("forge")), "test", "--match-path", "contracts/test/gas/*"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, (
        f"forge's gas tests failed:\n{run.stdout[-4000:]}{run.stderr[-2000:]}"
    )
    return _load(out)


def test_measured_gas_is_the_committed_snapshot(measured: dict[str, dict[str, int]]) -> None:
    problems = compare(_load(SNAPSHOTS), measured)
    assert not problems, (
        "gas moved from contracts/snapshots/:\n  " + "\n  ".join(problems) + f"\n{REFRESH}"
    )


def test_readme_gas_tables_are_the_committed_snapshot() -> None:
    snapshot = _load(SNAPSHOTS)
    per_tile = snapshot["GasPerTileReplica"]
    wrong = []

    def check(where: str, shown: int, group: str, key: str) -> None:
        if shown != snapshot[group][key]:
            wrong.append(
                f"{where}: shows {shown:,},"
                f" the snapshot's {group}.{key} is {snapshot[group][key]:,}"
            )

    seen = 0
    # README.md: "| replication 1 | 248,062 | 20,172 | 8,777 |"
    # under "| tiles per lease | 1 | 16 | 64 |".
    readme_text = (ROOT / "README.md").read_text()
    readme = _rows(readme_text)
    sizes = next(row[1:] for row in readme if row[0] == "tiles per lease")
    for row in readme:
        found = re.fullmatch(r"replication (\d)", row[0])
        if found is None:
            continue
        for size, cell in zip(sizes, row[1:], strict=True):
            key = f"replication{found[1]}_batch{size}"
            check(
                f"README.md, {row[0]}, {size} tiles per lease",
                _number(cell),
                "GasPerTileReplica",
                key,
            )
            seen += 1
    # README.md's prose: "a node's advertisement of its speed costs 29–46 k gas per kernel".
    advertise = snapshot["GasAdvertise"]
    low, high = advertise["advertise_update"], advertise["advertise_first"]
    span = f"{round(low / 1000)}–{round(high / 1000)} k gas"
    if f"advertisement of its speed costs {span}" not in readme_text:
        wrong.append(f"README.md: the advertisement's cost should read {span} (GasAdvertise)")
    # Both READMEs' prose: a contest's total for its parties (open, draw, three jurors' commit
    # and reveal, one far proof, resolve), and the honest 64-tile replication-2 job's whole cost.
    contest = snapshot["GasContest"]
    parties = (
        contest["proveDisagreement"]
        + contest["drawJury_3"]
        + 3 * (contest["jurorCommit"] + contest["jurorReveal"])
        + contest["proveFar"]
        + contest["resolveContest_disagreement"]
    )
    contracts_text = (ROOT / "contracts" / "README.md").read_text()
    for where, text in (("README.md", readme_text), ("contracts/README.md", contracts_text)):
        if f"costs its parties about {parties / 1e6:.1f} M gas" not in text:
            wrong.append(f"{where}: a contest costs its parties about {parties / 1e6:.1f} M gas")
    job = per_tile["replication2_batch64"] * 64 * 2
    if f"replication-2 job's {job / 1e6:.2f} M" not in contracts_text:
        wrong.append(f"contracts/README.md: the honest 64-tile job costs {job / 1e6:.2f} M gas")
    # contracts/README.md: "| 1 | 16 | post | claim | ... | **total** |" and the contest table.
    for row in _rows((ROOT / "contracts" / "README.md").read_text()):
        if len(row) == 9 and row[0].isdigit() and row[1].isdigit():
            key = f"replication{row[0]}_batch{row[1]}"
            for step, cell in zip(STEPS, row[2:8], strict=True):
                check(
                    f"contracts/README.md, {key} {step}",
                    _number(cell),
                    "GasPerTileReplica",
                    f"{key}_{step}",
                )
            check(f"contracts/README.md, {key} total", _number(row[8]), "GasPerTileReplica", key)
            seen += 7
        elif row[0] in CONTEST_ROWS:
            check(f"contracts/README.md, {row[0]}", _number(row[1]), *CONTEST_ROWS[row[0]])
            seen += 1
    # Every figure of both tables was found (a reworded row would otherwise escape the check).
    assert seen == len(per_tile) // 7 * 8 + len(CONTEST_ROWS), (
        f"found {seen} gas figures in the READMEs"
    )
    assert not wrong, "README gas figures differ from contracts/snapshots/:\n  " + "\n  ".join(
        wrong
    )
