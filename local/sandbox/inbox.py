"""Every SMS the sandbox accepted, as the handset would show it: the sign name in 【】 and the
template filled in, with what became of it (its delivery, and the receipt that says so).

The providers keep their templates in their consoles; the sandbox has a small table of its own for
the templates the local stack uses (templates.json: provider, then template code, Ronglian's
template id or Polyv's appId). A template it does not know is shown by its code with its
parameters, so that a message is never hidden for want of a text.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Literal

# Sandbox choice: readable texts for the local stack's templates (events/, the README). Aliyun's
# and Polyv's name their variables `${name}`; Ronglian's are positional, `{1}`, `{2}`…; Aliyun adds
# the request's sign name, Ronglian's and Polyv's templates carry theirs.
TEMPLATES: Mapping[tuple[str, str], str] = {
    (provider, code): text
    for provider, texts in json.loads(resources.files(__package__).joinpath("templates.json").read_text()).items()
    for code, text in texts.items()
}

# Dialling codes of the countries the local stack's examples and tests send to (SendInterSms names
# a country by its ISO code; a receipt and QuerySendDetails carry the number with its code).
CALLING_CODES: Mapping[str, str] = {
    "CN": "86",
    "CHN": "86",
    "HK": "852",
    "HKG": "852",
    "MO": "853",
    "MAC": "853",
    "TW": "886",
    "TWN": "886",
    "SG": "65",
    "US": "1",
    "GB": "44",
}

Receipt = Literal["unavailable", "waiting", "scheduled", "pushed", "lost", "failed"]
"""A message's receipt: none from its provider, not decided yet (manual mode), on its way, pushed,
dropped on purpose, or refused by the receipt URL after every try."""


def msisdn(number: str, country: str | None = None) -> str:
    """The number with its country code and digits only (`8613800138000`): a mainland number's
    eleven digits get 86; a national number sent with a country (SendInterSms) gets its code."""
    digits = re.sub(r"\D", "", number)
    if number.strip().startswith("00"):
        digits = digits[2:]
    if country:
        code = country if country.isdigit() else CALLING_CODES.get(country.upper(), "")
        return code + digits.lstrip("0") if code and not number.strip().startswith("+") else digits
    if len(digits) == 11 and digits.startswith("1"):
        return "86" + digits
    return digits


def render(provider: str, template: str, params: Mapping[str, str] | Sequence[str], sign: str | None) -> str:
    """The text the handset shows."""
    known = TEMPLATES.get((provider, template))
    if known is None:
        shown = json.dumps(params if isinstance(params, Mapping) else list(params), ensure_ascii=False)
        text = f"[template {template}] {shown}"
    elif isinstance(params, Mapping):
        text = re.sub(r"\$\{(\w+)\}", lambda m: str(params.get(m[1], m[0])), known)
    else:
        text = re.sub(r"\{(\d+)\}", lambda m: _nth(params, int(m[1])) or m[0], known)
    return f"【{sign}】{text}" if sign and not text.startswith("【") else text


def _nth(values: Sequence[str], position: int) -> str | None:
    return str(values[position - 1]) if 0 < position <= len(values) else None


@dataclass(frozen=True)
class Sent:
    """One accepted number of a provider call, as a provider reads it from the request and its answer."""

    provider: str
    operation: str
    wire: str
    """The number as the request had it: what receipts carry back."""
    msisdn: str
    text: str
    template: str
    message_id: str
    """Aliyun's BizId, Ronglian's smsMessageSid, Polyv's serialNo."""
    out_id: str | None = None
    req_id: str | None = None


@dataclass
class Sms:
    """An accepted message and what became of it."""

    id: int
    sent: Sent
    at: datetime
    receipt: Receipt
    outcome: Literal["delivered", "undelivered"] | None = None
    code: str | None = None
    reported_at: datetime | None = None
    """When the carrier reported: the receipt's time, and when QuerySendDetails starts to know."""
    pushes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.sent.provider,
            "operation": self.sent.operation,
            "phone": "+" + self.sent.msisdn,
            "wire": self.sent.wire,
            "text": self.sent.text,
            "template": self.sent.template,
            "message_id": self.sent.message_id,
            "sent_at": self.at.isoformat(),
            "receipt": self.receipt,
            "outcome": self.outcome,
            "code": self.code,
            "reported_at": None if self.reported_at is None else self.reported_at.isoformat(),
            "pushes": list(self.pushes),
        }


class Inbox:
    """The accepted messages, in the order they were accepted; `lock` is the sandbox's."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self._messages: list[Sms] = []

    def add(self, sent: Iterable[Sent], at: datetime, receipt: Receipt) -> list[Sms]:
        with self.lock:
            added = [Sms(len(self._messages) + number + 1, one, at, receipt) for number, one in enumerate(sent)]
            self._messages.extend(added)
            return added

    def get(self, sms_id: int) -> Sms | None:
        with self.lock:
            return self._messages[sms_id - 1] if 0 < sms_id <= len(self._messages) else None

    def all(self) -> list[Sms]:
        with self.lock:
            return list(self._messages)

    def find(self, provider: str, number: str, message_id: str | None) -> list[Sms]:
        """A provider's messages to a number (any spelling), of one call if `message_id` is given."""
        wanted = msisdn(number)
        with self.lock:
            return [
                m
                for m in self._messages
                if m.sent.provider == provider
                and m.sent.msisdn == wanted
                and (message_id is None or m.sent.message_id == message_id)
            ]

    def by_phone(self) -> list[dict[str, Any]]:
        """The messages grouped per phone number, each handset's newest first."""
        groups: dict[str, list[dict[str, Any]]] = {}
        with self.lock:
            for sms in reversed(self._messages):
                groups.setdefault("+" + sms.sent.msisdn, []).append(sms.to_dict())
        return [{"phone": phone, "messages": messages} for phone, messages in groups.items()]

    def clear(self) -> None:
        with self.lock:
            self._messages.clear()
