"""Schemathesis against each provider's served OpenAPI document, on the running local stack.

Every operation of every document gets generated requests in three modes: `positive` (bodies the
schema allows), `negative` (bodies it forbids) and `repaired` (positive bodies brought into line
with the rules a JSON Schema cannot say: distinct numbers, names paired with values, a sign name
for every message). For each answer:

- never a 5xx (the sandbox is up and the quotas are off, so not even a 502);
- a 4xx is in the documented error shape, and nothing reached the provider for it (the sandbox's
  recording is emptied before each case and must still be empty);
- the status agrees with the request model: 200 when `model_validate` accepts the JSON body, 400
  when it refuses it;
- a 200 sent each number of the request exactly once, and answers one result per number, in order;
- Schemathesis' own checks: documented status, content type and response schema, and a body the
  schema forbids refused.

Schemathesis' pytest integration in its lazy form (`schemathesis.pytest.from_fixture`) cannot run
under pytest 9.2 (it reads `Function._nodeid`, which pytest no longer has), and the eager form needs
the document at import time, before the stack is up. So each operation's Hypothesis strategy
(`APIOperation.as_strategy`) is driven here by `@given`, with the same checks.

Bounded and deterministic: EXAMPLES cases per operation and mode, derandomized, no deadline, no
shrinking (each shrink step is a request through the stack; the failing case is printed whole).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from local.sandbox import ProviderSandbox
from local.stack import LocalStack
from smsgw.api import MAX_BODY_BYTES
from smsgw.models import (
    AliyunBatchSmsRequest,
    AliyunInterSmsRequest,
    ParamName,
    ParamValue,
    PolyvSendRequest,
    RonglianTemplateSmsRequest,
    SendRequest,
)
from tests.fuzz.checks import check_answer, phones_of

pytestmark = pytest.mark.e2e

EXAMPLES = 40
"""Cases per operation and mode: 4 operations x 3 modes x 40 = 480 requests."""
REQUEST_TIMEOUT = 30
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    # Schemathesis' generation trips the health checks (slow, large data): they judge generation, not the gateway.
    suppress_health_check=list(HealthCheck),
)
SCHEMA_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# Every operation each function serves, with its request model and its provider operation.
OPERATIONS: dict[str, dict[str, type[SendRequest]]] = {
    "polyv": {"POST /v1/polyv/messages": PolyvSendRequest},
    "aliyun": {
        "POST /v1/aliyun/messages": AliyunInterSmsRequest,
        "POST /v1/aliyun/batch-messages": AliyunBatchSmsRequest,
    },
    "ronglian": {"POST /v1/ronglian/messages": RonglianTemplateSmsRequest},
}
MODES = ("positive", "negative", "repaired")
CASES = [(provider, label, mode) for provider, labels in OPERATIONS.items() for label in labels for mode in MODES]


# --- The served documents ----------------------------------------------------------------------


def served_schema(stack: LocalStack, provider: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/v1/{provider}/docs?format=json", timeout=REQUEST_TIMEOUT)
    schema.config.update(base_url=stack.api_url, headers={"x-api-key": stack.api_key}, request_timeout=REQUEST_TIMEOUT)
    return schema


@pytest.fixture(scope="session")
def schemas(fuzz_stack: LocalStack) -> dict[str, Any]:
    return {provider: served_schema(fuzz_stack, provider) for provider in OPERATIONS}


@pytest.mark.parametrize("provider", list(OPERATIONS))
def test_every_served_operation_is_fuzzed(schemas: dict[str, Any], provider: str) -> None:
    served = sorted(result.ok().label for result in schemas[provider].get_all_operations())
    assert served == sorted(OPERATIONS[provider])


# --- Bodies the JSON Schema allows but the model refuses, brought into line ----------------------


def _distinct(items: list[Any], key: Callable[[Any], Any] = lambda item: item) -> list[Any]:
    seen: set[Any] = set()
    kept = []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return kept


def repair(label: str, body: Any) -> Any:
    """The body with the model's cross-field rules satisfied; the rest is left to the generator."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if "phone_numbers" in body and isinstance(body["phone_numbers"], list):
        body["phone_numbers"] = _distinct(body["phone_numbers"])
    if label == "POST /v1/polyv/messages":
        names = _distinct(body.get("template_param_names") or [])
        values = body.get("template_param_values") or []
        pairs = min(len(names), len(values))
        body["template_param_names"], body["template_param_values"] = names[:pairs], values[:pairs]
    if label == "POST /v1/aliyun/batch-messages" and isinstance(body.get("messages"), list):
        messages = _distinct(body["messages"], key=lambda m: m.get("phone_number"))
        # patternProperties does not forbid other keys (nor their values); the model does.
        messages = [
            {**m, "template_param": {k: v for k, v in (m.get("template_param") or {}).items() if _valid_param(k, v)}}
            for m in messages
        ]
        if body.get("sign_name") is None:
            body["sign_name"] = "sign"
        with_code = [m for m in messages if m.get("sms_up_extend_code") is not None]
        if with_code and len(with_code) != len(messages):
            messages = [{**m, "sms_up_extend_code": None} for m in messages]
        body["messages"] = messages
    return body


