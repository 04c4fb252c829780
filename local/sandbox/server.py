"""The provider sandbox: Polyv, Aliyun and Ronglian impersonated on loopback, on their real paths.

A client pointed at `ProviderSandbox.url` instead of the provider's host cannot tell the
difference in the wire format: same paths, parameters, signatures, clocks and answer bodies
(docs/providers.md is the reference). Every signature is checked with code that shares nothing with
the gateway's clients: Aliyun's with Aliyun's own signer, Polyv's and Ronglian's with the
functions below, proven against the providers' published answers in the tests.

Where the providers' documents say nothing, the sandbox makes a choice and says so in a comment
marked "Sandbox choice".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qsl, quote, urlsplit

from alibabacloud_tea_openapi.utils import Utils as TeaUtils

from local.sandbox.accounts import DEFAULT_ACCOUNTS, SandboxAccounts
from local.sandbox.faults import TRANSPORT_KINDS, Fault, FaultBook

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# China has had no daylight saving time since 1991, so a fixed offset is Asia/Shanghai exactly.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

MAX_BODY = 8 * 1024 * 1024
JSON_TYPE = "application/json;charset=UTF-8"
# Valid UTF-8 but not JSON: a client must fail to parse it, not to decode it.
GARBLED_BODY = b'{"success": true, "data": [{"phoneNumber": "1380013'

MAINLAND = re.compile(r"1[3-9]\d{9}")
# Eleven digits starting 10, 11 or 12 look mainland but are not; they are refused everywhere.
NOT_MAINLAND = re.compile(r"1[0-2]\d{9}")


# --- Signatures, written from docs/providers.md (Aliyun's is the official signer) ---------------


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


def aliyun_signature(params: Mapping[str, str], method: str, access_key_secret: str) -> str:
    """RPC signature v1 by Aliyun's own signer, over every parameter except `Signature`."""
    signed = {k: v for k, v in params.items() if k != "Signature"}
    return str(TeaUtils.get_rpcsignature(signed, method.upper(), access_key_secret))


def aliyun_string_to_sign(params: Mapping[str, str], method: str) -> str:
    """Only for the `SignatureDoesNotMatch` message, which shows it as Aliyun's does; never for checking."""

    def enc(text: str) -> str:
        return quote(text, safe="~")

    canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()) if k != "Signature")
    return f"{method.upper()}&{enc('/')}&{enc(canonical)}"


def ronglian_sig(account_sid: str, auth_token: str, timestamp: str) -> str:
    """UPPER(MD5(accountSid + authToken + timestamp)), the URL's `sig`."""
    return hashlib.md5((account_sid + auth_token + timestamp).encode(), usedforsecurity=False).hexdigest().upper()


def ronglian_authorization(account_sid: str, timestamp: str) -> str:
    """base64(accountSid + ":" + timestamp), the `Authorization` header (no `Basic ` prefix)."""
    return base64.b64encode(f"{account_sid}:{timestamp}".encode()).decode()


# --- Calls as they reached the sandbox ---------------------------------------------------------


@dataclass(frozen=True)
class RecordedCall:
    operation: str
    phones: list[str]
    params: dict[str, str]
    body: Any
    headers: dict[str, str]
    outcome: str
    accepted_phones: list[str]
    at: datetime
    # The HTTP status answered, None when the sandbox closed the connection instead.
    status: int | None = None
    # The provider code answered (Polyv error code, Aliyun `Code`, Ronglian `statusCode`).
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "phones": list(self.phones),
            "params": dict(self.params),
            "body": self.body,
            "headers": dict(self.headers),
            "outcome": self.outcome,
            "accepted_phones": list(self.accepted_phones),
            "at": self.at.isoformat(),
            "status": self.status,
            "code": self.code,
        }


@dataclass
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    at: datetime

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json_body(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.raw_body.decode("utf-8"))

    def json_body_or_none(self) -> Any:
        try:
            return self.json_body()
        except ValueError:
            return None


@dataclass
class _Reply:
    status: int
    payload: Any
    outcome: str
    code: str | None = None
    accepted: list[str] = field(default_factory=list)


