"""Figure 1, cold start: a fresh interpreter per run that imports a function's handler and serves
its first request against the stack, timed from just before the process is spawned to the
moment its answer arrives; beside a bare `python -c "import boto3"` and a minimal handler built
on the official Aliyun SDK, all on the same interpreter, the variants' runs interleaved.

The functions import the way Lambda lays them out: the function's folder, then the layer. The
layer here is the built layer's own set of distributions (read from .aws-sam/build, which is
built for arm64) copied from this machine's virtualenv, once with bytecode compiled as
`layers/shared/Makefile` compiles it (unchecked hashes) and once without bytecode, as SAM's default
Python build would ship it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.inprocess import log
from bench.stack import REPOSITORY, Stack

CHILD = Path(__file__).resolve().parent / "coldstart_child.py"
EVENTS = REPOSITORY / "events"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@dataclass
class Variant:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    handler: bool
    """A child that reports its own timestamps on a pipe; otherwise timed to its exit."""
    runs: list[dict[str, float]] = field(default_factory=list)

    def values(self, name: str) -> list[float]:
        return [r[name] for r in self.runs]

    def median(self, name: str = "total") -> float:
        return statistics.median(self.values(name))


# -- the layer --------------------------------------------------------------------------------------


SLIM = REPOSITORY / "layers" / "shared" / "slim_botocore.py"


def layer_distributions(build_layer: Path) -> list[str]:
    """The distributions `sam build` put in the layer."""
    return sorted(p.name.split("-")[0] for p in build_layer.glob("*.dist-info"))


def prepare_layers(build_layer: Path, out: Path) -> tuple[Path, Path]:
    """(layer without bytecode, layer with bytecode) for this machine, rebuilt when their
    contents would change."""
    names = layer_distributions(build_layer)
    smsgw = REPOSITORY / "layers" / "shared" / "smsgw"
    sources = sorted(p for p in smsgw.rglob("*.py"))
    stamp = hashlib.sha256()
    for name in names:
        stamp.update(f"{name}={importlib.metadata.version(name)};".encode())
    for path in sources:
        stamp.update(f"{path}:{path.stat().st_mtime_ns}:{path.stat().st_size};".encode())
    stamp.update(SLIM.read_bytes())
    stamp.update(b"compileall --invalidation-mode unchecked-hash;")
    out = out.resolve()
    plain, compiled = out / "layer-as-built" / "python", out / "layer-compiled" / "python"
    stamp_file = out / "layers.stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp.hexdigest() and plain.is_dir() and compiled.is_dir():
        return plain, compiled
    log(f"preparing the layer for cold starts ({len(names)} distributions)")
    for folder in (plain.parent, compiled.parent):
        shutil.rmtree(folder, ignore_errors=True)
    plain.mkdir(parents=True)
    for name in names:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                target = plain / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    # botocore's service models cut down as layers/shared/Makefile cuts them
    subprocess.run([sys.executable, str(SLIM), str(plain)], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    shutil.copytree(smsgw, plain / "smsgw", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(plain, compiled)
    command = [
        sys.executable,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        str(compiled),
    ]
    subprocess.run(command, check=True)  # noqa: S603
    stamp_file.write_text(stamp.hexdigest())
    return plain, compiled


# -- X-Ray -----------------------------------------------------------------------------------------


@contextmanager
def xray_daemon() -> Iterator[tuple[str, list[int]]]:
    """A UDP sink standing in for the X-Ray daemon: (address, [datagrams received])."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.2)
    received = [0]
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                sink.recv(65536)
                received[0] += 1
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=drain, name="xray-sink", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sink.getsockname()[1]}", received
    finally:
        stop.set()
        thread.join()
        sink.close()


# -- runs ------------------------------------------------------------------------------------------


def base_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    # Nothing gets written: a Lambda's code and layers are read-only.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def function_environment(stack: Stack, provider: str, code_dir: Path) -> dict[str, str]:
    name = f"{provider.capitalize()}Function"
    return {
        **base_environment(),
        **stack.environment(provider),
        "LAMBDA_TASK_ROOT": str(code_dir),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "TZ": ":UTC",
    }


