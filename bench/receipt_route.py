"""The receipt route on a whole local stack (`local.stack.LocalStack`, as `make run` starts it):
Aliyun's pushes over HTTP, through the API Gateway emulator, to the receipts function's workers,
timed by the client from the request leaving to the answer read.

The stack is set up for delivery tracking (`local.running.running_for_delivery`, the end-to-end
tests' delivery stack). Ten numbers are sent through `/v1/aliyun/batch-messages`, delivered by the
sandbox and their receipts pushed and settled; then those SmsReport objects are pushed again, one
per push, on one kept-alive connection: `warmup` untimed pushes, then `rounds` rounds of `pushes`
timed ones. Every answer must be Aliyun's `{"code": 0, "msg": "接收成功"}`."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.inprocess import log, percentile
from local.receipt_pushes import aliyun_body, check_aliyun_answer, delivered_aliyun_reports, push_aliyun
from local.running import DELIVERY_CONCURRENCY, DELIVERY_KEYS, running_for_delivery

NUMBERS = 10
"""Numbers sent and delivered first: the reports pushed again, in turn."""
RECEIPTS_QUEUE = "ReceiptsQueue"


@dataclass
class StackReceipts:
    """Client-side round trips of pushes to the receipt route on a local stack."""

    rounds: list[list[float]] = field(default_factory=list)
    """Per round, each push's round trip in seconds, in order."""
    warmup: int = 0
    started_in: float = 0.0
    """Seconds the stack took to start."""
    workers: int = DELIVERY_CONCURRENCY
    """Workers (execution environments) of the receipts function."""
    consumed: int = 0
    """Receipts the queue's consumer was given meanwhile (on the same function's workers)."""

    def p(self, index: int, q: float) -> float:
        """Round `index`'s percentile `q`, in ms."""
        return percentile(self.rounds[index], q) * 1000

    def median_p99(self) -> float:
        """The median of the rounds' p99, in ms: the figure the target is held to."""
        return statistics.median(self.p(i, 99) for i in range(len(self.rounds)))

    @property
    def pushes(self) -> int:
        """Timed pushes per round."""
        return len(self.rounds[0]) if self.rounds else 0


def on_local_stack(state_dir: Path, *, pushes: int, warmup: int, rounds: int) -> StackReceipts:
    """Start the stack in `state_dir` (its logs stay there), push, stop it."""
    result = StackReceipts(warmup=warmup)
    with running_for_delivery(state_dir) as stack:
        result.started_in = stack.started_in or 0.0
        log(f"local stack up in {result.started_in:.0f} s: API Gateway emulator {stack.api_url}")
        key = next(iter(DELIVERY_KEYS.values()))
        _, reports = delivered_aliyun_reports(stack, key, NUMBERS)
        bodies = [aliyun_body([report]) for report in reports]
        url = stack.receipt_urls()["aliyun"]
        before = stack.poller_stats()[RECEIPTS_QUEUE].records
        with requests.Session() as http:
            for number in range(warmup):
                check_aliyun_answer(push_aliyun(http, url, bodies[number % len(bodies)]))
            for _ in range(rounds):
                result.rounds.append(timed_pushes(http, url, bodies, pushes))
        stack.drain(timeout=120)
        result.consumed = stack.poller_stats()[RECEIPTS_QUEUE].records - before
    for index in range(rounds):
        log(
            f"receipt route on the local stack, round {index + 1}: p50 {result.p(index, 50):.1f} ms, p99 "
            f"{result.p(index, 99):.1f} ms ({pushes} pushes)"
        )
    return result


def timed_pushes(http: requests.Session, url: str, bodies: list[bytes], pushes: int) -> list[float]:
    """`pushes` pushes, the reports in turn, each timed from before the request is built to the
    answer's body read (requests reads it before returning), its answer checked after the clock."""
    times = []
    for number in range(pushes):
        began = time.perf_counter()
        answer = push_aliyun(http, url, bodies[number % len(bodies)])
        times.append(time.perf_counter() - began)
        check_aliyun_answer(answer)
    return times
