"""Validated send requests, one model per provider operation.

Everything a provider would refuse for its form is refused here, before any HTTP call and before
any quota is used: number formats, batch limits, pairing of names and values, reqId and subAppend
rules. Template parameter values are always sent as strings (Aliyun answers
`isv.INVALID_JSON_PARAM` to anything else), so whole numbers given by a caller are turned into
strings and every other type is refused.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

MAX_NUMBERS_PER_REQUEST = 1000
"""A request may hold more numbers than one provider call; the client splits it into chunks."""
MAX_PARAM_VALUE_LENGTH = 256
MAX_PARAMS = 20


def _param_value(value: Any) -> Any:
    # bool is an int subclass: True would become "True", which no template wants.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _encodable(value: str) -> str:
    # JSON can carry lone surrogates ("\ud800"), which no provider's UTF-8 wire format can.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


ParamValue = Annotated[
    str,
    BeforeValidator(_param_value),
    StringConstraints(min_length=1, max_length=MAX_PARAM_VALUE_LENGTH),
    AfterValidator(_encodable),
    Field(description="A template parameter value; whole numbers are sent as strings."),
]
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]

MainlandPhone = Annotated[
    str,
    StringConstraints(pattern=r"^1[3-9][0-9]{9}$"),
    Field(description="An 11-digit mainland China mobile number, without +86.", examples=["13800138000"]),
]
NationalPhone = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4,15}$"),
    Field(description="A national number without its country code.", examples=["91234567"]),
]
BatchPhone = Annotated[
    str,
    StringConstraints(pattern=r"^(?:(?:\+86|0086|86)?1[3-9][0-9]{9}|[1-9][0-9]{7,14})$"),
    Field(
        description=(
            "A mainland number, with or without +86/0086/86, or an international number as "
            "country code plus number without '+'."
        ),
        examples=["13800138000", "85291234567"],
    ),
]
SignName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_encodable)]
AliyunTemplateCode = Annotated[str, StringConstraints(pattern=r"^SMS_[0-9]{1,20}$")]
OutId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]


def _unique(numbers: list[str]) -> list[str]:
    # Counted, never echoed: an error message must not carry phone numbers.
    duplicates = len(numbers) - len(set(numbers))
    if duplicates:
        raise ValueError(f"phone numbers must be distinct ({duplicates} repeated)")
    return numbers


_PhoneListLimits = Field(min_length=1, max_length=MAX_NUMBERS_PER_REQUEST)
MainlandPhoneList = Annotated[list[MainlandPhone], _PhoneListLimits, AfterValidator(_unique)]
NationalPhoneList = Annotated[list[NationalPhone], _PhoneListLimits, AfterValidator(_unique)]


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @property
    def phones(self) -> list[str]:
        raise NotImplementedError

    def only(self, phones: set[str]) -> Self:
        """The same request for some of its numbers, in their original order."""
        return self.model_copy(update={"phone_numbers": [p for p in self.phones if p in phones]})

    def with_gateway_id(self, message_id: str) -> Self:
        """The request carrying the gateway's message id, where the provider has a field for it."""
        return self


class _AliyunRequest(SendRequest):
    out_id: OutId | None = Field(default=None, description="Echoed back in the provider's delivery receipts.")

    @staticmethod
    def _no_links(params: dict[str, str] | None) -> None:
        # Aliyun refuses links in template parameters (isv.PARAM_NOT_SUPPORT_URL): refuse them first.
        if params and any(_LINK.search(value) for value in params.values()):
            raise ValueError("template parameters must not contain links (http://, https://, www.)")

    def with_gateway_id(self, message_id: str) -> Self:
        # OutId ties delivery receipts to the gateway's record; a caller's own OutId wins.
        if self.out_id is not None or not _OUT_ID.fullmatch(message_id):
            return self
        return self.model_copy(update={"out_id": message_id})


