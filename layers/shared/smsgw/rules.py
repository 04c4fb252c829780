"""A tenant's abuse rules: where it may send, how fast a number block or a country may be walked,
what a day may cost, and its opt-out list.

Rules are data in the configuration table, per tenant, managed by its admin key (routes) or the
command line, and read through a short cache: a send makes no DynamoDB call for them. Opt-outs are
items of their own, checked inside the quota transaction (smsgw.quotas), never cached: an opt-out
takes effect at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from smsgw import phones
from smsgw.errors import DependencyUnavailable

Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
BLOCK_DIGITS = 7
"""A number block: the numbers sharing their first seven national digits (a mainland 号段 and its
HLR segment: 1380013xxxx)."""


class Guard(BaseModel):
    """Velocity limits against SMS pumping: sends per hour to one number block and to one country."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    block_per_hour: int | None = Field(
        default=None, ge=0, description="Sends per hour to one number block; 0: off; none: the deployment's."
    )
    country_per_hour: int | None = Field(
        default=None, ge=0, description="Sends per hour to one country; 0: off; none: the deployment's."
    )
    cooldown_seconds: int = Field(
        default=3600, ge=60, le=86400, description="How long a block that went over stays blocked (at most a day)."
    )


class Budget(BaseModel):
    """A daily spend limit, in the prices' unit (say, fen), and what each send is estimated to cost."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    daily_limit: int = Field(ge=1)
    prices: dict[str, int] = Field(
        description=(
            "Price per SMS by `provider`, `provider.operation` or `provider.operation.country` (the most "
            "specific wins), e.g. {'aliyun': 5, 'aliyun.SendInterSms.HK': 40}."
        )
    )
    default_price: int = Field(default=10, ge=0, description="The price of a send no entry names.")

    def price(self, provider: str, operation: str, country: str) -> int:
        for name in (f"{provider}.{operation}.{country}", f"{provider}.{operation}", provider):
            if name in self.prices:
                return self.prices[name]
        return self.default_price


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    allowed_countries: list[Country] | None = Field(
        default=None, description="Destination countries (ISO 3166-1 alpha-2); none: the deployment's default."
    )
    guard: Guard = Field(default_factory=Guard)
    budget: Budget | None = None
    opt_out_on_receipts: bool = Field(
        default=False, description="Receipts saying the user refused (USER_REJECT, MOBILE_IN_BLACK) opt the number out."
    )


@dataclass(frozen=True, slots=True)
class Applied:
    """A tenant's rules as a send applies them."""

    countries: frozenset[str]
    guard: Guard
    budget: Budget | None
    opt_out_on_receipts: bool


def block_of(e164: str) -> str:
    """The number block of a number: its country code and first seven national digits."""
    code = phones.calling_code(e164)
    return f"{code}-{e164[1 + len(code) :][:BLOCK_DIGITS]}"


def rules_key(tenant: str) -> dict[str, Any]:
    return {"pk": {"S": f"rules#{tenant}"}, "sk": {"S": "rules"}}


def opt_out_key(tenant: str, e164: str) -> dict[str, Any]:
    return {"pk": {"S": f"optout#{tenant}#{e164}"}, "sk": {"S": "optout"}}


class RuleStore:
    def __init__(
        self,
        table_name: str,
        *,
        client: Any,
        default_countries: frozenset[str],
        cache_seconds: int = 60,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.default_countries = default_countries
        self.cache_seconds = cache_seconds
        self.now = now
        self._cache: dict[str, tuple[float, Rules]] = {}
        self._lock = threading.Lock()

    def rules(self, tenant: str) -> Rules:
        with self._lock:
            cached = self._cache.get(tenant)
        if cached is not None and self.now() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            item = self.client.get_item(TableName=self.table_name, Key=rules_key(tenant)).get("Item")
        except Exception as exc:
            raise _unavailable(exc) from exc
        found = Rules.model_validate_json(item["rules"]["S"]) if item else Rules()
        with self._lock:
            self._cache[tenant] = (self.now(), found)
        return found

    def applied(self, tenant: str) -> Applied:
        rules = self.rules(tenant)
        countries = (
            frozenset(rules.allowed_countries) if rules.allowed_countries is not None else self.default_countries
        )
        return Applied(countries, rules.guard, rules.budget, rules.opt_out_on_receipts)

    def save(self, tenant: str, rules: Rules) -> None:
        item = {**rules_key(tenant), "rules": {"S": rules.model_dump_json(exclude_none=True)}}
        try:
            self.client.put_item(TableName=self.table_name, Item=item)
        except Exception as exc:
            raise _unavailable(exc) from exc
        with self._lock:
            self._cache[tenant] = (self.now(), rules)

    # -- opt-outs --------------------------------------------------------------------------------

    def opt_out(self, tenant: str, e164: str, *, reason: str) -> None:
        item = {**opt_out_key(tenant, e164), "reason": {"S": reason}, "at": {"N": str(int(time.time()))}}
        try:
            self.client.put_item(TableName=self.table_name, Item=item)
        except Exception as exc:
            raise _unavailable(exc) from exc

    def opt_in(self, tenant: str, e164: str) -> bool:
        try:
            answer = self.client.delete_item(
                TableName=self.table_name, Key=opt_out_key(tenant, e164), ReturnValues="ALL_OLD"
            )
        except Exception as exc:
            raise _unavailable(exc) from exc
        return bool(answer.get("Attributes"))

    def opted_out(self, tenant: str, e164: str) -> dict[str, Any] | None:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=opt_out_key(tenant, e164), ConsistentRead=True)
        except Exception as exc:
            raise _unavailable(exc) from exc
        found = item.get("Item")
        return None if found is None else {"reason": found["reason"]["S"], "at": int(found["at"]["N"])}


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"DynamoDB is unavailable ({type(exc).__name__})")
