"""Configuration is validated once, and a bad one says which variables are wrong."""

from __future__ import annotations

import pytest

from smsgw.config import ProviderSettings, parse_limits
from smsgw.errors import ConfigurationError
from smsgw.quotas import Limits

BASE = {
    "PROVIDER": "ronglian",
    "PROVIDER_SECRET_ID": "arn:x",
    "QUOTA_TABLE_NAME": "quota",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "MESSAGE_LOG_TABLE_NAME": "messages",
}


def test_reads_typed_values() -> None:
    settings = ProviderSettings.from_env(
        {
            **BASE,
            "RONGLIAN_CHUNK_SIZE": "200",
            "PROVIDER_READ_TIMEOUT": "2.5",
            "QUOTA_LIMITS": "phone_per_day=20,ip_per_day=0",
            "QUOTA_TIMEZONE": "UTC",
        }
    )
    assert (settings.provider, settings.ronglian_chunk_size, settings.provider_read_timeout) == ("ronglian", 200, 2.5)
    assert settings.secret_max_age_seconds == 300
    assert settings.limits == Limits(phone_per_day=20, ip_per_day=0, timezone="UTC")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PROVIDER_SECRET_ID": None}, "PROVIDER_SECRET_ID"),
        ({"PROVIDER": "twilio"}, "PROVIDER"),
        ({"RONGLIAN_CHUNK_SIZE": "201"}, "RONGLIAN_CHUNK_SIZE"),
        ({"QUOTA_TABLE_NAME": None}, "QUOTA_TABLE_NAME"),
        ({"QUOTA_LIMITS": "phone_per_week=3"}, "QUOTA_LIMITS"),
        ({"QUOTA_LIMITS": "phone_per_day=-1"}, "QUOTA_LIMITS"),
        ({"QUOTA_TIMEZONE": "Mars/Olympus"}, "QUOTA_TIMEZONE"),
    ],
)
def test_names_what_is_wrong(change: dict[str, str | None], named: str) -> None:
    environ = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ConfigurationError, match=named):
        ProviderSettings.from_env(environ)


def test_limits_not_named_keep_their_defaults() -> None:
    assert parse_limits("", "Asia/Shanghai") == Limits()
    assert parse_limits("account_per_day=5, phone_per_minute=0", "UTC") == Limits(
        account_per_day=5, phone_per_minute=0, timezone="UTC"
    )
