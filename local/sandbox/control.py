"""The control API: recorded calls and accepted numbers as JSON, faults to add and clear, a reset,
and the provider listeners taken down and brought back up, all of them or one provider's."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from local.sandbox.faults import Fault
from local.sandbox.transport import BadRequest, Handler

if TYPE_CHECKING:
    from local.sandbox.server import ProviderSandbox


@dataclass(frozen=True)
class Request:
    query: str
    body: bytes


Answer = tuple[int, Any]


def _describe(sandbox: ProviderSandbox, request: Request) -> Answer:
    providers = {name: {"url": url, "up": sandbox.is_up_for(name)} for name, url in sandbox.provider_urls.items()}
    return 200, {"url": sandbox.url, "control_url": sandbox.control_url, "up": sandbox.is_up, "providers": providers}


def _calls(sandbox: ProviderSandbox, request: Request) -> Answer:
    operation = dict(parse_qsl(request.query)).get("operation")
    calls = sandbox.calls_for(operation) if operation else sandbox.calls
    return 200, {"calls": [c.to_dict() for c in calls]}


def _accepted_phones(sandbox: ProviderSandbox, request: Request) -> Answer:
    return 200, {"accepted_phones": sandbox.accepted_phones()}


def _faults(sandbox: ProviderSandbox, request: Request) -> Answer:
    return 200, {"faults": [f.to_dict() for f in sandbox.faults]}


def _add_fault(sandbox: ProviderSandbox, request: Request) -> Answer:
    try:
        fault = Fault.from_dict(json.loads(request.body.decode("utf-8") or "null"))
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    sandbox.add_fault(fault)
    return 201, {"fault": fault.to_dict()}


def _clear_faults(sandbox: ProviderSandbox, request: Request) -> Answer:
    sandbox.clear_faults()
    return 200, {"faults": []}


def _reset(sandbox: ProviderSandbox, request: Request) -> Answer:
    sandbox.reset()
    return 200, {"reset": True}


def _provider(request: Request) -> str | None:
    return dict(parse_qsl(request.query)).get("provider")


def _down(sandbox: ProviderSandbox, request: Request) -> Answer:
    provider = _provider(request)
    try:
        sandbox.go_down(provider)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"up": False, **({"provider": provider} if provider else {})}


def _up(sandbox: ProviderSandbox, request: Request) -> Answer:
    provider = _provider(request)
    try:
        sandbox.come_up(provider)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    except OSError as exc:
        return 409, {"error": f"cannot listen again: {exc}"}
    return 200, {"up": True, **({"provider": provider} if provider else {})}


ENDPOINTS: dict[tuple[str, str], Callable[[ProviderSandbox, Request], Answer]] = {
    ("GET", "/"): _describe,
    ("GET", "/calls"): _calls,
    ("GET", "/accepted-phones"): _accepted_phones,
    ("GET", "/faults"): _faults,
    ("POST", "/faults"): _add_fault,
    ("DELETE", "/faults"): _clear_faults,
    ("POST", "/reset"): _reset,
    ("POST", "/down"): _down,
    ("POST", "/up"): _up,
}
PATHS = frozenset(path for _, path in ENDPOINTS)


def serve(sandbox: ProviderSandbox, handler: Handler) -> None:
    try:
        body = handler.read_body()
    except BadRequest as exc:
        handler.send_json(400, {"error": str(exc)})
        return
    parts = urlsplit(handler.path)
    path = parts.path.rstrip("/") or "/"
    endpoint = ENDPOINTS.get((handler.command, path))
    if endpoint is not None:
        status, payload = endpoint(sandbox, Request(parts.query, body))
    elif path in PATHS:
        status, payload = 405, {"error": f"{handler.command} is not allowed on {parts.path}"}
    else:
        status, payload = 404, {"error": f"no control endpoint at {parts.path}"}
    handler.send_json(status, payload)
