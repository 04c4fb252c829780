"""The provider clients' HTTP session and the environment: a proxy named in it is used, the
CA bundle it names is the session's, and a function without either reads nothing on each call."""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from local.sandbox import ProviderSandbox
from smsgw.models import PolyvSendRequest
from smsgw.outcomes import Status
from smsgw.providers.base import no_retry_session, uses_proxy
from smsgw.providers.polyv import SEND_PATH, PolyvClient, PolyvCredentials

PHONE = "13800138000"
UNRESOLVABLE = "http://polyv.invalid"
"""A host no resolver answers for (RFC 6761): a call reaches the provider only through the proxy."""


class ForwardingProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy on loopback: records each request line's target and passes the
    request on to the sandbox."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.targets: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: ForwardingProxy

    def do_POST(self) -> None:
        self.server.targets.append(self.path)
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(str(self.server.upstream.hostname), self.server.upstream.port, timeout=5)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
        upstream.request("POST", f"{target.path}?{target.query}", body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(sandbox: ProviderSandbox) -> Iterator[ForwardingProxy]:
    server = ForwardingProxy(sandbox.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    return monkeypatch


def request() -> PolyvSendRequest:
    return PolyvSendRequest(phone_numbers=[PHONE], template_param_names=["code"], template_param_values=["123456"])


def client_via(polyv_credentials: PolyvCredentials, endpoint: str) -> PolyvClient:
    return PolyvClient(polyv_credentials.model_copy(update={"endpoint": endpoint}))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"PATH": "/usr/bin", "REQUESTS_CA_BUNDLE": "/etc/ssl/ca.pem"}, False),
        ({"HTTPS_PROXY": "http://proxy:3128"}, True),
        ({"http_proxy": "http://proxy:3128"}, True),
        ({"NO_PROXY": "example.com"}, True),
        ({"HTTPS_PROXY": ""}, False),
    ],
)
def test_a_proxy_is_any_non_empty_proxy_variable(environ: dict[str, str], expected: bool) -> None:
    assert uses_proxy(environ) is expected


def test_without_a_proxy_the_session_reads_the_environment_once(no_proxy_environment: pytest.MonkeyPatch) -> None:
    no_proxy_environment.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/gateway-bundle.pem")

    session = no_retry_session(4)

    assert session.trust_env is False
    assert session.verify == "/etc/ssl/gateway-bundle.pem"


def test_requests_ca_bundle_comes_first_then_curl_ca_bundle_then_the_default_store(
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    no_proxy_environment.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/requests-bundle.pem")
    no_proxy_environment.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl-bundle.pem")
    assert no_retry_session(4).verify == "/etc/ssl/requests-bundle.pem"

    no_proxy_environment.delenv("REQUESTS_CA_BUNDLE")
    assert no_retry_session(4).verify == "/etc/ssl/curl-bundle.pem"

    no_proxy_environment.delenv("CURL_CA_BUNDLE")
    assert no_retry_session(4).verify is True


def test_without_a_proxy_a_send_goes_straight_to_the_provider(
    polyv_credentials: PolyvCredentials,
    sandbox: ProviderSandbox,
    proxy: ForwardingProxy,
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    result = client_via(polyv_credentials, sandbox.url).send(request())

    assert result.outcomes[0].status is Status.ACCEPTED
    assert len(sandbox.calls_for("polyv.send")) == 1
    assert proxy.targets == []


def test_a_proxy_in_the_environment_carries_the_send(
    polyv_credentials: PolyvCredentials,
    sandbox: ProviderSandbox,
    proxy: ForwardingProxy,
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    no_proxy_environment.setenv("HTTP_PROXY", proxy.url)

    result = client_via(polyv_credentials, UNRESOLVABLE).send(request())

    assert result.outcomes[0].status is Status.ACCEPTED
    [target] = proxy.targets
    assert target.startswith(f"{UNRESOLVABLE}{SEND_PATH}?")
    [call] = sandbox.calls_for("polyv.send")
    assert call.phones == [PHONE]


def test_no_proxy_still_bypasses_the_proxy(
    polyv_credentials: PolyvCredentials,
    sandbox: ProviderSandbox,
    proxy: ForwardingProxy,
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    no_proxy_environment.setenv("HTTP_PROXY", proxy.url)
    no_proxy_environment.setenv("NO_PROXY", "127.0.0.1")

    result = client_via(polyv_credentials, sandbox.url).send(request())

    assert result.outcomes[0].status is Status.ACCEPTED
    assert proxy.targets == []
    assert len(sandbox.calls_for("polyv.send")) == 1
