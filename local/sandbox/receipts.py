"""Delivery receipts, pushed the way Aliyun and Ronglian push them, with the faults real pushes
have: late, duplicated, out of order, lost.

After the sandbox accepts an Aliyun or a Ronglian send, each number's receipt is pushed to the
provider's receipt URL `delay` seconds later (`auto`), or when the inbox page's buttons say so.
What the sandbox decided for a number (delivered or not) is also what Aliyun's QuerySendDetails
answers once its receipt is due, pushed or lost, so that reconciliation can recover what a lost
receipt never said. Polyv pushes nothing.

- Aliyun: a JSON array of SmsReport (https://help.aliyun.com/document_detail/101867.html), the
  receipts due together in one push, up to 100.
- Ronglian: one status report per number, `{"Request": {...}}` as JSON, or `<Request>` as XML
  with `format: "xml"`.

A push the receipt URL does not take (not a 2xx, no answer) is tried again after 1 and 3 seconds,
then counted as failed. Sandbox choice: the providers retry over minutes (Aliyun after 1, 5 and 10),
which would only slow a local stack down.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal
from xml.sax.saxutils import escape

from local.sandbox.inbox import Inbox, Sms
from local.sandbox.provider import BEIJING

logger = logging.getLogger(__name__)

PROVIDERS = ("aliyun", "ronglian")
RETRY_DELAYS = (1.0, 3.0)
ALIYUN_PER_PUSH = 100
PUSH_TIMEOUT = 10.0
# What each provider says for a delivered number, and for one that was not (when not told otherwise).
DELIVERED_CODES = {"aliyun": "DELIVERED", "ronglian": "DELIVRD"}
UNDELIVERED_CODES = {"aliyun": "MOBILE_NOT_ON_SERVICE", "ronglian": "UNDELIV"}
ALIYUN_MESSAGES = {"DELIVERED": "用户接收成功", "MOBILE_NOT_ON_SERVICE": "停机、空号、暂停服务、关机、不在服务区"}
Action = Literal["deliver", "fail", "lose"]
ACTIONS: tuple[Action, ...] = ("deliver", "fail", "lose")


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1")
    return float(value)


@dataclass(frozen=True)
class ReceiptSettings:
    """Where receipts go and how they misbehave; every probability is per number."""

    urls: Mapping[str, str] = field(default_factory=dict)
    auto: bool = True
    delay: float = 1.0
    duplicate: float = 0.0
    reorder: float = 0.0
    lose: float = 0.0
    fail: float = 0.0
    format: Literal["json", "xml"] = "json"
    seed: int | None = None

    def updated(self, changes: Mapping[str, Any]) -> ReceiptSettings:
        """These settings with `changes` (JSON from the control API) applied; ValueError if wrong."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown receipt settings {unknown}; known: {sorted(known)}")
        values = dict(changes)
        for name in ("duplicate", "reorder", "lose", "fail"):
            if name in values:
                values[name] = _probability(name, values[name])
        if "delay" in values:
            delay = values["delay"]
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
                raise ValueError("delay must be a number of seconds from 0 to 3600")
            values["delay"] = float(delay)
        if "auto" in values and not isinstance(values["auto"], bool):
            raise ValueError("auto must be true or false")
        if "format" in values and values["format"] not in ("json", "xml"):
            raise ValueError('format must be "json" or "xml" (Ronglian\'s status reports)')
        if "seed" in values and values["seed"] is not None and not isinstance(values["seed"], int):
            raise ValueError("seed must be an integer or null")
        if "urls" in values:
            values["urls"] = {**self.urls, **_urls(values["urls"])}
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "urls": dict(self.urls)}


def _urls(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not set(value) <= set(PROVIDERS):
        raise ValueError(f"urls must map {' and '.join(PROVIDERS)} to their receipt URLs")
    for provider, url in value.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"the {provider} receipt URL must be an http(s) URL")
    return dict(value)


