"""The composition root: configuration, the AWS clients and the objects built from them, once per
function instance and on first use, so that a configuration error answers instead of crashing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from smsgw.clock import Budget
from smsgw.config import (
    SendSettings,
    credentials_model,
    get_provider_settings,
    get_receipt_settings,
    get_router_settings,
    get_settings,
)
from smsgw.connections import held
from smsgw.credentials import CredentialStore
from smsgw.deliveries import DeliveryStore
from smsgw.errors import ConfigurationError
from smsgw.idempotency import IdempotencyStore
from smsgw.messages import MessageLog
from smsgw.policy import Policy
from smsgw.quotas import QUOTA_RETRIES, QuotaLedger
from smsgw.rules import RuleStore
from smsgw.sender import Sender
from smsgw.service import SendService
from smsgw.tracking import Tracking, WebhookQueue

if TYPE_CHECKING:
    from smsgw.queue import QueueConsumer, Resolve

# A fixed User-Agent: botocore otherwise rebuilds its own for every request (sanitising some
# twenty components, about 0.1 ms of CPU per call, most of a call's own work after I/O).
USER_AGENT = f"sms-gateway Boto3/{boto3.__version__} lang/python#{sys.version_info.major}.{sys.version_info.minor}"
# DynamoDB answers in milliseconds: a call that takes seconds is a DynamoDB that is not there, and
# two such attempts must leave a request time to answer 503 well within API Gateway's 29 s. The
# gateway builds every request itself: botocore's client-side validation would only repeat it.
DYNAMODB_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"total_max_attempts": 2, "mode": "standard"},
    max_pool_connections=50,
    parameter_validation=False,
    user_agent=USER_AGENT,
)


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    """One client (and connection pool) for idempotency records and the message log."""
    return held(boto3.client("dynamodb", config=DYNAMODB_CONFIG))


@lru_cache(maxsize=1)
def quota_client() -> Any:
    """The quota ledger's own client: one that never retries by itself (see `smsgw.quotas`)."""
    return held(boto3.client("dynamodb", config=DYNAMODB_CONFIG.merge(QUOTA_RETRIES)))


@lru_cache(maxsize=1)
def message_log() -> MessageLog:
    settings = get_settings()
    return MessageLog(
        settings.message_log_table_name,
        retention=timedelta(days=settings.message_retention_days),
        client=dynamodb_client(),
    )


@lru_cache(maxsize=1)
def sqs_client() -> Any:
    return held(
        boto3.client("sqs", config=Config(connect_timeout=1, read_timeout=3, retries={"total_max_attempts": 2}))
    )


def tracking(settings: SendSettings) -> Tracking:
    """Delivery tracking of a sending function: the receipt index, and webhooks if configured."""
    deliveries = DeliveryStore(
        settings.message_log_table_name,
        client=dynamodb_client(),
        retention_seconds=settings.message_retention_days * 86_400,
    )
    queue = WebhookQueue(settings.webhook_queue_url, client=sqs_client()) if settings.webhook_queue_url else None
    return Tracking(deliveries, queue, allow_loopback=settings.webhook_allow_loopback)


def policy(settings: SendSettings) -> Policy:
    """A sending function's rules: the tenants' own from the configuration table, when it has one."""
    countries = settings.allowed_countries
    rules = None
    if settings.config_table_name:
        rules = RuleStore(settings.config_table_name, client=dynamodb_client(), default_countries=countries)
    return Policy(rules, settings.limits, default_countries=countries, config_table=settings.config_table_name)


@dataclass(frozen=True, slots=True)
class Runtime:
    """A sending function's objects: its settings and the send flow."""

    settings: SendSettings
    sender: Sender

    def budget(self, remaining_ms: int | None) -> Budget:
        """A new request's time, within what the invocation has left."""
        return Budget.of(
            send_within=self.settings.send_budget_seconds,
            done_within=self.settings.request_budget_seconds,
            remaining=None if remaining_ms is None else remaining_ms / 1000,
        )


RuntimeOf = Callable[[], Runtime]
_RESETS: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> None:
    """A cache of a function's own composition (smsgw.unified, smsgw.workers) that `reset` clears too."""
    _RESETS.append(forget)


@dataclass(frozen=True, slots=True)
class ProviderRuntime(Runtime):
    service: SendService


@lru_cache(maxsize=1)
def runtime() -> ProviderRuntime:
    """A provider function's objects."""
    settings = get_provider_settings()
    model = credentials_model(settings.provider)
    store = CredentialStore(settings.provider_secret_id, model, max_age=settings.secret_max_age_seconds)
    ledger = QuotaLedger(settings.quota_table_name, settings.limits, client_factory=quota_client)
    service = SendService(settings, store, ledger, policy(settings))
    records = IdempotencyStore(
        settings.idempotency_table_name,
        expires_after_seconds=settings.idempotency_expiry_seconds,
        client=dynamodb_client(),
    )
    return ProviderRuntime(settings, Sender(service, records, message_log(), tracking(settings)), service)


@lru_cache(maxsize=4)
def queue_consumer(resolve: Resolve, runtime_of: RuntimeOf = runtime) -> QueueConsumer:
    """The function's consumer, built on its first batch: API invocations never load smsgw.queue."""
    from smsgw.queue import QueueConsumer, send_to_dead_letter_queue

    rt = runtime_of()
    if not rt.settings.dead_letter_queue_url:
        raise ConfigurationError("invalid or missing environment variables: DEAD_LETTER_QUEUE_URL")
    return QueueConsumer(
        resolve=resolve,
        sender=rt.sender,
        budget=rt.budget,
        log=message_log(),
        dead_letter=send_to_dead_letter_queue(rt.settings.dead_letter_queue_url),
        keep_seconds=rt.settings.message_retention_days * 86_400,
    )


@lru_cache(maxsize=1)
def deliveries() -> DeliveryStore:
    settings = get_settings()
    retention = settings.message_retention_days * 86_400
    return DeliveryStore(settings.message_log_table_name, client=dynamodb_client(), retention_seconds=retention)


def reset() -> None:
    """Forget configuration and clients (for tests that change the environment)."""
    for cached in (
        get_settings,
        get_provider_settings,
        get_router_settings,
        get_receipt_settings,
        message_log,
        deliveries,
        runtime,
        dynamodb_client,
        quota_client,
        sqs_client,
    ):
        cached.cache_clear()
    queue_consumer.cache_clear()
    for forget in _RESETS:
        forget()
