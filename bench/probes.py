"""Where a handler's time goes: every DynamoDB call and every provider HTTP call it makes, with its
start and end, and optional latency injected into DynamoDB calls.

- DynamoDB (and every other AWS service the handler calls: SQS, Secrets Manager): botocore event
  hooks on a session installed as `boto3.DEFAULT_SESSION` (the gateway
  makes its one DynamoDB client with `boto3.client`, as tests/integration/test_send_flow.py relies
  on). `before-call` names the operation and starts the client's own work (parameter validation,
  serialisation, signing); `before-send` starts the I/O just before the HTTP request leaves;
  `before-parse` ends it once the answer's body is in; `after-call` ends the call after parsing.
  The injected latency is a sleep inside `before-send`, so it sits where network latency would.
- Provider: `requests.adapters.HTTPAdapter.send` wrapped for the duration (the clients keep their
  sessions private): from just before the connection is taken to the answer's headers, which is
  what a session's `response` hook reports as `elapsed`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from bench.capacity import request_units
from smsgw import runtime


@dataclass(frozen=True, slots=True)
class Call:
    kind: str
    """`provider`, or the AWS service called: `dynamodb`, `sqs`, `secrets-manager`."""
    name: str
    start: float
    """The request leaves."""
    end: float
    """The answer is in."""
    call_start: float
    """The SDK call began (before serialisation and signing)."""
    call_end: float
    """The SDK call returned (after parsing)."""
    units: tuple[float, float] = (0.0, 0.0)
    """DynamoDB's on-demand (write, read) request units for it (bench.capacity)."""

    @property
    def client_time(self) -> float:
        """The SDK's own work around the I/O."""
        return (self.start - self.call_start) + (self.call_end - self.end)

    @property
    def duration(self) -> float:
        return self.end - self.start


TICK = 1 / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) another process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK


