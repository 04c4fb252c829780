"""Every route over HTTP against the running local stack: API Gateway emulator, function
workers, moto (Secrets Manager) and the provider sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.sandbox import Fault, ProviderSandbox
from local.stack import LocalStack

EVENTS = Path(__file__).parents[2] / "events"


def sample(event_file: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.loads((EVENTS / event_file).read_text())["body"])
    return body


def e164(phone: str) -> str:
    """How the answer spells a number of these tests: mainland ones 11 digits, Hong Kong's 8."""
    return f"+852{phone}" if len(phone) == 8 else f"+86{phone}"


def phones_of(body: dict[str, Any]) -> list[str]:
    return body.get("phone_numbers") or [m["phone_number"] for m in body["messages"]]


def with_phones(body: dict[str, Any], phones: list[str]) -> dict[str, Any]:
    if "messages" in body:
        template = body["messages"][0]
        return {**body, "messages": [{**template, "phone_number": p} for p in phones]}
    return {**body, "phone_numbers": phones}


@dataclass(frozen=True)
class Route:
    path: str
    event_file: str
    operation: str
    phones: list[str]

    def body(self, phones: list[str] | None = None) -> dict[str, Any]:
        return with_phones(sample(self.event_file), phones or self.phones)


MAINLAND = ["13800138000", "13900139000"]
ROUTES = {
    "polyv": Route("/v1/polyv/messages", "polyv-send.json", "polyv.send", MAINLAND),
    "aliyun-inter": Route("/v1/aliyun/messages", "aliyun-send.json", "aliyun.SendInterSms", ["91234567", "92345678"]),
    "aliyun-batch": Route("/v1/aliyun/batch-messages", "aliyun-batch-send.json", "aliyun.SendBatchSms", MAINLAND),
    "ronglian": Route("/v1/ronglian/messages", "ronglian-send.json", "ronglian.TemplateSMS", MAINLAND),
}


@pytest.fixture(params=list(ROUTES.values()), ids=list(ROUTES))
def route(request: pytest.FixtureRequest) -> Route:
    chosen: Route = request.param
    return chosen


@pytest.fixture
def sandbox(local_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert local_stack.sandbox is not None
    local_stack.sandbox.come_up()
    local_stack.sandbox.reset()
    yield local_stack.sandbox
    local_stack.sandbox.come_up()
    local_stack.sandbox.reset()


def post(stack: LocalStack, path: str, body: Any, *, key: str | None = "default") -> requests.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = stack.api_key if key == "default" else key
    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(f"{stack.api_url}{path}", data=data, headers=headers, timeout=30)


class TestEveryRoute:
    def test_success(self, local_stack: LocalStack, sandbox: ProviderSandbox, route: Route) -> None:
        response = post(local_stack, route.path, route.body())

        assert response.status_code == 200, response.text
        body = response.json()
        assert [r["phone_number"] for r in body["results"]] == [e164(p) for p in route.phones]
        assert {r["status"] for r in body["results"]} == {"accepted"}
        assert all(r["message_id"] for r in body["results"])
        assert body["request_id"] == response.headers["x-amzn-RequestId"]
        assert sorted(sandbox.accepted_phones()) == sorted(route.phones)
        assert sandbox.calls_for(route.operation)

    def test_some_numbers_rejected(self, local_stack: LocalStack, sandbox: ProviderSandbox, route: Route) -> None:
        rejection: Any = {
            "polyv.send": -2,
            "aliyun.SendInterSms": "isv.MOBILE_NUMBER_ILLEGAL",
            "aliyun.SendBatchSms": "isv.MOBILE_NUMBER_ILLEGAL",
            "ronglian.TemplateSMS": "160042",
        }[route.operation]
        # SendBatchSms and TemplateSMS answer per call (100 numbers): a second call is rejected whole.
        phones = route.phones
        if route.operation in ("aliyun.SendBatchSms", "ronglian.TemplateSMS"):
            phones = [f"136{i:08d}" for i in range(101)]
        sandbox.add_fault(Fault(kind="code", operation=route.operation, phone=phones[-1], code=rejection))

        response = post(local_stack, route.path, route.body(phones))

        assert response.status_code == 200, response.text
        statuses = [r["status"] for r in response.json()["results"]]
        assert statuses == ["accepted"] * (len(phones) - 1) + ["rejected"]
        assert sorted(sandbox.accepted_phones()) == sorted(phones[:-1])

    def test_invalid_input_is_400_and_nothing_reaches_the_provider(
        self, local_stack: LocalStack, sandbox: ProviderSandbox, route: Route
    ) -> None:
        for bad in (route.body(["+1-555-0100"]), {"unexpected": True}, "{not json", ""):
            response = post(local_stack, route.path, bad)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert error["message"]
        assert sandbox.calls == []

    @pytest.mark.parametrize("key", [None, "wrong-key"])
    def test_missing_or_wrong_api_key_is_403(
        self, local_stack: LocalStack, sandbox: ProviderSandbox, route: Route, key: str | None
    ) -> None:
        response = post(local_stack, route.path, route.body(), key=key)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert sandbox.calls == []

    def test_provider_down_is_502(self, local_stack: LocalStack, sandbox: ProviderSandbox, route: Route) -> None:
        sandbox.go_down()

        response = post(local_stack, route.path, route.body())

        assert response.status_code == 502
        body = response.json()
        assert body["error"]["code"] == "provider_failed"
        assert [(r["status"], r["retry_safe"]) for r in body["results"]] == [("retryable", True)] * 2

    def test_secrets_manager_down_is_503_and_nothing_is_sent(
        self, local_stack: LocalStack, sandbox: ProviderSandbox, route: Route
    ) -> None:
        local_stack.stop_moto()
        try:
            response = post(local_stack, route.path, route.body())
        finally:
            local_stack.start_moto()

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "dependency_unavailable"
        assert sandbox.calls == []
        assert post(local_stack, route.path, route.body()).status_code == 200, "back once Secrets Manager is"


@pytest.mark.parametrize("provider", ["polyv", "aliyun", "ronglian"])
def test_swagger_ui_and_openapi_document_need_no_key(local_stack: LocalStack, provider: str) -> None:
    ui = requests.get(f"{local_stack.api_url}/v1/{provider}/docs", timeout=30)
    document = requests.get(f"{local_stack.api_url}/v1/{provider}/docs?format=json", timeout=30)
    assert ui.status_code == 200
    assert "swagger" in ui.text.lower()
    assert document.status_code == 200
    assert any(path.startswith(f"/v1/{provider}/") for path in document.json()["paths"])
