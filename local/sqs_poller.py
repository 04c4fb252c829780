"""Lambda's SQS event source mapping, without Docker: polls the template's queues in moto server and
invokes each queue's function with batches of records, as Lambda does.

- A batch is up to `BatchSize` records gathered within `MaximumBatchingWindowInSeconds` (with no
  window, what one ReceiveMessage returned), delivered as Lambda's SQS event.
- With `ReportBatchItemFailures`, the function's `batchItemFailures` stay on the queue and the rest
  of the batch is deleted; a function error, a timeout or a malformed answer fails the whole batch.
  A failed record reappears once its visibility timeout has passed.
- At most `ScalingConfig.MaximumConcurrency` batches of one queue are in flight at once.
- Dead-lettering is left to moto: like SQS, moto server moves a message to the queue's DLQ when a
  ReceiveMessage finds it already received `maxReceiveCount` times (see the integration tests).

Polling stays light on a small machine: one long-polling receiver per queue, which receives only
when a batch slot is free, so an idle stack costs one ReceiveMessage per queue per `wait_time`.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.bootstrap import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from local.processes import Invocation, StackError
from local.template import QUEUE_TYPE, REGION, Physical, Template

log = logging.getLogger(__name__)

# ReceiveMessage's own ceiling.
MAX_RECEIVE = 10
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
DEFAULT_WAIT_TIME_SECONDS = 1
# Without ScalingConfig, Lambda starts an SQS mapping with five concurrent pollers.
DEFAULT_MAXIMUM_CONCURRENCY = 5
# Between attempts while moto is unreachable (moto stopped on purpose, say): short first, then patient.
_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)
# How often drain() looks at the queues while nothing is being processed (failed records waiting out
# their visibility timeout, say).
_DRAIN_INTERVAL = 0.1

Invoke = Callable[[str, dict[str, Any]], Invocation]
"""Runs one invocation of a function: (function id, event) → what Lambda's Invoke API answers."""


@dataclass(frozen=True)
class QueueTrigger:
    """An SQS event source with its queue resolved, for the SQS poller."""

    function_id: str
    event_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_batching_window_seconds: int
    enabled: bool
    maximum_concurrency: int | None
    # The queue's logical id in the template; the ARN for a queue the template does not declare.
    queue_id: str = ""

    @property
    def name(self) -> str:
        return self.queue_id or self.queue_arn

    @property
    def reports_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types


def queue_triggers(template: Template, resources: Mapping[str, Physical]) -> list[QueueTrigger]:
    """The template's SQS event sources, resolved to the queues provisioned in `resources`."""
    resolver = template.resolver(resources)
    triggers = []
    for source in template.sqs_event_sources():
        arn = resolver.resolve_string(source.queue)
        found = next(((name, p) for name, p in resources.items() if p.attributes.get("Arn") == arn), None)
        if found is None:
            raise StackError(f"{source.function_id}.{source.event_id}: no local queue has the ARN {arn}")
        queue_id, queue = found
        triggers.append(
            QueueTrigger(
                function_id=source.function_id,
                event_id=source.event_id,
                queue_url=queue.ref,
                queue_arn=arn,
                batch_size=source.batch_size,
                function_response_types=source.function_response_types,
                maximum_batching_window_seconds=source.maximum_batching_window_seconds,
                enabled=source.enabled,
                maximum_concurrency=source.maximum_concurrency,
                queue_id=queue_id,
            )
        )
    return triggers


def queue_urls(template: Template, resources: Mapping[str, Physical]) -> dict[str, str]:
    """Every queue of the template (dead-letter queues too), by logical id, once provisioned."""
    return {name: resources[name].ref for name in template.of_type(QUEUE_TYPE) if name in resources}


