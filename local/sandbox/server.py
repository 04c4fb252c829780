"""The provider sandbox as a whole: the provider listener and the control listener on loopback,
their lifecycle, and the recording and faults that tests read and set."""

from __future__ import annotations

import ipaddress
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from local.sandbox import control
from local.sandbox.accounts import DEFAULT_ACCOUNTS, SandboxAccounts
from local.sandbox.dispatch import Dispatcher
from local.sandbox.faults import Fault
from local.sandbox.state import Clock, RecordedCall, State
from local.sandbox.transport import ControlHandler, Handler, ProviderHandler, Server, close, listen


class ProviderSandbox:
    """Every provider operation on one loopback port, and a JSON control API on another."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        accounts: SandboxAccounts = DEFAULT_ACCOUNTS,
        clock: Clock | None = None,
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"the sandbox binds a loopback IPv4 address only, not {host!r}") from exc
        if loopback.version != 4 or not loopback.is_loopback:
            raise ValueError(f"the sandbox binds a loopback IPv4 address only, not {host!r}")
        self._host = host
        self._port = port
        self._control_port = control_port
        self._state = State(accounts, clock or (lambda: datetime.now(UTC)))
        self._dispatcher = Dispatcher(self._state)
        self._lifecycle = threading.Lock()
        self._provider: Server | None = None
        self._control: Server | None = None
        self._started = False

    # Lifecycle

    def start(self) -> Self:
        with self._lifecycle:
            if self._started:
                return self
            self._state.stopping = threading.Event()
            self._control = listen(self._host, self._control_port, ControlHandler, self._serve_control, "control")
            self._control_port = self._control.server_port
            try:
                self._provider = self._listen_for_providers(self._port)
            except OSError:
                close(self._control)
                self._control = None
                raise
            self._port = self._provider.server_port
            self._started = True
        return self

    def stop(self) -> None:
        with self._lifecycle:
            self._state.stopping.set()
            for server in (self._provider, self._control):
                if server is not None:
                    close(server)
            self._provider = self._control = None
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def go_down(self) -> None:
        """Close the provider listener: connecting is refused until come_up()."""
        with self._lifecycle:
            self._require_started()
            if self._provider is not None:
                close(self._provider)
                self._provider = None

    def come_up(self) -> None:
        """Listen again on the same provider port (a no-op when already up)."""
        with self._lifecycle:
            self._require_started()
            if self._provider is None:
                self._provider = self._listen_for_providers(self._port)

    @property
    def is_up(self) -> bool:
        return self._provider is not None

    @property
    def port(self) -> int:
        self._require_started()
        return self._port

    @property
    def control_port(self) -> int:
        self._require_started()
        return self._control_port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self._host}:{self.control_port}"

    # Recording and faults

    @property
    def calls(self) -> list[RecordedCall]:
        with self._state.lock:
            return list(self._state.calls)

    def calls_for(self, operation: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.operation == operation]

    def accepted_phones(self) -> list[str]:
        """Every number accepted, once per accepted send, in the order they were accepted."""
        with self._state.lock:
            return list(self._state.accepted)

    @property
    def faults(self) -> list[Fault]:
        return self._state.faults.active()

    def add_fault(self, fault: Fault) -> None:
        self._state.faults.add(fault)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def reset(self) -> None:
        """Forget calls, faults, daily counters, nonces and reqIds."""
        self._dispatcher.reset()

    # Internals

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the sandbox is not started")

    def _listen_for_providers(self, port: int) -> Server:
        # `_serve_provider` is looked up on every call, so a wrapper set on the instance (the
        # benchmark's CPU probe) sees every provider call.
        return listen(self._host, port, ProviderHandler, lambda handler: self._serve_provider(handler), "provider")

    def _serve_provider(self, handler: Handler) -> None:
        self._dispatcher.serve(handler)

    def _serve_control(self, handler: Handler) -> None:
        control.serve(self, handler)
