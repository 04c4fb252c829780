"""The provider operations the gateway offers, each with the client that speaks it. A provider
module is imported only when its operation is first used."""

from __future__ import annotations

from typing import Any

from smsgw.config import SendSettings
from smsgw.providers.base import HttpSettings, ProviderClient
from smsgw.service import Operation


def _polyv(credentials: Any, settings: SendSettings, http: HttpSettings) -> ProviderClient[Any]:
    from smsgw.providers.polyv import PolyvClient

    return PolyvClient(credentials, settings=http)


def _aliyun_inter(credentials: Any, settings: SendSettings, http: HttpSettings) -> ProviderClient[Any]:
    from smsgw.providers.aliyun import AliyunInterSmsClient

    return AliyunInterSmsClient(credentials, settings=http)


def _aliyun_batch(credentials: Any, settings: SendSettings, http: HttpSettings) -> ProviderClient[Any]:
    from smsgw.providers.aliyun import AliyunBatchSmsClient

    return AliyunBatchSmsClient(credentials, settings=http)


def _ronglian(credentials: Any, settings: SendSettings, http: HttpSettings) -> ProviderClient[Any]:
    from smsgw.providers.ronglian import RonglianClient

    return RonglianClient(credentials, settings=http, chunk_size=settings.ronglian_chunk_size)


POLYV_SEND = Operation("polyv", "sms/send", _polyv)
ALIYUN_SEND_INTER = Operation("aliyun", "SendInterSms", _aliyun_inter)
ALIYUN_SEND_BATCH = Operation("aliyun", "SendBatchSms", _aliyun_batch)
RONGLIAN_SEND = Operation("ronglian", "TemplateSMS", _ronglian)
OPERATIONS = {op.route: op for op in (POLYV_SEND, ALIYUN_SEND_INTER, ALIYUN_SEND_BATCH, RONGLIAN_SEND)}
"""By `provider.name` (`aliyun.SendInterSms`)."""
