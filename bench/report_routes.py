"""The report's sections on the official-SDK baseline, idempotent sends, the unified route, the
receipt route (bench.report_receipts) and the AWS cost per 1000 SMS, and their rows in the targets table."""

from __future__ import annotations

from bench import cost
from bench.coldstart import SDK_LABEL
from bench.probes import critical_rounds, rounds
from bench.report_receipts import receipt_rows, receipts_section
from bench.results import Results, Row, ms, ops, point, table, verdict
from bench.routes import FAILOVER_FAULT, TEMPLATE

SDK_WARM_TARGET = 1.0
SDK_COLD_TARGET = 1.0
KEYED_ROUNDS_TARGET = (2, 1)
FAILOVER_PROVIDER_ROUNDS = 1


def median_rounds(samples: list[tuple[int, int]]) -> tuple[int, int]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] if ordered else (0, 0)


def keyed_rounds(results: Results, key: bool) -> tuple[int, int]:
    p = point(results, "polyv.send", 1, "both", key)
    return median_rounds([critical_rounds(s.calls) for s in p.samples])


# -- targets ----------------------------------------------------------------------------------------


def ratio_row(label: str, gateway_ms: float, base_ms: float, target: float, why: str, digits: int = 0) -> Row:
    """A target on the ratio of the gateway's time to a baseline's."""
    ratio = gateway_ms / base_ms
    met = ratio <= target
    return (
        label,
        f"{ratio:.2f}x ({ms(gateway_ms, digits)} ms vs {ms(base_ms, digits)} ms)",
        verdict(met),
        "" if met else f"{ms(gateway_ms - target * base_ms, digits)} ms over",
        "" if met else why,
    )


def target_rows(results: Results) -> list[Row]:
    cold = {key: results.cold.variants[key] for key in ("aliyun-batch", "aliyun-sdk")}
    gateway, sdk = (cold[key].median("total") * 1000 for key in ("aliyun-batch", "aliyun-sdk"))
    parts = {step: [ms(v.median(step) * 1000, 0) for v in cold.values()] for step in ("import", "invoke")}
    rows = [
        ratio_row(
            "1b. Cold start ≤ 1.0x the minimal official-SDK handler (AliyunFunction, same SendBatchSms)",
            gateway,
            sdk,
            SDK_COLD_TARGET,
            f"imports {parts['import'][0]} ms vs the SDK handler's {parts['import'][1]} ms; first invocation "
            f"{parts['invoke'][0]} ms vs {parts['invoke'][1]} ms (§1)",
        )
    ]
    if results.sdk:
        g, s = results.sdk["gateway"], results.sdk["sdk"]
        rows.append(
            ratio_row(
                "2b. Warm p50, 1-number send: the gateway no slower than the minimal official-SDK handler",
                g.wall(50),
                s.wall(50),
                SDK_WARM_TARGET,
                f"{g.calls('dynamodb').total()} DynamoDB calls against 1, each with its botocore work (§8)",
                digits=2,
            )
        )
    found = keyed_rounds(results, True)
    met = found[0] <= KEYED_ROUNDS_TARGET[0] and found[1] <= KEYED_ROUNDS_TARGET[1]
    rows.append(
        (
            "3. 1-number send with an Idempotency-Key: ≤ 2 sequential DynamoDB rounds + 1 provider round",
            f"{found[0]} + {found[1]} (without a key {'+'.join(str(n) for n in keyed_rounds(results, False))})",
            verdict(met),
            "" if met else f"{found[0] - KEYED_ROUNDS_TARGET[0]} DynamoDB rounds over",
            "" if met else "see §9",
        )
    )
    rows += unified_rows(results)
    rows += receipt_rows(results)
    return rows


def unified_rows(results: Results) -> list[Row]:
    rows: list[Row] = []
    if results.unified:
        direct, failover = results.unified["direct-injected"].rounds, results.unified["failover-injected"].rounds
        added = failover[1] - direct[1]
        met = added <= FAILOVER_PROVIDER_ROUNDS
        rows.append(
            (
                "6. `/v1/messages`: a failover adds ≤ 1 provider round",
                f"+{added} provider, +{failover[0] - direct[0]} DynamoDB ({direct[0]} + {direct[1]} → "
                f"{failover[0]} + {failover[1]})",
                verdict(met),
                "" if met else f"{added - FAILOVER_PROVIDER_ROUNDS} provider rounds over",
                "" if met else "see §10",
            )
        )
    return rows


# -- sections ---------------------------------------------------------------------------------------


