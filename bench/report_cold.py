"""The report's cold-start section."""

from __future__ import annotations

import statistics

from bench.inprocess import percentile
from bench.results import COLD_TARGET, REQUIRED_BEYOND_BOTO3, Results, ms, table, verdict


def cold_section(results: Results) -> str:
    cold = results.cold
    boto3 = cold.variants["boto3"].median()
    rows = []
    for variant in cold.variants.values():
        totals = [t * 1000 for t in variant.values("total")]
        parts = (
            (
                ms(variant.median("startup") * 1000),
                ms(variant.median("import") * 1000),
                ms(variant.median("invoke") * 1000),
            )
            if variant.handler
            else ("", "", "")
        )
        rows.append(
            (
                variant.label,
                ms(statistics.median(totals)),
                ms(min(totals)),
                ms(percentile(totals, 90)),
                f"{variant.median() / boto3:.2f}x",
                *parts,
            )
        )
    v = cold.variants
    tracer = (v["polyv-traced"].median() - v["polyv"].median()) * 1000
    bytecode = (v["polyv-as-built"].median() - v["polyv"].median()) * 1000
    sdk = v["aliyun-batch"].median() / v["aliyun-sdk"].median()
    imports_total = sum(t for _, t in cold.imports)
    imports = dict(cold.imports)
    xray = ms(imports.get("aws_xray_sdk", 0.0), 0)
    own_total = ms(imports.get("smsgw", 0.0), 0)
    own = ", ".join(f"`{name}` {ms(t, 1)} ms" for name, t in cold.own_modules[:5])
    import_rows = [(name, ms(t), f"{t / imports_total:.0%}") for name, t in cold.imports[:12]]
    rest = sum(t for _, t in cold.imports[12:])
    import_rows.append((f"{len(cold.imports) - 12} other packages", ms(rest), f"{rest / imports_total:.0%}"))
    invocation_rows = [
        (label, calls, ms(t), f"{t / cold.profiled_invocation_ms:.0%}") for label, calls, t in cold.first_invocation
    ]
    worst = max(v[k].median() for k in ("polyv", "aliyun", "ronglian"))
    met = worst / boto3 <= COLD_TARGET
    allowance = (COLD_TARGET - 1) * boto3 * 1000
    required = sum(imports.get(name, 0.0) for name in REQUIRED_BEYOND_BOTO3)
    why = (
        ""
        if met
        else f"""
- Why it stays out of reach: the target leaves {ms(allowance, 0)} ms beyond `import boto3` for
  everything else. The libraries the gateway is built on besides boto3 (Powertools, pydantic,
  requests, the X-Ray SDK, and what they bring: {", ".join(f"`{n}`" for n in REQUIRED_BEYOND_BOTO3)})
  take {ms(required, 0)} ms of import self time on their own (in the profiled run below), before
  the standard-library modules they load
  (asyncio through Powertools' event handler package, `http.cookiejar` through requests, counted
  with the standard library), the gateway's own modules ({own_total} ms) and the first request
  ({ms(v["polyv"].median("invoke") * 1000, 0)} ms: SDK clients, Powertools' first route, the secret)."""
    )
    return f"""## 1. Cold start

A fresh interpreter per run (`subprocess`) that imports `functions/<name>/app.py` and serves its
first request (the `events/` file named) against the stack, timed from just before the process is
spawned to the moment its answer is back; the bare commands are timed to their exit. Median of
{cold.runs} runs per row, the rows' runs interleaved, after one untimed run of each. Nothing writes
bytecode (`PYTHONDONTWRITEBYTECODE=1`, as on Lambda's read-only file system); the functions see their
folder and then the layer first on `sys.path`, like Lambda. The layer is the set of distributions
`sam build` put in `.aws-sam/build/SharedLayer` (built for arm64) copied from this machine's
virtualenv, botocore's service models cut down to the ones the functions use
(`layers/shared/slim_botocore.py`), and compiled (`compileall --invalidation-mode unchecked-hash`),
as `layers/shared/Makefile` ships it, for every row but the last; the last has it without bytecode,
as SAM's default Python build would ship it. The tracer row has `POWERTOOLS_TRACE_DISABLED=false`,
`AWS_XRAY_CONTEXT_MISSING=LOG_ERROR`, a sampled `_X_AMZN_TRACE_ID` and a UDP sink as the X-Ray daemon
(it received {cold.xray_datagrams} segment datagrams from the timed runs, so the tracer did trace); every other
row has the tracer disabled, as the local stack runs it. Startup is spawn to the first line of the
child script, import is `import app`, first invocation is the handler's first call.

{table(["Run", "Median ms", "Min ms", "p90 ms", "x import boto3", "Startup", "Import", "First invocation"], rows)}

- Target (≤ {COLD_TARGET}x bare `import boto3`): {verdict(met)}. The slowest provider function needs
  {worst / boto3:.2f}x ({ms(worst * 1000, 0)} ms against {ms(boto3 * 1000, 0)} ms); the target would allow
  {ms(COLD_TARGET * boto3 * 1000, 0)} ms.{why}
- The tracer's cold-start cost (on - off, PolyvFunction): **{tracer:+.0f} ms** (medians; compare the
  rows' spread). aws-xray-sdk is imported either way ({xray} ms of import with the tracer off);
  on, it patches botocore and requests and sends segments.
- A layer without bytecode, as SAM's default Python build ships it (Lambda cannot write
  `__pycache__` to `/opt`, so every cold start compiles it again): **{bytecode:+.0f} ms**; the
  gateway's layer is built by `layers/shared/Makefile` with its bytecode compiled, which saves that.
- The gateway's AliyunFunction serving the same SendBatchSms as the minimal official-SDK handler:
  {sdk:.2f}x the SDK handler's cold start. The SDK talked plain http to the sandbox (with
  signature v1 and `Format=JSON` set through the SDK's global parameters), so its row is a real send.

Where a provider function's cold start goes. Imports, by top-level package (PolyvFunction, one
untimed run under `python -X importtime`, self times summed; the profiler inflates them a little,
and lazy imports made during the first request are included):

{table(["Package", "Self ms", "Share"], import_rows)}

`smsgw`'s {own_total} ms are the gateway's own modules running their bodies (a module's self time
includes what it does while it runs, such as pydantic building a model's validators when the class
is defined); the largest: {own}.

The first invocation (one untimed run with the handler's first call under cProfile, which slows
it to {ms(cold.profiled_invocation_ms, 0)} ms: read the shares; steps nest, so they do not add up):

{table(["Step", "Calls", "Cumulative ms", "Share of the invocation"], invocation_rows)}"""
