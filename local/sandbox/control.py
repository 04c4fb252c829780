"""The control API: recorded calls and accepted numbers as JSON, faults to add and clear, a reset,
and the provider listener taken down and brought back up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from local.sandbox.faults import Fault
from local.sandbox.transport import BadRequest, Handler

if TYPE_CHECKING:
    from local.sandbox.server import ProviderSandbox


def serve(sandbox: ProviderSandbox, handler: Handler) -> None:
    try:
        raw = handler.read_body()
    except BadRequest as exc:
        handler.send_json(400, {"error": str(exc)})
        return
    parts = urlsplit(handler.path)
    route = (handler.command, parts.path.rstrip("/") or "/")
    match route:
        case ("GET", "/"):
            handler.send_json(200, {"url": sandbox.url, "control_url": sandbox.control_url, "up": sandbox.is_up})
        case ("GET", "/calls"):
            operation = dict(parse_qsl(parts.query)).get("operation")
            calls = sandbox.calls_for(operation) if operation else sandbox.calls
            handler.send_json(200, {"calls": [c.to_dict() for c in calls]})
        case ("GET", "/accepted-phones"):
            handler.send_json(200, {"accepted_phones": sandbox.accepted_phones()})
        case ("GET", "/faults"):
            handler.send_json(200, {"faults": [f.to_dict() for f in sandbox.faults]})
        case ("POST", "/faults"):
            try:
                fault = Fault.from_dict(json.loads(raw.decode("utf-8") or "null"))
            except (ValueError, TypeError) as exc:
                handler.send_json(400, {"error": str(exc)})
                return
            sandbox.add_fault(fault)
            handler.send_json(201, {"fault": fault.to_dict()})
        case ("DELETE", "/faults"):
            sandbox.clear_faults()
            handler.send_json(200, {"faults": []})
        case ("POST", "/reset"):
            sandbox.reset()
            handler.send_json(200, {"reset": True})
        case ("POST", "/down"):
            sandbox.go_down()
            handler.send_json(200, {"up": False})
        case ("POST", "/up"):
            try:
                sandbox.come_up()
            except OSError as exc:
                handler.send_json(409, {"error": f"cannot listen again: {exc}"})
                return
            handler.send_json(200, {"up": True})
        case (_, "/" | "/calls" | "/accepted-phones" | "/faults" | "/reset" | "/down" | "/up"):
            handler.send_json(405, {"error": f"{handler.command} is not allowed on {parts.path}"})
        case _:
            handler.send_json(404, {"error": f"no control endpoint at {parts.path}"})
