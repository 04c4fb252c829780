"""The local SQS event source mapping against a real moto server, feeding worker processes that run
the tiny handler of tests/integration/fixtures/sqs: Lambda's SQS event, batch sizes and windows,
ReportBatchItemFailures, whole-batch failures, dead-lettering after maxReceiveCount, the
MaximumConcurrency of a queue, and drain()."""

from __future__ import annotations

import hashlib
import http.client
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from local.bootstrap import Bootstrap
from local.bootstrap import client as aws_client
from local.processes import FunctionPool, Invocation, MotoServer, function_environment
from local.sqs_poller import QueueStats, SqsPoller, queue_triggers, records_to_delete
from local.template import Physical, Template

FIXTURES = Path(__file__).parent / "fixtures" / "sqs"
TEMPLATE = Template.load(FIXTURES / "template.yaml")
# SlowFunction has more instances than its queue's MaximumConcurrency (2): the poller is what limits it.
POOL_SIZES = {"WorkFunction": 2, "BulkFunction": 1, "SlowFunction": 3}
# Nothing the handler does reaches these.
UNUSED_URL = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with (tmp_path_factory.mktemp("sqs-poller") / "moto.log").open("ab") as output:
        server = MotoServer(output=output)
        server.spawn()
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FunctionPool]]:
    with (tmp_path_factory.mktemp("sqs-poller") / "functions.log").open("ab") as output:
        pools = {}
        for function_id, spec in TEMPLATE.functions().items():
            environment = function_environment(spec, TEMPLATE.environment(function_id, {}), {})
            pools[function_id] = FunctionPool(spec, environment, size=POOL_SIZES[function_id], output=output)
        try:
            for pool in pools.values():
                pool.spawn()
            for pool in pools.values():
                pool.wait_ready()
            yield pools
        finally:
            for pool in pools.values():
                pool.stop()


@pytest.fixture
def queues(moto: MotoServer) -> dict[str, Physical]:
    """The fixture template's queues, created afresh in an emptied moto for each test."""
    connection = http.client.HTTPConnection("127.0.0.1", moto.port, timeout=5)
    try:
        connection.request("POST", "/moto-api/reset")
        connection.getresponse().read()
    finally:
        connection.close()
    bootstrap = Bootstrap(TEMPLATE, moto_url=moto.url, dynamodb_url=UNUSED_URL, sandbox_url=UNUSED_URL)
    return bootstrap.run(dynamodb=False)


@pytest.fixture
def sqs(moto: MotoServer) -> Any:
    return aws_client("sqs", moto.url)


@pytest.fixture
def poller(moto: MotoServer, queues: dict[str, Physical], pools: dict[str, FunctionPool]) -> Iterator[SqsPoller]:
    """The poller of the fixture's queues, not started: a test fills the queues first."""

    def invoke(function_id: str, event: dict[str, Any]) -> Invocation:
        return pools[function_id].invoke(event, timeout=TEMPLATE.functions()[function_id].timeout + 5)

    poller = SqsPoller(queue_triggers(TEMPLATE, queues), invoke, endpoint_url=moto.url, default_concurrency=2)
    yield poller
    poller.stop()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


def send(sqs: Any, url: str, attributes: dict[str, Any] | None = None, **orders: Any) -> str:
    """One message whose body tells the handler what to do; its message id."""
    body = json.dumps({"id": uuid.uuid4().hex, **orders})
    message_id: str = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes or {})["MessageId"]
    return message_id


