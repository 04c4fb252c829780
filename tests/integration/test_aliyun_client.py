"""The Aliyun SendInterSms and SendBatchSms clients against the sandbox over real loopback HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from local.sandbox import Fault, ProviderSandbox
from smsgw.models import AliyunBatchSmsRequest, AliyunInterSmsRequest
from smsgw.outcomes import Status
from smsgw.providers.aliyun import AliyunBatchSmsClient, AliyunCredentials, AliyunInterSmsClient
from smsgw.providers.base import HttpSettings
from tests.support import free_port

INTER, BATCH = "aliyun.SendInterSms", "aliyun.SendBatchSms"
FAST = HttpSettings(connect_timeout=1, read_timeout=0.5)


def inter_request(*phones: str) -> AliyunInterSmsRequest:
    return AliyunInterSmsRequest(
        phone_numbers=list(phones),
        country_code="HK",
        sign_name="短信 测试*~+/&",
        template_code="SMS_0000002",
        template_param={"code": "1234", "product": "云 通信"},
        out_id="order-1",
    )


def batch_request(phones: list[str]) -> AliyunBatchSmsRequest:
    return AliyunBatchSmsRequest(
        template_code="SMS_71175823",
        sign_name="云通信",
        messages=[{"phone_number": p, "template_param": {"code": str(i)}} for i, p in enumerate(phones)],
    )


@pytest.fixture
def inter(aliyun_credentials: AliyunCredentials) -> AliyunInterSmsClient:
    return AliyunInterSmsClient(aliyun_credentials, settings=FAST)


@pytest.fixture
def batch(aliyun_credentials: AliyunCredentials) -> AliyunBatchSmsClient:
    return AliyunBatchSmsClient(aliyun_credentials, settings=FAST)


class TestSendInterSms:
    def test_success_with_tricky_characters(self, inter: AliyunInterSmsClient, sandbox: ProviderSandbox) -> None:
        [outcome] = inter.send(inter_request("91234567")).outcomes
        assert (outcome.status, outcome.provider_code) == (Status.ACCEPTED, "OK")
        assert outcome.message_id
        [call] = sandbox.calls_for(INTER)
        assert call.params["PhoneNumbers"] == "91234567"
        assert call.params["CountryCode"] == "HK"
        assert call.params["SignName"] == "短信 测试*~+/&"
        assert json.loads(call.params["TemplateParam"]) == {"code": "1234", "product": "云 通信"}
        assert call.params["OutId"] == "order-1"

    def test_one_call_per_number_some_rejected(self, inter: AliyunInterSmsClient, sandbox: ProviderSandbox) -> None:
        sandbox.add_fault(Fault(kind="code", operation=INTER, phone="91230002", code="isv.MOBILE_NUMBER_ILLEGAL"))

        result = inter.send(inter_request("91230001", "91230002", "91230003"))

        assert result.calls == 3
        assert [o.status for o in result.outcomes] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
        assert result.outcomes[1].provider_code == "isv.MOBILE_NUMBER_ILLEGAL"
        assert sorted(sandbox.accepted_phones()) == ["91230001", "91230003"]

    @pytest.mark.parametrize(
        ("code", "status"),
        [
            ("isp.SYSTEM_ERROR", Status.RETRYABLE),
            ("Throttling.User", Status.RETRYABLE),
            ("isv.BUSINESS_LIMIT_CONTROL", Status.RATE_LIMITED),
            ("isv.DAY_LIMIT_CONTROL", Status.RATE_LIMITED),
            ("isv.AMOUNT_NOT_ENOUGH", Status.REJECTED),
            ("isv.PARAM_NOT_SUPPORT_URL", Status.REJECTED),
            ("isv.SOMETHING_UNHEARD_OF", Status.AMBIGUOUS),
        ],
    )
    def test_error_classes(
        self, inter: AliyunInterSmsClient, sandbox: ProviderSandbox, code: str, status: Status
    ) -> None:
        sandbox.add_fault(Fault(kind="code", operation=INTER, code=code))
        [outcome] = inter.send(inter_request("91234567")).outcomes
        assert (outcome.status, outcome.provider_code) == (status, code)

    def test_wrong_secret_is_signature_does_not_match(
        self, aliyun_credentials: AliyunCredentials, sandbox: ProviderSandbox
    ) -> None:
        wrong = aliyun_credentials.model_copy(update={"access_key_secret": SecretStr("wrong")})
        [outcome] = AliyunInterSmsClient(wrong).send(inter_request("91234567")).outcomes
        assert (outcome.status, outcome.provider_code, outcome.auth_error) == (
            Status.REJECTED,
            "SignatureDoesNotMatch",
            True,
        )
        assert sandbox.accepted_phones() == []

    def test_unknown_key_is_an_authentication_error(self, aliyun_credentials: AliyunCredentials) -> None:
        unknown = aliyun_credentials.model_copy(update={"access_key_id": "nobody"})
        [outcome] = AliyunInterSmsClient(unknown).send(inter_request("91234567")).outcomes
        assert outcome.auth_error
        assert (outcome.provider_code or "").startswith("InvalidAccessKeyId")

    def test_clock_off_by_more_than_15_minutes(self, aliyun_credentials: AliyunCredentials) -> None:
        skewed = AliyunInterSmsClient(aliyun_credentials, clock=lambda: datetime.now(UTC) + timedelta(minutes=20))
        [outcome] = skewed.send(inter_request("91234567")).outcomes
        assert (outcome.status, outcome.provider_code) == (Status.REJECTED, "InvalidTimeStamp.Expired")

    def test_a_reused_nonce_is_retryable(self, aliyun_credentials: AliyunCredentials) -> None:
        fixed = AliyunInterSmsClient(aliyun_credentials, nonce=lambda: "45e25e9b-0a6f-4070-8c85-2956eda1b466")
        assert fixed.send(inter_request("91234567")).outcomes[0].status is Status.ACCEPTED
        [again] = fixed.send(inter_request("91234567")).outcomes
        assert (again.status, again.provider_code) == (Status.RETRYABLE, "SignatureNonceUsed")

    @pytest.mark.parametrize(
        ("fault", "status"),
        [
            (Fault(kind="http_status", operation=INTER, status=503), Status.RETRYABLE),
            (Fault(kind="http_status", operation=INTER, status=500), Status.RETRYABLE),
            (Fault(kind="garbled", operation=INTER), Status.AMBIGUOUS),
            (Fault(kind="timeout", operation=INTER, delay=2), Status.AMBIGUOUS),
            (Fault(kind="reset", operation=INTER), Status.AMBIGUOUS),
        ],
        ids=["503", "500", "garbled", "read-timeout", "reset"],
    )
    def test_call_failures(
        self, inter: AliyunInterSmsClient, sandbox: ProviderSandbox, fault: Fault, status: Status
    ) -> None:
        sandbox.add_fault(fault)
        [outcome] = inter.send(inter_request("91234567")).outcomes
        assert outcome.status is status
        assert len(sandbox.calls_for(INTER)) == 1

    def test_connection_refused_is_retryable(self, aliyun_credentials: AliyunCredentials) -> None:
        nowhere = aliyun_credentials.model_copy(update={"endpoint": f"http://127.0.0.1:{free_port()}"})
        [outcome] = AliyunInterSmsClient(nowhere).send(inter_request("91234567")).outcomes
        assert (outcome.status, outcome.retry_safe) == (Status.RETRYABLE, True)

    def test_chunks_go_out_concurrently(self, aliyun_credentials: AliyunCredentials, sandbox: ProviderSandbox) -> None:
        # Every answer waits a second: had the calls gone out one after another, the last would
        # have arrived at least two seconds after the first.
        sandbox.add_fault(Fault(kind="slow", operation=INTER, delay=1.0))
        client = AliyunInterSmsClient(aliyun_credentials, settings=HttpSettings(read_timeout=5))
        client.send(inter_request("91230001", "91230002", "91230003"))
        arrivals = sorted(c.at for c in sandbox.calls_for(INTER))
        assert len(arrivals) == 3
        assert arrivals[-1] - arrivals[0] < timedelta(seconds=1)


class TestSendBatchSms:
    def test_success_sends_one_sign_name_and_parameter_object_per_number(
        self, batch: AliyunBatchSmsClient, sandbox: ProviderSandbox
    ) -> None:
        result = batch.send(batch_request(["13800138000", "8613900139000"]))

        assert [o.status for o in result.outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
        assert result.outcomes[0].message_id == result.outcomes[1].message_id, "one BizId per batch"
        [call] = sandbox.calls_for(BATCH)
        # Every spelling of a mainland number goes out as its 11 digits
        assert json.loads(call.params["PhoneNumberJson"]) == ["13800138000", "13900139000"]
        assert json.loads(call.params["SignNameJson"]) == ["云通信", "云通信"]
        assert json.loads(call.params["TemplateParamJson"]) == [{"code": "0"}, {"code": "1"}]

    def test_250_numbers_take_three_calls_in_input_order(
        self, batch: AliyunBatchSmsClient, sandbox: ProviderSandbox
    ) -> None:
        phones = [f"138{i:08d}" for i in range(250)]
        result = batch.send(batch_request(phones))
        assert result.calls == 3
        assert sorted(len(c.phones) for c in sandbox.calls_for(BATCH)) == [50, 100, 100]
        assert [o.phone for o in result.outcomes] == [f"+86{p}" for p in phones]
        assert result.count(Status.ACCEPTED) == 250

    def test_one_failing_chunk_fails_only_its_numbers(
        self, batch: AliyunBatchSmsClient, sandbox: ProviderSandbox
    ) -> None:
        phones = [f"138{i:08d}" for i in range(150)]
        sandbox.add_fault(Fault(kind="code", operation=BATCH, phone=phones[120], code="isv.BLACK_KEY_CONTROL_LIMIT"))

        result = batch.send(batch_request(phones))

        statuses = [o.status for o in result.outcomes]
        assert statuses[:100] == [Status.ACCEPTED] * 100
        assert statuses[100:] == [Status.REJECTED] * 50
        assert len(sandbox.accepted_phones()) == 100

    def test_timeout_is_ambiguous_for_the_whole_chunk(
        self, batch: AliyunBatchSmsClient, sandbox: ProviderSandbox
    ) -> None:
        sandbox.add_fault(Fault(kind="timeout", operation=BATCH, delay=2))
        result = batch.send(batch_request(["13800138000", "13900139000"]))
        assert result.count(Status.AMBIGUOUS) == 2

    def test_invalid_input_makes_no_http_call(self, sandbox: ProviderSandbox) -> None:
        with pytest.raises(ValidationError):
            batch_request(["+14155550123"])
        assert sandbox.calls == []
