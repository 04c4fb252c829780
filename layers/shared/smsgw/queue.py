"""SQS triggers: a message is the provider route's request body, plus optional `idempotencyKey`,
`tenant` and (Aliyun) `operation` fields.

Every message ends one of three ways, and none is lost or sent twice:
- its numbers reach a final outcome (accepted, rejected, rate_limited, ambiguous or quota_exceeded),
  recorded in the message log, and the message is acknowledged;
- some numbers are `retryable`: the record becomes a batch item failure, SQS delivers it again,
  and only those numbers are sent again; after `maxReceiveCount` deliveries it is in the DLQ;
- it is poison (not JSON, or not a valid request): recorded with its reason and put in the DLQ
  at once, where the reason travels as a message attribute.

A message is known by the producer's `idempotencyKey`, or by its SQS message id, so a producer's
own retry and SQS's redelivery are both deduplicated: what a delivery finds already final in the
message log is not sent again, and concurrent deliveries of one message are serialised by
Powertools' idempotency records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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

from smsgw.errors import GatewayError
from smsgw.idempotency import Answer, IdempotencyInProgress, NothingSent
from smsgw.models import SendRequest
from smsgw.observability import logger, mask_phone
from smsgw.outcomes import Status
from smsgw.service import Caller, Operation

ENVELOPE_FIELDS = ("idempotencyKey", "tenant", "operation")
DEFAULT_TENANT = "queue"
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
KEY = re.compile(r"[\x21-\x7e]{1,255}")
FINAL = frozenset({Status.ACCEPTED, Status.REJECTED, Status.RATE_LIMITED, Status.AMBIGUOUS, Status.QUOTA_EXCEEDED})
# Records of one batch go out together: a batch takes about as long as its slowest record.
_POOL = ThreadPoolExecutor(max_workers=10, thread_name_prefix="record")

Resolve = Callable[[dict[str, Any], str | None], tuple[Operation, type[SendRequest]]]
"""Which operation a message body is for: (body, its `operation` field) → operation and model."""


class PoisonMessage(Exception):
    def __init__(self, reason: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or []


class RetryLater(Exception):
    """Some numbers are provably unsent: SQS should deliver the message again."""


@dataclass(frozen=True, slots=True)
class Envelope:
    operation: Operation
    request: SendRequest
    tenant: str
    key: str


def parse(body: str, message_id: str, resolve: Resolve) -> Envelope:
    try:
        data = json.loads(body)
    except ValueError:
        raise PoisonMessage("the message body is not JSON") from None
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


@lru_cache(maxsize=1)
def sqs_client() -> Any:
    return boto3.client("sqs")


class QueueConsumer:
    """Processes the records of one SQS batch; what it needs comes in as callables."""

    def __init__(
        self,
        *,
        resolve: Resolve,
        send: Callable[[Operation, SendRequest, Caller], Answer],
        idempotent: Callable[..., Answer],
        find: Callable[[str, str], dict[str, Any] | None],
        store: Callable[[Caller, Answer], None],
        dead_letter: Callable[[SQSRecord, str], None],
    ) -> None:
        self.resolve = resolve
        self.send = send
        self.idempotent = idempotent
        self.find = find
        self.store = store
        self.dead_letter = dead_letter

    def handle(self, event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
        # Every record failing is still a partial response: SQS retries each of them.
        processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        async def record_handler(record: SQSRecord) -> None:
            await asyncio.get_running_loop().run_in_executor(_POOL, self.process, record)

        return async_process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    def process(self, record: SQSRecord) -> None:
        try:
            envelope = parse(record.body, record.message_id, self.resolve)
        except PoisonMessage as poison:
            self._poison(record, poison)
            return
        request, key = envelope.request, envelope.key
        # A first delivery known by its own message id cannot have been processed before: only a
        # redelivery, or a producer's key that an earlier message may have used, is looked up.
        first_sight = key == record.message_id and record.attributes.get("ApproximateReceiveCount") == "1"
        prior = {} if first_sight else self.find(envelope.tenant, key) or {}
        outcomes: dict[str, dict[str, Any]] = {r["phone_number"]: r for r in prior.get("results", [])}
        pending = [p for p in request.phones if outcomes.get(p, {}).get("status") not in FINAL]
        if not pending:
            logger.info("message already processed", extra={"correlation_id": record.message_id})
            return
        caller = Caller(
            request_id=key,
            tenant=envelope.tenant,
            source_ip=None,
            received_at=datetime.now(UTC),
            correlation_id=record.message_id,
        )
        subset = request.only(set(pending))
        # One attempt per set of pending numbers: concurrent deliveries of the message share it.
        attempt = hashlib.sha256(f"{key}|{','.join(pending)}".encode()).hexdigest()[:32]
        try:
            answer = self.idempotent(
                tenant=envelope.tenant,
                route=f"queue.{envelope.operation.provider}.{envelope.operation.name}",
                key=attempt,
                body=subset.model_dump(mode="json"),
                send=lambda: self._attempt(envelope.operation, subset, caller),
            )
        except IdempotencyInProgress:
            raise RetryLater("another delivery of this message is being processed") from None
        outcomes.update({r["phone_number"]: r for r in answer["body"]["results"]})
        merged = {**answer["body"], "results": [outcomes[p] for p in request.phones if p in outcomes]}
        merged["summary"] = {s.value: sum(1 for r in merged["results"] if r["status"] == s.value) for s in Status}
        self.store(caller, {"status": answer["status"], "headers": {}, "body": merged})
        retry = [p for p in request.phones if outcomes.get(p, {}).get("status") not in FINAL]
        logger.info(
            "message processed",
            extra={"correlation_id": record.message_id, "summary": merged["summary"], "to_retry": len(retry)},
        )
        if retry:
            logger.warning(
                "numbers will be retried",
                extra={"correlation_id": record.message_id, "numbers": [mask_phone(p) for p in retry]},
            )
            raise RetryLater(f"{len(retry)} numbers were provably not sent")

    def _attempt(self, operation: Operation, request: SendRequest, caller: Caller) -> Answer:
        answer = self.send(operation, request, caller)
        if not any(
            r["status"] == Status.AMBIGUOUS.value or r["status"] == Status.ACCEPTED.value
            for r in answer["body"]["results"]
        ):
            # Nothing may have gone out: Powertools keeps no record, the next delivery tries again.
            raise NothingSent(answer)
        return answer

    def _poison(self, record: SQSRecord, poison: PoisonMessage) -> None:
        logger.warning("poison message", extra={"correlation_id": record.message_id, "reason": poison.reason})
        caller = Caller(
            request_id=record.message_id,
            tenant=DEFAULT_TENANT,
            source_ip=None,
            received_at=datetime.now(UTC),
            correlation_id=record.message_id,
        )
        body = {
            "request_id": record.message_id,
            "error": {"code": "invalid_message", "message": poison.reason, "details": poison.details},
            "results": [],
        }
        self.store(caller, {"status": 400, "headers": {}, "body": body})
        # Raises if the DLQ cannot be reached: the message then stays in its queue and comes back.
        self.dead_letter(record, poison.reason)


def send_to_dead_letter_queue(queue_url: str) -> Callable[[SQSRecord, str], None]:
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
