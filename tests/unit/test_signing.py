"""Signatures against the providers' published known answers and against official signers."""

from __future__ import annotations

import string
from typing import Any

import pytest
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.auth.algorithm import sha_hmac1
from aliyunsdkcore.auth.composer import rpc_signature_composer
from hypothesis import given, settings
from hypothesis import strategies as st
from ronglian_sms_sdk import SmsSDK

from smsgw.providers.aliyun import rpc_signature, string_to_sign
from smsgw.providers.polyv import polyv_sign
from smsgw.providers.ronglian import ronglian_authorization, ronglian_sig

ALIYUN_KNOWN_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}


class TestPublishedKnownAnswers:
    def test_aliyun_get(self) -> None:
        assert rpc_signature("GET", ALIYUN_KNOWN_PARAMS, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="

    def test_aliyun_post(self) -> None:
        assert rpc_signature("POST", ALIYUN_KNOWN_PARAMS, "testSecret") == "Xvhv7fPXrPkLVSnlt0jIr08o8NQ="

    def test_aliyun_ignores_an_existing_signature_parameter(self) -> None:
        params = {**ALIYUN_KNOWN_PARAMS, "Signature": "stale"}
        assert rpc_signature("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="

    def test_polyv(self) -> None:
        params: dict[str, Any] = {
            "appId": "g4rqgmmjuo",
            "channelIds": "2477096,2272655",
            "startDay": "2022-05-20",
            "endDay": "2022-06-18",
            "timestamp": "1660270926732",
            "page": None,
            "size": None,
        }
        assert polyv_sign(params, "fsq2k5weced1h8vui657xtdva66whf0g") == "0D2BDA2FD04D93A2B8832B91FD973C4D"

    def test_polyv_skips_blank_values_and_the_sign_itself(self) -> None:
        base = {"appId": "g4rqgmmjuo", "timestamp": "1660270926732"}
        noisy = {**base, "sign": "OLD", "page": "", "size": "  "}
        assert polyv_sign(noisy, "s") == polyv_sign(base, "s")

    def test_polyv_sha256_is_signed_and_longer(self) -> None:
        params = {"appId": "a", "timestamp": "1", "signatureMethod": "SHA256"}
        sign = polyv_sign(params, "s")
        assert len(sign) == 64
        assert sign == sign.upper()

    def test_ronglian(self) -> None:
        sid, token, ts = "8a216da8000000000000000000000001", "0123456789abcdef0123456789abcdef", "20240101120000"
        assert ronglian_sig(sid, token, ts) == "8B30444D4D2FA787D091F4B0F86F1463"
        assert ronglian_authorization(sid, ts) == "OGEyMTZkYTgwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDE6MjAyNDAxMDExMjAwMDA="


def test_ronglian_matches_the_official_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    # The SDK prints its inputs (the auth token included); capsys keeps that out of the output.
    sdk = SmsSDK("8a216da8000000000000000000000001", "0123456789abcdef0123456789abcdef", "app")
    for ts in ("20240101120000", "20261122235959", "19991231000000"):
        assert sdk._SmsSDK__buildSign(ts) == ronglian_sig(
            "8a216da8000000000000000000000001", "0123456789abcdef0123456789abcdef", ts
        )
        official_auth = sdk._SmsSDK__buildAuthorization(ts)
        assert official_auth.decode() == ronglian_authorization("8a216da8000000000000000000000001", ts)
    capsys.readouterr()


# Every character class the encoding rules single out, plus arbitrary Unicode (no surrogates,
# which UTF-8 cannot carry).
_tricky = st.sampled_from([" ", "*", "~", "+", "/", "&", "=", "%", "'", "(", ")", "!", "中", "é", "😀"])
_text = st.lists(
    st.one_of(_tricky, st.characters(exclude_categories=["Cs"]), st.sampled_from(string.ascii_letters)),
    max_size=24,
).map("".join)
# `Signature` is the one parameter never signed; the official signers expect it absent.
_keys = st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=16).filter(
    lambda k: k != "Signature"
)
_params = st.dictionaries(_keys, _text, min_size=1, max_size=12)
_secret = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(params=_params, method=st.sampled_from(["GET", "POST"]), secret=_secret)
def test_aliyun_signature_equals_the_tea_openapi_signer(params: dict[str, str], method: str, secret: str) -> None:
    assert rpc_signature(method, params, secret) == TeaUtils.get_rpcsignature(params, method, secret)


@settings(max_examples=300, deadline=None)
@given(params=_params, method=st.sampled_from(["GET", "POST"]), secret=_secret)
def test_aliyun_signature_equals_the_core_sdk_signer(params: dict[str, str], method: str, secret: str) -> None:
    compose = getattr(rpc_signature_composer, "__compose_string_to_sign")
    official_string = compose(method, dict(params))
    assert string_to_sign(method, params) == official_string
    assert rpc_signature(method, params, secret) == sha_hmac1.get_sign_string(official_string, secret + "&")
