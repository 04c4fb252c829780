"""The Ronglian TemplateSMS client against the sandbox over real loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from local.sandbox import Fault, ProviderSandbox
from smsgw.models import RonglianTemplateSmsRequest
from smsgw.outcomes import Status
from smsgw.providers.base import HttpSettings
from smsgw.providers.ronglian import RonglianClient, RonglianCredentials
from tests.support import free_port

OP = "ronglian.TemplateSMS"
FAST = HttpSettings(connect_timeout=1, read_timeout=0.5)


def request(phones: list[str], req_id: str | None = None) -> RonglianTemplateSmsRequest:
    return RonglianTemplateSmsRequest(
        phone_numbers=phones, template_id="1", datas=["123456", "5"], sub_append="8888", req_id=req_id
    )


@pytest.fixture
def client(ronglian_credentials: RonglianCredentials) -> RonglianClient:
    return RonglianClient(ronglian_credentials, settings=FAST)


def test_success_sends_the_exact_wire_format(client: RonglianClient, sandbox: ProviderSandbox) -> None:
    result = client.send(request(["13800138000", "13900139000"], req_id="abc123"))

    assert [o.status for o in result.outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
    assert result.outcomes[0].message_id
    [call] = sandbox.calls_for(OP)
    assert call.body == {
        "to": "13800138000,13900139000",
        "appId": client.credentials.app_id,
        "templateId": "1",
        "datas": ["123456", "5"],
        "subAppend": "8888",
        "reqId": "abc123",
    }
    assert {k.lower(): v for k, v in call.headers.items()}["accept"] == "application/json"


def test_a_repeated_req_id_counts_as_accepted_and_is_not_sent_twice(
    client: RonglianClient, sandbox: ProviderSandbox
) -> None:
    first = client.send(request(["13800138000"], req_id="order42"))
    again = client.send(request(["13800138000"], req_id="order42"))

    assert first.outcomes[0].status is Status.ACCEPTED
    assert (again.outcomes[0].status, again.outcomes[0].provider_code) == (Status.ACCEPTED, "160054")
    assert sandbox.accepted_phones() == ["13800138000"]


def test_chunks_of_100_by_default_each_with_a_stable_req_id(client: RonglianClient, sandbox: ProviderSandbox) -> None:
    phones = [f"138{i:08d}" for i in range(250)]

    result = client.send(request(phones, req_id="batch7"))

    assert result.calls == 3
    calls = sandbox.calls_for(OP)
    assert sorted(len(c.phones) for c in calls) == [50, 100, 100]
    req_ids = {c.body["reqId"] for c in calls}
    assert len(req_ids) == 3
    assert all(len(r) <= 32 and r.isalnum() for r in req_ids)
    assert [o.phone for o in result.outcomes] == [f"+86{p}" for p in phones]
    # The same request maps to the same reqIds, so a retry is deduplicated by the provider.
    again = client.send(request(phones, req_id="batch7"))
    assert {o.provider_code for o in again.outcomes} == {"160054"}
    assert len(sandbox.accepted_phones()) == 250


def test_chunk_size_configurable_to_200(ronglian_credentials: RonglianCredentials, sandbox: ProviderSandbox) -> None:
    client = RonglianClient(ronglian_credentials, chunk_size=200)
    result = client.send(request([f"138{i:08d}" for i in range(250)]))
    assert result.calls == 2
    with pytest.raises(ValueError, match="chunk_size"):
        RonglianClient(ronglian_credentials, chunk_size=201)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("160038", Status.RATE_LIMITED),
        ("160040", Status.RATE_LIMITED),
        ("111111", Status.RETRYABLE),
        ("160000", Status.RETRYABLE),
        ("111142", Status.REJECTED),
        ("160034", Status.REJECTED),
        ("160064", Status.AMBIGUOUS),
        ("999999", Status.AMBIGUOUS),
    ],
)
def test_error_classes(client: RonglianClient, sandbox: ProviderSandbox, code: str, status: Status) -> None:
    sandbox.add_fault(Fault(kind="code", operation=OP, code=code))
    [outcome] = client.send(request(["13800138000"])).outcomes
    assert (outcome.status, outcome.provider_code) == (status, code)


def test_ambiguous_with_a_req_id_is_safe_to_retry(client: RonglianClient, sandbox: ProviderSandbox) -> None:
    sandbox.add_fault(Fault(kind="code", operation=OP, code="160064"))
    with_id = client.send(request(["13800138000"], req_id="r1")).outcomes[0]
    without = client.send(request(["13800138000"])).outcomes[0]
    # The gateway's own reqId: a caller's resend is a new request with another reqId
    tagged = client.send(request(["13800138000"]).with_gateway_id("gateway-request-1")).outcomes[0]
    assert (with_id.status, with_id.retry_safe) == (Status.AMBIGUOUS, True)
    assert (without.status, without.retry_safe) == (Status.AMBIGUOUS, False)
    assert (tagged.status, tagged.retry_safe) == (Status.AMBIGUOUS, False)


def test_read_timeout_is_ambiguous_and_safe_only_with_a_req_id(
    client: RonglianClient, sandbox: ProviderSandbox
) -> None:
    sandbox.add_fault(Fault(kind="timeout", operation=OP, delay=2))
    without = client.send(request(["13800138000"])).outcomes[0]
    with_id = client.send(request(["13800138000"], req_id="r2")).outcomes[0]
    assert (without.status, without.retry_safe) == (Status.AMBIGUOUS, False)
    assert (with_id.status, with_id.retry_safe) == (Status.AMBIGUOUS, True)


def test_wrong_token_is_bad_sig_111109(ronglian_credentials: RonglianCredentials, sandbox: ProviderSandbox) -> None:
    wrong = ronglian_credentials.model_copy(update={"auth_token": SecretStr("0" * 32)})
    [outcome] = RonglianClient(wrong).send(request(["13800138000"])).outcomes
    assert (outcome.status, outcome.provider_code, outcome.auth_error) == (Status.REJECTED, "111109", True)
    assert sandbox.accepted_phones() == []


def test_timestamp_older_than_a_day_is_refused(ronglian_credentials: RonglianCredentials) -> None:
    old = RonglianClient(ronglian_credentials, clock=lambda: datetime.now(UTC) - timedelta(hours=25))
    [outcome] = old.send(request(["13800138000"])).outcomes
    assert (outcome.status, outcome.provider_code) == (Status.REJECTED, "111106")


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(kind="http_status", operation=OP, status=503), Status.RETRYABLE),
        (Fault(kind="garbled", operation=OP), Status.AMBIGUOUS),
        (Fault(kind="reset", operation=OP), Status.AMBIGUOUS),
    ],
    ids=["503", "garbled", "reset"],
)
def test_call_failures(client: RonglianClient, sandbox: ProviderSandbox, fault: Fault, status: Status) -> None:
    sandbox.add_fault(fault)
    assert client.send(request(["13800138000"])).outcomes[0].status is status


def test_connection_refused_is_retryable(ronglian_credentials: RonglianCredentials) -> None:
    nowhere = ronglian_credentials.model_copy(update={"endpoint": f"http://127.0.0.1:{free_port()}"})
    assert RonglianClient(nowhere).send(request(["13800138000"])).outcomes[0].status is Status.RETRYABLE


def test_invalid_input_makes_no_http_call(sandbox: ProviderSandbox) -> None:
    with pytest.raises(ValidationError):
        request(["13800138000"], req_id="x" * 33)
    assert sandbox.calls == []
