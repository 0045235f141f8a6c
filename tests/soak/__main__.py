"""`make soak [SOAK_ARGS="--jobs 50"]`: the load run of issue 14 on the real stack.

One Anvil chain, four render nodes as separate processes (one of them ``--fault lazy``) and
``--jobs`` small jobs (8x8 ``volume@1`` frames, one tile each) posted at once by ``--artists``
accounts, replication 1 and 2 alternating, every ``--cancel-every``-th job cancelled a few
seconds after it was posted. Each job runs the artist's own loop (``Artist.render``: verify,
dispute wrong tiles, settle, up to two follow-up jobs for tiles lost to the lazy node); a cancelled
one is driven until its leases ended and refunded. At the end:

- every job settled (its frame decrypted) or was refunded;
- the market holds exactly what it owes (escrow, stakes, unbonding stakes, pending balances,
  open bonds), and each account's pending balance, stake and wallet are what its own events
  and transactions say (credits less withdrawals; stakes less slashes and unstakes; funding
  less gas and value sent plus withdrawals): ``wei lost`` sums every difference;
- no process of the stack (chain, IPFS nodes, render nodes, this process) grew in resident
  memory or open file descriptors from the run's second quarter to its last.

Prints jobs per minute and time-to-settle p50/p95, writes ``soak.png`` (tiles in flight over
time) and ``soak.json`` in ``--out``, and records the figures for tests/RELIABILITY.md
(``load`` section). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from eth_utils.address import to_checksum_address
from support.e2e import contract_books, stack_market
from support.reliability import record
from support.reliability import render as render_reliability
from support.render_stack import KERNEL, RenderStack, start_render_stack

from blindframe.client._watching import finished
from blindframe.client.artist import Artist
from blindframe.client.fftplan import job_plan
from blindframe.client.options import JobOptions
from blindframe.client.reports import PostedJob
from blindframe.coordinator.accounts import create_account, read_password_file
from blindframe.coordinator.market import AvailabilityStatus, ContestOutcome, LeaseStatus
from blindframe.deploy.stack import fund

if TYPE_CHECKING:
    from web3 import Web3

    from blindframe.client._retrying import RetryReport
    from blindframe.coordinator.market import Market

REWARD_WEI = 10**15
LEASE_S = 240  # a tile of 8x8 pixels takes seconds; under this load, minutes at worst
DEADLINE_S = 3600
ARTIST_FUNDS = 50 * 10**18
# Memory and descriptors a process may gain from the run's second quarter to its last before
# it counts as growing (caches fill during the first jobs; a leak keeps growing after).
RSS_SLACK = 1.25
RSS_SLACK_BYTES = 48 * 2**20
FD_SLACK = 16


@dataclass
class Outcome:
    """One job of the run (with its follow-up, if the lazy node cost it a tile)."""

    index: int
    artist: str
    replication: int
    cancelled: bool
    job_ids: list[int] = field(default_factory=list)
    posted_at: float = 0.0
    ended_at: float = 0.0
    settled: bool = False
    refunded: bool = False
    error: str = ""


@dataclass
class Usage:
    """Samples of one process: (seconds since start, RSS bytes, open descriptors)."""

    name: str
    process: psutil.Process
    samples: list[tuple[float, int, int]] = field(default_factory=list)


class Monitor(threading.Thread):
    """Every ``interval`` s: the tiles in flight (replica and juror leases claimed or committed)
    and each process's RSS and open descriptors."""

    def __init__(self, market: Market, processes: dict[str, psutil.Process], interval: float):
        super().__init__(daemon=True)
        self.market = market
        self.usage = {name: Usage(name, p) for name, p in processes.items()}
        self.interval = interval
        self.started = time.monotonic()
        self.in_flight: list[tuple[float, int]] = []
        self.stopping = threading.Event()
        self._ended: set[int] = set()
        self._live: dict[int, int] = {}

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a missed sample must not end the run
                print(f"monitor: sample skipped ({exc})", file=sys.stderr)

    def sample(self) -> None:
        now = time.monotonic() - self.started
        leases = self.market.counts()[1]
        for lease_id in range(1, leases + 1):
            if lease_id in self._ended:
                continue
            lease = self.market.lease(lease_id)
            if lease.state in (LeaseStatus.CLAIMED, LeaseStatus.COMMITTED):
                self._live[lease_id] = lease.count
            else:
                self._live.pop(lease_id, None)
                if lease.state is not LeaseStatus.REVEALED:
                    self._ended.add(lease_id)  # settled, reclaimed, forfeited: for good
        self.in_flight.append((now, sum(self._live.values())))
        if len(self.in_flight) % 30 == 0:
            print(
                f"soak: {now / 60:5.1f} min, {leases} leases, "
                f"{self.in_flight[-1][1]} tiles in flight",
                flush=True,
            )
        for usage in self.usage.values():
            with contextlib.suppress(psutil.Error):  # it exited: the checks below say so
                usage.samples.append(
                    (now, usage.process.memory_info().rss, usage.process.num_fds())
                )

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def _artists(stack: RenderStack, count: int) -> list[Artist]:
    """``count`` funded artists on the stack's home (they share its keys and FFT plan), each
    unlocked now, one after the other (scrypt takes a quarter GiB per unlock). An artist drives
    all its jobs from their threads at once, as the dashboard does (Artist locks its own
    state; transactions take the home's per-account nonce lock)."""
    password = read_password_file(stack.password_file)
    artists = []
    for i in range(count):
        name = f"soak-artist-{i}"
        entry = create_account(stack.settings.keystores, name, password)
        fund(stack.info.rpc_url, entry.address, ARTIST_FUNDS)
        artist = Artist(dataclasses.replace(stack.settings, account=name))
        artist.account()
        artists.append(artist)
    return artists


