"""The provider sandbox over real loopback HTTP, with requests built by hand.

The signing helpers here are the sandbox's own verifiers, proven first against the providers'
published answers (Aliyun's through Aliyun's own signer), so a request they sign is one the real
provider would take.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from alibabacloud_tea_openapi.utils import Utils as TeaUtils

from local.sandbox import (
    DEFAULT_ACCOUNTS,
    Fault,
    ProviderSandbox,
    SandboxAccounts,
    aliyun_signature,
    polyv_sign,
    ronglian_authorization,
    ronglian_sig,
)

POLYV, ALIYUN, RONGLIAN = DEFAULT_ACCOUNTS.polyv, DEFAULT_ACCOUNTS.aliyun, DEFAULT_ACCOUNTS.ronglian
BEIJING = timezone(timedelta(hours=8))
POLYV_PATH = "/live/v4/user/sms/send"
ROOT = Path(__file__).parents[2]
A, B, C = "13800138000", "13900139000", "15000150000"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SERIAL = re.compile(r"\d{18}\^0")


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# --- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[ProviderSandbox]:
    with ProviderSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def box(live: ProviderSandbox) -> Iterator[ProviderSandbox]:
    """A real-clock sandbox, emptied and up."""
    live.come_up()
    live.reset()
    yield live
    live.come_up()
    live.reset()


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def frozen_server(clock: FakeClock) -> Iterator[ProviderSandbox]:
    extra = DEFAULT_ACCOUNTS.with_polyv("second-app", "second-secret")
    with ProviderSandbox(clock=clock, accounts=extra) as sandbox:
        yield sandbox


@pytest.fixture
def frozen(frozen_server: ProviderSandbox, clock: FakeClock) -> ProviderSandbox:
    """A sandbox whose clock stands still at `clock.now` until a test moves it."""
    clock.now = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)
    frozen_server.reset()
    return frozen_server


# --- Request builders ----------------------------------------------------------------------------


def polyv_post(
    url: str,
    phones: Sequence[Any],
    *,
    at: datetime | None = None,
    app_id: str = POLYV.app_id,
    secret: str = POLYV.app_secret,
    signature_method: str | None = None,
    body: Any = None,
    sign: str | None = None,
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    moment = at or datetime.now(UTC)
    params = {"appId": app_id, "timestamp": str(int(moment.timestamp() * 1000))}
    if signature_method:
        params["signatureMethod"] = signature_method
    params["sign"] = sign or polyv_sign(params, secret, signature_method)
    payload = (
        body
        if body is not None
        else {
            "phoneNumbers": list(phones),
            "templateParamNames": ["code"],
            "templateParamValues": ["123456"],
        }
    )
    return requests.post(url + POLYV_PATH, params=params, json=payload, timeout=timeout)


def aliyun_call(
    url: str,
    action: str,
    business: Mapping[str, str],
    *,
    method: str = "POST",
    at: datetime | None = None,
    nonce: str | None = None,
    access_key_id: str = ALIYUN.access_key_id,
    secret: str = ALIYUN.access_key_secret,
    overrides: Mapping[str, str] | None = None,
    in_query: Sequence[str] = (),
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    """Sign with Aliyun's own signer; POST puts every parameter not named in `in_query` in the body."""
    params = {
        "AccessKeyId": access_key_id,
        "Action": action,
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": nonce or str(uuid.uuid4()),
        "SignatureVersion": "1.0",
        "Timestamp": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        **business,
        **(overrides or {}),
    }
    params["Signature"] = TeaUtils.get_rpcsignature(params, method, secret)
    if method == "GET":
        return requests.get(url + "/", params=params, timeout=timeout)
    query = {k: v for k, v in params.items() if k in in_query}
    form = {k: v for k, v in params.items() if k not in in_query}
    return requests.request(method, url + "/", params=query, data=form, timeout=timeout)


