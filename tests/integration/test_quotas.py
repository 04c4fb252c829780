"""The quota ledger against DynamoDB Local, the real engine."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from smsgw.errors import DependencyUnavailable
from smsgw.quotas import QUOTA_RETRIES, Limits, QuotaLedger, Subject
from tests.support import create_table, dynamodb_client, free_port

SHANGHAI = ZoneInfo("Asia/Shanghai")
SUBJECT = Subject(tenant="tenant-a", provider="polyv", source_ip="203.0.113.7")
OPEN = Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=0, account_per_day=0, ip_per_day=0)


@pytest.fixture
def table(dynamodb_url: str) -> str:
    return create_table(dynamodb_url, "quotas")


Ledger = Callable[..., QuotaLedger]


@pytest.fixture
def ledger(dynamodb_url: str, table: str) -> Ledger:
    def make(limits: Limits, clock: Callable[[], datetime] | None = None) -> QuotaLedger:
        return QuotaLedger(
            table,
            limits,
            client_factory=lambda: dynamodb_client(dynamodb_url, QUOTA_RETRIES.merge(Config(max_pool_connections=50))),
            clock=clock or (lambda: datetime.now(UTC)),
        )

    return make


def concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def test_100_concurrent_requests_for_one_number_grant_exactly_the_daily_limit(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=10, account_per_day=0, ip_per_day=0))

    results = concurrently(100, lambda _: quotas.reserve(SUBJECT, ["13800138000"]))

    granted = [r for r in results if r.granted]
    denied = [r.denied["13800138000"] for r in results if r.denied]
    assert (len(granted), len(denied)) == (10, 90)
    assert {(d.scope, d.period) for d in denied} == {("phone", "day")}


def test_100_concurrent_requests_share_the_account_limit(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=1, phone_per_hour=5, phone_per_day=10, account_per_day=10, ip_per_day=0))

    results = concurrently(100, lambda i: quotas.reserve(SUBJECT, [f"138{i:08d}"]))

    assert sum(len(r.granted) for r in results) == 10
    assert {d.scope for r in results for d in r.denied.values()} == {"account"}


def test_100_concurrent_requests_share_the_ip_limit_across_tenants_ips(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=0, account_per_day=0, ip_per_day=10))

    results = concurrently(100, lambda i: quotas.reserve(SUBJECT, [f"139{i:08d}"]))
    other_ip = quotas.reserve(Subject("tenant-a", "polyv", "198.51.100.1"), ["13700137000"])

    assert sum(len(r.granted) for r in results) == 10
    assert {d.scope for r in results for d in r.denied.values()} == {"ip"}
    assert other_ip.granted, "another source IP has its own allowance"


def test_tenants_and_providers_have_separate_counters(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=1, phone_per_hour=0, phone_per_day=0, account_per_day=0, ip_per_day=0))
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted
    assert quotas.reserve(SUBJECT, ["13800138000"]).denied
    assert quotas.reserve(Subject("tenant-b", "polyv", SUBJECT.source_ip), ["13800138000"]).granted
    assert quotas.reserve(Subject("tenant-a", "ronglian", SUBJECT.source_ip), ["13800138000"]).granted


def test_a_request_larger_than_the_account_allowance_sends_the_first_numbers(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=0, account_per_day=5, ip_per_day=0))
    assert len(quotas.reserve(SUBJECT, ["13000000001", "13000000002"]).granted) == 2

    phones = [f"1310000000{i}" for i in range(5)]
    reservation = quotas.reserve(SUBJECT, phones)

    assert list(reservation.granted) == phones[:3]
    assert set(reservation.denied) == set(phones[3:])
    assert reservation.shared_remaining["account"] == 0
    assert quotas.reserve(SUBJECT, ["13200000000"]).denied, "the allowance is used up, not over-granted"


def test_a_number_refused_by_its_own_limit_gives_back_its_account_unit(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=1, phone_per_hour=0, phone_per_day=0, account_per_day=3, ip_per_day=0))
    quotas.reserve(SUBJECT, ["13800138000"])

    reservation = quotas.reserve(SUBJECT, ["13800138000", "13900139000"])

    assert list(reservation.granted) == ["13900139000"]
    assert reservation.denied["13800138000"].scope == "phone"
    assert reservation.shared_remaining["account"] == 1
    assert quotas.reserve(SUBJECT, ["13700137000"]).granted


def test_remaining_allowance_is_reported(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=5, phone_per_day=10, account_per_day=100, ip_per_day=50))
    first = quotas.reserve(SUBJECT, ["13800138000"])
    second = quotas.reserve(SUBJECT, ["13800138000"])
    assert (first.remaining["13800138000"], second.remaining["13800138000"]) == (4, 3)
    assert second.shared_remaining == {"account": 98, "ip": 48}


def test_refund_gives_every_unit_back(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=1, phone_per_hour=5, phone_per_day=10, account_per_day=1, ip_per_day=1))
    reservation = quotas.reserve(SUBJECT, ["13800138000"])
    assert quotas.reserve(SUBJECT, ["13800138000"]).denied

    quotas.refund(reservation, ["13800138000"])

    again = quotas.reserve(SUBJECT, ["13800138000"])
    assert again.granted
    assert again.remaining["13800138000"] == 0
    assert again.shared_remaining == {"account": 0, "ip": 0}


def test_day_rolls_over_at_midnight_in_the_configured_zone(ledger: Ledger) -> None:
    now = [datetime(2026, 11, 22, 23, 59, 30, tzinfo=SHANGHAI)]
    quotas = ledger(
        Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=2, account_per_day=0, ip_per_day=0), lambda: now[0]
    )
    quotas.reserve(SUBJECT, ["13800138000"])
    quotas.reserve(SUBJECT, ["13800138000"])
    refused = quotas.reserve(SUBJECT, ["13800138000"]).denied["13800138000"]
    assert refused.retry_after == 31

    now[0] = datetime(2026, 11, 23, 0, 0, 0, tzinfo=SHANGHAI)
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted


def test_utc_midnight_is_not_the_providers_midnight(ledger: Ledger) -> None:
    now = [datetime(2026, 11, 22, 23, 59, 30, tzinfo=UTC)]
    quotas = ledger(
        Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0), lambda: now[0]
    )
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted
    now[0] = datetime(2026, 11, 23, 0, 0, 30, tzinfo=UTC)  # 08:00 in Shanghai, the same day there
    assert quotas.reserve(SUBJECT, ["13800138000"]).denied


def test_an_expired_counter_that_ttl_has_not_deleted_does_not_count(
    ledger: Ledger, dynamodb_url: str, table: str
) -> None:
    now = [datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)]
    quotas = ledger(
        Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0), lambda: now[0]
    )
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted
    now[0] = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)

    [stale] = dynamodb_client(dynamodb_url).scan(TableName=table)["Items"]
    assert int(stale["expires_at"]["N"]) < now[0].timestamp(), "expired, but still in the table"
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted


def test_counters_carry_a_ttl_at_the_end_of_their_window(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    now = datetime(2026, 11, 22, 10, 30, 15, tzinfo=SHANGHAI)
    quotas = ledger(
        Limits(phone_per_minute=1, phone_per_hour=0, phone_per_day=0, account_per_day=0, ip_per_day=0), lambda: now
    )
    quotas.reserve(SUBJECT, ["13800138000"])
    [item] = dynamodb_client(dynamodb_url).scan(TableName=table)["Items"]
    window_end = datetime(2026, 11, 22, 10, 31, tzinfo=SHANGHAI).timestamp()
    assert window_end <= int(item["expires_at"]["N"]) <= window_end + 600


def test_dynamodb_unreachable_is_dependency_unavailable(table: str) -> None:
    quotas = QuotaLedger(table, Limits(), client_factory=lambda: dynamodb_client(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(DependencyUnavailable):
        quotas.reserve(SUBJECT, ["13800138000"])


def test_open_limits_make_no_calls(ledger: Ledger) -> None:
    quotas = ledger(OPEN)
    assert quotas.windows(SUBJECT, "13800138000") == []
    assert list(quotas.reserve(SUBJECT, ["13800138000"]).granted) == ["13800138000"]


def test_a_request_of_many_numbers_takes_each_numbers_windows_in_one_item(
    ledger: Ledger, dynamodb_url: str, table: str
) -> None:
    now = datetime(2026, 11, 22, 10, 30, 15, tzinfo=SHANGHAI)
    quotas = ledger(
        Limits(phone_per_minute=1, phone_per_hour=5, phone_per_day=10, account_per_day=0, ip_per_day=0), lambda: now
    )
    phones = [f"138{i:08d}" for i in range(3)]

    reservation = quotas.reserve(SUBJECT, phones)
    reservation.wait_for_counts()

    assert list(reservation.granted) == phones
    # Read back after the transaction: the minute's 1 of 1 is the tightest
    assert reservation.remaining == dict.fromkeys(phones, 0)
    items = dynamodb_client(dynamodb_url).scan(TableName=table)["Items"]
    assert len(items) == 3
    for item in items:
        assert {k: v["N"] for k, v in item.items() if k not in {"pk", "expires_at"}} == {
            "m1030": "1",
            "h10": "1",
            "d": "1",
        }
        assert item["pk"]["S"].endswith("#20261122")
        assert "138" not in item["pk"]["S"], "the number is digested"


def test_numbers_refused_by_their_own_limits_leave_the_others_granted(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=2, account_per_day=0, ip_per_day=0))
    phones = [f"139{i:08d}" for i in range(150)]
    used_up = phones[10:12] + phones[120:121]
    for _ in range(2):
        assert set(quotas.reserve(SUBJECT, used_up).granted) == set(used_up)

    reservation = quotas.reserve(SUBJECT, phones)
    reservation.wait_for_counts()

    assert set(reservation.denied) == set(used_up)
    assert {(d.scope, d.period) for d in reservation.denied.values()} == {("phone", "day")}
    assert list(reservation.granted) == [p for p in phones if p not in used_up]
    assert set(reservation.remaining.values()) == {1}
    # Each granted number holds one unit: a second request takes the last, a third none
    assert len(quotas.reserve(SUBJECT, phones).granted) == 147
    assert not quotas.reserve(SUBJECT, phones).granted


def test_concurrent_requests_sharing_numbers_grant_each_number_exactly_its_limit(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=3, account_per_day=0, ip_per_day=0))
    phones = [f"137{i:08d}" for i in range(20)]

    # 30 requests of 10 numbers each, overlapping: transactions conflict and refuse one another
    results = concurrently(30, lambda i: quotas.reserve(SUBJECT, [phones[(i + k) % 20] for k in range(10)]))

    granted = Counter(p for r in results for p in r.granted)
    assert granted == dict.fromkeys(phones, 3)
    assert sum(len(r.denied) for r in results) == 30 * 10 - 20 * 3


def test_refunding_numbers_granted_together_gives_their_units_back(ledger: Ledger) -> None:
    quotas = ledger(Limits(phone_per_minute=1, phone_per_hour=5, phone_per_day=10, account_per_day=3, ip_per_day=0))
    phones = ["13800138000", "13900139000", "13700137000"]
    reservation = quotas.reserve(SUBJECT, phones)
    reservation.wait_for_counts()
    assert reservation.remaining == dict.fromkeys(phones, 0)

    quotas.refund(reservation, phones[:2])

    # A refunded number's report counts its unit back
    assert reservation.remaining == {phones[0]: 1, phones[1]: 1, phones[2]: 0}
    assert reservation.shared_remaining == {"account": 2}
    again = quotas.reserve(SUBJECT, phones)
    assert list(again.granted) == phones[:2]
    assert again.denied[phones[2]].period == "minute"


def test_a_failed_read_back_loses_only_the_report(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    quotas = ledger(Limits(phone_per_minute=1, phone_per_hour=0, phone_per_day=0, account_per_day=0, ip_per_day=0))
    phones = ["13800138000", "13900139000"]
    real = quotas.client
    calls: list[str] = []

    class NoBatchGet:
        """DynamoDB Local, except that the read-back finds it gone."""

        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            if name == "batch_get_item":
                return dynamodb_client(f"http://127.0.0.1:{free_port()}").batch_get_item
            return getattr(real, name)

    quotas._client = NoBatchGet()

    reservation = quotas.reserve(SUBJECT, phones)
    reservation.wait_for_counts()

    assert list(reservation.granted) == phones
    assert reservation.remaining == {}
    assert "transact_write_items" in calls
    assert "batch_get_item" in calls


class _Answer:
    """A DynamoDB error answer, as the HTTP layer would hand it to botocore."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()

    def stream(self, **_: Any) -> Any:
        yield self.body


