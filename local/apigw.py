"""An API Gateway REST API on loopback: routes requests by the template, checks the API key, turns
each request into the Lambda proxy event API Gateway sends, and the proxy result back into HTTP.

It knows several API keys, by id: the id of the key a request came with reaches the function as
`requestContext.identity.apiKeyId` (the gateway's tenant), its value as `identity.apiKey`.

Refusals (no route, missing or wrong API key, a failed function) answer with the template's gateway
responses, or API Gateway's built-in ones where the template has none.

Beside the API, a path prefix may be proxied to another local server (`proxy`): the local stack
serves the provider sandbox's inbox page and control API under `/_sandbox/` that way, on the one
port a developer already has open.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.processes import Invocation, InvocationTimeout
from local.template import ACCOUNT_ID, ERROR_TYPES, LOCAL_REST_API_ID, ApiRoute, ApiSpec

# (function id, event, timeout in seconds) -> what the function answered
Invoker = Callable[[str, dict[str, Any], float], Invocation]

# API Gateway gives up on an integration after 29 seconds.
INTEGRATION_TIMEOUT = 29.0
# The request headers a proxied request keeps; the rest (Host, Connection…) are the proxy's own.
_PROXIED_HEADERS = frozenset({"content-type", "accept"})
_PROXY_RESULT_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_API_KEY_ALPHABET = string.ascii_letters + string.digits


def generate_api_key() -> str:
    """A key shaped like API Gateway's generated ones: 40 letters and digits."""
    return "".join(secrets.choice(_API_KEY_ALPHABET) for _ in range(40))


@dataclass(frozen=True)
class _CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern[str]
    parameters: tuple[str, ...]
    # Literal segments beat {param}, which beats {proxy+}, as in API Gateway.
    rank: tuple[int, ...]


def _compile(route: ApiRoute) -> _CompiledRoute:
    regex, names, rank = "", [], []
    for segment in [s for s in route.path.split("/") if s]:
        if segment.startswith("{") and segment.endswith("+}"):
            regex += "/(.+)"
            names.append(segment[1:-2])
            rank.append(2)
        elif segment.startswith("{") and segment.endswith("}"):
            regex += "/([^/]+)"
            names.append(segment[1:-1])
            rank.append(1)
        else:
            regex += "/" + re.escape(segment)
            rank.append(0)
    return _CompiledRoute(route, re.compile(f"^{regex or '/'}$"), tuple(names), tuple(rank))


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 resets connections when many clients arrive at once.
    request_queue_size = 128
    daemon_threads = True


