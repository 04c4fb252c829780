"""AWS::LanguageExtensions as the local stack, the template's tests and the scanners apply it: what
a loop generates, how its identifier is substituted, and Fn::FindInMap resolved where its keys are
known. template.yaml's own expansion is checked against the resources it must declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local.language_extensions import TemplateError, expand, substitute
from local.template import load_document, read_document

TEMPLATE = Path(__file__).parents[2] / "template.yaml"
TRANSFORM = ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
PROVIDERS = ("Polyv", "Aliyun", "Ronglian")


def _template(resources: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"Transform": TRANSFORM, "Resources": resources, **sections}


def test_an_identifier_is_substituted_in_keys_sub_strings_and_refs() -> None:
    fragment = {
        "${Name}&{Name}Queue": {
            "Properties": {
                "Tag": {"Ref": "Name"},
                "Arn": {"Fn::GetAtt": [{"Fn::Sub": "${Name}Queue"}, "Arn"]},
                "Url": {"Ref": {"Fn::Sub": "${Name}Queue"}},
                "Text": {"Fn::Sub": "${Name} in ${AWS::Region}"},
            }
        }
    }

    assert substitute(fragment, "Name", "a/b") == {
        "a/babQueue": {
            "Properties": {
                "Tag": "a/b",
                "Arn": {"Fn::GetAtt": [{"Fn::Sub": "a/bQueue"}, "Arn"]},
                "Url": {"Ref": {"Fn::Sub": "a/bQueue"}},
                "Text": {"Fn::Sub": "a/b in ${AWS::Region}"},
            }
        }
    }


def test_a_loop_declares_one_fragment_per_item_and_known_subs_become_strings() -> None:
    document = _template(
        {
            "Fn::ForEach::Queues": [
                "Name",
                ["A", "B"],
                {
                    "${Name}Queue": {"Type": "AWS::SQS::Queue"},
                    "${Name}Alarm": {
                        "Type": "AWS::CloudWatch::Alarm",
                        "Properties": {
                            "Queue": {"Fn::GetAtt": [{"Fn::Sub": "${Name}Queue"}, "QueueName"]},
                            "Description": {"Fn::Sub": ["${Name} ${What}", {"What": "waits"}]},
                            "Stack": {"Fn::Sub": ["${AWS::StackName}-${Lower}", {"Lower": "x"}]},
                        },
                    },
                },
            ],
            "Static": {"Type": "AWS::SQS::Queue"},
        }
    )

    resources = expand(document)["Resources"]

    assert list(resources) == ["AQueue", "AAlarm", "BQueue", "BAlarm", "Static"]
    assert resources["BAlarm"]["Properties"] == {
        "Queue": {"Fn::GetAtt": ["BQueue", "QueueName"]},
        "Description": "B waits",
        "Stack": {"Fn::Sub": "${AWS::StackName}-x"},
    }


def test_nested_loops_take_their_collection_from_mappings() -> None:
    document = _template(
        {
            "Fn::ForEach::Providers": [
                "Provider",
                ["P", "Q"],
                {
                    "Fn::ForEach::Operations": [
                        "Operation",
                        {"Fn::FindInMap": ["Providers", {"Ref": "Provider"}, "Operations"]},
                        {"${Provider}&{Operation}Alarm": {"Properties": {"Operation": {"Ref": "Operation"}}}},
                    ]
                },
            ]
        },
        Mappings={"Providers": {"P": {"Operations": ["sms/send"]}, "Q": {"Operations": ["One", "Two"]}}},
    )

    resources = expand(document)["Resources"]

    assert resources == {
        "PsmssendAlarm": {"Properties": {"Operation": "sms/send"}},
        "QOneAlarm": {"Properties": {"Operation": "One"}},
        "QTwoAlarm": {"Properties": {"Operation": "Two"}},
    }


def test_a_collection_may_be_a_comma_delimited_list_parameter() -> None:
    document = _template({"Fn::ForEach::Queues": ["Name", {"Ref": "Names"}, {"${Name}Queue": {}}]})

    assert set(expand(document, {"Names": "A, B"})["Resources"]) == {"AQueue", "BQueue"}


def test_find_in_map_resolves_known_keys_falls_back_to_its_default_and_leaves_the_rest() -> None:
    region = {"Fn::FindInMap": ["Regions", {"Ref": "AWS::Region"}, "Name"]}
    document = _template(
        {
            "Thing": {
                "Properties": {
                    "Known": {"Fn::FindInMap": ["Providers", "P", "Slug"]},
                    "Defaulted": {"Fn::FindInMap": ["Providers", "P", "Missing", {"DefaultValue": "none"}]},
                    "Later": region,
                }
            }
        },
        Mappings={"Providers": {"P": {"Slug": "p"}}, "Regions": {"us-east-1": {"Name": "virginia"}}},
    )

    assert expand(document)["Resources"]["Thing"]["Properties"] == {
        "Known": "p",
        "Defaulted": "none",
        "Later": region,
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            _template({"Fn::ForEach::Queues": ["Name", ["A", "A"], {"${Name}Queue": {}}]}),
            "AQueue is generated twice",
        ),
        (
            _template({"Fn::ForEach::Queues": ["Name", ["A"], {"${Name}Queue": {}}], "AQueue": {}}),
            "AQueue is declared twice",
        ),
        (_template({"Fn::ForEach::Queues": ["Name", ["A"]]}), "expected [identifier, collection, fragment]"),
        (
            _template({"Thing": {"Properties": {"X": {"Fn::FindInMap": ["Providers", "P", "Nope"]}}}}),
            "Mappings has no Providers.P.Nope",
        ),
        (
            {"Resources": {"Fn::ForEach::Queues": ["Name", ["A"], {"${Name}Queue": {}}]}},
            "needs the AWS::LanguageExtensions transform",
        ),
    ],
)
def test_a_template_the_transform_would_refuse_is_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace(".", r"\.")):
        expand(document)


def test_a_template_without_the_transform_is_left_as_it_is() -> None:
    document = {"Resources": {"Thing": {"Properties": {"X": {"Fn::Sub": "plain"}}}}}

    assert expand(document) == document


def test_the_templates_providers_loop_declares_each_providers_resources() -> None:
    written = read_document(TEMPLATE)["Resources"]
    resources = load_document(TEMPLATE)["Resources"]
    per_provider = (
        "Queue",
        "DeadLetterQueue",
        "Secret",
        "LogGroup",
        "FunctionRole",
        "QueueMapping",
        "DeadLetterAlarm",
        "FunctionErrorsAlarm",
        "FunctionThrottlesAlarm",
        "Dashboard",
    )

    for provider in PROVIDERS:
        for kind in per_provider:
            assert f"{provider}{kind}" in resources
            assert f"{provider}{kind}" not in written, "declared once, in the loop"
    failure_alarms = {name for name in resources if name.endswith("FailureRateAlarm")}
    assert failure_alarms == {
        "PolyvsmssendFailureRateAlarm",
        "AliyunSendInterSmsFailureRateAlarm",
        "AliyunSendBatchSmsFailureRateAlarm",
        "RonglianTemplateSMSFailureRateAlarm",
    }
    assert not [name for name in resources if name.startswith("Fn::")]