def answer_conflicts(client: Any, operation: str, answers: list[dict[str, Any]]) -> list[str]:
    """DynamoDB Local serialises transactions, so it never reports a conflict: the first calls of
    `operation` get these answers instead (status 400), the rest reach the engine. Returns the log
    of the operation's calls, as "answered" or "sent"."""
    calls: list[str] = []

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        if not answers:
            calls.append("sent")
            return None
        calls.append("answered")
        headers = {"x-amzn-requestid": "conflict", "content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 400, headers, _Answer(answers.pop(0)))

    client.meta.events.register(f"before-send.dynamodb.{operation}", before_send)
    return calls


def cancelled(*codes: str) -> dict[str, Any]:
    return {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{','.join(codes)}]",
        "CancellationReasons": [{"Code": code} for code in codes],
    }


CONFLICT = {
    "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
    "message": "Transaction is ongoing for the item",
}


def day_counts(dynamodb_url: str, table: str) -> list[str]:
    items = dynamodb_client(dynamodb_url).scan(TableName=table)["Items"]
    return sorted(item["d"]["N"] for item in items if "d" in item)


def test_a_transaction_cancelled_by_a_conflict_is_made_again(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0))
    phones = ["13800138000", "13900139000", "13700137000"]
    calls = answer_conflicts(quotas.client, "TransactWriteItems", [cancelled("None", "TransactionConflict", "None")])

    reservation = quotas.reserve(SUBJECT, phones)

    assert list(reservation.granted) == phones
    assert calls == ["answered", "sent"]
    assert day_counts(dynamodb_url, table) == ["1", "1", "1"], "taken once each, not twice"


