"""The abuse rules on a local stack, through the provider routes as deployed: a number opted out by
the tenant's admin key reaches no provider, a country the tenant does not send to is refused at
once, the pumping guard stops a walk through a number block among concurrent ordinary traffic, the
day's budget holds under concurrent requests, and conversion feedback moves its metric once per
number, as the functions' EMF output shows it."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local.sandbox import ProviderSandbox
from local.stack import LocalStack
from tests.e2e.conftest import ABUSE_ADMIN_KEY, ABUSE_KEYS, FunctionLog

pytestmark = pytest.mark.e2e

KEY = next(iter(ABUSE_KEYS.values()))
DEFAULT_BLOCK_PER_HOUR = 20
# Clients at once: many more than the functions' workers, so that requests queue and race.
CLIENTS = 24
# The tenant's rules: Hong Kong and Macao beside the mainland, and a day's budget that of the routes
# used here only SendInterSms spends (Aliyun's SendBatchSms costs nothing): the budget's test alone.
DAILY_LIMIT = 1000
PRICES = {"HK": 40, "MO": 25}
RULES: dict[str, Any] = {
    "allowed_countries": ["CN", "HK", "MO"],
    "budget": {
        "daily_limit": DAILY_LIMIT,
        "prices": {"aliyun": 0, **{f"aliyun.SendInterSms.{country}": price for country, price in PRICES.items()}},
    },
}


@pytest.fixture(scope="module")
def rules(abuse_stack: LocalStack) -> dict[str, Any]:
    """The tenant's rules, put with its admin key before the module's first send: a function keeps
    a tenant's rules for a minute, and rules put after it read them would reach it that much later."""
    answer = admin(abuse_stack, "PUT", "/v1/rules", RULES)
    assert answer.status_code == 200, answer.text
    saved: dict[str, Any] = admin(abuse_stack, "GET", "/v1/rules").json()
    assert saved["allowed_countries"] == RULES["allowed_countries"]
    assert saved["budget"] == {**RULES["budget"], "default_price": 10}
    return saved


@pytest.fixture
def sandbox(abuse_stack: LocalStack, rules: dict[str, Any]) -> Iterator[ProviderSandbox]:
    assert abuse_stack.sandbox is not None
    abuse_stack.sandbox.reset()
    yield abuse_stack.sandbox
    abuse_stack.sandbox.reset()


def batch(stack: LocalStack, *numbers: str) -> requests.Response:
    body = {
        "template_code": "SMS_000002",
        "sign_name": "SmsGateway",
        "messages": [{"phone_number": n, "template_param": {"code": "123456"}} for n in numbers],
    }
    return requests.post(f"{stack.api_url}/v1/aliyun/batch-messages", json=body, headers={"x-api-key": KEY}, timeout=30)


def inter(stack: LocalStack, country: str, number: str) -> requests.Response:
    body = {"phone_numbers": [number], "country_code": country, "sign_name": "SmsGateway", "template_code": "SMS_1"}
    return requests.post(f"{stack.api_url}/v1/aliyun/messages", json=body, headers={"x-api-key": KEY}, timeout=30)


def statuses(answer: requests.Response) -> dict[str, str]:
    return {r["phone_number"]: r["status"] for r in answer.json()["results"]}


def only_status(answer: requests.Response) -> str:
    [status] = statuses(answer).values()
    return status


def admin(stack: LocalStack, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, f"{stack.api_url}{path}", json=body, headers={"x-api-key": ABUSE_ADMIN_KEY}, timeout=30
    )


def concurrently[T](work: Callable[[T], requests.Response], items: Sequence[T]) -> list[requests.Response]:
    """One request per item, CLIENTS at a time, in the order given; the answers in the same order."""
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(work, items))


def shuffled[T](*groups: Sequence[T]) -> list[T]:
    """The groups' items interleaved, as traffic from many clients arrives (the same order every run)."""
    items = [item for group in groups for item in group]
    random.Random(20_260_101).shuffle(items)
    return items


def in_one_window(stack: LocalStack, period: str, margin: float = 60.0) -> None:
    """Wait for the next hour (or day) of the quotas' time zone if this one ends within `margin`
    seconds, longer than any traffic here takes: the guard counts by the hour and the budget by the
    day, and traffic across the turn would be counted in two windows."""
    now = datetime.now(ZoneInfo(stack.template.parameters["QuotaTimeZone"]))
    if period == "hour":
        turn = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        turn = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if (turn - now).total_seconds() < margin:
        time.sleep((turn - now).total_seconds() + 1)


def wire(e164: str) -> str:
    """A number as the sandbox records it: a mainland one national, any other without its `+`."""
    return e164.removeprefix("+86") if e164.startswith("+861") else e164.removeprefix("+")


