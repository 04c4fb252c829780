"""Receipts from the sandbox: pushed in each provider's format (read back by the gateway's own
parsers), late, duplicated, reordered or lost as told, by themselves or from the inbox's buttons;
and Aliyun's QuerySendDetails answering what the sandbox decided, signed like the sends and read
by the gateway's own client."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import pytest
import requests

from local.sandbox import ProviderSandbox
from local.sandbox.inbox import TEMPLATES
from local.sandbox.provider import BEIJING
from smsgw.providers.aliyun import AliyunCredentials, AliyunDeliveryQuery
from smsgw.receipts import parse_aliyun, parse_ronglian
from tests.sandbox.provider_calls import (
    ALIYUN,
    POLYV,
    A,
    B,
    C,
    aliyun_call,
    batch,
    inter,
    polyv_post,
    ronglian_post,
    template_sms,
)
from tests.support import LoopbackEndpoint


class Receiver:
    """A receipt URL on loopback: records each push, answers `status`."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str, str]] = []
        self.status = 200
        self.endpoint = LoopbackEndpoint(self.take)
        self.url = self.endpoint.url

    def take(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        content_type = next(v for k, v in headers.items() if k.lower() == "content-type")
        self.pushes.append((path, content_type, body.decode()))
        return self.status

    def of(self, path: str) -> list[tuple[str, str]]:
        return [(kind, body) for where, kind, body in self.pushes if where == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.endpoint.close()


@pytest.fixture
def pushing(box: ProviderSandbox, receiver: Receiver) -> ProviderSandbox:
    """The sandbox pushing receipts to the receiver at once."""
    receiver.pushes.clear()
    receiver.status = 200
    box.configure_receipts(urls={"aliyun": f"{receiver.url}/aliyun", "ronglian": f"{receiver.url}/ronglian"}, delay=0)
    return box


def today() -> str:
    return datetime.now(BEIJING).strftime("%Y%m%d")


def query(box: ProviderSandbox, phone: str, biz_id: str, **extra: str) -> requests.Response:
    params = {"PhoneNumber": phone, "BizId": biz_id, "SendDate": today(), "PageSize": "10", "CurrentPage": "1"}
    return aliyun_call(box.url, "QuerySendDetails", {**params, **extra})


def test_an_aliyun_batch_is_reported_in_one_push_of_smsreports(pushing: ProviderSandbox, receiver: Receiver) -> None:
    biz_id = aliyun_call(pushing.url, "SendBatchSms", batch([A, B])).json()["BizId"]
    pushing.wait_for_receipts(5)

    [(kind, body)] = receiver.of("/aliyun")
    receipts = parse_aliyun(body)
    assert kind == "application/json"
    assert [(r.phone, r.message_id, r.delivered, r.reason) for r in receipts] == [
        ("+8613800138000", biz_id, True, "DELIVERED"),
        ("+8613900139000", biz_id, True, "DELIVERED"),
    ]
    assert set(json.loads(body)[0]) == {
        "phone_number",
        "send_time",
        "report_time",
        "success",
        "err_code",
        "err_msg",
        "sms_size",
        "biz_id",
        "out_id",
    }


def test_an_international_number_is_reported_with_its_country_code(
    pushing: ProviderSandbox, receiver: Receiver
) -> None:
    aliyun_call(pushing.url, "SendInterSms", inter("91234567"))
    pushing.wait_for_receipts(5)

    [(_, body)] = receiver.of("/aliyun")
    [receipt] = parse_aliyun(body)
    assert receipt.phone == "+85291234567"
    assert json.loads(body)[0]["out_id"] == "order-1"


@pytest.mark.parametrize(("fmt", "kind"), [("json", "application/json"), ("xml", "application/xml")])
def test_ronglian_reports_each_number_as_a_request_in_json_or_xml(
    pushing: ProviderSandbox, receiver: Receiver, fmt: str, kind: str
) -> None:
    pushing.configure_receipts(format=fmt)
    sid = ronglian_post(pushing.url, template_sms(to=f"{A},{B}", reqId="order1")).json()["templateSMS"]["smsMessageSid"]
    pushing.wait_for_receipts(5)

    pushes = receiver.of("/ronglian")
    receipts = [r for content_type, body in pushes for r in parse_ronglian(body, content_type)]
    assert {content_type for content_type, _ in pushes} == {kind}
    assert sorted((r.phone, r.message_id, r.delivered, r.reason) for r in receipts) == [
        ("+8613800138000", sid, True, "DELIVRD"),
        ("+8613900139000", sid, True, "DELIVRD"),
    ]


def test_polyv_reports_nothing(pushing: ProviderSandbox, receiver: Receiver) -> None:
    polyv_post(pushing.url, [A])
    pushing.wait_for_receipts(5)

    assert receiver.pushes == []
    [sms] = pushing.messages()
    assert sms.receipt == "unavailable"
    # Polyv's template is the application's, filled in with the named parameters
    assert sms.sent.text == TEMPLATES[("polyv", POLYV.app_id)].replace("${code}", "123456")


def test_failed_numbers_are_reported_undelivered_and_queried_as_failed(
    pushing: ProviderSandbox, receiver: Receiver
) -> None:
    pushing.configure_receipts(fail=1)
    biz_id = aliyun_call(pushing.url, "SendBatchSms", batch([A])).json()["BizId"]
    pushing.wait_for_receipts(5)

    [receipt] = parse_aliyun(receiver.of("/aliyun")[0][1])
    [detail] = query(pushing, A, biz_id).json()["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert (receipt.delivered, receipt.reason) == (False, "MOBILE_NOT_ON_SERVICE")
    assert (detail["SendStatus"], detail["ErrCode"]) == (2, "MOBILE_NOT_ON_SERVICE")


def test_a_lost_receipt_is_never_pushed_but_querysenddetails_knows_its_number(
    pushing: ProviderSandbox, receiver: Receiver
) -> None:
    pushing.configure_receipts(lose=1)
    biz_id = aliyun_call(pushing.url, "SendBatchSms", batch([A, B])).json()["BizId"]
    pushing.wait_for_receipts(5)

    answer = query(pushing, "+86" + A, biz_id).json()
    assert receiver.pushes == []
    assert [m.receipt for m in pushing.messages()] == ["lost", "lost"]
    assert answer["Code"] == "OK"
    assert answer["TotalCount"] == 1
    [detail] = answer["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert (detail["PhoneNum"], detail["SendStatus"], detail["ErrCode"]) == (A, 3, "DELIVERED")


def test_a_number_whose_receipt_is_not_due_yet_is_waiting(pushing: ProviderSandbox) -> None:
    pushing.configure_receipts(delay=60)
    biz_id = aliyun_call(pushing.url, "SendBatchSms", batch([A])).json()["BizId"]

    [detail] = query(pushing, A, biz_id).json()["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert (detail["SendStatus"], detail["ErrCode"], detail["ReceiveDate"]) == (1, "", "")


def test_duplicates_push_the_same_receipt_twice(pushing: ProviderSandbox, receiver: Receiver) -> None:
    pushing.configure_receipts(duplicate=1)
    ronglian_post(pushing.url, template_sms(to=A))
    pushing.wait_for_receipts(10)

    bodies = [body for _, body in receiver.of("/ronglian")]
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]


def test_the_same_seed_takes_the_same_decisions(pushing: ProviderSandbox) -> None:
    def fates() -> list[tuple[str | None, str]]:
        pushing.reset()
        pushing.configure_receipts(seed=7, fail=0.5, lose=0.5, delay=0)
        ronglian_post(pushing.url, template_sms(to=f"{A},{B},{C}"))
        pushing.wait_for_receipts(5)
        return [(m.outcome, m.receipt) for m in pushing.messages()]

    assert fates() == fates()


def test_a_refused_push_is_tried_again_then_counted_failed(pushing: ProviderSandbox, receiver: Receiver) -> None:
    receiver.status = 503
    ronglian_post(pushing.url, template_sms(to=A))
    pushing.wait_for_receipts(10)

    [sms] = pushing.messages()
    assert len(receiver.of("/ronglian")) == 3
    assert sms.receipt == "failed"
    assert [p["status"] for p in sms.pushes] == [503, 503, 503]


def test_by_hand_a_receipt_waits_until_a_button_delivers_fails_or_loses_it(
    pushing: ProviderSandbox, receiver: Receiver
) -> None:
    pushing.configure_receipts(auto=False)
    biz_id = aliyun_call(pushing.url, "SendBatchSms", batch([A, B, C])).json()["BizId"]
    pushing.wait_for_receipts(5)
    first, second, third = pushing.messages()
    assert receiver.pushes == []
    assert [m.receipt for m in (first, second, third)] == ["waiting"] * 3

    control = pushing.control_url
    delivered = requests.post(f"{control}/messages/{first.id}/deliver", timeout=5)
    assert delivered.json()["message"]["outcome"] == "delivered"
    failed = requests.post(f"{control}/messages/{second.id}/fail", json={"code": "USER_REJECT"}, timeout=5)
    assert requests.post(f"{control}/messages/{third.id}/lose", timeout=5).status_code == 200
    pushing.wait_for_receipts(5)

    assert failed.json()["message"]["code"] == "USER_REJECT"
    pushed = sorted((r.phone, r.delivered, r.reason) for _, body in receiver.of("/aliyun") for r in parse_aliyun(body))
    assert pushed == [("+8613800138000", True, "DELIVERED"), ("+8613900139000", False, "USER_REJECT")]
    assert query(pushing, C, biz_id).json()["SmsSendDetailDTOs"]["SmsSendDetailDTO"][0]["SendStatus"] == 3


def test_the_control_api_shows_the_inbox_and_refuses_wrong_settings_and_actions(pushing: ProviderSandbox) -> None:
    control = pushing.control_url
    polyv_post(pushing.url, [A])
    ronglian_post(pushing.url, template_sms(to=A))
    polyv_id = pushing.messages()[0].id

    page = requests.get(f"{control}/inbox", timeout=5)
    inbox = requests.get(f"{control}/messages", timeout=5).json()
    assert page.headers["content-type"].startswith("text/html")
    assert "Sandbox inbox" in page.text
    [phone] = inbox["phones"]
    assert phone["phone"] == "+8613800138000"
    assert [m["provider"] for m in phone["messages"]] == ["ronglian", "polyv"]
    # Ronglian's template carries its sign name; its positional data filled in
    assert phone["messages"][0]["text"] == TEMPLATES[("ronglian", "1")].replace("{1}", "123456").replace("{2}", "5")
    assert phone["messages"][0]["text"].startswith("【云通讯】")

    assert requests.post(f"{control}/receipts", json={"lose": 2}, timeout=5).status_code == 400
    assert requests.post(f"{control}/receipts", json={"format": "csv"}, timeout=5).status_code == 400
    assert requests.post(f"{control}/receipts", json={"urls": {"polyv": "http://x"}}, timeout=5).status_code == 400
    assert requests.post(f"{control}/messages/{polyv_id}/deliver", timeout=5).status_code == 400
    assert requests.post(f"{control}/messages/999/deliver", timeout=5).status_code == 404
    changed = requests.post(f"{control}/receipts", json={"delay": 0.5, "duplicate": 0.1}, timeout=5).json()
    assert (changed["settings"]["delay"], changed["settings"]["duplicate"]) == (0.5, 0.1)


def test_a_reset_forgets_the_inbox_and_the_settings_but_where_receipts_go(pushing: ProviderSandbox) -> None:
    urls = dict(pushing.receipt_settings.urls)
    pushing.configure_receipts(lose=0.5, auto=False)
    polyv_post(pushing.url, [A])

    pushing.reset()

    assert pushing.messages() == []
    assert (pushing.receipt_settings.lose, pushing.receipt_settings.auto) == (0.0, True)
    assert pushing.receipt_settings.urls == urls


@pytest.mark.parametrize(
    ("change", "code"),
    [({"SendDate": "2026-1-1"}, "isv.INVALID_PARAMETERS"), ({"PageSize": "51"}, "isv.INVALID_PARAMETERS")],
)
def test_querysenddetails_checks_its_parameters(pushing: ProviderSandbox, change: dict[str, str], code: str) -> None:
    assert query(pushing, A, "1^0", **change).json()["Code"] == code
    missing = aliyun_call(pushing.url, "QuerySendDetails", {"PhoneNumber": A, "PageSize": "10", "CurrentPage": "1"})
    assert (missing.status_code, missing.json()["Code"]) == (400, "MissingSendDate")


def test_the_gateways_own_client_reads_querysenddetails(pushing: ProviderSandbox) -> None:
    pushing.configure_receipts(lose=1)
    biz_id = aliyun_call(pushing.url, "SendBatchSms", batch([A])).json()["BizId"]
    pushing.wait_for_receipts(5)
    credentials = AliyunCredentials.model_validate(
        {"access_key_id": ALIYUN.access_key_id, "access_key_secret": ALIYUN.access_key_secret, "endpoint": pushing.url}
    )

    details = AliyunDeliveryQuery(credentials, session=requests.Session()).details("+8613800138000", biz_id, today())

    assert [(d["SendStatus"], d["ErrCode"]) for d in details] == [(3, "DELIVERED")]
    assert datetime.strptime(details[0]["ReceiveDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING) <= datetime.now(
        UTC
    )
