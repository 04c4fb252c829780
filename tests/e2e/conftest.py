"""Local stacks for end-to-end tests: DynamoDB Local, moto server, the provider sandbox, one
pool of workers per function and the API Gateway emulator, on free ports, once per session."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.running import QUOTAS_OFF, running, running_for_delivery
from local.stack import LocalStack

TENANT_KEYS = {"tenant-a": "key-of-tenant-a", "tenant-b": "key-of-tenant-b"}
REPOSITORY = Path(__file__).resolve().parents[2]


def make_run_api_key() -> str:
    """The API key `make run` gives its stack (the Makefile's `API_KEY`), which the README shows."""
    found = re.search(r"^API_KEY \?= (\S+)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    assert found is not None, "the Makefile gives API_KEY no default"
    return found[1]


class FunctionLog:
    """What the stack's functions print from here on, as CloudWatch Logs would receive it: their
    log lines and the EMF documents of their metrics (`local.running.running` sends it all to functions.log)."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.state_dir is not None
        self.log = Path(stack.state_dir) / "functions.log"
        self.start = self.log.stat().st_size

    def documents(self) -> list[dict[str, Any]]:
        """Every JSON object printed. The workers share the file, and `print` writes a document and
        its newline apart: another worker's document may stand between them, on the same line."""
        decoder = json.JSONDecoder()
        found = []
        for line in self.log.read_bytes()[self.start :].decode(errors="replace").splitlines():
            at = 0
            while line.startswith("{", at):
                try:
                    document, at = decoder.raw_decode(line, at)
                except ValueError:
                    break
                if isinstance(document, dict):
                    found.append(document)
        return found

    def logged(self, message: str) -> list[dict[str, Any]]:
        """The log lines with this message."""
        return [d for d in self.documents() if d.get("message") == message]

    def total(self, metric: str, by: str) -> dict[str, float]:
        """A metric's values summed per value of one of its dimensions."""
        found: dict[str, float] = {}
        for document in self.documents():
            for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
                dimensions = {name for names in directive["Dimensions"] for name in names}
                if by in dimensions and metric in {m["Name"] for m in directive["Metrics"]}:
                    value = document[metric]
                    key = document[by]
                    found[key] = found.get(key, 0) + sum(value if isinstance(value, list) else [value])
        return found


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway with its quotas off, so that tests can send to the same numbers again."""
    overrides = {
        # Read the secret on every request, so that Secrets Manager going down shows at once.
        "SecretMaxAgeSeconds": "0",
        **{f"{provider}QuotaLimits": QUOTAS_OFF for provider in ("Polyv", "Aliyun", "Ronglian")},
    }
    with running(tmp_path_factory.mktemp("local-stack"), parameter_overrides=overrides) as stack:
        yield stack


@pytest.fixture(scope="session")
def quota_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway with one tight daily quota per provider, two tenants, and four workers per
    function so that concurrent requests really run at once, as on Lambda."""
    only = "phone_per_minute=0,phone_per_hour=0,phone_per_day=0,account_per_day=0,ip_per_day=0,{}=10"
    overrides = {
        "PolyvQuotaLimits": only.format("phone_per_day"),
        "RonglianQuotaLimits": only.format("account_per_day"),
        "AliyunQuotaLimits": only.format("ip_per_day"),
    }
    with running(
        tmp_path_factory.mktemp("quota-stack"),
        parameter_overrides=overrides,
        api_keys=TENANT_KEYS,
        function_concurrency=4,
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def queue_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway fed by its queues through the local SQS poller, with short visibility
    timeouts and three deliveries before the dead-letter queue, so that retries show quickly."""
    overrides = {
        "QueueVisibilityTimeoutSeconds": "2",
        "QueueMaxReceiveCount": "3",
        **{f"{provider}QuotaLimits": QUOTAS_OFF for provider in ("Polyv", "Aliyun", "Ronglian")},
    }
    with running(
        tmp_path_factory.mktemp("queue-stack"),
        parameter_overrides=overrides,
        api_keys={"shop-1": "key-of-shop-1"},
        function_concurrency=4,
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway with its default quotas (one SMS per number per minute), short request budgets
    so that an unfinished attempt's claim ends within seconds, and four workers per function."""
    overrides = {
        "SendBudgetSeconds": "4",
        "RequestBudgetSeconds": "6",
        "QueueVisibilityTimeoutSeconds": "3",
        "QueueMaxReceiveCount": "6",
    }
    with running(
        tmp_path_factory.mktemp("strict-stack"),
        parameter_overrides=overrides,
        api_keys={"shop-1": "key-of-shop-1"},
        function_concurrency=4,
    ) as stack:
        yield stack


ROUTER_KEYS = {"shop-1": "key-of-shop-1"}
ROUTER_ADMIN_KEY = "admin-key-of-shop-1"


@pytest.fixture(scope="session")
def router_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway with an admin API key for its tenant, the unified route's quotas off (a thousand
    numbers again and again), a provider read timeout of 2 s, so that a provider that answers too
    late shows within seconds, and a short visibility timeout, so that a queued message held by
    another delivery comes back soon."""
    # The pumping guard off too: a thousand numbers share ten number blocks.
    quotas = QUOTAS_OFF
    overrides = {"RouterQuotaLimits": quotas, "ProviderReadTimeout": "2", "QueueVisibilityTimeoutSeconds": "3"}
    with running(
        tmp_path_factory.mktemp("router-stack"),
        parameter_overrides=overrides,
        api_keys=ROUTER_KEYS,
        admin_api_key=ROUTER_ADMIN_KEY,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def delivery_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway set up for delivery tracking (local.running.DELIVERY_OVERRIDES): the quotas and
    the pumping guard off for Aliyun and Ronglian, receipts that come before their send seen again
    within seconds, three workers per function. Its own module's only."""
    with running_for_delivery(tmp_path_factory.mktemp("delivery-stack")) as stack:
        yield stack


ABUSE_KEYS = {"shop-1": "key-of-shop-1"}
ABUSE_ADMIN_KEY = "admin-key-of-shop-1"


@pytest.fixture(scope="module")
def abuse_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway with its default quotas and pumping guard, an admin API key for its tenant's
    rules and opt-outs, and four workers per function so that concurrent requests race in DynamoDB
    Local, as on Lambda. Its own module's only."""
    with running(
        tmp_path_factory.mktemp("abuse-stack"),
        api_keys=ABUSE_KEYS,
        admin_api_key=ABUSE_ADMIN_KEY,
        function_concurrency=4,
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def readme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway as `make run` starts it, default quotas and the Makefile's API key, for the
    README's examples alone: their answers count on no other request having used its quotas."""
    with running(tmp_path_factory.mktemp("readme-stack"), api_key=make_run_api_key()) as stack:
        yield stack


# -- A real browser: Debian's Chromium, driven by Playwright ------------------------------------

ARTIFACTS = Path(__file__).parents[2] / ".artifacts"
CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet on a closed network: no background requests Chromium would make on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in headless Chromium; a failed test leaves a screenshot in .artifacts/."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        opened = context.new_page()
        opened.set_default_timeout(20_000)
        try:
            yield opened
        finally:
            if request.node.stash.get(FAILED, False):
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / f"{request.node.name}.png"
                opened.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failed page: {shot}")  # noqa: T201 - shown with the failure
            browser.close()
