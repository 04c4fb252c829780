"""Sending: credentials, quotas, the provider client, give-backs, and one careful retry after a
credential rotation; then the flow around it that makes a send happen once (`Sender`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from smsgw.clock import Budget
from smsgw.config import ProviderSettings
from smsgw.credentials import CredentialStore
from smsgw.errors import DependencyUnavailable, GatewayError
from smsgw.idempotency import Claim, IdempotencyInProgress, IdempotencyKeyReused, IdempotencyStore, Prior, fingerprint
from smsgw.messages import MessageLog
from smsgw.models import SendRequest, first_of_each
from smsgw.observability import logger, report_send
from smsgw.outcomes import NOT_SENT, NumberOutcome, SendResult, Status
from smsgw.providers.base import HttpSettings, ProviderClient
from smsgw.quotas import QuotaLedger, Reservation, Subject
from smsgw.schemas import RECORD_INCOMPLETE, SendResponse

ClientFactory = Callable[[Any, ProviderSettings, HttpSettings], ProviderClient[Any]]
_LOG_WRITER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="message-log")


@dataclass(frozen=True, slots=True)
class Operation:
    """One provider operation the gateway offers."""

    provider: str
    name: str
    client_factory: ClientFactory

    @property
    def route(self) -> str:
        return f"{self.provider}.{self.name}"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, and the gateway's id for the request (API Gateway's request id, or SQS message id)."""

    request_id: str
    tenant: str
    source_ip: str | None
    """None for a queued message, which has no source address (and no per-IP quota)."""
    received_at: datetime
    correlation_id: str | None = None
    """The trigger's id when it is not the request's: the SQS message id of a queued message."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a send did: an outcome per number (in request order) and the quota it held."""

    result: SendResult
    reservation: Reservation
    provider_ms: float | None = None


class SendService:
    """Sends through one provider; holds that provider's credentials and clients across invocations."""

    def __init__(self, settings: ProviderSettings, store: CredentialStore[Any], ledger: QuotaLedger) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.http = HttpSettings(
            connect_timeout=settings.provider_connect_timeout,
            read_timeout=settings.provider_read_timeout,
            max_concurrency=settings.provider_max_concurrency,
        )
        self._clients: dict[str, tuple[BaseModel, ProviderClient[Any]]] = {}
        self._lock = threading.Lock()

    def client(self, operation: Operation, credentials: BaseModel) -> ProviderClient[Any]:
        """A client per operation, kept while the credentials stay the same (its session is reused)."""
        with self._lock:
            cached = self._clients.get(operation.name)
            if cached is not None and cached[0] == credentials:
                return cached[1]
            if cached is not None:
                cached[1].close()
            client = operation.client_factory(credentials, self.settings, self.http)
            self._clients[operation.name] = (credentials, client)
            return client

    def send(self, operation: Operation, request: SendRequest, caller: Caller, budget: Budget) -> Delivery:
        """Raises (a `GatewayError`) only before the provider is called: then nothing was sent."""
        # Credentials first: if Secrets Manager is down, nothing is sent and no quota is used.
        credentials = self.store.get()
        request = request.with_gateway_id(caller.request_id)
        numbers = first_of_each(request.phones)
        subject = Subject(tenant=caller.tenant, provider=operation.provider, source_ip=caller.source_ip)
        reservation = self.ledger.reserve(subject, numbers, budget.send_by)
        granted = [p for p in numbers if p in reservation.granted]
        if granted and budget.send_by.expired():
            self._give_back(reservation, granted, budget)
            raise DependencyUnavailable("The request ran out of time before the provider was called.")
        sent: dict[str, NumberOutcome] = {}
        calls, provider_ms = 0, None
        if granted:
            started = time.perf_counter()
            result = self._send(operation, request.only(set(granted)), credentials)
            provider_ms = (time.perf_counter() - started) * 1000
            sent = {o.phone: o for o in result.outcomes}
            calls = result.calls
            self._give_back(reservation, [o.phone for o in result.outcomes if o.status in NOT_SENT], budget)
        reservation.wait_for_counts()
        outcomes = tuple(sent.get(phone) or quota_exceeded(phone) for phone in request.phones)
        result = SendResult(provider=operation.provider, operation=operation.name, outcomes=outcomes, calls=calls)
        return Delivery(result, reservation, provider_ms)

    def _send(self, operation: Operation, request: SendRequest, credentials: BaseModel) -> SendResult:
        result = self.client(operation, credentials).send(request)
        if not result.auth_failed:
            return result
        # The provider refused the credentials: perhaps they were rotated since they were cached.
        # Those numbers were provably not sent, so they alone go out again, once, with fresh ones.
        try:
            fresh = self.store.get(force_fetch=True)
        except GatewayError:
            return result
        if fresh == credentials:
            return result
        refused = {o.phone for o in result.outcomes if o.auth_error}
        logger.info("credentials refreshed after an authentication error", extra={"resent": len(refused)})
        retry = self.client(operation, fresh).send(request.only(refused))
        return merge(result, retry)

    def _give_back(self, reservation: Reservation, phones: list[str], budget: Budget) -> None:
        # The messages went out (or definitely did not); a failed give-back costs quota, not
        # correctness, and the answer then reports the units as still counted.
        if not self.ledger.refund(reservation, phones, budget.done_by):
            logger.warning("quota give-back failed", extra={"numbers": len(phones)})