def run_once(variant: Variant, stack: Stack, log_file: Path) -> dict[str, float]:
    stack.sandbox.reset()
    read_end, write_end = os.pipe()
    argv = [a.replace("{fd}", str(write_end)) for a in variant.argv]
    with log_file.open("ab") as errors:
        spawned = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - fixed argument lists
            argv, env=variant.env, stdout=subprocess.DEVNULL, stderr=errors, pass_fds=(write_end,)
        )
        os.close(write_end)
        try:
            if variant.handler:
                line = b""
                while not line.endswith(b"\n"):
                    chunk = os.read(read_end, 65536)
                    if not chunk:
                        break
                    line += chunk
                answered = time.monotonic()
                code = process.wait(timeout=60)
                exited = time.monotonic()
                if not line:
                    raise RuntimeError(f"{variant.label}: no answer (exit {code}); see {log_file}")
                child = json.loads(line)
                if child["status"] != 200:
                    raise RuntimeError(f"{variant.label}: status {child['status']}; see {log_file}")
                return {
                    "total": answered - spawned,
                    "exit": exited - spawned,
                    "startup": child["started"] - spawned,
                    "import": child["import_end"] - child["import_start"],
                    "invoke": child["done"] - child["import_end"],
                    "modules": child["modules"],
                }
            code = process.wait(timeout=60)
            exited = time.monotonic()
            if code != 0:
                raise RuntimeError(f"{variant.label}: exit {code}; see {log_file}")
            return {"total": exited - spawned, "exit": exited - spawned}
        finally:
            os.close(read_end)
            if process.poll() is None:
                process.kill()
                process.wait()


SDK_LABEL = "Minimal handler: official Aliyun SDK + one conditional DynamoDB `UpdateItem`, same SMS (SendBatchSms)"


def variants(stack: Stack, plain_layer: Path, compiled_layer: Path, xray_address: str) -> list[Variant]:
    python = sys.executable
    child = [python, str(CHILD), "{fd}"]
    base = base_environment()

    def function(key: str, label: str, provider: str, event: str, layer: Path, **extra: str) -> Variant:
        code_dir = REPOSITORY / "functions" / provider
        env = function_environment(stack, provider, code_dir) | extra
        return Variant(key, label, [*child, "handler", str(code_dir), str(layer), str(EVENTS / event)], env, True)

    sdk_env = base | stack.sdk_environment()
    tracer = {
        "POWERTOOLS_TRACE_DISABLED": "false",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": xray_address,
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
    }
    return [
        Variant("python", '`python -c "pass"` (the interpreter alone)', [python, "-c", "pass"], base, False),
        Variant("boto3", '`python -c "import boto3"` (baseline)', [python, "-c", "import boto3"], base, False),
        function("polyv", "PolyvFunction, events/polyv-send.json", "polyv", "polyv-send.json", compiled_layer),
        function("aliyun", "AliyunFunction, events/aliyun-send.json", "aliyun", "aliyun-send.json", compiled_layer),
        function(
            "ronglian", "RonglianFunction, events/ronglian-send.json", "ronglian", "ronglian-send.json", compiled_layer
        ),
        function(
            "aliyun-batch",
            "AliyunFunction, events/aliyun-batch-send.json",
            "aliyun",
            "aliyun-batch-send.json",
            compiled_layer,
        ),
        Variant(
            "aliyun-sdk",
            SDK_LABEL,
            [*child, "aliyun-sdk", str(EVENTS / "aliyun-batch-send.json")],
            sdk_env,
            True,
        ),
        function(
            "polyv-traced",
            "PolyvFunction with the tracer on (`POWERTOOLS_TRACE_DISABLED=false`)",
            "polyv",
            "polyv-send.json",
            compiled_layer,
            **tracer,
        ),
        function(
            "polyv-as-built",
            "PolyvFunction, layer without bytecode (SAM's default Python build)",
            "polyv",
            "polyv-send.json",
            plain_layer,
        ),
    ]


@dataclass
class ColdStartResult:
    variants: dict[str, Variant]
    runs: int
    xray_datagrams: int
    imports: list[tuple[str, float]] = field(default_factory=list)
    """PolyvFunction's imports by top-level package: self time in ms under `-X importtime`."""
    own_modules: list[tuple[str, float]] = field(default_factory=list)
    """The gateway's own modules (and the function's `app`) by self time, ms."""
    first_invocation: list[tuple[str, int, float]] = field(default_factory=list)
    """Inside PolyvFunction's first invocation, under cProfile: (step, calls, cumulative ms)."""
    profiled_invocation_ms: float = 0.0


