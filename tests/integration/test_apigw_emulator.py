"""The API Gateway emulator over loopback HTTP, with worker processes running the tiny handlers of
tests/integration/fixtures/apigw: the proxy event's shape, API keys, gateway responses, and what a
broken handler turns into."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.apigw import ApiGatewayEmulator
from local.processes import FunctionWorker, Invocation, function_environment
from local.template import Template

FIXTURES = Path(__file__).parent / "fixtures" / "apigw"
API_KEY = "TestApiKey0123456789TestApiKey0123456789"
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


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fixture template's API on a free port, each function in its own worker process."""
    template = Template.load(FIXTURES / "template.yaml")
    log = (tmp_path_factory.mktemp("apigw") / "functions.log").open("ab")
    workers = {}
    for function_id, spec in template.functions().items():
        variables = template.environment(function_id, {})
        environment = function_environment(spec, variables, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
        workers[function_id] = FunctionWorker(spec, environment, output=log)
        workers[function_id].spawn()
    for worker in workers.values():
        worker.wait_ready()

    def invoke(function_id: str, event: dict[str, Any], timeout: float) -> Invocation:
        return workers[function_id].invoke(event, timeout=timeout)

    emulator = ApiGatewayEmulator(
        apis=template.apis(), routes=template.api_routes(), invoke=invoke, api_key=API_KEY
    ).start()
    yield emulator.url
    emulator.stop()
    for worker in workers.values():
        worker.stop()
    log.close()


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
    assert context["identity"]["apiKeyId"]
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


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["missing", "wrong"])
def test_a_missing_or_wrong_api_key_gets_the_templates_invalid_api_key_response(
    gateway: str, headers: dict[str, str]
) -> None:
    response = requests.post(gateway + "/echo/alice", json={}, headers=headers, timeout=10)

    assert response.status_code == 403
    request_id = response.headers["x-amzn-RequestId"]
    assert response.json() == {"error": {"code": "invalid_api_key"}, "request_id": request_id}
    assert response.headers["X-Gateway-Response"] == "invalid-api-key"
    assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"


def test_a_route_that_needs_no_key_answers_without_one(gateway: str) -> None:
    response = requests.get(gateway + "/open", timeout=10)

    assert response.status_code == 200
    event = response.json()["event"]
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["body"] is None
    assert event["requestContext"]["identity"]["apiKey"] is None


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
