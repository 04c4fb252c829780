"""Validated send requests, one model per provider operation.

Everything a provider would refuse for its form is refused here, before any HTTP call and before
any quota is used: number formats, batch limits, pairing of names and values, reqId and subAppend
rules, and text no handset should get (control characters). Phone numbers leave validation in
E.164 (`smsgw.phones`): a handset given twice, in any spellings, is one number sent once.
Template parameter values are always sent as strings (Aliyun answers `isv.INVALID_JSON_PARAM` to
anything else), so whole numbers given by a caller are turned into strings and every other type
is refused.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from smsgw import phones
from smsgw.phones import PhoneError

MAX_NUMBERS_PER_REQUEST = 1000
"""A request may hold more numbers than one provider call; the client splits it into chunks."""
MAX_PARAM_VALUE_LENGTH = 256
MAX_PARAMS = 20


def _param_value(value: Any) -> Any:
    # bool is an int subclass: True would become "True", which no template wants.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _clean_text(value: str) -> str:
    """Text a provider will carry to a handset: printable Unicode only.

    Control characters (C0, DEL and C1, NUL included) have no place in an SMS and some providers'
    gateways cut the message at them. U+FFFD is what a proxy puts where the client's bytes were not
    UTF-8: the caller's text is already lost. JSON can also carry lone surrogates (`\\ud800`),
    which no provider's UTF-8 wire format can."""
    for char in value:
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"must not contain control characters (U+{ord(char):04X})")
        if char == "\ufffd":
            raise ValueError("must not contain U+FFFD: the request was not valid UTF-8")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _phone(parse: Callable[[str], str]) -> Callable[[str], str]:
    def canonical(value: str) -> str:
        try:
            return parse(value)
        except PhoneError as exc:
            raise ValueError(str(exc)) from None

    return canonical


ParamValue = Annotated[
    str,
    BeforeValidator(_param_value),
    StringConstraints(min_length=1, max_length=MAX_PARAM_VALUE_LENGTH),
    AfterValidator(_clean_text),
    Field(description="A template parameter value; whole numbers are sent as strings."),
]
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]

MainlandPhone = Annotated[
    str,
    StringConstraints(max_length=16),
    AfterValidator(_phone(phones.mainland)),
    Field(
        description=f"A mainland China mobile number: {phones.MAINLAND_FORMS}. Answered in E.164 (+8613800138000).",
        examples=["13800138000", "+8613800138000"],
    ),
]


def _region(value: str) -> str:
    if not phones.known_region(value):
        raise ValueError("must be an ISO 3166-1 alpha-2 country or region code with a calling code")
    return value


def _national(value: str, info: ValidationInfo) -> str:
    region = info.data.get("country_code")
    if region is None:  # the country code was refused: its own error says why
        return value
    try:
        return phones.national(value, region)
    except PhoneError as exc:
        raise ValueError(str(exc)) from None


NationalPhone = Annotated[
    str,
    StringConstraints(max_length=16),
    AfterValidator(_national),
    Field(
        description="A national number without its country code; answered in E.164 (+85291234567).",
        examples=["91234567"],
    ),
]


def _batch_phone(value: str) -> str:
    e164 = _phone(phones.international)(value)
    if phones.reads_as_mainland(phones.wire_international(e164)) and not phones.is_mainland(e164):
        # Written without `+`, as the operation wants it, this number reads as a mainland one.
        raise ValueError("cannot be sent through SendBatchSms: without '+' it reads as a mainland number")
    return e164


BatchPhone = Annotated[
    str,
    StringConstraints(max_length=18),
    AfterValidator(_batch_phone),
    Field(
        description=(
            f"A mainland mobile number ({phones.MAINLAND_FORMS}), or an international number as country "
            "code and number (+85291234567, 0085291234567 or 85291234567). Answered in E.164."
        ),
        examples=["13800138000", "85291234567"],
    ),
]
SignName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_clean_text)]
AliyunTemplateCode = Annotated[str, StringConstraints(pattern=r"^SMS_[0-9]{1,20}$")]
OutId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]

_PhoneListLimits = Field(min_length=1, max_length=MAX_NUMBERS_PER_REQUEST)
MainlandPhoneList = Annotated[list[MainlandPhone], _PhoneListLimits]
NationalPhoneList = Annotated[list[NationalPhone], _PhoneListLimits]