def routes_sections(results: Results) -> list[str]:
    parts = [sdk_section(results), keyed_section(results)]
    if results.unified:
        parts.append(unified_section(results))
    if results.receipts:
        parts += [receipts_section(results), cost_section(results)]
    return parts


def sdk_section(results: Results) -> str:
    cold = results.cold.variants
    cold_ratio = cold["aliyun-batch"].median() / cold["aliyun-sdk"].median()
    rows = []
    for name, label in (("gateway", "AliyunFunction (the gateway)"), ("sdk", "Minimal official-SDK handler")):
        series = results.sdk.get(name)
        if series is None:
            continue
        rows.append(
            (
                label,
                len(series.samples),
                ms(series.wall(50), 2),
                ms(series.wall(90), 2),
                ms(series.wall(99), 2),
                ops(series.calls("dynamodb")),
                ms(series.units()[0], 1),
            )
        )
    ratio = results.sdk["gateway"].wall(50) / results.sdk["sdk"].wall(50) if results.sdk else float("nan")
    return f"""## 8. Beside a minimal official-SDK handler

The handler a developer would write in a few lines (bench/coldstart_child.py, `load_aliyun_sdk`):
Alibaba Cloud's official `alibabacloud_dysmsapi20170525` SDK for the send, boto3 for one quota
counter per number and day taken by an `UpdateItem` (`ADD` with a condition at the limit) in the
quota table; its clients made once, at module level. It has no idempotency, no per-hour or
per-minute windows, no account, IP or guard counters, no message log and no receipt index. Both
handle the same 1-number SendBatchSms request (`events/aliyun-batch-send.json`), in this process,
against the same DynamoDB Local and sandbox, {results.counts["warm"]} calls each in 6 alternating blocks after
{results.counts["warmup"]} untimed calls of each.

{table(["Handler", "Calls", "p50 ms", "p90 ms", "p99 ms", "DynamoDB calls", "WRU per send"], rows)}

- Warm: the gateway's p50 is **{ratio:.2f}x** the SDK handler's (target ≤ {SDK_WARM_TARGET:.1f}x:
  {verdict(ratio <= SDK_WARM_TARGET)}). The difference is what the gateway does beyond one counter:
  the number's three windows, the account, IP and guard counters, the message log record and, for
  Aliyun, the receipt index (§3), each call with botocore's serialising, signing and parsing.
- Cold: AliyunFunction's cold start is **{cold_ratio:.2f}x** this handler's (§1, row
  "{SDK_LABEL}"; target ≤ {SDK_COLD_TARGET:.1f}x: {verdict(cold_ratio <= SDK_COLD_TARGET)}). The SDK handler imports
  boto3 too, so the comparison is like for like on the AWS side."""


def keyed_section(results: Results) -> str:
    rows = []
    for key in (False, True):
        base, injected = point(results, "polyv.send", 1, "none", key), point(results, "polyv.send", 1, "both", key)
        critical = keyed_rounds(results, key)
        alone = median_rounds([(rounds(s.of("dynamodb")), 0) for s in injected.samples])[0]
        rows.append(
            (
                "with an Idempotency-Key" if key else "without a key",
                ops(base.dynamodb_ops()),
                f"{critical[0]} + {critical[1]}",
                alone,
                ms(base.wall_ms, 1),
            )
        )
    header = ["polyv.send, 1 number", "DynamoDB calls", "Rounds the send waits for", "DynamoDB alone", "Median ms"]
    return f"""## 9. An idempotent send in two rounds

A 1-number Polyv send, without and with an `Idempotency-Key`, counted as in §3 (calls from the
hooks; rounds in the run with {results.counts["injected"]} sends at 20 ms per call). "Rounds the send
waits for" takes DynamoDB and provider calls together: each round of the send (a call is one round
after the latest-round call that ended before it started) is a provider round if a provider call
is in it, a DynamoDB round otherwise; "DynamoDB alone" is §3's count over the DynamoDB calls only.

{table(header, rows)}

With a key, the key's claim rides in the `TransactWriteItems` that takes the number's quota (round
1, beside the account, IP and guard updates); the number's item then goes through a transaction,
which returns no counts, so what is left of its windows is read back (`BatchGetItem`) while the
provider sends (round 2); the key's completion and the message log record go in one more
transaction (round 3). The read-back makes a third round among the DynamoDB calls alone, but not
one the send waits for beyond the provider call, as long as the provider answers slower than
DynamoDB."""


