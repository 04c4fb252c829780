"""The sandbox's lifecycle, its recording of calls, and the control API, over real loopback HTTP."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests

from local.sandbox import Fault, ProviderSandbox, SandboxAccounts
from tests.sandbox.provider_calls import A, B, aliyun_call, batch, inter, polyv_post, send
from tests.support import free_port

ROOT = Path(__file__).parents[2]


class TestLifecycle:
    def test_go_down_refuses_connections_until_come_up(self, box: ProviderSandbox) -> None:
        url = box.url
        box.go_down()
        assert not box.is_up
        with pytest.raises(requests.exceptions.ConnectionError, match=r"(?i)refused"):
            send("polyv", url)
        assert requests.get(box.control_url + "/", timeout=5).json()["up"] is False
        box.come_up()
        box.come_up()
        assert box.url == url
        assert send("polyv", url).status_code == 200
        assert len(box.calls) == 1

    def test_stop_does_not_wait_for_a_sleeping_timeout(self) -> None:
        sandbox = ProviderSandbox().start()
        url = sandbox.url
        sandbox.add_fault(Fault(kind="timeout"))
        errors: list[BaseException] = []

        def call() -> None:
            try:
                send("polyv", url, timeout=(1, 20))
            except requests.exceptions.RequestException as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while not sandbox.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 1
        caller.join(5)
        assert errors, "the client got no answer"
        with pytest.raises(requests.exceptions.ConnectionError):
            send("polyv", url)

    def test_only_loopback(self) -> None:
        for host in ("0.0.0.0", "192.168.1.10", "::1", "localhost"):  # noqa: S104
            with pytest.raises(ValueError, match="loopback"):
                ProviderSandbox(host=host)

    def test_context_manager_and_urls(self) -> None:
        with ProviderSandbox() as sandbox:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
            assert sandbox.control_url != sandbox.url
        with pytest.raises(RuntimeError):
            _ = sandbox.url

    def test_concurrent_calls_are_all_recorded(self, box: ProviderSandbox) -> None:
        phones = [f"138{i:08d}" for i in range(30)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(lambda p: polyv_post(box.url, [p]).status_code, phones))
        assert statuses == [200] * 30
        assert sorted(box.accepted_phones()) == phones
        assert len(box.calls) == 30

    def test_accepted_phones_repeat_per_send(self, box: ProviderSandbox) -> None:
        polyv_post(box.url, [A])
        aliyun_call(box.url, "SendBatchSms", batch([A, B]))
        assert box.accepted_phones() == [A, A, B]

    def test_unknown_paths_are_recorded_and_404(self, box: ProviderSandbox) -> None:
        response = requests.post(box.url + "/v2/other", json={}, timeout=5)
        assert response.status_code == 404
        assert [(c.operation, c.status) for c in box.calls] == [("unknown", 404)]

    def test_unreadable_requests_are_recorded_and_400(self, box: ProviderSandbox) -> None:
        response = requests.get(box.url + "/?Action=%FF", timeout=5)
        assert response.status_code == 400
        assert [(c.operation, c.outcome, c.status) for c in box.calls] == [("unknown", "rejected", 400)]

    def test_extra_accounts(self) -> None:
        accounts = SandboxAccounts().with_aliyun("second-akid", "second-secret")
        with ProviderSandbox(accounts=accounts) as sandbox:
            ok = aliyun_call(sandbox.url, "SendInterSms", inter(), access_key_id="second-akid", secret="second-secret")
            assert ok.json()["Code"] == "OK"
            assert aliyun_call(sandbox.url, "SendInterSms", inter()).json()["Code"] == "OK"


class TestControlApi:
    def test_round_trip(self, box: ProviderSandbox) -> None:
        control = box.control_url
        bad = requests.post(control + "/faults", json={"kind": "explode"}, timeout=5)
        assert bad.status_code == 400
        created = requests.post(
            control + "/faults", json={"kind": "code", "operation": "polyv.send", "phone": B, "code": -2}, timeout=5
        )
        assert created.status_code == 201
        assert requests.get(control + "/faults", timeout=5).json()["faults"][0]["phone"] == B

        data = polyv_post(box.url, [A, B]).json()["data"]
        assert [d["status"] for d in data] == [12, -2]

        calls = requests.get(control + "/calls", timeout=5).json()["calls"]
        assert [(c["operation"], c["phones"], c["accepted_phones"]) for c in calls] == [("polyv.send", [A, B], [A])]
        assert datetime.fromisoformat(calls[0]["at"]).tzinfo is not None
        filtered = requests.get(control + "/calls", params={"operation": "aliyun.SendInterSms"}, timeout=5)
        assert filtered.json()["calls"] == []
        assert requests.get(control + "/accepted-phones", timeout=5).json() == {"accepted_phones": [A]}

        assert requests.delete(control + "/faults", timeout=5).status_code == 200
        assert box.faults == []

        assert requests.post(control + "/down", timeout=5).json() == {"up": False}
        with pytest.raises(requests.exceptions.ConnectionError):
            send("polyv", box.url)
        assert requests.post(control + "/up", timeout=5).json() == {"up": True}
        assert send("polyv", box.url).status_code == 200

        assert requests.post(control + "/reset", timeout=5).status_code == 200
        assert box.calls == []
        assert requests.get(control + "/calls", timeout=5).json() == {"calls": []}

    def test_unknown_and_wrong_method(self, box: ProviderSandbox) -> None:
        assert requests.get(box.control_url + "/nothing", timeout=5).status_code == 404
        assert requests.get(box.control_url + "/reset", timeout=5).status_code == 405


def test_standalone_run_prints_its_urls_and_stops_on_ctrl_c() -> None:
    aliyun = free_port()
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "local.sandbox", "--port", "0", "--provider-port", f"aliyun={aliyun}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) \(control API on (http://127\.0\.0\.1:\d+)\)", line)
        assert match, line
        assert requests.get(match.group(2) + "/", timeout=5).json()["up"] is True
        assert re.search(rf"polyv on http://127\.0\.0\.1:\d+, aliyun on http://127\.0\.0\.1:{aliyun}, ronglian", line)
        assert send("aliyun", f"http://127.0.0.1:{aliyun}").status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