class PolyvSendRequest(SendRequest):
    """Polyv `POST /live/v4/user/sms/send`: one Aliyun template configured in Polyv."""

    phone_numbers: MainlandPhoneList = Field(repr=False)
    template_param_names: list[ParamName] = Field(max_length=MAX_PARAMS)
    template_param_values: list[ParamValue] = Field(max_length=MAX_PARAMS)

    @model_validator(mode="after")
    def _names_pair_with_values(self) -> Self:
        if len(self.template_param_names) != len(self.template_param_values):
            raise ValueError("template_param_names and template_param_values must pair up one to one")
        if len(set(self.template_param_names)) != len(self.template_param_names):
            raise ValueError("template_param_names must be distinct")
        return self

    @property
    def phones(self) -> list[str]:
        return list(self.phone_numbers)


class AliyunInterSmsRequest(_AliyunRequest):
    """Aliyun `SendInterSms`: one number per provider call, all in one country."""

    phone_numbers: NationalPhoneList = Field(repr=False)
    country_code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,3}$")] = Field(
        description="The country or region of the numbers, as the provider spells it (e.g. HK).",
    )
    sign_name: SignName
    template_code: AliyunTemplateCode
    template_param: dict[ParamName, ParamValue] | None = Field(default=None, max_length=MAX_PARAMS)

    @model_validator(mode="after")
    def _parameters_without_links(self) -> Self:
        self._no_links(self.template_param)
        return self

    @property
    def phones(self) -> list[str]:
        return list(self.phone_numbers)


class BatchMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phone_number: BatchPhone = Field(repr=False)
    sign_name: SignName | None = Field(default=None, description="Overrides the request's sign_name.")
    template_param: dict[ParamName, ParamValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    sms_up_extend_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")] | None = None


class AliyunBatchSmsRequest(_AliyunRequest):
    """Aliyun `SendBatchSms`: one sign name and one parameter object per number."""

    template_code: AliyunTemplateCode
    sign_name: SignName | None = Field(default=None, description="Sign name of every message that names none.")
    messages: list[BatchMessage] = Field(min_length=1, max_length=MAX_NUMBERS_PER_REQUEST)

    @model_validator(mode="after")
    def _one_sign_name_per_number(self) -> Self:
        for message in self.messages:
            self._no_links(message.template_param)
        if self.sign_name is None and any(m.sign_name is None for m in self.messages):
            raise ValueError("every message needs a sign_name, or the request one for all")
        _unique([m.phone_number for m in self.messages])
        extend_codes = [m.sms_up_extend_code is None for m in self.messages]
        if any(extend_codes) and not all(extend_codes):
            raise ValueError("sms_up_extend_code must be given for every message or for none")
        return self

    def only(self, phones: set[str]) -> Self:
        return self.model_copy(update={"messages": [m for m in self.messages if m.phone_number in phones]})

    def sign_name_of(self, message: BatchMessage) -> str:
        name = message.sign_name or self.sign_name
        assert name is not None  # guaranteed by the validator
        return name

    @property
    def phones(self) -> list[str]:
        return [m.phone_number for m in self.messages]


_OUT_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
_REQ_ID = re.compile(r"[A-Za-z0-9]{1,32}")
RonglianReqId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,32}$")]


class RonglianTemplateSmsRequest(SendRequest):
    """Ronglian (Cloopen) `TemplateSMS`: positional template data."""

    phone_numbers: MainlandPhoneList = Field(repr=False)
    template_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
    datas: list[ParamValue] = Field(default_factory=list, max_length=MAX_PARAMS, description="{1}, {2}, … in order.")
    sub_append: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}$")] | None = None
    req_id: RonglianReqId | None = Field(
        default=None,
        description="Unique per account per day; the provider answers a repeat with 160054 and does not resend.",
    )

    @property
    def phones(self) -> list[str]:
        return list(self.phone_numbers)

    def with_gateway_id(self, message_id: str) -> Self:
        """The provider drops a repeat of an accepted reqId, so the gateway's id makes resends safe."""
        if self.req_id is not None:
            return self
        req_id = message_id.replace("-", "")
        if not _REQ_ID.fullmatch(req_id):
            req_id = hashlib.md5(message_id.encode()).hexdigest()  # noqa: S324 - an identifier, not a MAC
        return self.model_copy(update={"req_id": req_id})
