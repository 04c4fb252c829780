"""The unified route over HTTP and through its queue, on the local stack: a template saved with the
tenant's admin key, then sends that fail over to the next provider only when the first provably
did not send (flow control, balance, connection refused), and never when it may have."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from local.sandbox import Fault, ProviderSandbox
from local.stack import LocalStack
from tests.e2e.conftest import ROUTER_ADMIN_KEY, ROUTER_KEYS, FunctionLog

pytestmark = pytest.mark.e2e

TENANT, KEY = next(iter(ROUTER_KEYS.items()))
LOGIN_CODE = {
    "params": ["code", "minutes"],
    "aliyun": {"sign_name": "SmsGateway", "template_code": "SMS_000002", "params": {"code": "code", "minutes": "m"}},
    "ronglian": {"template_id": "1", "datas": ["code", "minutes"]},
    "polyv": {"names": {"code": "code", "minutes": "minutes"}},
    "routing": {"order": ["aliyun", "ronglian", "polyv"]},
}
PARAMS = {"code": "123456", "minutes": "5"}
THOUSAND = [f"138{i:08d}" for i in range(1000)]


def call(stack: LocalStack, method: str, path: str, body: Any = None, *, key: str = KEY) -> requests.Response:
    return requests.request(method, f"{stack.api_url}{path}", json=body, headers={"x-api-key": key}, timeout=60)


def send(stack: LocalStack, phones: list[str], **extra: Any) -> requests.Response:
    body = {"template": "login_code", "phone_numbers": phones, "params": PARAMS, **extra}
    return call(stack, "POST", "/v1/messages", body)


@pytest.fixture(scope="module")
def template(router_stack: LocalStack) -> dict[str, Any]:
    saved = call(router_stack, "PUT", "/v1/templates/login_code", LOGIN_CODE, key=ROUTER_ADMIN_KEY)
    assert saved.status_code == 200, saved.text
    return dict(saved.json())


@pytest.fixture
def sandbox(router_stack: LocalStack, template: dict[str, Any]) -> Iterator[ProviderSandbox]:
    assert router_stack.sandbox is not None
    router_stack.sandbox.come_up()
    router_stack.sandbox.reset()
    yield router_stack.sandbox
    router_stack.sandbox.come_up()
    router_stack.sandbox.reset()


def engine(service: str, endpoint_url: str) -> Any:
    """A client of one of the local engines, which take any credentials."""
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def stored(stack: LocalStack, name: str) -> dict[str, Any] | None:
    """A template's newest version as the configuration table holds it (None: none, or deleted)."""
    client = engine("dynamodb", stack.dynamodb_url)
    table = stack.config_table()
    assert table is not None
    newest = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"{TENANT}#template#{name}"}},
        ScanIndexForward=False,
        Limit=1,
    )["Items"]
    return None if not newest or newest[0].get("deleted", {}).get("BOOL") else dict(newest[0])


class TestTemplates:
    def test_only_the_admin_key_saves_reads_and_deletes_a_tenants_templates(
        self, router_stack: LocalStack, template: dict[str, Any]
    ) -> None:
        assert template == {"name": "login_code", "version": template["version"], **LOGIN_CODE}

        refused = call(router_stack, "PUT", "/v1/templates/welcome", LOGIN_CODE)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "admin_key_required")
        assert call(router_stack, "GET", "/v1/templates/login_code").status_code == 403

        saved = call(router_stack, "PUT", "/v1/templates/welcome", LOGIN_CODE, key=ROUTER_ADMIN_KEY)
        assert (saved.status_code, saved.json()["version"]) == (200, 1)
        read = call(router_stack, "GET", "/v1/templates/welcome", key=ROUTER_ADMIN_KEY)
        assert (read.status_code, read.json()["routing"]) == (200, LOGIN_CODE["routing"])
        assert call(router_stack, "DELETE", "/v1/templates/welcome", key=ROUTER_ADMIN_KEY).status_code == 204
        # Another instance may answer from its cache for TEMPLATE_CACHE_SECONDS: the table says it at once
        assert stored(router_stack, "welcome") is None
        assert stored(router_stack, "login_code") is not None
        never = call(router_stack, "GET", "/v1/templates/never-saved", key=ROUTER_ADMIN_KEY)
        assert (never.status_code, never.json()["error"]["code"]) == (404, "template_not_found")

    def test_a_send_names_a_template_of_its_tenant(self, router_stack: LocalStack, sandbox: ProviderSandbox) -> None:
        sent = send(router_stack, ["13800138000", "+8613900139000"])

        assert sent.status_code == 200, sent.text
        assert [(r["status"], r["provider"]) for r in sent.json()["results"]] == [("accepted", "aliyun")] * 2
        [call_made] = sandbox.calls_for("aliyun.SendBatchSms")
        assert json.loads(call_made.params["TemplateParamJson"]) == [{"code": "123456", "m": "5"}] * 2
        missing = call(router_stack, "POST", "/v1/messages", {"template": "nope", "phone_numbers": ["13800138000"]})
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "template_not_found")


