"""What every answer of a send route must satisfy, shared by the fuzz tests over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.sandbox import ProviderSandbox

# One well-formed body per send route, which the sandbox accepts.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/v1/polyv/messages": {
        "phone_numbers": ["13800138000"],
        "template_param_names": ["code"],
        "template_param_values": ["1234"],
    },
    "/v1/aliyun/messages": {
        "phone_numbers": ["91234567"],
        "country_code": "HK",
        "sign_name": "Shop",
        "template_code": "SMS_1",
        "template_param": {"code": "1234"},
    },
    "/v1/aliyun/batch-messages": {
        "template_code": "SMS_1",
        "sign_name": "Shop",
        "messages": [{"phone_number": "13800138000", "template_param": {"code": "1234"}}],
    },
    "/v1/ronglian/messages": {"phone_numbers": ["13800138000"], "template_id": "1", "datas": ["1234"]},
}
ROUTES = list(VALID_BODIES)


def phones_of(body: dict[str, Any]) -> list[str]:
    if "messages" in body:
        return [m["phone_number"] for m in body["messages"]]
    return list(body["phone_numbers"])


def with_phones(path: str, phones: list[str]) -> dict[str, Any]:
    body = dict(VALID_BODIES[path])
    if "messages" in body:
        template = body["messages"][0]
        body["messages"] = [{**template, "phone_number": p} for p in phones]
    else:
        body["phone_numbers"] = phones
    return body


def check_error_shape(status: int, content: bytes, context: str) -> None:
    """`{"error": {"code": non-empty str, "message": str, ...}, "request_id": non-empty str}`."""
    try:
        body = json.loads(content)
    except ValueError:
        pytest.fail(f"a {status} whose body is not JSON: {context}")
    assert isinstance(body, dict), context
    error = body.get("error")
    assert isinstance(error, dict), context
    assert isinstance(error.get("code"), str), context
    assert error["code"], context
    assert isinstance(error.get("message"), str), context
    assert "request_id" in body, context
    assert isinstance(body["request_id"], str), context
    assert body["request_id"], context


def check_answer(status: int, content: bytes, sandbox: ProviderSandbox, context: str) -> None:
    """What holds for any request to a send route (with the sandbox up): no 5xx, and a 4xx is in
    the documented shape and sent nothing. The sandbox's recording must be emptied before the request."""
    assert status < 500, f"server error: {context}"
    if 400 <= status < 500:
        check_error_shape(status, content, context)
        calls = [(c.operation, c.phones) for c in sandbox.calls]
        assert calls == [], f"a {status} after provider calls {calls}: {context}"