def inter(phone: str = "91234567", **extra: str) -> dict[str, str]:
    return {
        "PhoneNumbers": phone,
        "CountryCode": "HK",
        "SignName": "短信 测试*~+/&",
        "TemplateCode": "SMS_0000002",
        "TemplateParam": json.dumps({"code": "1234", "product": "云 通信"}, ensure_ascii=False),
        "OutId": "order-1",
        **extra,
    }


def batch(phones: Sequence[str], params: Sequence[Any] | None = None, **extra: str) -> dict[str, str]:
    return {
        "PhoneNumberJson": json.dumps(list(phones)),
        "SignNameJson": json.dumps(["云通信"] * len(phones), ensure_ascii=False),
        "TemplateCode": "SMS_71175823",
        "TemplateParamJson": json.dumps(
            params if params is not None else [{"code": str(i)} for i in range(len(phones))]
        ),
        **extra,
    }


def ronglian_post(
    url: str,
    body: Mapping[str, Any],
    *,
    at: datetime | None = None,
    account_sid: str = RONGLIAN.account_sid,
    token: str = RONGLIAN.auth_token,
    header_timestamp: str | None = None,
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    timestamp = (at or datetime.now(UTC)).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    return requests.post(
        f"{url}/2013-12-26/Accounts/{account_sid}/SMS/TemplateSMS",
        params={"sig": ronglian_sig(account_sid, token, timestamp)},
        data=json.dumps(body).encode(),
        headers={
            "Accept": "application/json",
            "Content-Type": "application/json;charset=utf-8",
            "Authorization": ronglian_authorization(account_sid, header_timestamp or timestamp),
        },
        timeout=timeout,
    )


def template_sms(to: str = A, **extra: Any) -> dict[str, Any]:
    return {"to": to, "appId": RONGLIAN.app_id, "templateId": "1", "datas": ["123456", "5"], **extra}


# --- Published known answers ---------------------------------------------------------------------

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

    def test_polyv_sign(self) -> None:
        params: dict[str, str | None] = {
            "appId": "g4rqgmmjuo",
            "channelIds": "2477096,2272655",
            "startDay": "2022-05-20",
            "endDay": "2022-06-18",
            "timestamp": "1660270926732",
            "page": None,
            "size": None,
        }
        assert polyv_sign(params, "fsq2k5weced1h8vui657xtdva66whf0g") == "0D2BDA2FD04D93A2B8832B91FD973C4D"
        # Blank values and `sign` itself are left out just as nulls are.
        blank = {**params, "page": "", "size": "  ", "sign": "whatever"}
        assert polyv_sign(blank, "fsq2k5weced1h8vui657xtdva66whf0g") == "0D2BDA2FD04D93A2B8832B91FD973C4D"

    def test_polyv_sha256_switches_the_hash(self) -> None:
        params = {"appId": "a", "timestamp": "1", "signatureMethod": "SHA256"}
        sign = polyv_sign(params, "s", "SHA256")
        assert re.fullmatch(r"[0-9A-F]{64}", sign)
        with pytest.raises(ValueError, match="signatureMethod"):
            polyv_sign(params, "s", "SHA1")

    def test_ronglian_sig_and_authorization(self) -> None:
        sid, token, ts = "8a216da8000000000000000000000001", "0123456789abcdef0123456789abcdef", "20240101120000"
        assert ronglian_sig(sid, token, ts) == "8B30444D4D2FA787D091F4B0F86F1463"
        assert ronglian_authorization(sid, ts) == "OGEyMTZkYTgwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDE6MjAyNDAxMDExMjAwMDA="


# --- Polyv ---------------------------------------------------------------------------------------


class TestPolyv:
    def test_per_number_results_in_input_order(self, box: ProviderSandbox) -> None:
        response = polyv_post(box.url, [A, "1768909", B])

        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"code", "status", "requestId", "data", "success"}
        assert (answer["code"], answer["status"], answer["success"]) == (200, "success", True)
        assert UUID.fullmatch(answer["requestId"])
        assert [(d["phoneNumber"], d["status"]) for d in answer["data"]] == [(A, 12), ("1768909", -2), (B, 12)]
        assert SERIAL.fullmatch(answer["data"][0]["serialNo"])
        assert answer["data"][1]["serialNo"] is None
        assert answer["data"][0]["serialNo"] != answer["data"][2]["serialNo"]
        [call] = box.calls_for("polyv.send")
        assert (call.phones, call.accepted_phones, call.outcome, call.status) == (
            [A, "1768909", B],
            [A, B],
            "partial",
            200,
        )
        assert set(call.params) == {"appId", "timestamp", "sign"}
        assert call.body == {
            "phoneNumbers": [A, "1768909", B],
            "templateParamNames": ["code"],
            "templateParamValues": ["123456"],
        }
        assert box.accepted_phones() == [A, B]

    def test_sha256_signature(self, box: ProviderSandbox) -> None:
        response = polyv_post(box.url, [A], signature_method="SHA256")
        assert response.json()["data"][0]["status"] == 12
        assert box.calls[0].params["signatureMethod"] == "SHA256"

    def test_unknown_app_is_20001(self, box: ProviderSandbox) -> None:
        response = polyv_post(box.url, [A], app_id="nobody")
        assert response.status_code == 400
        answer = response.json()
        assert UUID.fullmatch(answer.pop("requestId"))
        assert answer == {
            "code": 400,
            "status": "error",
            "error": {"code": 20001, "desc": "application not found."},
            "success": False,
        }
        assert box.calls[0].outcome == "rejected"
        assert box.accepted_phones() == []

    @pytest.mark.parametrize("sign", ["0" * 32, None], ids=["wrong", "lower-case"])
    def test_bad_sign_is_403(self, box: ProviderSandbox, sign: str | None) -> None:
        if sign is None:
            at = datetime.now(UTC)
            params = {"appId": POLYV.app_id, "timestamp": str(int(at.timestamp() * 1000))}
            sign = polyv_sign(params, POLYV.app_secret).lower()
        response = polyv_post(box.url, [A], sign=sign)
        assert response.status_code == 403
        answer = response.json()
        assert (answer["code"], answer["status"], answer["success"]) == (403, "error", False)
        assert answer["error"] == {"code": 20004, "desc": "sign mismatch"}

    def test_wrong_secret_and_second_application(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        assert polyv_post(frozen.url, [A], at=clock.now, secret="nope").status_code == 403
        response = polyv_post(frozen.url, [A], at=clock.now, app_id="second-app", secret="second-secret")
        assert response.json()["data"][0]["status"] == 12

    def test_timestamp_window_is_three_minutes(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        assert polyv_post(frozen.url, [A], at=clock.now - timedelta(minutes=2, seconds=59)).status_code == 200
        assert polyv_post(frozen.url, [A], at=clock.now + timedelta(minutes=2, seconds=59)).status_code == 200
        stale = polyv_post(frozen.url, [A], at=clock.now - timedelta(minutes=3, seconds=1))
        assert stale.status_code == 400
        assert stale.json()["error"] == {"code": 20005, "desc": "timestamp expired"}

    @pytest.mark.parametrize(
        "body",
        [
            {"phoneNumbers": [A], "templateParamNames": ["code", "x"], "templateParamValues": ["1"]},
            {"phoneNumbers": [A], "templateParamNames": ["code"]},
            {"templateParamNames": [], "templateParamValues": []},
            {"phoneNumbers": [], "templateParamNames": [], "templateParamValues": []},
            {"phoneNumbers": [None], "templateParamNames": [], "templateParamValues": []},
            {"phoneNumbers": [A] * 201, "templateParamNames": [], "templateParamValues": []},
            ["not", "an", "object"],
        ],
        ids=["names-values-mismatch", "values-missing", "numbers-missing", "no-numbers", "null-number", "201", "array"],
    )
    def test_param_errors(self, box: ProviderSandbox, body: Any) -> None:
        response = polyv_post(box.url, [], body=body)
        assert response.status_code == 400
        assert response.json()["error"] == {"code": 20002, "desc": "param error"}
        assert box.accepted_phones() == []

    def test_200_numbers_is_the_limit(self, box: ProviderSandbox) -> None:
        phones = [f"138{i:08d}" for i in range(200)]
        assert len(polyv_post(box.url, phones).json()["data"]) == 200

    def test_numbers_sent_as_json_numbers_as_in_polyvs_own_example(self, box: ProviderSandbox) -> None:
        body = {"phoneNumbers": [1768909, 17680476163], "templateParamNames": ["code"], "templateParamValues": [9802]}
        data = polyv_post(box.url, [], body=body).json()["data"]
        assert [(d["phoneNumber"], d["status"]) for d in data] == [("1768909", -2), ("17680476163", 12)]

    @pytest.mark.parametrize("number", ["1380013800", "138001380001", "+8613800138000", "12345678901", "1380013800a"])
    def test_invalid_numbers_are_minus_2(self, box: ProviderSandbox, number: str) -> None:
        assert polyv_post(box.url, [number]).json()["data"][0] == {
            "phoneNumber": number,
            "status": -2,
            "serialNo": None,
        }

    def test_eleventh_send_of_the_day_is_minus_1(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        data = polyv_post(frozen.url, [A] * 11 + [B], at=clock.now).json()["data"]
        assert [d["status"] for d in data] == [12] * 10 + [-1, 12]
        assert frozen.accepted_phones() == [A] * 10 + [B]
        # The day is Beijing's: 16:00 UTC is midnight there.
        clock.now = datetime(2024, 1, 1, 16, 0, tzinfo=UTC)
        assert polyv_post(frozen.url, [A], at=clock.now).json()["data"][0]["status"] == 12

    def test_code_fault_changes_only_that_numbers_status(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="code", operation="polyv.send", phone=B, code=-1, times=1))
        data = polyv_post(box.url, [A, B, C]).json()["data"]
        assert [d["status"] for d in data] == [12, -1, 12]
        assert data[1]["serialNo"] is None
        assert box.accepted_phones() == [A, C]
        assert box.calls[0].outcome == "fault:code"
        assert box.faults == [], "times=1 is used up"
        assert polyv_post(box.url, [B]).json()["data"][0]["status"] == 12

    def test_code_fault_for_every_number(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="code", code="11"))
        data = polyv_post(box.url, [A, B]).json()["data"]
        assert [d["status"] for d in data] == [11, 11]
        assert box.accepted_phones() == []


# --- Aliyun --------------------------------------------------------------------------------------


GATEWAY_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


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


# --- Ronglian ------------------------------------------------------------------------------------


class TestRonglian:
    def test_success_shape(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        response = ronglian_post(frozen.url, template_sms(f"{A},{B}", subAppend="8888", reqId="abc123"), at=clock.now)

        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"statusCode", "templateSMS"}
        assert answer["statusCode"] == "000000"
        # 04:00 UTC is noon in Beijing.
        assert answer["templateSMS"]["dateCreated"] == "20240101120000"
        assert re.fullmatch(r"[0-9a-f]{32}", answer["templateSMS"]["smsMessageSid"])
        [call] = frozen.calls_for("ronglian.TemplateSMS")
        assert (call.phones, call.accepted_phones, call.outcome, call.code) == ([A, B], [A, B], "accepted", "000000")
        assert call.params == {"sig": ronglian_sig(RONGLIAN.account_sid, RONGLIAN.auth_token, "20240101120000")}
        assert call.body["reqId"] == "abc123"
        headers = {k.lower(): v for k, v in call.headers.items()}
        assert base64.b64decode(headers["authorization"]).decode() == f"{RONGLIAN.account_sid}:20240101120000"

    def test_wrong_token_is_111109(self, box: ProviderSandbox) -> None:
        answer = ronglian_post(box.url, template_sms(), token="0" * 32).json()
        assert answer["statusCode"] == "111109"
        assert set(answer) == {"statusCode", "statusMsg"}
        assert box.accepted_phones() == []

    def test_sig_and_authorization_must_share_the_timestamp(self, box: ProviderSandbox) -> None:
        other = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
        assert ronglian_post(box.url, template_sms(), header_timestamp=other).json()["statusCode"] == "111109"

    def test_missing_authorization_is_111109(self, box: ProviderSandbox) -> None:
        ts = datetime.now(BEIJING).strftime("%Y%m%d%H%M%S")
        response = requests.post(
            f"{box.url}/2013-12-26/Accounts/{RONGLIAN.account_sid}/SMS/TemplateSMS",
            params={"sig": ronglian_sig(RONGLIAN.account_sid, RONGLIAN.auth_token, ts)},
            json=template_sms(),
            timeout=5,
        )
        assert response.json()["statusCode"] == "111109"

    def test_timestamp_valid_for_24_hours(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        ok = [timedelta(hours=23, minutes=59), -timedelta(hours=23, minutes=59)]
        for skew in ok:
            assert ronglian_post(frozen.url, template_sms(), at=clock.now + skew).json()["statusCode"] == "000000"
        for skew in (timedelta(hours=24, minutes=1), -timedelta(hours=25)):
            assert ronglian_post(frozen.url, template_sms(), at=clock.now + skew).json()["statusCode"] == "111106"

    def test_a_utc_timestamp_is_eight_hours_off_and_still_inside_the_window(
        self, frozen: ProviderSandbox, clock: FakeClock
    ) -> None:
        # The official Python SDK formats the host's local time (UTC on Lambda).
        utc = clock.now.strftime("%Y%m%d%H%M%S")
        response = requests.post(
            f"{frozen.url}/2013-12-26/Accounts/{RONGLIAN.account_sid}/SMS/TemplateSMS",
            params={"sig": ronglian_sig(RONGLIAN.account_sid, RONGLIAN.auth_token, utc)},
            json=template_sms(),
            headers={"Authorization": ronglian_authorization(RONGLIAN.account_sid, utc)},
            timeout=5,
        )
        assert response.json()["statusCode"] == "000000"

    def test_unknown_account_is_111128(self, box: ProviderSandbox) -> None:
        assert ronglian_post(box.url, template_sms(), account_sid="8a" + "0" * 30).json()["statusCode"] == "111128"

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (template_sms(appId="8a216da8000000000000000000000def"), "111171"),
            ({k: v for k, v in template_sms().items() if k != "to"}, "112300"),
            ({k: v for k, v in template_sms().items() if k != "appId"}, "112310"),
            ({k: v for k, v in template_sms().items() if k != "templateId"}, "112307"),
            (template_sms(",".join(f"138{i:08d}" for i in range(201))), "160048"),
            (template_sms(f"{A},{B},{A}"), "160045"),
            (template_sms(f"{A},1380013800"), "160042"),
            (template_sms(f"{A}, {B}"), "160042"),
            (template_sms(reqId="x" * 33), "160055"),
            (template_sms(reqId="order-42"), "160055"),
            (template_sms(subAppend="12345"), "160065"),
            (template_sms(subAppend="88a"), "160065"),
            (template_sms(templateId="SMS_1"), "160032"),
            (template_sms(datas=[1234]), "160031"),
        ],
        ids=[
            "app-mismatch",
            "no-to",
            "no-app",
            "no-template",
            "201-numbers",
            "duplicate",
            "bad-number",
            "space",
            "long-req-id",
            "req-id-dash",
            "long-sub-append",
            "sub-append-letters",
            "template-id",
            "datas-number",
        ],
    )
    def test_body_errors(self, box: ProviderSandbox, body: dict[str, Any], code: str) -> None:
        response = ronglian_post(box.url, body)
        assert response.status_code == 200
        answer = response.json()
        assert answer["statusCode"] == code
        assert answer["statusMsg"]
        assert box.accepted_phones() == []

    def test_200_numbers_and_32_char_req_id_are_the_limits(self, box: ProviderSandbox) -> None:
        to = ",".join(f"138{i:08d}" for i in range(200))
        assert ronglian_post(box.url, template_sms(to, reqId="r" * 32)).json()["statusCode"] == "000000"
        assert len(box.accepted_phones()) == 200

    def test_a_req_id_is_accepted_once_per_beijing_day(self, frozen: ProviderSandbox, clock: FakeClock) -> None:
        assert ronglian_post(frozen.url, template_sms(reqId="order42"), at=clock.now).json()["statusCode"] == "000000"
        again = ronglian_post(frozen.url, template_sms(reqId="order42"), at=clock.now).json()
        assert again["statusCode"] == "160054"
        assert frozen.accepted_phones() == [A]
        clock.now = datetime(2024, 1, 1, 15, 59, tzinfo=UTC)
        assert ronglian_post(frozen.url, template_sms(reqId="order42"), at=clock.now).json()["statusCode"] == "160054"
        clock.now = datetime(2024, 1, 1, 16, 0, tzinfo=UTC)
        assert ronglian_post(frozen.url, template_sms(reqId="order42"), at=clock.now).json()["statusCode"] == "000000"
        assert frozen.accepted_phones() == [A, A]

    def test_a_req_id_refused_by_a_fault_is_not_spent(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="code", operation="ronglian.TemplateSMS", code="160064", times=1))
        assert ronglian_post(box.url, template_sms(reqId="r1")).json()["statusCode"] == "160064"
        assert ronglian_post(box.url, template_sms(reqId="r1")).json()["statusCode"] == "000000"


