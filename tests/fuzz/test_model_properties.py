"""Hypothesis on the request models directly (no server).

For arbitrary JSON-like input, for valid bodies and for valid bodies mutated (wrong types, missing
or extra keys, long strings, non-ASCII text, lists at and past the 1000-number limit, repeats):

- `model_validate` either returns a model or raises `pydantic.ValidationError`, nothing else;
- a model that validated satisfies the gateway's invariants (below), and so do `.only(...)` and
  `.with_gateway_id(...)` of it;
- a `ValidationError` never carries a rejected phone number in what the API echoes of it (each
  error's `msg` and its location, which the API answers as `message` and `field`);
- every phone number of a valid request is in E.164, and `.only(...)` names each handset once.

Two invariants have tests of their own at the end: digit fields hold ASCII digits only, and
every validated request can be encoded for the wire (no lone surrogates). The general checks read
digits as a Unicode-aware `\\d` does and leave the encoding alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smsgw.models import (
    MAX_NUMBERS_PER_REQUEST,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS,
    AliyunBatchSmsRequest,
    AliyunInterSmsRequest,
    BatchMessage,
    PolyvSendRequest,
    RonglianTemplateSmsRequest,
    SendRequest,
)

EXAMPLES = 250
PROPERTIES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# These two report their first counterexample alone, not a group of them.
SINGLE_PROPERTIES = settings(PROPERTIES, report_multiple_bugs=False)

# --- The invariants, with ASCII classes ([0-9], not \d) --------------------------------------------

MAINLAND = re.compile(r"\+861[3-9][0-9]{9}")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
TEMPLATE_CODE = re.compile(r"SMS_[0-9]{1,20}")
OUT_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
REQ_ID = re.compile(r"[A-Za-z0-9]{1,32}")
LINK = re.compile(r"https?://|www\.", re.IGNORECASE)


def as_ascii_digits(text: str) -> str:
    """Every decimal digit of any script as its ASCII digit: how `\\d` reads it (see the last tests)."""
    return "".join(str(unicodedata.decimal(c)) if unicodedata.decimal(c, None) is not None else c for c in text)


def matches(pattern: re.Pattern[str], text: str) -> bool:
    return pattern.fullmatch(as_ascii_digits(text)) is not None


def check_phones(phones: list[str], pattern: re.Pattern[str]) -> None:
    assert 1 <= len(phones) <= MAX_NUMBERS_PER_REQUEST
    for phone in phones:
        assert phone.isascii(), phone
        assert pattern.fullmatch(phone), phone


def check_param_value(value: Any) -> None:
    assert isinstance(value, str), value
    assert 1 <= len(value) <= MAX_PARAM_VALUE_LENGTH


def check_params(params: dict[str, str], *, links: bool) -> None:
    assert len(params) <= MAX_PARAMS
    for name, value in params.items():
        assert PARAM_NAME.fullmatch(name), name
        check_param_value(value)
        if not links:
            assert not LINK.search(value), value


def check_polyv(request: PolyvSendRequest) -> None:
    check_phones(request.phone_numbers, MAINLAND)
    names, values = request.template_param_names, request.template_param_values
    assert len(names) == len(values) <= MAX_PARAMS, "names and values pair up"
    assert len(set(names)) == len(names)
    check_params(dict(zip(names, values, strict=True)), links=True)


def check_inter(request: AliyunInterSmsRequest) -> None:
    check_phones(request.phone_numbers, E164)
    assert re.fullmatch(r"[A-Z]{2}", request.country_code)
    assert 1 <= len(request.sign_name) <= 64
    assert matches(TEMPLATE_CODE, request.template_code)
    check_params(request.template_param or {}, links=False)
    assert request.out_id is None or OUT_ID.fullmatch(request.out_id)


def check_batch(request: AliyunBatchSmsRequest) -> None:
    assert 1 <= len(request.messages) <= MAX_NUMBERS_PER_REQUEST
    check_phones([m.phone_number for m in request.messages], E164)
    assert matches(TEMPLATE_CODE, request.template_code)
    assert request.out_id is None or OUT_ID.fullmatch(request.out_id)
    for message in request.messages:
        sign_name = request.sign_name_of(message)
        assert isinstance(sign_name, str), "every message has a sign name"
        assert 1 <= len(sign_name) <= 64
        check_params(message.template_param, links=False)
    codes = [m.sms_up_extend_code for m in request.messages]
    assert all(c is None for c in codes) or all(c is not None for c in codes), "extend codes: all or none"
    for code in codes:
        assert code is None or matches(re.compile(r"[0-9]{1,12}"), code)


def check_ronglian(request: RonglianTemplateSmsRequest) -> None:
    check_phones(request.phone_numbers, MAINLAND)
    assert matches(re.compile(r"[0-9]{1,20}"), request.template_id)
    assert len(request.datas) <= MAX_PARAMS
    for value in request.datas:
        check_param_value(value)
    assert request.sub_append is None or matches(re.compile(r"[0-9]{1,4}"), request.sub_append)
    assert request.req_id is None or REQ_ID.fullmatch(request.req_id)


CHECKS: dict[type[SendRequest], Callable[[Any], None]] = {
    PolyvSendRequest: check_polyv,
    AliyunInterSmsRequest: check_inter,
    AliyunBatchSmsRequest: check_batch,
    RonglianTemplateSmsRequest: check_ronglian,
}
MODELS = list(CHECKS)

# --- Inputs --------------------------------------------------------------------------------------

ARABIC_INDIC, FULLWIDTH, DEVANAGARI = 0x0660, 0xFF10, 0x0966


def written_with(zero: int, text: str) -> str:
    return text.translate({ord("0") + d: zero + d for d in range(10)})


# Strings that sit on or near an edge of some rule.
TRICKY_STRINGS = [
    "",
    " ",
    "13800138000",
    "13800138000\n",
    " 13800138000",
    "+8613800138000",
    "008613800138000",
    "8613800138000",
    "12800138000",
    "138001380001",
    "85291234567",
    "1" + written_with(ARABIC_INDIC, "3800138000"),
    "13" + written_with(FULLWIDTH, "800138000"),
    written_with(DEVANAGARI, "91234567"),
    "SMS_1",
    "SMS_" + written_with(ARABIC_INDIC, "12"),
    "HK",
    "hk",
    "code",
    "_x",
    "1abc",
    "www.example.com",
    "https://x.cn",
    "\x00",
    "\ud800",
    "a\udfffb",
    "é" * 65,
    "x" * 256,
    "x" * 257,
    "7" * 4301,
    "a" * 10_000,
    "ab12CD34ef56GH78ij90KL12mn34OP56",
    "ab12CD34ef56GH78ij90KL12mn34OP56q",
]
# Any code point, surrogates included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
tricky_text = st.sampled_from(TRICKY_STRINGS) | any_text
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 2**63])
    # Past the 4300 digits int/str conversion allows (made on draw: Hypothesis cannot print them).
    | st.sampled_from([1, -1]).map(lambda sign: sign * 10**4400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | tricky_text
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(tricky_text, children, max_size=5),
    max_leaves=20,
)


def ascii_from(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True)


mainland = ascii_from(r"1[3-9][0-9]{9}")
# Hong Kong numbers in ranges libphonenumber knows to be allocated.
national = ascii_from(r"(9123|6123|5123)[0-9]{4}")
batch_phone = ascii_from(r"(\+86|0086|86)?1[3-9][0-9]{9}") | national.map(lambda n: f"852{n}")
param_name = ascii_from(r"[A-Za-z_][A-Za-z0-9_]{0,10}")
# What a handset can show: no control characters, no surrogates, no U+FFFD.
printable = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\ufffd")
param_value = st.text(printable, min_size=1, max_size=30) | st.integers(min_value=-(10**20), max_value=10**20)
sign_name = st.text(printable, min_size=1, max_size=12)
template_code = ascii_from(r"SMS_[0-9]{1,8}")
params = st.dictionaries(param_name, param_value, max_size=4)


def phone_lists(phone: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(phone, min_size=1, max_size=6, unique=True)


@st.composite
def polyv_bodies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(param_name, max_size=5, unique=True))
    return {
        "phone_numbers": draw(phone_lists(mainland)),
        "template_param_names": names,
        "template_param_values": [draw(param_value) for _ in names],
    }


@st.composite
def inter_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phone_numbers": draw(phone_lists(national)),
        "country_code": "HK",
        "sign_name": draw(sign_name),
        "template_code": draw(template_code),
    }
    if draw(st.booleans()):
        body["template_param"] = draw(params)
    if draw(st.booleans()):
        body["out_id"] = draw(ascii_from(r"[A-Za-z0-9_\-]{1,20}"))
    return body


@st.composite
def batch_bodies(draw: st.DrawFn) -> dict[str, Any]:
    phones = draw(phone_lists(batch_phone))
    shared_sign = draw(st.none() | sign_name)
    with_codes = draw(st.booleans())
    messages = []
    for phone in phones:
        message: dict[str, Any] = {"phone_number": phone, "template_param": draw(params)}
        if shared_sign is None or draw(st.booleans()):
            message["sign_name"] = draw(sign_name)
        if with_codes:
            message["sms_up_extend_code"] = draw(ascii_from(r"[0-9]{1,12}"))
        messages.append(message)
    body: dict[str, Any] = {"template_code": draw(template_code), "messages": messages}
    if shared_sign is not None:
        body["sign_name"] = shared_sign
    return body


@st.composite
def ronglian_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phone_numbers": draw(phone_lists(mainland)),
        "template_id": draw(ascii_from(r"[0-9]{1,20}")),
        "datas": draw(st.lists(param_value, max_size=5)),
    }
    if draw(st.booleans()):
        body["sub_append"] = draw(ascii_from(r"[0-9]{1,4}"))
    if draw(st.booleans()):
        body["req_id"] = draw(ascii_from(r"[A-Za-z0-9]{1,32}"))
    return body


VALID_BODIES: dict[type[SendRequest], st.SearchStrategy[dict[str, Any]]] = {
    PolyvSendRequest: polyv_bodies(),
    AliyunInterSmsRequest: inter_bodies(),
    AliyunBatchSmsRequest: batch_bodies(),
    RonglianTemplateSmsRequest: ronglian_bodies(),
}

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every place in a JSON-like value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def get(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def replaced(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(value[head], rest, new)  # type: ignore[index]
    return copy


def deleted(value: Any, path: Path) -> Any:
    parent = get(value, path[:-1])
    if isinstance(parent, dict):
        return replaced(value, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
    return replaced(value, path[:-1], [v for i, v in enumerate(parent) if i != path[-1]])


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"13{i:09d}" for i in range(start, start + count)]


def hong_kong_numbers(count: int) -> list[str]:
    return [f"9123{i:04d}" for i in range(count)]


EXAMPLE_BODIES: dict[type[SendRequest], dict[str, Any]] = {
    PolyvSendRequest: {"phone_numbers": ["13800138000"], "template_param_names": [], "template_param_values": []},
    AliyunInterSmsRequest: {
        "phone_numbers": ["91234567"],
        "country_code": "HK",
        "sign_name": "Shop",
        "template_code": "SMS_1",
    },
    AliyunBatchSmsRequest: {
        "template_code": "SMS_1",
        "sign_name": "Shop",
        "messages": [{"phone_number": "13800138000"}],
    },
    RonglianTemplateSmsRequest: {"phone_numbers": ["13800138000"], "template_id": "1"},
}


def get_example(model: type[SendRequest]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in EXAMPLE_BODIES[model].items()}


def with_phones(model: type[SendRequest], phones: list[str]) -> dict[str, Any]:
    body = get_example(model)
    if model is AliyunInterSmsRequest and phones and phones[0].startswith("13"):
        phones = hong_kong_numbers(len(phones))
    if model is AliyunBatchSmsRequest:
        body["messages"] = [{"phone_number": p} for p in phones]
    else:
        body["phone_numbers"] = phones
    return body


def with_phone(model: type[SendRequest], phone: str) -> dict[str, Any]:
    if model is AliyunInterSmsRequest:
        phone = phone[-8:]
    return with_phones(model, [phone])


def with_surrogate(model: type[SendRequest]) -> dict[str, Any]:
    body = get_example(model)
    if model is PolyvSendRequest:
        body.update(template_param_names=["code"], template_param_values=["\ud800"])
    elif model is RonglianTemplateSmsRequest:
        body["datas"] = ["\ud800"]
    elif model is AliyunInterSmsRequest:
        body["template_param"] = {"code": "\ud800"}
    else:
        body["messages"] = [{"phone_number": "13800138000", "template_param": {"code": "\ud800"}}]
    return body


def mutation_actions(path: Path, target: Any) -> list[str]:
    """What can be done to the part of a body at `path`, by what it holds."""
    actions = ["value", "tricky", "wrong type"]
    if path:
        actions.append("delete")
    if isinstance(target, dict):
        actions.append("extra key")
    if isinstance(target, list) and target:
        actions += ["repeat", "grow"]
    if isinstance(target, str):
        actions += ["long", "digits"]
    return actions


def grown(draw: st.DrawFn, body: Any, path: Path, target: list[Any]) -> Any:
    # At and past the 1000-number limit: distinct valid numbers, or a copy of the first element.
    size = draw(st.sampled_from([MAX_NUMBERS_PER_REQUEST - 1, MAX_NUMBERS_PER_REQUEST, MAX_NUMBERS_PER_REQUEST + 1]))
    if all(isinstance(item, str) for item in target) and draw(st.booleans()):
        return replaced(body, path, numbers(size))
    if all(isinstance(item, dict) and "phone_number" in item for item in target):
        return replaced(body, path, [{**target[0], "phone_number": phone} for phone in numbers(size)])
    return replaced(body, path, [target[0]] * size)


def mutated_by(draw: st.DrawFn, action: str, body: Any, path: Path, target: Any) -> Any:
    if action == "value":
        return replaced(body, path, draw(json_like))
    if action == "tricky":
        return replaced(body, path, draw(st.sampled_from(TRICKY_STRINGS)))
    if action == "wrong type":
        return replaced(
            body, path, draw(st.sampled_from([None, True, 0, 1.5, 10**30, [], {}, [target], {"x": target}]))
        )
    if action == "delete":
        return deleted(body, path)
    if action == "extra key":
        return replaced(body, path, {**target, draw(tricky_text): draw(json_like)})
    if action == "repeat":
        return replaced(body, path, [*target, draw(st.sampled_from(target))])
    if action == "grow":
        return grown(draw, body, path, target)
    if action == "long":
        return replaced(body, path, target * draw(st.sampled_from([2, 30, 300])))
    # "digits": the same text written with another script's digits.
    return replaced(body, path, written_with(draw(st.sampled_from([ARABIC_INDIC, FULLWIDTH, DEVANAGARI])), target))


@st.composite
def mutation(draw: st.DrawFn, body: Any) -> Any:
    # Not the root: json_like stands for whole bodies of any shape.
    path = draw(st.sampled_from(paths(body)[1:] or [()]))
    target = get(body, path)
    action = draw(st.sampled_from(mutation_actions(path, target)))
    return mutated_by(draw, action, body, path, target)


@st.composite
def mutated(draw: st.DrawFn, model: type[SendRequest]) -> Any:
    body = draw(VALID_BODIES[model])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        body = draw(mutation(body))
    return body


def shaped(model: type[SendRequest]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of the model's own keys (messages' keys too), holding anything."""
    anything = json_like | tricky_text
    message = st.fixed_dictionaries({}, optional=dict.fromkeys(BatchMessage.model_fields, anything))
    fields: dict[str, st.SearchStrategy[Any]] = dict.fromkeys(model.model_fields, anything)
    if "messages" in fields:
        fields["messages"] = st.lists(message, max_size=4) | anything
    return st.fixed_dictionaries({}, optional=fields)