def test_a_number_refused_beside_a_conflict_is_refused_and_the_rest_taken(
    ledger: Ledger, dynamodb_url: str, table: str
) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0))
    phones = ["13800138000", "13900139000", "13700137000"]
    assert quotas.reserve(SUBJECT, phones[:1]).granted
    calls = answer_conflicts(quotas.client, "TransactWriteItems", [cancelled("TransactionConflict", "None", "None")])

    reservation = quotas.reserve(SUBJECT, phones)

    # The conflict told nothing of the first number: the engine, asked again, refuses it
    assert list(reservation.granted) == phones[1:]
    assert reservation.denied[phones[0]].period == "day"
    assert calls == ["answered", "sent", "sent"]
    assert day_counts(dynamodb_url, table) == ["1", "1", "1"]


def test_transactions_that_keep_conflicting_fall_back_to_one_update_per_number(
    ledger: Ledger, dynamodb_url: str, table: str
) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0))
    phones = ["13800138000", "13900139000"]
    conflicts = [cancelled("TransactionConflict", "TransactionConflict")] * 3
    calls = answer_conflicts(quotas.client, "TransactWriteItems", conflicts)

    reservation = quotas.reserve(SUBJECT, phones)

    assert list(reservation.granted) == phones
    assert calls == ["answered"] * 3
    assert reservation.remaining == dict.fromkeys(phones, 0), "single updates return their counts"
    assert day_counts(dynamodb_url, table) == ["1", "1"]


