"""A tenant's rules as a send applies them, before and inside the quota reservation: numbers in
countries the tenant does not send to are refused at once; opt-outs are checks in each number's
quota transaction; the pumping guard's block and country windows and the day's budget are shared
scopes of the same reservation. No rule adds a DynamoDB round trip to a send."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from smsgw import phones
from smsgw.outcomes import Status
from smsgw.quota_windows import Check, Limits, Scope, window_of
from smsgw.rules import Applied, RuleStore, block_of, opt_out_key


@dataclass(frozen=True, slots=True)
class Gate:
    allowed: list[str]
    refused: dict[str, Status]
    checks: Callable[[str], tuple[Check, ...]] | None = None
    scopes: list[Scope] = field(default_factory=list)


class Policy:
    def __init__(
        self, rules: RuleStore | None, limits: Limits, *, default_countries: frozenset[str], config_table: str | None
    ) -> None:
        self.rules = rules
        self.limits = limits
        self.default_countries = default_countries
        self.config_table = config_table

    def applied(self, tenant: str) -> Applied | None:
        return self.rules.applied(tenant) if self.rules is not None else None

    def gate(self, tenant: str, numbers: Sequence[str], now: datetime, route: Callable[[str], tuple[str, str]]) -> Gate:
        """What the rules do to a send's numbers: refusals, and what the reservation adds; `route`
        gives a number's (provider, operation), which prices it for the budget."""
        applied = self.applied(tenant)
        countries = applied.countries if applied is not None else self.default_countries
        refused = {n: Status.COUNTRY_NOT_ALLOWED for n in numbers if phones.region_of(n) not in countries}
        allowed = [n for n in numbers if n not in refused]
        scopes = self._guard(tenant, allowed, now, applied)
        if applied is not None and applied.budget is not None:
            spend = applied.budget
            day = window_of("budget", "day", f"{tenant}#budget", spend.daily_limit, now, zone=self.limits.timezone)
            scopes.append(Scope(day, {n: spend.price(*route(n), phones.region_of(n)) for n in allowed}))
        checks = None
        if self.config_table is not None:
            table = self.config_table

            def checks(number: str) -> tuple[Check, ...]:
                return (Check(table, opt_out_key(tenant, number), "optout"),)

        return Gate(allowed, refused, checks, scopes)

    def _guard(self, tenant: str, numbers: Sequence[str], now: datetime, applied: Applied | None) -> list[Scope]:
        guard = applied.guard if applied is not None else None
        block_limit = guard.block_per_hour if guard and guard.block_per_hour is not None else self.limits.block_per_hour
        country_limit = (
            guard.country_per_hour if guard and guard.country_per_hour is not None else self.limits.country_per_hour
        )
        cooldown = guard.cooldown_seconds if guard else 3600
        scopes: list[Scope] = []
        for limit, group in ((block_limit, block_of), (country_limit, phones.region_of)):
            if limit <= 0:
                continue
            members: dict[str, dict[str, int]] = {}
            for n in numbers:
                members.setdefault(group(n), {})[n] = 1
            kind = "block" if group is block_of else "country"
            for name, costs in members.items():
                prefix = f"{tenant}#{kind}#{name}"
                window = window_of("guard", "hour", prefix, limit, now, zone=self.limits.timezone, cooldown=cooldown)
                scopes.append(Scope(window, costs))
        return scopes