# --- Faults --------------------------------------------------------------------------------------


def send(kind: str, url: str, timeout: float | tuple[float, float] = 5) -> requests.Response:
    if kind == "polyv":
        return polyv_post(url, [A], timeout=timeout)
    if kind == "aliyun":
        return aliyun_call(url, "SendInterSms", inter(), timeout=timeout)
    return ronglian_post(url, template_sms(), timeout=timeout)


PROVIDERS = ["polyv", "aliyun", "ronglian"]


class TestFaults:
    def test_http_status_default_is_500_with_the_providers_own_body(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="http_status"))
        polyv, aliyun, ronglian = (send(p, box.url) for p in PROVIDERS)

        assert polyv.status_code == 500
        assert {k: v for k, v in polyv.json().items() if k != "requestId"} == {
            "code": 500,
            "status": "error",
            "error": {"code": 500, "desc": "internal server error."},
            "success": False,
        }
        assert aliyun.status_code == 500
        assert set(aliyun.json()) == GATEWAY_KEYS
        assert aliyun.json()["Code"] == "InternalError"
        assert (ronglian.status_code, ronglian.json()["statusCode"]) == (500, "160000")
        assert [c.outcome for c in box.calls] == ["fault:http_status"] * 3
        assert box.accepted_phones() == []

    def test_http_status_with_a_code(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="http_status", operation="aliyun.SendInterSms", status=503))
        box.add_fault(Fault(kind="http_status", operation="polyv.send", status=400, code=20001))
        assert send("aliyun", box.url).json()["Code"] == "ServiceUnavailable"
        polyv = send("polyv", box.url)
        assert (polyv.status_code, polyv.json()["code"], polyv.json()["error"]["code"]) == (400, 400, 20001)

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_timeout_records_the_call_then_never_answers(self, box: ProviderSandbox, provider: str) -> None:
        box.add_fault(Fault(kind="timeout", delay=0.5))
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            send(provider, box.url, timeout=(1, 0.2))
        assert time.monotonic() - started < 0.45
        [call] = box.calls
        assert (call.outcome, call.status, call.accepted_phones) == ("fault:timeout", None, [])
        assert call.phones

    def test_timeout_closes_without_an_answer_after_the_delay(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="timeout", delay=0.2))
        with pytest.raises(requests.exceptions.ConnectionError):
            send("aliyun", box.url, timeout=(1, 3))

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_reset(self, box: ProviderSandbox, provider: str) -> None:
        box.add_fault(Fault(kind="reset", times=1))
        with pytest.raises(requests.exceptions.ConnectionError):
            send(provider, box.url)
        assert box.calls[0].outcome == "fault:reset"
        assert send(provider, box.url).status_code == 200, "times=1 is used up"

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_garbled(self, box: ProviderSandbox, provider: str) -> None:
        box.add_fault(Fault(kind="garbled"))
        response = send(provider, box.url)
        assert response.status_code == 200
        with pytest.raises(ValueError):  # noqa: PT011
            json.loads(response.text)
        assert box.calls[0].outcome == "fault:garbled"
        assert box.accepted_phones() == []

    def test_slow_answers_late_but_normally(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="slow", delay=0.3))
        started = time.monotonic()
        assert send("ronglian", box.url).json()["statusCode"] == "000000"
        assert time.monotonic() - started >= 0.3

    def test_slow_past_the_clients_timeout_is_sent_all_the_same(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="slow", delay=0.5))
        with pytest.raises(requests.exceptions.ReadTimeout):
            send("polyv", box.url, timeout=(1, 0.2))
        assert box.accepted_phones() == [A]
        assert box.calls[0].outcome == "accepted"

    def test_operation_filter(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="http_status", operation="ronglian.TemplateSMS"))
        assert send("polyv", box.url).status_code == 200
        assert send("ronglian", box.url).status_code == 500

    def test_clear_faults(self, box: ProviderSandbox) -> None:
        box.add_fault(Fault(kind="reset"))
        box.clear_faults()
        assert send("polyv", box.url).status_code == 200

    @pytest.mark.parametrize(
        "fields",
        [
            {"kind": "explode"},
            {"kind": "code"},
            {"kind": "code", "operation": "polyv.send", "code": "isv.X"},
            {"kind": "reset", "operation": "polyv.sms"},
            {"kind": "reset", "times": 0},
            {"kind": "http_status", "status": 99},
            {"kind": "slow", "delay": -1},
            {"kind": "reset", "colour": "red"},
            {"operation": "polyv.send"},
        ],
    )
    def test_invalid_faults_are_refused(self, fields: dict[str, Any]) -> None:
        with pytest.raises(ValueError):  # noqa: PT011
            Fault.from_dict(fields)