def quota_exceeded(phone: str) -> NumberOutcome:
    return NumberOutcome(phone=phone, status=Status.QUOTA_EXCEEDED, retry_safe=True)


def merge(first: SendResult, retry: SendResult) -> SendResult:
    replaced: dict[str, NumberOutcome] = {o.phone: o for o in retry.outcomes}
    return SendResult(
        provider=first.provider,
        operation=first.operation,
        outcomes=tuple(replaced.get(o.phone, o) for o in first.outcomes),
        calls=first.calls + retry.calls,
    )


# -- sending once ------------------------------------------------------------------------------

Resend = Callable[[SendResponse], list[str]]
"""Which numbers of a finished attempt a new attempt with the same key sends again."""


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
    """One send as the API and the queue make it: with a key, the idempotency record is claimed
    before anything is counted or sent and completed with the message log record in one write."""

    def __init__(self, service: SendService, store: IdempotencyStore, log: MessageLog) -> None:
        self.service = service
        self.store = store
        self.log = log

    def send(self, operation: Operation, request: SendRequest, caller: Caller, budget: Budget, key: Key | None) -> Sent:
        if key is None:
            return self._send_unkeyed(operation, request, caller, budget)
        scope = f"{caller.tenant}#{key.route}#{key.value}"
        digest = fingerprint(request.model_dump(mode="json"))
        numbers = first_of_each(request.phones)
        lock_until = budget.done_by.epoch_seconds()
        got = self.store.claim(
            scope,
            digest,
            request_id=caller.request_id,
            numbers=numbers,
            lock_until=lock_until,
            keep_seconds=key.keep_seconds,
        )
        if isinstance(got, Prior):
            if got.fingerprint != digest:
                raise IdempotencyKeyReused("This Idempotency-Key was used with another request body.")
            settled = self._after(got, operation, caller, key, lock_until)
            if isinstance(settled, Sent):
                return settled
            got = settled
        return self._attempt(operation, request, caller, budget, got)

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
            self.store.settle(prior, body, log_item=log_item)
            logger.warning("an unrecorded attempt was settled as ambiguous", extra={"numbers": len(prior.numbers)})
            return Sent(answer, replayed=True)
        previous = SendResponse.model_validate(prior.answer or {})
        again = key.resend(previous)
        if not again:
            return Sent(previous, replayed=True)
        return self.store.take_over(prior, numbers=again, lock_until=lock_until, request_id=caller.request_id)

    def _attempt(
        self, operation: Operation, request: SendRequest, caller: Caller, budget: Budget, claim: Claim
    ) -> Sent:
        try:
            delivery = self.service.send(operation, request.only(set(claim.numbers)), caller, budget)
        except GatewayError:
            # Nothing was sent: the key is given back so that a retry is a real attempt.
            self.store.release(claim)
            raise
        response = SendResponse.of(caller.request_id, delivery.result, delivery.reservation)
        if claim.previous is not None:
            response = SendResponse.model_validate(claim.previous).merged(response)
        body = response.model_dump(mode="json")
        log_item = self.log.item(caller.tenant, caller.request_id, body, received_at=caller.received_at)
        writing = _LOG_WRITER.submit(self.store.complete, claim, body, log_item=log_item)
        report_send(delivery.result, caller, delivery.provider_ms)
        return self._finished(response, writing.exception())

    def _send_unkeyed(self, operation: Operation, request: SendRequest, caller: Caller, budget: Budget) -> Sent:
        delivery = self.service.send(operation, request, caller, budget)
        response = SendResponse.of(caller.request_id, delivery.result, delivery.reservation)
        body = response.model_dump(mode="json")
        # The record is written while the log line and metrics are made; it is in before the answer.
        writing = _LOG_WRITER.submit(
            self.log.record, caller.tenant, caller.request_id, body, received_at=caller.received_at
        )
        report_send(delivery.result, caller, delivery.provider_ms)
        return self._finished(response, writing.exception())

    @staticmethod
    def _finished(response: SendResponse, failure: BaseException | None) -> Sent:
        if failure is None:
            return Sent(response)
        # The SMS are out (or definitely not): a lost record must not turn the answer into an error,
        # and must not let the answer claim that nothing was sent.
        logger.error("the send could not be recorded", extra={"error": str(failure)})
        response.warning = RECORD_INCOMPLETE
        return Sent(response, recorded=False)
