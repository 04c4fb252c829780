"""Aliyun's SendInterSms and SendBatchSms (docs/providers.md): RPC signature v1 over every
parameter, a 15-minute clock window, nonces good once, and the gateway and business errors of
Dysmsapi 2017-05-25. QuerySendDetails answers what the sandbox decided for a number once its
receipt is due (local.sandbox.receipts), pushed or lost."""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from alibabacloud_tea_openapi.utils import Utils as TeaUtils

from local.sandbox.inbox import Sent, msisdn, render
from local.sandbox.provider import NOT_MAINLAND, Incoming, Provider, Reply, digits_id
from local.sandbox.receipts import query_send_details

if TYPE_CHECKING:
    from local.sandbox.faults import Fault
    from local.sandbox.state import State


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


class Aliyun(Provider):
    NAME = "aliyun"
    ACTIONS = ("SendInterSms", "SendBatchSms", "QuerySendDetails")
    SENDS = ("SendInterSms", "SendBatchSms")
    OPERATIONS: ClassVar[tuple[str, ...]] = tuple(f"aliyun.{action}" for action in ACTIONS)
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

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.nonces: dict[tuple[str, str], datetime] = {}

    def forget(self) -> None:
        self.nonces.clear()

    def operation(self, incoming: Incoming) -> str | None:
        if incoming.path != "/":
            return None
        return f"aliyun.{incoming.params.get('Action') or 'unknown'}"

    def phones(self, incoming: Incoming) -> list[str]:
        params = incoming.params
        if params.get("Action") == "QuerySendDetails":
            return [params["PhoneNumber"]] if params.get("PhoneNumber") else []
        if params.get("Action") == "SendBatchSms":
            try:
                numbers = json.loads(params.get("PhoneNumberJson", ""))
            except ValueError:
                return []
            return [str(n) for n in numbers] if isinstance(numbers, list) else []
        raw = params.get("PhoneNumbers", "")
        return raw.split(",") if raw else []

    def recorded_body(self, incoming: Incoming) -> Any:
        # Aliyun's parameters come in the query or a form body; the recorded call holds them in `params`.
        return None

    def gateway_error(self, http_status: int, code: str, message: str) -> Reply:
        request_id = str(uuid.uuid4()).upper()
        payload = {
            "RequestId": request_id,
            "HostId": self.HOST_ID,
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi&requestId={request_id}",
        }
        return Reply(http_status, payload, "rejected", code)

    def business(self, code: str, message: str | None = None) -> Reply:
        text = message or ALIYUN_MESSAGES.get(code, code)
        payload = {"RequestId": str(uuid.uuid4()).upper(), "Code": code, "Message": text}
        return Reply(200, payload, "rejected", code)

    def fault_reply(self, fault: Fault) -> Reply:
        default = ALIYUN_STATUS_CODES.get(fault.status)
        if default is None:
            default = ALIYUN_STATUS_CODES[500 if fault.status >= 500 else 400]
        code = str(fault.code) if fault.code is not None else default[0]
        reply = self.gateway_error(fault.status, code, default[1])
        reply.outcome = "fault:http_status"
        return reply

    def handle(self, incoming: Incoming, phones: list[str]) -> Reply:
        querying = incoming.params.get("Action") == "QuerySendDetails"
        for check in (self._check_request, self._authenticate, self._check_query if querying else self._check_business):
            refused = check(incoming)
            if refused is not None:
                return refused
        fault = self.state.faults.take(f"aliyun.{incoming.params['Action']}", phones, frozenset({"code"}))
        if fault is not None:
            reply = self.business(str(fault.code))
            reply.outcome = "fault:code"
            return reply
        if querying:
            return self._query(incoming.params)
        payload = {
            "RequestId": str(uuid.uuid4()).upper(),
            "Code": "OK",
            "Message": "OK",
            "BizId": digits_id(18) + "^0",
        }
        return Reply(200, payload, "accepted", "OK", list(phones))

    def _check_request(self, incoming: Incoming) -> Reply | None:
        """The HTTP method and the common parameters, before the key is looked at."""
        if incoming.method not in ("GET", "POST"):
            # Sandbox choice: Aliyun RPC takes GET and POST only; the code is not documented.
            return self.gateway_error(
                405, "UnsupportedHTTPMethod", f"Specified http method {incoming.method} is not supported."
            )
        params = incoming.params
        missing = self._missing(params, (*self.COMMON, "Version"))
        if missing:
            return missing
        if params["Version"] != self.VERSION:
            return self.gateway_error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params["Action"] not in self.ACTIONS:
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
        return None

    def _authenticate(self, incoming: Incoming) -> Reply | None:
        """The key, the clock and the signature; an authentic request then spends its nonce."""
        params = incoming.params
        secret = self.state.accounts.aliyun_secrets.get(params["AccessKeyId"])
        if secret is None:
            return self.gateway_error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        missing = self._missing(params, ("Timestamp",))
        if missing:
            return missing
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
        if nonce_key in self.nonces:
            return self.gateway_error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces[nonce_key] = now
        return None

    def sent(self, incoming: Incoming, reply: Reply) -> list[Sent]:
        params = incoming.params
        biz_id, code, out_id = reply.payload["BizId"], params["TemplateCode"], params.get("OutId")
        if params["Action"] == "SendInterSms":
            number = params["PhoneNumbers"]
            country = params.get("CountryCode") or params.get("countryCode")
            text = render("aliyun", code, _loads(params.get("TemplateParam") or "{}") or {}, params["SignName"])
            return [Sent("aliyun", "SendInterSms", number, msisdn(number, country), text, code, biz_id, out_id)]
        numbers = _loads(params["PhoneNumberJson"])
        signs = _loads(params["SignNameJson"])
        values = _loads(params["TemplateParamJson"])
        return [
            Sent("aliyun", "SendBatchSms", n, msisdn(n), render("aliyun", code, v, s), code, biz_id, out_id)
            for n, s, v in zip(numbers, signs, values, strict=True)
        ]

    def _check_query(self, incoming: Incoming) -> Reply | None:
        """QuerySendDetails' parameters: one number, a day (yyyyMMdd), a page of 1 to 50."""
        params = incoming.params
        missing = self._missing(params, ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"))
        if missing:
            return missing
        if not re.fullmatch(r"\d{8}", params["SendDate"]):
            return self.business("isv.INVALID_PARAMETERS", "SendDate must be yyyyMMdd")
        size, page = params["PageSize"], params["CurrentPage"]
        if not (size.isdigit() and 1 <= int(size) <= 50 and page.isdigit() and int(page) >= 1):
            return self.business("isv.INVALID_PARAMETERS", "PageSize must be 1 to 50 and CurrentPage at least 1")
        return None

    def _query(self, params: Mapping[str, str]) -> Reply:
        found = query_send_details(self.state.inbox, params["PhoneNumber"], params.get("BizId"), params["SendDate"])
        size, page = int(params["PageSize"]), int(params["CurrentPage"])
        payload = {
            "RequestId": str(uuid.uuid4()).upper(),
            "Code": "OK",
            "Message": "OK",
            "TotalCount": len(found),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": found[(page - 1) * size : page * size]},
        }
        return Reply(200, payload, "queried", "OK")

    def _check_business(self, incoming: Incoming) -> Reply | None:
        params = incoming.params
        return self._check_inter(params) if params["Action"] == "SendInterSms" else self._check_batch(params)

    def _forget_nonces(self, now: datetime) -> None:
        stale = [k for k, seen in self.nonces.items() if now - seen > self.NONCE_MEMORY]
        for key in stale:
            del self.nonces[key]

    def _missing(self, params: Mapping[str, str], names: Sequence[str]) -> Reply | None:
        for name in names:
            if not params.get(name):
                return self.gateway_error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        return None

    def _check_inter(self, params: Mapping[str, str]) -> Reply | None:
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

    def _check_batch(self, params: Mapping[str, str]) -> Reply | None:
        missing = self._missing(params, ("PhoneNumberJson", "SignNameJson", "TemplateCode", "TemplateParamJson"))
        if missing:
            return missing
        numbers = _loads(params["PhoneNumberJson"])
        sign_names = _loads(params["SignNameJson"])
        template_params = _loads(params["TemplateParamJson"])
        refused = self._check_batch_lists(numbers, sign_names, template_params, params.get("SmsUpExtendCodeJson"))
        if refused is not None:
            return refused
        if not all(_string_object(p) for p in template_params):
            return self.business("isv.INVALID_JSON_PARAM")
        if not all(self._batch_number_ok(n) for n in numbers):
            return self.business("isv.MOBILE_NUMBER_ILLEGAL")
        if not all(s.strip() for s in sign_names):
            return self.business("isv.SMS_SIGNATURE_ILLEGAL")
        if not self.TEMPLATE_CODE.fullmatch(params["TemplateCode"]):
            return self.business("isv.SMS_TEMPLATE_ILLEGAL")
        return None

    def _check_batch_lists(
        self, numbers: Any, sign_names: Any, template_params: Any, extend_codes: str | None
    ) -> Reply | None:
        """The batch's JSON arrays: of the right types, one entry per number, at most MAX_BATCH numbers."""
        if not _string_list(numbers):
            return self.business("isv.INVALID_JSON_PARAM", "PhoneNumberJson must be a JSON array of strings")
        if not _string_list(sign_names):
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
        if extend_codes:
            codes = _loads(extend_codes)
            if not isinstance(codes, list) or len(codes) != len(numbers):
                return self.business("isv.INVALID_PARAMETERS", "SmsUpExtendCodeJson must match PhoneNumberJson")
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


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string_object(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
