"""The API Gateway emulator over loopback HTTP, with worker processes running the tiny handlers of
tests/integration/fixtures/apigw: the proxy event's shape, API keys (tenants), gateway responses,
what a broken handler turns into, and Lambda's concurrency model (one invocation at a time per
instance, more instances for more at once)."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from local.apigw import ApiGatewayEmulator
from local.processes import FunctionPool, FunctionWorker, Invocation, InvocationTimeout, function_environment
from local.template import FunctionSpec, Template

FIXTURES = Path(__file__).parent / "fixtures" / "apigw"
API_KEYS = {
    "tenant-a": "TestApiKey0123456789TestApiKey0123456789",
    "tenant-b": "OtherTenantKey0123456789OtherTenantKey01",
}
API_KEY = API_KEYS["tenant-a"]
# Workers per function; the rest get one.
CONCURRENCY = {"BusyFunction": 3}
PROXY_EVENT_KEYS = {
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
}


TEMPLATE = Template.load(FIXTURES / "template.yaml")


def environment(function_id: str) -> dict[str, str]:
    spec = TEMPLATE.functions()[function_id]
    variables = TEMPLATE.environment(function_id, {})
    return function_environment(spec, variables, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})


@pytest.fixture(scope="module")
def functions_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with (tmp_path_factory.mktemp("apigw") / "functions.log").open("ab") as log:
        yield log


@pytest.fixture(scope="module")
def gateway(functions_log: Any) -> Iterator[str]:
    """The fixture template's API on a free port, each function in a pool of worker processes."""
    pools = {
        function_id: FunctionPool(
            spec, environment(function_id), size=CONCURRENCY.get(function_id, 1), output=functions_log
        )
        for function_id, spec in TEMPLATE.functions().items()
    }
    for pool in pools.values():
        pool.spawn()
    for pool in pools.values():
        pool.wait_ready()

    def invoke(function_id: str, event: dict[str, Any], timeout: float) -> Invocation:
        return pools[function_id].invoke(event, timeout=timeout)

    emulator = ApiGatewayEmulator(
        apis=TEMPLATE.apis(), routes=TEMPLATE.api_routes(), invoke=invoke, api_keys=API_KEYS
    ).start()
    yield emulator.url
    emulator.stop()
    for pool in pools.values():
        pool.stop()


def echo(gateway: str, path: str = "/echo/alice?x=1&x=2&y=3", **kwargs: Any) -> tuple[requests.Response, Any]:
    headers = {"x-api-key": API_KEY, "X-Custom": "custom value", **kwargs.pop("headers", {})}
    response = requests.post(gateway + path, json={"hello": "world"}, headers=headers, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response, response.json()


def test_the_event_is_a_rest_api_proxy_event(gateway: str) -> None:
    # Given a route /echo/{name} that requires an API key
    # When a request with a key, a path parameter, a repeated query parameter and a body arrives
    started = time.time()
    response, answer = echo(gateway)
    event = answer["event"]

    # Then the function gets API Gateway's REST proxy event for it
    assert set(event) == PROXY_EVENT_KEYS
    assert event["resource"] == "/echo/{name}"
    assert event["path"] == "/echo/alice"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"name": "alice"}
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["headers"]["X-Custom"] == "custom value"
    assert event["multiValueHeaders"]["X-Custom"] == ["custom value"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert json.loads(event["body"]) == {"hello": "world"}
    assert event["isBase64Encoded"] is False
    assert event["stageVariables"] is None

    context = event["requestContext"]
    assert context["stage"] == "test"
    assert context["resourcePath"] == "/echo/{name}"
    assert context["path"] == "/test/echo/alice"
    assert context["httpMethod"] == "POST"
    assert str(uuid.UUID(context["requestId"])) == context["requestId"]
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert started - 1 <= context["requestTimeEpoch"] / 1000 <= time.time() + 1
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["apiKey"] == API_KEY
    assert context["identity"]["apiKeyId"] == "tenant-a"
    assert context["domainName"] == gateway.removeprefix("http://")


def test_each_request_gets_its_own_request_id(gateway: str) -> None:
    ids = {echo(gateway)[1]["event"]["requestContext"]["requestId"] for _ in range(3)}

    assert len(ids) == 3


def test_the_function_runs_with_its_template_environment_and_a_lambda_context(gateway: str) -> None:
    _, answer = echo(gateway)

    assert answer["environment"] == {
        "GREETING": "hello",
        "STAGE_URL": "https://local.execute-api.us-east-1.amazonaws.com/test",
        "AWS_LAMBDA_FUNCTION_NAME": "EchoFunction",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        # Nothing from the environment of whoever started the stack
        "AWS_ENDPOINT_URL_SQS": None,
        "AWS_PROFILE": None,
    }
    context = answer["context"]
    assert context["function_name"] == "EchoFunction"
    assert context["memory_limit_in_mb"] == "256"
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction"
    assert context["aws_request_id"] != answer["event"]["requestContext"]["requestId"]
    assert 0 < context["remaining_ms"] <= 5000
    assert answer["cwd"] == str((FIXTURES / "echo").resolve())


def test_a_path_with_the_stage_prefix_reaches_the_same_route(gateway: str) -> None:
    _, answer = echo(gateway, path="/test/echo/bob")

    assert answer["event"]["path"] == "/echo/bob"
    assert answer["event"]["requestContext"]["path"] == "/test/echo/bob"


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "wrong"}, {"x-api-key": "tenant-a"}, {"x-api-key": API_KEY.lower()}],
    ids=["missing", "unknown", "a-key-id", "wrong-case"],
)
def test_a_missing_or_wrong_api_key_gets_the_templates_invalid_api_key_response(
    gateway: str, headers: dict[str, str]
) -> None:
    response = requests.post(gateway + "/echo/alice", json={}, headers=headers, timeout=10)

    assert response.status_code == 403
    request_id = response.headers["x-amzn-RequestId"]
    assert response.json() == {"error": {"code": "invalid_api_key"}, "request_id": request_id}
    assert response.headers["X-Gateway-Response"] == "invalid-api-key"
    assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"


