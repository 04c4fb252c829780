"""The alarms and dashboards watch metrics the functions really emit: every metric of the gateway's
namespace that template.yaml names (its name, its dimensions and their values) is compared with
the EMF documents real sends print, and those the receipts consumer, the conversion feedback and
the pumping guard print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local.sandbox import Fault, ProviderSandbox
from local.template import Physical, Template, load_document
from smsgw.deliveries import Change, Delivery, Indexed
from smsgw.observability import report_destinations, report_guard
from smsgw.quota_windows import window_of
from smsgw.receiving import ReceiptConsumer
from smsgw.rules import block_of
from tests.integration.test_router import LOGIN_CODE, put_template, send
from tests.support import call, event

TEMPLATE_PATH = Path(__file__).parents[2] / "template.yaml"
TEMPLATE = load_document(TEMPLATE_PATH)
NAMESPACE = TEMPLATE["Parameters"]["MetricsNamespace"]["Default"]
# One send per provider operation: (function, event file) → the operation's dimensions
SENDS = {
    ("polyv", "polyv-send.json"): ("polyv", "sms/send"),
    ("aliyun", "aliyun-send.json"): ("aliyun", "SendInterSms"),
    ("aliyun", "aliyun-batch-send.json"): ("aliyun", "SendBatchSms"),
    ("ronglian", "ronglian-send.json"): ("ronglian", "TemplateSMS"),
}
# The unified route's failovers away from each provider: a provider answering 503, then the next one.
FAILOVERS = {
    "polyv": ("polyv.send", "aliyun"),
    "aliyun": ("aliyun.SendBatchSms", "ronglian"),
    "ronglian": ("ronglian.TemplateSMS", "polyv"),
}
Metric = tuple[str, frozenset[tuple[str, str]]]
"""A metric of the gateway's namespace: its name and its dimensions."""


