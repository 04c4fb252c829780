"""Routing on the unified route: which providers may send a number, in which order, and when a
number moves on to the next one.

A number moves to the next provider only when the outcome proves the first did not send it, for
reasons of that provider or its account (docs/routing.md has the whole table):

| outcome at a provider | decision |
|---|---|
| `accepted` | done |
| `ambiguous` (timeout after sending, garbled answer, unknown code) | stop: never fail over |
| `retryable` (connection refused, 5xx before acceptance, throttling) | fail over |
| `rate_limited` (the provider's or the account's flow control) | fail over |
| `rejected` for that provider (balance, account, sign, template, credentials, IP, country) | fail over |
| `rejected` as every provider would (invalid or blacklisted number, forbidden content) | done |
| the provider's circuit is open | skipped without a call |
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from smsgw import phones
from smsgw.outcomes import NumberOutcome, Status
from smsgw.templates import PROVIDERS, TemplateSpec

MAINLAND_OPERATIONS = {"polyv": "sms/send", "aliyun": "SendBatchSms", "ronglian": "TemplateSMS"}
INTERNATIONAL_OPERATIONS = {"aliyun": "SendInterSms"}


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    operation: str


class Decision(StrEnum):
    DONE = "done"
    FAIL_OVER = "fail_over"
    STOP = "stop"


def decide(outcome: NumberOutcome) -> Decision:
    """What a provider's outcome for a number means for the next provider."""
    if outcome.status is Status.AMBIGUOUS:
        return Decision.STOP
    if outcome.may_fail_over:
        return Decision.FAIL_OVER
    return Decision.DONE


def routes(spec: TemplateSpec, e164: str, *, providers: Sequence[str] | None, seed: str) -> list[Route]:
    """The providers that may send this number, in the order to try them: an explicit order, else
    the template's routing, else the default order; providers without a form of the template, or
    without an operation for the number's country, are left out."""
    mainland = phones.is_mainland(e164)
    capable: dict[str, str] = {}
    for provider in spec.forms():
        if mainland:
            capable[provider] = MAINLAND_OPERATIONS[provider]
        elif provider in INTERNATIONAL_OPERATIONS and spec.aliyun is not None and spec.aliyun.international:
            capable[provider] = INTERNATIONAL_OPERATIONS[provider]
    return [Route(p, capable[p]) for p in _order(spec, providers, seed, e164) if p in capable]


def _order(spec: TemplateSpec, providers: Sequence[str] | None, seed: str, e164: str) -> list[str]:
    if providers:
        return list(providers)
    routing = spec.routing
    if routing is None:
        return list(PROVIDERS)
    if routing.order is not None:
        return list(routing.order)
    weights = dict(routing.weights or {})
    # The same request and number draw the same order: a redelivery routes as the first delivery did.
    draw = random.Random(hashlib.sha256(f"{seed}|{e164}".encode()).digest())  # noqa: S311 - not a secret
    order: list[str] = []
    while weights:
        names = list(weights)
        chosen = draw.choices(names, weights=[weights[n] for n in names])[0]
        order.append(chosen)
        del weights[chosen]
    return order