class OtherWork:
    """How much of the machine's CPU went to processes other than the benchmark's own (this
    process, its finished children, DynamoDB Local), phase by phase: other programs' tests and builds
    running on the same cores show up here."""

    def __init__(self) -> None:
        self.engine_pid: int | None = None
        self.phases: dict[str, float] = {}
        """Phase -> share of all cores busy with other work."""
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) * TICK
        times = os.times()
        mine = times.user + times.system + times.children_user + times.children_system
        if self.engine_pid is not None:
            with suppress(OSError):
                mine += process_cpu(self.engine_pid)
        return time.monotonic(), busy, mine

    def mark(self, phase: str) -> None:
        now = self._read()
        wall = now[0] - self._last[0]
        other = (now[1] - self._last[1]) - (now[2] - self._last[2])
        self.phases[phase] = max(other, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        self._last = now

    def follow(self, engine_pid: int | None) -> None:
        """Count DynamoDB Local as the benchmark's own from now on (the stack's start-up, between
        the last mark and now, is left out)."""
        self.engine_pid = engine_pid
        self._last = self._read()


class Probe:
    def __init__(self, engine_pid: int | None = None) -> None:
        self.engine_pid = engine_pid
        """DynamoDB Local's process, whose CPU time each sample records."""
        self.session = boto3.session.Session()
        self.dynamodb_delay = 0.0
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        events = self.session.events
        # Every AWS service (DynamoDB, SQS, Secrets Manager): each call is recorded under its service.
        events.register("before-parameter-build.dynamodb", self._parameters)
        events.register("before-call", self._before_call)
        events.register("before-send", self._before_send)
        events.register("before-parse", self._before_parse)
        events.register("after-call", self._after_call)
        events.register("after-call-error", self._after_call)
        self._saved_session: Any = None
        self._saved_send: Callable[..., Any] | None = None
        self.sandbox_cpu = 0.0
        """CPU seconds the in-process sandbox spent answering provider calls so far."""

    def watch_sandbox(self, sandbox: Any) -> None:
        """Count the CPU the sandbox's request threads spend (each call runs in a thread of its own,
        so its `thread_time` is that call's alone), to tell it apart from the gateway's."""
        serve = sandbox._serve_provider
        probe = self

        # The shared port passes the handler alone, a provider's own port its name too.
        def counted(handler: Any, *port: Any) -> None:
            before = time.thread_time()
            try:
                serve(handler, *port)
            finally:
                spent = time.thread_time() - before
                with probe._lock:
                    probe.sandbox_cpu += spent

        sandbox._serve_provider = counted

    # -- hooks -------------------------------------------------------------------------------

    def _parameters(self, model: Any = None, params: Any = None, **_: Any) -> None:
        self._local.units = request_units(getattr(model, "name", "?"), params or {})

    def _before_call(self, model: Any = None, event_name: str = "", **_: Any) -> None:
        local = self._local
        local.name = getattr(model, "name", "?")
        local.service = event_name.split(".")[1] if event_name.count(".") >= 1 else "?"
        if local.service != "dynamodb":
            local.units = (0.0, 0.0)
        local.call_start = time.perf_counter()
        local.start = local.end = None

    def _before_send(self, **_: Any) -> None:
        self._local.start = time.perf_counter()
        if self.dynamodb_delay and getattr(self._local, "service", "") == "dynamodb":
            time.sleep(self.dynamodb_delay)

    def _before_parse(self, **_: Any) -> None:
        self._local.end = time.perf_counter()

    def _after_call(self, **_: Any) -> None:
        now = time.perf_counter()
        local = self._local
        if getattr(local, "start", None) is None:
            return
        end = local.end if local.end is not None else now
        self._record(
            Call(
                local.service, local.name, local.start, end, local.call_start, now, getattr(local, "units", (0.0, 0.0))
            )
        )
        local.start = local.end = None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    # -- lifecycle ---------------------------------------------------------------------------

    def install(self) -> None:
        """Hook boto3 and requests; the gateway's cached clients are dropped so that new ones are
        made on the hooked session."""
        self._saved_session = boto3.DEFAULT_SESSION
        boto3.DEFAULT_SESSION = self.session
        original = HTTPAdapter.send
        self._saved_send = original
        probe = self

        def send(self: HTTPAdapter, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
            start = time.perf_counter()
            try:
                return original(self, request, *args, **kwargs)
            finally:
                end = time.perf_counter()
                probe._record(Call("provider", urlsplit(request.url or "").path, start, end, start, end))

        HTTPAdapter.send = send  # type: ignore[method-assign]
        runtime.reset()

    def uninstall(self) -> None:
        if self._saved_send is not None:
            HTTPAdapter.send = self._saved_send  # type: ignore[method-assign]
        boto3.DEFAULT_SESSION = self._saved_session
        runtime.reset()

    @contextmanager
    def installed(self) -> Iterator[Probe]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    # -- reading -----------------------------------------------------------------------------

    def take(self) -> list[Call]:
        """The calls recorded since the last take."""
        with self._lock:
            calls, self._calls = self._calls, []
        return calls


@dataclass(frozen=True)
class Sample:
    """One timed handler call and the I/O it made."""

    wall: float
    calls: tuple[Call, ...]
    answer: Any
    start: float
    end: float
    cpu: float = 0.0
    """CPU seconds this process used meanwhile, the sandbox's excepted (handler and its pools)."""
    sandbox_cpu: float = 0.0
    """CPU seconds the in-process sandbox used meanwhile."""
    engine_cpu: float = 0.0
    """CPU seconds DynamoDB Local used meanwhile (10 ms resolution)."""

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    @property
    def io(self) -> float:
        """Time during which at least one DynamoDB or provider call was in flight."""
        return covered(self.calls, self.start, self.end)

    @property
    def overhead(self) -> float:
        """Time in the handler with no I/O in flight: its own work on the critical path."""
        return self.wall - self.io


def timed(probe: Probe, fn: Callable[[], Any]) -> Sample:
    probe.take()
    engine = process_cpu(probe.engine_pid) if probe.engine_pid else 0.0
    sandbox = probe.sandbox_cpu
    cpu = time.process_time()
    start = time.perf_counter()
    answer = fn()
    end = time.perf_counter()
    cpu = time.process_time() - cpu
    sandbox = probe.sandbox_cpu - sandbox
    engine = process_cpu(probe.engine_pid) - engine if probe.engine_pid else 0.0
    return Sample(
        wall=end - start,
        calls=tuple(probe.take()),
        answer=answer,
        start=start,
        end=end,
        cpu=cpu - sandbox,
        sandbox_cpu=sandbox,
        engine_cpu=engine,
    )


def covered(calls: Sequence[Call], lo: float, hi: float) -> float:
    """The length of the union of the calls' intervals, clipped to [lo, hi]."""
    spans = sorted((max(c.start, lo), min(c.end, hi)) for c in calls)
    total = 0.0
    current_start = current_end = None
    for start, end in spans:
        if end <= start:
            continue
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total


def rounds(calls: Sequence[Call]) -> int:
    """Sequential rounds: a call is one round after the latest-round call that ended before it
    started. The answer is the longest chain of calls each of which waited for the previous one."""
    return max((depth for _, depth in depths(calls)), default=0)


def depths(calls: Sequence[Call]) -> list[tuple[Call, int]]:
    """Each call with its round: one after the latest-round call that ended before it started."""
    ordered = sorted(calls, key=lambda c: c.start)
    found: list[tuple[Call, int]] = []
    for call in ordered:
        found.append((call, 1 + max((d for c, d in found if c.end <= call.start), default=0)))
    return found


def critical_rounds(calls: Sequence[Call]) -> tuple[int, int]:
    """(DynamoDB rounds, provider rounds) the send waits for, from DynamoDB and provider calls
    together: each round of the whole send is a provider round if a provider call is in it, and a
    DynamoDB round otherwise, so a DynamoDB call made beside a provider call (the read-back of what
    is left) costs no round of its own."""
    levels: dict[int, set[str]] = {}
    for call, depth in depths([c for c in calls if c.kind in ("dynamodb", "provider")]):
        levels.setdefault(depth, set()).add(call.kind)
    provider = sum(1 for kinds in levels.values() if "provider" in kinds)
    return len(levels) - provider, provider