def test_an_update_meeting_a_transaction_in_flight_is_made_again(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0))
    calls = answer_conflicts(quotas.client, "UpdateItem", [CONFLICT, CONFLICT])

    reservation = quotas.reserve(SUBJECT, ["13800138000"])

    assert list(reservation.granted) == ["13800138000"]
    assert calls == ["answered", "answered", "sent"]
    assert day_counts(dynamodb_url, table) == ["1"]


def test_an_update_that_keeps_conflicting_is_dependency_unavailable(
    ledger: Ledger, dynamodb_url: str, table: str
) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0))
    answer_conflicts(quotas.client, "UpdateItem", [CONFLICT] * 10)

    with pytest.raises(DependencyUnavailable):
        quotas.reserve(SUBJECT, ["13800138000"])
    assert day_counts(dynamodb_url, table) == []


def test_a_request_that_fails_partway_gives_back_what_it_took(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=1, account_per_day=10, ip_per_day=10))
    throttled = {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "x"}
    answer_conflicts(quotas.client, "TransactWriteItems", [throttled] * 5)

    with pytest.raises(DependencyUnavailable):
        quotas.reserve(SUBJECT, ["13800138000", "13900139000", "13700137000"])

    # The account and IP units taken beside the failed transaction are back
    items = dynamodb_client(dynamodb_url).scan(TableName=table)["Items"]
    assert sorted(i["used"]["N"] for i in items if "used" in i) == ["0", "0"]
    assert len(quotas.reserve(SUBJECT, ["13600136000"]).granted) == 1