def inputs(model: type[SendRequest]) -> st.SearchStrategy[Any]:
    return st.one_of(json_like, shaped(model), VALID_BODIES[model], mutated(model))


# --- Properties -------------------------------------------------------------------------------


def phone_inputs(body: Any) -> list[str]:
    """The strings a caller put where phone numbers go (of the top-level phone fields)."""
    if not isinstance(body, dict):
        return []
    found: list[Any] = []
    if isinstance(body.get("phone_numbers"), list):
        found += body["phone_numbers"]
    if isinstance(body.get("messages"), list):
        found += [m.get("phone_number") for m in body["messages"] if isinstance(m, dict)]
    return [p for p in found if isinstance(p, str)]


def check_no_phone_in_errors(error: pydantic.ValidationError, body: Any) -> None:
    """What the API echoes of each error (`field` from the location, `message` from `msg`) never
    holds a number the caller gave. Numbers shorter than 5 characters are left out: they are found
    in the rules' own text (`0086` in a pattern)."""
    phones = {p for p in phone_inputs(body) if len(p) >= 5}
    for detail in error.errors():
        echoed = detail["msg"] + " " + ".".join(str(p) for p in detail["loc"])
        leaked = sorted(p for p in phones if p in echoed)
        assert not leaked, f"{detail['type']} echoes a number: {echoed!r}"


