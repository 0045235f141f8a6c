"""Availability challenges: answer those on our own leases by opening the challenged leaves of
our stored result, and end unanswered ones that concern us once their deadline passed."""

from __future__ import annotations

import functools
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.worker.core import NodePart
from blindframe.worker.logs import when
from blindframe.worker.result_refs import ENDED_STATES, RETRY, ResultRef, load_result, own_ref
from blindframe.worker.state import ChallengeStatus, LeaseKind

if TYPE_CHECKING:
    from blindframe.worker.state import ChallengeRow, JobRow

__all__ = ["AvailabilityDefence"]


class AvailabilityDefence(NodePart):
    """Answers availability challenges on this node's leases; resolves the unanswered ones."""

    def defend(self) -> None:
        """Answer availability challenges on our own leases from our stored results (every
        node but a ``withhold`` one), and end unanswered ones that concern us past their
        deadline. Called every tick from the main loop."""
        core = self.core
        if not core.behaviour.answers_challenges:
            return  # TEST-ONLY (withhold): it never opens its leaves
        wall, now = time.monotonic(), core.clock.now()
        for challenge in core.state.challenges((ChallengeStatus.OPEN,)):
            if challenge.retry_at > wall or ("answer", challenge.challenge_id) in core.tasks:
                continue
            own = core.state.own(challenge.lease_id)
            if own is not None and own.root is not None:
                if now > challenge.deadline:
                    core.state.update_challenge(challenge.challenge_id, retry_at=wall + 60)
                    continue
                job = core.state.job(own.job_id)
                if job is None:
                    continue
                core.spawn(
                    ("answer", challenge.challenge_id),
                    core.defense_pool,
                    functools.partial(self._answer, job, own_ref(own), challenge),
                    functools.partial(self._answered, challenge=challenge),
                )
                continue
            if now > challenge.deadline and self._concerns_us(challenge):
                self._resolve_availability(challenge)

    def _answer(
        self, job: JobRow, ref: ResultRef, challenge: ChallengeRow
    ) -> tuple[list[bytes], list[list[bytes]]]:
        """(io thread) The challenged leaves of our result and their proofs."""
        result = load_result(self.core, job, ref)
        tree = result.tree(challenge.tile)
        leaves = challenge.leaf_indices
        return (
            [tree.leaf(leaf) for leaf in leaves],
            [result.proof(challenge.tile, leaf) for leaf in leaves],
        )

    def _answered(
        self, future: Future[tuple[list[bytes], list[list[bytes]]]], challenge: ChallengeRow
    ) -> None:
        core, log = self.core, self.core.log
        try:
            leaf_data, proofs = future.result()
        except (LeaseResultError, FileNotFoundError) as exc:
            log.error(
                "availability_unanswerable",
                f"cannot answer availability challenge {challenge.challenge_id} on our lease "
                f"{challenge.lease_id}: {exc}; the lease will be forfeited after "
                f"{when(challenge.deadline, core.clock.now())}",
                challenge=challenge.challenge_id,
                lease=challenge.lease_id,
            )
            core.state.update_challenge(challenge.challenge_id, retry_at=time.monotonic() + 60)
            return
        try:
            core.market.answer_availability(
                challenge.challenge_id, challenge.leaf_indices, leaf_data, proofs
            )
        except ContractRevertError as exc:
            if exc.name == "MarketChallengeNotOpen":
                core.state.update_challenge(challenge.challenge_id, status=ChallengeStatus.ANSWERED)
                return
            log.warning(
                "availability_answer_failed",
                f"could not answer availability challenge {challenge.challenge_id}: {exc.message}",
                challenge=challenge.challenge_id,
                error=exc.name,
            )
            core.state.update_challenge(challenge.challenge_id, retry_at=time.monotonic() + RETRY)
            return
        core.state.update_challenge(challenge.challenge_id, status=ChallengeStatus.ANSWERED)

    def _concerns_us(self, challenge: ChallengeRow) -> bool:
        """We challenged it, or the challenged lease shares a tile with a replica of ours."""
        core = self.core
        if not core.behaviour.polices:
            return False
        if challenge.challenger.lower() == core.me.lower():
            return True
        return any(
            own.job_id == challenge.job_id
            and own.kind == LeaseKind.REPLICA
            and challenge.tile in own.tiles
            and own.state not in ENDED_STATES
            for own in core.state.own_leases()
        )

    def _resolve_availability(self, challenge: ChallengeRow) -> None:
        core = self.core
        core.state.update_challenge(challenge.challenge_id, retry_at=time.monotonic() + 30)
        try:
            core.market.resolve_availability(challenge.challenge_id)
        except ContractRevertError as exc:
            if exc.name == "MarketChallengeNotOpen":
                return  # answered, or resolved by someone else: its event says which
            core.log.debug(
                "availability_wait",
                f"availability challenge {challenge.challenge_id}: {exc.message}",
                challenge=challenge.challenge_id,
            )
            return
        core.log.info(
            "availability_resolved",
            f"availability challenge {challenge.challenge_id} went unanswered: lease "
            f"{challenge.lease_id} is forfeited and its worker slashed",
            challenge=challenge.challenge_id,
            lease=challenge.lease_id,
        )
