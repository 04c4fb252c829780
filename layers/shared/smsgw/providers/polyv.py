"""Polyv live API `POST /live/v4/user/sms/send` (Polyv relays to Aliyun SMS).

Only `appId` and `timestamp` (and `signatureMethod` when used) are signed, in the URL; the JSON
body is not. Polyv answers per number inside an HTTP 200: `12` queued, `-1` the number's daily
limit, `-2` an invalid number, `11` the relay to Aliyun failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from smsgw.models import PolyvSendRequest
from smsgw.outcomes import NumberOutcome
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
    http_status_class,
    json_object,
    outcome,
    split,
)

SEND_PATH = "/live/v4/user/sms/send"
DEFAULT_ENDPOINT = "https://api.polyv.net"

PER_NUMBER_STATUS: Mapping[int, Classified] = {
    -1: RATE_LIMITED,  # the number reached its daily limit
    -2: REJECTED_EVERYWHERE,  # invalid number
    11: RETRYABLE,  # Polyv says the relay to Aliyun failed: not sent
}
PER_NUMBER_MESSAGE: Mapping[int, str] = {
    12: "queued",
    -1: "daily limit of the number reached",
    -2: "invalid number",
    11: "relay to Aliyun failed",
}
ACCEPTED_STATUS = 12
# 20001 is the one error code Polyv documents: the appId is unknown.
AUTH_ERROR_CODES = frozenset({20001})


class PolyvCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: str
    app_secret: SecretStr
    endpoint: str = DEFAULT_ENDPOINT


def polyv_sign(params: Mapping[str, Any], app_secret: str) -> str:
    """Polyv's sign: non-blank URL params but `sign`, sorted by key, `k1v1k2v2…` wrapped in the secret."""
    method = str(params.get("signatureMethod") or "MD5").upper()
    plain = "".join(
        f"{key}{value}"
        for key, value in sorted(params.items())
        if key != "sign" and value is not None and str(value).strip() != ""
    )
    data = f"{app_secret}{plain}{app_secret}".encode()
    digest = hashlib.sha256(data) if method == "SHA256" else hashlib.md5(data)  # noqa: S324 - the provider's protocol
    return digest.hexdigest().upper()


class PolyvClient(ProviderClient[PolyvSendRequest]):
    provider: ClassVar[str] = "polyv"
    operation: ClassVar[str] = "sms/send"
    max_chunk_size: ClassVar[int] = 200

    def __init__(
        self,
        credentials: PolyvCredentials,
        *,
        signature_method: Literal["MD5", "SHA256"] = "MD5",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials
        self.signature_method = signature_method
        self.url = credentials.endpoint.rstrip("/") + SEND_PATH

    def _chunks(self, request: PolyvSendRequest) -> list[Chunk]:
        return [Chunk(i, tuple(phones)) for i, phones in enumerate(split(request.phone_numbers, self.chunk_size))]

    def signed_params(self) -> dict[str, str]:
        params = {"appId": self.credentials.app_id, "timestamp": str(int(self.clock().timestamp() * 1000))}
        if self.signature_method != "MD5":
            params["signatureMethod"] = self.signature_method
        params["sign"] = polyv_sign(params, self.credentials.app_secret.get_secret_value())
        return params

    def _call(self, request: PolyvSendRequest, chunk: Chunk) -> requests.Response:
        body = {
            "phoneNumbers": [wire_mainland(p) for p in chunk.phones],
            "templateParamNames": request.template_param_names,
            "templateParamValues": request.template_param_values,
        }
        return self.session.post(
            self.url,
            params=self.signed_params(),
            data=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json;charset=utf-8", "Accept": "application/json"},
            timeout=self.settings.timeout,
        )

    def _interpret(self, request: PolyvSendRequest, chunk: Chunk, response: requests.Response) -> list[NumberOutcome]:
        payload = json_object(response)
        if payload is None:
            return self.unreadable(chunk, response)
        if response.status_code == 200 and payload.get("success") is True:
            return self._per_number(chunk, payload.get("data"))
        return self._call_failed(chunk, response.status_code, payload)

    def _per_number(self, chunk: Chunk, data: Any) -> list[NumberOutcome]:
        results: dict[str, Mapping[str, Any]] = {}
        if isinstance(data, list):
            results = {str(r.get("phoneNumber")): r for r in data if isinstance(r, dict)}
        outcomes = []
        for phone in chunk.phones:
            result = results.get(wire_mainland(phone))
            if result is None:
                # Polyv answered for the call but not for this number: it may have gone out.
                outcomes.append(outcome(phone, AMBIGUOUS, code=None, message="no result for the number"))
                continue
            status = result.get("status")
            if not isinstance(status, int) or isinstance(status, bool):
                outcomes.append(outcome(phone, AMBIGUOUS, code=str(status), message="unknown status"))
                continue
            message = PER_NUMBER_MESSAGE.get(status, "unknown status")
            if status == ACCEPTED_STATUS:
                serial = result.get("serialNo")
                outcomes.append(
                    outcome(
                        phone, ACCEPTED, code=str(status), message=message, message_id=str(serial) if serial else None
                    )
                )
            else:
                # An unknown status may hide a send: never read it as safe to resend.
                outcomes.append(
                    outcome(phone, PER_NUMBER_STATUS.get(status, AMBIGUOUS), code=str(status), message=message)
                )
        return outcomes

    def _call_failed(self, chunk: Chunk, http_status: int, payload: Mapping[str, Any]) -> list[NumberOutcome]:
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        assert isinstance(error, dict)
        code = error.get("code")
        message = str(error.get("desc") or payload.get("status") or "")
        if code in AUTH_ERROR_CODES:
            classified = AUTH_REJECTED
        elif http_status >= 500 and payload.get("status") == "fail":
            # Polyv reports business errors as HTTP 500 with status "fail": a refusal, not an outage.
            classified = REJECTED
        else:
            classified = http_status_class(http_status)
            if http_status < 400:
                # An HTTP 2xx that says it failed, with no per-number results.
                classified = REJECTED if payload.get("success") is False else AMBIGUOUS
        return self.same_for_all(
            chunk, classified, code=str(code if code is not None else http_status), message=message
        )
