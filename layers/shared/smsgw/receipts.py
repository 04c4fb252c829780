"""Delivery receipts as the providers push them, read strictly into one shape.

Aliyun pushes a JSON array of `SmsReport`s; Ronglian a `Request` envelope as JSON or XML (which
of the two is not documented, so both are read). Neither signs its push: the route's path carries
an unguessable token, and a body is read as untrusted input. Whatever a receipt says, `success`
(Aliyun) or `status == "0"` (Ronglian) decides; the code is only the reason. A receipt never
creates a message: it is matched to one the gateway sent (smsgw.deliveries).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from xml.etree import ElementTree

from smsgw import bodies, phones
from smsgw.errors import InvalidRequest
from smsgw.phones import PhoneError

BEIJING = timezone(timedelta(hours=8))
MAX_RECEIPTS = 1000
_TEXT = re.compile(r"[\x20-\x7e]{1,128}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_^.\-]{1,128}")
Provider = Literal["aliyun", "ronglian"]


@dataclass(frozen=True, slots=True)
class Receipt:
    provider: str
    message_id: str
    """The provider's id of the send call: Aliyun's `biz_id`, Ronglian's `smsMessageSid`."""
    phone: str
    """E.164."""
    delivered: bool
    reason: str
    """The provider's code: `DELIVERED`, `USER_REJECT`, `DELIVRD`, …"""
    reported_at: str
    """ISO 8601, when the carrier reported (the provider's clock, Beijing time)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        return cls(**data)


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(
        "The receipt is invalid; nothing was recorded.",
        details=[{"field": "body", "type": "receipt_invalid", "message": message}],
    )


def _text(value: Any, name: str, pattern: re.Pattern[str] = _TEXT) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _invalid(f"{name} is missing or not a short printable string")
    return value


def _reason(value: Any, name: str) -> str:
    """A provider's code: printable, short; anything else is kept only as 'unknown'."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return "unknown"
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise _invalid(f"{name} holds control characters")
    return value


def _time(value: Any, fmt: str, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} is missing")
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=BEIJING).isoformat()
    except ValueError:
        raise _invalid(f"{name} is not a time in the provider's format") from None


def _phone(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} is missing")
    try:
        return phones.international(value)
    except PhoneError:
        raise _invalid(f"{name} is not a phone number") from None


def parse_aliyun(text: str) -> list[Receipt]:
    """Aliyun's SmsReport push: a JSON array of reports."""
    data = bodies.loads(text)
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_RECEIPTS:
        raise _invalid(f"the body must be a JSON array of 1 to {MAX_RECEIPTS} reports")
    receipts = []
    for report in data:
        if not isinstance(report, dict):
            raise _invalid("each report must be a JSON object")
        success = report.get("success")
        if not isinstance(success, bool):
            raise _invalid("success must be true or false")
        receipts.append(
            Receipt(
                provider="aliyun",
                message_id=_text(report.get("biz_id"), "biz_id", _MESSAGE_ID),
                phone=_phone(report.get("phone_number"), "phone_number"),
                delivered=success,
                reason=_reason(report.get("err_code"), "err_code"),
                reported_at=_time(report.get("report_time"), "%Y-%m-%d %H:%M:%S", "report_time"),
            )
        )
    return receipts


def parse_ronglian(text: str, content_type: str) -> list[Receipt]:
    """Ronglian's status report: `{"Request": {...}}` or `<Request>...</Request>`. An inbound
    message (`smsType` 0) is not a receipt: it yields none."""
    fields = _ronglian_xml(text) if "xml" in content_type or text.lstrip().startswith("<") else _ronglian_json(text)
    if fields.get("smsType") != "1":
        return []
    return [
        Receipt(
            provider="ronglian",
            message_id=_text(fields.get("content"), "content", _MESSAGE_ID),
            phone=_phone(fields.get("fromNum"), "fromNum"),
            delivered=fields.get("status") == "0",
            reason=_reason(fields.get("deliverCode"), "deliverCode"),
            reported_at=_time(fields.get("recvTime"), "%Y%m%d%H%M%S", "recvTime"),
        )
    ]


def _ronglian_json(text: str) -> dict[str, Any]:
    data = bodies.loads(text)
    request = data.get("Request") if isinstance(data, dict) else None
    if not isinstance(request, dict):
        raise _invalid('the body must be {"Request": {...}}')
    return {k: v for k, v in request.items() if isinstance(v, str)}


def _ronglian_xml(text: str) -> dict[str, Any]:
    # No DTDs, no entities: a push is a flat element of short text fields.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise _invalid("the XML body must not declare a DTD or entities")
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - DTDs and entities refused above
    except ElementTree.ParseError:
        raise _invalid("the body is not well-formed XML") from None
    if root.tag != "Request" or len(root) > 32:
        raise _invalid("the body must be a <Request> element")
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


def dumps(receipts: list[Receipt]) -> str:
    return json.dumps([r.to_dict() for r in receipts], separators=(",", ":"))