# -- Bodies ------------------------------------------------------------------------------------


def _beijing(moment: datetime, pattern: str) -> str:
    return moment.astimezone(BEIJING).strftime(pattern)


def aliyun_report(sms: Sms) -> dict[str, Any]:
    """One SmsReport, as Aliyun pushes it."""
    assert sms.outcome is not None
    assert sms.reported_at is not None
    code = sms.code or DELIVERED_CODES["aliyun"]
    return {
        "phone_number": sms.sent.msisdn if sms.sent.operation == "SendInterSms" else sms.sent.wire,
        "send_time": _beijing(sms.at, "%Y-%m-%d %H:%M:%S"),
        "report_time": _beijing(sms.reported_at, "%Y-%m-%d %H:%M:%S"),
        "success": sms.outcome == "delivered",
        "err_code": code,
        "err_msg": ALIYUN_MESSAGES.get(code, code),
        "sms_size": "1",
        "biz_id": sms.sent.message_id,
        "out_id": sms.sent.out_id or "",
    }


def ronglian_report(sms: Sms) -> dict[str, str]:
    """One status report's fields, as Ronglian pushes them."""
    assert sms.outcome is not None
    assert sms.reported_at is not None
    return {
        "action": "SMSArrived",
        "smsType": "1",
        "apiVersion": "2013-12-26",
        "content": sms.sent.message_id,
        "fromNum": sms.sent.wire,
        "dateSent": _beijing(sms.at, "%Y%m%d%H%M%S"),
        "deliverCode": sms.code or DELIVERED_CODES["ronglian"],
        "recvTime": _beijing(sms.reported_at, "%Y%m%d%H%M%S"),
        "status": "0" if sms.outcome == "delivered" else "1",
        "reqId": sms.sent.req_id or "",
    }


def body_of(provider: str, messages: Sequence[Sms], fmt: str) -> tuple[bytes, str]:
    """A push's body and content type: Aliyun's array, or Ronglian's report of its one message."""
    if provider == "aliyun":
        return json.dumps([aliyun_report(m) for m in messages], ensure_ascii=False).encode(), "application/json"
    fields_ = ronglian_report(messages[0])
    if fmt == "xml":
        inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields_.items())
        return f'<?xml version="1.0" encoding="UTF-8"?><Request>{inner}</Request>'.encode(), "application/xml"
    return json.dumps({"Request": fields_}, ensure_ascii=False).encode(), "application/json"


def post(url: str, body: bytes, content_type: str) -> int | None:
    """The receipt URL's HTTP status, or None when it did not answer."""
    # Only http(s): the settings refuse any other scheme.
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


# -- The pusher --------------------------------------------------------------------------------


@dataclass(order=True, frozen=True)
class _Job:
    due: float
    seq: int
    sms_id: int = field(compare=False)
    round: int = field(compare=False)
    lost: bool = field(compare=False, default=False)
    attempt: int = field(compare=False, default=0)


