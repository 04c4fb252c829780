"""Figures measured with the handlers called in this process (as tests/support.py does) against
DynamoDB Local, moto and the sandbox: warm latency, calls per request, injected latency and SQS
batches."""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.phases import Phases, breakdown, own_times
from bench.probes import Probe, Sample, rounds, timed
from bench.stack import Stack, apply_environment
from bench.workloads import BY_NAME, OPERATIONS, Operation, Phones, send_event
from local.sandbox import Fault
from smsgw import runtime
from tests.support import call, sqs_event

INJECTED = 0.020
"""Latency added to every DynamoDB and provider call (figures 4 and 7)."""
SQS_PROVIDER_LATENCY = 0.100
SIZES = (1, 10, 100, 200)
MODES = ("none", "dynamodb", "provider", "both")


def log(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Harness:
    """One provider function at a time, configured for the stack, with the probe installed."""

    def __init__(self, stack: Stack, probe: Probe) -> None:
        self.stack = stack
        self.probe = probe
        self.phones = Phones(start=uuid.uuid4().int % 10**8)
        self.provider: str | None = None
        self._applied: set[str] = set()

    def use(self, provider: str, environment: dict[str, str] | None = None) -> None:
        """A provider function's configuration, or another function's (`environment`, under a
        name of its own in `provider`)."""
        if provider != self.provider:
            values = environment or self.stack.environment(provider)
            for name in self._applied - values.keys():
                os.environ.pop(name, None)
            apply_environment(values)
            self._applied = set(values)
            runtime.reset()
            # The dropped clients and thread pools go now, not at some later collection that
            # would land inside a timed call.
            gc.collect()
            self.provider = provider

    def inject(self, mode: str) -> None:
        sandbox = self.stack.sandbox
        sandbox.clear_faults()
        self.probe.dynamodb_delay = INJECTED if mode in ("dynamodb", "both") else 0.0
        if mode in ("provider", "both"):
            sandbox.add_fault(Fault(kind="slow", delay=INJECTED))

    def send(self, op: Operation, count: int, *, key: str | None = None) -> Sample:
        self.use(op.provider)
        evt = send_event(op, self.phones.take(count, mainland=op.mainland), key=key)
        sample = timed(self.probe, lambda: call(op.function, evt))
        check_send(op, count, sample.answer)
        return sample


def check_send(op: Operation, count: int, answer: dict[str, Any]) -> None:
    body = json.loads(answer["body"])
    accepted = body.get("summary", {}).get("accepted")
    if answer["statusCode"] != 200 or accepted != count:
        raise RuntimeError(f"{op.name} x{count}: {answer['statusCode']} {json.dumps(body)[:500]}")


# -- 2. warm latency -------------------------------------------------------------------------------


@dataclass
class WarmResult:
    operation: str
    samples: list[Sample]
    breakdown: list[tuple[str, float]] = field(default_factory=list)
    """Where the overhead goes (mean ms per call), from a separate pass with timers in place."""
    blocks: list[float] = field(default_factory=list)
    """The overhead p50 of each block of calls (ms): the spread within the run."""

    def stat(self, fn: Callable[[Sample], float], q: float) -> float:
        return percentile([fn(s) for s in self.samples], q) * 1000

    @property
    def dynamodb_calls(self) -> float:
        return statistics.median(len(s.of("dynamodb")) for s in self.samples)

    @property
    def provider_calls(self) -> float:
        return statistics.median(len(s.of("provider")) for s in self.samples)

    def client_time_ms(self, kind: str) -> float:
        """The SDK's own work per call (serialising, signing, parsing), median."""
        return statistics.median(c.client_time for s in self.samples for c in s.of(kind)) * 1000


WARM_OPERATIONS = ("polyv.send", "aliyun.SendInterSms", "ronglian.TemplateSMS")


WARM_BLOCKS = 6


def warm_latency(harness: Harness, *, calls: int, warmup: int, phase_calls: int) -> list[WarmResult]:
    """Per operation: `warmup` untimed calls, `calls` timed ones (whose overhead p50 is also taken
    over WARM_BLOCKS consecutive blocks, for the spread within the run), then the timers' pass."""
    harness.inject("none")
    results = []
    per_block = -(-calls // WARM_BLOCKS)
    for name in WARM_OPERATIONS:
        op = BY_NAME[name]
        result = WarmResult(name, [])
        for _ in range(warmup):
            harness.send(op, 1)
        while len(result.samples) < calls:
            block = [harness.send(op, 1) for _ in range(min(per_block, calls - len(result.samples)))]
            result.samples.extend(block)
            result.blocks.append(percentile([s.overhead for s in block], 50) * 1000)
        with Phases().installed() as phases:
            phases.take()
            per_sample = []
            for _ in range(phase_calls):
                sample = harness.send(op, 1)
                per_sample.append(own_times(sample, phases.take()))
        result.breakdown = breakdown(per_sample)
        log(
            f"warm {name}: p50 {result.stat(lambda s: s.wall, 50):.2f} ms, "
            f"overhead p50 {result.stat(lambda s: s.overhead, 50):.2f} ms"
        )
        results.append(result)
    return results


# -- 3, 4, 7. batch sizes, calls per request, injected latency ---------------------------------------


@dataclass
class SweepPoint:
    operation: str
    size: int
    mode: str
    key: bool = False
    samples: list[Sample] = field(default_factory=list)
    provider_calls: list[int] = field(default_factory=list)
    """Calls the sandbox recorded, per sample."""

    @property
    def wall_ms(self) -> float:
        return statistics.median(s.wall for s in self.samples) * 1000

    def dynamodb_ops(self) -> Counter[str]:
        """DynamoDB calls by operation in one request (they are the same in every sample)."""
        counts = [Counter(c.name for c in s.of("dynamodb")) for s in self.samples]
        if any(c != counts[0] for c in counts):
            raise RuntimeError(f"{self.operation} x{self.size}: DynamoDB calls differ between samples: {counts}")
        return counts[0]

    @property
    def dynamodb_rounds(self) -> int:
        return int(statistics.median(rounds(s.of("dynamodb")) for s in self.samples))

    @property
    def cpu_ms(self) -> float:
        return statistics.mean(s.cpu for s in self.samples) * 1000

    @property
    def engine_cpu_ms(self) -> float:
        return statistics.mean(s.engine_cpu for s in self.samples) * 1000

    @property
    def sandbox_cpu_ms(self) -> float:
        return statistics.mean(s.sandbox_cpu for s in self.samples) * 1000

    @property
    def mean_wall_ms(self) -> float:
        return statistics.mean(s.wall for s in self.samples) * 1000

    @property
    def provider_rounds(self) -> int:
        return int(statistics.median(rounds(s.of("provider")) for s in self.samples))


def sweep(harness: Harness, *, reps: int, injected_reps: int) -> dict[tuple[str, int, str, bool], SweepPoint]:
    """Every operation at every size, without and with 20 ms on every call; at 100 numbers also
    with the injection on DynamoDB only and on the provider only (to tell their rounds apart),
    and Polyv with an Idempotency-Key. Repetitions are interleaved across modes."""
    points: dict[tuple[str, int, str, bool], SweepPoint] = {}
    sandbox = harness.stack.sandbox
    for op in OPERATIONS:
        harness.use(op.provider)
        for size in SIZES:
            plan = [("none", False, reps), ("both", False, injected_reps)]
            if size == 100:
                plan += [("dynamodb", False, injected_reps), ("provider", False, injected_reps)]
            if op.name == "polyv.send" and size in (1, 100):
                plan += [("none", True, reps), ("both", True, injected_reps)]
            harness.inject("none")
            harness.send(op, size)  # warm-up at this size
            for rep in range(max(n for _, _, n in plan)):
                for mode, key, count in plan:
                    if rep >= count:
                        continue
                    point = points.setdefault((op.name, size, mode, key), SweepPoint(op.name, size, mode, key))
                    sandbox.reset()  # forgets faults too: inject after it
                    harness.inject(mode)
                    sample = harness.send(op, size, key=f"bench-{uuid.uuid4().hex}" if key else None)
                    point.samples.append(sample)
                    point.provider_calls.append(len(sandbox.calls_for(op.name)))
            harness.inject("none")
            done = points[(op.name, size, "none", False)], points[(op.name, size, "both", False)]
            log(f"{op.name} x{size}: {done[0].wall_ms:.1f} ms, with 20 ms injected {done[1].wall_ms:.1f} ms")
    return points


# -- 5. SQS batches --------------------------------------------------------------------------------


@dataclass
class QueuePoint:
    records: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall_ms(self) -> float:
        return statistics.median(s.wall for s in self.samples) * 1000

    @property
    def dynamodb_calls(self) -> float:
        return statistics.median(len(s.of("dynamodb")) for s in self.samples)

    @property
    def dynamodb_rounds(self) -> float:
        return statistics.median(rounds(s.of("dynamodb")) for s in self.samples)

    @property
    def cpu_ms(self) -> float:
        return statistics.mean(s.cpu for s in self.samples) * 1000

    @property
    def engine_cpu_ms(self) -> float:
        return statistics.mean(s.engine_cpu for s in self.samples) * 1000

    @property
    def sandbox_cpu_ms(self) -> float:
        return statistics.mean(s.sandbox_cpu for s in self.samples) * 1000

    @property
    def mean_wall_ms(self) -> float:
        return statistics.mean(s.wall for s in self.samples) * 1000


def queue_batches(harness: Harness, *, reps: int) -> dict[int, QueuePoint]:
    op = BY_NAME["polyv.send"]
    harness.use(op.provider)
    harness.inject("none")
    sandbox = harness.stack.sandbox
    points = {n: QueuePoint(n) for n in (1, 10)}

    def batch(size: int) -> Sample:
        records = []
        for _ in range(size):
            body = op.body(harness.phones.take(1)) | {"idempotencyKey": f"bench-{uuid.uuid4().hex}", "tenant": "shop-1"}
            records.append((str(uuid.uuid4()), body))
        evt = sqs_event(*records, queue="PolyvQueue")
        sample = timed(harness.probe, lambda: call(op.function, evt))
        if sample.answer.get("batchItemFailures"):
            raise RuntimeError(f"SQS batch of {size}: {sample.answer}")
        return sample

    batch(1)
    batch(10)  # warm-up: the record pool's threads, the provider client
    sandbox.add_fault(Fault(kind="slow", delay=SQS_PROVIDER_LATENCY))
    try:
        for _ in range(reps):
            for size, point in points.items():
                sandbox.reset()
                sandbox.add_fault(Fault(kind="slow", delay=SQS_PROVIDER_LATENCY))
                point.samples.append(batch(size))
                if len(sandbox.calls) != size:
                    raise RuntimeError(f"SQS batch of {size}: {len(sandbox.calls)} provider calls")
    finally:
        sandbox.clear_faults()
    log(f"SQS: 1 record {points[1].wall_ms:.1f} ms, 10 records {points[10].wall_ms:.1f} ms")
    return points