@pytest.mark.parametrize("tenant", list(API_KEYS))
def test_each_key_reaches_the_function_as_its_own_key_id(gateway: str, tenant: str) -> None:
    # Given two API keys, one per tenant
    # When a request comes with one of them
    _, answer = echo(gateway, headers={"x-api-key": API_KEYS[tenant]})

    # Then the function sees that key's id (the tenant) and value, not the other's
    identity = answer["event"]["requestContext"]["identity"]
    assert identity["apiKeyId"] == tenant
    assert identity["apiKey"] == API_KEYS[tenant]


def test_a_route_that_needs_no_key_answers_without_one(gateway: str) -> None:
    response = requests.get(gateway + "/open", timeout=10)

    assert response.status_code == 200
    event = response.json()["event"]
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["body"] is None
    assert event["requestContext"]["identity"]["apiKey"] is None
    assert event["requestContext"]["identity"]["apiKeyId"] is None


def test_a_greedy_path_and_any_method(gateway: str) -> None:
    response = requests.delete(gateway + "/files/a/b/c.txt", timeout=10)

    assert response.status_code == 200
    event = response.json()["event"]
    assert event["resource"] == "/files/{proxy+}"
    assert event["httpMethod"] == "DELETE"
    assert event["pathParameters"] == {"proxy": "a/b/c.txt"}


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nowhere"), ("GET", "/echo/alice"), ("POST", "/")], ids=["path", "method", "root"]
)
def test_an_unknown_route_gets_api_gateways_missing_authentication_token(gateway: str, method: str, path: str) -> None:
    # The fixture template does not customise MISSING_AUTHENTICATION_TOKEN: API Gateway's own answer.
    response = requests.request(method, gateway + path, headers={"x-api-key": API_KEY}, timeout=10)

    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_handler_that_raises_is_a_502(gateway: str) -> None:
    response = requests.post(gateway + "/crash", json={}, headers={"x-api-key": API_KEY}, timeout=10)

    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


@pytest.mark.parametrize("kind", ["not-a-dict", "no-status", "body-not-string", "unknown-key", "status-out-of-range"])
def test_a_malformed_proxy_result_is_a_502(gateway: str, kind: str) -> None:
    response = requests.get(gateway + f"/garbage/{kind}", timeout=10)

    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_the_proxy_result_becomes_the_http_response(gateway: str) -> None:
    # http.client, because requests folds repeated headers into one
    host, port = gateway.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/headers")
    response = connection.getresponse()
    body = response.read()
    connection.close()

    assert response.status == 201
    assert body == b"created"
    assert response.getheader("Content-Type") == "text/plain"
    assert response.getheader("X-Single") == "one"
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]


