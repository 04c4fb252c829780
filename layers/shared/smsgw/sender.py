"""A send made once: the flow around `SendService` that the API and the queues share.

With a key, the idempotency record is claimed before anything is counted or sent, and completed
with the message log record in one write (docs/delivery.md has every failure point). The flow
works on ports: the send itself, the idempotency records and the message log, so that it is
tested on in-memory fakes as well as on DynamoDB Local.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from smsgw import gathering, phones
from smsgw.clock import Budget
from smsgw.deliveries import BATCH_WRITE_ITEMS
from smsgw.errors import GatewayError
from smsgw.idempotency import Answer, Claim, IdempotencyInProgress, IdempotencyKeyReused, Prior, fingerprint
from smsgw.models import SendRequest, first_of_each
from smsgw.observability import logger, report_destinations, report_send
from smsgw.outcomes import Status
from smsgw.quota_calls import CALL_SECONDS, LeadRefused
from smsgw.rules import block_of
from smsgw.schemas import RECORD_INCOMPLETE, SendResponse
from smsgw.service import Caller, Delivery, Operation
from smsgw.tracking import Tracking

_LOG_WRITER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="message-log")
INLINE_INDEX_ITEMS = 90
"""What giving a claim back may take (DynamoDB's connect and read timeouts)."""


class Sends(Protocol):
    """The send itself (`smsgw.service.SendService`): raises only before the provider is called."""

    def send(
        self,
        operation: Operation,
        request: SendRequest,
        caller: Caller,
        budget: Budget,
        *,
        lead: dict[str, Any] | None = None,
    ) -> Delivery:
        """`lead`: an idempotency claim to write in the quota's round; refused, it raises LeadRefused."""
        ...


class Records(Protocol):
    """Idempotency records (`smsgw.idempotency.IdempotencyStore`)."""

    now: Callable[[], float]

    def claim_lead(
        self,
        scope: str,
        digest: str,
        *,
        request_id: str,
        numbers: Sequence[str],
        lock_until: int,
        keep_seconds: int | None = None,
    ) -> tuple[Claim, dict[str, Any]]: ...

    def prior_of(self, claim: Claim, item: dict[str, Any]) -> Prior | None: ...

    def take_over(self, prior: Prior, *, numbers: Sequence[str], lock_until: int, request_id: str) -> Claim: ...

    def complete(self, claim: Claim, answer: Answer, *, puts: Sequence[dict[str, Any]] = ()) -> None: ...

    def settle(self, prior: Prior, answer: Answer, *, puts: Sequence[dict[str, Any]] = ()) -> None: ...

    def release(self, claim: Claim) -> bool: ...


class Log(Protocol):
    """The message log (`smsgw.messages.MessageLog`)."""

    def item(
        self, tenant: str, request_id: str, record: dict[str, Any], *, received_at: datetime
    ) -> dict[str, Any]: ...

    def record(self, tenant: str, request_id: str, record: dict[str, Any], *, received_at: datetime) -> None: ...


Resend = Callable[[SendResponse], list[str]]
"""Which numbers of a finished attempt a new attempt with the same key sends again."""


def report(delivery: Delivery, caller: Caller) -> None:
    """A send's log line and metrics, and its accepted handsets by country and number block (the
    denominator of the conversion rate)."""
    report_send(delivery.result, caller, delivery.provider_ms)
    accepted = {o.phone for o in delivery.result.outcomes if o.status is Status.ACCEPTED}
    if accepted:
        report_destinations([(phones.region_of(p), block_of(p)) for p in accepted], "accepted")


def _write(work: Callable[..., None], *args: Any, **kwargs: Any) -> Future[None]:
    """The record's write, made while the log line and metrics are: beside them; in a batch, in the
    record's own thread, where it meets the other records' writes (smsgw.gathering)."""
    if gathering.current() is None:
        return _LOG_WRITER.submit(work, *args, **kwargs)
    done: Future[None] = Future()
    try:
        work(*args, **kwargs)
    except Exception as exc:  # told as the write's outcome, as from the writer thread
        done.set_exception(exc)
    else:
        done.set_result(None)
    return done


def resend_if_nothing_sent(answer: SendResponse) -> list[str]:
    """The API's rule: a request that provably sent nothing (a 429, a 502 without `ambiguous`
    numbers) gets a real second attempt; any other answer is replayed."""
    return [r.phone_number for r in answer.results] if answer.nothing_sent else []


def resend_retryable(answer: SendResponse) -> list[str]:
    """The queue's rule: only the numbers that are provably unsent and worth another try."""
    return answer.numbers(Status.RETRYABLE)


@dataclass(frozen=True, slots=True)
class Key:
    """An idempotency key, and what a new attempt with it does after a finished one."""

    route: str
    value: str
    resend: Resend
    keep_seconds: int | None = None
    """How long the key is remembered; None: the idempotency store's default."""


@dataclass(slots=True)
class Sent:
    response: SendResponse
    replayed: bool = False
    """The answer of an earlier attempt with the same key."""
    recorded: bool = True


class Sender:
    """One send as the API and the queue make it."""

    def __init__(self, service: Sends, store: Records, log: Log, tracking: Tracking | None = None) -> None:
        self.service = service
        self.store = store
        self.log = log
        self.tracking = tracking

    def send(self, operation: Operation, request: SendRequest, caller: Caller, budget: Budget, key: Key | None) -> Sent:
        if self.tracking is not None:
            self.tracking.check_callback(request.callback_url)
        if key is None:
            return self._send_unkeyed(operation, request, caller, budget)
        scope = f"{caller.tenant}#{key.route}#{key.value}"
        digest = fingerprint(request.model_dump(mode="json"))
        numbers = first_of_each(request.phones)
        lock_until = budget.done_by.epoch_seconds()
        claim, lead = self.store.claim_lead(
            scope,
            digest,
            request_id=caller.request_id,
            numbers=numbers,
            lock_until=lock_until,
            keep_seconds=key.keep_seconds,
        )
        try:
            # The claim is written in the quota's own round: a first attempt takes two DynamoDB
            # rounds in all, the claim with the quota and the record with its end.
            return self._attempt(operation, request, caller, budget, claim, lead)
        except LeadRefused as refused:
            prior = self.store.prior_of(claim, refused.item)
        if prior is None:  # the claim is ours, written then tried again: nothing was taken beside it
            return self._attempt(operation, request, caller, budget, claim)
        if prior.fingerprint != digest:
            raise IdempotencyKeyReused("This Idempotency-Key was used with another request body.")
        settled = self._after(prior, operation, caller, key, lock_until)
        if isinstance(settled, Sent):
            return settled
        return self._attempt(operation, request, caller, budget, settled)

    def _after(self, prior: Prior, operation: Operation, caller: Caller, key: Key, lock_until: int) -> Sent | Claim:
        """What a key already used leads to: a replay, the settling of an attempt that did not
        record its end, or a claim to send what was left provably unsent."""
        if prior.running(self.store.now()):
            raise IdempotencyInProgress("A request with this Idempotency-Key is still being processed.")
        if prior.state == "pending":
            # The attempt ended without recording: its numbers may have gone out and never go again.
            answer = SendResponse.unrecorded(prior.request_id, operation.provider, operation.name, prior.numbers)
            if prior.answer is not None:
                answer = SendResponse.model_validate(prior.answer).merged(answer)
            body = answer.model_dump(mode="json")
            log_item = self.log.item(caller.tenant, answer.request_id, body, received_at=caller.received_at)
            self.store.settle(prior, body, puts=[log_item])
            logger.warning("an unrecorded attempt was settled as ambiguous", extra={"numbers": len(prior.numbers)})
            return Sent(answer, replayed=True)
        previous = SendResponse.model_validate(prior.answer or {})
        again = key.resend(previous)
        if not again:
            return Sent(previous, replayed=True)
        return self.store.take_over(prior, numbers=again, lock_until=lock_until, request_id=caller.request_id)

    def _attempt(
        self,
        operation: Operation,
        request: SendRequest,
        caller: Caller,
        budget: Budget,
        claim: Claim,
        lead: dict[str, Any] | None = None,
    ) -> Sent:
        try:
            delivery = self.service.send(operation, request.only(set(claim.numbers)), caller, budget, lead=lead)
        except GatewayError:
            # Nothing was sent: the key is given back so that a retry is a real attempt, if time is
            # left for it (a claim left behind reads, after its lock, as numbers that may have gone).
            if budget.send_by.allows(CALL_SECONDS):
                self.store.release(claim)
            raise
        response = SendResponse.of(caller.request_id, delivery.result, delivery.reservation)
        fresh = response.model_dump(mode="json")  # this attempt's own results, before any merge
        if claim.previous is not None:
            response = SendResponse.model_validate(claim.previous).merged(response)
        body = response.model_dump(mode="json")
        puts = [self.log.item(caller.tenant, caller.request_id, body, received_at=caller.received_at)]
        index = self._index(caller, fresh, request.callback_url)
        # The receipt index joins the record's transaction while it fits (100 items a transaction).
        inline = index if len(index) <= INLINE_INDEX_ITEMS else []
        writing = _write(self.store.complete, claim, body, puts=[*puts, *inline])
        follow = self._follow(caller, fresh, request.callback_url, [] if inline else index)
        report(delivery, caller)
        self._followed(follow)
        return self._finished(response, writing.exception())

    def _send_unkeyed(self, operation: Operation, request: SendRequest, caller: Caller, budget: Budget) -> Sent:
        delivery = self.service.send(operation, request, caller, budget)
        response = SendResponse.of(caller.request_id, delivery.result, delivery.reservation)
        body = response.model_dump(mode="json")
        # The record is written while the log line and metrics are made; it is in before the answer.
        writing = _LOG_WRITER.submit(
            self.log.record, caller.tenant, caller.request_id, body, received_at=caller.received_at
        )
        follow = self._follow(caller, body, request.callback_url, self._index(caller, body, request.callback_url))
        report(delivery, caller)
        self._followed(follow)
        return self._finished(response, writing.exception())

    def _index(self, caller: Caller, body: dict[str, Any], callback_url: str | None) -> list[dict[str, Any]]:
        if self.tracking is None:
            return []
        return self.tracking.index_items(caller.tenant, caller.request_id, body, callback_url)

    def _follow(
        self, caller: Caller, body: dict[str, Any], callback_url: str | None, index: list[dict[str, Any]]
    ) -> list[Future[None]]:
        """The receipt index (when it is not in the record's write) and the accepted webhooks, at once."""
        if self.tracking is None:
            return []
        tracking = self.tracking
        # one BatchWriteItem per chunk, side by side: one round, however many calls
        size = BATCH_WRITE_ITEMS
        jobs = [_LOG_WRITER.submit(tracking.write_index, index[i : i + size]) for i in range(0, len(index), size)]
        if callback_url is not None:
            jobs.append(_LOG_WRITER.submit(tracking.accepted, caller.tenant, caller.request_id, body, callback_url))
        return jobs

    @staticmethod
    def _followed(jobs: list[Future[None]]) -> None:
        # Delivery tracking is lost, not the send: the SMS are out and the answer says what happened.
        for job in jobs:
            if (failure := job.exception()) is not None:
                logger.error("delivery tracking could not be set going", extra={"error": str(failure)})

    @staticmethod
    def _finished(response: SendResponse, failure: BaseException | None) -> Sent:
        if failure is None:
            return Sent(response)
        # The SMS are out (or definitely not): a lost record must not turn the answer into an error,
        # and must not let the answer claim that nothing was sent.
        logger.error("the send could not be recorded", extra={"error": str(failure)})
        response.warning = RECORD_INCOMPLETE
        return Sent(response, recorded=False)
