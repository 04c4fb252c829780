"""Provider calls built by hand, and the accounts, numbers and clock the sandbox tests share.

The calls are signed with the sandbox's own signing functions (Aliyun's with Aliyun's own signer),
which the known-answer tests prove against the providers' published answers, so a request built
here is one the real provider would take.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
from alibabacloud_tea_openapi.utils import Utils as TeaUtils

from local.sandbox import DEFAULT_ACCOUNTS, polyv_sign, ronglian_authorization, ronglian_sig

POLYV, ALIYUN, RONGLIAN = DEFAULT_ACCOUNTS.polyv, DEFAULT_ACCOUNTS.aliyun, DEFAULT_ACCOUNTS.ronglian
BEIJING = timezone(timedelta(hours=8))
POLYV_PATH = "/live/v4/user/sms/send"
A, B, C = "13800138000", "13900139000", "15000150000"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SERIAL = re.compile(r"\d{18}\^0")
GATEWAY_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def polyv_post(
    url: str,
    phones: Sequence[Any],
    *,
    at: datetime | None = None,
    app_id: str = POLYV.app_id,
    secret: str = POLYV.app_secret,
    signature_method: str | None = None,
    body: Any = None,
    sign: str | None = None,
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    moment = at or datetime.now(UTC)
    params = {"appId": app_id, "timestamp": str(int(moment.timestamp() * 1000))}
    if signature_method:
        params["signatureMethod"] = signature_method
    params["sign"] = sign or polyv_sign(params, secret, signature_method)
    payload = (
        body
        if body is not None
        else {
            "phoneNumbers": list(phones),
            "templateParamNames": ["code"],
            "templateParamValues": ["123456"],
        }
    )
    return requests.post(url + POLYV_PATH, params=params, json=payload, timeout=timeout)


def aliyun_call(
    url: str,
    action: str,
    business: Mapping[str, str],
    *,
    method: str = "POST",
    at: datetime | None = None,
    nonce: str | None = None,
    access_key_id: str = ALIYUN.access_key_id,
    secret: str = ALIYUN.access_key_secret,
    overrides: Mapping[str, str] | None = None,
    in_query: Sequence[str] = (),
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    """Sign with Aliyun's own signer; POST puts every parameter not named in `in_query` in the body."""
    params = {
        "AccessKeyId": access_key_id,
        "Action": action,
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": nonce or str(uuid.uuid4()),
        "SignatureVersion": "1.0",
        "Timestamp": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        **business,
        **(overrides or {}),
    }
    params["Signature"] = TeaUtils.get_rpcsignature(params, method, secret)
    if method == "GET":
        return requests.get(url + "/", params=params, timeout=timeout)
    query = {k: v for k, v in params.items() if k in in_query}
    form = {k: v for k, v in params.items() if k not in in_query}
    return requests.request(method, url + "/", params=query, data=form, timeout=timeout)


def inter(phone: str = "91234567", **extra: str) -> dict[str, str]:
    return {
        "PhoneNumbers": phone,
        "CountryCode": "HK",
        "SignName": "短信 测试*~+/&",
        "TemplateCode": "SMS_0000002",
        "TemplateParam": json.dumps({"code": "1234", "product": "云 通信"}, ensure_ascii=False),
        "OutId": "order-1",
        **extra,
    }


def batch(phones: Sequence[str], params: Sequence[Any] | None = None, **extra: str) -> dict[str, str]:
    return {
        "PhoneNumberJson": json.dumps(list(phones)),
        "SignNameJson": json.dumps(["云通信"] * len(phones), ensure_ascii=False),
        "TemplateCode": "SMS_71175823",
        "TemplateParamJson": json.dumps(
            params if params is not None else [{"code": str(i)} for i in range(len(phones))]
        ),
        **extra,
    }


def ronglian_post(
    url: str,
    body: Mapping[str, Any],
    *,
    at: datetime | None = None,
    account_sid: str = RONGLIAN.account_sid,
    token: str = RONGLIAN.auth_token,
    header_timestamp: str | None = None,
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    timestamp = (at or datetime.now(UTC)).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    return requests.post(
        f"{url}/2013-12-26/Accounts/{account_sid}/SMS/TemplateSMS",
        params={"sig": ronglian_sig(account_sid, token, timestamp)},
        data=json.dumps(body).encode(),
        headers={
            "Accept": "application/json",
            "Content-Type": "application/json;charset=utf-8",
            "Authorization": ronglian_authorization(account_sid, header_timestamp or timestamp),
        },
        timeout=timeout,
    )


def template_sms(to: str = A, **extra: Any) -> dict[str, Any]:
    return {"to": to, "appId": RONGLIAN.app_id, "templateId": "1", "datas": ["123456", "5"], **extra}


def send(kind: str, url: str, timeout: float | tuple[float, float] = 5) -> requests.Response:
    if kind == "polyv":
        return polyv_post(url, [A], timeout=timeout)
    if kind == "aliyun":
        return aliyun_call(url, "SendInterSms", inter(), timeout=timeout)
    return ronglian_post(url, template_sms(), timeout=timeout)


PROVIDERS = ["polyv", "aliyun", "ronglian"]
