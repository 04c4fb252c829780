"""The Polyv client against the sandbox over real loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from local.sandbox import Fault, ProviderSandbox
from smsgw.models import PolyvSendRequest
from smsgw.outcomes import Status
from smsgw.providers.base import HttpSettings
from smsgw.providers.polyv import PolyvClient, PolyvCredentials
from tests.support import free_port

OP = "polyv.send"
A, B, C = "13800138000", "13900139000", "15000150000"


def request(*phones: str) -> PolyvSendRequest:
    return PolyvSendRequest(phone_numbers=list(phones), template_param_names=["code"], template_param_values=["123456"])


@pytest.fixture
def client(polyv_credentials: PolyvCredentials) -> PolyvClient:
    return PolyvClient(polyv_credentials, settings=HttpSettings(connect_timeout=1, read_timeout=0.5))


def test_success_sends_the_exact_body_and_returns_the_serial_number(
    client: PolyvClient, sandbox: ProviderSandbox
) -> None:
    result = client.send(request(A))

    [outcome] = result.outcomes
    assert outcome.status is Status.ACCEPTED
    assert outcome.message_id
    assert outcome.provider_code == "12"
    [call] = sandbox.calls_for(OP)
    assert call.phones == [A]
    assert call.body == {"phoneNumbers": [A], "templateParamNames": ["code"], "templateParamValues": ["123456"]}
    assert set(call.params) == {"appId", "timestamp", "sign"}


def test_sha256_signature_is_accepted(polyv_credentials: PolyvCredentials, sandbox: ProviderSandbox) -> None:
    client = PolyvClient(polyv_credentials, signature_method="SHA256")
    assert client.send(request(A)).outcomes[0].status is Status.ACCEPTED
    assert sandbox.calls_for(OP)[0].params["signatureMethod"] == "SHA256"


@pytest.mark.parametrize(
    ("code", "status"),
    [(-2, Status.REJECTED), (-1, Status.RATE_LIMITED), (11, Status.RETRYABLE), (99, Status.AMBIGUOUS)],
)
def test_per_number_statuses(client: PolyvClient, sandbox: ProviderSandbox, code: int, status: Status) -> None:
    sandbox.add_fault(Fault(kind="code", operation=OP, phone=B, code=code))

    result = client.send(request(A, B, C))

    assert [o.phone for o in result.outcomes] == [f"+86{p}" for p in (A, B, C)]
    assert [o.status for o in result.outcomes] == [Status.ACCEPTED, status, Status.ACCEPTED]
    assert result.outcomes[1].provider_code == str(code)
    assert result.outcomes[1].retry_safe is (status in (Status.RATE_LIMITED, Status.RETRYABLE))
    assert sandbox.accepted_phones() == [A, C]


def test_wrong_secret_is_an_authentication_error(polyv_credentials: PolyvCredentials, sandbox: ProviderSandbox) -> None:
    wrong = polyv_credentials.model_copy(update={"app_secret": SecretStr("not-the-secret")})
    [outcome] = PolyvClient(wrong).send(request(A)).outcomes
    assert outcome.status is Status.REJECTED
    assert outcome.auth_error
    assert sandbox.accepted_phones() == []


def test_unknown_app_id_is_code_20001(polyv_credentials: PolyvCredentials) -> None:
    unknown = polyv_credentials.model_copy(update={"app_id": "nobody"})
    [outcome] = PolyvClient(unknown).send(request(A)).outcomes
    assert (outcome.status, outcome.provider_code, outcome.auth_error) == (Status.REJECTED, "20001", True)


def test_stale_clock_is_refused(polyv_credentials: PolyvCredentials) -> None:
    late = PolyvClient(polyv_credentials, clock=lambda: datetime.now(UTC) - timedelta(minutes=10))
    [outcome] = late.send(request(A)).outcomes
    assert outcome.status is Status.REJECTED


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(kind="http_status", operation=OP, status=500), Status.RETRYABLE),
        (Fault(kind="http_status", operation=OP, status=503), Status.RETRYABLE),
        (Fault(kind="http_status", operation=OP, status=504), Status.AMBIGUOUS),
        (Fault(kind="garbled", operation=OP), Status.AMBIGUOUS),
        (Fault(kind="timeout", operation=OP, delay=2), Status.AMBIGUOUS),
        (Fault(kind="reset", operation=OP), Status.AMBIGUOUS),
    ],
    ids=["500", "503", "504", "garbled", "read-timeout", "reset"],
)
def test_call_failures(client: PolyvClient, sandbox: ProviderSandbox, fault: Fault, status: Status) -> None:
    sandbox.add_fault(fault)
    result = client.send(request(A, B))
    assert [o.status for o in result.outcomes] == [status, status]
    assert all(o.retry_safe is (status is Status.RETRYABLE) for o in result.outcomes)
    assert len(sandbox.calls_for(OP)) == 1, "the client never resends by itself"


def test_slow_answer_within_the_timeout_is_accepted(client: PolyvClient, sandbox: ProviderSandbox) -> None:
    sandbox.add_fault(Fault(kind="slow", operation=OP, delay=0.2))
    assert client.send(request(A)).outcomes[0].status is Status.ACCEPTED


def test_connection_refused_is_retryable(polyv_credentials: PolyvCredentials) -> None:
    nowhere = polyv_credentials.model_copy(update={"endpoint": f"http://127.0.0.1:{free_port()}"})
    [outcome] = PolyvClient(nowhere).send(request(A)).outcomes
    assert (outcome.status, outcome.retry_safe, outcome.provider_code) == (Status.RETRYABLE, True, "connect_failed")


def test_provider_down_is_retryable(client: PolyvClient, sandbox: ProviderSandbox) -> None:
    sandbox.go_down()
    assert client.send(request(A)).outcomes[0].status is Status.RETRYABLE


def test_250_numbers_take_two_calls_in_input_order(client: PolyvClient, sandbox: ProviderSandbox) -> None:
    phones = [f"138{i:08d}" for i in range(250)]

    result = client.send(request(*phones))

    assert result.calls == 2
    assert sorted(len(c.phones) for c in sandbox.calls_for(OP)) == [50, 200]
    assert [o.phone for o in result.outcomes] == [f"+86{p}" for p in phones]
    assert result.count(Status.ACCEPTED) == 250


def test_invalid_input_makes_no_http_call(sandbox: ProviderSandbox) -> None:
    with pytest.raises(ValidationError):
        request("1380013800")
    assert sandbox.calls == []