def _resources(kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == kind:
            yield name, resource["Properties"]


def _namespace(value: Any) -> str:
    return NAMESPACE if value == {"Ref": "MetricsNamespace"} else str(value)


def alarm_metrics() -> dict[str, set[Metric]]:
    watched: dict[str, set[Metric]] = {}
    for name, alarm in _resources("AWS::CloudWatch::Alarm"):
        for query in alarm.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric")
            if metric and _namespace(metric["Namespace"]) == NAMESPACE:
                dimensions = frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"])
                watched.setdefault(name, set()).add((metric["MetricName"], dimensions))
        if _namespace(alarm.get("Namespace")) == NAMESPACE:
            dimensions = frozenset((d["Name"], d["Value"]) for d in alarm.get("Dimensions", []))
            watched.setdefault(name, set()).add((alarm["MetricName"], dimensions))
    return watched


def _rows(metrics: list[list[Any]]) -> Iterator[list[str]]:
    """A widget's metric rows with CloudWatch's "." (the value of the row above) filled in."""
    above: list[str] = []
    for row in metrics:
        parts = [part for part in row if isinstance(part, str)]
        above = [above[i] if part == "." else part for i, part in enumerate(parts)]
        yield above


def dashboard_metrics() -> dict[str, set[Metric]]:
    """What each dashboard's body shows, the body rendered as CloudFormation would (stand-ins for the
    queues' names)."""
    template = Template.load(TEMPLATE_PATH)
    queues = {name: Physical(name, {"QueueName": name}) for name in template.of_type("AWS::SQS::Queue")}
    resolver = template.resolver(queues)
    watched: dict[str, set[Metric]] = {}
    for name, dashboard in _resources("AWS::CloudWatch::Dashboard"):
        for widget in json.loads(resolver.resolve_string(dashboard["DashboardBody"]))["widgets"]:
            for row in _rows(widget["properties"].get("metrics", [])):
                if row[0] != NAMESPACE:
                    continue
                dimensions = frozenset(zip(row[2::2], row[3::2], strict=True))
                watched.setdefault(name, set()).add((row[1], dimensions))
    return watched


def _printed(output: str) -> set[Metric]:
    metrics: set[Metric] = set()
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == NAMESPACE
            for names in directive["Dimensions"]:
                dimensions = frozenset((n, document[n]) for n in names)
                metrics.update((m["Name"], dimensions) for m in directive["Metrics"])
    return metrics


@pytest.fixture
def emitted(deploy: Any, capsys: pytest.CaptureFixture[str]) -> set[Metric]:
    """What one send of each operation printed as EMF."""
    metrics: set[Metric] = set()
    for function, event_file in SENDS:
        deploy(function)
        capsys.readouterr()
        assert call(function, event(event_file))["statusCode"] == 200
        metrics |= _printed(capsys.readouterr().out)
    return metrics


@pytest.fixture
def emitted_by_the_router(router: ProviderSandbox, capsys: pytest.CaptureFixture[str]) -> set[Metric]:
    """What the unified route printed as EMF for one failover away from each provider."""
    put_template("login_code", LOGIN_CODE)
    capsys.readouterr()
    for provider, (operation, then) in FAILOVERS.items():
        router.add_fault(Fault(kind="http_status", operation=operation, status=503, times=1))
        status, body = send(["13800138000"], providers=[provider, then])
        assert (status, body["results"][0]["provider"]) == (200, then)
    return _printed(capsys.readouterr().out)


# The provider operations whose numbers get receipts: (provider, operation).
RECEIPT_OPERATIONS = {("aliyun", "SendInterSms"), ("aliyun", "SendBatchSms"), ("ronglian", "TemplateSMS")}


@pytest.fixture
def emitted_by_tracking(capsys: pytest.CaptureFixture[str]) -> set[Metric]:
    """What the receipts consumer prints for a delivered and an undelivered number of each
    operation with receipts, the conversion feedback for a converted number, and the pumping
    guard when it closes a number block."""
    capsys.readouterr()
    changes = [
        Change(
            Indexed(provider, operation, "biz-1", "shop", "req-1", ("+8613800138000",), 1_700_000_000, None),
            "+8613800138000",
            status,
            None if status is Delivery.DELIVERED else "UNDELIV",
            "2026-12-01T10:00:05+08:00",
        )
        for provider, operation in sorted(RECEIPT_OPERATIONS)
        for status in (Delivery.DELIVERED, Delivery.UNDELIVERED)
    ]
    ReceiptConsumer(None, None).announce(changes)  # type: ignore[arg-type]
    report_destinations([("CN", block_of("+8613800138000"))], "converted")
    now = datetime.now(UTC)
    report_guard(window_of("guard", "hour", f"shop#block#{block_of('+8613800138000')}", 20, now, zone="UTC"))
    return _printed(capsys.readouterr().out)


def test_every_alarm_watches_metrics_the_functions_emit(
    emitted: set[Metric], emitted_by_the_router: set[Metric], emitted_by_tracking: set[Metric]
) -> None:
    alarms = alarm_metrics()
    everything = emitted | emitted_by_the_router | emitted_by_tracking

    assert len(alarms) >= len(SENDS) + len(FAILOVERS)
    for name, metrics in alarms.items():
        assert metrics <= everything, f"{name} watches what nothing emits: {metrics - everything}"


def test_each_provider_has_an_alarm_on_the_unified_routes_failovers_away_from_it() -> None:
    watched = {}
    for name, alarm in _resources("AWS::CloudWatch::Alarm"):
        if name.endswith("FailoverAlarm"):
            [(metric, dimensions)] = alarm_metrics()[name]
            assert (metric, alarm["Statistic"], alarm["Period"]) == ("failovers", "Sum", 300)
            assert alarm["Threshold"] == {"Ref": "FailoverAlarmThreshold"}
            watched[name] = dict(dimensions)

    assert watched == {
        f"{provider.capitalize()}FailoverAlarm": {"provider": provider, "service": "sms-gateway"}
        for provider in FAILOVERS
    }


def test_every_dashboard_shows_metrics_the_functions_emit(emitted: set[Metric]) -> None:
    dashboards = dashboard_metrics()

    assert set(dashboards) == {"PolyvDashboard", "AliyunDashboard", "RonglianDashboard"}
    for name, metrics in dashboards.items():
        assert metrics <= emitted, f"{name} shows what nothing emits: {metrics - emitted}"
    # Every operation has its rows: the operation widgets list them from the template's Mappings.
    shown = {(dict(d)["provider"], dict(d)["operation"]) for metrics in dashboards.values() for _, d in metrics}
    assert shown == set(SENDS.values())


def test_each_operation_has_a_failure_rate_alarm_that_waits_for_a_minimum_volume() -> None:
    watched_operations = set()
    for name, alarm in _resources("AWS::CloudWatch::Alarm"):
        if not name.endswith("FailureRateAlarm"):
            continue
        [rate] = [query for query in alarm["Metrics"] if query.get("ReturnData")]
        # Below the minimum the rate is 0: one failure among a handful of sends does not fire it
        assert rate["Expression"] == {
            "Fn::Sub": "IF(total >= ${ProviderFailureAlarmMinimumNumbers}, failed / total, 0)"
        }
        assert alarm["Threshold"] == {"Ref": "ProviderFailureRateThreshold"}
        for _, dimensions in alarm_metrics()[name]:
            watched_operations.add((dict(dimensions)["provider"], dict(dimensions)["operation"]))

    assert watched_operations == set(SENDS.values())
    assert TEMPLATE["Parameters"]["ProviderFailureAlarmMinimumNumbers"]["Default"] == 10


def test_each_operation_with_receipts_has_a_delivery_rate_alarm_that_waits_for_a_minimum_volume() -> None:
    watched = set()
    for name, alarm in _resources("AWS::CloudWatch::Alarm"):
        if not name.endswith("DeliveryRateAlarm"):
            continue
        [rate] = [query for query in alarm["Metrics"] if query.get("ReturnData")]
        # Below the minimum the rate is 1: a couple of failed receipts do not fire it
        assert rate["Expression"] == {
            "Fn::Sub": "IF(total >= ${ProviderFailureAlarmMinimumNumbers}, FILL(delivered, 0) / total, 1)"
        }
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
            {"Ref": "DeliveryRateThreshold"},
            "LessThanThreshold",
        )
        for metric, dimensions in alarm_metrics()[name]:
            assert metric in {"delivered", "undelivered"}
            watched.add((dict(dimensions)["provider"], dict(dimensions)["operation"]))

    assert watched == RECEIPT_OPERATIONS


def test_the_guard_and_conversion_alarms_watch_their_metrics() -> None:
    watched = alarm_metrics()

    assert watched["GuardClosedAlarm"] == {
        ("guard_closed", frozenset({("guard", "block"), ("service", "sms-gateway")}))
    }
    country = frozenset({("country", "CN"), ("service", "sms-gateway")})
    assert watched["CNConversionRateAlarm"] == {("accepted", country), ("converted", country)}
    # An hour with no feedback at all counts as converted: tenants that send none never fire it
    [rate] = [q for q in TEMPLATE["Resources"]["CNConversionRateAlarm"]["Properties"]["Metrics"] if q.get("ReturnData")]
    assert "FILL(converted, 0) > 0" in rate["Expression"]["Fn::Sub"]