class _State:
    """Everything the provider logic reads and changes; `lock` guards all of it."""

    def __init__(self, accounts: SandboxAccounts, clock: Clock) -> None:
        self.accounts = accounts
        self.clock = clock
        self.lock = threading.RLock()
        self.faults = FaultBook()
        self.calls: list[RecordedCall] = []
        self.accepted: list[str] = []
        self.polyv_daily: Counter[tuple[date, str]] = Counter()
        self.aliyun_nonces: dict[tuple[str, str], datetime] = {}
        self.ronglian_req_ids: set[tuple[str, date, str]] = set()
        # Replaced on every start, so handlers asleep in a fault wake up when the sandbox stops.
        self.stopping = threading.Event()

    def now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the sandbox clock must return an aware datetime")
        return moment.astimezone(UTC)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.calls.clear()
            self.accepted.clear()
            self.polyv_daily.clear()
            self.aliyun_nonces.clear()
            self.ronglian_req_ids.clear()

    def record(self, incoming: _Incoming, operation: str, phones: list[str], body: Any, **answer: Any) -> None:
        call = RecordedCall(
            operation=operation,
            phones=list(phones),
            params=incoming.params,
            body=body,
            headers=dict(incoming.headers),
            at=incoming.at,
            **answer,
        )
        with self.lock:
            self.calls.append(call)
            self.accepted.extend(call.accepted_phones)


def _beijing_day(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


def _digits_id(length: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(length - 1))


# --- Polyv ---------------------------------------------------------------------------------------


class _Polyv:
    PATH = "/live/v4/user/sms/send"
    OPERATION = "polyv.send"
    MAX_NUMBERS = 200
    DAILY_PER_NUMBER = 10
    WINDOW = timedelta(minutes=3)

    def __init__(self, state: _State) -> None:
        self.state = state

    def phones(self, incoming: _Incoming) -> list[str]:
        body = incoming.json_body_or_none()
        numbers = body.get("phoneNumbers") if isinstance(body, dict) else None
        return [str(n) for n in numbers] if isinstance(numbers, list) else []

    def error(self, http_status: int, code: int | str, desc: str) -> _Reply:
        payload = {
            "code": http_status,
            "status": "error",
            "requestId": str(uuid.uuid4()),
            "error": {"code": code, "desc": desc},
            "success": False,
        }
        return _Reply(http_status, payload, "rejected", str(code))

    def fault_reply(self, fault: Fault) -> _Reply:
        phrase = HTTPStatus(fault.status).phrase.lower() if fault.status in HTTPStatus else "error"
        code: int | str = fault.polyv_status if fault.polyv_status is not None else (fault.code or fault.status)
        reply = self.error(fault.status, code, f"{phrase}.")
        reply.outcome = "fault:http_status"
        return reply

    def handle(self, incoming: _Incoming, phones: list[str]) -> _Reply:
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

    def _send(self, at: datetime, phones: list[str]) -> _Reply:
        day = _beijing_day(at)
        overrides = self.state.faults.take_per_number(
            self.OPERATION, phones, usable=lambda f: f.polyv_status is not None
        )
        data: list[dict[str, Any]] = []
        accepted: list[str] = []
        for phone, fault in zip(phones, overrides, strict=True):
            if not MAINLAND.fullmatch(phone):
                status = -2
            elif self.state.polyv_daily[(day, phone)] >= self.DAILY_PER_NUMBER:
                status = -1
            else:
                status = 12
            if fault is not None and fault.polyv_status is not None:
                status = fault.polyv_status
            serial_no = None
            if status == 12:
                self.state.polyv_daily[(day, phone)] += 1
                serial_no = _digits_id(18) + "^0"
                accepted.append(phone)
            data.append({"phoneNumber": phone, "status": status, "serialNo": serial_no})
        payload = {"code": 200, "status": "success", "requestId": str(uuid.uuid4()), "data": data, "success": True}
        if any(f is not None for f in overrides):
            outcome = "fault:code"
        elif len(accepted) == len(phones):
            outcome = "accepted"
        else:
            outcome = "partial" if accepted else "rejected"
        return _Reply(200, payload, outcome, "200", accepted)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))


# --- Aliyun --------------------------------------------------------------------------------------


# The seeds' descriptions (001, 002), used as each business error's Message.
ALIYUN_MESSAGES: dict[str, str] = {
    "OK": "OK",
    "isp.RAM_PERMISSION_DENY": "RAM权限DENY",
    "isv.OUT_OF_SERVICE": "业务停机",
    "isv.PRODUCT_UN_SUBSCRIPT": "未开通云通信产品的阿里云客户",
    "isv.PRODUCT_UNSUBSCRIBE": "产品未开通",
    "isv.ACCOUNT_NOT_EXISTS": "账户不存在",
    "isv.ACCOUNT_ABNORMAL": "账户异常",
    "isv.SMS_TEMPLATE_ILLEGAL": "短信模板不合法",
    "isv.SMS_SIGNATURE_ILLEGAL": "短信签名不合法",
    "isv.INVALID_PARAMETERS": "参数异常",
    "isp.SYSTEM_ERROR": "系统错误",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板缺少变量",
    "isv.BUSINESS_LIMIT_CONTROL": "业务限流",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法,只接受字符串值",
    "isv.BLACK_KEY_CONTROL_LIMIT": "黑名单管控",
    "isv.PARAM_LENGTH_LIMIT": "参数超出长度限制",
    "isv.PARAM_NOT_SUPPORT_URL": "不支持URL",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
}