# ---------------------------------------------------------------------------------------------
# The event Lambda delivers, and what it does with the answer
# ---------------------------------------------------------------------------------------------


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        # Lambda's event is JSON: binary values travel base64-encoded.
        converted["binaryValue"] = _b64(value["BinaryValue"])
    converted["stringListValues"] = list(value.get("StringListValues") or [])
    converted["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues") or []]
    converted["dataType"] = value["DataType"]
    return converted


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str = REGION) -> dict[str, Any]:
    """One ReceiveMessage message as a record of Lambda's SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        # ApproximateReceiveCount, SentTimestamp, SenderId, ApproximateFirstReceiveTimestamp, and the
        # FIFO and tracing attributes when SQS has them: Lambda passes the system attributes through.
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        # Lambda includes it exactly when the message has attributes, as ReceiveMessage does.
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record |= {
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    return record


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str, region: str = REGION) -> dict[str, Any]:
    return {"Records": [sqs_record(message, queue_arn, region) for message in messages]}


def records_to_delete(
    message_ids: Sequence[str], invocation: Invocation, *, report_batch_item_failures: bool
) -> list[str]:
    """The records of a batch that Lambda deletes after this invocation, in batch order."""
    if invocation.function_error:
        return []
    if not report_batch_item_failures:
        # Without ReportBatchItemFailures, Lambda ignores what the function answers.
        return list(message_ids)
    answer = invocation.payload
    if answer is None:
        return list(message_ids)
    if not isinstance(answer, dict):
        return []
    failures = answer.get("batchItemFailures")
    if failures is None:
        return list(message_ids)
    if not isinstance(failures, list):
        return []
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        # An empty, missing or unknown identifier makes Lambda fail the whole batch.
        if not isinstance(identifier, str) or identifier not in message_ids:
            return []
        failed.add(identifier)
    return [message_id for message_id in message_ids if message_id not in failed]


# ---------------------------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------------------------


@dataclass
class QueueStats:
    """What the poller did with one queue's messages since it started."""

    batches: int = 0
    """Invocations of the function."""
    records: int = 0
    """Records delivered in those invocations (a redelivered message counts again)."""
    deleted: int = 0
    """Records deleted after their invocation."""
    failed: int = 0
    """Records left on the queue for another delivery (or moto's move to the DLQ)."""
    function_errors: int = 0
    """Invocations that ended in a function error (a timeout included): their whole batch failed."""


def sqs_client(endpoint_url: str, *, wait_time_seconds: int, connections: int) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
    )
    config = Config(
        connect_timeout=2,
        # A long poll answers only after its wait.
        read_timeout=wait_time_seconds + 10,
        # The receive loop retries on its own, with a back-off; a stopped moto must not stall it.
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=connections,
    )
    return session.client("sqs", endpoint_url=endpoint_url, config=config)


