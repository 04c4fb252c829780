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

    @pytest.mark.parametrize(
        "phone", ["1380013800", "138001380001", "+85291234567", "12800138000", "1380013800a", "+86 13800138000"]
    )
    def test_rejects_a_number_that_is_not_mainland(self, phone: str) -> None:
        with pytest.raises(ValidationError) as exc:
            PolyvSendRequest.model_validate(polyv(phone_numbers=[phone]))
        assert "phone_numbers.0" in error_locations(exc)

    @pytest.mark.parametrize("phone", ["13611110001", "8613611110001", "+8613611110001", "008613611110001"])
    def test_every_spelling_of_a_handset_is_read_as_e164(self, phone: str) -> None:
        assert PolyvSendRequest.model_validate(polyv(phone_numbers=[phone])).phones == ["+8613611110001"]

    def test_names_and_values_must_pair_up(self) -> None:
        with pytest.raises(ValidationError, match="pair up one to one"):
            PolyvSendRequest.model_validate(polyv(template_param_values=["1", "2"]))

    @pytest.mark.parametrize("value", [True, 1.5, None, {"a": 1}, ""])
    def test_rejects_values_that_are_not_strings_or_whole_numbers(self, value: Any) -> None:
        with pytest.raises(ValidationError):
            PolyvSendRequest.model_validate(polyv(template_param_values=[value]))

    def test_a_handset_given_twice_is_sent_once(self) -> None:
        request = PolyvSendRequest.model_validate(polyv(phone_numbers=["13800138000", "13900139000", "+8613800138000"]))
        assert request.phones == ["+8613800138000", "+8613900139000", "+8613800138000"]
        assert request.only(set(request.phones)).phones == ["+8613800138000", "+8613900139000"]

    @pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\n", "\x7f", "\x85", "\x9f", "\ufffd"])
    def test_refuses_control_characters_and_replacement_characters(self, char: str) -> None:
        with pytest.raises(ValidationError) as exc:
            PolyvSendRequest.model_validate(polyv(template_param_values=[f"12{char}34"]))
        assert error_locations(exc) == {"template_param_values.0"}

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

    @pytest.mark.parametrize(
        ("phone", "e164"),
        [
            ("85291234567", "+85291234567"),
            ("+85291234567", "+85291234567"),
            ("0085291234567", "+85291234567"),
            ("8613800138000", "+8613800138000"),
            ("008613800138000", "+8613800138000"),
            ("+8613800138000", "+8613800138000"),
            ("13800138000", "+8613800138000"),
        ],
    )
    def test_accepts_domestic_and_international_forms(self, phone: str, e164: str) -> None:
        request = AliyunBatchSmsRequest.model_validate(batch(messages=[{"phone_number": phone}]))
        assert request.phones == [e164]

    @pytest.mark.parametrize(
        "phone",
        [
            "0123",
            "1380013800x",
            "12345",
            "85212345",  # too short for Hong Kong
            "+861012345678",  # a Beijing landline
            "+14155550123",  # without '+' it would read as a mainland number
            "13800138000".translate({ord("0") + d: 0xFF10 + d for d in range(10)}),  # fullwidth digits
        ],
    )
    def test_rejects_other_forms(self, phone: str) -> None:
        with pytest.raises(ValidationError):
            AliyunBatchSmsRequest.model_validate(batch(messages=[{"phone_number": phone}]))

    def test_one_handset_in_two_spellings_is_one_message(self) -> None:
        same = {"template_param": {"code": "1234"}}
        request = AliyunBatchSmsRequest.model_validate(
            batch(messages=[{"phone_number": "13800138000", **same}, {"phone_number": "+8613800138000", **same}])
        )
        assert request.phones == ["+8613800138000", "+8613800138000"]
        assert len(request.only(set(request.phones)).messages) == 1

    def test_two_different_messages_to_one_handset_are_refused(self) -> None:
        messages = [
            {"phone_number": "13800138000", "template_param": {"code": "1234"}},
            {"phone_number": "008613800138000", "template_param": {"code": "9999"}},
        ]
        with pytest.raises(ValidationError, match="identical"):
            AliyunBatchSmsRequest.model_validate(batch(messages=messages))

    @pytest.mark.parametrize("field", ["sign_name", "template_param"])
    def test_control_characters_are_refused_where_they_would_be_sent(self, field: str) -> None:
        message: dict[str, Any] = {"phone_number": "13800138000", "template_param": {"code": "1234"}}
        message[field] = "A\x1bB" if field == "sign_name" else {"code": "A\x00B"}
        with pytest.raises(ValidationError) as exc:
            AliyunBatchSmsRequest.model_validate(batch(messages=[message]))
        assert any(loc.startswith(f"messages.0.{field}") for loc in error_locations(exc))

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

    def test_numbers_are_read_in_their_country(self) -> None:
        request = AliyunInterSmsRequest.model_validate(inter(phone_numbers=["91234567", "62345678"]))
        assert request.phones == ["+85291234567", "+85262345678"]
        uk = AliyunInterSmsRequest.model_validate(inter(country_code="GB", phone_numbers=["07911123456"]))
        assert uk.phones == ["+447911123456"]

    @pytest.mark.parametrize("country", ["hk", "H", "HKGX", "+852", "HKG", "XX"])
    def test_country_code_form(self, country: str) -> None:
        with pytest.raises(ValidationError) as exc:
            AliyunInterSmsRequest.model_validate(inter(country_code=country))
        assert error_locations(exc) == {"country_code"}

    def test_an_e164_number_of_the_country_is_the_same_number(self) -> None:
        request = AliyunInterSmsRequest.model_validate(inter(phone_numbers=["+85291234567", "91234567"]))
        assert request.only(set(request.phones)).phones == ["+85291234567"]

    @pytest.mark.parametrize("phone", ["+8613800138000", "12345", "9123456789012"])
    def test_number_without_country_code(self, phone: str) -> None:
        with pytest.raises(ValidationError):
            AliyunInterSmsRequest.model_validate(inter(phone_numbers=[phone]))


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