def test_the_routes_docs_need_no_api_key(router_stack: LocalStack) -> None:
    page = requests.get(f"{router_stack.api_url}/v1/router/docs", timeout=30)
    document = requests.get(f"{router_stack.api_url}/v1/router/docs?format=json", timeout=30)

    assert (page.status_code, document.status_code) == (200, 200)
    assert "swagger" in page.text.lower()
    assert set(document.json()["paths"]) == {
        "/v1/messages",
        "/v1/templates/{name}",
        "/v1/rules",
        "/v1/opt-outs/{phone}",
    }


def refuse(stack: LocalStack, sandbox: ProviderSandbox, how: str) -> None:
    """Aliyun refuses every number: a provider code, or connection refused on its own port."""
    if how == "down":
        answer = requests.post(f"{sandbox.control_url}/down?provider=aliyun", timeout=10)
        assert answer.json() == {"up": False, "provider": "aliyun"}
    else:
        sandbox.add_fault(Fault(kind="code", operation="aliyun.SendBatchSms", code=how))


@pytest.mark.parametrize(
    ("how", "first"),
    [("isv.BUSINESS_LIMIT_CONTROL", "rate_limited"), ("isv.AMOUNT_NOT_ENOUGH", "rejected"), ("down", "retryable")],
    ids=["flow-control", "balance", "connection-refused"],
)
def test_1000_numbers_aliyun_refuses_are_sent_once_each_by_ronglian(
    router_stack: LocalStack, sandbox: ProviderSandbox, how: str, first: str
) -> None:
    refuse(router_stack, sandbox, how)
    metrics = FunctionLog(router_stack)

    sent = send(router_stack, THOUSAND)

    assert sent.status_code == 200, sent.text[:500]
    results = sent.json()["results"]
    assert {(r["status"], r["provider"]) for r in results} == {("accepted", "ronglian")}
    assert {tuple((a["provider"], a["status"]) for a in r["attempts"]) for r in results} == {
        (("aliyun", first), ("ronglian", "accepted"))
    }
    accepted = Counter(sandbox.accepted_phones())
    assert set(accepted) == set(THOUSAND)
    assert set(accepted.values()) == {1}, "each number exactly once"
    assert [c for c in sandbox.calls if c.operation.startswith("aliyun") and c.accepted_phones] == []
    assert metrics.total("failovers", by="provider") == {"aliyun": 1000}


def test_a_timeout_after_aliyun_accepted_never_fails_over(router_stack: LocalStack, sandbox: ProviderSandbox) -> None:
    # Longer than the stack's ProviderReadTimeout (2 s): the numbers are out, the answer is not
    sandbox.add_fault(Fault(kind="slow", operation="aliyun.SendBatchSms", delay=3))
    metrics = FunctionLog(router_stack)
    phones = THOUSAND[:200]

    sent = send(router_stack, phones)

    assert sent.status_code == 502, sent.text[:500]
    results = sent.json()["results"]
    assert {(r["status"], r["provider"], len(r["attempts"])) for r in results} == {("ambiguous", "aliyun", 1)}
    assert sandbox.calls_for("ronglian.TemplateSMS") == []
    assert sandbox.calls_for("polyv.send") == []
    assert Counter(sandbox.accepted_phones()) == Counter(phones), "sent once, by Aliyun"
    assert metrics.total("failovers", by="provider") == {}


def test_a_queued_message_fails_over_the_same_way_and_is_sent_once(
    router_stack: LocalStack, sandbox: ProviderSandbox
) -> None:
    refuse(router_stack, sandbox, "isv.AMOUNT_NOT_ENOUGH")
    phones = THOUSAND[:10]
    body = {"template": "login_code", "phone_numbers": phones, "params": PARAMS}
    message = json.dumps({**body, "tenant": TENANT, "idempotencyKey": "signup-42"})

    # The producer sends it twice (its own retry): one idempotency key, one send
    queue = router_stack.queues["RouterQueue"]
    for _ in range(2):
        engine("sqs", router_stack.moto_url).send_message(QueueUrl=queue, MessageBody=message)
    router_stack.drain(timeout=60)

    accepted = Counter(sandbox.accepted_phones())
    assert accepted == Counter(phones), "each number once, by Ronglian"
    record = call(router_stack, "GET", "/v1/messages/signup-42")
    assert record.status_code == 200, record.text
    results = record.json()["results"]
    assert {(r["status"], r["provider"]) for r in results} == {("accepted", "ronglian")}
    assert {tuple(a["provider"] for a in r["attempts"]) for r in results} == {("aliyun", "ronglian")}