def busy(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_concurrent_requests_run_on_several_instances_never_two_at_once_in_one(gateway: str) -> None:
    # Given a function with a pool of three instances, whose handler takes a moment
    # When eight requests arrive at once
    with ThreadPoolExecutor(max_workers=8) as clients:
        answers = list(clients.map(busy, [gateway + "/busy"] * 8))

    # Then no instance ever ran two invocations at once, more than one instance served them, and an
    # instance that served several kept its module state from one invocation to the next (warm)
    assert [a for a in answers if a["overlapped"]] == []
    served = Counter(a["pid"] for a in answers)
    assert 1 < len(served) <= CONCURRENCY["BusyFunction"]
    for pid, count in served.items():
        numbers = sorted(a["invocation"] for a in answers if a["pid"] == pid)
        assert numbers == list(range(numbers[0], numbers[0] + count))


@pytest.fixture
def single_worker(functions_log: Any) -> Iterator[FunctionWorker]:
    spec: FunctionSpec = TEMPLATE.functions()["BusyFunction"]
    worker = FunctionWorker(spec, environment("BusyFunction"), output=functions_log).start()
    yield worker
    worker.stop()


def test_one_worker_asked_several_times_at_once_runs_the_invocations_one_after_another(
    single_worker: FunctionWorker,
) -> None:
    # Past the pool, straight to one instance: it still never runs two invocations at once.
    with ThreadPoolExecutor(max_workers=4) as clients:
        invocations = list(clients.map(lambda _: single_worker.invoke({}, timeout=30), range(4)))

    answers = [json.loads(i.payload["body"]) for i in invocations]
    assert [a for a in answers if a["overlapped"]] == []
    assert sorted(a["invocation"] for a in answers) == [1, 2, 3, 4]
    assert len({a["pid"] for a in answers}) == 1


def test_an_invocation_that_times_out_takes_its_instance_with_it(single_worker: FunctionWorker) -> None:
    # An instance still busy with a timed-out invocation would hold up the next one: Lambda resets it.
    assert single_worker.process is not None
    timed_out = single_worker.process.pid
    with pytest.raises(InvocationTimeout):
        single_worker.invoke({}, timeout=0.01)

    answer = json.loads(single_worker.invoke({}, timeout=30).payload["body"])

    assert answer["pid"] != timed_out
    assert answer["invocation"] == 1


def test_restarting_a_pool_replaces_every_instance_with_the_new_environment(functions_log: Any) -> None:
    spec = TEMPLATE.functions()["EchoFunction"]
    pool = FunctionPool(spec, environment("EchoFunction"), size=2, output=functions_log).start()
    try:
        before = set(pool.pids)

        pool.restart({**environment("EchoFunction"), "GREETING": "bonjour"})
        after = set(pool.pids)
        answers = [json.loads(pool.invoke({"path": "/x"}, timeout=30).payload["body"]) for _ in pool.workers]
    finally:
        pool.stop()

    assert {a["environment"]["GREETING"] for a in answers} == {"bonjour"}
    assert len(after) == 2
    assert before.isdisjoint(after)


def test_a_proxied_prefix_serves_another_server_without_an_api_key() -> None:
    seen: list[tuple[str, str, bytes]] = []

    class Target(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append((self.command, self.path, body))
            self.send_response(201 if self.command == "POST" else 200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

        def log_message(self, *_: Any) -> None:
            pass

    target = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    emulator = ApiGatewayEmulator(
        apis=TEMPLATE.apis(), routes=TEMPLATE.api_routes(), invoke=lambda *_: Invocation(None), api_keys=API_KEYS
    ).start()
    emulator.proxy("/_side/", f"http://127.0.0.1:{target.server_address[1]}", index="/index")
    try:
        index = requests.get(f"{emulator.url}/_side/", timeout=10)
        posted = requests.post(f"{emulator.url}/_side/things/1?x=2", json={"a": 1}, timeout=10)
        bare = requests.get(f"{emulator.url}/_side", allow_redirects=False, timeout=10)
    finally:
        emulator.stop()
        target.shutdown()

    assert (index.status_code, index.text, index.headers["content-type"]) == (200, "ok", "text/html")
    assert posted.status_code == 201
    assert seen == [("GET", "/index", b""), ("POST", "/things/1?x=2", b'{"a": 1}')]
    assert (bare.status_code, bare.headers["location"]) == (308, "/_side/")


def test_a_kept_alive_connection_gets_each_answer_without_waiting_for_a_delayed_ack(gateway: str) -> None:
    # Headers and body are two writes: with Nagle's algorithm on, each answer on a kept-alive
    # connection would wait some 40 ms for the client's delayed ACK.
    took = []
    with requests.Session() as session:
        for _ in range(20):
            started = time.perf_counter()
            answer = session.post(f"{gateway}/echo/alice", json={}, headers={"x-api-key": API_KEY}, timeout=10)
            took.append(time.perf_counter() - started)
            assert answer.status_code == 200

    assert statistics.median(took) < 0.030, [f"{t * 1000:.0f} ms" for t in took]
