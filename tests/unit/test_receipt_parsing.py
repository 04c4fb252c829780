"""Receipts as Aliyun and Ronglian push them, read into one shape; anything else refused."""

from __future__ import annotations

import json

import pytest

from smsgw.errors import InvalidRequest
from smsgw.receipts import parse_aliyun, parse_ronglian

ALIYUN = {
    "phone_number": "13800138000",
    "send_time": "2026-11-30 10:00:00",
    "report_time": "2026-11-30 10:00:05",
    "success": True,
    "err_code": "DELIVERED",
    "err_msg": "用户接收成功",
    "sms_size": "1",
    "biz_id": "123456789^0",
    "out_id": "abc",
}
RONGLIAN = {
    "action": "SMSArrived",
    "smsType": "1",
    "apiVersion": "2013-12-26",
    "content": "ff8080813c373cab013c94a7c4a10f6b",
    "fromNum": "13800138000",
    "dateSent": "20261130100000",
    "deliverCode": "DELIVRD",
    "recvTime": "20261130100005",
    "status": "0",
    "reqId": "abc",
    "smsCount": "1",
}


def test_aliyun_reports() -> None:
    failed = {**ALIYUN, "phone_number": "8613900139000", "success": False, "err_code": "USER_REJECT"}
    [ok, no] = parse_aliyun(json.dumps([ALIYUN, failed]))
    assert (ok.provider, ok.message_id, ok.phone, ok.delivered, ok.reason) == (
        "aliyun",
        "123456789^0",
        "+8613800138000",
        True,
        "DELIVERED",
    )
    assert ok.reported_at == "2026-11-30T10:00:05+08:00"
    assert (no.phone, no.delivered, no.reason) == ("+8613900139000", False, "USER_REJECT")


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "[]",
        json.dumps([{**ALIYUN, "success": "true"}]),
        json.dumps([{**ALIYUN, "phone_number": "123"}]),
        json.dumps([{**ALIYUN, "biz_id": "a b\\u0000"}]),
        json.dumps([{**ALIYUN, "report_time": "yesterday"}]),
        json.dumps([{**ALIYUN, "err_code": "A\\u001bB"}]).replace("\\\\", "\\"),
        '[{"biz_id": "1", "biz_id": "2"}]',
        "not json",
    ],
)
def test_aliyun_refuses_what_is_not_a_report(body: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_aliyun(body)


def test_ronglian_json_and_xml_read_the_same() -> None:
    xml = "<Request>" + "".join(f"<{k}>{v}</{k}>" for k, v in RONGLIAN.items()) + "</Request>"
    from_json = parse_ronglian(json.dumps({"Request": RONGLIAN}), "application/json")
    from_xml = parse_ronglian(xml, "application/xml")
    assert from_json == from_xml
    [receipt] = from_json
    assert (receipt.message_id, receipt.phone, receipt.delivered) == (RONGLIAN["content"], "+8613800138000", True)


def test_ronglian_failed_and_inbound() -> None:
    [failed] = parse_ronglian(json.dumps({"Request": {**RONGLIAN, "status": "1", "deliverCode": "MK:0001"}}), "")
    assert (failed.delivered, failed.reason) == (False, "MK:0001")
    assert parse_ronglian(json.dumps({"Request": {**RONGLIAN, "smsType": "0"}}), "application/json") == []


@pytest.mark.parametrize(
    "body",
    [
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Request><content>&x;</content></Request>',
        "<Request><content>",
        "<Other/>",
        '{"Request": "x"}',
    ],
)
def test_ronglian_refuses_what_is_not_a_report(body: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_ronglian(body, "application/xml" if body.startswith("<") else "application/json")