def test_a_number_refused_by_several_windows_waits_for_the_last_to_end(ledger: Ledger) -> None:
    now = datetime(2026, 11, 22, 10, 30, 30, tzinfo=SHANGHAI)
    quotas = ledger(
        Limits(phone_per_minute=1, phone_per_hour=0, phone_per_day=1, account_per_day=0, ip_per_day=0), lambda: now
    )
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted

    denial = quotas.reserve(SUBJECT, ["13800138000"]).denied["13800138000"]

    assert (denial.period, denial.retry_after) == ("day", 13 * 3600 + 29 * 60 + 30 + 1)  # to midnight


INTERNAL_ERROR = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal server error"}
THROTTLED = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate exceeded"}


def lose_answers(client: Any, operation: str, count: int, how: str) -> list[bytes]:
    """The first `count` calls of `operation` reach the engine and are carried out, but their
    answer is lost on the way back: a 500, or a read timeout. Returns every call's request body."""
    bodies: list[bytes] = []

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        bodies.append(body)
        if len(bodies) > count:
            return None
        carried_out = requests.post(request.url, data=body, headers=dict(request.headers), timeout=5)
        assert carried_out.status_code == 200
        if how == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        headers = {"x-amzn-requestid": "lost", "content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 500, headers, _Answer(INTERNAL_ERROR))

    client.meta.events.register(f"before-send.dynamodb.{operation}", before_send)
    return bodies


@pytest.mark.parametrize("how", ["500", "timeout"])
def test_an_update_whose_answer_is_lost_is_not_made_again(
    ledger: Ledger, dynamodb_url: str, table: str, how: str
) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=5, account_per_day=0, ip_per_day=0))
    bodies = lose_answers(quotas.client, "UpdateItem", 1, how)

    with pytest.raises(DependencyUnavailable):
        quotas.reserve(SUBJECT, ["13800138000"])

    # The unit that may have been taken stays taken: counted once, never twice
    assert len(bodies) == 1
    assert day_counts(dynamodb_url, table) == ["1"]