def validate(model: type[SendRequest], body: Any) -> SendRequest | None:
    """The model, or None after a ValidationError whose messages leak no number. Any other
    exception escapes (and fails the test)."""
    try:
        request = model.model_validate(body)
    except pydantic.ValidationError as error:
        check_no_phone_in_errors(error, body)
        return None
    return request


GATEWAY_IDS = st.uuids().map(str) | st.text(max_size=80) | st.just("a" * 40)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_validation_refuses_or_keeps_every_invariant(model: type[SendRequest]) -> None:
    @PROPERTIES
    @given(body=inputs(model), gateway_id=GATEWAY_IDS, data=st.data())
    def prop(body: Any, gateway_id: str, data: st.DataObject) -> None:
        request = validate(model, body)
        if request is None:
            return
        CHECKS[model](request)
        # What the send flow makes of a valid request is as valid: its own id added, some numbers taken.
        tagged = request.with_gateway_id(gateway_id)
        CHECKS[model](model.model_validate(tagged.model_dump()))
        subset = data.draw(st.sets(st.sampled_from(request.phones), min_size=1))
        part = request.only(subset)
        assert part.phones == list(dict.fromkeys(p for p in request.phones if p in subset))
        CHECKS[model](model.model_validate(part.model_dump()))

    prop()


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_valid_bodies_validate(model: type[SendRequest]) -> None:
    """The generators of valid bodies are valid: the mutations start from accepted requests."""

    @PROPERTIES
    @given(body=VALID_BODIES[model])
    def prop(body: dict[str, Any]) -> None:
        model.model_validate(body)

    prop()


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
@pytest.mark.parametrize("size", [MAX_NUMBERS_PER_REQUEST, MAX_NUMBERS_PER_REQUEST + 1])
def test_the_number_limit_is_1000(model: type[SendRequest], size: int) -> None:
    body = with_phones(model, numbers(size))
    request = validate(model, body)
    assert (request is not None) == (size <= MAX_NUMBERS_PER_REQUEST)
    if request is not None:
        CHECKS[model](request)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_a_repeated_handset_is_one_number(model: type[SendRequest]) -> None:
    given = with_phones(model, numbers(999))
    repeated = given["phone_numbers"][7] if "phone_numbers" in given else given["messages"][7]["phone_number"]
    if model is AliyunInterSmsRequest:
        body = with_phones(model, [*hong_kong_numbers(999), repeated])
    else:
        body = with_phones(model, [*numbers(999), "+86" + repeated])
    request = model.model_validate(body)
    assert len(request.phones) == 1000
    assert len(request.only(set(request.phones)).phones) == 999


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_validated_text_holds_no_control_character(model: type[SendRequest]) -> None:
    """Whatever reaches a provider is printable: no C0, DEL or C1 control character, no U+FFFD."""

    @SINGLE_PROPERTIES
    @given(body=inputs(model))
    def prop(body: Any) -> None:
        request = validate(model, body)
        if request is None:
            return
        for text in strings_of(request.model_dump()):
            assert not any(unicodedata.category(c) == "Cc" or c == "\ufffd" for c in text), repr(text)

    prop()


