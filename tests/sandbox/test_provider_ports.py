"""Each provider on a port of its own beside the shared one: one provider refuses connections while
the others answer, from the Python API and the control API alike."""

from __future__ import annotations

import pytest
import requests

from local.sandbox import ProviderSandbox
from tests.sandbox.provider_calls import POLYV_PATH, PROVIDERS, send
from tests.support import free_port


def refused(provider: str, url: str) -> bool:
    """Whether connecting to the provider at `url` is refused (rather than answered, or cut off)."""
    try:
        send(provider, url)
    except requests.exceptions.ConnectionError as exc:
        return "refused" in str(exc).lower()
    return False


def test_every_provider_answers_on_its_own_port_and_on_the_shared_one(box: ProviderSandbox) -> None:
    own = box.provider_urls

    assert set(own) == set(PROVIDERS)
    assert len({box.url, box.control_url, *own.values()}) == 5
    for provider in PROVIDERS:
        assert send(provider, own[provider]).status_code == 200
        assert send(provider, box.url).status_code == 200
    assert [c.operation for c in box.calls] == [
        "polyv.send",
        "polyv.send",
        "aliyun.SendInterSms",
        "aliyun.SendInterSms",
        "ronglian.TemplateSMS",
        "ronglian.TemplateSMS",
    ]


def test_a_providers_own_port_answers_its_paths_only(box: ProviderSandbox) -> None:
    response = requests.post(box.url_for("aliyun") + POLYV_PATH, json={}, timeout=5)

    assert response.status_code == 404
    assert [(c.operation, c.status) for c in box.calls] == [("unknown", 404)]


def test_one_provider_goes_down_alone_and_comes_back_on_the_same_port(box: ProviderSandbox) -> None:
    url = box.url_for("aliyun")

    box.go_down("aliyun")

    assert refused("aliyun", url)
    assert (box.is_up_for("aliyun"), box.is_up_for("polyv"), box.is_up) == (False, True, True)
    assert send("polyv", box.url_for("polyv")).status_code == 200
    assert send("ronglian", box.url_for("ronglian")).status_code == 200
    # The shared port serves every provider: it goes down only with all of them
    assert send("aliyun", box.url).status_code == 200

    box.come_up("aliyun")
    box.come_up("aliyun")

    assert box.url_for("aliyun") == url
    assert send("aliyun", url).status_code == 200


def test_all_go_down_together_the_shared_port_too(box: ProviderSandbox) -> None:
    box.go_down("ronglian")

    box.go_down()

    assert all(refused(p, box.url_for(p)) and refused(p, box.url) for p in PROVIDERS)
    box.come_up()
    assert all(send(p, box.url_for(p)).status_code == 200 for p in PROVIDERS)
    assert box.is_up


def test_an_unknown_provider_is_refused(box: ProviderSandbox) -> None:
    with pytest.raises(ValueError, match="no provider 'sinch'"):
        box.go_down("sinch")
    with pytest.raises(ValueError, match="no provider sinch"):
        ProviderSandbox(provider_ports={"sinch": 9000})


def test_the_control_api_takes_one_provider_down_and_up(box: ProviderSandbox) -> None:
    control = box.control_url

    assert requests.post(control + "/down?provider=aliyun", timeout=5).json() == {"up": False, "provider": "aliyun"}

    described = requests.get(control + "/", timeout=5).json()
    assert described["up"] is True
    assert described["providers"] == {name: {"url": box.url_for(name), "up": name != "aliyun"} for name in PROVIDERS}
    assert refused("aliyun", box.url_for("aliyun"))
    assert send("ronglian", box.url_for("ronglian")).status_code == 200
    bad = requests.post(control + "/down?provider=sinch", timeout=5)
    assert (bad.status_code, bad.json()["error"]) == (
        400,
        "no provider 'sinch'; the sandbox has polyv, aliyun, ronglian",
    )

    assert requests.post(control + "/up?provider=aliyun", timeout=5).json() == {"up": True, "provider": "aliyun"}
    assert send("aliyun", box.url_for("aliyun")).status_code == 200


def test_fixed_ports_per_provider() -> None:
    port = free_port()

    with ProviderSandbox(provider_ports={"ronglian": port}) as sandbox:
        assert sandbox.url_for("ronglian") == f"http://127.0.0.1:{port}"
        assert send("ronglian", sandbox.url_for("ronglian")).status_code == 200
