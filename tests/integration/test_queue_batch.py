"""An SQS batch does its DynamoDB work per batch: the records' claims with their quota takes in one
transaction, the shared counters once, what is left read once, the records' ends in one
transaction; and still every record ends as it would alone. In process, against DynamoDB Local,
moto server and the provider sandbox."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from local.sandbox import Fault, ProviderSandbox
from smsgw import gathering, runtime
from tests.support import dead_letters, dynamodb_client, log_record, polyv_message, sqs_event


def phone(i: int) -> str:
    """A mainland number in a number block of its own."""
    return f"13{i}00138000"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The DynamoDB calls the gateway makes (by operation) from now on."""
    calls: Counter[str] = Counter()
    session = boto3.session.Session()
    session.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    runtime.reset()
    return calls


def statuses(tenant: str, *request_ids: str) -> list[str]:
    found = []
    for request_id in request_ids:
        code, record = log_record(tenant, request_id)
        assert code == 200, request_id
        found += [r["status"] for r in record["results"]]
    return found


def test_a_batch_of_ten_makes_five_dynamodb_calls(
    polyv_queue: Any, sandbox: ProviderSandbox, counted: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # However busy the machine, no record comes too late to be gathered (all ten come: none is waited for)
    monkeypatch.setattr(gathering, "LINGER_SECONDS", 5.0)
    monkeypatch.setattr(gathering, "MAX_WAIT_SECONDS", 5.0)
    ids = [f"b-{i}" for i in range(10)]
    event = sqs_event(*[(ids[i], polyv_message(phone(i))) for i in range(10)])
    assert polyv_queue(sqs_event(("warm", polyv_message(phone(0), tenant="warm-up")))) == []  # a warm function
    counted.clear()

    assert polyv_queue(event) == []

    # Ten claims with ten numbers' counters: one transaction; the account's day: one update; the ten
    # number blocks of the pumping guard: one transaction; what is left: one read; ten ends, each
    # with its message-log record: one transaction. One record alone makes five calls too.
    assert counted == Counter({"TransactWriteItems": 3, "UpdateItem": 1, "BatchGetItem": 1})
    assert sorted(sandbox.accepted_phones()[1:]) == sorted(phone(i) for i in range(10))
    assert statuses("queue", *ids) == ["accepted"] * 10


def test_every_record_of_a_batch_ends_as_it_would_alone(
    polyv_queue: Any, sandbox: ProviderSandbox, dead_letter_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTA_LIMITS", "phone_per_minute=0,phone_per_hour=0,phone_per_day=1")
    runtime.reset()
    # Before the batch: one message sent (it comes again in the batch) and one number's day used up
    assert polyv_queue(sqs_event(("r-sent", polyv_message(phone(1))), ("r-before", polyv_message(phone(2))))) == []
    sandbox.add_fault(Fault(kind="code", operation="polyv.send", phone=phone(3), code=11, times=1))
    batch = sqs_event(
        ("r-sent", polyv_message(phone(1))),  # a redelivery: replayed, not sent
        ("r-quota", polyv_message(phone(2))),  # its number's day is used up: final, acknowledged
        ("r-retry", polyv_message(phone(3))),  # the provider says try again: a batch item failure
        ("r-poison", "not JSON"),  # to the dead-letter queue at once
        ("r-ok", polyv_message(phone(4))),
        ("r-key-1", polyv_message(phone(5), idempotencyKey="order-5")),  # one key in two messages:
        ("r-key-2", polyv_message(phone(6), idempotencyKey="order-5")),  # one is held back
        ("r-twice-1", polyv_message(phone(7))),  # one number in two messages, one send a day:
        ("r-twice-2", polyv_message(phone(7))),  # the second is over its quota
    )
    sent_before = len(sandbox.calls)

    failed = polyv_queue(batch)

    assert failed == ["r-retry"]
    # One key in two messages with other bodies: the first to claim it sends, the other is poison
    [key_poison] = [i for i in ("r-key-1", "r-key-2") if log_record("queue", i)[0] == 200]
    assert log_record("queue", key_poison)[1]["error"]["code"] == "invalid_message"
    winner = phone(6) if key_poison == "r-key-1" else phone(5)
    new = [call.phones for call in sandbox.calls[sent_before:]]
    assert sorted(p for phones in new for p in phones) == sorted([phone(3), phone(4), winner, phone(7)])
    assert statuses("queue", "r-sent", "r-quota", "r-ok", "order-5") == [
        "accepted",
        "quota_exceeded",
        "accepted",
        "accepted",
    ]
    assert sorted(statuses("queue", "r-twice-1", "r-twice-2")) == ["accepted", "quota_exceeded"]
    assert log_record("queue", "r-poison")[1]["error"]["code"] == "invalid_message"
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead_letters(dead_letter_queue))
    assert reasons == ["the idempotencyKey was used with another message body", "the message body is not JSON"]

    # The provider's retry delivered again goes out; nothing else does
    assert polyv_queue(sqs_event(("r-retry", polyv_message(phone(3))), receive_count=2)) == []
    assert [call.phones for call in sandbox.calls[sent_before + len(new) :]] == [[phone(3)]]
    assert statuses("queue", "r-retry") == ["accepted"]


def test_records_of_two_tenants_each_count_against_their_own(
    polyv_queue: Any, sandbox: ProviderSandbox, tables: Any, dynamodb_url: str
) -> None:
    event = sqs_event(*[(f"t-{i}", polyv_message(phone(i), tenant=f"shop-{i % 2}")) for i in range(6)])

    assert polyv_queue(event) == []

    items = dynamodb_client(dynamodb_url).scan(TableName=tables.quota)["Items"]
    accounts = {i["pk"]["S"].split("#")[0]: int(i["used"]["N"]) for i in items if "#account#" in i["pk"]["S"]}
    assert accounts == {"shop-0": 3, "shop-1": 3}
    assert statuses("shop-0", "t-0", "t-2", "t-4") == ["accepted"] * 3
    assert statuses("shop-1", "t-1", "t-3", "t-5") == ["accepted"] * 3


class Refused:
    """DynamoDB unreachable (connection refused) for the transactions that claim keys, a given number of times."""

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        claims = model.name == "TransactWriteItems" and b'"Put"' in params["body"]
        if claims and self.times > 0:
            self.times -= 1
            raise EndpointConnectionError(endpoint_url="http://dynamodb.local")


def test_a_batch_whose_quota_round_fails_sends_nothing_and_comes_back(
    polyv_queue: Any, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"f-{i}" for i in range(4)]
    event = sqs_event(*[(ids[i], polyv_message(phone(i))) for i in range(4)])
    # Every try of the batch's one transaction (five: DynamoDB said nothing was done each time)
    runtime.quota_client().meta.events.register("before-call.dynamodb", Refused(5))

    assert sorted(polyv_queue(event)) == ids
    assert sandbox.calls == []

    assert polyv_queue(sqs_event(*[(ids[i], polyv_message(phone(i))) for i in range(4)], receive_count=2)) == []
    assert sorted(sandbox.accepted_phones()) == sorted(phone(i) for i in range(4))
    assert statuses("queue", *ids) == ["accepted"] * 4


def test_ends_written_together_each_meet_their_own_condition(tables: Any, dynamodb_url: str) -> None:
    """Three records' ends in one transaction, one of them no longer holding its key (a later
    attempt took it over): that one is told so, the others are written."""
    from smsgw.idempotency import IdempotencyInProgress, IdempotencyStore, Prior

    client = dynamodb_client(dynamodb_url)
    store = IdempotencyStore(tables.idempotency, expires_after_seconds=3600, client=client)
    claims = []
    for name in ("one", "two", "three"):
        claim, lead = store.claim_lead(f"t#{name}", "digest", request_id=name, numbers=["+8613800138000"], lock_until=1)
        client.transact_write_items(TransactItems=[lead])
        claims.append(claim)
    two = claims[1]
    store.take_over(
        Prior(two.scope, "pending", "digest", two.owner, "two", two.numbers, 1, None),
        numbers=two.numbers,
        lock_until=1,
        request_id="later",
    )

    calls: list[int] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **_: calls.append(len(params["TransactItems"])),
    )
    outcomes: list[Any] = [None] * 3

    def end(index: int) -> None:
        try:
            store.complete(claims[index], {"request_id": claims[index].request_id})
        except Exception as exc:
            outcomes[index] = exc

    batch = gathering.Batch(3, linger=5.0)
    threads = [threading.Thread(target=lambda i=i: _as_member(batch, end, i)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert outcomes[0] is None
    assert outcomes[2] is None
    assert "taken over" in str(outcomes[1])
    states = {item["id"]["S"]: item["state"]["S"] for item in client.scan(TableName=tables.idempotency)["Items"]}
    assert states == {"t#one": "done", "t#two": "pending", "t#three": "done"}
    assert not isinstance(outcomes[1], IdempotencyInProgress)
    # All three in one transaction, cancelled by the second; the two others written again together
    assert calls == [3, 2]


def _as_member(batch: gathering.Batch, work: Any, index: int) -> None:
    with batch.member():
        work(index)