@pytest.mark.parametrize("how", ["500", "timeout"])
def test_a_transaction_whose_answer_is_lost_is_made_again_and_applied_once(
    ledger: Ledger, dynamodb_url: str, table: str, how: str
) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=5, account_per_day=0, ip_per_day=0))
    phones = ["13800138000", "13900139000", "13700137000"]
    bodies = lose_answers(quotas.client, "TransactWriteItems", 1, how)

    reservation = quotas.reserve(SUBJECT, phones)

    assert list(reservation.granted) == phones
    assert len(bodies) == 2
    tokens = {json.loads(body)["ClientRequestToken"] for body in bodies}
    assert len(tokens) == 1, "made again with its token"
    assert day_counts(dynamodb_url, table) == ["1", "1", "1"]


def test_a_lost_give_back_is_not_made_again(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=5, account_per_day=0, ip_per_day=0))
    first = quotas.reserve(SUBJECT, ["13800138000"])
    assert quotas.reserve(SUBJECT, ["13800138000"]).granted
    bodies = lose_answers(quotas.client, "UpdateItem", 1, "500")

    assert not quotas.refund(first, ["13800138000"]), "not given back: still counted"

    assert first.remaining == {"13800138000": 4}, "and reported as counted"
    assert len(bodies) == 1
    assert day_counts(dynamodb_url, table) == ["1"], "given back once, not twice"


def test_throttled_calls_are_made_again(ledger: Ledger, dynamodb_url: str, table: str) -> None:
    quotas = ledger(Limits(phone_per_minute=0, phone_per_hour=0, phone_per_day=5, account_per_day=10, ip_per_day=0))
    updates = answer_conflicts(quotas.client, "UpdateItem", [THROTTLED, THROTTLED])
    transactions = answer_conflicts(quotas.client, "TransactWriteItems", [THROTTLED])

    assert list(quotas.reserve(SUBJECT, ["13800138000"]).granted) == ["13800138000"]
    assert len(quotas.reserve(SUBJECT, ["13900139000", "13700137000"]).granted) == 2

    assert updates[:2] == ["answered", "answered"]
    assert transactions == ["answered", "sent"]
    assert day_counts(dynamodb_url, table) == ["1", "1", "1"]
    items = dynamodb_client(dynamodb_url).scan(TableName=table)["Items"]
    assert [i["used"]["N"] for i in items if "used" in i] == ["3"]


def test_the_ledgers_client_does_not_retry_by_itself() -> None:
    # Any retry of botocore's own would send an ADD again after a lost answer
    assert QUOTA_RETRIES.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_a_block_closed_in_the_last_minute_of_an_hour_stays_closed_in_the_next(ledger: Ledger) -> None:
    from smsgw.quota_windows import Scope, window_of

    clock = [datetime(2026, 12, 1, 10, 59, 30, tzinfo=UTC)]
    quotas = ledger(Limits(0, 0, 0, 0, 0, timezone="UTC"), clock=lambda: clock[0])
    subject = Subject(tenant="t", provider="polyv", source_ip=None)

    def guard(numbers: list[str]) -> list[Any]:
        window = window_of("guard", "hour", "t#block#86-1380013", 2, clock[0], zone="UTC", cooldown=600)
        return [Scope(window, dict.fromkeys(numbers, 1))]

    walk = [f"+861380013000{i}" for i in range(3)]
    first = quotas.reserve(subject, walk, scopes=guard(walk))
    assert (sorted(first.granted), sorted(first.denied)) == (walk[:2], walk[2:])
    clock[0] = datetime(2026, 12, 1, 11, 0, 5, tzinfo=UTC)  # a new hour, a fresh counter: still closed
    later = quotas.reserve(subject, ["+8613800130009"], scopes=guard(["+8613800130009"]))
    assert later.granted == {}
    assert later.denied["+8613800130009"].scope == "guard"
