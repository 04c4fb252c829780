"""The local stack: the whole gateway on 127.0.0.1, without AWS and without Docker.

    python -m local.stack [--port 3000] [--host 127.0.0.1] [--api-key [ID=]KEY]... [--admin-api-key [ID=]KEY]
                          [--function-concurrency N] [--no-sqs-polling]

DynamoDB Local, moto server, the provider sandbox, a pool of worker processes per function, the
API Gateway emulator and the SQS pollers feeding the functions from their queues, all built from
template.yaml. `LocalStack` is the same thing for tests.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, NamedTuple, Self

from local.apigw import ApiGatewayEmulator, generate_api_key
from local.bootstrap import Bootstrap, client
from local.processes import (
    DynamoDBLocal,
    FunctionPool,
    Invocation,
    MotoServer,
    StackError,
    function_environment,
)
from local.sandbox import ProviderSandbox
from local.sqs_poller import QueueStats, QueueTrigger, SqsPoller, queue_triggers, queue_urls
from local.template import SECRET_TYPE, FunctionSpec, Physical, Template, read_document, references

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = REPOSITORY / "template.yaml"
DEFAULT_STATE_DIR = REPOSITORY / ".local-stack"
EVENTS_DIR = REPOSITORY / "events"
STATE_FILE = "state.json"
# Held (flock) by the stack that writes the folder; it names that stack for one that is refused.
LOCK_FILE = "stack.lock"
# moto's generated ids (the suffix of a secret's ARN) follow this seed, so a restarted moto hands
# out the ARNs the functions already hold.
MOTO_SEED = 20_160_101
# The id of the key given without one (`--api-key KEY`): the tenant stays the same from one run to the next.
DEFAULT_API_KEY_ID = "local"
# Tenants end up in DynamoDB keys beside '#' separators: ids keep to plain characters.
_API_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Lambda runs a function in as many environments as it has concurrent invocations; two per function
# are enough to show what a module-level cache or a shared resource does across instances.
DEFAULT_FUNCTION_CONCURRENCY = 2
# The environment variable naming the table where the unified route finds its admin keys.
CONFIG_TABLE_VARIABLE = "CONFIG_TABLE_NAME"
# Routes the unified route answers for an admin API key only: the banner shows them with that key.
ADMIN_PATHS = ("/v1/templates/", "/v1/rules", "/v1/opt-outs/")
# What the local stack sets differently from a deployment, where the template has the parameter:
# the README's and the events' Hong Kong numbers are a country a tenant may send to.
LOCAL_PARAMETERS = {"DefaultAllowedCountries": "CN,HK"}
# Every function's, on the local stack only: webhooks may go to a receiver on loopback (a test's,
# a developer's), over plain http.
LOCAL_ENVIRONMENT = {"WEBHOOK_ALLOW_LOOPBACK": "true"}
# The receipt routes' tokens and every tenant's webhook signing secret: fixed, so that a receipt
# pushed by hand and a receiver's signature check work from one run to the next. Loopback only.
LOCAL_RECEIPT_TOKENS = {"aliyun": "local-aliyun-receipt-token", "ronglian": "local-ronglian-receipt-token"}
LOCAL_WEBHOOK_SECRET = "whsec_bG9jYWwtd2ViaG9vay1zaWduaW5nLWtleQ=="  # noqa: S105 - the local stack's, published
# The variables that name the secrets the bootstrap fills with the values above.
RECEIPT_TOKENS_VARIABLE = "RECEIPT_TOKEN_SECRET_ID"
WEBHOOK_SECRETS_VARIABLE = "WEBHOOK_SECRET_ID"
# Where the API Gateway emulator serves the sandbox's control API and its inbox page.
SANDBOX_PREFIX = "/_sandbox/"


def admin_item(key_id: str, tenant: str) -> dict[str, Any]:
    """The configuration table's item that makes an API key its tenant's admin, as
    `smsgw.admin.AdminKeys.grant` writes it (the stack does not load the gateway's package)."""
    return {"pk": {"S": f"admin-key#{key_id}"}, "sk": {"S": "tenant"}, "tenant": {"S": tenant}}


def resolve_api_keys(entries: Iterable[tuple[str | None, str]]) -> dict[str, str]:
    """Key id -> key value from (id, value) pairs; a key without an id gets the id `local`, and no
    key at all means one random key with that id."""
    keys: dict[str, str] = {}
    for key_id, value in entries:
        key_id = key_id or DEFAULT_API_KEY_ID
        if not _API_KEY_ID.fullmatch(key_id):
            raise ValueError(f"an API key id is letters, digits, '.', '_' and '-', not {key_id!r}")
        if not value:
            raise ValueError(f"the API key {key_id!r} has no value")
        if key_id in keys:
            raise ValueError(f"the API key id {key_id!r} is given twice")
        if value in keys.values():
            raise ValueError(f"the API key {key_id!r} has the value of another: a request could not tell whose")
        keys[key_id] = value
    return keys or {DEFAULT_API_KEY_ID: generate_api_key()}


class StateDir:
    """The folder one running stack writes: state.json, the engines' logs and a lock.

    The stack that claims the folder holds an flock on its lock file, which the kernel lets go
    however the process ends, so a killed stack never leaves the folder taken. A second stack is
    refused the folder and touches nothing in it: the first one's state.json stays what other
    commands read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def claim(self) -> None:
        """Take the folder, or StackError naming the stack that has it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = (self.path / LOCK_FILE).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read()
            lock.close()
            raise StackError(self._taken(holder)) from None
        self._lock = lock
        self._describe("")
        # Left by a stack that was killed: it describes nothing that runs.
        self.state_file.unlink(missing_ok=True)

    def describe(self, pid: int, api_url: str) -> None:
        """Say in the lock file which stack holds the folder, for the one that will be refused."""
        self._describe(json.dumps({"pid": pid, "api_url": api_url}))

    def _describe(self, text: str) -> None:
        if self._lock is None:
            return
        self._lock.truncate(0)
        self._lock.write(text)
        self._lock.flush()

    def release(self) -> None:
        """Remove state.json and let the folder go; only the stack that claimed it does anything."""
        if self._lock is None:
            return
        self.state_file.unlink(missing_ok=True)
        self._describe("")
        self._lock.close()
        self._lock = None

    def _taken(self, holder: str) -> str:
        try:
            described = json.loads(holder)
            running = f"pid {described['pid']}, API on {described['api_url']}"
        except (ValueError, TypeError, KeyError):
            running = "it is starting"
        return (
            f"a local stack already runs from {self.path} ({running}): stop it first, or start this one "
            "beside it with a folder of its own (--state-dir DIR, or STATE_DIR=DIR with make) and another port"
        )


class LocalStack:
    """Everything `make run` starts, as an object: `LocalStack(api_port=0).start()` … `.stop()`."""

    def __init__(
        self,
        *,
        template_path: Path = DEFAULT_TEMPLATE,
        api_port: int = 3000,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        api_keys: Mapping[str, str] | None = None,
        admin_api_key: str | None = None,
        admin_api_key_id: str | None = None,
        function_concurrency: int = DEFAULT_FUNCTION_CONCURRENCY,
        parameter_overrides: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        function_output: IO[Any] | None = None,
        sqs_polling: bool = True,
    ) -> None:
        """`api_keys` maps key ids (tenants) to key values; `api_key` is a key with the id `local`.
        Without either, one random key with the id `local`. `admin_api_key` is a key registered as
        the admin of the first key's tenant (its templates), with the id `admin_api_key_id` (default:
        the tenant's, then `-admin`). `function_concurrency` is how many
        workers (execution environments) each function gets. `state_dir` receives state.json and
        the engines' logs; `function_output` the handlers' logs (default: this process's stdout).
        `sqs_polling=False` leaves the queues alone: messages wait there until something reads them."""
        if function_concurrency < 1:
            raise ValueError(f"function_concurrency must be at least 1, not {function_concurrency}")
        self.template_path = template_path.resolve()
        document = read_document(self.template_path)
        declared = document.get("Parameters") or {}
        local = {name: value for name, value in LOCAL_PARAMETERS.items() if name in declared}
        self.template = Template(document, self.template_path.parent, {**local, **(parameter_overrides or {})})
        self.functions: dict[str, FunctionSpec] = self.template.functions()
        self.host = host
        self.api_port = api_port
        self.api_keys = resolve_api_keys([*([(None, api_key)] if api_key else []), *(api_keys or {}).items()])
        # The first key is the one the banner's examples and single-key callers use.
        self.api_key_id, self.api_key = next(iter(self.api_keys.items()))
        self.admin_key: tuple[str, str] | None = None
        if admin_api_key:
            admin_id = admin_api_key_id or f"{self.api_key_id}-admin"
            # The emulator must tell every key from every other, the admin's included.
            resolve_api_keys([*self.api_keys.items(), (admin_id, admin_api_key)])
            self.admin_key = (admin_id, admin_api_key)
        self.function_concurrency = function_concurrency
        self.state_dir = state_dir
        self._state = StateDir(state_dir) if state_dir is not None else None
        self.function_output = function_output
        self.sqs_polling = sqs_polling
        self.resources: dict[str, Physical] = {}
        self.workers: dict[str, FunctionPool] = {}
        self.sandbox: ProviderSandbox | None = None
        self.started_in: float | None = None
        self._dynamodb: DynamoDBLocal | None = None
        self._moto: MotoServer | None = None
        self._emulator: ApiGatewayEmulator | None = None
        self._poller: SqsPoller | None = None
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

    @property
    def accepted_api_keys(self) -> dict[str, str]:
        """Every key the API accepts, by id: the tenants' and the admin's."""
        return {**self.api_keys, **dict([self.admin_key] if self.admin_key else [])}

    def config_table(self) -> str | None:
        """The table the functions read admin keys and templates from, if one names it."""
        for function_id in self.functions:
            table = self.template.environment(function_id, self.resources).get(CONFIG_TABLE_VARIABLE)
            if table:
                return table
        return None

    @property
    def queues(self) -> dict[str, str]:
        """Every queue of the template, dead-letter queues too: logical id -> queue URL in moto."""
        return queue_urls(self.template, self.resources)

    def endpoints(self) -> dict[str, str]:
        """The variables through which boto3 in a function reaches the local engines."""
        return {"AWS_ENDPOINT_URL": self.moto_url, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url}

    def environment(self, function_id: str) -> dict[str, str]:
        """A function's whole environment: its resolved variables, the runtime's, the local stack's
        own (LOCAL_ENVIRONMENT) and the endpoints."""
        spec = self.functions[function_id]
        variables = {**self.template.environment(function_id, self.resources), **LOCAL_ENVIRONMENT}
        return function_environment(spec, variables, self.endpoints())

    def secret_named_by(self, variable: str) -> str | None:
        """The logical id of the secret a function's environment variable names, if one does."""
        for spec in self.functions.values():
            named = references(spec.environment.get(variable)) & set(self.template.of_type(SECRET_TYPE))
            if named:
                return next(iter(named))
        return None

    def secret_values(self) -> dict[str, str]:
        """The secrets the bootstrap fills with the local stack's fixed values: the receipt tokens,
        and a webhook signing secret for every tenant (every API key, the admin's too)."""
        values = {}
        tokens = self.secret_named_by(RECEIPT_TOKENS_VARIABLE)
        if tokens is not None:
            values[tokens] = json.dumps(LOCAL_RECEIPT_TOKENS)
        webhooks = self.secret_named_by(WEBHOOK_SECRETS_VARIABLE)
        if webhooks is not None:
            values[webhooks] = json.dumps(dict.fromkeys(self.accepted_api_keys, LOCAL_WEBHOOK_SECRET))
        return values

    def receipt_urls(self) -> dict[str, str]:
        """Where the providers push receipts: each receipt route of the template, with its token."""
        paths = {route.path for route in self.template.api_routes() if route.method == "POST"}
        return {
            provider: f"{self.api_url}/v1/receipts/{provider}/{token}"
            for provider, token in LOCAL_RECEIPT_TOKENS.items()
            if f"/v1/receipts/{provider}/{{token}}" in paths
        }

    @property
    def inbox_url(self) -> str:
        return f"{self.api_url}{SANDBOX_PREFIX}"

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
        if self._state is not None:
            self._state.claim()
        # The API's port before anything else, so that a port in use fails at once. Requests that
        # arrive before the workers are ready wait in the socket's backlog until the emulator serves.
        self._emulator = self._bind_api()
        if self._state is not None:
            self._state.describe(os.getpid(), self._emulator.url)
        # Spawn both engines first: the JVM's start-up overlaps with moto's and the sandbox's.
        self._dynamodb = DynamoDBLocal(output=self._log("dynamodb.log"))
        self._dynamodb.spawn()
        self._moto = MotoServer(output=self._log("moto.log"))
        self._moto.spawn()
        self.sandbox = ProviderSandbox(host="127.0.0.1", port=0, control_port=0).start()
        self.sandbox.configure_receipts(urls=self.receipt_urls())
        self._emulator.proxy(SANDBOX_PREFIX, self.sandbox.control_url, index="/inbox")
        self._moto.wait_ready()
        self._moto.seed(MOTO_SEED)
        self._dynamodb.wait_ready()
        self.resources = self._bootstrap().run()
        self._register_admin()

        for function_id, spec in self.functions.items():
            pool = FunctionPool(
                spec, self.environment(function_id), size=self.function_concurrency, output=self.function_output
            )
            self.workers[function_id] = pool
            pool.spawn()
        for pool in self.workers.values():
            pool.wait_ready()

        self._emulator.start()
        if self.sqs_polling:
            self._start_polling()

    def _bind_api(self) -> ApiGatewayEmulator:
        try:
            return ApiGatewayEmulator(
                apis=self.template.apis(),
                routes=self.template.api_routes(),
                invoke=self._invoke_for_api,
                api_keys=self.accepted_api_keys,
                host=self.host,
                port=self.api_port,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StackError(
                    f"port {self.api_port} on {self.host} is in use: another local stack or another program listens "
                    "there; choose another port with --port (PORT=... with make)"
                ) from None
            raise StackError(f"the API cannot listen on {self.host}:{self.api_port}: {exc.strerror or exc}") from None

    def _start_polling(self) -> None:
        self._poller = SqsPoller(
            self.queue_triggers(),
            self.invoke,
            endpoint_url=self.moto_url,
            # Without ScalingConfig, as many batches at once as the function has instances.
            default_concurrency=self.function_concurrency,
        ).start()

    def _bootstrap(self) -> Bootstrap:
        assert self.sandbox is not None
        # Each provider's secret points at its own port, so that one provider can go down alone.
        return Bootstrap(
            self.template,
            moto_url=self.moto_url,
            dynamodb_url=self.dynamodb_url,
            sandbox_url=self.sandbox.url,
            sandbox_urls=self.sandbox.provider_urls,
            secret_values=self.secret_values(),
        )

    def _register_admin(self) -> None:
        if self.admin_key is None:
            return
        table = self.config_table()
        if table is None:
            raise StackError(f"no function of the template has a {CONFIG_TABLE_VARIABLE}: no place for an admin key")
        item = admin_item(self.admin_key[0], self.api_key_id)
        client("dynamodb", self.dynamodb_url).put_item(TableName=table, Item=item)

    def _log(self, name: str) -> IO[Any] | int:
        if self.state_dir is None:
            return subprocess.DEVNULL
        log = (self.state_dir / name).open("ab")
        self._logs.append(log)
        return log

    def stop(self) -> None:
        """Stop every process and server the stack started; safe to call more than once."""
        # The pollers first: no batch starts on a worker or a queue that is going away. A batch
        # still running after the grace fails when its worker stops, as a crashed instance would.
        if self._poller is not None:
            self._poller.stop(timeout=2.0)
            self._poller = None
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        for pool in self.workers.values():
            pool.stop()
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
        if self._state is not None:
            self._state.release()

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
        # Every receive draws on moto's random numbers: a poller at work between the seed and the
        # bootstrap would change the secrets' ARNs. The pollers resume on the queues as recreated.
        polling = self._poller is not None
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        moto.spawn()
        moto.wait_ready()
        moto.seed(MOTO_SEED)
        provisioned = self._bootstrap().run(dynamodb=False, existing=self.resources)
        changed = any(self.resources.get(k) != v for k, v in provisioned.items())
        self.resources.update(provisioned)
        if changed:
            # The functions hold the old ARNs in their environment: redeploy them, as AWS would.
            for function_id, pool in self.workers.items():
                pool.restart(self.environment(function_id))
        if polling:
            self._start_polling()
        self.write_state()

    # -- Invocation ------------------------------------------------------------------------

    def invoke(self, function_id: str, event: Any, *, timeout: float | None = None) -> Invocation:
        """Invoke a function on an idle worker, as Lambda's Invoke API would (used by the SQS poller);
        `timeout` bounds the wait for a free worker and the invocation together."""
        spec = self.functions[function_id]
        return self.workers[function_id].invoke(event, timeout=timeout or spec.timeout + 5)

    def _invoke_for_api(self, function_id: str, event: dict[str, Any], timeout: float) -> Invocation:
        return self.workers[function_id].invoke(event, timeout=timeout)

    def queue_triggers(self) -> list[QueueTrigger]:
        """The template's SQS event sources, resolved to the queues the bootstrap created."""
        return queue_triggers(self.template, self.resources)

    # -- SQS -------------------------------------------------------------------------------

    def drain(self, timeout: float = 60.0) -> None:
        """Return once every polled queue has no visible, in-flight or delayed message and no batch
        is being processed; TimeoutError if not within `timeout` seconds. Records that failed are
        waited for through their visibility timeout and their redeliveries."""
        self._polling().drain(timeout)

    def poller_stats(self) -> dict[str, QueueStats]:
        """Per polled queue (by logical id): batches invoked, records delivered, deleted and failed,
        and invocations that ended in a function error. moto moves records to the DLQs itself."""
        return self._polling().stats()

    def _polling(self) -> SqsPoller:
        if self._poller is None:
            raise StackError(
                "the SQS pollers are not running: "
                + ("call start() first" if self.sqs_polling else "the stack was started without SQS polling")
            )
        return self._poller

    # -- State for other commands ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        sandbox = self._require(self.sandbox, "the provider sandbox")
        return {
            "pid": os.getpid(),
            "template": str(self.template_path),
            "parameters": self.template.parameters,
            "api_url": self.api_url,
            "api_key": self.api_key,
            "api_key_id": self.api_key_id,
            "api_keys": [{"id": key_id, "value": value} for key_id, value in self.api_keys.items()],
            "admin_api_key": (
                None
                if self.admin_key is None
                else {"id": self.admin_key[0], "value": self.admin_key[1], "tenant": self.api_key_id}
            ),
            "stage": self.stage_name,
            "moto_url": self.moto_url,
            "dynamodb_url": self.dynamodb_url,
            "sandbox_url": sandbox.url,
            "sandbox_control_url": sandbox.control_url,
            "sandbox_provider_urls": sandbox.provider_urls,
            "inbox_url": self.inbox_url,
            "receipt_tokens": LOCAL_RECEIPT_TOKENS,
            "receipt_urls": self.receipt_urls(),
            "webhook_secret": LOCAL_WEBHOOK_SECRET,
            "environment": LOCAL_ENVIRONMENT,
            "endpoints": self.endpoints(),
            "resources": {name: physical.to_json() for name, physical in self.resources.items()},
            "config_table": self.config_table(),
            "queues": self.queues,
            "sqs_polling": self._poller is not None,
            "function_concurrency": self.function_concurrency,
            "functions": {
                name: [{"url": url, "pid": pid} for url, pid in zip(pool.urls, pool.pids, strict=True)]
                for name, pool in self.workers.items()
            },
            "processes": self.pids(),
            "routes": [
                {"method": r.method, "path": r.path, "function": r.function_id, "api_key_required": r.api_key_required}
                for r in self.template.api_routes()
            ],
        }

    def pids(self) -> dict[str, int]:
        """Every child process of the stack, by name; a function's workers are `Function#1`, `#2`…"""
        found = {}
        for name, part in (("dynamodb", self._dynamodb), ("moto", self._moto)):
            if part is not None and part.process is not None and part.process.pid is not None:
                found[name] = part.process.pid
        for name, pool in self.workers.items():
            for number, pid in enumerate(pool.pids, start=1):
                if pid is not None:
                    found[f"{name}#{number}"] = pid
        return found

    def write_state(self) -> None:
        if self._state is None:
            return
        path = self._state.state_file
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.state(), indent=2) + "\n")
        # Other commands never see a half-written file.
        partial.replace(path)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