def first_of_each(numbers: Iterable[str]) -> list[str]:
    """The numbers in order, each handset once."""
    return list(dict.fromkeys(numbers))


CallbackUrl = Annotated[
    str,
    StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$"),
    Field(description="Where webhooks about this request's numbers go (https; see docs/webhooks.md)."),
]


class SendRequest(BaseModel):
    # A function validates one or two of these models: each builds its validator when first used,
    # not on every cold start of every function.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False, defer_build=True)

    callback_url: CallbackUrl | None = None

    @property
    def phones(self) -> list[str]:
        """The request's numbers (E.164) in the order given; a handset given twice is here twice."""
        raise NotImplementedError

    def only(self, numbers: set[str]) -> Self:
        """The same request for some of its numbers, in their original order, each handset once."""
        return self.model_copy(update={"phone_numbers": first_of_each(p for p in self.phones if p in numbers)})

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

    # Before the numbers: they are read as national numbers of this country.
    country_code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_region)] = Field(
        description="The country or region of the numbers, ISO 3166-1 alpha-2 (e.g. HK); mainland China is CN.",
    )
    phone_numbers: NationalPhoneList = Field(repr=False)
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
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

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
        self._one_message_per_handset()
        extend_codes = [m.sms_up_extend_code is None for m in self.messages]
        if any(extend_codes) and not all(extend_codes):
            raise ValueError("sms_up_extend_code must be given for every message or for none")
        return self

    def _one_message_per_handset(self) -> None:
        first: dict[str, BatchMessage] = {}
        for message in self.messages:
            seen = first.setdefault(message.phone_number, message)
            if seen != message:
                # Counted, never echoed: an error message must not carry phone numbers.
                raise ValueError("messages to one handset (in any spelling) must be identical")

    def only(self, numbers: set[str]) -> Self:
        kept = {m.phone_number: m for m in reversed(self.messages) if m.phone_number in numbers}
        return self.model_copy(update={"messages": [kept[p] for p in first_of_each(self.phones) if p in kept]})

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

    _gateway_req_id: bool = PrivateAttr(default=False)

    @property
    def callers_req_id(self) -> bool:
        """Whether the reqId is the caller's own: only then does the caller's resend reuse it."""
        return self.req_id is not None and not self._gateway_req_id

    def with_gateway_id(self, message_id: str) -> Self:
        """The provider drops a repeat of an accepted reqId: the gateway's id ties this request's
        chunks to one reqId each, so a chunk sent twice by the gateway itself is sent once."""
        if self.req_id is not None:
            return self
        req_id = message_id.replace("-", "")
        if not _REQ_ID.fullmatch(req_id):
            req_id = hashlib.md5(message_id.encode()).hexdigest()  # noqa: S324 - an identifier, not a MAC
        tagged = self.model_copy(update={"req_id": req_id})
        tagged._gateway_req_id = True
        return tagged


TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ProviderChoice = Literal["polyv", "aliyun", "ronglian"]
AnyPhone = Annotated[
    str,
    StringConstraints(max_length=18),
    AfterValidator(_phone(phones.international)),
    Field(
        description=(
            f"A mainland mobile number ({phones.MAINLAND_FORMS}), or any other with its country code "
            "(+85291234567, 0085291234567 or 85291234567). Answered in E.164."
        ),
        examples=["13800138000", "+85291234567"],
    ),
]


class MessageRequest(SendRequest):
    """`POST /v1/messages`: a logical template, sent through whichever provider can."""

    template: TemplateName = Field(description="The template's name, as saved with PUT /v1/templates/{name}.")
    template_version: int | None = Field(default=None, ge=1, description="A saved version; default: the latest.")
    phone_numbers: Annotated[list[AnyPhone], _PhoneListLimits] = Field(repr=False)
    params: dict[ParamName, ParamValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    providers: list[ProviderChoice] | None = Field(
        default=None, min_length=1, max_length=3, description="An explicit order of providers for this request."
    )

    @model_validator(mode="after")
    def _distinct_providers(self) -> Self:
        if self.providers is not None and len(set(self.providers)) != len(self.providers):
            raise ValueError("providers names a provider twice")
        return self

    @property
    def phones(self) -> list[str]:
        return list(self.phone_numbers)
