"""The report's sections on SQS batches and sizes."""

from __future__ import annotations

from collections import Counter

from bench.inprocess import SQS_PROVIDER_LATENCY, QueuePoint
from bench.results import QUEUE_TARGET, Results, busy, ms, size, table, verdict

QUEUE_HEADER = [
    "Records",
    "Median ms",
    "Min ms",
    "Max ms",
    "x one record",
    "DynamoDB calls",
    "Per record",
    "By operation",
    "DynamoDB rounds",
    "Gateway CPU ms",
    "Sandbox CPU ms",
    "DynamoDB Local CPU ms",
    "Cores busy",
]


def by_operation(q: QueuePoint) -> str:
    """The median batch's DynamoDB calls by operation."""
    counts = sorted((Counter(c.name for c in s.of("dynamodb")) for s in q.samples), key=lambda c: c.total())
    middle = counts[len(counts) // 2]
    return ", ".join(f"{k} {v}" for k, v in sorted(middle.items()))


def queue_section(results: Results) -> str:
    rows = []
    for n, q in results.queue.items():
        walls = [s.wall * 1000 for s in q.samples]
        rows.append(
            (
                n,
                ms(q.wall_ms, 0),
                ms(min(walls), 0),
                ms(max(walls), 0),
                f"{q.wall_ms / results.queue[1].wall_ms:.2f}x",
                f"{q.dynamodb_calls:.0f}",
                f"{q.dynamodb_calls / n:.1f}",
                by_operation(q),
                f"{q.dynamodb_rounds:.0f}",
                ms(q.cpu_ms, 0),
                ms(q.sandbox_cpu_ms, 0),
                ms(q.engine_cpu_ms, 0),
                busy(q),
            )
        )
    ratio = results.queue[10].wall_ms / results.queue[1].wall_ms
    one, ten = results.queue[1], results.queue[10]
    budget = (QUEUE_TARGET * one.wall_ms - SQS_PROVIDER_LATENCY * 1000) / 10
    wait = SQS_PROVIDER_LATENCY * 1000
    why = (
        f"""
  The records run together (`smsgw.queue._POOL`, 10 threads), so their {wait:.0f} ms provider
  waits overlap. What does not overlap is the gateway's own CPU: {ms(ten.cpu_ms, 0)} ms for a batch of 10
  ({ms(ten.cpu_ms / 10, 1)} ms per record; {ms(one.cpu_ms, 1)} ms for a lone record), in one interpreter that
  runs Python on one core at a time: about what the batch takes beyond the provider's {wait:.0f} ms
  ({ms(ten.wall_ms - wait, 0)} ms). A batch of 10 is {ten.dynamodb_calls:.0f} DynamoDB calls
  ({by_operation(ten)}), {ten.dynamodb_calls / 10:.1f}
  per record against {one.dynamodb_calls:.0f} for a lone record, each with its botocore work, plus Powertools'
  batch processing, validation and logging. The sequential
  DynamoDB rounds go from
  {one.dynamodb_rounds:.0f} to {ten.dynamodb_rounds:.0f} as the records' calls wait for the interpreter. The target
  would leave {ms(budget, 1)} ms of CPU per record here."""
        if ratio > QUEUE_TARGET
        else ""
    )
    return f"""## 5. SQS batch of 10 records, provider answering in {SQS_PROVIDER_LATENCY * 1000:.0f} ms

The PolyvFunction handler called in process with batches shaped like `events/polyv-queue.json`
(`tests.support.sqs_event`): one number per record, distinct message ids, idempotency keys and
numbers, the sandbox's `slow` fault (`delay={SQS_PROVIDER_LATENCY}`) on every provider call. Median of
{results.counts["queue"]} runs each, interleaved, after a warm-up batch of each size; every record was acknowledged
(no `batchItemFailures`).

{table(QUEUE_HEADER, rows)}

- Target (batch of 10 ≤ {QUEUE_TARGET}x one record): {verdict(ratio <= QUEUE_TARGET)} ({ratio:.2f}x).{why}
- DynamoDB work per record: {ten.dynamodb_calls / 10:.1f} calls in a batch of 10, {one.dynamodb_calls:.0f} alone.
  Work done for the whole batch at once (one `BatchGetItem` for the message log lookups, the quota takes in
  one transaction, the idempotency and log writes batched) brings the batch's calls down to a few,
  and so its botocore CPU, which is what the batch waits for here."""


def sizes_section(results: Results) -> str:
    rows = [(s.name, s.files, size(s.unzipped), size(s.zipped)) for s in results.artifacts]
    layer = next(s for s in results.artifacts if s.name == "SharedLayer")
    entry_rows = [
        (f"`{s.name}`", size(s.unzipped), f"{s.unzipped / layer.unzipped:.0%}", s.required_by)
        for s in results.layer_entries
    ]
    rebuilt = "built by this run" if results.rebuilt else "up to date, reused"
    return f"""## 6. Sizes

What `sam build` (no container) produces in `.aws-sam/build` ({rebuilt}; arm64 as the template
says), unzipped (bytes on disk) and zipped (deflate, as `sam deploy` uploads it). Lambda allows
250 MB unzipped for a function and its layers together.

{table(["Artifact", "Files", "Unzipped", "Zipped"], rows)}

The layer's largest entries:

{table(["Entry", "Unzipped", "Share of the layer", "Brought in by"], entry_rows, "lrrl")}{botocore_note(results)}"""


def botocore_note(results: Results) -> str:
    entry = next((e for e in results.layer_entries if e.name == "botocore"), None)
    layer = next(s for s in results.artifacts if s.name == "SharedLayer")
    if entry is None:
        return ""
    return f"""

`botocore` is {entry.unzipped / layer.unzipped:.0%} of the layer, brought in by {entry.required_by} (the `tracer`
extra of aws-lambda-powertools needs aws-xray-sdk), although the Lambda runtime ships boto3 and
botocore: the layer comes first on `sys.path` (`/opt/python`), so its botocore shadows the
runtime's. The layer therefore pins boto3 beside it (`layers/shared/requirements.txt`), so that the
two always match, and ships both compiled (§1)."""