# --- Lifecycle, recording and the control API ----------------------------------------------------


class TestLifecycle:
    def test_go_down_refuses_connections_until_come_up(self, box: ProviderSandbox) -> None:
        url = box.url
        box.go_down()
        assert not box.is_up
        with pytest.raises(requests.exceptions.ConnectionError, match=r"(?i)refused"):
            send("polyv", url)
        assert requests.get(box.control_url + "/", timeout=5).json()["up"] is False
        box.come_up()
        box.come_up()
        assert box.url == url
        assert send("polyv", url).status_code == 200
        assert len(box.calls) == 1

    def test_stop_does_not_wait_for_a_sleeping_timeout(self) -> None:
        sandbox = ProviderSandbox().start()
        url = sandbox.url
        sandbox.add_fault(Fault(kind="timeout"))
        errors: list[BaseException] = []

        def call() -> None:
            try:
                send("polyv", url, timeout=(1, 20))
            except requests.exceptions.RequestException as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while not sandbox.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 1
        caller.join(5)
        assert errors, "the client got no answer"
        with pytest.raises(requests.exceptions.ConnectionError):
            send("polyv", url)

    def test_only_loopback(self) -> None:
        for host in ("0.0.0.0", "192.168.1.10", "::1", "localhost"):  # noqa: S104
            with pytest.raises(ValueError, match="loopback"):
                ProviderSandbox(host=host)

    def test_context_manager_and_urls(self) -> None:
        with ProviderSandbox() as sandbox:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
            assert sandbox.control_url != sandbox.url
        with pytest.raises(RuntimeError):
            _ = sandbox.url

    def test_concurrent_calls_are_all_recorded(self, box: ProviderSandbox) -> None:
        phones = [f"138{i:08d}" for i in range(30)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(lambda p: polyv_post(box.url, [p]).status_code, phones))
        assert statuses == [200] * 30
        assert sorted(box.accepted_phones()) == phones
        assert len(box.calls) == 30

    def test_accepted_phones_repeat_per_send(self, box: ProviderSandbox) -> None:
        polyv_post(box.url, [A])
        aliyun_call(box.url, "SendBatchSms", batch([A, B]))
        assert box.accepted_phones() == [A, A, B]

    def test_unknown_paths_are_recorded_and_404(self, box: ProviderSandbox) -> None:
        response = requests.post(box.url + "/v2/other", json={}, timeout=5)
        assert response.status_code == 404
        assert [(c.operation, c.status) for c in box.calls] == [("unknown", 404)]

    def test_unreadable_requests_are_recorded_and_400(self, box: ProviderSandbox) -> None:
        response = requests.get(box.url + "/?Action=%FF", timeout=5)
        assert response.status_code == 400
        assert [(c.operation, c.outcome, c.status) for c in box.calls] == [("unknown", "rejected", 400)]

    def test_extra_accounts(self) -> None:
        accounts = SandboxAccounts().with_aliyun("second-akid", "second-secret")
        with ProviderSandbox(accounts=accounts) as sandbox:
            ok = aliyun_call(sandbox.url, "SendInterSms", inter(), access_key_id="second-akid", secret="second-secret")
            assert ok.json()["Code"] == "OK"
            assert aliyun_call(sandbox.url, "SendInterSms", inter()).json()["Code"] == "OK"


