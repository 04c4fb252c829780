"""BENCHMARKS.md and the latency plot, from one run's results."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
from pathlib import Path

from bench.inprocess import INJECTED, SIZES
from bench.report_cold import cold_section
from bench.report_queue import queue_section, sizes_section
from bench.report_routes import routes_sections
from bench.report_sends import calls_section, injected_section, warm_section
from bench.report_targets import summary
from bench.results import Results, gateway_dynamodb, ms, point, table
from bench.stack import REPOSITORY
from bench.workloads import OPERATIONS
from local.processes import dynamodb_local_dir

__all__ = ["Results", "markdown", "plot"]


def machine() -> list[tuple[str, str]]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return [
        ("Architecture (`uname -m`)", platform.machine()),
        ("CPU", model),
        ("Cores", str(os.cpu_count())),
        ("Memory", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("boto3 / botocore", f"{importlib.metadata.version('boto3')} / {importlib.metadata.version('botocore')}"),
        ("aws-lambda-powertools", importlib.metadata.version("aws-lambda-powertools")),
        ("DynamoDB Local", dynamodb_local_dir().name.removeprefix("dynamodb_local_")),
    ]


# -- the plot --------------------------------------------------------------------------------------


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=120)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for op, colour in zip(OPERATIONS, colours, strict=True):
        for mode, style, suffix in (("none", "-", ""), ("both", "--", f", {INJECTED * 1000:.0f} ms per call")):
            ys = [point(results, op.name, n, mode).wall_ms for n in SIZES]
            axes.plot(SIZES, ys, style, marker="o", color=colour, label=f"{op.name}{suffix}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(SIZES, [str(n) for n in SIZES])
    axes.set_xlabel("numbers in one send request")
    axes.set_ylabel("latency of the send, median (ms)")
    title = "One send, in process, against DynamoDB Local and the provider sandbox"
    axes.set_title(f"{title}\nsolid: as is; dashed: {INJECTED * 1000:.0f} ms added to every DynamoDB and provider call")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


# -- the document ----------------------------------------------------------------------------------


def check_plausible(results: Results) -> list[str]:
    """Figures that cannot be right stop the report; odd ones are listed in it."""
    problems = []
    cold = results.cold.variants
    boto3 = cold["boto3"].median()
    for name in ("polyv", "aliyun", "ronglian", "aliyun-batch", "polyv-traced", "polyv-as-built"):
        if cold[name].median() < boto3:
            raise RuntimeError(f"cold start of {name} below a bare `import boto3`: the measurement is wrong")
    for warm in results.warm:
        if any(s.io > s.wall + 1e-6 for s in warm.samples):
            raise RuntimeError(f"{warm.operation}: I/O longer than the call")
    for (op, n, mode, key), p in results.sweep.items():
        receipt_calls = 0 if op.startswith("polyv") else int(statistics.median(p.provider_calls))
        expected = gateway_dynamodb(n, bool(key), receipt_calls)
        found = sum(p.dynamodb_ops().values())
        if found != expected:
            problems.append(f"{op} x{n} ({mode}): {found} DynamoDB calls where {expected} were expected")
    return problems


def markdown(results: Results, *, plot: Path, folder: Path = REPOSITORY) -> str:
    """The document, with the plot linked relative to `folder` (where the document goes)."""
    problems = check_plausible(results)
    parts = [header(results), summary(results)]
    parts += [cold_section(results), warm_section(results), calls_section(results)]
    parts += [injected_section(results), queue_section(results), sizes_section(results)]
    parts.append(plot_section(results, plot, folder))
    parts += routes_sections(results)
    parts.append(method_section(results, problems))
    return "\n\n".join(parts) + "\n"


def header(results: Results) -> str:
    other = ", ".join(f"{where} {value:.0%}" for where, value in results.other_work.items())
    quick = "\n\n> **Quick run (`--quick`)**: too few runs to be figures; run `make bench`." if results.quick else ""
    return f"""# Benchmarks

Measured by `make bench` on {results.date:%Y-%m-%d %H:%M} UTC, against the local stack (DynamoDB Local,
moto server, the provider sandbox; no AWS, no Docker), in {results.elapsed / 60:.1f} minutes. Each figure
is measured in the same run as its baseline. To reproduce: `make bench` (it creates `bench/.venv`
from `requirements-bench.txt`, starts what it needs, stops it, and rewrites this file and
`bench/latency.png`).{quick}

{table(["Machine", ""], machine())}

