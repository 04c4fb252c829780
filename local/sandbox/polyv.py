"""Polyv's `sms/send` (docs/providers.md): the MD5 or SHA-256 sign over the URL parameters, a
3-minute clock window, and a per-number status for each of up to 200 numbers."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from local.sandbox.inbox import Sent, msisdn, render
from local.sandbox.provider import MAINLAND, Incoming, Provider, Reply, beijing_day, digits_id

if TYPE_CHECKING:
    from local.sandbox.faults import Fault
    from local.sandbox.state import State

logger = logging.getLogger(__name__)


def polyv_sign(params: Mapping[str, str | None], app_secret: str, signature_method: str | None = None) -> str:
    """UPPER(HASH(secret + k1v1k2v2… + secret)) over the non-blank URL parameters except `sign`.

    HASH is MD5 unless `signature_method` is SHA256 (`LiveSignUtil.getSign` in Polyv's Java SDK).
    """
    pairs = sorted((k, v) for k, v in params.items() if k != "sign" and v is not None and v.strip())
    plain = app_secret + "".join(k + v for k, v in pairs) + app_secret
    method = (signature_method or "MD5").upper()
    if method == "SHA256":
        return hashlib.sha256(plain.encode()).hexdigest().upper()
    if method == "MD5":
        return hashlib.md5(plain.encode(), usedforsecurity=False).hexdigest().upper()
    raise ValueError(f"unknown Polyv signatureMethod {signature_method!r}")


class Polyv(Provider):
    NAME = "polyv"
    PATH = "/live/v4/user/sms/send"
    OPERATION = "polyv.send"
    OPERATIONS: ClassVar[tuple[str, ...]] = (OPERATION,)
    MAX_NUMBERS = 200
    DAILY_PER_NUMBER = 10
    WINDOW = timedelta(minutes=3)

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.daily: Counter[tuple[date, str]] = Counter()

    def forget(self) -> None:
        self.daily.clear()

    def operation(self, incoming: Incoming) -> str | None:
        return self.OPERATION if incoming.path == self.PATH else None

    def phones(self, incoming: Incoming) -> list[str]:
        body = incoming.json_body_or_none()
        numbers = body.get("phoneNumbers") if isinstance(body, dict) else None
        return [str(n) for n in numbers] if isinstance(numbers, list) else []

    def sent(self, incoming: Incoming, reply: Reply) -> list[Sent]:
        # Polyv's template is the application's own, set in its console: the sandbox's is keyed by appId.
        body = incoming.json_body()
        app_id = incoming.query.get("appId", "")
        params = {str(k): str(v) for k, v in zip(body["templateParamNames"], body["templateParamValues"], strict=True)}
        text = render("polyv", app_id, params, None)
        return [
            Sent("polyv", "sms/send", str(d["phoneNumber"]), msisdn(str(d["phoneNumber"])), text, app_id, d["serialNo"])
            for d in reply.payload["data"]
            if d["status"] == 12
        ]

    def error(self, http_status: int, code: int | str, desc: str) -> Reply:
        payload = {
            "code": http_status,
            "status": "error",
            "requestId": str(uuid.uuid4()),
            "error": {"code": code, "desc": desc},
            "success": False,
        }
        return Reply(http_status, payload, "rejected", str(code))

    def fault_reply(self, fault: Fault) -> Reply:
        phrase = HTTPStatus(fault.status).phrase.lower() if fault.status in HTTPStatus else "error"
        code: int | str = fault.polyv_status if fault.polyv_status is not None else (fault.code or fault.status)
        reply = self.error(fault.status, code, f"{phrase}.")
        reply.outcome = "fault:http_status"
        return reply

    def handle(self, incoming: Incoming, phones: list[str]) -> Reply:
        if incoming.method != "POST":
            return self.error(405, 405, "method not allowed.")
        query = incoming.query
        secret = self.state.accounts.polyv_secrets.get(query.get("appId", ""))
        if secret is None:
            # The one error code Polyv documents (seed 000).
            return self.error(400, 20001, "application not found.")
        timestamp = query.get("timestamp", "")
        if not re.fullmatch(r"\d{13}", timestamp):
            # Sandbox choice: a missing or non-millisecond timestamp is a parameter error.
            return self.error(400, 20002, "param error")
        sent_at = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
        if abs(incoming.at - sent_at) > self.WINDOW:
            # Sandbox choice: Polyv documents the 3-minute window but not its error code.
            return self.error(400, 20005, "timestamp expired")
        try:
            expected = polyv_sign(query, secret, query.get("signatureMethod"))
        except ValueError:
            expected = ""
        # Sandbox choice: HTTP 403 and code 20004 are not documented. The comparison is exact,
        # since Polyv specifies an upper-case sign.
        if not expected or not hmac.compare_digest(expected, query.get("sign", "")):
            return self.error(403, 20004, "sign mismatch")

        try:
            body = incoming.json_body()
        except ValueError:
            return self.error(400, 20002, "param error")
        problem = self._body_problem(body)
        if problem:
            logger.debug("polyv param error: %s", problem)
            return self.error(400, 20002, "param error")
        return self._send(incoming.at, phones)

    def _body_problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        numbers, names, values = (body.get(k) for k in ("phoneNumbers", "templateParamNames", "templateParamValues"))
        if not isinstance(numbers, list) or not numbers:
            return "phoneNumbers must be a non-empty array"
        if len(numbers) > self.MAX_NUMBERS:
            return f"at most {self.MAX_NUMBERS} phoneNumbers"
        # Polyv's own example sends numbers as JSON numbers, so those pass; anything else does not.
        if not all(_is_scalar(n) for n in numbers):
            return "phoneNumbers must hold strings"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return "templateParamNames must be an array of strings"
        if not isinstance(values, list) or not all(_is_scalar(v) for v in values):
            return "templateParamValues must be an array of strings"
        if len(names) != len(values):
            return "templateParamNames and templateParamValues differ in length"
        return None

    def _send(self, at: datetime, phones: list[str]) -> Reply:
        day = beijing_day(at)
        overrides = self.state.faults.take_per_number(
            self.OPERATION, phones, usable=lambda f: f.polyv_status is not None
        )
        data: list[dict[str, Any]] = []
        accepted: list[str] = []
        for phone, fault in zip(phones, overrides, strict=True):
            if not MAINLAND.fullmatch(phone):
                status = -2
            elif self.daily[(day, phone)] >= self.DAILY_PER_NUMBER:
                status = -1
            else:
                status = 12
            if fault is not None and fault.polyv_status is not None:
                status = fault.polyv_status
            serial_no = None
            if status == 12:
                self.daily[(day, phone)] += 1
                serial_no = digits_id(18) + "^0"
                accepted.append(phone)
            data.append({"phoneNumber": phone, "status": status, "serialNo": serial_no})
        payload = {"code": 200, "status": "success", "requestId": str(uuid.uuid4()), "data": data, "success": True}
        if any(f is not None for f in overrides):
            outcome = "fault:code"
        elif len(accepted) == len(phones):
            outcome = "accepted"
        else:
            outcome = "partial" if accepted else "rejected"
        return Reply(200, payload, outcome, "200", accepted)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))