# Sandbox choice: the gateway error an `http_status` fault answers when it names no code.
ALIYUN_STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "The specified parameter is not valid."),
    403: ("Forbidden", "User not authorized to operate on the specified resource."),
    404: ("InvalidAction.NotFound", "Specified api is not found, please check your url and method."),
    429: ("Throttling", "Request was denied due to request throttling."),
    500: ("InternalError", "The request processing has failed due to some unknown error, exception or failure."),
    502: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    504: ("ServiceTimeout", "The request has failed due to a timeout of the server."),
}


class _Aliyun:
    OPERATIONS = ("SendInterSms", "SendBatchSms")
    VERSION = "2017-05-25"
    HOST_ID = "dysmsapi.aliyuncs.com"
    WINDOW = timedelta(minutes=15)
    NONCE_MEMORY = timedelta(minutes=15)
    MAX_BATCH = 100
    COMMON = ("AccessKeyId", "Action", "Signature", "SignatureMethod", "SignatureNonce", "SignatureVersion")
    DOMESTIC = re.compile(r"(?:\+86|0086|86)?1[3-9]\d{9}")
    INTERNATIONAL = re.compile(r"[1-9]\d{7,14}")
    NATIONAL = re.compile(r"\d{4,15}")
    TEMPLATE_CODE = re.compile(r"SMS_\d+")

    def __init__(self, state: _State) -> None:
        self.state = state

    @staticmethod
    def operation(incoming: _Incoming) -> str:
        return f"aliyun.{incoming.params.get('Action') or 'unknown'}"

    def phones(self, incoming: _Incoming) -> list[str]:
        params = incoming.params
        if params.get("Action") == "SendBatchSms":
            try:
                numbers = json.loads(params.get("PhoneNumberJson", ""))
            except ValueError:
                return []
            return [str(n) for n in numbers] if isinstance(numbers, list) else []
        raw = params.get("PhoneNumbers", "")
        return raw.split(",") if raw else []

    def gateway_error(self, http_status: int, code: str, message: str) -> _Reply:
        request_id = str(uuid.uuid4()).upper()
        payload = {
            "RequestId": request_id,
            "HostId": self.HOST_ID,
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi&requestId={request_id}",
        }
        return _Reply(http_status, payload, "rejected", code)

    def business(self, code: str, message: str | None = None) -> _Reply:
        text = message or ALIYUN_MESSAGES.get(code, code)
        payload = {"RequestId": str(uuid.uuid4()).upper(), "Code": code, "Message": text}
        return _Reply(200, payload, "rejected", code)

    def fault_reply(self, fault: Fault) -> _Reply:
        default = ALIYUN_STATUS_CODES.get(fault.status)
        if default is None:
            default = ALIYUN_STATUS_CODES[500 if fault.status >= 500 else 400]
        code = str(fault.code) if fault.code is not None else default[0]
        reply = self.gateway_error(fault.status, code, default[1])
        reply.outcome = "fault:http_status"
        return reply

    def handle(self, incoming: _Incoming, phones: list[str]) -> _Reply:
        if incoming.method not in ("GET", "POST"):
            # Sandbox choice: Aliyun RPC takes GET and POST only; the code is not documented.
            return self.gateway_error(
                405, "UnsupportedHTTPMethod", f"Specified http method {incoming.method} is not supported."
            )
        params = incoming.params
        for name in self.COMMON:
            if not params.get(name):
                return self.gateway_error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if not params.get("Version"):
            return self.gateway_error(400, "MissingVersion", "Version is mandatory for this action.")
        if params["Version"] != self.VERSION:
            return self.gateway_error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params["Action"] not in self.OPERATIONS:
            return self.gateway_error(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        # Sandbox choice: Format is optional at Aliyun (XML by default), but the sandbox answers
        # only JSON, so a client that leaves it out would break against the real service.
        for name, required in (("Format", "JSON"), ("SignatureMethod", "HMAC-SHA1"), ("SignatureVersion", "1.0")):
            if params.get(name) != required:
                return self.gateway_error(
                    400, "InvalidParameter", f"Specified parameter {name} is not valid: it must be {required}."
                )
        secret = self.state.accounts.aliyun_secrets.get(params["AccessKeyId"])
        if secret is None:
            return self.gateway_error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if not params.get("Timestamp"):
            return self.gateway_error(400, "MissingTimestamp", "Timestamp is mandatory for this action.")
        try:
            sent_at = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self.gateway_error(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            )
        now = incoming.at
        if abs(now - sent_at) > self.WINDOW:
            return self.gateway_error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        expected = aliyun_signature(params, incoming.method, secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            sts = aliyun_string_to_sign(params, incoming.method)
            return self.gateway_error(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. server string to sign is:{sts}",
            )
        # Only an authentic request spends its nonce; a forged one must not burn someone's nonce.
        nonce_key = (params["AccessKeyId"], params["SignatureNonce"])
        self._forget_nonces(now)
        if nonce_key in self.state.aliyun_nonces:
            return self.gateway_error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.state.aliyun_nonces[nonce_key] = now

        operation = self.operation(incoming)
        refused = self._check_inter(params) if params["Action"] == "SendInterSms" else self._check_batch(params)
        if refused is not None:
            return refused
        fault = self.state.faults.take(operation, phones, frozenset({"code"}))
        if fault is not None:
            reply = self.business(str(fault.code))
            reply.outcome = "fault:code"
            return reply
        payload = {
            "RequestId": str(uuid.uuid4()).upper(),
            "Code": "OK",
            "Message": "OK",
            "BizId": _digits_id(18) + "^0",
        }
        return _Reply(200, payload, "accepted", "OK", list(phones))

    def _forget_nonces(self, now: datetime) -> None:
        stale = [k for k, seen in self.state.aliyun_nonces.items() if now - seen > self.NONCE_MEMORY]
        for key in stale:
            del self.state.aliyun_nonces[key]

    def _missing(self, params: Mapping[str, str], names: Sequence[str]) -> _Reply | None:
        for name in names:
            if not params.get(name):
                return self.gateway_error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        return None

    def _check_inter(self, params: Mapping[str, str]) -> _Reply | None:
        # Sandbox choice: the seed's table spells `countryCode`; both spellings are accepted.
        params = {**params, "CountryCode": params.get("CountryCode") or params.get("countryCode", "")}
        missing = self._missing(params, ("PhoneNumbers", "CountryCode", "SignName", "TemplateCode"))
        if missing:
            return missing
        numbers = params["PhoneNumbers"].split(",")
        if len(numbers) > 1:
            return self.business("isv.MOBILE_COUNT_OVER_LIMIT")
        if not self.NATIONAL.fullmatch(numbers[0]) or NOT_MAINLAND.fullmatch(numbers[0]):
            return self.business("isv.MOBILE_NUMBER_ILLEGAL")
        # Sandbox choice: the seed shows both `HK` and `CHN`, so 2-3 letters or a dialling code pass.
        if not re.fullmatch(r"[A-Za-z]{2,3}|\d{1,4}", params["CountryCode"]):
            return self.business("isv.INVALID_PARAMETERS", "CountryCode is not valid")
        if not self.TEMPLATE_CODE.fullmatch(params["TemplateCode"]):
            return self.business("isv.SMS_TEMPLATE_ILLEGAL")
        template_param = params.get("TemplateParam")
        if template_param and not _string_object(_loads(template_param)):
            return self.business("isv.INVALID_JSON_PARAM")
        return None

    def _check_batch(self, params: Mapping[str, str]) -> _Reply | None:
        missing = self._missing(params, ("PhoneNumberJson", "SignNameJson", "TemplateCode", "TemplateParamJson"))
        if missing:
            return missing
        numbers = _loads(params["PhoneNumberJson"])
        sign_names = _loads(params["SignNameJson"])
        template_params = _loads(params["TemplateParamJson"])
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            return self.business("isv.INVALID_JSON_PARAM", "PhoneNumberJson must be a JSON array of strings")
        if not isinstance(sign_names, list) or not all(isinstance(s, str) for s in sign_names):
            return self.business("isv.INVALID_JSON_PARAM", "SignNameJson must be a JSON array of strings")
        if not isinstance(template_params, list):
            return self.business("isv.INVALID_JSON_PARAM", "TemplateParamJson must be a JSON array of objects")
        if not numbers:
            return self.business("isv.INVALID_PARAMETERS", "PhoneNumberJson is empty")
        if len(numbers) > self.MAX_BATCH:
            return self.business("isv.MOBILE_COUNT_OVER_LIMIT")
        if not len(numbers) == len(sign_names) == len(template_params):
            return self.business(
                "isv.INVALID_PARAMETERS", "PhoneNumberJson, SignNameJson and TemplateParamJson differ in length"
            )
        extend_codes = params.get("SmsUpExtendCodeJson")
        if extend_codes:
            codes = _loads(extend_codes)
            if not isinstance(codes, list) or len(codes) != len(numbers):
                return self.business("isv.INVALID_PARAMETERS", "SmsUpExtendCodeJson must match PhoneNumberJson")
        if not all(_string_object(p) for p in template_params):
            return self.business("isv.INVALID_JSON_PARAM")
        if not all(self._batch_number_ok(n) for n in numbers):
            return self.business("isv.MOBILE_NUMBER_ILLEGAL")
        if not all(s.strip() for s in sign_names):
            return self.business("isv.SMS_SIGNATURE_ILLEGAL")
        if not self.TEMPLATE_CODE.fullmatch(params["TemplateCode"]):
            return self.business("isv.SMS_TEMPLATE_ILLEGAL")
        return None

    def _batch_number_ok(self, number: str) -> bool:
        if self.DOMESTIC.fullmatch(number):
            return True
        # A number that starts with 86 is mainland by its country code and must pass as domestic.
        return bool(
            self.INTERNATIONAL.fullmatch(number) and not NOT_MAINLAND.fullmatch(number) and not number.startswith("86")
        )


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _string_object(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


# --- Ronglian ------------------------------------------------------------------------------------


# Sandbox choice: the wording of each statusMsg; the codes follow docs/providers.md.
RONGLIAN_MESSAGES: dict[str, str] = {
    "000000": "成功",
    "111106": "时间戳已过期",
    "111109": "请求地址Sig校验失败",
    "111128": "主账户不存在",
    "111171": "应用与主账户不匹配",
    "112300": "接收短信的手机号码为空",
    "112307": "模板短信模板ID为空",
    "112310": "应用ID为空",
    "160000": "系统错误",
    "160031": "参数解析失败",
    "160032": "短信模板无效",
    "160038": "短信验证码发送过频繁",
    "160042": "号码格式有误",
    "160045": "重复的号码",
    "160048": "号码超长,每次最多支持200个号码",
    "160054": "请求重复",
    "160055": "reqId超长或格式有误",
    "160065": "subAppend格式有误",
}


class _Ronglian:
    PATH = re.compile(r"/2013-12-26/Accounts/([^/]+)/SMS/TemplateSMS")
    OPERATION = "ronglian.TemplateSMS"
    MAX_NUMBERS = 200
    WINDOW = timedelta(hours=24)

    def __init__(self, state: _State) -> None:
        self.state = state

    def phones(self, incoming: _Incoming) -> list[str]:
        body = incoming.json_body_or_none()
        to = body.get("to") if isinstance(body, dict) else None
        return to.split(",") if isinstance(to, str) and to else []

    def error(self, code: str, message: str | None = None, http_status: int = 200) -> _Reply:
        payload = {"statusCode": code, "statusMsg": message or RONGLIAN_MESSAGES.get(code, "错误")}
        return _Reply(http_status, payload, "rejected", code)

    def fault_reply(self, fault: Fault) -> _Reply:
        # Sandbox choice: an injected HTTP error carries `160000` (system error) unless told otherwise.
        reply = self.error(str(fault.code) if fault.code is not None else "160000", http_status=fault.status)
        reply.outcome = "fault:http_status"
        return reply

    def handle(self, incoming: _Incoming, phones: list[str]) -> _Reply:
        if incoming.method != "POST":
            return self.error("160031", "only POST is supported", http_status=405)
        match = self.PATH.fullmatch(incoming.path)
        account = self.state.accounts.ronglian_accounts.get(match.group(1) if match else "")
        if account is None:
            # Sandbox choice: docs/providers.md puts 111128-111143 on account problems.
            return self.error("111128")
        refused = self._check_auth(incoming, account.account_sid, account.auth_token)
        if refused is not None:
            return refused
        content_type = incoming.header("Content-Type") or ""
        if "json" not in content_type.lower():
            # Sandbox choice: Ronglian also speaks XML; the sandbox only JSON, and says so.
            return self.error("160031", "the sandbox accepts application/json bodies only")
        try:
            body = incoming.json_body()
        except ValueError:
            return self.error("160031")
        if not isinstance(body, dict):
            return self.error("160031")
        refused = self._check_body(body, account.app_id, phones)
        if refused is not None:
            return refused

        req_id = body.get("reqId") or None
        day = _beijing_day(incoming.at)
        if req_id is not None and (account.account_sid, day, req_id) in self.state.ronglian_req_ids:
            return self.error("160054")
        fault = self.state.faults.take(self.OPERATION, phones, frozenset({"code"}))
        if fault is not None:
            reply = self.error(str(fault.code))
            reply.outcome = "fault:code"
            return reply
        if req_id is not None:
            self.state.ronglian_req_ids.add((account.account_sid, day, req_id))
        payload = {
            "statusCode": "000000",
            "templateSMS": {
                "dateCreated": incoming.at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S"),
                "smsMessageSid": uuid.uuid4().hex,
            },
        }
        return _Reply(200, payload, "accepted", "000000", list(phones))

    def _check_auth(self, incoming: _Incoming, account_sid: str, auth_token: str) -> _Reply | None:
        # Sandbox choice: every malformed or mismatching sig / Authorization is 111109 (bad sig),
        # with a statusMsg that says which part failed.
        sig = incoming.query.get("sig", "")
        if not sig:
            return self.error("111109", "sig is missing")
        authorization = incoming.header("Authorization") or ""
        try:
            decoded = base64.b64decode(authorization, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return self.error("111109", "Authorization is not base64")
        header_sid, _, timestamp = decoded.partition(":")
        if header_sid != account_sid:
            return self.error("111109", "Authorization does not name the account in the URL")
        if not re.fullmatch(r"\d{14}", timestamp):
            return self.error("111109", "Authorization timestamp is not yyyyMMddHHmmss")
        if not hmac.compare_digest(sig, ronglian_sig(account_sid, auth_token, timestamp)):
            # Covers a wrong token and a sig made with another timestamp than the header's.
            return self.error("111109")
        try:
            # Ronglian's docs do not pin a zone; Beijing time is what its servers run on.
            sent_at = datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
        except ValueError:
            return self.error("111109", "Authorization timestamp is not a date")
        if abs(incoming.at - sent_at) > self.WINDOW:
            return self.error("111106")
        return None

    def _check_body(self, body: Mapping[str, Any], app_id: str, phones: list[str]) -> _Reply | None:
        # Sandbox choice: which 1123xx code each missing field gets.
        for name, code in (("to", "112300"), ("appId", "112310"), ("templateId", "112307")):
            if not isinstance(body.get(name), str) or not body[name]:
                return self.error(code)
        if body["appId"] != app_id:
            # Sandbox choice: docs/providers.md puts 111169-111182 on application problems.
            return self.error("111171")
        if len(phones) > self.MAX_NUMBERS:
            return self.error("160048")
        if len(set(phones)) != len(phones):
            return self.error("160045")
        if not all(MAINLAND.fullmatch(p) for p in phones):
            return self.error("160042")
        if not body["templateId"].isdigit():
            return self.error("160032")
        datas = body.get("datas")
        if datas is not None and (not isinstance(datas, list) or not all(isinstance(d, str) for d in datas)):
            return self.error("160031", "datas must be an array of strings")
        sub_append = body.get("subAppend")
        if sub_append not in (None, "") and not (isinstance(sub_append, str) and re.fullmatch(r"\d{1,4}", sub_append)):
            return self.error("160065")
        req_id = body.get("reqId")
        if req_id not in (None, "") and not (isinstance(req_id, str) and re.fullmatch(r"[A-Za-z0-9]{1,32}", req_id)):
            return self.error("160055")
        return None


# --- HTTP ----------------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Joining handler threads on close would make stop() wait out every sleeping `timeout` fault.
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: ProviderSandbox) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the host, which can stall for seconds.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ProviderSandbox/1.0"

    @property
    def owner(self) -> ProviderSandbox:
        return cast(_Server, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip() or b"x", 16)
                except ValueError as exc:
                    raise _BadRequest("bad chunk size") from exc
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise _BadRequest("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError as exc:
            raise _BadRequest("bad Content-Length") from exc
        if not 0 <= length <= MAX_BODY:
            raise _BadRequest("bad Content-Length")
        return self.rfile.read(length)

    def send_json(self, status: int, payload: Any) -> None:
        self.send_bytes(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), JSON_TYPE)

    def send_bytes(self, status: int, body: bytes, content_type: str) -> None:
        # One request per connection, so a listener that goes down refuses the very next call.
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            logger.debug("client went away before the answer")


class _ProviderHandler(_Handler):
    def do_GET(self) -> None:
        self.owner._serve_provider(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def abort(self) -> None:
        """Drop the connection with an RST and no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The socket only really closes (and sends the RST) once the read file lets go of it.
            self.rfile.close()
            self.connection.close()
        except OSError:
            logger.debug("connection already gone")


class _ControlHandler(_Handler):
    def do_GET(self) -> None:
        self.owner._serve_control(self)

    do_POST = do_DELETE = do_PUT = do_GET


# --- The sandbox ---------------------------------------------------------------------------------


class ProviderSandbox:
    """The four provider operations on one loopback port, and a JSON control API on another."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        accounts: SandboxAccounts = DEFAULT_ACCOUNTS,
        clock: Clock | None = None,
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"the sandbox binds a loopback IPv4 address only, not {host!r}") from exc
        if loopback.version != 4 or not loopback.is_loopback:
            raise ValueError(f"the sandbox binds a loopback IPv4 address only, not {host!r}")
        self._host = host
        self._port = port
        self._control_port = control_port
        self._state = _State(accounts, clock or (lambda: datetime.now(UTC)))
        self._polyv = _Polyv(self._state)
        self._aliyun = _Aliyun(self._state)
        self._ronglian = _Ronglian(self._state)
        self._lifecycle = threading.Lock()
        self._provider: _Server | None = None
        self._control: _Server | None = None
        self._started = False

    # Lifecycle

    def start(self) -> Self:
        with self._lifecycle:
            if self._started:
                return self
            self._state.stopping = threading.Event()
            self._control = self._listen(self._control_port, _ControlHandler, "control")
            self._control_port = self._control.server_port
            try:
                self._provider = self._listen(self._port, _ProviderHandler, "provider")
            except OSError:
                self._close(self._control)
                self._control = None
                raise
            self._port = self._provider.server_port
            self._started = True
        return self

    def stop(self) -> None:
        with self._lifecycle:
            self._state.stopping.set()
            for server in (self._provider, self._control):
                if server is not None:
                    self._close(server)
            self._provider = self._control = None
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def go_down(self) -> None:
        """Close the provider listener: connecting is refused until come_up()."""
        with self._lifecycle:
            self._require_started()
            if self._provider is not None:
                self._close(self._provider)
                self._provider = None

    def come_up(self) -> None:
        """Listen again on the same provider port (a no-op when already up)."""
        with self._lifecycle:
            self._require_started()
            if self._provider is None:
                self._provider = self._listen(self._port, _ProviderHandler, "provider")

    @property
    def is_up(self) -> bool:
        return self._provider is not None

    @property
    def port(self) -> int:
        self._require_started()
        return self._port

    @property
    def control_port(self) -> int:
        self._require_started()
        return self._control_port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self._host}:{self.control_port}"

    # Recording and faults

    @property
    def calls(self) -> list[RecordedCall]:
        with self._state.lock:
            return list(self._state.calls)

    def calls_for(self, operation: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.operation == operation]

    def accepted_phones(self) -> list[str]:
        """Every number accepted, once per accepted send, in the order they were accepted."""
        with self._state.lock:
            return list(self._state.accepted)

    @property
    def faults(self) -> list[Fault]:
        return self._state.faults.active()

    def add_fault(self, fault: Fault) -> None:
        self._state.faults.add(fault)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def reset(self) -> None:
        """Forget calls, faults, daily counters, nonces and reqIds."""
        self._state.reset()

    # Internals

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the sandbox is not started")

    def _listen(self, port: int, handler: type[BaseHTTPRequestHandler], name: str) -> _Server:
        server = _Server((self._host, port), handler, self)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{name}", daemon=True
        )
        thread.start()
        return server

    @staticmethod
    def _close(server: _Server) -> None:
        server.shutdown()
        server.server_close()

    def _read(self, handler: _Handler) -> _Incoming:
        at = self._state.now()
        body = handler.read_body()
        parts = urlsplit(handler.path)
        try:
            query = dict(parse_qsl(parts.query, keep_blank_values=True, errors="strict"))
            form: dict[str, str] = {}
            content_type = (handler.headers.get("Content-Type") or "").lower()
            if content_type.startswith("application/x-www-form-urlencoded"):
                form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError as exc:
            raise _BadRequest("parameters are not UTF-8") from exc
        return _Incoming(
            method=handler.command,
            path=parts.path or "/",
            query=query,
            form=form,
            headers=dict(handler.headers.items()),
            raw_body=body,
            at=at,
        )

    def _route(self, incoming: _Incoming) -> tuple[_Polyv | _Aliyun | _Ronglian | None, str, list[str]]:
        if incoming.path == _Polyv.PATH:
            return self._polyv, _Polyv.OPERATION, self._polyv.phones(incoming)
        if incoming.path == "/":
            return self._aliyun, _Aliyun.operation(incoming), self._aliyun.phones(incoming)
        if _Ronglian.PATH.fullmatch(incoming.path):
            return self._ronglian, _Ronglian.OPERATION, self._ronglian.phones(incoming)
        return None, "unknown", []

    def _serve_provider(self, handler: _ProviderHandler) -> None:
        state = self._state
        try:
            incoming = self._read(handler)
        except _BadRequest as exc:
            unreadable = _Incoming(
                method=handler.command,
                path=urlsplit(handler.path).path or "/",
                query={},
                form={},
                headers=dict(handler.headers.items()),
                raw_body=b"",
                at=state.now(),
            )
            state.record(unreadable, "unknown", [], None, outcome="rejected", accepted_phones=[], status=400)
            handler.send_json(400, {"error": str(exc)})
            return
        provider, operation, phones = self._route(incoming)
        body = None if provider is self._aliyun else incoming.json_body_or_none()
        if provider is None:
            state.record(incoming, operation, phones, body, outcome="rejected", accepted_phones=[], status=404)
            handler.send_json(404, {"error": f"no provider operation at {incoming.path}"})
            return

        transport = state.faults.take(operation, phones, TRANSPORT_KINDS)
        slow = state.faults.take(operation, phones, frozenset({"slow"}))
        if transport is not None and transport.kind in ("timeout", "reset"):
            state.record(incoming, operation, phones, body, outcome=f"fault:{transport.kind}", accepted_phones=[])
            if transport.kind == "timeout":
                state.stopping.wait(transport.wait)
                handler.close_connection = True
            else:
                handler.abort()
            return

        reply: _Reply
        if transport is not None and transport.kind == "garbled":
            reply = _Reply(200, None, "fault:garbled")
        elif transport is not None:
            reply = provider.fault_reply(transport)
        else:
            try:
                with state.lock:
                    reply = provider.handle(incoming, phones)
                    state.record(
                        incoming,
                        operation,
                        phones,
                        body,
                        outcome=reply.outcome,
                        accepted_phones=reply.accepted,
                        status=reply.status,
                        code=reply.code,
                    )
            except Exception:
                logger.exception("sandbox failure on %s", operation)
                state.record(incoming, operation, phones, body, outcome="error", accepted_phones=[], status=500)
                handler.send_json(500, {"error": "the sandbox failed; see its log"})
                return
        if transport is not None:
            state.record(
                incoming,
                operation,
                phones,
                body,
                outcome=reply.outcome,
                accepted_phones=[],
                status=reply.status,
                code=reply.code,
            )

        if slow is not None:
            state.stopping.wait(slow.wait)
        if reply.payload is None:
            handler.send_bytes(reply.status, GARBLED_BODY, JSON_TYPE)
        else:
            handler.send_json(reply.status, reply.payload)

    def _serve_control(self, handler: _ControlHandler) -> None:
        try:
            raw = handler.read_body()
        except _BadRequest as exc:
            handler.send_json(400, {"error": str(exc)})
            return
        parts = urlsplit(handler.path)
        route = (handler.command, parts.path.rstrip("/") or "/")
        match route:
            case ("GET", "/"):
                handler.send_json(200, {"url": self.url, "control_url": self.control_url, "up": self.is_up})
            case ("GET", "/calls"):
                operation = dict(parse_qsl(parts.query)).get("operation")
                calls = self.calls_for(operation) if operation else self.calls
                handler.send_json(200, {"calls": [c.to_dict() for c in calls]})
            case ("GET", "/accepted-phones"):
                handler.send_json(200, {"accepted_phones": self.accepted_phones()})
            case ("GET", "/faults"):
                handler.send_json(200, {"faults": [f.to_dict() for f in self.faults]})
            case ("POST", "/faults"):
                try:
                    fault = Fault.from_dict(json.loads(raw.decode("utf-8") or "null"))
                except (ValueError, TypeError) as exc:
                    handler.send_json(400, {"error": str(exc)})
                    return
                self.add_fault(fault)
                handler.send_json(201, {"fault": fault.to_dict()})
            case ("DELETE", "/faults"):
                self.clear_faults()
                handler.send_json(200, {"faults": []})
            case ("POST", "/reset"):
                self.reset()
                handler.send_json(200, {"reset": True})
            case ("POST", "/down"):
                self.go_down()
                handler.send_json(200, {"up": False})
            case ("POST", "/up"):
                try:
                    self.come_up()
                except OSError as exc:
                    handler.send_json(409, {"error": f"cannot listen again: {exc}"})
                    return
                handler.send_json(200, {"up": True})
            case (_, "/" | "/calls" | "/accepted-phones" | "/faults" | "/reset" | "/down" | "/up"):
                handler.send_json(405, {"error": f"{handler.command} is not allowed on {parts.path}"})
            case _:
                handler.send_json(404, {"error": f"no control endpoint at {parts.path}"})