class TestControlApi:
    def test_round_trip(self, box: ProviderSandbox) -> None:
        control = box.control_url
        bad = requests.post(control + "/faults", json={"kind": "explode"}, timeout=5)
        assert bad.status_code == 400
        created = requests.post(
            control + "/faults", json={"kind": "code", "operation": "polyv.send", "phone": B, "code": -2}, timeout=5
        )
        assert created.status_code == 201
        assert requests.get(control + "/faults", timeout=5).json()["faults"][0]["phone"] == B

        data = polyv_post(box.url, [A, B]).json()["data"]
        assert [d["status"] for d in data] == [12, -2]

        calls = requests.get(control + "/calls", timeout=5).json()["calls"]
        assert [(c["operation"], c["phones"], c["accepted_phones"]) for c in calls] == [("polyv.send", [A, B], [A])]
        assert datetime.fromisoformat(calls[0]["at"]).tzinfo is not None
        filtered = requests.get(control + "/calls", params={"operation": "aliyun.SendInterSms"}, timeout=5)
        assert filtered.json()["calls"] == []
        assert requests.get(control + "/accepted-phones", timeout=5).json() == {"accepted_phones": [A]}

        assert requests.delete(control + "/faults", timeout=5).status_code == 200
        assert box.faults == []

        assert requests.post(control + "/down", timeout=5).json() == {"up": False}
        with pytest.raises(requests.exceptions.ConnectionError):
            send("polyv", box.url)
        assert requests.post(control + "/up", timeout=5).json() == {"up": True}
        assert send("polyv", box.url).status_code == 200

        assert requests.post(control + "/reset", timeout=5).status_code == 200
        assert box.calls == []
        assert requests.get(control + "/calls", timeout=5).json() == {"calls": []}

    def test_unknown_and_wrong_method(self, box: ProviderSandbox) -> None:
        assert requests.get(box.control_url + "/nothing", timeout=5).status_code == 404
        assert requests.get(box.control_url + "/reset", timeout=5).status_code == 405


def test_standalone_run_prints_its_url_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.sandbox", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) \(control API on (http://127\.0\.0\.1:\d+)\)", line)
        assert match, line
        assert requests.get(match.group(2) + "/", timeout=5).json()["up"] is True
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