class Sample(NamedTuple):
    """A route's sample request from events/: the path as the event has it (its parameters filled in)."""

    method: str
    path: str
    body: str
    function_id: str


def sample_requests(stack: LocalStack, events_dir: Path = EVENTS_DIR) -> list[Sample]:
    """A sample for each route that has an event with a body in events/, in the template's order."""
    samples: dict[tuple[Any, Any], tuple[str, str]] = {}
    for event_file in sorted(events_dir.glob("*.json")):
        event = json.loads(event_file.read_text())
        if isinstance(event, dict) and event.get("body"):
            route = (event.get("httpMethod"), event.get("resource"))
            samples.setdefault(route, (str(event.get("path") or event.get("resource")), event["body"]))
    return [
        Sample(r.method, *samples[r.method, r.path], r.function_id)
        for r in stack.template.api_routes()
        if (r.method, r.path) in samples
    ]


def is_admin_path(path: str) -> bool:
    return path.startswith(ADMIN_PATHS)


def dead_letter_sources(stack: LocalStack) -> dict[str, str]:
    """Dead-letter queue -> the queue whose RedrivePolicy names it, by logical id."""
    resolver = stack.template.resolver(stack.resources)
    by_arn = {stack.resources[name].attributes.get("Arn"): name for name in stack.queues}
    found = {}
    for name in stack.queues:
        policy = resolver.resolve(stack.template.properties(name).get("RedrivePolicy"))
        if isinstance(policy, dict) and by_arn.get(policy.get("deadLetterTargetArn")):
            found[by_arn[policy["deadLetterTargetArn"]]] = name
    return found