PARAM_NAME = pydantic.TypeAdapter(ParamName)
PARAM_VALUE = pydantic.TypeAdapter(ParamValue)


def _valid_param(name: str, value: Any) -> bool:
    try:
        PARAM_NAME.validate_python(name)
        PARAM_VALUE.validate_python(value)
    except pydantic.ValidationError:
        return False
    return True


def strategy(operation: Any, label: str, mode: str) -> st.SearchStrategy[Case[Any]]:
    generation_mode = GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE
    cases: st.SearchStrategy[Case[Any]] = operation.as_strategy(generation_mode=generation_mode)
    if mode != "repaired":
        return cases

    def repaired(case: Case[Any]) -> Case[Any]:
        case.body = repair(label, case.body)
        return case

    return cases.map(repaired)


# --- The checks --------------------------------------------------------------------------------


def describe(case: Case[Any], response: Response) -> str:
    sent = case.body if not isinstance(case.body, bytes) else case.body[:500]
    headers = {k: ("…" if k.lower() == "x-api-key" else v) for k, v in (case.headers or {}).items()}
    return (
        f"{case.method} {case.path} media_type={case.media_type} headers={headers} "
        f"body={json.dumps(sent, ensure_ascii=False, default=repr)[:3000]} "
        f"-> {response.status_code} {response.content[:2000]!r}"
    )


def model_accepts(model: type[SendRequest], case: Case[Any]) -> bool | None:
    """Whether the request model takes the body, when it is sent as plain JSON; else None."""
    if case.media_type != "application/json" or case.body is NOT_SET:
        return None
    if any(name.lower() == "content-type" for name in case.headers or {}):
        return None
    try:
        model.model_validate(case.body)
    except pydantic.ValidationError:
        return False
    return True


def run(case: Case[Any], model: type[SendRequest], sandbox: ProviderSandbox) -> None:
    sandbox.reset()
    response = case.call()
    context = describe(case, response)
    check_answer(response.status_code, response.content, sandbox, context)

    sent_bytes = len(response.request.body or b"")
    if sent_bytes > MAX_BODY_BYTES:
        # Refused before it is read, with the documented 413.
        assert response.status_code == 413, context
        return
    accepted = model_accepts(model, case)
    if accepted is not None:
        assert response.status_code == (200 if accepted else 400), f"the model says {accepted}: {context}"
    if response.status_code == 200:
        assert isinstance(case.body, dict), context
        requested = phones_of(case.body)
        sent = [phone for call in sandbox.calls for phone in call.phones]
        assert sorted(sent) == sorted(requested), f"sent {sent}: {context}"
        results = [r["phone_number"] for r in json.loads(response.content)["results"]]
        assert results == requested, context
    case.validate_response(response, checks=SCHEMA_CHECKS)


@pytest.mark.parametrize(("provider", "label", "mode"), CASES, ids=[f"{p}:{lb}:{m}" for p, lb, m in CASES])
def test_operation(
    schemas: dict[str, Any], stack_sandbox: ProviderSandbox, provider: str, label: str, mode: str
) -> None:
    method, path = label.split()
    operation = schemas[provider][path][method]
    model = OPERATIONS[provider][label]

    @FUZZ
    @given(case=strategy(operation, label, mode))
    def fuzz(case: Case[Any]) -> None:
        run(case, model, stack_sandbox)

    fuzz()
