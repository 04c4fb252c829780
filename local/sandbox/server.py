"""The provider sandbox as a whole: its provider listeners and the control listener on loopback,
their lifecycle, the recording and faults that tests read and set, and the inbox of accepted
messages whose receipts it pushes (local.sandbox.receipts).

Every provider answers on the shared port (`url`) and on a port of its own (`url_for`), so that
one provider can refuse connections while the others answer: a client pointed at a provider's own
port sees that provider go down alone. The shared port goes down only with all of them."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from local.sandbox import control
from local.sandbox.accounts import DEFAULT_ACCOUNTS, SandboxAccounts
from local.sandbox.dispatch import Dispatcher
from local.sandbox.faults import Fault
from local.sandbox.inbox import Sms
from local.sandbox.receipts import Receipts, ReceiptSettings
from local.sandbox.registry import NAMES
from local.sandbox.state import Clock, RecordedCall, State
from local.sandbox.transport import ControlHandler, Handler, ProviderHandler, Server, close, listen


class ProviderSandbox:
    """Every provider operation on one loopback port, each provider's on a port of its own too,
    and a JSON control API on another."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        accounts: SandboxAccounts = DEFAULT_ACCOUNTS,
        clock: Clock | None = None,
        provider_ports: Mapping[str, int] | None = None,
    ) -> None:
        """`provider_ports` sets the port of a provider's own listener (default: any free port)."""
        try:
            loopback = ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"the sandbox binds a loopback IPv4 address only, not {host!r}") from exc
        if loopback.version != 4 or not loopback.is_loopback:
            raise ValueError(f"the sandbox binds a loopback IPv4 address only, not {host!r}")
        unknown = sorted(set(provider_ports or {}) - set(NAMES))
        if unknown:
            raise ValueError(f"no provider {', '.join(unknown)}; the sandbox has {', '.join(NAMES)}")
        self._host = host
        self._port = port
        self._control_port = control_port
        self._provider_ports = {name: (provider_ports or {}).get(name, 0) for name in NAMES}
        self._state = State(accounts, clock or (lambda: datetime.now(UTC)))
        self._receipts = Receipts(self._state.inbox, self._state.now, monotonic=time.monotonic)
        self._dispatcher = Dispatcher(self._state, self._receipts)
        self._lifecycle = threading.Lock()
        self._provider: Server | None = None
        self._own: dict[str, Server | None] = dict.fromkeys(NAMES)
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
                self._port = self._provider.server_port
                for name in NAMES:
                    own = self._own[name] = self._listen_for(name, self._provider_ports[name])
                    self._provider_ports[name] = own.server_port
            except OSError:
                self._close_all()
                raise
            self._receipts.start()
            self._started = True
        return self

    def stop(self) -> None:
        with self._lifecycle:
            self._state.stopping.set()
            self._receipts.stop()
            self._close_all()
            self._started = False

    def _close_all(self) -> None:
        for server in (self._provider, self._control, *self._own.values()):
            if server is not None:
                close(server)
        self._provider = self._control = None
        self._own = dict.fromkeys(NAMES)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def go_down(self, provider: str | None = None) -> None:
        """Close a provider's own listener, or every provider listener (the shared one too):
        connecting is refused until come_up()."""
        with self._lifecycle:
            self._require_started()
            for name in self._named(provider):
                server = self._own[name]
                if server is not None:
                    close(server)
                    self._own[name] = None
            if provider is None and self._provider is not None:
                close(self._provider)
                self._provider = None

    def come_up(self, provider: str | None = None) -> None:
        """Listen again on the same ports: a provider's own, or every one (a no-op when up)."""
        with self._lifecycle:
            self._require_started()
            if provider is None and self._provider is None:
                self._provider = self._listen_for_providers(self._port)
            for name in self._named(provider):
                if self._own[name] is None:
                    self._own[name] = self._listen_for(name, self._provider_ports[name])

    @property
    def is_up(self) -> bool:
        """Whether the shared provider port answers."""
        return self._provider is not None

    def is_up_for(self, provider: str) -> bool:
        """Whether a provider's own port answers."""
        return self._own[self._named(provider)[0]] is not None

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
        """Every provider's operations, on one port."""
        return f"http://{self._host}:{self.port}"

    def url_for(self, provider: str) -> str:
        """One provider's operations alone, on a port of its own."""
        self._require_started()
        return f"http://{self._host}:{self._provider_ports[self._named(provider)[0]]}"

    @property
    def provider_urls(self) -> dict[str, str]:
        """Each provider's own URL, by name."""
        return {name: self.url_for(name) for name in NAMES}

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
        """Forget calls, faults, daily counters, nonces, reqIds and the inbox; the receipt settings
        go back to their defaults, but for where receipts go."""
        self._receipts.reset()
        self._dispatcher.reset()

    # Receipts and the inbox

    @property
    def receipt_settings(self) -> ReceiptSettings:
        return self._receipts.settings

    def configure_receipts(self, **changes: Any) -> ReceiptSettings:
        """Where receipts go (`urls={"aliyun": …, "ronglian": …}`), whether they go by themselves
        (`auto`), after how long (`delay`), and how often they are duplicated, reordered or lost;
        ValueError for a setting that is not one."""
        return self._receipts.configure(changes)

    def receipt_stats(self) -> dict[str, Any]:
        return self._receipts.stats()

    def wait_for_receipts(self, timeout: float = 30.0) -> None:
        """Return once no receipt is due or being pushed; TimeoutError if not within `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._receipts.idle():
            if time.monotonic() > deadline:
                raise TimeoutError(f"receipts still due after {timeout} s: {self._receipts.stats()}")
            time.sleep(0.05)

    def messages(self) -> list[Sms]:
        """Every message the sandbox accepted, in order, with its delivery and receipt."""
        return self._state.inbox.all()

    def inbox_by_phone(self) -> list[dict[str, Any]]:
        """The messages as JSON, grouped per phone number, each handset's newest first."""
        return self._state.inbox.by_phone()

    def act(self, sms_id: int, action: str, code: str | None = None) -> Sms:
        """Deliver, fail or lose one message's receipt (the inbox page's buttons)."""
        return self._receipts.act(sms_id, action, code)

    # Internals

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the sandbox is not started")

    @staticmethod
    def _named(provider: str | None) -> tuple[str, ...]:
        if provider is None:
            return NAMES
        if provider not in NAMES:
            raise ValueError(f"no provider {provider!r}; the sandbox has {', '.join(NAMES)}")
        return (provider,)

    def _listen_for_providers(self, port: int) -> Server:
        # `_serve_provider` is looked up on every call, so a wrapper set on the instance (the
        # benchmark's CPU probe) sees every provider call.
        return listen(self._host, port, ProviderHandler, lambda handler: self._serve_provider(handler), "provider")

    def _listen_for(self, name: str, port: int) -> Server:
        return listen(self._host, port, ProviderHandler, lambda handler: self._serve_provider(handler, name), name)

    def _serve_provider(self, handler: Handler, only: str | None = None) -> None:
        self._dispatcher.serve(handler, only)

    def _serve_control(self, handler: Handler) -> None:
        control.serve(self, handler)