class ApiGatewayEmulator:
    """Serves the template's API routes on 127.0.0.1, forwarding each to `invoke`."""

    def __init__(
        self,
        *,
        apis: Mapping[str, ApiSpec],
        routes: Sequence[ApiRoute],
        invoke: Invoker,
        api_keys: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        integration_timeout: float = INTEGRATION_TIMEOUT,
    ) -> None:
        """`api_keys` maps each key's id to its value."""
        if not apis:
            raise ValueError("the template declares no API")
        if not api_keys:
            raise ValueError("at least one API key is needed")
        if len(set(api_keys.values())) < len(api_keys):
            raise ValueError("two API key ids share one value: a request could not tell whose it is")
        self.apis = dict(apis)
        self.routes = sorted((_compile(r) for r in routes), key=lambda c: c.rank)
        self.invoke = invoke
        self.api_keys = dict(api_keys)
        self.integration_timeout = integration_timeout
        self.host = host
        self._server = _Server((host, port), self._request_handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._proxies: dict[str, tuple[str, str]] = {}

    def proxy(self, prefix: str, target: str, *, index: str = "/") -> None:
        """Serve `prefix` (ending in /) from `target`: `prefix` + rest is `target`'s /rest, and
        `prefix` alone its `index`. Nothing of the API's (keys, events) applies there."""
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"a proxied prefix starts and ends with '/', not {prefix!r}")
        self._proxies[prefix] = (target.rstrip("/"), index)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiGatewayEmulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever() to return: an emulator that never started has none.
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- Routing ---------------------------------------------------------------------------

    def _default_api(self) -> ApiSpec:
        # An unknown route belongs to no route's API; with one API in the template it is that one.
        return next(iter(self.apis.values()))

    def _match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        candidates = [(c, m) for c in self.routes if (m := c.pattern.match(path))]
        for wanted in (method, "ANY"):
            for compiled, match in candidates:
                if compiled.route.method == wanted:
                    return compiled.route, dict(zip(compiled.parameters, match.groups(), strict=True))
        return None

    def _strip_stage(self, path: str) -> str:
        # Clients configured with the deployed ApiUrl (which ends in /<stage>) work locally too.
        for api in self.apis.values():
            prefix = f"/{api.stage_name}"
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix) :] or "/"
        return path

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> _Answer:
        request_id = str(uuid.uuid4())
        split = urlsplit(raw_path)
        path = unquote(split.path) or "/"
        proxied = self._proxied(method, split.path, split.query, headers, body)
        if proxied is not None:
            return proxied
        matched = self._match(method, path)
        if matched is None:
            path = self._strip_stage(path)
            matched = self._match(method, path)
        if matched is None:
            return self._gateway_response(self._default_api(), "MISSING_AUTHENTICATION_TOKEN", request_id)
        route, path_parameters = matched
        api = self.apis[route.api_id]
        key = None
        if route.api_key_required:
            key = self._api_key(headers)
            if key is None:
                return self._gateway_response(api, "INVALID_API_KEY", request_id)
        event = self.proxy_event(
            api=api,
            route=route,
            method=method,
            path=path,
            query=split.query,
            headers=headers,
            body=body,
            path_parameters=path_parameters,
            source_ip=source_ip,
            request_id=request_id,
            api_key=key,
        )
        try:
            invocation = self.invoke(route.function_id, event, self.integration_timeout)
        except InvocationTimeout:
            return self._gateway_response(api, "INTEGRATION_TIMEOUT", request_id)
        answer = None if invocation.function_error else self._proxy_answer(api, invocation.payload, headers)
        if answer is None:
            return self._gateway_response(api, "DEFAULT_5XX", request_id)
        answer.headers.append(("x-amzn-RequestId", request_id))
        return answer

    def _proxied(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> _Answer | None:
        """The proxied server's answer for a path under a proxied prefix; None for any other path."""
        for prefix, (target, index) in self._proxies.items():
            if path == prefix.rstrip("/"):
                # Relative links of the page at `prefix` only resolve under the prefix itself.
                return _Answer(308, [("Location", prefix), ("Content-Type", "text/plain")], b"")
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            url = target + (f"/{rest}" if rest else index) + (f"?{query}" if query else "")
            kept = {k: v for k, v in headers if k.lower() in _PROXIED_HEADERS}
            request = urllib.request.Request(url, data=body or None, method=method, headers=kept)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=INTEGRATION_TIMEOUT) as answer:  # noqa: S310
                    status, answered, content = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as exc:
                status, answered, content = exc.code, exc.headers, exc.read()
            except OSError as exc:
                return _Answer(502, [("Content-Type", "text/plain")], f"{target} did not answer: {exc}".encode())
            return _Answer(status, [("Content-Type", answered.get("Content-Type", "application/json"))], content)
        return None

    def _api_key(self, headers: list[tuple[str, str]]) -> tuple[str, str] | None:
        """(id, value) of the configured key the request carries, if any."""
        given = [v for k, v in headers if k.lower() == "x-api-key"]
        if not given:
            return None
        for key_id, value in self.api_keys.items():
            if secrets.compare_digest(given[-1].encode(), value.encode()):
                return key_id, value
        return None

    # -- Request: the proxy event ----------------------------------------------------------

    def proxy_event(
        self,
        *,
        api: ApiSpec,
        route: ApiRoute,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        path_parameters: Mapping[str, str],
        source_ip: str,
        request_id: str,
        api_key: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """`api_key` is the (id, value) of the key the request was let in with."""
        host = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
        forwarded = [
            ("X-Forwarded-For", source_ip),
            ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
            ("X-Forwarded-Proto", "http"),
        ]
        all_headers = [*headers, *((k, v) for k, v in forwarded if k.lower() not in {h.lower() for h, _ in headers})]
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in all_headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        pairs = parse_qsl(query, keep_blank_values=True)
        query_single = dict(pairs)
        query_multi: dict[str, list[str]] = {}
        for k, v in pairs:
            query_multi.setdefault(k, []).append(v)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        binary = _is_binary(content_type, api.binary_media_types)
        if not body:
            text: str | None = None
        elif binary:
            text = base64.b64encode(body).decode()
        else:
            text = body.decode("utf-8", errors="replace")
        now = datetime.now(UTC)
        key_id, key_value = api_key or (None, None)
        user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": query_single or None,
            "multiValueQueryStringParameters": query_multi or None,
            "pathParameters": dict(path_parameters) or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": hashlib.sha256(route.path.encode()).hexdigest()[:6],
                "resourcePath": route.path,
                "httpMethod": method,
                "extendedRequestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode(),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{api.stage_name}{path}",
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": api.stage_name,
                "domainPrefix": host.split(".")[0].split(":")[0],
                "requestTimeEpoch": int(time.time() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "apiKey": key_value,
                    "apiKeyId": key_id,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": user_agent,
                    "user": None,
                },
                "domainName": host,
                "apiId": LOCAL_REST_API_ID,
            },
            "body": text,
            "isBase64Encoded": binary and bool(body),
        }

    # -- Response: the proxy result --------------------------------------------------------

    @staticmethod
    def _proxy_answer(api: ApiSpec, result: Any, request_headers: list[tuple[str, str]]) -> _Answer | None:
        """HTTP from a Lambda proxy result, or None where API Gateway would call it malformed."""
        if not isinstance(result, dict) or set(result) - _PROXY_RESULT_KEYS:
            return None
        status = _proxy_status(result.get("statusCode"))
        body = result.get("body")
        if status is None or (body is not None and not isinstance(body, str)):
            return None
        headers = _proxy_headers(result.get("headers") or {}, result.get("multiValueHeaders") or {})
        if headers is None:
            return None
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        payload = (body or "").encode()
        if result.get("isBase64Encoded") is True and body:
            accept = next((v for k, v in request_headers if k.lower() == "accept"), "")
            response_type = next(v for k, v in headers if k.lower() == "content-type")
            # REST APIs decode only what the API declares binary, by Accept or Content-Type.
            if _is_binary(accept, api.binary_media_types) or _is_binary(response_type, api.binary_media_types):
                try:
                    payload = base64.b64decode(body, validate=True)
                except ValueError:
                    return None
        return _Answer(status, headers, payload)

    def _gateway_response(self, api: ApiSpec, response_type: str, request_id: str) -> _Answer:
        response, message = api.gateway_response(response_type)
        context = {
            "requestId": request_id,
            "stage": api.stage_name,
            "apiId": LOCAL_REST_API_ID,
            "error.message": message,
            "error.messageString": json.dumps(message),
            "error.responseType": response_type,
        }
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", ERROR_TYPES.get(response_type, "InternalServerErrorException")),
            *response.headers.items(),
        ]
        return _Answer(response.status_code, headers, response.render(context))

    # -- HTTP ------------------------------------------------------------------------------

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm on, a kept-alive
            # connection's body waits for the client's delayed ACK of the headers (some 40 ms).
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                body = self._read_body()
                answer = emulator.handle(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
                self.send_response(answer.status)
                for name, value in answer.headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                # The functions' JSON logs are what the stack's output is for.
                return

        return RequestHandler


def _proxy_status(status: Any) -> int | None:
    """A proxy result's statusCode as API Gateway takes it (an int, or a string of digits), if valid."""
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    return status


def _proxy_headers(single: Any, multi: Any) -> list[tuple[str, str]] | None:
    """A proxy result's headers, the multi-value ones winning over a single value of the same name."""
    if not isinstance(single, dict) or not isinstance(multi, dict):
        return None
    headers = [(str(name), _header_value(value)) for name, value in single.items() if name not in multi]
    for name, values in multi.items():
        if not isinstance(values, list):
            return None
        headers.extend((str(name), _header_value(v)) for v in values)
    return headers


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_binary(content_type: str, binary_media_types: Sequence[str]) -> bool:
    if not content_type or not binary_media_types:
        return False
    kinds = [part.split(";")[0].strip().lower() for part in content_type.split(",")]
    for declared in binary_media_types:
        declared = declared.lower()
        for kind in kinds:
            if declared in ("*/*", kind) or (declared.endswith("/*") and kind.startswith(declared[:-1])):
                return True
    return False
