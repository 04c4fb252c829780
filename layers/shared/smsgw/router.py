"""The unified route's send: a logical template, routed per number across providers, with
failover only when a number was provably not sent (the table in smsgw.routing).

A handset has one quota on this route, whatever providers are tried: its minute, hour and day,
and the account's day, count every provider; a number that fails over keeps the unit it took, and
gives it back only if no provider sent it. Every try of a number is in its result's `attempts`.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from pydantic import ValidationError

from smsgw.circuit import Circuit, CircuitBreaker
from smsgw.clock import Budget
from smsgw.errors import DependencyUnavailable, GatewayError, InvalidRequest
from smsgw.models import (
    AliyunBatchSmsRequest,
    AliyunInterSmsRequest,
    MessageRequest,
    PolyvSendRequest,
    RonglianTemplateSmsRequest,
    SendRequest,
    first_of_each,
)
from smsgw.observability import NAMESPACE, SERVICE, report_send
from smsgw.operations import OPERATIONS
from smsgw.outcomes import NOT_SENT, Attempt, NumberOutcome, SendResult, Status
from smsgw.phones import region_of
from smsgw.policy import Policy
from smsgw.quota_windows import Reservation
from smsgw.quotas import QuotaLedger, Subject
from smsgw.routing import Decision, Route, decide, routes
from smsgw.service import Caller, Delivery, Operation, ProviderAccess, give_back, refusal
from smsgw.templates import Template, TemplateStore

ANY_PROVIDER = "any"
"""The provider part of the quota keys of this route: one handset, one quota, across providers."""
_CALLS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="route")


def _outcome(phone: str, status: Status, code: str, message: str, *, final: bool = False) -> NumberOutcome:
    return NumberOutcome(phone, status, provider_code=code, provider_message=message, retry_safe=True, final=final)


@dataclass(slots=True)
class _Progress:
    """Where each number stands: the routes left to try, every attempt, the last outcome."""

    left: dict[str, deque[Route]]
    attempts: dict[str, list[Attempt]]
    last: dict[str, NumberOutcome]


class RouterService:
    """Implements the send flow's `Sends` port for the unified route."""

    def __init__(
        self,
        *,
        templates: TemplateStore,
        circuit: CircuitBreaker,
        ledger: QuotaLedger,
        policy: Policy,
        providers: Mapping[str, ProviderAccess],
    ) -> None:
        self.templates = templates
        self.circuit = circuit
        self.ledger = ledger
        self.policy = policy
        self.providers = providers

    def template_for(self, tenant: str, request: MessageRequest) -> Template:
        """The template a request names, with its parameters checked against the request's."""
        template = self.templates.get(tenant, request.template, request.template_version)
        given, wanted = set(request.params), set(template.spec.params)
        if given != wanted:
            missing, extra = sorted(wanted - given), sorted(given - wanted)
            parts = [
                f"missing: {', '.join(missing)}" if missing else "",
                f"unknown: {', '.join(extra)}" if extra else "",
            ]
            raise InvalidRequest(
                f"params do not match template {template.name!r} version {template.version}",
                details=[
                    {"field": "body.params", "type": "params_mismatch", "message": "; ".join(p for p in parts if p)}
                ],
            )
        return template

    def send(
        self,
        operation: Operation,
        request: SendRequest,
        caller: Caller,
        budget: Budget,
        *,
        lead: dict[str, Any] | None = None,
    ) -> Delivery:
        """Raises (a `GatewayError`) only before any provider is called: then nothing was sent."""
        assert isinstance(request, MessageRequest)
        template = self.template_for(caller.tenant, request)
        numbers = first_of_each(request.phones)
        plans = {n: routes(template.spec, n, providers=request.providers, seed=caller.request_id) for n in numbers}
        routable = [n for n in numbers if plans[n]]
        first = {n: (plans[n][0].provider, plans[n][0].operation) for n in routable}
        gate = self.policy.gate(caller.tenant, routable, self.ledger.clock(), first.__getitem__)
        subject = Subject(caller.tenant, ANY_PROVIDER, caller.source_ip)
        reservation = self.ledger.reserve(
            subject, gate.allowed, budget.send_by, checks=gate.checks, scopes=gate.scopes, lead=lead
        )
        granted = [n for n in routable if n in reservation.granted]
        if granted and budget.send_by.expired():
            give_back(self.ledger, reservation, granted, budget)
            raise DependencyUnavailable("The request ran out of time before the provider was called.")
        progress = _Progress({n: deque(plans[n]) for n in granted}, {n: [] for n in granted}, {})
        started, calls = time.perf_counter(), 0
        while progress.left and (calls == 0 or budget.done_by.allows(self._call_seconds())):
            calls += self._round(progress, template, request, caller)
        unsent = [n for n in granted if n not in progress.last or progress.last[n].status in NOT_SENT]
        give_back(self.ledger, reservation, unsent, budget)
        reservation.wait_for_counts()
        final = {n: self._final(n, plans[n], progress, gate.refused, reservation) for n in numbers}
        outcomes = tuple(final[p] for p in request.phones)
        result = SendResult(provider=ANY_PROVIDER, operation=template.name, outcomes=outcomes, calls=calls)
        return Delivery(result, reservation, (time.perf_counter() - started) * 1000 if calls else None)

    @staticmethod
    def _final(
        number: str, plan: list[Route], progress: _Progress, refused: Mapping[str, Status], reservation: Reservation
    ) -> NumberOutcome:
        """A number's outcome: no route, refused before any provider, or its last provider's answer."""
        if not plan:
            return _outcome(number, Status.REJECTED, "no_route", "No provider of the template serves it.", final=True)
        if number not in reservation.granted and number not in progress.last:
            return refusal(number, refused.get(number), reservation.denied.get(number))
        last = progress.last.get(number) or _outcome(
            number, Status.RETRYABLE, "circuit_open", "Every provider skipped."
        )
        return replace(last, attempts=tuple(progress.attempts.get(number, ())))

    def _call_seconds(self) -> float:
        http = next(iter(self.providers.values())).http
        return http.connect_timeout + http.read_timeout

    def _round(self, progress: _Progress, template: Template, request: MessageRequest, caller: Caller) -> int:
        """One provider call per route for the numbers whose next route it is: the calls of a round
        go out together, so a failover adds one round trip."""
        batch: dict[Route, list[str]] = {}
        skipped: set[str] = set()
        for number, left in list(progress.left.items()):
            route = self._next_open(left, skipped)
            if route is None:
                del progress.left[number]
                continue
            batch.setdefault(route, []).append(number)
        jobs = {
            route: _CALLS.submit(self._call, route, numbers, template, request, caller)
            for route, numbers in batch.items()
        }
        calls = 0
        failovers: Counter[str] = Counter()
        for route, job in jobs.items():
            result = job.result()
            calls += result.calls
            failed = bool(result.outcomes) and all(
                o.status is Status.RETRYABLE or o.auth_error for o in result.outcomes
            )
            self.circuit.record(route.provider, route.operation, failed=failed)
            for o in result.outcomes:
                progress.attempts[o.phone].append(Attempt(route.provider, route.operation, o.status, o.provider_code))
                progress.last[o.phone] = replace(o, provider=route.provider, operation=route.operation)
                if decide(o) is not Decision.FAIL_OVER or not progress.left.get(o.phone):
                    progress.left.pop(o.phone, None)
                else:
                    failovers[route.provider] += 1
        _report_routing(failovers, skipped)
        return calls

    def _next_open(self, left: deque[Route], skipped: set[str]) -> Route | None:
        while left:
            route = left.popleft()
            if self.circuit.state(route.provider, route.operation) is not Circuit.OPEN:
                return route
            skipped.add(route.provider)
        return None

    def _call(
        self, route: Route, numbers: list[str], template: Template, request: MessageRequest, caller: Caller
    ) -> SendResult:
        operation = OPERATIONS[f"{route.provider}.{route.operation}"]
        access = self.providers[route.provider]
        results: list[NumberOutcome] = []
        calls = 0
        for group in _groups(route, numbers):
            try:
                provider_request = provider_form(route, template, request.params, group).with_gateway_id(
                    caller.request_id
                )
            except ValidationError:
                # The values do not fit this provider's form (a link Aliyun refuses...): another may take them.
                results += [
                    _outcome(n, Status.REJECTED, "invalid_for_provider", "The values do not fit its form.")
                    for n in group
                ]
                continue
            try:
                credentials = access.credentials()
            except GatewayError as exc:
                results += [
                    _outcome(n, Status.RETRYABLE, exc.code, "The provider's credentials are unavailable.")
                    for n in group
                ]
                continue
            sent = access.send(operation, provider_request, credentials)
            report_send(sent, caller)
            calls += sent.calls
            results += list(sent.outcomes)
        return SendResult(route.provider, route.operation, tuple(results), calls)


