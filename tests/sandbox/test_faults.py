"""Faults injected into provider calls, over real loopback HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from local.sandbox import Fault, ProviderSandbox
from tests.sandbox.provider_calls import GATEWAY_KEYS, PROVIDERS, A, send


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
