"""Aliyun Dysmsapi `SendInterSms` and `SendBatchSms`, RPC style with signature v1 (HMAC-SHA1).

All parameters go in an `application/x-www-form-urlencoded` POST body, which the signature covers
like a query string; large batches do not fit a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from smsgw.models import AliyunBatchSmsRequest, AliyunInterSmsRequest, BatchMessage, SendRequest
from smsgw.outcomes import NumberOutcome
from smsgw.phones import wire_international, wire_national
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
    split,
)

DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"

RETRYABLE_CODES = frozenset({"isp.SYSTEM_ERROR", "InternalError", "ServiceUnavailable", "SignatureNonceUsed"})
RATE_LIMITED_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.MONTH_LIMIT_CONTROL",
        # SendInterSms's own per-number windows.
        "isv.BUSINESS_LIMIT_HOUR",
        "isv.BUSINESS_LIMIT_DAY",
    }
)
# A failure inside Aliyun's gateway after the request was taken: whether the SMS went out is unknown.
AMBIGUOUS_CODES = frozenset({"isp.GATEWAY_ERROR"})
AUTH_CODES = frozenset({"SignatureDoesNotMatch", "isp.RAM_PERMISSION_DENY"})
PERMANENT_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.INVALID_PARAMETERS",
        "isv.INVALID_JSON_PARAM",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.DENY_IP_RANGE",
        "isv.NOT_SUPPORTED_COUNTRY",
    }
)
# Refusals of the number or the content itself: another provider would refuse them too.
EVERYWHERE_CODES = frozenset(
    {"isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.PARAM_LENGTH_LIMIT", "isv.PARAM_NOT_SUPPORT_URL"}
)
PERMANENT_PREFIXES = ("Missing", "InvalidTimeStamp.")
AUTH_PREFIXES = ("InvalidAccessKeyId.",)


def classify_code(code: str | None, http_status: int) -> Classified:
    """Read an Aliyun error code. An unknown one is never safe to resend."""
    if code in RETRYABLE_CODES or (code or "").startswith("Throttling"):
        return RETRYABLE
    if code in RATE_LIMITED_CODES:
        return RATE_LIMITED
    if code in AMBIGUOUS_CODES:
        return AMBIGUOUS
    if code in AUTH_CODES or (code or "").startswith(AUTH_PREFIXES):
        return AUTH_REJECTED
    if code in EVERYWHERE_CODES:
        return REJECTED_EVERYWHERE
    if code in PERMANENT_CODES or (code or "").startswith(PERMANENT_PREFIXES):
        return REJECTED
    # An unknown code in a 4xx gateway error is still a refusal of the whole call; anywhere
    # else it may stand for a send.
    return REJECTED if 400 <= http_status < 500 else AMBIGUOUS


class AliyunCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    access_key_id: str
    access_key_secret: SecretStr
    endpoint: str = DEFAULT_ENDPOINT
    region_id: str = "cn-hangzhou"


def percent_encode(value: str) -> str:
    """RFC 3986 over UTF-8: only `A-Z a-z 0-9 - _ . ~` stay; space is %20, `*` is %2A."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def rpc_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Signature v1 over every parameter but `Signature` itself."""
    unsigned = {k: v for k, v in params.items() if k != "Signature"}
    mac = hmac.new(f"{access_key_secret}&".encode(), string_to_sign(method, unsigned).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _AliyunClient[RequestT: SendRequest](ProviderClient[RequestT]):
    provider: ClassVar[str] = "aliyun"

    def __init__(self, credentials: AliyunCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials
        self.url = credentials.endpoint.rstrip("/") + "/"

    @abstractmethod
    def _action_params(self, request: RequestT, chunk: Chunk) -> dict[str, str]:
        """The operation's own parameters for one call."""

    def signed_params(self, action_params: Mapping[str, str]) -> dict[str, str]:
        params = {
            "Action": self.operation,
            "Version": API_VERSION,
            "Format": "JSON",
            "AccessKeyId": self.credentials.access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": self.nonce(),
            "Timestamp": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RegionId": self.credentials.region_id,
            **action_params,
        }
        params["Signature"] = rpc_signature("POST", params, self.credentials.access_key_secret.get_secret_value())
        return params

    def _call(self, request: RequestT, chunk: Chunk) -> requests.Response:
        body = canonical_query(self.signed_params(self._action_params(request, chunk)))
        return self.session.post(
            self.url,
            data=body.encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            timeout=self.settings.timeout,
        )

    def _interpret(self, request: RequestT, chunk: Chunk, response: requests.Response) -> list[NumberOutcome]:
        payload = json_object(response)
        if payload is None:
            return self.unreadable(chunk, response)
        code = payload.get("Code")
        message = payload.get("Message")
        if code == "OK" and 200 <= response.status_code < 300:
            biz_id = payload.get("BizId")
            return self.same_for_all(chunk, ACCEPTED, code=code, message=message, message_id=biz_id)
        classified = (
            classify_code(code, response.status_code)
            if isinstance(code, str)
            else http_status_class(response.status_code)
        )
        return self.same_for_all(chunk, classified, code=str(code), message=None if message is None else str(message))


class AliyunInterSmsClient(_AliyunClient[AliyunInterSmsRequest]):
    """`SendInterSms`: the provider takes one number per call; a request's numbers go out concurrently."""

    operation: ClassVar[str] = "SendInterSms"
    max_chunk_size: ClassVar[int] = 1

    def _chunks(self, request: AliyunInterSmsRequest) -> list[Chunk]:
        return [Chunk(i, (phone,)) for i, phone in enumerate(request.phone_numbers)]

    def _action_params(self, request: AliyunInterSmsRequest, chunk: Chunk) -> dict[str, str]:
        params = {
            "PhoneNumbers": wire_national(chunk.phones[0]),
            "CountryCode": request.country_code,
            "SignName": request.sign_name,
            "TemplateCode": request.template_code,
        }
        if request.template_param is not None:
            params["TemplateParam"] = _json(request.template_param)
        if request.out_id is not None:
            params["OutId"] = request.out_id
        return params


class AliyunBatchSmsClient(_AliyunClient[AliyunBatchSmsRequest]):
    """`SendBatchSms`: up to 100 numbers a call, one sign name and parameter object each."""

    operation: ClassVar[str] = "SendBatchSms"
    max_chunk_size: ClassVar[int] = 100

    def _chunks(self, request: AliyunBatchSmsRequest) -> list[Chunk]:
        return [
            Chunk(i, tuple(m.phone_number for m in messages), data=tuple(messages))
            for i, messages in enumerate(split(request.messages, self.chunk_size))
        ]

    def _action_params(self, request: AliyunBatchSmsRequest, chunk: Chunk) -> dict[str, str]:
        messages: tuple[BatchMessage, ...] = chunk.data
        params = {
            "PhoneNumberJson": _json([wire_international(m.phone_number) for m in messages]),
            "SignNameJson": _json([request.sign_name_of(m) for m in messages]),
            "TemplateCode": request.template_code,
            "TemplateParamJson": _json([m.template_param for m in messages]),
        }
        if messages[0].sms_up_extend_code is not None:
            params["SmsUpExtendCodeJson"] = _json([m.sms_up_extend_code for m in messages])
        if request.out_id is not None:
            params["OutId"] = request.out_id
        return params


class AliyunDeliveryQuery:
    """`QuerySendDetails`: what became of a number of a send (by `BizId`), for reconciliation.

    `SendStatus` 1 is waiting for the carrier's report, 2 failed, 3 delivered. At most 30 days
    back, one number and day per call; a page of 10 is plenty for one `BizId`."""

    operation: ClassVar[str] = "QuerySendDetails"

    def __init__(
        self,
        credentials: AliyunCredentials,
        *,
        session: requests.Session,
        timeout: tuple[float, float] = (3.0, 10.0),
        clock: Any = None,
        nonce: Any = None,
    ) -> None:
        from smsgw.providers.base import new_nonce, utc_now

        self.credentials = credentials
        self.session = session
        self.timeout = timeout
        self.clock = clock or utc_now
        self.nonce = nonce or new_nonce
        self.url = credentials.endpoint.rstrip("/") + "/"

    def details(self, phone: str, biz_id: str, send_date: str) -> list[dict[str, Any]]:
        """The provider's records of the number for that send; raises `requests.RequestException`
        or `ValueError` (an answer that is not the documented one)."""
        params = {
            "Action": self.operation,
            "Version": API_VERSION,
            "Format": "JSON",
            "AccessKeyId": self.credentials.access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": self.nonce(),
            "Timestamp": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RegionId": self.credentials.region_id,
            "PhoneNumber": wire_international(phone),
            "BizId": biz_id,
            "SendDate": send_date,
            "PageSize": "10",
            "CurrentPage": "1",
        }
        params["Signature"] = rpc_signature("POST", params, self.credentials.access_key_secret.get_secret_value())
        response = self.session.post(
            self.url,
            data=canonical_query(params).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            timeout=self.timeout,
        )
        payload = json_object(response)
        if payload is None or payload.get("Code") != "OK":
            raise ValueError(f"QuerySendDetails answered {response.status_code} {payload and payload.get('Code')}")
        found = (payload.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
        return [d for d in found if isinstance(d, dict)]
