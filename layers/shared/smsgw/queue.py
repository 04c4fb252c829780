"""SQS triggers: a message is the provider route's request body, plus optional `idempotencyKey`,
`tenant` and (Aliyun) `operation` fields.

Every message ends one of three ways, and none is lost or sent twice:
- its numbers reach a final outcome (accepted, rejected, rate_limited, ambiguous or quota_exceeded),
  recorded in the message log, and the message is acknowledged;
- some numbers are `retryable`: the record becomes a batch item failure, SQS delivers it again,
  and only those numbers are sent again; after `maxReceiveCount` deliveries it is in the DLQ;
- it is poison (not JSON, a key given twice, not a valid request, an `idempotencyKey` used before
  with another body): recorded with its reason and put in the DLQ at once, where the reason travels
  as a message attribute.

A message is known by the producer's `idempotencyKey`, or by its SQS message id, so a producer's
own retry and SQS's redelivery meet the same idempotency record (`smsgw.idempotency`): numbers that
were or may have been sent are never sent again, whatever failed after the provider answered.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from smsgw import bodies
from smsgw.clock import Budget
from smsgw.connections import held
from smsgw.errors import GatewayError, InvalidRequest
from smsgw.gathering import Batch
from smsgw.idempotency import IdempotencyInProgress, IdempotencyKeyReused
from smsgw.models import SendRequest
from smsgw.observability import logger, mask_phone
from smsgw.runtime import on_reset
from smsgw.sender import Key, Log, Sender, resend_retryable
from smsgw.service import Caller, Operation

ENVELOPE_FIELDS = ("idempotencyKey", "tenant", "operation")
DEFAULT_TENANT = "queue"
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Records of one batch go out together: a batch takes about as long as its slowest record.
_POOL = ThreadPoolExecutor(max_workers=10, thread_name_prefix="record")

Resolve = Callable[[dict[str, Any], str | None], tuple[Operation, type[SendRequest]]]
"""Which operation a message body is for: (body, its `operation` field) → operation and model."""
DeadLetter = Callable[[SQSRecord, str], None]


class PoisonMessage(Exception):
    def __init__(self, reason: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or []


class RetryLater(Exception):
    """The message is not finished: SQS should deliver it again."""


@dataclass(frozen=True, slots=True)
class Envelope:
    operation: Operation
    request: SendRequest
    tenant: str
    key: str


def parse(body: str, message_id: str, resolve: Resolve) -> Envelope:
    try:
        data = bodies.loads(body)
    except InvalidRequest as exc:
        duplicated = any(d.get("type") == "json_duplicate_key" for d in exc.details or [])
        reason = "the message body gives one key twice" if duplicated else "the message body is not JSON"
        raise PoisonMessage(reason, exc.details) from None
    if not isinstance(data, dict):
        raise PoisonMessage("the message body is not a JSON object")
    envelope = {name: data.pop(name) for name in ENVELOPE_FIELDS if name in data}
    tenant = envelope.get("tenant", DEFAULT_TENANT)
    if not isinstance(tenant, str) or not TENANT.fullmatch(tenant):
        raise PoisonMessage("tenant must be 1 to 128 letters, digits, '.', '_' or '-'")
    key = envelope.get("idempotencyKey", message_id)
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise PoisonMessage("idempotencyKey must be 1 to 255 printable ASCII characters")
    named = envelope.get("operation")
    if named is not None and not isinstance(named, str):
        raise PoisonMessage("operation must be a string")
    try:
        operation, model = resolve(data, named)
    except ValueError as exc:
        raise PoisonMessage(str(exc)) from None
    try:
        request = model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "type": e["type"], "message": e["msg"]} for e in exc.errors()
        ]
        raise PoisonMessage("the message is not a valid request", details) from None
    return Envelope(operation=operation, request=request, tenant=tenant, key=key)


class QueueConsumer:
    """Processes the records of one SQS batch, each as the API would send it with a key."""

    def __init__(
        self,
        *,
        resolve: Resolve,
        sender: Sender,
        budget: Callable[[int | None], Budget],
        log: Log,
        dead_letter: DeadLetter,
        keep_seconds: int | None = None,
    ) -> None:
        # A producer's key is remembered as long as the message log keeps the message's record.
        self.keep_seconds = keep_seconds
        self.resolve = resolve
        self.sender = sender
        self.budget = budget
        self.log = log
        self.dead_letter = dead_letter

    def handle(self, event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
        # Every record failing is still a partial response: SQS retries each of them.
        processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        remaining_ms = context.get_remaining_time_in_millis()
        # The records' claims with their quota takes, and their ends, are each one DynamoDB call
        # for the batch (smsgw.gathering); each record still ends on its own.
        batch = Batch(len(event.get("Records") or []))

        async def record_handler(record: SQSRecord) -> None:
            await asyncio.get_running_loop().run_in_executor(_POOL, self.process, record, batch, remaining_ms)

        return async_process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    def process(self, record: SQSRecord, batch: Batch, remaining_ms: int | None = None) -> None:
        logger.thread_safe_append_keys(correlation_id=record.message_id)
        try:
            with batch.member():
                self._process(record, remaining_ms)
        finally:
            logger.thread_safe_remove_keys(["correlation_id"])

    def _process(self, record: SQSRecord, remaining_ms: int | None) -> None:
        try:
            envelope = parse(record.body, record.message_id, self.resolve)
        except PoisonMessage as poison:
            self._poison(record, poison)
            return
        caller = Caller(
            request_id=envelope.key,
            tenant=envelope.tenant,
            source_ip=None,
            received_at=datetime.now(UTC),
            correlation_id=record.message_id,
        )
        key = Key(
            route=f"queue.{envelope.operation.route}",
            value=envelope.key,
            resend=resend_retryable,
            keep_seconds=self.keep_seconds,
        )
        try:
            sent = self.sender.send(envelope.operation, envelope.request, caller, self.budget(remaining_ms), key)
        except IdempotencyInProgress:
            raise RetryLater("another delivery of this message is being processed") from None
        except IdempotencyKeyReused:  # no delivery of this message can ever be sent
            self._poison(record, PoisonMessage("the idempotencyKey was used with another message body"))
            return
        if not sent.recorded:
            # The next delivery finds the claim and settles it: nothing of it is sent again.
            raise RetryLater("the outcome could not be recorded")
        retry = resend_retryable(sent.response)
        logger.info(
            "message processed",
            extra={"summary": sent.response.summary.model_dump(), "to_retry": len(retry), "replayed": sent.replayed},
        )
        if retry:
            logger.warning("numbers will be retried", extra={"numbers": [mask_phone(p) for p in retry]})
            raise RetryLater(f"{len(retry)} numbers were provably not sent")

    def _poison(self, record: SQSRecord, poison: PoisonMessage) -> None:
        logger.warning("poison message", extra={"reason": poison.reason})
        body = {
            "request_id": record.message_id,
            "error": {"code": "invalid_message", "message": poison.reason, "details": poison.details},
            "results": [],
        }
        self.log.record(DEFAULT_TENANT, record.message_id, body, received_at=datetime.now(UTC))
        # Raises if the DLQ cannot be reached: the message then stays in its queue and comes back.
        self.dead_letter(record, poison.reason)


@lru_cache(maxsize=1)
def sqs_client() -> Any:
    return held(boto3.client("sqs"))


on_reset(sqs_client.cache_clear)


def send_to_dead_letter_queue(queue_url: str) -> DeadLetter:
    def dead_letter(record: SQSRecord, reason: str) -> None:
        try:
            sqs_client().send_message(
                QueueUrl=queue_url,
                MessageBody=record.body,
                MessageAttributes={
                    "error_code": {"DataType": "String", "StringValue": "invalid_message"},
                    "reason": {"DataType": "String", "StringValue": reason[:1024]},
                    "source_message_id": {"DataType": "String", "StringValue": record.message_id},
                },
            )
        except Exception as exc:
            raise GatewayError(f"the dead-letter queue is unavailable ({type(exc).__name__})") from exc

    return dead_letter
