"""Swagger UI in a real browser: a provider's docs page authorizes with the API key and sends an
SMS through "Try it out" against the local stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from local.sandbox import ProviderSandbox
from local.stack import LocalStack


@pytest.fixture
def sandbox(local_stack: LocalStack) -> Iterator[ProviderSandbox]:
    assert local_stack.sandbox is not None
    local_stack.sandbox.reset()
    yield local_stack.sandbox
    local_stack.sandbox.reset()


def test_try_it_out_sends_an_sms_with_the_api_key(local_stack: LocalStack, sandbox: ProviderSandbox, page: Any) -> None:
    page.goto(f"{local_stack.api_url}/v1/polyv/docs")
    page.wait_for_selector(".swagger-ui .opblock")

    # Authorize: the document declares the x-api-key scheme
    page.click("button.authorize")
    page.fill(".modal-ux input[type=text]", local_stack.api_key)
    page.click(".modal-ux button.modal-btn.auth.authorize")
    page.click(".modal-ux button.btn-done")

    # Try it out on POST /v1/polyv/messages
    page.click(".opblock-post .opblock-summary")
    page.click("button.try-out__btn")
    body = {"phone_numbers": ["13800138000"], "template_param_names": ["code"], "template_param_values": ["123456"]}
    page.fill("textarea.body-param__text", json.dumps(body))
    page.click("button.execute")

    status = page.wait_for_selector(".live-responses-table .response .response-col_status")
    assert status.inner_text().strip() == "200"
    answer = json.loads(page.inner_text(".live-responses-table .response-col_description .microlight"))
    assert [r["status"] for r in answer["results"]] == ["accepted"]
    assert sandbox.accepted_phones() == ["13800138000"]


def test_the_messages_route_has_a_docs_page(local_stack: LocalStack, page: Any) -> None:
    page.goto(f"{local_stack.api_url}/v1/messages/docs")
    page.wait_for_selector(".swagger-ui .opblock-get")
    assert "/v1/messages/{requestId}" in page.inner_text(".opblock-get .opblock-summary-path")
