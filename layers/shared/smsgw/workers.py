"""The functions that only work behind the API: the webhook sender and reconciliation, each with
its handler and the objects it is built from (on first use, so that a configuration error is
reported by the invocation)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from smsgw.config import (
    ReceiptTokenSecret,
    ReconcileSettings,
    WebhookSettings,
    credentials_model,
    get_receipt_settings,
)
from smsgw.credentials import CredentialStore
from smsgw.deliveries import DeliveryStore
from smsgw.observability import logger, traced
from smsgw.providers.base import no_retry_session
from smsgw.receiving import ReceiptConsumer, ReceiptsQueue, ReceiptTokens
from smsgw.reconcile import Reconciler
from smsgw.rules import RuleStore
from smsgw.runtime import dynamodb_client, on_reset, sqs_client
from smsgw.tracking import WebhookQueue
from smsgw.webhooks import POSTS, WebhookSender

_POOL = ThreadPoolExecutor(max_workers=10, thread_name_prefix="webhook")
TIMEOUT = (3.0, 10.0)


class WebhookSecrets(BaseModel):
    """Each tenant's signing secret (`whsec_…`), by tenant."""

    model_config = ConfigDict(extra="allow", frozen=True)


@dataclass(frozen=True, slots=True)
class ReceiptsRuntime:
    tokens: ReceiptTokens
    queue: ReceiptsQueue
    consumer: ReceiptConsumer


@lru_cache(maxsize=1)
def receipts_runtime() -> ReceiptsRuntime:
    """The receipts function's objects."""
    settings = get_receipt_settings()
    countries = frozenset(settings.default_allowed_countries.split(","))
    table = settings.config_table_name
    rules = RuleStore(table, client=dynamodb_client(), default_countries=countries) if table else None
    secret = CredentialStore(
        settings.receipt_token_secret_id, ReceiptTokenSecret, max_age=settings.secret_max_age_seconds
    )
    retention = settings.message_retention_days * 86_400
    deliveries = DeliveryStore(settings.message_log_table_name, client=dynamodb_client(), retention_seconds=retention)
    webhooks = WebhookQueue(settings.webhook_queue_url, client=sqs_client()) if settings.webhook_queue_url else None
    return ReceiptsRuntime(
        ReceiptTokens(lambda: secret.get().model_dump()),
        ReceiptsQueue(settings.receipts_queue_url, client=sqs_client()),
        ReceiptConsumer(deliveries, webhooks, rules),
    )


def receipts_consumer(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    return receipts_runtime().consumer.handle(event, context)


@lru_cache(maxsize=1)
def webhook_sender() -> WebhookSender:
    settings = WebhookSettings.from_env()
    secrets = CredentialStore(settings.webhook_secret_id, WebhookSecrets, max_age=settings.secret_max_age_seconds)
    session = no_retry_session(POSTS)  # a connection per post in flight

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        # Never follow a redirect: a 3xx is the receiver's answer, and a failure.
        return session.post(url, data=body, headers=dict(headers), timeout=TIMEOUT, allow_redirects=False).status_code

    return WebhookSender(
        lambda: secrets.get().model_dump(),
        WebhookQueue(settings.webhook_queue_url, client=sqs_client()),
        WebhookQueue(settings.webhook_dead_letter_queue_url, client=sqs_client()),
        post,
        allow_loopback=settings.webhook_allow_loopback,
    )


@logger.inject_lambda_context
@traced
def send_webhooks(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sender = webhook_sender()
    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    # No post starts once what is left of the invocation could not see it answer or time out (or,
    # for a function given less time than one post may take, after half of it: some always go).
    left = context.get_remaining_time_in_millis() / 1000
    deadline = time.monotonic() + max(left - sum(TIMEOUT) - 2, left / 2)

    async def record_handler(record: SQSRecord) -> None:
        process = functools.partial(sender.process, record.body, deadline=deadline)
        await asyncio.get_running_loop().run_in_executor(_POOL, process)

    return dict(
        async_process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )


@lru_cache(maxsize=1)
def reconciler() -> tuple[Reconciler, ReceiptConsumer]:
    settings = ReconcileSettings.from_env()
    retention = settings.message_retention_days * 86_400
    deliveries = DeliveryStore(settings.message_log_table_name, client=dynamodb_client(), retention_seconds=retention)
    query = None
    if settings.aliyun_secret_id:
        from smsgw.providers.aliyun import AliyunDeliveryQuery

        store = CredentialStore(
            settings.aliyun_secret_id, credentials_model("aliyun"), max_age=settings.secret_max_age_seconds
        )
        session: requests.Session = no_retry_session(4)

        class LiveQuery:
            def details(self, phone: str, biz_id: str, send_date: str) -> list[dict[str, Any]]:
                credentials: Any = store.get()
                return AliyunDeliveryQuery(credentials, session=session, timeout=TIMEOUT).details(
                    phone, biz_id, send_date
                )

        query = LiveQuery()
    webhooks = WebhookQueue(settings.webhook_queue_url, client=sqs_client()) if settings.webhook_queue_url else None
    reconcile = Reconciler(
        deliveries,
        query,
        after_seconds=settings.reconcile_after_seconds,
        max_queries=settings.reconcile_max_queries,
    )
    return reconcile, ReceiptConsumer(deliveries, webhooks)


@logger.inject_lambda_context
@traced
def reconcile(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run, announcer = reconciler()
    summary = run.run()
    announcer.announce(summary.changes)
    report = {
        "calls": summary.calls,
        "queried": summary.queried,
        "settled": summary.settled,
        "expired": summary.expired,
        "closed": summary.closed,
        "errors": summary.errors,
    }
    logger.info("reconciliation finished", extra=report)
    return report


for _cache in (receipts_runtime, webhook_sender, reconciler):
    on_reset(_cache.cache_clear)