def _python() -> str:
    """This interpreter as a command to paste: relative when it is under the current folder."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def enqueue_command(stack: LocalStack, queue_url: str, body: str) -> str:
    """A shell command that sends `body` to a local queue with boto3 (no AWS CLI needed)."""
    # json.dumps gives a double-quoted string that is also a Python literal: nothing for the shell's
    # single quotes to trip on.
    code = (
        f'import boto3; boto3.client("sqs", endpoint_url={json.dumps(stack.moto_url)}, region_name="us-east-1", '
        'aws_access_key_id="local", aws_secret_access_key="local")'
        f".send_message(QueueUrl={json.dumps(queue_url)}, MessageBody={json.dumps(body)})"
    )
    return f"{shlex.quote(_python())} -c {shlex.quote(code)}"


def sample_messages(stack: LocalStack, events_dir: Path = EVENTS_DIR) -> list[tuple[str, str]]:
    """(queue logical id, body) for each polled queue whose function has a sample API request: a
    queue's message is the function's request body."""
    bodies: dict[str, str] = {}
    for sample in sample_requests(stack, events_dir):
        # A queued message is a send's body, never an admin request's.
        if not is_admin_path(sample.path):
            bodies.setdefault(sample.function_id, sample.body)
    return [
        (trigger.queue_id, bodies[trigger.function_id])
        for trigger in stack.queue_triggers()
        if trigger.enabled and trigger.function_id in bodies
    ]


def banner(stack: LocalStack, state_file: Path | None) -> str:
    assert stack.sandbox is not None
    lines = [
        f"The SMS gateway runs locally (started in {stack.started_in or 0:.1f}s). Ctrl-C stops everything.",
        "",
        f"  API             {stack.api_url}   (stage {stack.stage_name}; /{stack.stage_name}/… works too)",
        *(
            f"  API key         {value}   (header x-api-key; key id, the tenant: {key_id})"
            for key_id, value in stack.api_keys.items()
        ),
        *(
            [
                f"  Admin API key   {stack.admin_key[1]}   (key id {stack.admin_key[0]}: manages the templates of "
                f"tenant {stack.api_key_id})"
            ]
            if stack.admin_key
            else []
        ),
        f"  Functions       {stack.function_concurrency} workers each, one invocation at a time per worker",
        f"  DynamoDB Local  {stack.dynamodb_url}",
        f"  moto            {stack.moto_url}   (Secrets Manager, SQS, CloudWatch)",
        f"  Sandbox         {stack.sandbox.url}   control {stack.sandbox.control_url}",
        "                  " + ", ".join(f"{name} {url}" for name, url in stack.sandbox.provider_urls.items()),
        f"  Inbox           {stack.inbox_url}   (every SMS the sandbox accepted; deliver, fail or lose its receipt)",
        *(
            f"  {'Receipt URLs' if number == 0 else '':<16}{name:<9}{url}"
            for number, (name, url) in enumerate(stack.receipt_urls().items())
        ),
        f"  Webhook secret  {LOCAL_WEBHOOK_SECRET}   (every tenant's: webhooks to a callback_url are signed with it)",
        "  Reconciliation  make reconcile   (no scheduler locally; AHEAD=73h expires what no receipt settled)",
    ]
    if state_file is not None:
        lines.append(f"  State           {state_file}")
    lines += ["", "Routes:"]
    for route in stack.template.api_routes():
        key = "API key" if route.api_key_required else "no key"
        lines.append(f"  {route.method:<6} {route.path:<34} {route.function_id:<18} {key}")
    polled = {t.queue_id: t for t in stack.queue_triggers() if t.enabled}
    dead_letters = dead_letter_sources(stack)
    lines += ["", "Queues:" if stack.sqs_polling else "Queues (not polled: --no-sqs-polling):"]
    width = max((len(url) for url in stack.queues.values()), default=0)
    for name, url in stack.queues.items():
        if name in polled:
            trigger = polled[name]
            at_once = trigger.maximum_concurrency or stack.function_concurrency
            role = f"-> {trigger.function_id} (batches of {trigger.batch_size}, up to {at_once} in flight)"
        elif name in dead_letters:
            role = f"dead letters of {dead_letters[name]}"
        else:
            role = ""
        lines.append(f"  {name:<26} {url:<{width}}   {role}".rstrip())
    lines += ["", "Try it:", *try_it(stack)]
    # One queue is enough to show the way; the others take the same command with their URL.
    for queue_id, body in sample_messages(stack)[:1]:
        lines.append(f"  # the same request as a message on {queue_id}:")
        lines.append(f"  {enqueue_command(stack, stack.queues[queue_id], body)}")
    lines.append("")
    return "\n".join(lines)


def curl(stack: LocalStack, sample: Sample, key: str) -> str:
    compact = json.dumps(json.loads(sample.body), ensure_ascii=False)
    return (
        f"  curl -sS -X {sample.method} {stack.api_url}{sample.path} -H 'content-type: application/json' "
        f"-H 'x-api-key: {key}' -d {shlex.quote(compact)}"
    )


def try_it(stack: LocalStack) -> list[str]:
    """A curl per sample request, with the first API key; a function's admin requests (a template
    saved) go just before its first send, with the admin key, and only when the stack has one."""
    samples = sample_requests(stack)
    admin = [s for s in samples if is_admin_path(s.path)] if stack.admin_key else []
    lines = []
    for sample in (s for s in samples if not is_admin_path(s.path)):
        first = [s for s in admin if s.function_id == sample.function_id]
        if first and stack.admin_key:
            lines.append("  # a template saved with the admin API key, then a send that names it:")
            lines += [curl(stack, s, stack.admin_key[1]) for s in first]
            admin = [s for s in admin if s not in first]
        lines.append(curl(stack, sample, stack.api_key))
    return lines


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def _api_key(text: str) -> tuple[str | None, str]:
    # A value with '=' in it (a base64 one) is given as ID=VALUE, which splits at the first '='.
    key_id, separator, value = text.partition("=")
    return (key_id, value) if separator else (None, text)


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000, help="the API's port (default 3000)")
    parser.add_argument("--host", default="127.0.0.1", help="the API's address (default 127.0.0.1)")
    parser.add_argument(
        "--api-key",
        type=_api_key,
        action="append",
        default=[],
        metavar="[ID=]KEY",
        help="an API key, with its id (the tenant; default 'local'); repeatable (default: one random key)",
    )
    parser.add_argument(
        "--admin-api-key",
        type=_api_key,
        metavar="[ID=]KEY",
        help="an API key registered as the admin of the first key's tenant: it saves that tenant's templates "
        "(default id: the tenant's, then '-admin'; default: none)",
    )
    parser.add_argument(
        "--function-concurrency",
        type=_positive,
        default=DEFAULT_FUNCTION_CONCURRENCY,
        metavar="N",
        help=f"worker processes per function, each running one invocation at a time "
        f"(default {DEFAULT_FUNCTION_CONCURRENCY})",
    )
    parser.add_argument(
        "--no-sqs-polling",
        dest="sqs_polling",
        action="store_false",
        help="do not feed the functions from their SQS queues (messages stay in the queues)",
    )
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
    try:
        api_keys = resolve_api_keys(args.api_key)
    except ValueError as exc:
        parser.error(str(exc))

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # Installed before anything starts, so a Ctrl-C during start-up still stops what is running.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        stack = LocalStack(
            template_path=args.template,
            api_port=args.port,
            host=args.host,
            api_keys=api_keys,
            admin_api_key=args.admin_api_key[1] if args.admin_api_key else None,
            admin_api_key_id=args.admin_api_key[0] if args.admin_api_key else None,
            function_concurrency=args.function_concurrency,
            parameter_overrides=dict(args.parameter_overrides),
            state_dir=args.state_dir,
            sqs_polling=args.sqs_polling,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(f"Starting the local stack, its API on {args.host}:{args.port} ...", flush=True)
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