# --- What does not hold today ------------------------------------------------------------------


def digit_fields(request: SendRequest) -> list[str]:
    """The values of every field made of digits: numbers, template ids and codes, extend codes."""
    fields = list(request.phones)
    if isinstance(request, AliyunInterSmsRequest | AliyunBatchSmsRequest):
        fields.append(request.template_code)
    if isinstance(request, AliyunBatchSmsRequest):
        fields += [m.sms_up_extend_code for m in request.messages if m.sms_up_extend_code is not None]
    if isinstance(request, RonglianTemplateSmsRequest):
        fields += [request.template_id, *([request.sub_append] if request.sub_append else [])]
    return fields


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_of(k), *strings_of(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_of(v)]
    return []


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_validated_digit_fields_are_ascii(model: type[SendRequest]) -> None:
    """A Unicode-aware `\\d` reads Arabic-Indic (U+0660…), full-width (U+FF10…) and Devanagari
    digits as digits: such numbers would be sent as they are and get quota counters of their own."""

    @SINGLE_PROPERTIES
    @given(body=mutated(model))
    @example(body=with_phone(model, "13" + written_with(FULLWIDTH, "800138000")))
    def prop(body: Any) -> None:
        request = validate(model, body)
        if request is None:
            return
        for value in digit_fields(request):
            assert value.isascii(), f"{value!r} validated"

    prop()


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_validated_requests_can_be_encoded(model: type[SendRequest]) -> None:
    """A lone surrogate (`"\\ud800"`, legal in JSON as an escape) cannot be put on any provider's
    wire: a validated request never holds one."""

    @SINGLE_PROPERTIES
    @given(body=inputs(model))
    @example(body=with_surrogate(model))
    def prop(body: Any) -> None:
        request = validate(model, body)
        if request is None:
            return
        for text in strings_of(request.model_dump()):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise AssertionError(f"{text!r} validated but cannot be sent") from None

    prop()