def test_a_number_opted_out_by_the_admin_key_reaches_no_provider(
    abuse_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    opted_out = admin(abuse_stack, "PUT", "/v1/opt-outs/13812340001")
    refused = requests.put(f"{abuse_stack.api_url}/v1/opt-outs/13812340001", headers={"x-api-key": KEY}, timeout=30)

    answer = batch(abuse_stack, "13812340001", "13812340002")

    assert (opted_out.status_code, opted_out.json()) == (200, {"phone_number": "+8613812340001", "opted_out": True})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "admin_key_required")
    assert answer.status_code == 200
    assert statuses(answer) == {"+8613812340001": "opted_out", "+8613812340002": "accepted"}
    assert answer.json()["summary"]["opted_out"] == 1
    assert [call.phones for call in sandbox.calls_for("aliyun.SendBatchSms")] == [["13812340002"]]

    # Opted back in, it is sent to again
    assert admin(abuse_stack, "DELETE", "/v1/opt-outs/13812340001").status_code == 204
    assert admin(abuse_stack, "GET", "/v1/opt-outs/13812340001").json()["error"]["code"] == "not_opted_out"
    assert statuses(batch(abuse_stack, "13812340001")) == {"+8613812340001": "accepted"}


def test_a_country_the_tenant_does_not_send_to_is_refused_before_any_provider_call(
    abuse_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    body = {"phone_numbers": ["7400123456"], "country_code": "GB", "sign_name": "SmsGateway", "template_code": "SMS_1"}
    url = f"{abuse_stack.api_url}/v1/aliyun/messages"

    answer = requests.post(url, json=body, headers={"x-api-key": KEY}, timeout=30)

    assert answer.status_code == 200
    assert statuses(answer) == {"+447400123456": "country_not_allowed"}
    assert answer.json()["summary"]["country_not_allowed"] == 1
    assert sandbox.calls == []


def test_the_guard_stops_a_walk_through_a_number_block(abuse_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    walk = [f"1390000{n:04d}" for n in range(DEFAULT_BLOCK_PER_HOUR + 5)]
    in_one_window(abuse_stack, "hour")

    first = batch(abuse_stack, *walk)
    then = batch(abuse_stack, "13900009999")

    got = statuses(first)
    assert list(got.values()).count("accepted") == DEFAULT_BLOCK_PER_HOUR
    assert list(got.values()).count("blocked_by_guard") == 5
    assert sum(len(call.accepted_phones) for call in sandbox.calls) == DEFAULT_BLOCK_PER_HOUR
    # The block stays closed for its cool-down: a number of it alone is told to wait
    assert then.status_code == 429
    assert then.json()["error"]["code"] == "blocked_by_guard"
    assert int(then.headers["Retry-After"]) > 0
    assert statuses(then) == {"+8613900009999": "blocked_by_guard"}


# A script walking a range: 500 numbers of one block (86-1371234).
WALK = [f"+861371234{n:04d}" for n in range(500)]
# People logging in: 500, five to each of 100 blocks (86-1350000 to 86-1350099), under the guard's 20.
USERS = [f"+86135{block:04d}{user:04d}" for block in range(100) for user in range(5)]
# Opted out by the tenant's admin key beforehand, in a block of their own.
OPTED_OUT = [f"+861367777{n:04d}" for n in range(10)]
# Countries the tenant does not send to (its rules name CN, HK and MO).
FOREIGN = [
    "+447400123456",
    "+447400123457",
    "+12025550123",
    "+12025550124",
    "+4915112345678",
    "+4915112345679",
    "+819012345678",
    "+819012345679",
    "+33612345678",
    "+33612345679",
    "+61412345678",
    "+61412345679",
]


def test_a_walk_through_a_block_is_stopped_while_ordinary_users_all_get_their_codes(
    abuse_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    opted = concurrently(lambda n: admin(abuse_stack, "PUT", f"/v1/opt-outs/{n}"), OPTED_OUT)
    assert {a.status_code for a in opted} == {200}
    log = FunctionLog(abuse_stack)
    traffic = shuffled(WALK, USERS, OPTED_OUT, FOREIGN)
    in_one_window(abuse_stack, "hour")

    answers = dict(zip(traffic, concurrently(lambda n: batch(abuse_stack, n), traffic), strict=True))

    got = {n: only_status(answer) for n, answer in answers.items()}
    assert Counter(got[n] for n in WALK) == {
        "accepted": DEFAULT_BLOCK_PER_HOUR,
        "blocked_by_guard": len(WALK) - DEFAULT_BLOCK_PER_HOUR,
    }
    assert Counter(got[n] for n in USERS) == {"accepted": len(USERS)}
    assert Counter(got[n] for n in OPTED_OUT) == {"opted_out": len(OPTED_OUT)}
    assert Counter(got[n] for n in FOREIGN) == {"country_not_allowed": len(FOREIGN)}
    # A request whose only number the guard stopped is told to come back; the others are answered
    stopped = [answers[n] for n in WALK if got[n] != "accepted"]
    assert {(a.status_code, a.json()["error"]["code"]) for a in stopped} == {(429, "blocked_by_guard")}
    assert all(int(a.headers["Retry-After"]) > 0 for a in stopped)
    assert {answers[n].status_code for n in traffic if got[n] != "blocked_by_guard"} == {200}

    # One provider call for each accepted number and for nothing else
    accepted = [n for n in traffic if got[n] == "accepted"]
    assert len(accepted) == len(USERS) + DEFAULT_BLOCK_PER_HOUR
    assert len(sandbox.calls) == len(accepted)
    assert sorted(p for call in sandbox.calls for p in call.phones) == sorted(wire(n) for n in accepted)
    assert sorted(p for call in sandbox.calls for p in call.accepted_phones) == sorted(wire(n) for n in accepted)
    called = {p for call in sandbox.calls for p in call.phones}
    assert called.isdisjoint(wire(n) for n in OPTED_OUT + FOREIGN)

    # The guard closed the walked block, and no block of the users
    assert {line["guard"] for line in log.logged("guard closed")} == {"block#86-1371234"}
    assert set(log.total("guard_closed", by="guard")) == {"block"}
    assert log.total("accepted", by="block")["86-1371234"] == DEFAULT_BLOCK_PER_HOUR


# Handsets in Hong Kong and Macao, each in a block of its own; their national numbers differ.
ABROAD = {
    **{f"+85261{n:02d}{n:04d}": "HK" for n in range(100)},
    **{f"+85362{n:02d}{n:04d}": "MO" for n in range(100)},
}


def test_200_concurrent_requests_never_spend_past_the_days_budget(
    abuse_stack: LocalStack, sandbox: ProviderSandbox, rules: dict[str, Any]
) -> None:
    assert rules["budget"]["daily_limit"] == DAILY_LIMIT
    # SendInterSms takes, and the sandbox records, a number as its country's national number
    national = {n: n[4:] for n in ABROAD}
    price_of = {national[n]: PRICES[country] for n, country in ABROAD.items()}
    traffic = shuffled(list(ABROAD))
    in_one_window(abuse_stack, "day")

    answers = dict(
        zip(traffic, concurrently(lambda n: inter(abuse_stack, ABROAD[n], national[n]), traffic), strict=True)
    )

    got = {n: only_status(answer) for n, answer in answers.items()}
    assert set(got.values()) == {"accepted", "budget_exceeded"}
    refused = [answers[n] for n in traffic if got[n] == "budget_exceeded"]
    assert {(a.status_code, a.json()["error"]["code"]) for a in refused} == {(429, "budget_exceeded")}
    assert all(int(a.headers["Retry-After"]) > 0 for a in refused)
    spent = sum(price_of[p] for call in sandbox.calls for p in call.accepted_phones)
    # Never past the limit, by even one message; and nothing refused while a message's price was left
    assert DAILY_LIMIT - max(PRICES.values()) < spent <= DAILY_LIMIT
    accepted = [n for n in traffic if got[n] == "accepted"]
    assert sorted(p for call in sandbox.calls for p in call.accepted_phones) == sorted(national[n] for n in accepted)
    assert sorted(p for call in sandbox.calls for p in call.phones) == sorted(national[n] for n in accepted)


def test_feedback_moves_the_conversion_metric_of_its_country_and_block_once_per_number(
    abuse_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    cn = [f"+861355555{n:04d}" for n in range(6)]
    hk = ["+85291234567", "+85291234568"]
    log = FunctionLog(abuse_stack)
    sent = batch(abuse_stack, *cn, *hk)
    assert statuses(sent) == dict.fromkeys(cn + hk, "accepted")
    accepted = {"block": log.total("accepted", by="block"), "country": log.total("accepted", by="country")}
    before = {"block": log.total("converted", by="block"), "country": log.total("converted", by="country")}

    def feedback(number: str, converted: bool) -> requests.Response:
        url = f"{abuse_stack.api_url}/v1/messages/{sent.json()['request_id']}/feedback"
        body = {"phone_number": number, "converted": converted}
        return requests.post(url, json=body, headers={"x-api-key": KEY}, timeout=30)

    given = [
        feedback(cn[0], True),
        feedback(cn[1], True),
        feedback(cn[2].removeprefix("+86"), True),
        feedback(cn[0], True),  # again: once per number
        feedback(cn[3], False),
        feedback(cn[4], False),
        feedback(cn[4], True),  # used late: counted now
        feedback(cn[4], False),  # a conversion is never taken back
        feedback(hk[0], True),
        feedback(hk[1], False),
    ]
    after = {"block": log.total("converted", by="block"), "country": log.total("converted", by="country")}
    stranger = feedback("13555559999", True)

    assert {answer.status_code for answer in given} == {200}
    recorded = [answer.json()["recorded"] for answer in given]
    assert recorded == [True, True, True, False, True, True, True, False, True, True]
    assert given[2].json()["phone_number"] == cn[2]
    assert accepted == {"block": {"86-1355555": 6, "852-9123456": 2}, "country": {"CN": 6, "HK": 2}}
    assert before == {"block": {}, "country": {}}
    assert after == {"block": {"86-1355555": 4, "852-9123456": 1}, "country": {"CN": 4, "HK": 1}}
    # A number the request did not send to takes no feedback, and moves nothing
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "number_not_in_request")
    assert log.total("converted", by="block") == after["block"]
