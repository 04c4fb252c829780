"""The sandbox's Polyv sms/send over real loopback HTTP, with requests built by hand."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.sandbox import Fault, ProviderSandbox, polyv_sign
from tests.sandbox.provider_calls import POLYV, SERIAL, UUID, A, B, C, FakeClock, polyv_post


class TestKnownAnswers:
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
