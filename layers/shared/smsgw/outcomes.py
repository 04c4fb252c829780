"""What happened to each phone number of a send."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Per-number outcome of a send, as far as the gateway can know it."""

    ACCEPTED = "accepted"
    """The provider queued the message (acceptance is never delivery)."""
    REJECTED = "rejected"
    """The provider refused the message for good; resending the same request cannot help."""
    RATE_LIMITED = "rate_limited"
    """The provider refused it because of a frequency limit; not sent, may be retried later."""
    RETRYABLE = "retryable"
    """Provably not sent (connection refused, 5xx before acceptance, throttling): safe to resend."""
    AMBIGUOUS = "ambiguous"
    """The request may have reached the provider (read timeout, reset after sending)."""
    QUOTA_EXCEEDED = "quota_exceeded"
    """Not sent: the gateway's own quota for the number, the account or the source IP is used up."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """Not sent: the tenant's daily spend budget would be exceeded."""
    BLOCKED_BY_GUARD = "blocked_by_guard"
    """Not sent: the number's block (or country) is sent to too fast (SMS pumping guard)."""
    OPTED_OUT = "opted_out"
    """Not sent: the number is on the tenant's opt-out list."""
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    """Not sent: the tenant does not send to the number's country."""


GATEWAY_REFUSALS = frozenset(
    {
        Status.QUOTA_EXCEEDED,
        Status.BUDGET_EXCEEDED,
        Status.BLOCKED_BY_GUARD,
        Status.OPTED_OUT,
        Status.COUNTRY_NOT_ALLOWED,
    }
)
"""Refused by the gateway before any provider call: no quota or budget kept, nothing sent."""
WAIT_REFUSALS = frozenset({Status.QUOTA_EXCEEDED, Status.BUDGET_EXCEEDED, Status.BLOCKED_BY_GUARD})
"""Gateway refusals that end with time: a request refused only by these answers 429."""
DENIAL_STATUS = {
    "phone": Status.QUOTA_EXCEEDED,
    "account": Status.QUOTA_EXCEEDED,
    "ip": Status.QUOTA_EXCEEDED,
    "guard": Status.BLOCKED_BY_GUARD,
    "budget": Status.BUDGET_EXCEEDED,
    "optout": Status.OPTED_OUT,
}
"""The status of a number a quota scope refused (smsgw.quota_windows.Denial.scope)."""
NOT_SENT = frozenset({Status.REJECTED, Status.RATE_LIMITED, Status.RETRYABLE}) | GATEWAY_REFUSALS
"""Outcomes where the provider definitely did not send: their quota units are given back."""


FAILOVER = frozenset({Status.REJECTED, Status.RATE_LIMITED, Status.RETRYABLE})
"""Provably unsent by the provider that answered: another may try, unless the refusal is `final`."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider's try at a number, on the unified route."""

    provider: str
    operation: str
    status: Status
    provider_code: str | None


@dataclass(frozen=True, slots=True)
class NumberOutcome:
    phone: str
    status: Status
    message_id: str | None = None
    provider_code: str | None = None
    provider_message: str | None = None
    retry_safe: bool = False
    """Whether sending this number again cannot produce a second SMS."""
    auth_error: bool = False
    """The provider refused the credentials (signature, key or account); nothing was sent."""
    final: bool = False
    """A refusal every provider would give (an invalid or blacklisted number, forbidden content)."""
    provider: str | None = None
    """On the unified route: the provider that answered last."""
    operation: str | None = None
    attempts: tuple[Attempt, ...] = ()
    """On the unified route: every provider tried, in order."""

    @property
    def sent(self) -> bool:
        return self.status is Status.ACCEPTED

    @property
    def may_fail_over(self) -> bool:
        """Whether another provider may try: provably unsent here, for reasons of this provider."""
        return self.status in FAILOVER and not self.final


@dataclass(frozen=True, slots=True)
class SendResult:
    """One outcome per phone number, in the order of the request."""

    provider: str
    operation: str
    outcomes: tuple[NumberOutcome, ...]
    calls: int
    """How many HTTP calls the send took (one per chunk)."""

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def all_failed(self) -> bool:
        return not any(o.sent for o in self.outcomes)

    @property
    def auth_failed(self) -> bool:
        return any(o.auth_error for o in self.outcomes)
