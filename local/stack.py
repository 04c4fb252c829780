"""The local stack: the whole gateway on 127.0.0.1, without AWS and without Docker.

    python -m local.stack [--port 3000] [--host 127.0.0.1] [--api-key KEY]

DynamoDB Local, moto server, the provider sandbox, one worker process per function and the API
Gateway emulator, all built from template.yaml. `LocalStack` is the same thing for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

from local.apigw import ApiGatewayEmulator, api_key_id, generate_api_key
from local.bootstrap import Bootstrap
from local.processes import (
    DynamoDBLocal,
    FunctionWorker,
    Invocation,
    MotoServer,
    StackError,
    function_environment,
)
from local.sandbox import ProviderSandbox
from local.template import FunctionSpec, Physical, Template

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = REPOSITORY / "template.yaml"
DEFAULT_STATE_DIR = REPOSITORY / ".local-stack"
EVENTS_DIR = REPOSITORY / "events"
STATE_FILE = "state.json"
# moto's generated ids (the suffix of a secret's ARN) follow this seed, so a restarted moto hands
# out the ARNs the functions already hold.
MOTO_SEED = 20_160_101


@dataclass(frozen=True)
class QueueTrigger:
    """An SQS event source with its queue resolved, for the SQS poller."""

    function_id: str
    event_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_batching_window_seconds: int
    enabled: bool
    maximum_concurrency: int | None


class LocalStack:
    """Everything `make run` starts, as an object: `LocalStack(api_port=0).start()` … `.stop()`."""

    def __init__(
        self,
        *,
        template_path: Path = DEFAULT_TEMPLATE,
        api_port: int = 3000,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        function_output: IO[Any] | None = None,
    ) -> None:
        """`state_dir` receives state.json and the engines' logs; `function_output` the handlers'
        logs (default: this process's stdout)."""
        self.template_path = template_path.resolve()
        self.template = Template.load(self.template_path, parameter_overrides)
        self.functions: dict[str, FunctionSpec] = self.template.functions()
        self.host = host
        self.api_port = api_port
        self.api_key = api_key or generate_api_key()
        self.state_dir = state_dir
        self.function_output = function_output
        self.resources: dict[str, Physical] = {}
        self.workers: dict[str, FunctionWorker] = {}
        self.sandbox: ProviderSandbox | None = None
        self.started_in: float | None = None
        self._dynamodb: DynamoDBLocal | None = None
        self._moto: MotoServer | None = None
        self._emulator: ApiGatewayEmulator | None = None
        self._logs: list[IO[Any]] = []

    # -- Endpoints -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self._require(self._emulator, "API Gateway emulator").url

    @property
    def moto_url(self) -> str:
        return self._require(self._moto, "moto").url

    @property
    def dynamodb_url(self) -> str:
        return self._require(self._dynamodb, "DynamoDB Local").url

    @property
    def stage_name(self) -> str:
        return next(iter(self.template.apis().values())).stage_name

    @staticmethod
    def _require[T](part: T | None, name: str) -> T:
        if part is None:
            raise StackError(f"{name} is not running: call start() first")
        return part

    def endpoints(self) -> dict[str, str]:
        """The variables through which boto3 in a function reaches the local engines."""
        return {"AWS_ENDPOINT_URL": self.moto_url, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url}

    def environment(self, function_id: str) -> dict[str, str]:
        """A function's whole environment: its resolved variables, the runtime's and the endpoints."""
        spec = self.functions[function_id]
        variables = self.template.environment(function_id, self.resources)
        return function_environment(spec, variables, self.endpoints())

    # -- Life cycle ------------------------------------------------------------------------

    def start(self) -> Self:
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        self.write_state()
        return self

    def _start(self) -> None:
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        # Spawn both engines first: the JVM's start-up overlaps with moto's and the sandbox's.
        self._dynamodb = DynamoDBLocal(output=self._log("dynamodb.log"))
        self._dynamodb.spawn()
        self._moto = MotoServer(output=self._log("moto.log"))
        self._moto.spawn()
        self.sandbox = ProviderSandbox(host="127.0.0.1", port=0, control_port=0).start()
        self._moto.wait_ready()
        self._moto.seed(MOTO_SEED)
        self._dynamodb.wait_ready()
        self.resources = self._bootstrap().run()

        for function_id in self.functions:
            worker = FunctionWorker(
                self.functions[function_id], self.environment(function_id), output=self.function_output
            )
            self.workers[function_id] = worker
            worker.spawn()
        for worker in self.workers.values():
            worker.wait_ready()

        self._emulator = ApiGatewayEmulator(
            apis=self.template.apis(),
            routes=self.template.api_routes(),
            invoke=self._invoke_for_api,
            api_key=self.api_key,
            host=self.host,
            port=self.api_port,
        ).start()

    def _bootstrap(self) -> Bootstrap:
        assert self.sandbox is not None
        return Bootstrap(
            self.template, moto_url=self.moto_url, dynamodb_url=self.dynamodb_url, sandbox_url=self.sandbox.url
        )

    def _log(self, name: str) -> IO[Any] | int:
        if self.state_dir is None:
            return subprocess.DEVNULL
        log = (self.state_dir / name).open("ab")
        self._logs.append(log)
        return log

    def stop(self) -> None:
        """Stop every process and server the stack started; safe to call more than once."""
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        for engine in (self._moto, self._dynamodb):
            if engine is not None:
                engine.stop()
        self._moto = self._dynamodb = None
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self.state_dir is not None:
            (self.state_dir / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- Faults ----------------------------------------------------------------------------

    def stop_moto(self) -> None:
        """Secrets Manager, SQS and CloudWatch become unreachable (connection refused)."""
        self._require(self._moto, "moto").stop()

    def start_moto(self) -> None:
        """moto comes back on the same port, empty, and the bootstrap fills it again."""
        moto = self._require(self._moto, "moto")
        if moto.process is not None and moto.process.alive:
            return
        moto.spawn()
        moto.wait_ready()
        moto.seed(MOTO_SEED)
        provisioned = self._bootstrap().run(dynamodb=False, existing=self.resources)
        changed = any(self.resources.get(k) != v for k, v in provisioned.items())
        self.resources.update(provisioned)
        if changed:
            # The functions hold the old ARNs in their environment: redeploy them, as AWS would.
            for function_id, worker in self.workers.items():
                worker.restart(self.environment(function_id))
        self.write_state()

    # -- Invocation ------------------------------------------------------------------------

    def invoke(self, function_id: str, event: Any, *, timeout: float | None = None) -> Invocation:
        """Invoke a function's worker, as Lambda's Invoke API would (used by the SQS poller)."""
        spec = self.functions[function_id]
        return self.workers[function_id].invoke(event, timeout=timeout or spec.timeout + 5)

    def _invoke_for_api(self, function_id: str, event: dict[str, Any], timeout: float) -> Invocation:
        return self.workers[function_id].invoke(event, timeout=timeout)

    def queue_triggers(self) -> list[QueueTrigger]:
        """The template's SQS event sources, resolved to the queues the bootstrap created."""
        resolver = self.template.resolver(self.resources)
        triggers = []
        for source in self.template.sqs_event_sources():
            arn = resolver.resolve_string(source.queue)
            url = next((p.ref for p in self.resources.values() if p.attributes.get("Arn") == arn), None)
            if url is None:
                raise StackError(f"{source.function_id}.{source.event_id}: no local queue has the ARN {arn}")
            triggers.append(
                QueueTrigger(
                    function_id=source.function_id,
                    event_id=source.event_id,
                    queue_url=url,
                    queue_arn=arn,
                    batch_size=source.batch_size,
                    function_response_types=source.function_response_types,
                    maximum_batching_window_seconds=source.maximum_batching_window_seconds,
                    enabled=source.enabled,
                    maximum_concurrency=source.maximum_concurrency,
                )
            )
        return triggers

    # -- State for other commands ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        sandbox = self._require(self.sandbox, "the provider sandbox")
        return {
            "pid": os.getpid(),
            "template": str(self.template_path),
            "parameters": self.template.parameters,
            "api_url": self.api_url,
            "api_key": self.api_key,
            "api_key_id": api_key_id(self.api_key),
            "stage": self.stage_name,
            "moto_url": self.moto_url,
            "dynamodb_url": self.dynamodb_url,
            "sandbox_url": sandbox.url,
            "sandbox_control_url": sandbox.control_url,
            "endpoints": self.endpoints(),
            "resources": {name: physical.to_json() for name, physical in self.resources.items()},
            "functions": {
                name: {"url": worker.url, "pid": worker.process.pid if worker.process else None}
                for name, worker in self.workers.items()
            },
            "processes": self.pids(),
            "routes": [
                {"method": r.method, "path": r.path, "function": r.function_id, "api_key_required": r.api_key_required}
                for r in self.template.api_routes()
            ],
        }

    def pids(self) -> dict[str, int]:
        """Every child process of the stack, by name."""
        found = {}
        for name, part in (("dynamodb", self._dynamodb), ("moto", self._moto)):
            if part is not None and part.process is not None and part.process.pid is not None:
                found[name] = part.process.pid
        for name, worker in self.workers.items():
            if worker.process is not None and worker.process.pid is not None:
                found[name] = worker.process.pid
        return found

    def write_state(self) -> None:
        if self.state_dir is None:
            return
        path = self.state_dir / STATE_FILE
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.state(), indent=2) + "\n")
        # Other commands never see a half-written file.
        partial.replace(path)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def sample_requests(stack: LocalStack, events_dir: Path = EVENTS_DIR) -> list[tuple[str, str, str]]:
    """(method, path, body) for each route that has a sample event in events/."""
    bodies: dict[tuple[Any, Any], str] = {}
    for event_file in sorted(events_dir.glob("*.json")):
        event = json.loads(event_file.read_text())
        if isinstance(event, dict) and event.get("body"):
            bodies.setdefault((event.get("httpMethod"), event.get("resource")), event["body"])
    routes = [(r.method, r.path) for r in stack.template.api_routes()]
    return [(method, path, bodies[method, path]) for method, path in routes if (method, path) in bodies]


