"""The control API: recorded calls and accepted numbers as JSON, faults to add and clear, a reset,
the provider listeners taken down and brought back up, all of them or one provider's; the receipt
settings, and the inbox: a page of every accepted message per phone number (`/inbox`), the
messages as JSON, and each one's receipt delivered, failed or lost by hand."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
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


def _receipts(sandbox: ProviderSandbox, request: Request) -> Answer:
    return 200, {"settings": sandbox.receipt_settings.to_dict(), **sandbox.receipt_stats()}


def _configure_receipts(sandbox: ProviderSandbox, request: Request) -> Answer:
    try:
        changes = json.loads(request.body.decode("utf-8") or "{}")
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of receipt settings")
        settings = sandbox.configure_receipts(**changes)
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    return 200, {"settings": settings.to_dict()}


def _messages(sandbox: ProviderSandbox, request: Request) -> Answer:
    return 200, {"phones": sandbox.inbox_by_phone(), "receipts": sandbox.receipt_settings.to_dict()}


ACTION_PATH = re.compile(r"/messages/(\d+)/(deliver|fail|lose)")


def _act(sandbox: ProviderSandbox, sms_id: int, action: str, body: bytes) -> Answer:
    try:
        options = json.loads(body.decode("utf-8") or "{}")
        code = options.get("code") if isinstance(options, dict) else None
        if code is not None and not (isinstance(code, str) and re.fullmatch(r"[A-Za-z0-9_:.-]{1,32}", code)):
            raise ValueError("code must be 1 to 32 letters, digits or _:.-")
        sms = sandbox.act(sms_id, action, code)
    except LookupError as exc:
        return 404, {"error": str(exc)}
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"message": sms.to_dict()}


def inbox_page() -> bytes:
    return resources.files("local.sandbox").joinpath("inbox.html").read_bytes()


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
    ("GET", "/receipts"): _receipts,
    ("POST", "/receipts"): _configure_receipts,
    ("GET", "/messages"): _messages,
}
PATHS = frozenset({*(path for _, path in ENDPOINTS), "/inbox"})


def serve(sandbox: ProviderSandbox, handler: Handler) -> None:
    try:
        body = handler.read_body()
    except BadRequest as exc:
        handler.send_json(400, {"error": str(exc)})
        return
    parts = urlsplit(handler.path)
    path = parts.path.rstrip("/") or "/"
    endpoint = ENDPOINTS.get((handler.command, path))
    action = ACTION_PATH.fullmatch(path)
    if (handler.command, path) == ("GET", "/inbox"):
        handler.send_bytes(200, inbox_page(), "text/html;charset=UTF-8")
        return
    if action is not None and handler.command == "POST":
        status, payload = _act(sandbox, int(action[1]), action[2], body)
    elif endpoint is not None:
        status, payload = endpoint(sandbox, Request(parts.query, body))
    elif path in PATHS:
        status, payload = 405, {"error": f"{handler.command} is not allowed on {parts.path}"}
    else:
        status, payload = 404, {"error": f"no control endpoint at {parts.path}"}
    handler.send_json(status, payload)
