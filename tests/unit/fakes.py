"""In-memory fakes of the send flow's ports (`smsgw.sender`): the send, idempotency records and
the message log, each with the failures a test can switch on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from smsgw.clock import Budget
from smsgw.errors import DependencyUnavailable
from smsgw.idempotency import Answer, Claim, IdempotencyInProgress, Prior, State
from smsgw.models import SendRequest, first_of_each
from smsgw.outcomes import NumberOutcome, SendResult, Status
from smsgw.quota_calls import LeadRefused
from smsgw.quota_windows import Reservation
from smsgw.service import Caller, Delivery, Operation


@dataclass
class ScriptedSends:
    """A provider that answers each number with the status the test gave it (default: accepted),
    or a send that fails before the provider is called (`fail_before`)."""

    statuses: dict[str, Status] = field(default_factory=dict)
    fail_before: Exception | None = None
    sent: list[str] = field(default_factory=list)
    """Every number the provider was asked to send, in order, repeats included."""

    def send(
        self,
        operation: Operation,
        request: SendRequest,
        caller: Caller,
        budget: Budget,
        *,
        lead: dict[str, Any] | None = None,
    ) -> Delivery:
        if lead is not None:  # written with the quota, before anything can fail
            lead["write"]()
        if self.fail_before is not None:
            raise self.fail_before
        numbers = first_of_each(request.phones)
        self.sent += numbers
        outcome = {p: NumberOutcome(phone=p, status=self.statuses.get(p, Status.ACCEPTED)) for p in numbers}
        result = SendResult(operation.provider, operation.name, tuple(outcome[p] for p in request.phones), 1)
        return Delivery(result, Reservation())


@dataclass
class _Record:
    state: State
    fingerprint: str
    owner: str
    request_id: str
    numbers: tuple[str, ...]
    lock_until: int
    answer: Answer | None = None


class MemoryRecords:
    """Idempotency records in a dict, with the same conditions as the DynamoDB store."""

    def __init__(self) -> None:
        self.items: dict[str, _Record] = {}
        self.offset = 0.0
        self.failing: set[str] = set()
        """Operations that fail as DynamoDB being unreachable would: claim, complete, release..."""
        # An attribute, as the DynamoDB store's clock is: the flow reads it through the port.
        self.now: Callable[[], float] = self._clock

    def _clock(self) -> float:
        return time.time() + self.offset

    def _check(self, operation: str) -> None:
        if operation in self.failing:
            raise DependencyUnavailable("DynamoDB is unavailable (EndpointConnectionError)")

    def claim_lead(
        self,
        scope: str,
        digest: str,
        *,
        request_id: str,
        numbers: Sequence[str],
        lock_until: int,
        keep_seconds: int | None = None,
    ) -> tuple[Claim, dict[str, Any]]:
        owner = uuid.uuid4().hex
        claim = Claim(scope, owner, request_id, tuple(numbers), lock_until)

        def write() -> None:
            self._check("claim")
            held = self.items.get(scope)
            if held is not None:
                fields = (held.fingerprint, held.owner, held.request_id, held.numbers, held.lock_until, held.answer)
                raise LeadRefused({"prior": Prior(scope, held.state, *fields)})
            self.items[scope] = _Record("pending", digest, owner, request_id, tuple(numbers), lock_until)

        return claim, {"write": write}

    @staticmethod
    def prior_of(claim: Claim, item: dict[str, Any]) -> Prior | None:
        prior: Prior = item["prior"]
        return None if prior.owner == claim.owner else prior

    def take_over(self, prior: Prior, *, numbers: Sequence[str], lock_until: int, request_id: str) -> Claim:
        self._check("take_over")
        held = self.items[prior.scope]
        if (held.owner, held.state) != (prior.owner, prior.state):
            raise IdempotencyInProgress("taken")
        owner = uuid.uuid4().hex
        self.items[prior.scope] = replace(
            held, state="pending", owner=owner, numbers=tuple(numbers), lock_until=lock_until, request_id=request_id
        )
        return Claim(prior.scope, owner, request_id, tuple(numbers), lock_until, previous=held.answer)

    def complete(self, claim: Claim, answer: Answer, *, puts: Sequence[dict[str, Any]] = ()) -> None:
        self._check("complete")
        self._finish(claim.scope, claim.owner, answer)

    def settle(self, prior: Prior, answer: Answer, *, puts: Sequence[dict[str, Any]] = ()) -> None:
        self._check("settle")
        self._finish(prior.scope, prior.owner, answer)

    def _finish(self, scope: str, owner: str, answer: Answer) -> None:
        held = self.items[scope]
        if held.owner != owner:
            raise IdempotencyInProgress("taken")
        self.items[scope] = replace(held, state="done", answer=answer, numbers=(), lock_until=0)

    def release(self, claim: Claim) -> bool:
        if "release" in self.failing:
            return False
        if self.items.get(claim.scope) is not None and self.items[claim.scope].owner == claim.owner:
            del self.items[claim.scope]
        return True


class MemoryLog:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.failing = False

    def item(self, tenant: str, request_id: str, record: dict[str, Any], *, received_at: datetime) -> dict[str, Any]:
        return {"tenant": tenant, "request_id": request_id, "record": record}

    def record(self, tenant: str, request_id: str, record: dict[str, Any], *, received_at: datetime) -> None:
        if self.failing:
            raise DependencyUnavailable("DynamoDB is unavailable (EndpointConnectionError)")
        self.records[(tenant, request_id)] = record