def _run_job(artist: Artist, outcome: Outcome, started: float, seed: int) -> Outcome:
    options = JobOptions(
        kernel=KERNEL,
        frame=(8, 8),
        replication=outcome.replication,
        canaries=0,
        reward_wei=REWARD_WEI,
        lease_length=LEASE_S,
        deadline=DEADLINE_S,
    )
    outcome.posted_at = time.monotonic() - started
    try:
        if outcome.cancelled:
            _cancelled(artist, options, outcome, random.Random(seed))
        else:

            def posted(job: PostedJob) -> None:
                outcome.posted_at = time.monotonic() - started
                outcome.job_ids.append(job.ref.job_id)

            def retried(report: RetryReport) -> None:
                if report.posted is not None:
                    outcome.job_ids.append(report.posted.ref.job_id)

            artist.render(
                "sample",
                options,
                retries=2,
                interval=1.0,
                timeout=DEADLINE_S,
                on_posted=posted,
                on_retry=retried,
            )
            outcome.settled = True
    except Exception as exc:  # noqa: BLE001 - one job's failure is a finding, not the end
        outcome.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    outcome.ended_at = time.monotonic() - started
    return outcome


def _cancelled(artist: Artist, options: JobOptions, outcome: Outcome, rng: random.Random) -> None:
    """Post, cancel within seconds (a node may have claimed by then), drive the job until its
    leases ended, refund what is left."""
    job = artist.post("sample", options)
    outcome.job_ids.append(job.ref.job_id)
    time.sleep(rng.uniform(0.0, 10.0))
    artist.cancel(job.ref, withdraw=False)
    market = artist.market()
    # A lease claimed before the cancel goes on: revealed, it is verified and paid (after the
    # replicas' horizon at replication 2); reclaimed, its escrow becomes refundable.
    give_up = time.monotonic() + DEADLINE_S
    while time.monotonic() < give_up:
        artist.step(job.ref)
        if finished(artist.snapshot(job.ref)):
            if market.refundable(job.ref.job_id) > 0:
                artist.refund(job.ref, withdraw=False)
            if market.job(job.ref.job_id).escrow == 0:
                outcome.refunded = True
                return
        time.sleep(1.0)
    raise TimeoutError(f"cancelled job {job.ref.job_id} still holds escrow after {DEADLINE_S} s")


def _processes(stack: RenderStack) -> dict[str, psutil.Process]:
    """The stack's long-lived processes by name: the chain, each IPFS node, each render node,
    and this process (the artists)."""
    found = {"anvil": psutil.Process(stack.info.anvil_pid), "artists": psutil.Process(os.getpid())}
    for worker in stack.workers:
        found[f"node {worker.name}"] = psutil.Process(worker.process.pid)
    ipfs_root = str(stack.home / "stack" / "ipfs")
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if ipfs_root in cmdline and process.pid not in {p.pid for p in found.values()}:
            name = cmdline.split(ipfs_root + "/", 1)[1].split()[0].split("/")[0]
            found.setdefault(f"ipfs {name}", process)
    return found


