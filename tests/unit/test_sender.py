"""The send flow on in-memory fakes of its ports: every failure point of docs/delivery.md, fast,
with no socket opened (the same rows run on DynamoDB Local in tests/integration/test_send_once.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from smsgw.clock import Budget
from smsgw.errors import DependencyUnavailable
from smsgw.idempotency import IdempotencyInProgress, IdempotencyKeyReused
from smsgw.models import PolyvSendRequest
from smsgw.outcomes import Status
from smsgw.providers.base import ProviderClient
from smsgw.providers.polyv import PolyvClient
from smsgw.sender import Key, Sender, resend_if_nothing_sent, resend_retryable
from smsgw.service import Caller, Operation
from tests.unit.fakes import MemoryLog, MemoryRecords, ScriptedSends


def _no_client(*_: object) -> ProviderClient[Any]:
    raise AssertionError("the send is scripted: no provider client is made")


POLYV = Operation("polyv", PolyvClient.operation, _no_client)
A, B = "+8613800138000", "+8613900139000"


def request(*phones: str, code: str = "1") -> PolyvSendRequest:
    return PolyvSendRequest(phone_numbers=list(phones), template_param_names=["c"], template_param_values=[code])


def caller(request_id: str = "req-1") -> Caller:
    return Caller(request_id=request_id, tenant="shop", source_ip="203.0.113.7", received_at=datetime.now(UTC))


def budget() -> Budget:
    return Budget.of(send_within=8, done_within=25)


@pytest.fixture
def sends() -> ScriptedSends:
    return ScriptedSends()


@pytest.fixture
def records() -> MemoryRecords:
    return MemoryRecords()


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def sender(sends: ScriptedSends, records: MemoryRecords, log: MemoryLog) -> Sender:
    return Sender(sends, records, log)


API_KEY = Key(route="polyv.sms/send", value="k-1", resend=resend_if_nothing_sent)
QUEUE_KEY = Key(route="queue.polyv.sms/send", value="m-1", resend=resend_retryable)


def test_a_handset_given_twice_is_sent_once_and_answered_twice(sender: Sender, sends: ScriptedSends) -> None:
    sent = sender.send(POLYV, request("13800138000", "+8613800138000", B), caller(), budget(), None)

    assert sends.sent == [A, B]
    assert [r.phone_number for r in sent.response.results] == [A, A, B]
    assert {r.status for r in sent.response.results} == {Status.ACCEPTED}


def test_without_a_key_a_lost_record_keeps_the_results_and_says_so(
    sender: Sender, log: MemoryLog, sends: ScriptedSends
) -> None:
    log.failing = True

    sent = sender.send(POLYV, request(A), caller(), budget(), None)

    assert not sent.recorded
    assert sent.response.warning is not None
    assert sent.response.warning.code == "record_incomplete"
    assert sent.response.results[0].status is Status.ACCEPTED


def test_a_key_replays_its_answer_without_sending_again(sender: Sender, sends: ScriptedSends) -> None:
    first = sender.send(POLYV, request(A), caller("req-1"), budget(), API_KEY)
    again = sender.send(POLYV, request(A), caller("req-2"), budget(), API_KEY)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.response.request_id == "req-1"
    assert sends.sent == [A]


def test_another_body_with_the_key_is_refused(sender: Sender) -> None:
    sender.send(POLYV, request(A), caller(), budget(), API_KEY)
    with pytest.raises(IdempotencyKeyReused):
        sender.send(POLYV, request(A, code="2"), caller("req-2"), budget(), API_KEY)


def test_a_running_attempt_holds_the_key(sender: Sender, records: MemoryRecords, sends: ScriptedSends) -> None:
    records.failing = {"complete"}
    sender.send(POLYV, request(A), caller(), budget(), API_KEY)

    with pytest.raises(IdempotencyInProgress):
        sender.send(POLYV, request(A), caller("req-2"), budget(), API_KEY)


def test_a_lost_completion_is_settled_ambiguous_and_never_sent_again(
    sender: Sender, records: MemoryRecords, sends: ScriptedSends
) -> None:
    records.failing = {"complete"}
    first = sender.send(POLYV, request(A, B), caller("req-1"), budget(), API_KEY)
    records.failing = set()
    assert first.response.warning is not None
    assert [r.status for r in first.response.results] == [Status.ACCEPTED] * 2

    records.offset = 300  # past the attempt's lock, five minutes on
    settled = sender.send(POLYV, request(A, B), caller("req-2"), budget(), API_KEY)
    replayed = sender.send(POLYV, request(A, B), caller("req-3"), budget(), API_KEY)

    assert [r.status for r in settled.response.results] == [Status.AMBIGUOUS] * 2
    assert settled.response.http_status()[0] == 502
    assert settled.response.request_id == "req-1"
    assert replayed.response == settled.response
    assert sends.sent == [A, B]


def test_a_failure_before_the_provider_gives_the_key_back(
    sender: Sender, records: MemoryRecords, sends: ScriptedSends
) -> None:
    sends.fail_before = DependencyUnavailable("DynamoDB is unavailable")
    with pytest.raises(DependencyUnavailable):
        sender.send(POLYV, request(A), caller(), budget(), API_KEY)
    sends.fail_before = None

    again = sender.send(POLYV, request(A), caller("req-2"), budget(), API_KEY)

    assert (again.replayed, sends.sent) == (False, [A])


def test_a_key_not_given_back_is_never_read_as_unsent(
    sender: Sender, records: MemoryRecords, sends: ScriptedSends
) -> None:
    sends.fail_before = DependencyUnavailable("DynamoDB is unavailable")
    records.failing = {"release"}
    with pytest.raises(DependencyUnavailable):
        sender.send(POLYV, request(A), caller(), budget(), API_KEY)
    sends.fail_before, records.failing, records.offset = None, set(), 60

    later = sender.send(POLYV, request(A), caller("req-2"), budget(), API_KEY)

    assert later.response.results[0].status is Status.AMBIGUOUS
    assert sends.sent == []


def test_an_api_answer_that_sent_nothing_gets_a_real_second_attempt(sender: Sender, sends: ScriptedSends) -> None:
    sends.statuses = {A: Status.RETRYABLE}
    first = sender.send(POLYV, request(A), caller("req-1"), budget(), API_KEY)
    sends.statuses = {}

    second = sender.send(POLYV, request(A), caller("req-2"), budget(), API_KEY)

    assert first.response.http_status()[0] == 502
    assert (second.replayed, second.response.request_id) == (False, "req-2")
    assert second.response.results[0].status is Status.ACCEPTED
    assert sends.sent == [A, A]


def test_an_api_answer_that_may_have_sent_is_replayed(sender: Sender, sends: ScriptedSends) -> None:
    sends.statuses = {A: Status.AMBIGUOUS, B: Status.RETRYABLE}
    sender.send(POLYV, request(A, B), caller("req-1"), budget(), API_KEY)

    again = sender.send(POLYV, request(A, B), caller("req-2"), budget(), API_KEY)

    assert again.replayed
    assert sends.sent == [A, B]


def test_the_queue_sends_again_only_the_retryable_numbers(sender: Sender, sends: ScriptedSends) -> None:
    sends.statuses = {B: Status.RETRYABLE}
    first = sender.send(POLYV, request(A, B), caller("m-1"), budget(), QUEUE_KEY)
    sends.statuses = {}

    second = sender.send(POLYV, request(A, B), caller("m-1"), budget(), QUEUE_KEY)
    third = sender.send(POLYV, request(A, B), caller("m-1"), budget(), QUEUE_KEY)

    assert first.response.numbers(Status.RETRYABLE) == [B]
    assert [r.status for r in second.response.results] == [Status.ACCEPTED, Status.ACCEPTED]
    assert second.response.summary.accepted == 2
    assert third.replayed
    assert sends.sent == [A, B, B]


def test_the_queue_settles_an_unrecorded_retry_without_sending(
    sender: Sender, records: MemoryRecords, sends: ScriptedSends
) -> None:
    sends.statuses = {B: Status.RETRYABLE}
    sender.send(POLYV, request(A, B), caller("m-1"), budget(), QUEUE_KEY)
    sends.statuses = {}
    records.failing = {"complete"}
    assert not sender.send(POLYV, request(A, B), caller("m-1"), budget(), QUEUE_KEY).recorded
    records.failing, records.offset = set(), 60

    settled = sender.send(POLYV, request(A, B), caller("m-1"), budget(), QUEUE_KEY)

    # A from the first attempt stays accepted; B may have gone out in the second
    assert [r.status for r in settled.response.results] == [Status.ACCEPTED, Status.AMBIGUOUS]
    assert sends.sent == [A, B, B]
