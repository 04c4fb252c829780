"""Ronglian (Cloopen) `TemplateSMS`.

`sig` = UPPER(MD5(accountSid + authToken + ts)) in the URL and `Authorization` =
base64(accountSid + ":" + ts) in a header, with one timestamp. Ronglian is the one provider that
deduplicates: a `reqId` already accepted today is answered with `160054` and not sent again, so
with a `reqId` a resend after an ambiguous failure is safe.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from smsgw.models import RonglianTemplateSmsRequest
from smsgw.outcomes import NumberOutcome, Status
from smsgw.phones import wire_mainland
from smsgw.providers.base import (
    ACCEPTED,
    AMBIGUOUS,
    AUTH_REJECTED,
    RATE_LIMITED,
    REJECTED,
    REJECTED_EVERYWHERE,
    RETRYABLE,
    Chunk,
    Classified,
    ProviderClient,
    json_object,
    split,
)

DEFAULT_ENDPOINT = "https://app.cloopen.com:8883"
SUCCESS = "000000"
DUPLICATE_REQ_ID = "160054"
# The docs give no zone; the provider runs on Beijing time and allows 24 h either way.
PROVIDER_ZONE = ZoneInfo("Asia/Shanghai")

_EXACT: Mapping[str, Classified] = {
    "111111": RETRYABLE,  # concurrency exceeded
    "160000": RETRYABLE,  # system error
    "160038": RATE_LIMITED,  # too frequent
    "160039": RATE_LIMITED,
    "160040": RATE_LIMITED,
    "160041": RATE_LIMITED,  # daily caps per number
    "160071": RATE_LIMITED,  # outside the allowed hours
    DUPLICATE_REQ_ID: ACCEPTED,  # this reqId was accepted today: the first call went out
    "160056": REJECTED,  # duplicate content: not sent by this call
    "160050": AMBIGUOUS,
    "160063": AMBIGUOUS,
    "160064": AMBIGUOUS,  # "send failed": may or may not have gone out
    "111109": AUTH_REJECTED,  # bad sig
    "111106": REJECTED,  # timestamp expired
    "160032": REJECTED,  # invalid template
    "160033": REJECTED_EVERYWHERE,
    "160049": REJECTED_EVERYWHERE,  # forbidden words
    "160034": REJECTED_EVERYWHERE,  # blacklisted number
    "160042": REJECTED_EVERYWHERE,  # bad number format
    "160043": REJECTED,  # app and template do not match
    "160045": REJECTED,  # duplicate numbers in one call
    "160048": REJECTED,  # more than 200 numbers
    "160053": REJECTED,  # IP not allowed
    "160055": REJECTED,  # reqId too long
    "160065": REJECTED,  # bad subAppend
    "111110": REJECTED,
    "111113": REJECTED,  # malformed Authorization or URL (with 111100-111108)
    "113302": REJECTED,  # the test template, sent to a number not registered for tests
    "160030": REJECTED,
    "160031": REJECTED,  # empty or unparsable body
    "160035": REJECTED,  # empty content
    "160036": REJECTED,  # unknown template type
    "160037": REJECTED,  # content too long
    "160044": REJECTED,  # no number
    "160052": REJECTED,  # bad template variable format
    "160057": REJECTED,  # template id must be numeric
    "160070": REJECTED,  # international SMS not permitted (with 160058-160062)
}
_RANGES: tuple[tuple[int, int, Classified], ...] = (
    (111000, 111099, RETRYABLE),  # internal errors
    (111100, 111108, REJECTED),  # malformed Authorization or URL: base64, timestamp, account, sig
    (111128, 111143, REJECTED),  # account problems (111142: balance)
    (111169, 111182, REJECTED),  # app problems
    (112300, 112311, REJECTED),  # empty or missing fields
    (160058, 160062, REJECTED),  # international SMS: permission or country
)


def classify_code(code: str) -> Classified:
    """Read a Ronglian statusCode. An unknown one is never safe to resend."""
    if code in _EXACT:
        return _EXACT[code]
    if code.isdigit():
        number = int(code)
        for low, high, classified in _RANGES:
            if low <= number <= high:
                return classified
    return AMBIGUOUS


class RonglianCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_sid: str
    auth_token: SecretStr
    app_id: str
    endpoint: str = DEFAULT_ENDPOINT


def ronglian_sig(account_sid: str, auth_token: str, timestamp: str) -> str:
    return hashlib.md5(f"{account_sid}{auth_token}{timestamp}".encode()).hexdigest().upper()  # noqa: S324


def ronglian_authorization(account_sid: str, timestamp: str) -> str:
    return base64.b64encode(f"{account_sid}:{timestamp}".encode()).decode()


def chunk_req_id(req_id: str, index: int, chunks: int) -> str:
    """The reqId of one chunk: the caller's for a single call, else a stable one per chunk.

    Each call needs its own reqId (the provider dedupes on it), and the same request must map to
    the same reqIds on every retry, so the chunk's is derived rather than random.
    """
    if chunks == 1:
        return req_id
    return hashlib.md5(f"{req_id}:{index}".encode()).hexdigest()  # noqa: S324 - an identifier, not a MAC


class RonglianClient(ProviderClient[RonglianTemplateSmsRequest]):
    provider: ClassVar[str] = "ronglian"
    operation: ClassVar[str] = "TemplateSMS"
    max_chunk_size: ClassVar[int] = 200
    default_chunk_size: ClassVar[int] = 100

    def __init__(self, credentials: RonglianCredentials, *, chunk_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(chunk_size=chunk_size or self.default_chunk_size, **kwargs)
        self.credentials = credentials
        self.base_url = (
            f"{credentials.endpoint.rstrip('/')}/2013-12-26/Accounts/{credentials.account_sid}/SMS/TemplateSMS"
        )

    def _chunks(self, request: RonglianTemplateSmsRequest) -> list[Chunk]:
        groups = split(request.phone_numbers, self.chunk_size)
        return [
            Chunk(i, tuple(phones), data=chunk_req_id(request.req_id, i, len(groups)) if request.req_id else None)
            for i, phones in enumerate(groups)
        ]

    def _call(self, request: RonglianTemplateSmsRequest, chunk: Chunk) -> requests.Response:
        timestamp = self.clock().astimezone(PROVIDER_ZONE).strftime("%Y%m%d%H%M%S")
        sid = self.credentials.account_sid
        body: dict[str, Any] = {
            "to": ",".join(wire_mainland(p) for p in chunk.phones),
            "appId": self.credentials.app_id,
            "templateId": request.template_id,
            "datas": request.datas,
        }
        if request.sub_append is not None:
            body["subAppend"] = request.sub_append
        if chunk.data is not None:
            body["reqId"] = chunk.data
        return self.session.post(
            self.base_url,
            params={"sig": ronglian_sig(sid, self.credentials.auth_token.get_secret_value(), timestamp)},
            data=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json;charset=utf-8",
                "Authorization": ronglian_authorization(sid, timestamp),
            },
            timeout=self.settings.timeout,
        )

    def _transport_retry_safe(self, request: RonglianTemplateSmsRequest, classified: Classified) -> bool:
        # With a reqId the provider drops a repeat of an accepted call.
        return classified.retry_safe or request.callers_req_id

    def _interpret(
        self, request: RonglianTemplateSmsRequest, chunk: Chunk, response: requests.Response
    ) -> list[NumberOutcome]:
        payload = json_object(response)
        if payload is None or not isinstance(payload.get("statusCode"), str):
            return self.unreadable(chunk, response)
        code: str = payload["statusCode"]
        if code == SUCCESS:
            sms = payload.get("templateSMS") if isinstance(payload.get("templateSMS"), dict) else {}
            assert isinstance(sms, dict)
            sid = sms.get("smsMessageSid")
            return self.same_for_all(
                chunk, ACCEPTED, code=code, message="accepted", message_id=str(sid).strip() if sid else None
            )
        classified = classify_code(code)
        if classified.status is Status.AMBIGUOUS and request.callers_req_id:
            classified = Classified(Status.AMBIGUOUS, retry_safe=True)
        message = payload.get("statusMsg")
        return self.same_for_all(chunk, classified, code=code, message=None if message is None else str(message))
