"""Receipts in: the routes' token check and queue, and the consumer that moves each number's status.

The receipt routes do as little as they can, so that Aliyun's 700 ms are kept whatever happens
behind them: check the path's token (constant time, against a secret), read the body strictly,
put the receipts on the receipts queue in one message, answer. The consumer matches each receipt
to the send it is about through the receipt index and settles the number's status once; a receipt
whose send is not recorded yet makes its message come back later (SQS redelivery), and one that
never matches ends in the dead-letter queue: a receipt never creates a message.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsgw.deliveries import Change, Delivery, DeliveryStore, Indexed
from smsgw.errors import DependencyUnavailable, GatewayError
from smsgw.observability import NAMESPACE, SERVICE, logger, mask_phone
from smsgw.receipts import Receipt
from smsgw.rules import RuleStore
from smsgw.tracking import WebhookQueue
from smsgw.webhooks import event

_POOL = ThreadPoolExecutor(max_workers=10, thread_name_prefix="receipt")
RECEIPTS_PER_MESSAGE = 500


class InvalidToken(GatewayError):
    status_code = 403
    code = "invalid_receipt_token"


class ReceiptTokens:
    """The routes' path tokens, one per provider, from a secret: `{"aliyun": "...", "ronglian": "..."}`."""

    def __init__(self, read: Callable[[], Mapping[str, Any]]) -> None:
        self.read = read

    def check(self, provider: str, token: str) -> None:
        expected = self.read().get(provider)
        # Compared in constant time; a provider without a token takes no receipts.
        if not isinstance(expected, str) or len(expected) < 16 or not hmac.compare_digest(expected, token):
            raise InvalidToken("This receipt URL is not valid.")


class ReceiptsQueue:
    def __init__(self, queue_url: str, *, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def put(self, receipts: Sequence[Receipt]) -> None:
        for start in range(0, len(receipts), RECEIPTS_PER_MESSAGE):
            body = json.dumps([r.to_dict() for r in receipts[start : start + RECEIPTS_PER_MESSAGE]])
            try:
                self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
            except Exception as exc:
                raise DependencyUnavailable(f"SQS is unavailable ({type(exc).__name__})") from exc


class Unmatched(Exception):
    """Receipts whose send is not (yet) recorded: the message comes back later."""


OPT_OUT_REASONS = frozenset({"USER_REJECT", "MOBILE_IN_BLACK"})
"""Aliyun's receipt codes saying the user refused the sender: an opt-out, where the tenant wants it."""


class ReceiptConsumer:
    def __init__(
        self, deliveries: DeliveryStore, webhooks: WebhookQueue | None, rules: RuleStore | None = None
    ) -> None:
        self.deliveries = deliveries
        self.webhooks = webhooks
        self.rules = rules

    def handle(self, event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
        processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        async def record_handler(record: SQSRecord) -> None:
            await asyncio.get_running_loop().run_in_executor(_POOL, self.process, record)

        return async_process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    def process(self, record: SQSRecord) -> None:
        receipts = [Receipt.from_dict(r) for r in json.loads(record.body)]
        unmatched = self.apply(receipts)
        if unmatched:
            logger.info("receipts wait for their send", extra={"receipts": unmatched, "message_id": record.message_id})
            raise Unmatched(f"{unmatched} receipts match no recorded send yet")

    def apply(self, receipts: Sequence[Receipt]) -> int:
        """Settle what the receipts say; how many matched no recorded send."""
        calls: dict[tuple[str, str], Indexed | None] = {}
        unmatched = 0
        changes: list[Change] = []
        for receipt in receipts:
            key = (receipt.provider, receipt.message_id)
            if key not in calls:
                calls[key] = self.deliveries.indexed(*key)
            indexed = calls[key]
            if indexed is None or receipt.phone not in indexed.numbers:
                unmatched += 1
                continue
            status = Delivery.DELIVERED if receipt.delivered else Delivery.UNDELIVERED
            change = self.deliveries.settle(
                indexed, receipt.phone, status, None if receipt.delivered else receipt.reason, receipt.reported_at
            )
            if change is not None:
                changes.append(change)
        self.announce(changes)
        return unmatched

    def announce(self, changes: Sequence[Change]) -> None:
        """The metrics, opt-outs and webhook events of status changes."""
        for change in changes:
            report_delivery(change)
            self._opt_out(change)
        events = [
            event(
                c.indexed.tenant,
                c.indexed.callback_url,
                request_id=c.indexed.request_id,
                phone=c.phone,
                status=c.status.value,
                provider=c.indexed.provider,
                **({"reason": c.reason} if c.reason else {}),
                reported_at=c.at,
            )
            for c in changes
            if c.indexed.callback_url
        ]
        if events and self.webhooks is not None:
            self.webhooks.put(events)

    def _opt_out(self, change: Change) -> None:
        if self.rules is None or change.reason not in OPT_OUT_REASONS:
            return
        tenant = change.indexed.tenant
        if self.rules.applied(tenant).opt_out_on_receipts:
            self.rules.opt_out(tenant, change.phone, reason=f"receipt:{change.reason}")
            logger.info("opted out by a receipt", extra={"number": mask_phone(change.phone), "reason": change.reason})


def report_delivery(change: Change) -> None:
    """Per provider operation: delivered and undelivered counts (the delivery rate) and how long
    the receipt took after the send was accepted."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_dimension(name="provider", value=change.indexed.provider)
    metrics.add_dimension(name="operation", value=change.indexed.operation)
    metrics.add_metric(name="delivered", unit=MetricUnit.Count, value=int(change.status is Delivery.DELIVERED))
    metrics.add_metric(name="undelivered", unit=MetricUnit.Count, value=int(change.status is Delivery.UNDELIVERED))
    metrics.add_metric(name="expired", unit=MetricUnit.Count, value=int(change.status is Delivery.EXPIRED))
    try:
        latency = datetime.fromisoformat(change.at).timestamp() - change.indexed.accepted_at
    except ValueError:
        latency = time.time() - change.indexed.accepted_at
    metrics.add_metric(name="receipt_latency", unit=MetricUnit.Seconds, value=max(latency, 0.0))
    metrics.flush_metrics()
    logger.info(
        "delivery status",
        extra={
            "provider": change.indexed.provider,
            "request_id": change.indexed.request_id,
            "number": mask_phone(change.phone),
            "status": change.status.value,
            "reason": change.reason,
        },
    )