def invocations(log: Path) -> list[dict[str, Any]]:
    """What the handler wrote down, one entry per invocation, in the order they began."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def deliveries(log: Path) -> list[tuple[str, int]]:
    """(messageId, ApproximateReceiveCount) of every record delivered."""
    return [
        (record["messageId"], int(record["attributes"]["ApproximateReceiveCount"]))
        for entry in invocations(log)
        for record in entry["event"]["Records"]
    ]


def batches(log: Path) -> list[list[str]]:
    return [[record["messageId"] for record in entry["event"]["Records"]] for entry in invocations(log)]


# ---------------------------------------------------------------------------------------------
# The event
# ---------------------------------------------------------------------------------------------


def test_a_batch_is_lambdas_sqs_event_and_holds_at_most_batch_size_records(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given seven messages in a queue whose function takes batches of three, one with attributes
    url = queues["WorkQueue"].ref
    attributes = {
        "tenant": {"DataType": "String", "StringValue": "shop-1"},
        "attempt": {"DataType": "Number", "StringValue": "3"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    }
    with_attributes = send(sqs, url, attributes, log=str(log))
    sent = [with_attributes, *(send(sqs, url, log=str(log)) for _ in range(6))]

    # When the poller runs until the queue is empty
    poller.start()
    poller.drain(timeout=30)

    # Then every message was delivered once, in batches of three or fewer: what one receive returned
    assert sorted(deliveries(log)) == sorted((message_id, 1) for message_id in sent)
    assert sorted(len(batch) for batch in batches(log)) == [1, 3, 3]
    # And each event is Lambda's SQS event, record for record
    arn = queues["WorkQueue"].attributes["Arn"]
    for entry in invocations(log):
        SqsModel.model_validate(entry["event"])
        assert list(entry["event"]) == ["Records"]
        for record in entry["event"]["Records"]:
            keys = {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody"}
            keys |= {"eventSource", "eventSourceARN", "awsRegion"}
            if record["messageId"] == with_attributes:
                keys.add("md5OfMessageAttributes")
            assert set(record) == keys
            assert record["eventSource"] == "aws:sqs"
            assert record["eventSourceARN"] == arn
            assert record["awsRegion"] == "us-east-1"
            assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 - SQS's digest
            assert set(record["attributes"]) == {
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
            }
            assert all(isinstance(value, str) for value in record["attributes"].values())
            assert record["receiptHandle"]
    record = next(r for e in invocations(log) for r in e["event"]["Records"] if r["messageId"] == with_attributes)
    assert record["messageAttributes"] == {
        "tenant": {"stringValue": "shop-1", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "attempt": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {"binaryValue": "AAH/", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }
    assert poller.stats()["WorkQueue"] == QueueStats(batches=3, records=7, deleted=7, failed=0, function_errors=0)


def test_a_batching_window_gathers_more_records_than_one_receive_returns(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given fifteen messages for a function taking batches of twelve within a one-second window
    url = queues["BulkQueue"].ref
    sent = [send(sqs, url, log=str(log)) for _ in range(15)]

    poller.start()
    poller.drain(timeout=30)

    # Then the first batch is twelve records (two receives of at most ten), the second the rest
    assert [len(batch) for batch in batches(log)] == [12, 3]
    assert sorted(message_id for batch in batches(log) for message_id in batch) == sorted(sent)
    assert poller.stats()["BulkQueue"].deleted == 15


# ---------------------------------------------------------------------------------------------
# What the function answers
# ---------------------------------------------------------------------------------------------


def test_only_the_reported_batch_item_failure_comes_back_the_rest_is_deleted(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given a batch of three in which the function reports the second as failed, the first time only
    url = queues["WorkQueue"].ref
    first = send(sqs, url, log=str(log))
    failing = send(sqs, url, log=str(log), fail_until=1)
    third = send(sqs, url, log=str(log))

    poller.start()
    poller.drain(timeout=30)

    # Then the three came together, and only the failed one came back, after its visibility timeout
    assert batches(log) == [[first, failing, third], [failing]]
    assert deliveries(log)[-1] == (failing, 2)
    assert poller.stats()["WorkQueue"] == QueueStats(batches=2, records=4, deleted=3, failed=1, function_errors=0)
    dead_letters = sqs.receive_message(QueueUrl=queues["WorkDeadLetterQueue"].ref, WaitTimeSeconds=0)
    assert dead_letters.get("Messages", []) == []


def test_a_function_error_fails_the_whole_batch(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given a batch of three, one of which makes the function raise on the first delivery
    url = queues["WorkQueue"].ref
    sent = [send(sqs, url, log=str(log)), send(sqs, url, log=str(log), raise_until=1), send(sqs, url, log=str(log))]

    poller.start()
    poller.drain(timeout=30)

    # Then none of the three was deleted after the error: each came back once, and then succeeded
    assert batches(log)[0] == sent
    assert sorted(deliveries(log)) == sorted([(m, 1) for m in sent] + [(m, 2) for m in sent])
    stats = poller.stats()["WorkQueue"]
    assert (stats.deleted, stats.failed, stats.function_errors) == (3, 3, 1)


def test_an_answer_naming_a_record_not_in_the_batch_fails_the_whole_batch(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given two messages whose function names a record it was not given as failed, every time
    url = queues["WorkQueue"].ref
    answer = {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
    sent = [send(sqs, url, log=str(log), answer=answer) for _ in range(2)]

    poller.start()
    poller.drain(timeout=30)

    # Then neither was deleted: both came back, and after their second delivery they are dead letters
    assert sorted(deliveries(log)) == sorted([(m, 1) for m in sent] + [(m, 2) for m in sent])
    dead = sqs.receive_message(QueueUrl=queues["WorkDeadLetterQueue"].ref, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert sorted(m["MessageId"] for m in dead["Messages"]) == sorted(sent)
    stats = poller.stats()["WorkQueue"]
    assert (stats.deleted, stats.failed, stats.function_errors) == (0, 4, 0)


def test_a_record_failing_every_time_ends_in_the_dead_letter_queue_intact(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given a message the function always reports as failed, on a queue with maxReceiveCount 2
    url = queues["WorkQueue"].ref
    attributes = {"tenant": {"DataType": "String", "StringValue": "shop-1"}}
    poison = send(sqs, url, attributes, log=str(log), fail_until=1000)
    body = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(body["RedrivePolicy"])["maxReceiveCount"] == 2

    poller.start()
    poller.drain(timeout=30)

    # Then the function saw it twice, and moto (like SQS) moved it to the DLQ on the next receive
    assert deliveries(log) == [(poison, 1), (poison, 2)]
    delivered = invocations(log)[0]["event"]["Records"][0]["body"]
    dead = sqs.receive_message(
        QueueUrl=queues["WorkDeadLetterQueue"].ref,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        MessageAttributeNames=["All"],
    )["Messages"]
    assert [(m["MessageId"], m["Body"]) for m in dead] == [(poison, delivered)]
    assert dead[0]["MessageAttributes"] == {"tenant": {"DataType": "String", "StringValue": "shop-1"}}
    assert poller.stats()["WorkQueue"] == QueueStats(batches=2, records=2, deleted=0, failed=2, function_errors=0)


@pytest.mark.parametrize(
    ("payload", "function_error", "deleted"),
    [
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, None, ["a", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}, None, ["b"]),
        ({"batchItemFailures": []}, None, ["a", "b", "c"]),
        ({"batchItemFailures": None}, None, ["a", "b", "c"]),
        ({}, None, ["a", "b", "c"]),
        (None, None, ["a", "b", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": "z"}]}, None, []),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None, []),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None, []),
        ({"batchItemFailures": [{"messageId": "b"}]}, None, []),
        ({"batchItemFailures": ["b"]}, None, []),
        ({"batchItemFailures": "b"}, None, []),
        ("ok", None, []),
        ([{"itemIdentifier": "b"}], None, []),
        ({"errorType": "RuntimeError", "errorMessage": "boom"}, "Unhandled", []),
    ],
    ids=[
        "one-failure",
        "two-failures",
        "empty-list",
        "null-list",
        "empty-response",
        "null-response",
        "unknown-id",
        "empty-id",
        "null-id",
        "bad-key",
        "not-an-object",
        "not-a-list",
        "not-a-response",
        "bare-list",
        "function-error",
    ],
)
def test_lambdas_rules_for_a_batch_response(payload: Any, function_error: str | None, deleted: list[str]) -> None:
    invocation = Invocation(payload, function_error)

    assert records_to_delete(["a", "b", "c"], invocation, report_batch_item_failures=True) == deleted


def test_without_report_batch_item_failures_the_answer_is_ignored_but_an_error_still_fails_the_batch() -> None:
    failures = Invocation({"batchItemFailures": [{"itemIdentifier": "b"}]})
    error = Invocation({"errorType": "RuntimeError", "errorMessage": "boom"}, "Unhandled")

    assert records_to_delete(["a", "b"], failures, report_batch_item_failures=False) == ["a", "b"]
    assert records_to_delete(["a", "b"], error, report_batch_item_failures=False) == []


# ---------------------------------------------------------------------------------------------
# Concurrency and draining
# ---------------------------------------------------------------------------------------------


def test_no_more_batches_of_a_queue_run_at_once_than_its_maximum_concurrency(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path, tmp_path: Path
) -> None:
    # Given six slow one-record batches for a function with three instances, MaximumConcurrency 2
    overlap = tmp_path / "running"
    overlap.mkdir()
    url = queues["SlowQueue"].ref
    sent = [send(sqs, url, log=str(log), overlap=str(overlap), sleep=0.3) for _ in range(6)]

    poller.start()
    poller.drain(timeout=30)

    # Then all six ran, two at a time at most, and two at a time at least once
    assert sorted(message_id for batch in batches(log) for message_id in batch) == sorted(sent)
    assert max(entry["concurrent"] for entry in invocations(log)) == 2
    assert poller.stats()["SlowQueue"].deleted == 6


def test_drain_returns_once_every_polled_queue_is_done(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    sent = [send(sqs, queues[name].ref, log=str(log)) for name in ("WorkQueue", "BulkQueue", "SlowQueue")]
    retried = send(sqs, queues["WorkQueue"].ref, log=str(log), fail_until=1)

    poller.start()
    poller.drain(timeout=30)

    assert poller.pending() == {}
    assert sorted(deliveries(log)) == sorted([(m, 1) for m in [*sent, retried]] + [(retried, 2)])
    assert sum(stats.deleted for stats in poller.stats().values()) == 4


def test_drain_gives_up_with_a_timeout_error_while_messages_wait(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path
) -> None:
    # Given a message and a poller that was never started
    send(sqs, queues["WorkQueue"].ref, log=str(log))

    with pytest.raises(TimeoutError, match="WorkQueue"):
        poller.drain(timeout=0.3)

    assert invocations(log) == []


def test_drain_reads_the_queues_again_before_it_trusts_an_empty_count(
    poller: SqsPoller, queues: dict[str, Physical], sqs: Any, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a waiting message and a first read of the counts that misses it, as moto's does when
    # the message's visibility timeout ends while the counts are taken
    send(sqs, queues["WorkQueue"].ref, log=str(log))
    real_pending, reads = poller.pending, []

    def pending() -> dict[str, dict[str, int]]:
        reads.append(1)
        return {} if len(reads) == 1 else real_pending()

    monkeypatch.setattr(poller, "pending", pending)

    # Then drain does not return on that one read
    with pytest.raises(TimeoutError, match="WorkQueue"):
        poller.drain(timeout=0.3)
    assert len(reads) > 1


def test_drain_returns_at_once_when_the_queues_are_empty(poller: SqsPoller, queues: dict[str, Physical]) -> None:
    poller.drain(timeout=5)

    assert set(poller.queue_urls) == {"WorkQueue", "BulkQueue", "SlowQueue"}
    assert all(stats == QueueStats() for stats in poller.stats().values())