def unified_section(results: Results) -> str:
    u = results.unified
    rows = []
    for name, label in (("direct", "no failover"), ("failover", "failover (first provider 503)")):
        warm, injected = u[name], u[f"{name}-injected"]
        rows.append(
            (
                label,
                len(warm.samples),
                ms(warm.wall(50), 2),
                ms(warm.wall(99), 2),
                ops(warm.calls("dynamodb")),
                warm.calls("provider").total(),
                "{} + {}".format(*injected.rounds),
                ms(injected.wall(50), 0),
            )
        )
    header = ["`/v1/messages`, 1 number", "Calls", "p50 ms", "p99 ms", "DynamoDB calls", "Provider calls"]
    header += ["Rounds (DynamoDB + provider)", "Median ms at 20 ms per call"]
    return f"""## 10. The unified route, `/v1/messages`

RouterFunction's handler in process, a template (`{TEMPLATE}`) whose routing tries Aliyun
(SendBatchSms) and then Ronglian, one number per send, every quota window on (out of reach). The
failover: the sandbox's `{FAILOVER_FAULT.kind}` fault answers {FAILOVER_FAULT.status} to Aliyun before anything is
sent, so the route records the failure in the provider's circuit and sends through Ronglian; the circuit's
threshold is set out of reach so that Aliyun is tried on every send. {results.counts["warm"]} sends of each in 6
alternating blocks; rounds as in §9, from {results.counts["injected"]} sends of each with 20 ms on every call.
The route's number transactions check the tenant's opt-out list (a `ConditionCheck` on the
configuration table), so even one number goes through a transaction and is read back.

{table(header, rows)}"""


def cost_section(results: Results) -> str:
    lines = cost.lines(results.receipts)
    total = sum(line.usd for line in lines)
    rows = [(line.item, line.quantity, f"${line.usd:.4f}") for line in lines]
    rows.append(("**Total AWS per 1000 SMS**", "", f"**${total:.4f}**"))
    fixed = cost.fixed_per_day()
    provider = cost.provider_usd()
    duration = next(line.usd for line in lines if line.item.startswith("Lambda duration"))
    fixed_rows = [(line.item, line.quantity, f"${line.usd:.4f}") for line in fixed]
    return f"""## 12. AWS cost per 1000 SMS

A day of {cost.MESSAGES} messages, each a 1-number send through the API (AliyunFunction, SendBatchSms),
its receipt pushed to the receipt route and consumed from the receipts queue alone, priced from
the calls counted in §11's run: Lambda requests and GB-s (each invocation's measured duration
rounded up to the millisecond, times MemorySize from template.yaml), DynamoDB on-demand request
units from each counted call and the size of what it writes (bench/capacity.py: 1 WRU per KB, 2 per
KB of each item in a transaction, 0.5 RRU per eventually consistent 4 KB read, 1 strongly
consistent), SQS requests (the route's `SendMessage`, the poller's `ReceiveMessage` and
`DeleteMessage`), API Gateway REST requests, Secrets Manager reads with the cache
(SecretMaxAgeSeconds), and CloudWatch Logs ingestion (the handlers' own output measured here, plus
Lambda's request lines and the API's access log line, estimated). Prices: on-demand, us-east-1, no
free tier, read {cost.PRICES_READ} from AWS's public pricing pages: Lambda arm64
${cost.LAMBDA_GB_SECOND_ARM:.10f} per GB-s
and $0.20 per million requests; DynamoDB $0.625 per million WRU and $0.125 per million RRU; SQS
$0.40 per million requests; API Gateway REST $3.50 per million; Secrets Manager $0.05 per 10,000
calls and ${cost.SECRET_MONTH:.2f} per secret a month; CloudWatch Logs $0.50 per GB ingested.

{table(["Item", "Quantity for 1000 SMS", "USD"], rows, "llr")}

Fixed, whatever is sent (per day, not in the total):

{table(["Item", "Quantity", "USD per day"], fixed_rows, "llr")}

- Beside the provider: Aliyun charges about ¥{cost.ALIYUN_SMS_CNY} per mainland SMS (list price, indicative:
  ¥0.035-0.05 by package and volume), about ${provider:.2f} for 1000 at ¥{cost.CNY_PER_USD} per dollar: AWS adds
  {total / provider:.1%} to it.
- The durations are this machine's; Lambda at 512 MB has about 0.3 of a vCPU, so the CPU-bound part
  of each invocation takes longer there: at three times the measured durations, Lambda duration
  would cost ${3 * duration:.4f}. Not counted: cold starts (a few per day
  at this rate; §1), custom metrics and alarms (CloudWatch, per metric and alarm a month), X-Ray
  traces, DynamoDB storage (a month of message log is far below the free 25 GB), the queues'
  idle long polling by Lambda's pollers, and data transfer."""
