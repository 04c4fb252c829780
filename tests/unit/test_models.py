"""Request models refuse what a provider would refuse, before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from smsgw.models import (
    MAX_NUMBERS_PER_REQUEST,
    AliyunBatchSmsRequest,
    AliyunInterSmsRequest,
    PolyvSendRequest,
    RonglianTemplateSmsRequest,
)


def polyv(**overrides: Any) -> dict[str, Any]:
    return {
        "phone_numbers": ["13800138000"],
        "template_param_names": ["code"],
        "template_param_values": ["1234"],
        **overrides,
    }


def ronglian(**overrides: Any) -> dict[str, Any]:
    return {"phone_numbers": ["13800138000"], "template_id": "1", "datas": ["1234", "5"], **overrides}


def batch(**overrides: Any) -> dict[str, Any]:
    return {
        "template_code": "SMS_71175823",
        "sign_name": "云通信",
        "messages": [{"phone_number": "13800138000", "template_param": {"code": "1234"}}],
        **overrides,
    }


def inter(**overrides: Any) -> dict[str, Any]:
    return {
        "phone_numbers": ["91234567"],
        "country_code": "HK",
        "sign_name": "sign",
        "template_code": "SMS_0000002",
        **overrides,
    }


def error_locations(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in err["loc"]) for err in exc.value.errors()}


class TestPolyv:
    def test_valid_request_turns_whole_numbers_into_strings(self) -> None:
        request = PolyvSendRequest.model_validate(polyv(template_param_values=[9802]))
        assert request.template_param_values == ["9802"]

    @pytest.mark.parametrize("phone", ["1380013800", "138001380001", "+8613800138000", "12800138000", "1380013800a"])
    def test_rejects_a_number_that_is_not_11_digit_mainland(self, phone: str) -> None:
        with pytest.raises(ValidationError) as exc:
            PolyvSendRequest.model_validate(polyv(phone_numbers=[phone]))
        assert "phone_numbers.0" in error_locations(exc)

    def test_names_and_values_must_pair_up(self) -> None:
        with pytest.raises(ValidationError, match="pair up one to one"):
            PolyvSendRequest.model_validate(polyv(template_param_values=["1", "2"]))

    @pytest.mark.parametrize("value", [True, 1.5, None, {"a": 1}, ""])
    def test_rejects_values_that_are_not_strings_or_whole_numbers(self, value: Any) -> None:
        with pytest.raises(ValidationError):
            PolyvSendRequest.model_validate(polyv(template_param_values=[value]))

    def test_rejects_duplicates_without_echoing_the_number(self) -> None:
        with pytest.raises(ValidationError) as exc:
            PolyvSendRequest.model_validate(polyv(phone_numbers=["13800138000", "13800138000"]))
        assert "13800138000" not in str(exc.value.errors()[0]["msg"])

    def test_batch_limits(self) -> None:
        with pytest.raises(ValidationError):
            PolyvSendRequest.model_validate(polyv(phone_numbers=[]))
        too_many = [f"138{i:08d}" for i in range(MAX_NUMBERS_PER_REQUEST + 1)]
        with pytest.raises(ValidationError):
            PolyvSendRequest.model_validate(polyv(phone_numbers=too_many))

    def test_rejects_unknown_fields(self) -> None:
        with pytest.raises(ValidationError):
            PolyvSendRequest.model_validate(polyv(template_code="x"))


class TestAliyunBatch:
    def test_request_sign_name_applies_to_messages_without_one(self) -> None:
        request = AliyunBatchSmsRequest.model_validate(
            batch(
                messages=[
                    {"phone_number": "13800138000", "template_param": {"code": 1}},
                    {"phone_number": "+8613900139000", "sign_name": "其他", "template_param": {"code": "2"}},
                ]
            )
        )
        assert [request.sign_name_of(m) for m in request.messages] == ["云通信", "其他"]
        assert request.messages[0].template_param == {"code": "1"}

    def test_every_number_needs_a_sign_name(self) -> None:
        with pytest.raises(ValidationError, match="sign_name"):
            AliyunBatchSmsRequest.model_validate(batch(sign_name=None))

    @pytest.mark.parametrize("phone", ["85291234567", "8613800138000", "008613800138000", "13800138000"])
    def test_accepts_domestic_and_international_forms(self, phone: str) -> None:
        AliyunBatchSmsRequest.model_validate(batch(messages=[{"phone_number": phone}]))

    @pytest.mark.parametrize("phone", ["+85291234567", "0123", "1380013800x", "12345"])
    def test_rejects_other_forms(self, phone: str) -> None:
        with pytest.raises(ValidationError):
            AliyunBatchSmsRequest.model_validate(batch(messages=[{"phone_number": phone}]))

    def test_extend_codes_for_all_or_none(self) -> None:
        messages = [
            {"phone_number": "13800138000", "sms_up_extend_code": "90999"},
            {"phone_number": "13900139000"},
        ]
        with pytest.raises(ValidationError, match="sms_up_extend_code"):
            AliyunBatchSmsRequest.model_validate(batch(messages=messages))

    def test_template_code_form(self) -> None:
        with pytest.raises(ValidationError):
            AliyunBatchSmsRequest.model_validate(batch(template_code="71175823"))


class TestAliyunInter:
    def test_valid(self) -> None:
        request = AliyunInterSmsRequest.model_validate(inter(template_param={"code": 1234}))
        assert request.template_param == {"code": "1234"}

    @pytest.mark.parametrize("country", ["hk", "H", "HKGX", "+852"])
    def test_country_code_form(self, country: str) -> None:
        with pytest.raises(ValidationError):
            AliyunInterSmsRequest.model_validate(inter(country_code=country))

    def test_number_without_country_code(self) -> None:
        with pytest.raises(ValidationError):
            AliyunInterSmsRequest.model_validate(inter(phone_numbers=["+85291234567"]))


class TestRonglian:
    def test_datas_are_positional_strings(self) -> None:
        request = RonglianTemplateSmsRequest.model_validate(ronglian(datas=[1234, "5"]))
        assert request.datas == ["1234", "5"]

    @pytest.mark.parametrize("req_id", ["a" * 33, "abc-123", "", "中文"])
    def test_req_id_is_at_most_32_alphanumerics(self, req_id: str) -> None:
        with pytest.raises(ValidationError) as exc:
            RonglianTemplateSmsRequest.model_validate(ronglian(req_id=req_id))
        assert "req_id" in error_locations(exc)

    def test_req_id_of_32_alphanumerics_is_fine(self) -> None:
        assert RonglianTemplateSmsRequest.model_validate(ronglian(req_id="A1" * 16)).req_id == "A1" * 16

    @pytest.mark.parametrize("sub_append", ["12345", "12a", ""])
    def test_sub_append_is_up_to_4_digits(self, sub_append: str) -> None:
        with pytest.raises(ValidationError):
            RonglianTemplateSmsRequest.model_validate(ronglian(sub_append=sub_append))

    def test_template_id_is_numeric(self) -> None:
        with pytest.raises(ValidationError):
            RonglianTemplateSmsRequest.model_validate(ronglian(template_id="SMS_1"))


@pytest.mark.parametrize("value", ["see http://x.cn", "HTTPS://evil.example", "www.example.com/win"])
def test_aliyun_parameters_refuse_links(value: str) -> None:
    with pytest.raises(ValidationError, match="links"):
        AliyunInterSmsRequest.model_validate(inter(template_param={"code": value}))
    with pytest.raises(ValidationError, match="links"):
        AliyunBatchSmsRequest.model_validate(
            batch(messages=[{"phone_number": "13800138000", "template_param": {"code": value}}])
        )


def test_aliyun_parameters_may_mention_domains_without_links() -> None:
    AliyunInterSmsRequest.model_validate(inter(template_param={"product": "example.com"}))
