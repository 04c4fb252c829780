"""The unified route's function, composed: the send flow on the router, templates, rules and admin
keys, with a provider access per secret it is given. Only that function imports this module."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from smsgw.admin import AdminKeys
from smsgw.circuit import CircuitBreaker
from smsgw.config import credentials_model, get_router_settings
from smsgw.credentials import CredentialStore
from smsgw.errors import ConfigurationError
from smsgw.idempotency import IdempotencyStore
from smsgw.quotas import QuotaLedger
from smsgw.router import RouterService
from smsgw.runtime import Runtime, dynamodb_client, message_log, on_reset, policy, quota_client, tracking
from smsgw.sender import Sender
from smsgw.service import ProviderAccess
from smsgw.templates import TemplateStore


@dataclass(frozen=True, slots=True)
class RouterRuntime(Runtime):
    service: RouterService
    templates: TemplateStore
    admin: AdminKeys


@lru_cache(maxsize=1)
def router_runtime() -> RouterRuntime:
    settings = get_router_settings()
    providers: dict[str, ProviderAccess] = {
        name: ProviderAccess(
            settings, CredentialStore(secret, credentials_model(name), max_age=settings.secret_max_age_seconds)
        )
        for name, secret in settings.secret_ids().items()
    }
    if not providers:
        raise ConfigurationError("invalid or missing environment variables: POLYV_SECRET_ID, ALIYUN_SECRET_ID, ...")
    client = dynamodb_client()
    templates = TemplateStore(settings.config_table_name, client=client, cache_seconds=settings.template_cache_seconds)
    circuit = CircuitBreaker(
        settings.config_table_name,
        client=client,
        threshold=settings.circuit_failure_threshold,
        cooldown_seconds=settings.circuit_cooldown_seconds,
    )
    ledger = QuotaLedger(settings.quota_table_name, settings.limits, client_factory=quota_client)
    service = RouterService(
        templates=templates, circuit=circuit, ledger=ledger, policy=policy(settings), providers=providers
    )
    records = IdempotencyStore(
        settings.idempotency_table_name, expires_after_seconds=settings.idempotency_expiry_seconds, client=client
    )
    sender = Sender(service, records, message_log(), tracking(settings))
    admin = AdminKeys(settings.config_table_name, client=client, cache_seconds=settings.template_cache_seconds)
    return RouterRuntime(settings, sender, service, templates, admin)


on_reset(router_runtime.cache_clear)