class Receipts:
    """Decides each accepted number's fate and pushes its receipt when it is due."""

    def __init__(
        self,
        inbox: Inbox,
        now: Callable[[], datetime],
        *,
        monotonic: Callable[[], float],
        send: Callable[[str, bytes, str], int | None] = post,
    ) -> None:
        self.inbox = inbox
        self.now = now
        self.monotonic = monotonic
        self.send = send
        self.settings = ReceiptSettings()
        self._random = random.Random()  # noqa: S311 - faults, not secrets
        self._jobs: list[_Job] = []
        self._rounds: dict[int, int] = {}
        self._seq = itertools.count()
        self._in_flight = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-receipt")
        self._thread = threading.Thread(target=self._run, name="sandbox-receipts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(2)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._thread = self._pool = None

    def configure(self, changes: Mapping[str, Any]) -> ReceiptSettings:
        with self._changed:
            self.settings = self.settings.updated(changes)
            if "seed" in changes:
                self._random.seed(self.settings.seed)
            return self.settings

    def reset(self) -> None:
        """Forget what is due; the settings go back to their defaults but for the URLs."""
        with self._changed:
            self._jobs.clear()
            self._rounds.clear()
            self.settings = ReceiptSettings(urls=self.settings.urls)
            self._changed.notify_all()

    def idle(self) -> bool:
        """Nothing due and nothing being pushed."""
        with self._changed:
            return not self._jobs and self._in_flight == 0

    def stats(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for sms in self.inbox.all():
            counts[sms.receipt] = counts.get(sms.receipt, 0) + 1
        with self._changed:
            return {"due": len(self._jobs), "pushing": self._in_flight, "receipts": counts}

    # -- decisions ---------------------------------------------------------------------------

    def accepted(self, messages: Sequence[Sms]) -> None:
        """Numbers just accepted: each one's fate, when `auto`. Not to be called with the inbox's
        lock held: the pusher takes this object's lock first, then the inbox's."""
        with self._changed:
            settings = self.settings
            if not settings.auto:
                return
            now = self.monotonic()
            for sms in messages:
                if sms.sent.provider not in PROVIDERS:
                    continue
                failed = self._random.random() < settings.fail
                with self.inbox.lock:
                    sms.outcome = "undelivered" if failed else "delivered"
                    sms.code = (UNDELIVERED_CODES if failed else DELIVERED_CODES)[sms.sent.provider]
                    sms.receipt = "scheduled"
                lost = self._random.random() < settings.lose
                self._schedule(sms, now + self._delay(settings), lost=lost)
                # A lost receipt is never pushed, not even a copy of it.
                if not lost and self._random.random() < settings.duplicate:
                    self._schedule(sms, now + self._delay(settings) + self._random.random() * max(settings.delay, 0.5))
            self._changed.notify_all()

    def _delay(self, settings: ReceiptSettings) -> float:
        """When a receipt is due; a reordered one comes at once (possibly before the gateway has
        recorded its send) or after the others."""
        if self._random.random() >= settings.reorder:
            return settings.delay
        if self._random.random() < 0.5:
            return 0.0
        return settings.delay + max(settings.delay, 0.5) * (1 + self._random.random())

    def act(self, sms_id: int, action: str, code: str | None = None) -> Sms:
        """The inbox page's buttons: deliver or fail now (a receipt pushed at once), or lose the
        receipt (the number counts as delivered; only QuerySendDetails says so)."""
        if action not in ACTIONS:
            raise ValueError(f"no action {action!r}; the actions are {', '.join(ACTIONS)}")
        sms = self.inbox.get(sms_id)
        if sms is None:
            raise LookupError(f"no message {sms_id}")
        provider = sms.sent.provider
        if provider not in PROVIDERS:
            raise ValueError(f"{provider} sends no receipts")
        with self._changed:
            self._rounds[sms_id] = self._rounds.get(sms_id, 0) + 1  # whatever was due is void
            with self.inbox.lock:
                if action == "fail":
                    sms.outcome, sms.code = "undelivered", code or UNDELIVERED_CODES[provider]
                elif action == "deliver" or sms.outcome is None:
                    sms.outcome, sms.code = "delivered", DELIVERED_CODES[provider]
                sms.receipt = "scheduled"
                sms.reported_at = None
            self._schedule(sms, self.monotonic(), lost=action == "lose")
            self._changed.notify_all()
        return sms

    def _schedule(self, sms: Sms, due: float, *, lost: bool = False, attempt: int = 0) -> None:
        job = _Job(due, next(self._seq), sms.id, self._rounds.get(sms.id, 0), lost, attempt)
        heapq.heappush(self._jobs, job)

    # -- pushing ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                wait = self._jobs[0].due - self.monotonic() if self._jobs else math.inf
                if wait > 0:
                    self._changed.wait(min(wait, 1.0))
                    continue
                due = []
                while self._jobs and self._jobs[0].due <= self.monotonic():
                    due.append(heapq.heappop(self._jobs))
                pushes = self._settle(due)
                self._in_flight += len(pushes)
            for provider, messages, attempt in pushes:
                assert self._pool is not None
                self._pool.submit(self._push, provider, messages, attempt)

    def _settle(self, due: Sequence[_Job]) -> list[tuple[str, list[Sms], int]]:
        """The receipts of jobs come due: lost ones marked, the others grouped into pushes."""
        aliyun: dict[int, list[Sms]] = {}
        pushes: list[tuple[str, list[Sms], int]] = []
        now = self.now()
        for job in due:
            sms = self.inbox.get(job.sms_id)
            if sms is None or job.round != self._rounds.get(job.sms_id, 0):
                continue
            with self.inbox.lock:
                sms.reported_at = sms.reported_at or now
                if job.lost:
                    sms.receipt = "lost"
                    continue
            if sms.sent.provider == "aliyun":
                aliyun.setdefault(job.attempt, []).append(sms)
            else:
                pushes.append(("ronglian", [sms], job.attempt))
        for attempt, messages in aliyun.items():
            if self.settings.reorder:
                self._random.shuffle(messages)
            for start in range(0, len(messages), ALIYUN_PER_PUSH):
                pushes.append(("aliyun", messages[start : start + ALIYUN_PER_PUSH], attempt))
        return pushes

    def _push(self, provider: str, messages: list[Sms], attempt: int) -> None:
        try:
            settings = self.settings
            url = settings.urls.get(provider)
            status = None
            if url:
                body, content_type = body_of(provider, messages, settings.format)
                status = self.send(url, body, content_type)
            self._pushed(messages, attempt, status, url)
        except Exception:
            logger.exception("receipt push failed")
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _pushed(self, messages: Sequence[Sms], attempt: int, status: int | None, url: str | None) -> None:
        ok = status is not None and 200 <= status < 300
        retry = url is not None and not ok and attempt < len(RETRY_DELAYS)
        with self._changed:
            for sms in messages:
                with self.inbox.lock:
                    sms.pushes.append({"at": self.now().isoformat(), "status": status, "url": url})
                    if ok:
                        sms.receipt = "pushed"
                    elif not retry:
                        sms.receipt = "failed"
                if retry:
                    due = self.monotonic() + RETRY_DELAYS[attempt]
                    heapq.heappush(
                        self._jobs, _Job(due, next(self._seq), sms.id, self._rounds.get(sms.id, 0), False, attempt + 1)
                    )
            self._changed.notify_all()


def query_send_details(inbox: Inbox, phone: str, biz_id: str | None, send_date: str) -> list[dict[str, Any]]:
    """Aliyun's records of a number on a day (Beijing), of one BizId if given: SendStatus 3
    delivered, 2 failed, 1 waiting for the carrier (its receipt is not due yet)."""
    found = []
    for sms in inbox.find("aliyun", phone, biz_id or None):
        if _beijing(sms.at, "%Y%m%d") != send_date:
            continue
        reported = sms.reported_at is not None and sms.outcome is not None
        status = 1 if not reported else (3 if sms.outcome == "delivered" else 2)
        found.append(
            {
                "PhoneNum": sms.sent.msisdn if sms.sent.operation == "SendInterSms" else sms.sent.wire,
                "SendStatus": status,
                "ErrCode": (sms.code or "") if reported else "",
                "TemplateCode": sms.sent.template,
                "Content": sms.sent.text,
                "SendDate": _beijing(sms.at, "%Y-%m-%d %H:%M:%S"),
                "ReceiveDate": _beijing(sms.reported_at, "%Y-%m-%d %H:%M:%S") if sms.reported_at else "",
                "OutId": sms.sent.out_id or "",
            }
        )
    return found