def import_breakdown(variant: Variant, stack: Stack) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """One untimed run under `-X importtime`: self time summed by top-level package, and the
    gateway's own modules one by one."""
    stack.sandbox.reset()
    read_end, write_end = os.pipe()
    argv = [variant.argv[0], "-X", "importtime", *[a.replace("{fd}", str(write_end)) for a in variant.argv[1:]]]
    process = subprocess.run(  # noqa: S603 - fixed argument lists
        argv, env=variant.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(write_end,), check=True
    )
    os.close(write_end)
    os.close(read_end)
    totals: dict[str, float] = {}
    own: dict[str, float] = {}
    stdlib = 0
    for line in process.stderr.decode().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        top = name.split(".")[0]
        if top in ("smsgw", "app"):
            own[name] = own.get(name, 0.0) + int(self_us) / 1000
        if top.lstrip("_") in sys.stdlib_module_names or top in sys.stdlib_module_names:
            stdlib += 1
            top = "standard library"
        totals[top] = totals.get(top, 0.0) + int(self_us) / 1000
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    by_package = [(f"standard library ({stdlib} modules)" if n == "standard library" else n, t) for n, t in ranked]
    return by_package, sorted(own.items(), key=lambda item: item[1], reverse=True)


# (label, file suffix, function name) of the steps reported inside the first invocation.
FIRST_INVOCATION_STEPS: tuple[tuple[str, str, str], ...] = (
    ("Imports made during the request (lazy imports)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("boto3 client creation (DynamoDB x2, Secrets Manager)", "botocore/session.py", "create_client"),
    ("Powertools resolver, whole route", "aws_lambda_powertools/event_handler/api_gateway.py", "resolve"),
    ("Credentials: Secrets Manager fetch + validation", "smsgw/credentials.py", "get"),
    ("Quota reservation (3 UpdateItem)", "smsgw/quotas.py", "reserve"),
    ("Provider client creation", "smsgw/service.py", "client"),
    ("Provider call", "smsgw/providers/base.py", "send"),
    ("Message log PutItem", "smsgw/messages.py", "record"),
    ("Metrics flush (EMF to stdout)", "aws_lambda_powertools/metrics/", "flush_metrics"),
)


def invocation_profile(variant: Variant, stack: Stack, out: Path) -> tuple[float, list[tuple[str, int, float]]]:
    """One untimed run with the first invocation under cProfile (which slows it down: the shares
    matter, not the absolute times)."""
    import pstats

    stats_file = out / "first-invocation.pstats"
    profiled = Variant(
        variant.key, variant.label, variant.argv, variant.env | {"BENCH_PROFILE_TO": str(stats_file)}, True
    )
    run = run_once(profiled, stack, out / "coldstart-stderr.log")
    stats = pstats.Stats(str(stats_file))
    table = stats.stats  # type: ignore[attr-defined]
    rows = []
    for label, suffix, function in FIRST_INVOCATION_STEPS:
        calls, cumulative = 0, 0.0
        for (filename, _, name), (_, primitive, _, cum, _) in table.items():
            if name == function and suffix in filename:
                calls += primitive
                cumulative += cum
        rows.append((label, calls, cumulative * 1000))
    return run["invoke"] * 1000, rows


def cold_starts(stack: Stack, build_layer: Path, out: Path, *, runs: int, warmup: int = 1) -> ColdStartResult:
    plain, compiled = prepare_layers(build_layer, out)
    log_file = out / "coldstart-stderr.log"
    log_file.unlink(missing_ok=True)
    with xray_daemon() as (address, received):
        chosen = variants(stack, plain, compiled, address)
        # Untimed first runs fill the page cache for every variant alike.
        for _ in range(warmup):
            for variant in chosen:
                run_once(variant, stack, log_file)
        traced_before = received[0]
        for i in range(runs):
            for variant in chosen:
                variant.runs.append(run_once(variant, stack, log_file))
            log(f"cold starts: round {i + 1}/{runs}")
        time.sleep(0.3)
        datagrams = received[0] - traced_before
    result = ColdStartResult({v.key: v for v in chosen}, runs, datagrams)
    polyv = result.variants["polyv"]
    result.imports, result.own_modules = import_breakdown(polyv, stack)
    result.profiled_invocation_ms, result.first_invocation = invocation_profile(polyv, stack, out)
    for v in chosen:
        log(f"cold start {v.key}: median {v.median() * 1000:.0f} ms")
    return result
