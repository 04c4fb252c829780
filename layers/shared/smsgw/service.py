"""Sending: credentials, the provider client, and one careful retry after a credential rotation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from smsgw.config import Settings
from smsgw.credentials import CredentialStore
from smsgw.models import SendRequest
from smsgw.observability import logger
from smsgw.outcomes import NumberOutcome, SendResult
from smsgw.providers.base import HttpSettings, ProviderClient

ClientFactory = Callable[[Any, Settings, HttpSettings], ProviderClient[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One provider operation the gateway offers."""

    provider: str
    name: str
    credentials_model: type[BaseModel]
    client_factory: ClientFactory


class SendService:
    """Sends through one provider; holds that provider's credentials and clients across invocations."""

    def __init__(self, settings: Settings, store: CredentialStore[Any]) -> None:
        self.settings = settings
        self.store = store
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

    def send(self, operation: Operation, request: SendRequest) -> SendResult:
        credentials = self.store.get()
        result = self.client(operation, credentials).send(request)
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


def merge(first: SendResult, retry: SendResult) -> SendResult:
    replaced: dict[str, NumberOutcome] = {o.phone: o for o in retry.outcomes}
    return SendResult(
        provider=first.provider,
        operation=first.operation,
        outcomes=tuple(replaced.get(o.phone, o) for o in first.outcomes),
        calls=first.calls + retry.calls,
    )