Other work on the machine during the run, as a share of its cores' time (all CPU time in
/proc/stat minus the benchmark's own: its process, its children, DynamoDB Local): {other}.
Other programs (tests, builds) on the same 2 cores slow every figure and widen the spread; near 0% is a
clean run."""


def plot_section(results: Results, plot: Path, folder: Path) -> str:
    relative = Path(os.path.relpath(plot, folder)).as_posix()
    rows = []
    for op in OPERATIONS:
        for mode in ("none", "both"):
            label = op.name if mode == "none" else f"{op.name}, +{INJECTED * 1000:.0f} ms per call"
            rows.append((label, *(ms(point(results, op.name, n, mode).wall_ms, 0) for n in SIZES)))
    return f"""## 7. Latency against batch size

![Latency of one send against the numbers in it]({relative})

One send, in process, median ms ({results.counts["reps"]} runs without injection, {results.counts["injected"]} with);
the data of the plot:

{table(["Operation", *(f"{n} number{'s' if n > 1 else ''}" for n in SIZES)], rows)}"""


def method_section(results: Results, problems: list[str]) -> str:
    odd = "\n".join(f"- {p}" for p in problems) if problems else "- none"
    return f"""## How it was measured

- `make bench` runs `python -m bench` (the `bench/` package) in `bench/.venv`, which holds
  `requirements-dev.txt` + `requirements-bench.txt`, so the gateway's `.venv` stays as the tests have it.
  It starts DynamoDB Local (`local.processes.DynamoDBLocal`, in memory), moto
  (`moto.server.ThreadedMotoServer`) and the provider sandbox (`local.sandbox.ProviderSandbox`) on
  127.0.0.1, creates the tables as template.yaml declares them (the quota, idempotency and
  configuration tables, the message log with its `open` index), one secret per provider, the receipt
  tokens' secret, a dead-letter queue and the receipts queue, grants the events' tenant an admin key
  (for the unified route's templates), and stops everything at the end. In-process figures call
  `functions/<name>/app.py`'s `handler` as `tests/support.py` does; the provider functions get the
  environment template.yaml gives them (no configuration table), the unified route and the receipts
  function theirs.
- Quotas: every window on with limits far out of reach (`QUOTA_LIMITS` in `bench/stack.py`, the
  pumping guard's `block_per_hour` included), so each number costs the DynamoDB work it costs in
  production and nothing is refused. Each send's numbers lie in number blocks of their own (the
  first seven national digits), as the numbers of a real send mostly do, so a send of n numbers
  takes n guard counters.
- Every AWS call is counted and timed by botocore hooks on one session (DynamoDB, SQS, Secrets
  Manager), each DynamoDB call with its request units estimated from its parameters
  (`bench/capacity.py`); rounds "the send waits for" (§9, §10) count DynamoDB and provider calls
  together, §3 and §4 DynamoDB calls alone.
- The new figures: §8 the minimal official-SDK handler (one conditional `UpdateItem` and the SDK's
  SendBatchSms) beside AliyunFunction, warm in alternating blocks, and its cold start in §1; §9 a
  1-number send with and without an Idempotency-Key; §10 the unified route without and with a
  failover (the first provider answering 503); §11 the receipt route and its consumer, and the route
  over HTTP on a whole local stack; §12 the AWS bill of 1000 SMS from §11's counted calls and
  measured durations, at the prices it states.
- §11's local-stack figure (target 7b): a whole local stack (`local.stack.LocalStack`, what `make run`
  starts), once the engines above have stopped. A push is timed by the client (`requests`, one
  kept-alive connection) from before the request is sent to its answer read: the API Gateway
  emulator (`local/apigw.py`, in the benchmark's process as it is in `make run`'s) routes it,
  turns it into the proxy event and posts that over loopback HTTP to an idle worker of the receipts
  function (`local/lambda_worker.py`, a process of its own, as a Lambda execution environment),
  whose handler checks the path's token against the cached secret, reads the body and queues it
  (`SendMessage` to moto); the answer comes back the same way. The target is held to the median of
  the rounds' p99. Its logs are in `bench/.out/local-stack/`.
- The handlers' logs and metrics (stdout) go to `bench/.out/handler-stdout.log`, as Lambda sends
  them to its log pipe; the raw run leaves its other logs in `bench/.out/`.
- The machine has 2 cores shared by the handler, DynamoDB Local (Java) and the sandbox: absolute
  times are this machine's; ratios and counts are what carry over.
- Odd figures found by the report's checks:
{odd}"""