class _QueuePoller:
    """The pollers of one trigger: a receiver gathering batches, and up to `concurrency` of them in
    flight in a pool of threads, each invoking the function and settling its records."""

    def __init__(self, owner: SqsPoller, trigger: QueueTrigger, concurrency: int) -> None:
        self.owner = owner
        self.trigger = trigger
        self.concurrency = concurrency
        self._slots = threading.Semaphore(concurrency)
        self._batches = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"sqs-{trigger.name}")
        self._receiver = threading.Thread(target=self._receive_loop, name=f"sqs-receive-{trigger.name}", daemon=True)

    def start(self) -> None:
        self._receiver.start()

    def join_receiver(self, timeout: float) -> None:
        if self._receiver.is_alive():
            self._receiver.join(timeout)

    def shutdown(self) -> None:
        # Not cancelled: a batch already received still settles its slot and the in-flight count
        # (failing, once its workers are gone).
        self._batches.shutdown(wait=False)

    # -- Receiving -------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        stopping = self.owner.stopping
        failures = 0
        while not stopping.is_set():
            # A slot first: records received without one would only wait out their visibility timeout.
            if not self._slots.acquire(timeout=self.owner.wait_time_seconds):
                continue
            try:
                messages = self._gather()
            except (BotoCoreError, ClientError) as exc:
                self._slots.release()
                if failures == 0:
                    log.warning("SQS poller of %s: cannot receive (%s); retrying", self.trigger.name, exc)
                stopping.wait(_BACKOFF_SECONDS[min(failures, len(_BACKOFF_SECONDS) - 1)])
                failures += 1
                continue
            if failures:
                log.warning("SQS poller of %s: receiving again", self.trigger.name)
                failures = 0
            if not messages or stopping.is_set():
                # Received while stopping: the records reappear after their visibility timeout.
                self._slots.release()
                continue
            self.owner.batch_started()
            try:
                self._batches.submit(self._process, messages)
            except RuntimeError:
                # The pool was shut down in between: the stack is stopping.
                self._slots.release()
                self.owner.batch_ended()

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        answer = self.owner.client.receive_message(
            QueueUrl=self.trigger.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages") or []
        return messages

    def _gather(self) -> list[dict[str, Any]]:
        """One batch: up to BatchSize records within the batching window, which opens with the first."""
        size = self.trigger.batch_size
        wait = self.owner.wait_time_seconds
        batch = self._receive(min(size, MAX_RECEIVE), wait)
        window = self.trigger.maximum_batching_window_seconds
        if not batch or window <= 0:
            return batch
        closes = time.monotonic() + window
        while len(batch) < size and not self.owner.stopping.is_set():
            remaining = closes - time.monotonic()
            if remaining <= 0:
                break
            # WaitTimeSeconds is whole seconds: round up, so the last moments of the window still wait.
            batch += self._receive(min(size - len(batch), MAX_RECEIVE), min(wait, max(1, int(remaining + 0.999))))
        return batch

    # -- Invoking and settling -------------------------------------------------------------

    def _process(self, messages: list[dict[str, Any]]) -> None:
        trigger = self.trigger
        try:
            invocation = self._invoke(sqs_event(messages, trigger.queue_arn))
            ids = [message["MessageId"] for message in messages]
            delete = set(
                records_to_delete(ids, invocation, report_batch_item_failures=trigger.reports_batch_item_failures)
            )
            deleted = self._delete([m for m in messages if m["MessageId"] in delete])
            self.owner.count(
                trigger,
                batches=1,
                records=len(messages),
                deleted=deleted,
                failed=len(messages) - deleted,
                function_errors=1 if invocation.function_error else 0,
            )
        except Exception:
            log.exception("SQS poller of %s: a batch of %d records failed", trigger.name, len(messages))
        finally:
            self._slots.release()
            self.owner.batch_ended()

    def _invoke(self, event: dict[str, Any]) -> Invocation:
        try:
            return self.owner.invoke(self.trigger.function_id, event)
        except Exception as exc:
            # A timeout, or no instance free in time: to the event source mapping, a failed invocation.
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return Invocation(error, "Unhandled")

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), MAX_RECEIVE):
            chunk = messages[start : start + MAX_RECEIVE]
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)]
            try:
                answer = self.owner.client.delete_message_batch(QueueUrl=self.trigger.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.warning("SQS poller of %s: cannot delete %d records (%s)", self.trigger.name, len(chunk), exc)
                continue
            deleted += len(answer.get("Successful") or [])
            for failure in answer.get("Failed") or []:
                log.warning("SQS poller of %s: a record was not deleted: %s", self.trigger.name, failure)
        return deleted


class SqsPoller:
    """Lambda's SQS event source mappings for a set of triggers: `SqsPoller(triggers, invoke,
    endpoint_url=moto).start()` … `.drain()` … `.stop()`.

    `invoke(function_id, event)` runs one invocation (the stack's worker pools); `wait_time_seconds`
    is each ReceiveMessage's long poll, which also bounds how long stop() waits for the receivers;
    `default_concurrency` applies to triggers without ScalingConfig.MaximumConcurrency. Disabled
    triggers are not polled.
    """

    def __init__(
        self,
        triggers: Iterable[QueueTrigger],
        invoke: Invoke,
        *,
        endpoint_url: str,
        wait_time_seconds: int = DEFAULT_WAIT_TIME_SECONDS,
        default_concurrency: int = DEFAULT_MAXIMUM_CONCURRENCY,
    ) -> None:
        # A zero wait would turn every receiver into a busy loop; SQS allows no more than 20.
        if not 1 <= wait_time_seconds <= 20:
            raise ValueError(f"wait_time_seconds must be 1 to 20, not {wait_time_seconds}")
        if default_concurrency < 1:
            raise ValueError(f"default_concurrency must be at least 1, not {default_concurrency}")
        self.triggers = [trigger for trigger in triggers if trigger.enabled]
        self.invoke = invoke
        self.endpoint_url = endpoint_url
        self.wait_time_seconds = wait_time_seconds
        self.stopping = threading.Event()
        self._pollers = [
            _QueuePoller(self, trigger, trigger.maximum_concurrency or default_concurrency) for trigger in self.triggers
        ]
        connections = sum(poller.concurrency + 1 for poller in self._pollers) + 1
        self.client = sqs_client(endpoint_url, wait_time_seconds=self.wait_time_seconds, connections=connections)
        self._stats = {trigger.name: QueueStats() for trigger in self.triggers}
        # Batches received and not yet settled, and a counter of every change to that number, so that
        # drain() can tell whether a batch came and went while it was looking at the queues.
        self._changed = threading.Condition()
        self._in_flight = 0
        self._generation = 0
        self._started = False

    @property
    def queue_urls(self) -> dict[str, str]:
        """The polled queues, by name (the queue's logical id)."""
        return {trigger.name: trigger.queue_url for trigger in self.triggers}

    def start(self) -> Self:
        if self._started:
            return self
        self._started = True
        for poller in self._pollers:
            poller.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving; wait up to `timeout` for the batches in flight, whose records go back to
        their queue if they cannot finish (their workers are stopped, say). Safe to call twice."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for poller in self._pollers:
            poller.join_receiver(max(deadline - time.monotonic(), 0))
        for poller in self._pollers:
            poller.shutdown()
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == 0, max(deadline - time.monotonic(), 0))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- Bookkeeping -----------------------------------------------------------------------

    def batch_started(self) -> None:
        with self._changed:
            self._in_flight += 1
            self._generation += 1
            self._changed.notify_all()

    def batch_ended(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._generation += 1
            self._changed.notify_all()

    def count(self, trigger: QueueTrigger, **increments: int) -> None:
        with self._changed:
            stats = self._stats[trigger.name]
            for name, value in increments.items():
                setattr(stats, name, getattr(stats, name) + value)

    def stats(self) -> dict[str, QueueStats]:
        """A snapshot of each polled queue's counters, by queue name."""
        with self._changed:
            return {name: dataclasses.replace(stats) for name, stats in self._stats.items()}

    # -- Draining --------------------------------------------------------------------------

    def pending(self) -> dict[str, dict[str, int]]:
        """Each polled queue's messages that are not done yet: visible, in flight and delayed."""
        found = {}
        for name, url in self.queue_urls.items():
            attributes = self.client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            counts = {
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
            if any(counts.values()):
                found[name] = counts
        return found

    def drain(self, timeout: float = 60.0) -> None:
        """Return once every polled queue is empty (nothing visible, in flight or delayed) and no
        batch is being processed; raise TimeoutError if that takes longer than `timeout` seconds.

        Records that failed come back after their visibility timeout, and are waited for too."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._in_flight == 0, max(deadline - time.monotonic(), 0))
                in_flight, generation = self._in_flight, self._generation
            # moto counts visible messages first and invisible ones after: a message whose
            # visibility timeout ends between the two is in neither count. An empty read is
            # therefore read again, which finds it visible (or received, or in its dead-letter queue).
            pending = (self.pending() or self.pending()) if in_flight == 0 else {}
            with self._changed:
                # A batch that came and went while the queues were being read could have sent more.
                quiet = self._in_flight == 0 and self._generation == generation
            if in_flight == 0 and quiet and not pending:
                return
            if time.monotonic() >= deadline:
                waiting = [f"{name}: {counts}" for name, counts in pending.items()]
                if in_flight:
                    waiting.append(f"{in_flight} batches being processed")
                raise TimeoutError(f"the SQS queues did not drain within {timeout:g}s: " + "; ".join(waiting))
            with self._changed:
                # Woken early by a batch starting or ending.
                self._changed.wait(_DRAIN_INTERVAL)
