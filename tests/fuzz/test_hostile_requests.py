"""Requests no schema generator writes, against every send route of the running local stack.

Each must get what any request must get (`checks.check_answer`): no 5xx, a 4xx in the documented
error shape, and nothing sent for a 4xx. The last ones once answered 500 or sent twice; they
stay as regression tests.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import requests

from local.sandbox import ProviderSandbox
from local.stack import LocalStack
from tests.fuzz.checks import ROUTES, VALID_BODIES, check_answer, check_error_shape, with_phones

pytestmark = pytest.mark.e2e

JSON = "application/json"


def post(stack: LocalStack, path: str, data: bytes, content_type: str | None, **headers: str) -> requests.Response:
    sent = {"x-api-key": stack.api_key, **headers}
    if content_type is not None:
        sent["content-type"] = content_type
    return requests.post(f"{stack.api_url}{path}", data=data, headers=sent, timeout=30)


def context(path: str, data: bytes, content_type: str | None, response: requests.Response) -> str:
    return (
        f"POST {path} content-type={content_type} body={data[:300]!r}… -> {response.status_code} {response.text[:500]}"
    )


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


def lone_surrogate_param(path: str) -> bytes:
    """The valid body with `\\ud800` (a lone UTF-16 surrogate, legal JSON) as a parameter value."""
    body = json.loads(json.dumps(VALID_BODIES[path]))
    if "template_param_values" in body:
        body["template_param_values"] = ["\ud800"]
    elif "datas" in body:
        body["datas"] = ["\ud800"]
    elif "messages" in body:
        body["messages"][0]["template_param"] = {"code": "\ud800"}
    else:
        body["template_param"] = {"code": "\ud800"}
    return dumps(body)  # ensure_ascii: the surrogate travels as the escape \ud800


def hostile_bodies(path: str) -> dict[str, tuple[bytes, str | None]]:
    valid = dumps(VALID_BODIES[path])
    return {
        "empty body": (b"", JSON),
        "null": (b"null", JSON),
        "a list": (b"[]", JSON),
        "a string": (b'"text"', JSON),
        "truncated JSON": (valid[:-3], JSON),
        "invalid UTF-8": (valid.replace(b'"', b'"\xff', 1), JSON),
        "NaN and Infinity": (valid[:-1] + b', "x": [NaN, Infinity, -Infinity]}', JSON),
        "duplicate keys": (valid[:-1] + b', "x": 1, "x": 2}', JSON),
        "UTF-16 body": (json.dumps(VALID_BODIES[path]).encode("utf-16"), "application/json; charset=utf-16"),
        "form-encoded nonsense": (b"a=1&a=2&phone_numbers=", "application/x-www-form-urlencoded"),
        "multipart with a boundary": (
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
        # Parsers raise other errors than a JSON decode error for these (they used to answer 500).
        "text/plain": (valid, "text/plain"),
        "multipart without boundary": (valid, "multipart/form-data"),
        "an integer of 5000 digits": (b'{"x": ' + b"7" * 5000 + b"}", JSON),
        "nesting 50000 deep": (b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", JSON),
        "lone surrogate in a parameter value": (lone_surrogate_param(path), JSON),
    }


CASES = [pytest.param(path, name, id=f"{path}:{name}") for path in ROUTES for name in hostile_bodies(path)]


@pytest.mark.parametrize(("path", "name"), CASES)
def test_hostile_body(fuzz_stack: LocalStack, stack_sandbox: ProviderSandbox, path: str, name: str) -> None:
    data, content_type = hostile_bodies(path)[name]
    stack_sandbox.reset()
    response = post(fuzz_stack, path, data, content_type)
    check_answer(response.status_code, response.content, stack_sandbox, context(path, data, content_type, response))


@pytest.mark.parametrize("path", ROUTES)
def test_the_valid_body_is_sent(fuzz_stack: LocalStack, stack_sandbox: ProviderSandbox, path: str) -> None:
    """The baseline the hostile bodies are variations of."""
    stack_sandbox.reset()
    response = post(fuzz_stack, path, dumps(VALID_BODIES[path]), JSON)
    assert response.status_code == 200, response.text
    assert stack_sandbox.accepted_phones()


@pytest.mark.parametrize("key", ["", "with space", "é", "x" * 256])
def test_invalid_idempotency_keys_are_400(fuzz_stack: LocalStack, stack_sandbox: ProviderSandbox, key: str) -> None:
    stack_sandbox.reset()
    path = "/v1/polyv/messages"
    data = dumps(VALID_BODIES[path])
    response = requests.post(
        f"{fuzz_stack.api_url}{path}",
        data=data,
        headers={
            "x-api-key": fuzz_stack.api_key,
            "content-type": JSON,
            "Idempotency-Key": key.encode().decode("latin-1"),
        },
        timeout=30,
    )
    check_answer(response.status_code, response.content, stack_sandbox, context(path, data, JSON, response))
    assert response.status_code == 400, response.text


ARABIC_INDIC, FULLWIDTH, DEVANAGARI = 0x0660, 0xFF10, 0x0966


def written_with(zero: int, number: str, keep: int = 2) -> str:
    """`number` with all but its first `keep` digits written in another script's digits, which
    Python's and pydantic's `\\d` match but no phone number is written with."""
    return number[:keep] + number[keep:].translate({ord("0") + d: zero + d for d in range(10)})


NON_ASCII_DIGITS = {
    "/v1/polyv/messages": [written_with(ARABIC_INDIC, "13800138000"), written_with(FULLWIDTH, "13800138000")],
    "/v1/aliyun/messages": [written_with(ARABIC_INDIC, "91234567", 0), written_with(DEVANAGARI, "91234567", 0)],
    "/v1/aliyun/batch-messages": [written_with(FULLWIDTH, "13800138000"), written_with(ARABIC_INDIC, "85291234567", 1)],
    "/v1/ronglian/messages": [written_with(DEVANAGARI, "13800138000"), written_with(FULLWIDTH, "13800138000")],
}


@pytest.mark.parametrize("path", ROUTES)
def test_phone_numbers_with_non_ascii_digits_are_refused(
    fuzz_stack: LocalStack, stack_sandbox: ProviderSandbox, path: str
) -> None:
    """Arabic-Indic, full-width and Devanagari digits are digits to a Unicode-aware `\\d`: the
    models accept ASCII digits only, or such numbers would be sent and counted as other numbers."""
    for phone in NON_ASCII_DIGITS[path]:
        stack_sandbox.reset()
        data = json.dumps(with_phones(path, [phone]), ensure_ascii=False).encode()
        response = post(fuzz_stack, path, data, JSON)
        check_answer(response.status_code, response.content, stack_sandbox, context(path, data, JSON, response))
        sent = [p for call in stack_sandbox.calls for p in call.phones]
        assert response.status_code == 400, f"{phone!r} was answered {response.status_code}, sent {sent}"


def test_a_batch_failing_midway_is_not_sent_twice_under_one_idempotency_key(
    fuzz_stack: LocalStack, stack_sandbox: ProviderSandbox
) -> None:
    """101 messages would go out in two SendBatchSms calls, the second with a lone surrogate in a
    parameter: once, the first call's 100 SMS went out, the caller got 500, Powertools dropped the
    idempotency record and a retry with the same key sent the 100 again. Now it is refused whole."""
    path = "/v1/aliyun/batch-messages"
    messages: list[dict[str, Any]] = [
        {"phone_number": f"136{i:08d}", "template_param": {"code": "1234"}} for i in range(101)
    ]
    messages[-1]["template_param"] = {"code": "\ud800"}
    data = dumps({"template_code": "SMS_1", "sign_name": "Shop", "messages": messages})
    stack_sandbox.reset()
    answers = [post(fuzz_stack, path, data, JSON, **{"Idempotency-Key": "fuzz-partial-batch"}) for _ in range(2)]

    accepted = Counter(stack_sandbox.accepted_phones())
    twice = sorted(phone for phone, times in accepted.items() if times > 1)
    statuses = [a.status_code for a in answers]
    assert not twice, f"{len(twice)} numbers got the SMS twice; answers {statuses}: {answers[0].text[:300]}"
    for answer in answers:
        assert answer.status_code < 500, f"answers {statuses}: {answer.text[:300]}"


def test_every_status_a_send_route_answers_is_documented(fuzz_stack: LocalStack) -> None:
    """Bodies over 256 KiB are answered 413 payload_too_large: the served documents list it."""
    path = "/v1/polyv/messages"
    response = post(fuzz_stack, path, b'{"x": "' + b"a" * (300 * 1024) + b'"}', JSON)
    assert response.status_code == 413
    check_error_shape(response.status_code, response.content, response.text)
    undocumented = []
    for provider in ("polyv", "aliyun", "ronglian"):
        document = requests.get(f"{fuzz_stack.api_url}/v1/{provider}/docs?format=json", timeout=30).json()
        for route, operations in document["paths"].items():
            for method, operation in operations.items():
                if "413" not in operation["responses"]:
                    undocumented.append(f"{method.upper()} {route}")
    assert not undocumented, f"413 is not documented for {undocumented}"
