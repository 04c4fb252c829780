"""The report's table of targets: each measured beside its baseline, met or how far."""

from __future__ import annotations

from bench.report_routes import target_rows
from bench.results import (
    COLD_TARGET,
    CONCURRENCY,
    DYNAMODB_ROUNDS_TARGET,
    OVERHEAD_TARGET_MS,
    PROVIDER_ROUNDS_TARGET,
    QUEUE_TARGET,
    Results,
    ms,
    point,
    table,
    verdict,
)
from bench.workloads import OPERATIONS


def summary(results: Results) -> str:
    rows = []
    cold = results.cold
    boto3 = cold.variants["boto3"].median()
    worst = max(cold.variants[k].median() for k in ("polyv", "aliyun", "ronglian"))
    ratio = worst / boto3
    polyv = cold.variants["polyv"]
    imports = dict(cold.imports)
    top = [name for name, _ in cold.imports[:5]]
    clients = next((t for label, _, t in cold.first_invocation if label.startswith("boto3 client")), 0.0)
    rows.append(
        (
            "1. Cold start of a provider function ≤ 1.5x bare `import boto3`",
            f"{ratio:.2f}x ({ms(worst * 1000, 0)} ms vs {ms(boto3 * 1000, 0)} ms)",
            verdict(ratio <= COLD_TARGET),
            "" if ratio <= COLD_TARGET else f"{ms((worst - COLD_TARGET * boto3) * 1000, 0)} ms over",
            ""
            if ratio <= COLD_TARGET
            else f"imports {ms(polyv.median('import') * 1000, 0)} ms (most: {', '.join(top)}; "
            f"smsgw's own modules {ms(imports.get('smsgw', 0.0), 0)} ms), first request "
            f"{ms(polyv.median('invoke') * 1000, 0)} ms ({clients / cold.profiled_invocation_ms:.0%} of it "
            "creating the two DynamoDB clients and the Secrets Manager client)",
        )
    )
    overheads = {w.operation: w.stat(lambda s: s.overhead, 50) for w in results.warm}
    worst_op = max(overheads, key=lambda k: overheads[k])
    met = overheads[worst_op] <= OVERHEAD_TARGET_MS
    parts = sorted(next(w for w in results.warm if w.operation == worst_op).breakdown, key=lambda r: -r[1])[:3]
    rows.append(
        (
            "2. Warm in-process overhead beyond I/O, p50 ≤ 3 ms",
            ", ".join(f"{k} {v:.2f} ms" for k, v in overheads.items()),
            verdict(met),
            "" if met else f"{overheads[worst_op] - OVERHEAD_TARGET_MS:.2f} ms over ({worst_op})",
            "" if met else "; ".join(f"{label.split(' (')[0]} {value:.2f} ms" for label, value in parts),
        )
    )
    dyn = {op.name: point(results, op.name, 100, "both").dynamodb_rounds for op in OPERATIONS}
    prov = {op.name: point(results, op.name, 100, "both").provider_rounds for op in OPERATIONS}
    met_dyn = all(v <= DYNAMODB_ROUNDS_TARGET for v in dyn.values())
    met_prov = all(v <= PROVIDER_ROUNDS_TARGET for v in prov.values())
    distance, reasons = [], []
    if not met_dyn:
        base = point(results, "polyv.send", 100)
        per_call = base.cpu_ms / sum(base.dynamodb_ops().values())
        distance.append(f"{max(dyn.values()) - DYNAMODB_ROUNDS_TARGET} DynamoDB rounds over")
        reasons.append(
            "the quota transaction, the read-back and the log write in turn; "
            f"the send is CPU-bound besides ({ms(per_call, 2)} ms of gateway CPU per DynamoDB call)"
        )
    if not met_prov:
        worst_prov = max(prov, key=lambda k: prov[k])
        distance.append(f"{prov[worst_prov] - PROVIDER_ROUNDS_TARGET} provider rounds over ({worst_prov})")
        reasons.append(
            f"{worst_prov}: one call per number (the API's own limit), {CONCURRENCY} at a time "
            "(`ProviderMaxConcurrency`), and each call's CPU (signing, requests, the in-process sandbox) "
            "on one interpreter"
        )
    rows.append(
        (
            "4. 100 numbers, 20 ms per call: ≤ 3 DynamoDB rounds, 1 provider round",
            "DynamoDB "
            + "/".join(str(v) for v in dyn.values())
            + ", provider "
            + "/".join(str(v) for v in prov.values())
            + " (order of §4)",
            verdict(met_dyn and met_prov),
            "; ".join(distance),
            "; ".join(reasons),
        )
    )
    one, ten = results.queue[1], results.queue[10]
    ratio = ten.wall_ms / one.wall_ms
    met = ratio <= QUEUE_TARGET
    rows.append(
        (
            "5. SQS batch of 10 ≤ 1.5x one record (100 ms provider)",
            f"{ratio:.2f}x ({ms(ten.wall_ms, 0)} ms vs {ms(one.wall_ms, 0)} ms); "
            f"DynamoDB {ten.dynamodb_calls:.0f} calls "
            f"per batch, {ten.dynamodb_calls / 10:.1f} per record ({one.dynamodb_calls:.0f} alone)",
            verdict(met),
            "" if met else f"{ms(ten.wall_ms - QUEUE_TARGET * one.wall_ms, 0)} ms over",
            ""
            if met
            else f"{ms(ten.cpu_ms, 0)} ms of the gateway's CPU for 10 records in one interpreter "
            f"({ms(ten.cpu_ms / 10, 1)} ms each): the records run in parallel threads, their CPU one at a time",
        )
    )
    rows += target_rows(results)
    rows.sort(key=lambda row: row[0].split(".")[0])  # 1, 1b, 2, 2b, 3, ...
    header = ["Target", "Measured", "Verdict", "Distance", "Where the time goes"]
    return "## Targets\n\n" + table(header, rows, "llcll")