def _report_routing(failovers: Mapping[str, int], skipped: set[str]) -> None:
    """One EMF document per provider that lost numbers to the next one or was skipped: the
    `provider` dimension alone, so that an alarm sees a provider in trouble whatever its operation."""
    for provider in sorted(set(failovers) | skipped):
        emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        emf.add_dimension(name="provider", value=provider)
        if failovers.get(provider):
            emf.add_metric(name="failovers", unit=MetricUnit.Count, value=failovers[provider])
        if provider in skipped:
            emf.add_metric(name="circuit_open", unit=MetricUnit.Count, value=1)
        emf.flush_metrics()


def _groups(route: Route, numbers: list[str]) -> list[list[str]]:
    """SendInterSms takes the numbers of one country per request."""
    if route.operation != "SendInterSms":
        return [numbers]
    by_region: dict[str, list[str]] = {}
    for n in numbers:
        by_region.setdefault(region_of(n), []).append(n)
    return list(by_region.values())


def provider_form(route: Route, template: Template, params: Mapping[str, str], numbers: Sequence[str]) -> SendRequest:
    """The provider request that says the template's message to these numbers."""
    spec = template.spec
    if route.provider == "polyv" and spec.polyv is not None:
        names = spec.polyv.names
        return PolyvSendRequest(
            phone_numbers=list(numbers),
            template_param_names=[names[p] for p in spec.params],
            template_param_values=[params[p] for p in spec.params],
        )
    if route.provider == "ronglian" and spec.ronglian is not None:
        ronglian = spec.ronglian
        return RonglianTemplateSmsRequest(
            phone_numbers=list(numbers), template_id=ronglian.template_id, datas=[params[p] for p in ronglian.datas]
        )
    if route.operation == "SendInterSms" and spec.aliyun is not None and spec.aliyun.international is not None:
        inter = spec.aliyun.international
        return AliyunInterSmsRequest(
            country_code=region_of(numbers[0]),
            phone_numbers=list(numbers),
            sign_name=inter.sign_name,
            template_code=inter.template_code,
            template_param={inter.params[p]: params[p] for p in spec.params} or None,
        )
    if route.provider == "aliyun" and spec.aliyun is not None:
        aliyun = spec.aliyun
        values = {aliyun.params[p]: params[p] for p in spec.params}
        return AliyunBatchSmsRequest.model_validate(
            {
                "template_code": aliyun.template_code,
                "sign_name": aliyun.sign_name,
                "messages": [{"phone_number": n, "template_param": values} for n in numbers],
            }
        )
    raise ValueError(f"template {template.name!r} has no form for {route.provider}")
