"""The function's configuration: environment variables, validated once on first use."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from smsgw.errors import ConfigurationError
from smsgw.quota_windows import Limits

ProviderName = Literal["polyv", "aliyun", "ronglian"]


def parse_limits(text: str, timezone: str) -> Limits:
    """`phone_per_minute=1,phone_per_hour=5,…` (a template parameter) into Limits; 0 switches one off."""
    values: dict[str, Any] = {"timezone": timezone}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if name.strip() not in Limits.__dataclass_fields__ or name.strip() == "timezone":
            raise ValueError(f"unknown quota limit {name.strip()!r}")
        if not number.strip().isdigit():
            raise ValueError(f"quota limit {name.strip()!r} must be a whole number >= 0")
        values[name.strip()] = int(number)
    return Limits(**values)


class _FromEnv(BaseModel):
    # A function reads one of these: each builds its validator when it is first read.
    model_config = ConfigDict(frozen=True, defer_build=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        values = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = sorted({str(e["loc"][0]).upper() for e in exc.errors()})
            raise ConfigurationError(f"invalid or missing environment variables: {', '.join(names)}") from None


class Settings(_FromEnv):
    """What every function of the gateway needs: the tables."""

    message_log_table_name: str = Field(min_length=1)
    message_retention_days: int = Field(default=30, ge=1)


class SendSettings(Settings):
    """What every function that sends needs: quotas, idempotency, provider calls, time."""

    quota_table_name: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=1)
    quota_limits: str = ""
    quota_timezone: str = "Asia/Shanghai"
    idempotency_expiry_seconds: int = Field(default=86_400, ge=60)
    secret_max_age_seconds: int = Field(default=300, ge=0)
    provider_connect_timeout: float = Field(default=3.0, gt=0)
    provider_read_timeout: float = Field(default=10.0, gt=0)
    provider_max_concurrency: int = Field(default=32, ge=1, le=128)
    ronglian_chunk_size: int = Field(default=100, ge=1, le=200)
    # A request's time (see smsgw.clock.Budget): what comes before the provider call must be done
    # within the first, the answer within the second, well before API Gateway's 29 s.
    send_budget_seconds: float = Field(default=8.0, gt=0)
    request_budget_seconds: float = Field(default=25.0, gt=0)
    dead_letter_queue_url: str | None = None
    # Webhooks: the queue their events go to (none: no webhooks), and whether loopback http
    # destinations are allowed (the local stack only).
    webhook_queue_url: str | None = None
    webhook_allow_loopback: bool = False
    # Tenant rules (countries, guard, budget, opt-outs) live in the configuration table; without
    # one, every tenant has the deployment's defaults and no opt-out list.
    config_table_name: str | None = None
    default_allowed_countries: str = Field(default="CN", pattern=r"^[A-Z]{2}(,[A-Z]{2})*$")

    @property
    def allowed_countries(self) -> frozenset[str]:
        return frozenset(self.default_allowed_countries.split(","))

    @field_validator("quota_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return value

    @field_validator("quota_limits")
    @classmethod
    def _valid_limits(cls, value: str) -> str:
        parse_limits(value, "UTC")
        return value

    @property
    def limits(self) -> Limits:
        return parse_limits(self.quota_limits, self.quota_timezone)


class ProviderSettings(SendSettings):
    """A provider function's configuration."""

    provider: ProviderName
    provider_secret_id: str = Field(min_length=1)


class RouterSettings(SendSettings):
    """The unified route's function: every provider's secret it may use, and its configuration table."""

    config_table_name: str = Field(min_length=1)
    polyv_secret_id: str | None = None
    aliyun_secret_id: str | None = None
    ronglian_secret_id: str | None = None
    template_cache_seconds: int = Field(default=60, ge=0)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_seconds: int = Field(default=30, ge=1)

    def secret_ids(self) -> dict[ProviderName, str]:
        """The providers this function can send through, and their secrets."""
        found: dict[ProviderName, str | None] = {
            "polyv": self.polyv_secret_id,
            "aliyun": self.aliyun_secret_id,
            "ronglian": self.ronglian_secret_id,
        }
        return {name: secret for name, secret in found.items() if secret}


def credentials_model(provider: ProviderName) -> type[BaseModel]:
    """The provider's credentials model, imported only for the provider a function serves."""
    if provider == "polyv":
        from smsgw.providers.polyv import PolyvCredentials

        return PolyvCredentials
    if provider == "aliyun":
        from smsgw.providers.aliyun import AliyunCredentials

        return AliyunCredentials
    from smsgw.providers.ronglian import RonglianCredentials

    return RonglianCredentials


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=1)
def get_provider_settings() -> ProviderSettings:
    return ProviderSettings.from_env()


class ReceiptSettings(Settings):
    """The receipts function: the routes' token secret, its queue, and where webhooks go."""

    receipt_token_secret_id: str = Field(min_length=1)
    receipts_queue_url: str = Field(min_length=1)
    secret_max_age_seconds: int = Field(default=300, ge=0)
    webhook_queue_url: str | None = None
    config_table_name: str | None = None
    default_allowed_countries: str = Field(default="CN", pattern=r"^[A-Z]{2}(,[A-Z]{2})*$")


class ReceiptTokenSecret(BaseModel):
    """The receipt routes' path tokens, one per provider that pushes receipts."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    aliyun: str | None = Field(default=None, min_length=16)
    ronglian: str | None = Field(default=None, min_length=16)


class WebhookSettings(_FromEnv):
    """The webhook function: the tenants' signing secrets, its queue and dead-letter queue."""

    webhook_secret_id: str = Field(min_length=1)
    webhook_queue_url: str = Field(min_length=1)
    webhook_dead_letter_queue_url: str = Field(min_length=1)
    webhook_allow_loopback: bool = False
    secret_max_age_seconds: int = Field(default=300, ge=0)


class ReconcileSettings(Settings):
    """The reconciliation function: Aliyun's secret (to ask it), and where webhooks go."""

    aliyun_secret_id: str | None = None
    reconcile_after_seconds: int = Field(default=600, ge=60)
    reconcile_max_queries: int = Field(default=1000, ge=0)
    webhook_queue_url: str | None = None
    secret_max_age_seconds: int = Field(default=300, ge=0)


@lru_cache(maxsize=1)
def get_receipt_settings() -> ReceiptSettings:
    return ReceiptSettings.from_env()


@lru_cache(maxsize=1)
def get_router_settings() -> RouterSettings:
    return RouterSettings.from_env()