def _growth(usage: Usage) -> str:
    """'' when the process held steady from the run's second quarter to its last; else why not."""
    n = len(usage.samples)
    if n < 8:
        return f"only {n} samples (exited early?)"
    second = usage.samples[n // 4 : n // 2]
    last = usage.samples[3 * n // 4 :]
    rss_then = max(s[1] for s in second)
    rss_now = statistics.median(s[1] for s in last)
    fds_then = max(s[2] for s in second)
    fds_now = statistics.median(s[2] for s in last)
    problems = []
    if rss_now > rss_then * RSS_SLACK + RSS_SLACK_BYTES:
        problems.append(f"RSS {rss_then / 2**20:.0f} -> {rss_now / 2**20:.0f} MiB")
    if fds_now > fds_then + FD_SLACK:
        problems.append(f"open files {fds_then} -> {fds_now:.0f}")
    return "; ".join(problems)


def _books(
    w3: Web3, market: Market, first_block: int, start: dict[str, int]
) -> tuple[int, list[str]]:
    """Wei lost (the sum of every difference) and one line per difference: the market's
    balance against what it owes; each account's pending balance and stake against its events
    since the chain began (a fresh chain: the nodes staked before the run); each wallet against
    ``start`` (its balance before ``first_block``) less the gas and value it sent since, plus
    what it withdrew since."""
    events = market.contract.events
    credited: dict[str, int] = {}
    withdrawn: dict[str, int] = {}
    withdrawn_since: dict[str, int] = {}
    staked: dict[str, int] = {}
    for e in events.Credited().get_logs(from_block=0):
        account = e["args"]["account"]
        credited[account] = credited.get(account, 0) + int(e["args"]["amount"])
    for e in events.Withdrawn().get_logs(from_block=0):
        account, amount = e["args"]["account"], int(e["args"]["amount"])
        withdrawn[account] = withdrawn.get(account, 0) + amount
        if e["blockNumber"] >= first_block:
            withdrawn_since[account] = withdrawn_since.get(account, 0) + amount
    for name, sign in (("WorkerStaked", 1), ("Slashed", -1), ("Unstaked", -1)):
        for e in getattr(events, name)().get_logs(from_block=0):
            worker = e["args"]["worker"]
            staked[worker] = staked.get(worker, 0) + sign * int(e["args"]["amount"])
    spent: dict[str, int] = {}  # gas and value each account sent
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert not isinstance(tx, bytes)  # full transactions, not hashes
            sender = str(tx["from"])
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            cost = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
            spent[sender] = spent.get(sender, 0) + cost + int(tx["value"])
    lines: list[str] = []
    lost = 0
    accounts = sorted(set(start) | set(credited) | set(staked))
    for account in accounts:
        info = market.worker(account)
        checks = {
            "pending balance": (
                market.pending_balance(account),
                credited.get(account, 0) - withdrawn.get(account, 0),
            ),
            "stake": (info.stake + info.unbonding, staked.get(account, 0)),
        }
        if account in start:
            checks["wallet"] = (
                w3.eth.get_balance(to_checksum_address(account)),
                start[account] - spent.get(account, 0) + withdrawn_since.get(account, 0),
            )
        for what, (held, said) in checks.items():
            if held != said:
                lost += abs(held - said)
                lines.append(f"{account} {what}: {held} wei, its events say {said}")
    jobs, _, contests = market.counts()
    owed = contract_books(market, accounts, list(range(1, jobs + 1)))
    for contest_id in range(1, contests + 1):
        contest = market.contest(contest_id)
        if ContestOutcome(contest.outcome) is ContestOutcome.PENDING:
            owed += int(contest.bond)
    for e in events.AvailabilityChallenged().get_logs(from_block=first_block):
        challenge = market.contract.functions.getAvailabilityChallenge(e["args"]["challengeId"])
        status, bond = _challenge_status(challenge.call())
        if status is AvailabilityStatus.OPEN:
            owed += bond
    balance = w3.eth.get_balance(to_checksum_address(market.address))
    if balance != owed:
        lost += abs(balance - owed)
        lines.append(f"market: holds {balance} wei, owes {owed}")
    return lost, lines


def _challenge_status(raw: Any) -> tuple[AvailabilityStatus, int]:
    """(status, bond) of a getAvailabilityChallenge result (a tuple in the struct's order)."""
    fields = dict(raw) if isinstance(raw, dict) else None
    if fields is not None:
        return AvailabilityStatus(int(fields["status"])), int(fields["bond"])
    # AvailabilityChallenge(leaseId, tile, deadline, status, challenger, bond, leavesHash)
    return AvailabilityStatus(int(raw[3])), int(raw[5])


def _contests(market: Market, names: dict[str, str]) -> str:
    """What the lazy node cost it: disputes and disagreements, outcomes, slashes by node."""
    events = market.contract.events
    disputes = len(events.Disputed().get_logs(from_block=0))
    proven = len(events.DisagreementProven().get_logs(from_block=0))
    outcomes: dict[str, int] = {}
    for e in events.ContestResolved().get_logs(from_block=0):
        outcome = ContestOutcome(int(e["args"]["outcome"])).name
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    slashes: dict[str, int] = {}
    for e in events.Slashed().get_logs(from_block=0):
        name = names.get(e["args"]["worker"], e["args"]["worker"])
        slashes[name] = slashes.get(name, 0) + 1
    return (
        f"{disputes} disputes, {proven} disagreements proven; outcomes {outcomes or 'none'}; "
        f"slashes {slashes or 'none'}"
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def _plot(path: Path, in_flight: list[tuple[float, int]], outcomes: list[Outcome]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.step(
        [t / 60 for t, _ in in_flight],
        [n for _, n in in_flight],
        where="post",
        label="tiles in flight",
    )
    ax.set_xlabel("minutes since the first post")
    ax.set_ylabel("tiles claimed or committed")
    ends = sorted(o.ended_at / 60 for o in outcomes if o.settled or o.refunded)
    twin = ax.twinx()
    twin.plot(ends, range(1, len(ends) + 1), color="tab:green", label="jobs done")
    twin.set_ylabel("jobs done")
    ax.set_title(f"make soak: {len(outcomes)} jobs, four render nodes (one lazy)")
    fig.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="jobs to post (default 50)")
    parser.add_argument("--artists", type=int, default=4, help="artist accounts (default 4)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="stop posting new jobs after this long (0: no limit)",
    )
    parser.add_argument(
        "--cancel-every", type=int, default=7, help="cancel every n-th job (default 7)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("tests/.reliability/soak"), help="figures and plot"
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.artists < 1 or args.cancel_every < 2:
        parser.error("--jobs and --artists must be at least 1, --cancel-every at least 2")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="blindframe-soak-") as scratch:
        stack = start_render_stack(Path(scratch), nodes=3, ipfs_nodes=("lazy",))
        try:
            stack.add_node("lazy", fault="lazy")
            return _soak(stack, args)
        finally:
            stack.close()


def _soak(stack: RenderStack, args: argparse.Namespace) -> int:
    w3, market = stack_market(stack)
    artists = _artists(stack, args.artists)
    # Keys and the FFT plan once, before the jobs (they share the home's).
    print("soak: keys and FFT plan for the artists' home", flush=True)
    artists[0].keygen(KERNEL, upload=True)
    job_plan(KERNEL, stack.home)
    first_block = w3.eth.block_number + 1
    addresses = [a.address for a in artists]
    start = {a: int(w3.eth.get_balance(to_checksum_address(a))) for a in addresses}
    start |= {
        w.address: int(w3.eth.get_balance(to_checksum_address(w.address))) for w in stack.workers
    }
    monitor = Monitor(market, _processes(stack), args.interval)
    monitor.start()
    outcomes = [
        Outcome(
            index=i,
            artist=f"soak-artist-{i % args.artists}",
            replication=1 + i % 2,
            cancelled=(i + 1) % args.cancel_every == 0,
        )
        for i in range(args.jobs)
    ]
    print(f"soak: {args.jobs} jobs by {args.artists} artists on 4 nodes (one lazy)", flush=True)
    deadline = monitor.started + args.minutes * 60 if args.minutes > 0 else float("inf")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = []
        for outcome in outcomes:
            if time.monotonic() > deadline:
                break
            artist = artists[outcome.index % args.artists]
            futures.append(pool.submit(_run_job, artist, outcome, monitor.started, outcome.index))
            time.sleep(0.2)  # posts spread over seconds, not one burst of transactions
        done = [f.result() for f in futures]
    monitor.stop()
    monitor.sample()
    return _report(stack, w3, market, args, done, monitor, first_block, start)


def _report(
    stack: RenderStack,
    w3: Web3,
    market: Market,
    args: argparse.Namespace,
    done: list[Outcome],
    monitor: Monitor,
    first_block: int,
    start: dict[str, int],
) -> int:
    # A job is over when none of its attempts holds escrow any more (every slot paid, forfeited
    # to a jury or refunded).
    for o in done:
        held = [j for j in o.job_ids if market.job(j).escrow != 0]
        if held and not o.error:
            o.error = f"escrow left in job(s) {held}"
            o.settled = o.refunded = False
    settled = [o for o in done if o.settled and not o.cancelled]
    refunded = [o for o in done if o.refunded]
    failed = [o for o in done if o.error or not (o.settled or o.refunded)]
    times = [o.ended_at - o.posted_at for o in settled]
    minutes = max((o.ended_at for o in done), default=0.0) / 60
    per_minute = len(done) / minutes if minutes else 0.0
    p50, p95 = _percentile(times, 0.5), _percentile(times, 0.95)
    wei_lost, differences = _books(w3, market, first_block, start)
    growth = {name: _growth(usage) for name, usage in monitor.usage.items()}
    contests = _contests(market, {w.address: w.name for w in stack.workers})
    _plot(args.out / "soak.png", monitor.in_flight, done)

    print(
        f"jobs       {len(done)} posted: {len(settled)} settled, "
        f"{len(refunded)} cancelled and refunded, {len(failed)} failed"
    )
    print(f"pace       {per_minute:.2f} jobs per minute over {minutes:.1f} min")
    print(f"settle     p50 {p50:.0f} s, p95 {p95:.0f} s (post to frame decrypted and paid)")
    print(f"contests   {contests}")
    print(f"wei lost   {wei_lost}")
    for line in differences:
        print(f"  {line}")
    for o in failed:
        print(f"  job {o.index} ({o.job_ids}): {o.error or 'did not end'}")
    for name, usage in monitor.usage.items():
        rss = [s[1] for s in usage.samples] or [0]
        fds = [s[2] for s in usage.samples] or [0]
        verdict = growth[name] or "steady"
        print(
            f"process    {name:<14} RSS {rss[0] / 2**20:6.0f} -> {rss[-1] / 2**20:6.0f} MiB "
            f"(peak {max(rss) / 2**20:.0f}), "
            f"open files {fds[0]} -> {fds[-1]}: {verdict}"
        )
    print(f"plot       {args.out / 'soak.png'}")
    grew = sorted(name for name, why in growth.items() if why)
    summary = {
        "jobs": len(done),
        "settled": len(settled),
        "refunded": len(refunded),
        "failed": len(failed),
        "wei_lost": wei_lost,
        "jobs_per_minute": round(per_minute, 2),
        "p50_s": round(p50, 1),
        "p95_s": round(p95, 1),
        "grew": grew,
        "contests": contests,
        "outcomes": [dataclasses.asdict(o) for o in done],
        "processes": {n: u.samples for n, u in monitor.usage.items()},
        "in_flight": monitor.in_flight,
    }
    (args.out / "soak.json").write_text(json.dumps(summary, indent=1))
    record(
        "load",
        "soak",
        jobs=len(done),
        settled=len(settled),
        refunded=len(refunded),
        wei_lost=wei_lost,
        jobs_per_minute=round(per_minute, 2),
        p50_s=round(p50, 1),
        p95_s=round(p95, 1),
        processes_grown=len(grew),
    )
    render_reliability()
    ok = not failed and wei_lost == 0 and not grew
    print(
        "soak: " + ("every job ended, every wei accounted for, no process grew" if ok else "FAILED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
