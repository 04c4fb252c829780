"""Sending: credentials, quotas, the provider client, refunds, and one careful retry after a
credential rotation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from smsgw.config import ProviderSettings
from smsgw.credentials import CredentialStore
from smsgw.errors import DependencyUnavailable
from smsgw.models import SendRequest
from smsgw.observability import logger, metrics
from smsgw.outcomes import NOT_SENT, NumberOutcome, SendResult, Status
from smsgw.providers.base import HttpSettings, ProviderClient
from smsgw.quotas import QuotaLedger, Reservation, Subject

ClientFactory = Callable[[Any, ProviderSettings, HttpSettings], ProviderClient[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One provider operation the gateway offers."""

    provider: str
    name: str
    client_factory: ClientFactory


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

    def send(self, operation: Operation, request: SendRequest, caller: Caller) -> Delivery:
        # Credentials first: if Secrets Manager is down, nothing is sent and no quota is used.
        credentials = self.store.get()
        request = request.with_gateway_id(caller.request_id)
        subject = Subject(tenant=caller.tenant, provider=operation.provider, source_ip=caller.source_ip)
        reservation = self.ledger.reserve(subject, request.phones)
        granted = {p for p in request.phones if p in reservation.granted}
        sent: dict[str, NumberOutcome] = {}
        calls = 0
        if granted:
            result = self._send(operation, request.only(granted), credentials)
            sent = {o.phone: o for o in result.outcomes}
            calls = result.calls
            self._refund(reservation, [o.phone for o in result.outcomes if o.status in NOT_SENT])
        outcomes = tuple(sent.get(phone) or quota_exceeded(phone) for phone in request.phones)
        return Delivery(
            SendResult(provider=operation.provider, operation=operation.name, outcomes=outcomes, calls=calls),
            reservation,
        )

    def _send(self, operation: Operation, request: SendRequest, credentials: BaseModel) -> SendResult:
        started = time.perf_counter()
        result = self.client(operation, credentials).send(request)
        metrics.add_metric(
            name="provider_latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
        if not result.auth_failed:
            return result
        # The provider refused the credentials: perhaps they were rotated since they were cached.
        # Those numbers were provably not sent, so they alone go out again, once, with fresh ones.
        fresh = self.store.get(force_fetch=True)
        if fresh == credentials:
            return result
        refused = {o.phone for o in result.outcomes if o.auth_error}
        logger.info("credentials refreshed after an authentication error", extra={"resent": len(refused)})
        retry = self.client(operation, fresh).send(request.only(refused))
        return merge(result, retry)

    def _refund(self, reservation: Reservation, phones: list[str]) -> None:
        # The messages went out (or definitely did not); a failed refund costs quota, not correctness.
        try:
            self.ledger.refund(reservation, phones)
        except DependencyUnavailable as exc:
            logger.warning("quota refund failed", extra={"numbers": len(phones), "error": exc.message})


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
