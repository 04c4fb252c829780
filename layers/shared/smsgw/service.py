"""Sending: credentials, quotas, the provider client, give-backs, and one careful retry after a
credential rotation. `smsgw.sender` makes a send happen once around it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from smsgw.clock import Budget
from smsgw.config import ProviderSettings, SendSettings
from smsgw.credentials import CredentialStore
from smsgw.errors import DependencyUnavailable, GatewayError
from smsgw.models import SendRequest, first_of_each
from smsgw.observability import logger
from smsgw.outcomes import DENIAL_STATUS, NOT_SENT, NumberOutcome, SendResult, Status
from smsgw.policy import Policy
from smsgw.providers.base import HttpSettings, ProviderClient
from smsgw.quota_windows import Denial
from smsgw.quotas import QuotaLedger, Reservation, Subject

ClientFactory = Callable[[Any, SendSettings, HttpSettings], ProviderClient[Any]]


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


class ProviderAccess:
    """One provider's credentials and clients, kept across invocations, and the one careful resend
    after a credential rotation."""

    def __init__(self, settings: SendSettings, store: CredentialStore[Any]) -> None:
        self.settings = settings
        self.store = store
        self.http = HttpSettings(
            connect_timeout=settings.provider_connect_timeout,
            read_timeout=settings.provider_read_timeout,
            max_concurrency=settings.provider_max_concurrency,
        )
        self._clients: dict[str, tuple[BaseModel, ProviderClient[Any]]] = {}
        self._lock = threading.Lock()

    def credentials(self) -> BaseModel:
        credentials: BaseModel = self.store.get()
        return credentials

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

    def send(self, operation: Operation, request: SendRequest, credentials: BaseModel) -> SendResult:
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


class SendService:
    """Sends through one provider."""

    def __init__(
        self, settings: ProviderSettings, store: CredentialStore[Any], ledger: QuotaLedger, policy: Policy
    ) -> None:
        self.settings = settings
        self.provider = ProviderAccess(settings, store)
        self.ledger = ledger
        self.policy = policy

    def send(
        self,
        operation: Operation,
        request: SendRequest,
        caller: Caller,
        budget: Budget,
        *,
        lead: dict[str, Any] | None = None,
    ) -> Delivery:
        """Raises (a `GatewayError`, or `LeadRefused` for a refused `lead`) only before the provider
        is called: then nothing was sent."""
        # Credentials first: if Secrets Manager is down, nothing is sent and no quota is used.
        credentials = self.provider.credentials()
        request = request.with_gateway_id(caller.request_id)
        numbers = first_of_each(request.phones)
        route = (operation.provider, operation.name)
        gate = self.policy.gate(caller.tenant, numbers, self.ledger.clock(), lambda _: route)
        subject = Subject(tenant=caller.tenant, provider=operation.provider, source_ip=caller.source_ip)
        reservation = self.ledger.reserve(
            subject, gate.allowed, budget.send_by, checks=gate.checks, scopes=gate.scopes, lead=lead
        )
        granted = [p for p in numbers if p in reservation.granted]
        if granted and budget.send_by.expired():
            give_back(self.ledger, reservation, granted, budget)
            raise DependencyUnavailable("The request ran out of time before the provider was called.")
        sent: dict[str, NumberOutcome] = {}
        calls, provider_ms = 0, None
        if granted:
            started = time.perf_counter()
            result = self.provider.send(operation, request.only(set(granted)), credentials)
            provider_ms = (time.perf_counter() - started) * 1000
            sent = {o.phone: o for o in result.outcomes}
            calls = result.calls
            give_back(self.ledger, reservation, [o.phone for o in result.outcomes if o.status in NOT_SENT], budget)
        reservation.wait_for_counts()
        outcomes = tuple(
            sent.get(phone) or refusal(phone, gate.refused.get(phone), reservation.denied.get(phone))
            for phone in request.phones
        )
        result = SendResult(provider=operation.provider, operation=operation.name, outcomes=outcomes, calls=calls)
        return Delivery(result, reservation, provider_ms)


def give_back(ledger: QuotaLedger, reservation: Reservation, phones: list[str], budget: Budget) -> None:
    """The units of numbers that provably did not go out. The messages went out (or definitely did
    not): a failed give-back costs quota, not correctness, and the answer reports them as counted."""
    if not ledger.refund(reservation, phones, budget.done_by):
        logger.warning("quota give-back failed", extra={"numbers": len(phones)})


def refusal(phone: str, status: Status | None, denial: Denial | None) -> NumberOutcome:
    """A number the gateway refused before any provider call: by a rule, or by the scope that denied it."""
    if status is None:
        status = DENIAL_STATUS.get(denial.scope, Status.QUOTA_EXCEEDED) if denial else Status.QUOTA_EXCEEDED
    return NumberOutcome(phone=phone, status=status, retry_safe=True)


def merge(first: SendResult, retry: SendResult) -> SendResult:
    replaced: dict[str, NumberOutcome] = {o.phone: o for o in retry.outcomes}
    return SendResult(
        provider=first.provider,
        operation=first.operation,
        outcomes=tuple(replaced.get(o.phone, o) for o in first.outcomes),
        calls=first.calls + retry.calls,
    )
