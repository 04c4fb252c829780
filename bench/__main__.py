"""`python -m bench` (what `make bench` runs): every figure against the local stack, then
BENCHMARKS.md and bench/latency.png.

    PYTHONPATH=layers/shared:functions:. bench/.venv/bin/python -m bench [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import coldstart, inprocess, receipt_route, report, routes, sizes
from bench.inprocess import Harness, log
from bench.probes import OtherWork, Probe
from bench.stack import REPOSITORY, running_stack

OUT = REPOSITORY / "bench" / ".out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few runs of everything (a smoke test, not figures)")
    parser.add_argument("--markdown", type=Path, default=REPOSITORY / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=REPOSITORY / "bench" / "latency.png")
    parser.add_argument(
        "--report-only", action="store_true", help="write the report again from the last run's saved results"
    )
    args = parser.parse_args(argv)
    args.markdown, args.plot = args.markdown.resolve(), args.plot.resolve()
    counts = (
        {
            "cold": 2,
            "warm": 20,
            "warmup": 5,
            "phases": 10,
            "reps": 1,
            "injected": 1,
            "queue": 1,
            "receipts": 20,
            "stack_warmup": 5,
            "stack_pushes": 20,
            "stack_rounds": 3,
        }
        if args.quick
        else {
            "cold": 11,
            "warm": 300,
            "warmup": 100,
            "phases": 100,
            "reps": 5,
            "injected": 3,
            "queue": 5,
            "receipts": 300,
            "stack_warmup": 20,
            "stack_pushes": 200,
            "stack_rounds": 3,
        }
    )
    saved = OUT / "results.pickle"
    if args.report_only:
        with saved.open("rb") as f:
            results = pickle.load(f)  # noqa: S301 - this program's own file
        results.artifacts, results.layer_entries = sizes.sizes(sizes.BUILD_DIR)
        write(results, args.markdown, args.plot)
        return 0
    started = time.monotonic()
    other = OtherWork()
    OUT.mkdir(parents=True, exist_ok=True)
    # The handlers log (and emit metrics) on stdout, as in Lambda: that goes to a file; the
    # benchmark's own progress goes to stderr.
    handler_log = (OUT / "handler-stdout.log").open("wb")
    os.dup2(handler_log.fileno(), sys.stdout.fileno())
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    build_dir, rebuilt = sizes.ensure_build(OUT / "sam-build.log")
    artifacts, layer_entries = sizes.sizes(build_dir)
    log("sizes measured")
    other.mark("build and sizes")
    with running_stack(OUT / "logs") as stack:
        log(f"stack up: DynamoDB Local {stack.dynamodb_url}, moto {stack.moto_url}, sandbox {stack.sandbox.url}")
        other.follow(stack.dynamodb_pid)
        cold = coldstart.cold_starts(stack, build_dir / "SharedLayer" / "python", OUT, runs=counts["cold"])
        other.mark("cold starts")
        probe = Probe(engine_pid=stack.dynamodb_pid)
        probe.watch_sandbox(stack.sandbox)
        with probe.installed():
            harness = Harness(stack, probe)
            warm = inprocess.warm_latency(
                harness, calls=counts["warm"], warmup=counts["warmup"], phase_calls=counts["phases"]
            )
            other.mark("warm latency")
            sweep = inprocess.sweep(harness, reps=counts["reps"], injected_reps=counts["injected"])
            other.mark("batch sizes")
            queue = inprocess.queue_batches(harness, reps=counts["queue"])
            other.mark("SQS batches")
            sdk = routes.sdk_beside_gateway(harness, calls=counts["warm"], warmup=counts["warmup"])
            other.mark("SDK handler")
            unified = routes.unified_route(
                harness, calls=counts["warm"], warmup=counts["warmup"], injected=counts["injected"]
            )
            other.mark("unified route")
            receipts = routes.receipts(harness, pushes=counts["receipts"], warmup=counts["warmup"])
            other.mark("receipts")
            harness.inject("none")
    # A whole local stack after the engines above have stopped: the two never share the machine.
    shutil.rmtree(OUT / "local-stack", ignore_errors=True)
    stack_receipts = receipt_route.on_local_stack(
        OUT / "local-stack",
        pushes=counts["stack_pushes"],
        warmup=counts["stack_warmup"],
        rounds=counts["stack_rounds"],
    )
    other.mark("receipts on the local stack")
    elapsed = time.monotonic() - started
    results = report.Results(
        date=datetime.now(UTC),
        quick=args.quick,
        counts=counts,
        elapsed=elapsed,
        other_work=other.phases,
        rebuilt=rebuilt,
        cold=cold,
        warm=warm,
        sweep=sweep,
        queue=queue,
        sdk=sdk,
        unified=unified,
        receipts=receipts,
        stack_receipts=stack_receipts,
        artifacts=artifacts,
        layer_entries=layer_entries,
    )
    with saved.open("wb") as f:
        pickle.dump(results, f)
    write(results, args.markdown, args.plot)
    log(f"measured in {elapsed:.0f} s")
    return 0


def write(results: report.Results, markdown: Path, plot: Path) -> None:
    report.plot(results, plot)
    markdown.write_text(report.markdown(results, plot=plot, folder=markdown.parent))
    log(f"wrote {markdown} and {plot}")


if __name__ == "__main__":
    sys.exit(main())
