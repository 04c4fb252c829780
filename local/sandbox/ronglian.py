"""Ronglian's TemplateSMS (docs/providers.md): the URL's `sig` and the `Authorization` header over
account, token and a Beijing-time timestamp good for 24 hours, and reqIds good once a day."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from local.sandbox.inbox import Sent, msisdn, render
from local.sandbox.provider import BEIJING, MAINLAND, Incoming, Provider, Reply, beijing_day

if TYPE_CHECKING:
    from local.sandbox.faults import Fault
    from local.sandbox.state import State


def ronglian_sig(account_sid: str, auth_token: str, timestamp: str) -> str:
    """UPPER(MD5(accountSid + authToken + timestamp)), the URL's `sig`."""
    return hashlib.md5((account_sid + auth_token + timestamp).encode(), usedforsecurity=False).hexdigest().upper()


def ronglian_authorization(account_sid: str, timestamp: str) -> str:
    """base64(accountSid + ":" + timestamp), the `Authorization` header (no `Basic ` prefix)."""
    return base64.b64encode(f"{account_sid}:{timestamp}".encode()).decode()


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


class Ronglian(Provider):
    NAME = "ronglian"
    PATH = re.compile(r"/2013-12-26/Accounts/([^/]+)/SMS/TemplateSMS")
    OPERATION = "ronglian.TemplateSMS"
    OPERATIONS: ClassVar[tuple[str, ...]] = (OPERATION,)
    MAX_NUMBERS = 200
    WINDOW = timedelta(hours=24)

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.req_ids: set[tuple[str, date, str]] = set()

    def forget(self) -> None:
        self.req_ids.clear()

    def operation(self, incoming: Incoming) -> str | None:
        return self.OPERATION if self.PATH.fullmatch(incoming.path) else None

    def phones(self, incoming: Incoming) -> list[str]:
        body = incoming.json_body_or_none()
        to = body.get("to") if isinstance(body, dict) else None
        return to.split(",") if isinstance(to, str) and to else []

    def sent(self, incoming: Incoming, reply: Reply) -> list[Sent]:
        body = incoming.json_body()
        sid = reply.payload["templateSMS"]["smsMessageSid"]
        text = render("ronglian", body["templateId"], body.get("datas") or [], None)
        req_id = body.get("reqId") or None
        return [
            Sent("ronglian", "TemplateSMS", n, msisdn(n), text, body["templateId"], sid, req_id=req_id)
            for n in reply.accepted
        ]

    def error(self, code: str, message: str | None = None, http_status: int = 200) -> Reply:
        payload = {"statusCode": code, "statusMsg": message or RONGLIAN_MESSAGES.get(code, "错误")}
        return Reply(http_status, payload, "rejected", code)

    def fault_reply(self, fault: Fault) -> Reply:
        # Sandbox choice: an injected HTTP error carries `160000` (system error) unless told otherwise.
        reply = self.error(str(fault.code) if fault.code is not None else "160000", http_status=fault.status)
        reply.outcome = "fault:http_status"
        return reply

    def handle(self, incoming: Incoming, phones: list[str]) -> Reply:
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
        day = beijing_day(incoming.at)
        if req_id is not None and (account.account_sid, day, req_id) in self.req_ids:
            return self.error("160054")
        fault = self.state.faults.take(self.OPERATION, phones, frozenset({"code"}))
        if fault is not None:
            reply = self.error(str(fault.code))
            reply.outcome = "fault:code"
            return reply
        if req_id is not None:
            self.req_ids.add((account.account_sid, day, req_id))
        payload = {
            "statusCode": "000000",
            "templateSMS": {
                "dateCreated": incoming.at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S"),
                "smsMessageSid": uuid.uuid4().hex,
            },
        }
        return Reply(200, payload, "accepted", "000000", list(phones))

    def _check_auth(self, incoming: Incoming, account_sid: str, auth_token: str) -> Reply | None:
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

    def _check_body(self, body: Mapping[str, Any], app_id: str, phones: list[str]) -> Reply | None:
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
