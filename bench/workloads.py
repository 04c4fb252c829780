"""The provider operations the gateway offers and how to make a request of N numbers for each."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from smsgw import phones
from smsgw.phones import PhoneError
from tests.support import event

Body = Callable[[list[str]], dict[str, Any]]


def _polyv(phones: list[str]) -> dict[str, Any]:
    return {"phone_numbers": phones, "template_param_names": ["code"], "template_param_values": ["123456"]}


def _aliyun_inter(phones: list[str]) -> dict[str, Any]:
    return {
        "phone_numbers": phones,
        "country_code": "HK",
        "sign_name": "SmsGateway",
        "template_code": "SMS_000001",
        "template_param": {"code": "123456"},
    }


def _aliyun_batch(phones: list[str]) -> dict[str, Any]:
    return {
        "template_code": "SMS_000002",
        "sign_name": "SmsGateway",
        "messages": [{"phone_number": p, "template_param": {"code": "123456"}} for p in phones],
    }


def _ronglian(phones: list[str]) -> dict[str, Any]:
    return {"phone_numbers": phones, "template_id": "1", "datas": ["123456", "5"]}


@dataclass(frozen=True)
class Operation:
    name: str
    """The sandbox's name for it, e.g. `polyv.send`."""
    provider: str
    function: str
    """The module under functions/ (`polyv` → functions/polyv/app.py)."""
    event_file: str
    body: Body
    numbers_per_call: int
    """What the provider's API takes in one call (the floor of the provider calls)."""
    chunk_size: int
    """What the gateway puts in one call as deployed (default settings)."""
    mainland: bool = True

    def minimum_provider_calls(self, count: int) -> int:
        return math.ceil(count / self.numbers_per_call)


OPERATIONS: tuple[Operation, ...] = (
    Operation("polyv.send", "polyv", "polyv", "polyv-send.json", _polyv, 200, 200),
    Operation("aliyun.SendInterSms", "aliyun", "aliyun", "aliyun-send.json", _aliyun_inter, 1, 1, mainland=False),
    Operation("aliyun.SendBatchSms", "aliyun", "aliyun", "aliyun-batch-send.json", _aliyun_batch, 100, 100),
    # The template's RonglianChunkSize defaults to 100; the API takes 200.
    Operation("ronglian.TemplateSMS", "ronglian", "ronglian", "ronglian-send.json", _ronglian, 200, 100),
)
BY_NAME = {op.name: op for op in OPERATIONS}


class Phones:
    """Distinct, valid numbers: no two sends of a run touch the same quota counters, and consecutive
    numbers fall in different number blocks (the first seven national digits), as a send's numbers
    usually do: a send of n numbers takes n guard counters, the figure docs/quotas.md states."""

    def __init__(self, start: int = 0) -> None:
        self._counter = itertools.count(start)

    def take(self, count: int, *, mainland: bool = True) -> list[str]:
        if mainland:
            numbers = [next(self._counter) for _ in range(count)]
            return [f"13{n % 10**5:05d}{n // 10**5 % 10**4:04d}" for n in numbers]
        found: list[str] = []
        while len(found) < count:  # Hong Kong mobile numbers; a few ranges are not allocated
            n = next(self._counter)
            candidate = f"9{n % 10**3:03d}{n // 10**3 % 10**4:04d}"
            with suppress(PhoneError):
                phones.national(candidate, "HK")
                found.append(candidate)
        return found


def send_event(op: Operation, phones: list[str], *, key: str | None = None) -> dict[str, Any]:
    """The operation's events/ file with these numbers and a fresh request id."""
    evt = event(op.event_file, body=op.body(phones))
    if key is not None:
        evt["headers"]["Idempotency-Key"] = key
        evt.setdefault("multiValueHeaders", {})["Idempotency-Key"] = [key]
    return evt
