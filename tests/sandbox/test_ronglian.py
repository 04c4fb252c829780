"""The sandbox's Ronglian TemplateSMS over real loopback HTTP, with requests built by hand."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from local.sandbox import Fault, ProviderSandbox, ronglian_authorization, ronglian_sig
from tests.sandbox.provider_calls import BEIJING, RONGLIAN, A, B, FakeClock, ronglian_post, template_sms


class TestKnownAnswers:
    def test_ronglian_sig_and_authorization(self) -> None:
        sid, token, ts = "8a216da8000000000000000000000001", "0123456789abcdef0123456789abcdef", "20240101120000"
        assert ronglian_sig(sid, token, ts) == "8B30444D4D2FA787D091F4B0F86F1463"
        assert ronglian_authorization(sid, ts) == "OGEyMTZkYTgwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDE6MjAyNDAxMDExMjAwMDA="


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
