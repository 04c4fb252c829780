"""The sandbox's Aliyun SendInterSms and SendBatchSms over real loopback HTTP, with requests signed by
Aliyun's own signer."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from alibabacloud_tea_openapi.utils import Utils as TeaUtils

from local.sandbox import Fault, ProviderSandbox, aliyun_signature
from tests.sandbox.provider_calls import ALIYUN, GATEWAY_KEYS, A, B, FakeClock, aliyun_call, batch, inter

ALIYUN_DOC_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}


class TestKnownAnswers:
    @pytest.mark.parametrize(
        ("method", "expected"), [("GET", "zJDF+Lrzhj/ThnlvIToysFRq6t4="), ("POST", "Xvhv7fPXrPkLVSnlt0jIr08o8NQ=")]
    )
    def test_aliyun_signature_v1(self, method: str, expected: str) -> None:
        assert TeaUtils.get_rpcsignature(dict(ALIYUN_DOC_PARAMS), method, "testSecret") == expected
        # The sandbox's verifier drops `Signature` itself, so a signed request checks out.
        assert aliyun_signature({**ALIYUN_DOC_PARAMS, "Signature": "x"}, method, "testSecret") == expected


class TestAliyun:
    def test_send_inter_sms(self, box: ProviderSandbox) -> None:
        response = aliyun_call(box.url, "SendInterSms", inter())

        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"RequestId", "Code", "Message", "BizId"}
        assert (answer["Code"], answer["Message"]) == ("OK", "OK")
        assert re.fullmatch(r"\d+\^0", answer["BizId"])
        [call] = box.calls_for("aliyun.SendInterSms")
        assert (call.phones, call.accepted_phones, call.outcome, call.code) == (
            ["91234567"],
            ["91234567"],
            "accepted",
            "OK",
        )
        assert call.params["SignName"] == "短信 测试*~+/&"
        assert json.loads(call.params["TemplateParam"]) == {"code": "1234", "product": "云 通信"}
        assert call.body is None

    def test_get_and_split_query_and_body_both_verify(self, box: ProviderSandbox) -> None:
        assert aliyun_call(box.url, "SendInterSms", inter(), method="GET").json()["Code"] == "OK"
        common = ("AccessKeyId", "Action", "Signature", "SignatureNonce", "Timestamp", "Version")
        assert aliyun_call(box.url, "SendInterSms", inter(), in_query=common).json()["Code"] == "OK"
        assert len(box.accepted_phones()) == 2

    def test_empty_signature_type_is_signed_like_the_core_sdk_does(self, box: ProviderSandbox) -> None:
        assert aliyun_call(box.url, "SendInterSms", inter(SignatureType="")).json()["Code"] == "OK"
        assert box.calls[0].params["SignatureType"] == ""

    def test_send_batch_sms(self, box: ProviderSandbox) -> None:
        phones = [A, "+8613900139000", "008615000150000", "8618600186000", "85291234567"]
        answer = aliyun_call(box.url, "SendBatchSms", batch(phones)).json()
        assert answer["Code"] == "OK"
        assert box.accepted_phones() == phones
        assert box.calls_for("aliyun.SendBatchSms")[0].phones == phones

    def test_batch_of_100_is_the_limit(self, box: ProviderSandbox) -> None:
        phones = [f"138{i:08d}" for i in range(101)]
        assert aliyun_call(box.url, "SendBatchSms", batch(phones[:100])).json()["Code"] == "OK"
        over = aliyun_call(box.url, "SendBatchSms", batch(phones))
        assert (over.status_code, over.json()["Code"]) == (200, "isv.MOBILE_COUNT_OVER_LIMIT")
        assert len(box.accepted_phones()) == 100

    @pytest.mark.parametrize(
        ("business", "code"),
        [
            (batch([A, B], [{"code": "1"}]), "isv.INVALID_PARAMETERS"),
            ({**batch([A, B]), "SignNameJson": '["x"]'}, "isv.INVALID_PARAMETERS"),
            (batch([A], [{"code": 1234}]), "isv.INVALID_JSON_PARAM"),
            ({**batch([A]), "TemplateParamJson": "{not json"}, "isv.INVALID_JSON_PARAM"),
            (batch([A, "+85291234567"]), "isv.MOBILE_NUMBER_ILLEGAL"),
            (batch([A, "12345678901"]), "isv.MOBILE_NUMBER_ILLEGAL"),
            (batch([A, "8612345678901"]), "isv.MOBILE_NUMBER_ILLEGAL"),
            (batch([A, "0852912345678"]), "isv.MOBILE_NUMBER_ILLEGAL"),
            (batch([A], TemplateCode="71175823"), "isv.SMS_TEMPLATE_ILLEGAL"),
        ],
        ids=[
            "params-short",
            "signs-short",
            "number-value",
            "not-json",
            "plus",
            "mainland-looking",
            "86-not-mainland",
            "leading-zero",
            "template-code",
        ],
    )
    def test_batch_business_errors(self, box: ProviderSandbox, business: dict[str, str], code: str) -> None:
        response = aliyun_call(box.url, "SendBatchSms", business)
        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"RequestId", "Code", "Message"}
        assert answer["Code"] == code
        assert box.accepted_phones() == []
        assert box.calls[0].outcome == "rejected"

    @pytest.mark.parametrize(
        ("business", "code"),
        [
            (inter("91234567,92345678"), "isv.MOBILE_COUNT_OVER_LIMIT"),
            (inter("+85291234567"), "isv.MOBILE_NUMBER_ILLEGAL"),
            (inter("123"), "isv.MOBILE_NUMBER_ILLEGAL"),
            (inter("11234567890"), "isv.MOBILE_NUMBER_ILLEGAL"),
            (inter(TemplateParam='{"code": 1234}'), "isv.INVALID_JSON_PARAM"),
            (inter(TemplateParam='["1234"]'), "isv.INVALID_JSON_PARAM"),
        ],
        ids=["two-numbers", "plus", "short", "mainland-looking", "number-value", "array"],
    )
    def test_inter_business_errors(self, box: ProviderSandbox, business: dict[str, str], code: str) -> None:
        response = aliyun_call(box.url, "SendInterSms", business)
        assert (response.status_code, response.json()["Code"]) == (200, code)

    def test_template_param_is_optional(self, box: ProviderSandbox) -> None:
        business = {k: v for k, v in inter().items() if k != "TemplateParam"}
        assert aliyun_call(box.url, "SendInterSms", business).json()["Code"] == "OK"

    @pytest.mark.parametrize(
        ("action", "drop", "code"),
        [
            ("SendInterSms", "PhoneNumbers", "MissingPhoneNumbers"),
            ("SendInterSms", "CountryCode", "MissingCountryCode"),
            ("SendInterSms", "SignName", "MissingSignName"),
            ("SendBatchSms", "TemplateParamJson", "MissingTemplateParamJson"),
            ("SendBatchSms", "PhoneNumberJson", "MissingPhoneNumberJson"),
        ],
    )
    def test_missing_parameters(self, box: ProviderSandbox, action: str, drop: str, code: str) -> None:
        business = inter() if action == "SendInterSms" else batch([A])
        del business[drop]
        response = aliyun_call(box.url, action, business)
        assert response.status_code == 400
        answer = response.json()
        assert set(answer) == GATEWAY_KEYS
        assert (answer["Code"], answer["HostId"]) == (code, "dysmsapi.aliyuncs.com")

    def test_bad_signature(self, box: ProviderSandbox) -> None:
        response = aliyun_call(box.url, "SendInterSms", inter(), secret="wrong")
        assert response.status_code == 400
        answer = response.json()
        assert set(answer) == GATEWAY_KEYS
        assert answer["Code"] == "SignatureDoesNotMatch"
        assert "server string to sign is:POST&%2F&AccessKeyId%3D" in answer["Message"]
        assert box.calls[0].outcome == "rejected"
        assert box.accepted_phones() == []

    def test_a_parameter_changed_after_signing_fails(self, box: ProviderSandbox) -> None:
        params = {**inter(), "AccessKeyId": ALIYUN.access_key_id, "Action": "SendInterSms", "Format": "JSON"}
        params |= {"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "Version": "2017-05-25"}
        params |= {"SignatureNonce": str(uuid.uuid4()), "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        params["Signature"] = TeaUtils.get_rpcsignature(params, "POST", ALIYUN.access_key_secret)
        params["PhoneNumbers"] = "99999999"
        response = requests.post(box.url + "/", data=params, timeout=5)
        assert response.json()["Code"] == "SignatureDoesNotMatch"

    def test_unknown_access_key(self, box: ProviderSandbox) -> None:
        response = aliyun_call(box.url, "SendInterSms", inter(), access_key_id="nobody")
        assert (response.status_code, response.json()["Code"]) == (404, "InvalidAccessKeyId.NotFound")

    def test_timestamp_window_is_15_minutes(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        for skew in (timedelta(minutes=14, seconds=59), -timedelta(minutes=15)):
            assert aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now + skew).json()["Code"] == "OK"
        for skew in (timedelta(minutes=15, seconds=1), -timedelta(minutes=16)):
            response = aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now + skew)
            assert (response.status_code, response.json()["Code"]) == (400, "InvalidTimeStamp.Expired")

    def test_malformed_timestamp(self, box: ProviderSandbox) -> None:
        response = aliyun_call(box.url, "SendInterSms", inter(), overrides={"Timestamp": "2024-01-01 12:00:00"})
        assert (response.status_code, response.json()["Code"]) == (400, "InvalidTimeStamp.Format")

    def test_a_nonce_is_good_once_per_15_minutes(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        nonce = "45e25e9b-0a6f-4070-8c85-2956eda1b466"
        assert aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now, nonce=nonce).json()["Code"] == "OK"
        again = aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now, nonce=nonce)
        assert (again.status_code, again.json()["Code"]) == (400, "SignatureNonceUsed")
        # A forged request does not spend a nonce.
        forged = aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now, nonce="fresh", secret="x")
        assert forged.json()["Code"] == "SignatureDoesNotMatch"
        assert aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now, nonce="fresh").json()["Code"] == "OK"
        clock.now += timedelta(minutes=16)
        assert aliyun_call(frozen.url, "SendInterSms", inter(), at=clock.now, nonce=nonce).json()["Code"] == "OK"

    def test_reset_forgets_nonces(self, box: ProviderSandbox) -> None:
        assert aliyun_call(box.url, "SendInterSms", inter(), nonce="n1").json()["Code"] == "OK"
        box.reset()
        assert aliyun_call(box.url, "SendInterSms", inter(), nonce="n1").json()["Code"] == "OK"

    @pytest.mark.parametrize(
        ("overrides", "status", "code"),
        [
            ({"Version": "2017-05-26"}, 400, "InvalidVersion"),
            ({"Action": "SendSms"}, 404, "InvalidAction.NotFound"),
            ({"SignatureMethod": "HMAC-SHA256"}, 400, "InvalidParameter"),
            ({"SignatureVersion": "2.0"}, 400, "InvalidParameter"),
            ({"Format": "XML"}, 400, "InvalidParameter"),
            ({"SignatureNonce": ""}, 400, "MissingSignatureNonce"),
        ],
    )
    def test_common_parameter_errors(
        self, box: ProviderSandbox, overrides: dict[str, str], status: int, code: str
    ) -> None:
        response = aliyun_call(box.url, "SendInterSms", inter(), overrides=overrides)
        assert (response.status_code, response.json()["Code"]) == (status, code)

    def test_code_fault_answers_a_business_error(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="code", operation="aliyun.SendBatchSms", code="isv.BUSINESS_LIMIT_CONTROL", times=1))
        response = aliyun_call(box.url, "SendBatchSms", batch([A, B]))
        assert (response.status_code, response.json()["Code"]) == (200, "isv.BUSINESS_LIMIT_CONTROL")
        assert box.calls[0].outcome == "fault:code"
        assert aliyun_call(box.url, "SendBatchSms", batch([A, B])).json()["Code"] == "OK"
        assert box.accepted_phones() == [A, B]

    def test_phone_fault_strikes_only_calls_with_that_number(self, box: ProviderSandbox) -> None:
        box.add_fault(
            Fault(kind="code", operation="aliyun.SendInterSms", phone="92222222", code="isv.MOBILE_NUMBER_ILLEGAL")
        )
        codes = [
            aliyun_call(box.url, "SendInterSms", inter(p)).json()["Code"] for p in ("91111111", "92222222", "93333333")
        ]
        assert codes == ["OK", "isv.MOBILE_NUMBER_ILLEGAL", "OK"]
        assert box.accepted_phones() == ["91111111", "93333333"]
