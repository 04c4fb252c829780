"""Provider calls from the wire to an answer: read the request, find the provider whose path it
is on, let any injected fault strike, have the provider answer, and record the call and the
messages it sent (the inbox; their receipts follow)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from local.sandbox.faults import TRANSPORT_KINDS, Fault
from local.sandbox.inbox import Sms
from local.sandbox.provider import Incoming, Provider, Reply
from local.sandbox.receipts import PROVIDERS as RECEIPT_PROVIDERS
from local.sandbox.receipts import Receipts
from local.sandbox.registry import PROVIDERS
from local.sandbox.state import State
from local.sandbox.transport import JSON_TYPE, BadRequest, Handler

logger = logging.getLogger(__name__)

# Valid UTF-8 but not JSON: a client must fail to parse it, not to decode it.
GARBLED_BODY = b'{"success": true, "data": [{"phoneNumber": "1380013'

Record = Callable[..., None]


class Dispatcher:
    def __init__(self, state: State, receipts: Receipts | None = None) -> None:
        self.state = state
        self.receipts = receipts
        self.providers: list[Provider] = [provider(state) for provider in PROVIDERS]

    def reset(self) -> None:
        """Forget calls and faults, and what every provider remembers."""
        with self.state.lock:
            self.state.reset()
            for provider in self.providers:
                provider.forget()

    def serve(self, handler: Handler, only: str | None = None) -> None:
        """Answer one call; `only` names the provider whose port it came to (None: the shared port)."""
        state = self.state
        try:
            incoming = self.read(handler)
        except BadRequest as exc:
            self._refuse_unreadable(handler, exc)
            return
        provider, operation, phones = self.route(incoming, only)
        body = incoming.json_body_or_none() if provider is None else provider.recorded_body(incoming)
        record: Record = functools.partial(state.record, incoming, operation, phones, body)
        if provider is None:
            record(outcome="rejected", accepted_phones=[], status=404)
            handler.send_json(404, {"error": f"no provider operation at {incoming.path}"})
            return

        transport = state.faults.take(operation, phones, TRANSPORT_KINDS)
        slow = state.faults.take(operation, phones, frozenset({"slow"}))
        if transport is not None and transport.kind in ("timeout", "reset"):
            record(outcome=f"fault:{transport.kind}", accepted_phones=[])
            self._hang_up(handler, transport)
            return

        if transport is None:
            reply = self._handle(provider, incoming, operation, phones, record)
            if reply is None:
                handler.send_json(500, {"error": "the sandbox failed; see its log"})
                return
        else:
            garbled = transport.kind == "garbled"
            reply = Reply(200, None, "fault:garbled") if garbled else provider.fault_reply(transport)
            record(outcome=reply.outcome, accepted_phones=[], status=reply.status, code=reply.code)

        if slow is not None:
            state.stopping.wait(slow.wait)
        if reply.payload is None:
            handler.send_bytes(reply.status, GARBLED_BODY, JSON_TYPE)
        else:
            handler.send_json(reply.status, reply.payload)

    def read(self, handler: Handler) -> Incoming:
        at = self.state.now()
        body = handler.read_body()
        parts = urlsplit(handler.path)
        try:
            query = dict(parse_qsl(parts.query, keep_blank_values=True, errors="strict"))
            form: dict[str, str] = {}
            content_type = (handler.headers.get("Content-Type") or "").lower()
            if content_type.startswith("application/x-www-form-urlencoded"):
                form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError as exc:
            raise BadRequest("parameters are not UTF-8") from exc
        return Incoming(
            method=handler.command,
            path=parts.path or "/",
            query=query,
            form=form,
            headers=dict(handler.headers.items()),
            raw_body=body,
            at=at,
        )

    def route(self, incoming: Incoming, only: str | None = None) -> tuple[Provider | None, str, list[str]]:
        # A provider's own port answers its paths alone, as its real host would.
        for provider in (p for p in self.providers if only in (None, p.NAME)):
            operation = provider.operation(incoming)
            if operation is not None:
                return provider, operation, provider.phones(incoming)
        return None, "unknown", []

    def _refuse_unreadable(self, handler: Handler, exc: BadRequest) -> None:
        unreadable = Incoming(
            method=handler.command,
            path=urlsplit(handler.path).path or "/",
            query={},
            form={},
            headers=dict(handler.headers.items()),
            raw_body=b"",
            at=self.state.now(),
        )
        self.state.record(unreadable, "unknown", [], None, outcome="rejected", accepted_phones=[], status=400)
        handler.send_json(400, {"error": str(exc)})

    def _inbox(self, provider: Provider, incoming: Incoming, reply: Reply) -> list[Sms]:
        """The accepted messages into the inbox; a failure there leaves the call's answer alone."""
        try:
            sent = provider.sent(incoming, reply)
        except Exception:
            logger.exception("the inbox could not read %s's accepted call", provider.NAME)
            return []
        pushes = provider.NAME in RECEIPT_PROVIDERS
        return self.state.inbox.add(sent, incoming.at, "waiting" if pushes else "unavailable")

    def _hang_up(self, handler: Handler, fault: Fault) -> None:
        if fault.kind == "timeout":
            self.state.stopping.wait(fault.wait)
            handler.close_connection = True
        else:
            handler.abort()

    def _handle(
        self, provider: Provider, incoming: Incoming, operation: str, phones: list[str], record: Record
    ) -> Reply | None:
        """The provider's answer, recorded together with its effects; None when the provider failed."""
        added: list[Sms] = []
        try:
            with self.state.lock:
                reply = provider.handle(incoming, phones)
                record(
                    outcome=reply.outcome,
                    accepted_phones=reply.accepted,
                    status=reply.status,
                    code=reply.code,
                )
                if reply.accepted:
                    added = self._inbox(provider, incoming, reply)
        except Exception:
            logger.exception("sandbox failure on %s", operation)
            record(outcome="error", accepted_phones=[], status=500)
            return None
        # Outside the sandbox's lock: the receipts' pusher takes its own lock before that one.
        if added and self.receipts is not None:
            self.receipts.accepted(added)
        return reply