def banner(stack: LocalStack, state_file: Path | None) -> str:
    assert stack.sandbox is not None
    lines = [
        f"The SMS gateway runs locally (started in {stack.started_in or 0:.1f}s). Ctrl-C stops everything.",
        "",
        f"  API             {stack.api_url}   (stage {stack.stage_name}; /{stack.stage_name}/… works too)",
        f"  API key         {stack.api_key}   (header x-api-key)",
        f"  DynamoDB Local  {stack.dynamodb_url}",
        f"  moto            {stack.moto_url}   (Secrets Manager, SQS, CloudWatch)",
        f"  Sandbox         {stack.sandbox.url}   control {stack.sandbox.control_url}",
    ]
    if state_file is not None:
        lines.append(f"  State           {state_file}")
    lines += ["", "Routes:"]
    for route in stack.template.api_routes():
        key = "API key" if route.api_key_required else "no key"
        lines.append(f"  {route.method:<6} {route.path:<28} {route.function_id:<18} {key}")
    lines += ["", "Try it:"]
    for method, path, body in sample_requests(stack):
        compact = json.dumps(json.loads(body), ensure_ascii=False)
        lines.append(
            f"  curl -sS -X {method} {stack.api_url}{path} -H 'content-type: application/json' "
            f"-H 'x-api-key: {stack.api_key}' -d {shlex.quote(compact)}"
        )
    lines.append("")
    return "\n".join(lines)


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000, help="the API's port (default 3000)")
    parser.add_argument("--host", default="127.0.0.1", help="the API's address (default 127.0.0.1)")
    parser.add_argument("--api-key", help="use this API key instead of a new random one")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="state.json and engine logs")
    parser.add_argument(
        "--parameter-overrides",
        type=_parameter,
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="template parameters",
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # Installed before anything starts, so a Ctrl-C during start-up still stops what is running.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    stack = LocalStack(
        template_path=args.template,
        api_port=args.port,
        host=args.host,
        api_key=args.api_key,
        parameter_overrides=dict(args.parameter_overrides),
        state_dir=args.state_dir,
    )
    try:
        stack.start()
        if not stopping.is_set():
            print(banner(stack, args.state_dir / STATE_FILE), flush=True)
        while not stopping.wait(0.5):
            pass
    except (StackError, OSError) as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
