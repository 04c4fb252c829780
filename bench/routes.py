"""Figures of the routes beyond the provider functions, measured in process like bench.inprocess:
the minimal official-SDK handler warm beside the gateway, the unified route (`/v1/messages`) with
and without a failover, and the receipt route with its queue consumer."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from bench.coldstart_child import Context, load_aliyun_sdk
from bench.inprocess import Harness, log, percentile
from bench.probes import Sample, critical_rounds, timed
from bench.stack import ADMIN_KEY, RECEIPT_TOKENS, TENANT, apply_environment
from bench.workloads import BY_NAME, send_event
from local.sandbox import Fault
from tests.support import call, event, sqs_event

ROUTER = "router"
RECEIPTS = "receipts"
TEMPLATE = "bench_code"
# Aliyun first for mainland numbers, then Ronglian: the failover's second provider.
TEMPLATE_SPEC = {
    "params": ["code"],
    "aliyun": {"sign_name": "SmsGateway", "template_code": "SMS_000002", "params": {"code": "code"}},
    "ronglian": {"template_id": "1", "datas": ["code"]},
    "routing": {"order": ["aliyun", "ronglian"]},
}
FAILOVER_FAULT = Fault(kind="http_status", operation="aliyun.SendBatchSms", status=503)
"""The first provider answers 503 before sending: the route fails over to the second."""


@dataclass
class Series:
    """Timed calls of one kind."""

    name: str
    samples: list[Sample] = field(default_factory=list)
    log_bytes: float = 0.0
    """What the handler wrote to stdout (its log lines and metrics) per call, mean."""

    def wall(self, q: float) -> float:
        return percentile([s.wall for s in self.samples], q) * 1000

    def calls(self, kind: str) -> Counter[str]:
        """Calls of a kind per sample, by operation (the median sample's)."""
        counts = sorted((Counter(c.name for c in s.of(kind)) for s in self.samples), key=lambda c: c.total())
        return counts[len(counts) // 2] if counts else Counter()

    @property
    def rounds(self) -> tuple[int, int]:
        """(DynamoDB, provider) rounds on the critical path, the median sample's."""
        found = sorted(critical_rounds(s.calls) for s in self.samples)
        return found[len(found) // 2] if found else (0, 0)

    def units(self) -> tuple[float, float]:
        """Mean DynamoDB (write, read) request units per sample."""
        calls = [c for s in self.samples for c in s.of("dynamodb")]
        count = max(len(self.samples), 1)
        return sum(c.units[0] for c in calls) / count, sum(c.units[1] for c in calls) / count


def interleaved(blocks: int, total: int, runs: dict[str, Callable[[], Sample]]) -> dict[str, Series]:
    """`total` calls of each, in `blocks` rounds that take turns, so that both see the same machine."""
    series = {name: Series(name) for name in runs}
    per_block = -(-total // blocks)
    while any(len(s.samples) < total for s in series.values()):
        for name, run in runs.items():
            for _ in range(min(per_block, total - len(series[name].samples))):
                series[name].samples.append(run())
    return series


# -- the minimal official-SDK handler beside the gateway, warm ---------------------------------------


def sdk_beside_gateway(harness: Harness, *, calls: int, warmup: int) -> dict[str, Series]:
    """One-number SendBatchSms through the gateway's AliyunFunction and through the minimal handler
    on the official SDK (bench.coldstart_child), `calls` each in alternating blocks."""
    op = BY_NAME["aliyun.SendBatchSms"]
    harness.inject("none")
    harness.use(op.provider)
    apply_environment(harness.stack.sdk_environment())
    sdk = load_aliyun_sdk()  # its clients on the probe's session, as the gateway's
    context = Context()

    def through_sdk() -> Sample:
        evt = send_event(op, harness.phones.take(1))
        sample = timed(harness.probe, lambda: sdk(evt, context))
        if sample.answer["statusCode"] != 200:
            raise RuntimeError(f"SDK handler: {sample.answer}")
        return sample

    def through_gateway() -> Sample:
        return harness.send(op, 1)

    for _ in range(warmup):
        through_gateway()
        through_sdk()
    series = interleaved(6, calls, {"gateway": through_gateway, "sdk": through_sdk})
    log(
        f"warm SendBatchSms: gateway p50 {series['gateway'].wall(50):.2f} ms, "
        f"SDK handler {series['sdk'].wall(50):.2f} ms"
    )
    return series


# -- the unified route ------------------------------------------------------------------------------


def api_event(method: str, path: str, body: Any, **headers: str) -> dict[str, Any]:
    evt = event("polyv-send.json", body=body)
    evt.update(httpMethod=method, path=path, resource=path)
    evt["requestContext"]["identity"]["apiKeyId"] = headers.pop("key_id", TENANT)
    for name, value in headers.items():
        evt["headers"][name] = value
        evt.setdefault("multiValueHeaders", {})[name] = [value]
    return evt


def router_send(harness: Harness, *, failover: bool) -> Sample:
    phones = harness.phones.take(1)
    evt = api_event("POST", "/v1/messages", {"template": TEMPLATE, "phone_numbers": phones, "params": {"code": "1"}})
    sample = timed(harness.probe, lambda: call(ROUTER, evt))
    body = json.loads(sample.answer["body"])
    [result] = body.get("results") or [{}]
    expected = "ronglian" if failover else "aliyun"
    if sample.answer["statusCode"] != 200 or result.get("status") != "accepted" or result.get("provider") != expected:
        raise RuntimeError(f"/v1/messages ({'failover' if failover else 'no failover'}): {json.dumps(body)[:500]}")
    return sample


def unified_route(harness: Harness, *, calls: int, warmup: int, injected: int) -> dict[str, Series]:
    """1-number sends through `/v1/messages`: warm without and with a failover (`calls` each, in
    alternating blocks), then `injected` each with 20 ms on every call for the rounds."""
    harness.use(ROUTER, harness.stack.router_environment())
    put = call(ROUTER, api_event("PUT", f"/v1/templates/{TEMPLATE}", TEMPLATE_SPEC, key_id=ADMIN_KEY))
    if put["statusCode"] != 200:
        raise RuntimeError(f"template not saved: {put}")
    sandbox = harness.stack.sandbox

    def run(failover: bool, mode: str = "none") -> Callable[[], Sample]:
        def once() -> Sample:
            sandbox.reset()
            harness.inject(mode)
            if failover:
                sandbox.add_fault(FAILOVER_FAULT)
            return router_send(harness, failover=failover)

        return once

    for _ in range(warmup):
        run(False)()
        run(True)()
    series = interleaved(6, calls, {"direct": run(False), "failover": run(True)})
    injected_series = interleaved(
        1, injected, {"direct-injected": run(False, "both"), "failover-injected": run(True, "both")}
    )
    harness.inject("none")
    sandbox.reset()
    series |= injected_series
    log(f"/v1/messages: p50 {series['direct'].wall(50):.2f} ms, with a failover {series['failover'].wall(50):.2f} ms")
    return series


# -- receipts ---------------------------------------------------------------------------------------


def aliyun_report(phone: str, message_id: str, request_id: str) -> dict[str, Any]:
    """One delivery report as Aliyun pushes it (SmsReport)."""
    return {
        "phone_number": phone.removeprefix("+86"),
        "send_time": "2026-12-01 10:00:00",
        "report_time": "2026-12-01 10:00:05",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": message_id,
        "out_id": request_id,
    }


def receipt_event(reports: list[dict[str, Any]]) -> dict[str, Any]:
    token = RECEIPT_TOKENS["aliyun"]
    evt = event("aliyun-batch-send.json", raw_body=json.dumps(reports))
    path = f"/v1/receipts/aliyun/{token}"
    evt.update(path=path, resource="/v1/receipts/aliyun/{token}", pathParameters={"token": token})
    evt["headers"].pop("x-api-key", None)
    return evt


class Output:
    """Bytes written to stdout (the handler log) from here on, per call."""

    def __init__(self) -> None:
        self.start = self.size()

    @staticmethod
    def size() -> int:
        sys.stdout.flush()
        return os.fstat(sys.stdout.fileno()).st_size

    def per_call(self, calls: int) -> float:
        return (self.size() - self.start) / max(calls, 1)


def consume(harness: Harness, queue_url: str) -> Series:
    """The receipts queue fed to the receipts function as Lambda's SQS poller does, one receipt per
    invocation (what the poller finds at a receipt every minute or so)."""
    sqs = boto3.client("sqs", endpoint_url=harness.stack.moto_url, region_name="us-east-1")
    series = Series("consumer")
    output = Output()
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", []):
        evt = sqs_event(*((m["MessageId"], m["Body"]) for m in messages), queue="ReceiptsQueue")
        sample = timed(harness.probe, lambda evt=evt: call(RECEIPTS, evt))  # type: ignore[misc]
        if sample.answer.get("batchItemFailures"):
            raise RuntimeError(f"receipts consumer: {sample.answer}")
        series.samples.append(sample)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    series.log_bytes = output.per_call(len(series.samples))
    return series


def receipts(harness: Harness, *, pushes: int, warmup: int) -> dict[str, Series]:
    """One-number SendBatchSms sends (also the cost model's sends), then one receipt push per
    message to the receipt route (warm, in process), then the receipts queue drained through the
    consumer."""
    op = BY_NAME["aliyun.SendBatchSms"]
    harness.inject("none")
    sends = Series("send")
    answers = []
    output = Output()
    for _ in range(pushes + warmup):
        sample = harness.send(op, 1)
        sends.samples.append(sample)
        answers.append(json.loads(sample.answer["body"]))
    sends.log_bytes = output.per_call(len(answers))
    harness.use(RECEIPTS, harness.stack.receipts_environment())
    route = Series("route")
    output = Output()
    for i, answer in enumerate(answers):
        [result] = answer["results"]
        evt = receipt_event([aliyun_report(result["phone_number"], result["message_id"], answer["request_id"])])
        sample = timed(harness.probe, lambda evt=evt: call(RECEIPTS, evt))  # type: ignore[misc]
        if sample.answer["statusCode"] != 200:
            raise RuntimeError(f"receipt route: {sample.answer}")
        if i >= warmup:
            route.samples.append(sample)
    route.log_bytes = output.per_call(len(answers))
    consumer = consume(harness, harness.stack.receipts_queue_url)
    sends.samples = sends.samples[warmup:]
    log(f"receipt route: p50 {route.wall(50):.2f} ms, p99 {route.wall(99):.2f} ms ({len(route.samples)} pushes)")
    return {"send": sends, "route": route, "consumer": consumer}
