"""A template's IAM resolved to concrete policy documents (hand-made templates)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.iam_template import (
    Resolution,
    UnresolvableIntrinsic,
    exports_of,
    function_role,
    function_roles,
    resolve,
    resource_policies,
    role_policies,
    roles_assumed_by,
    ssm_parameters,
)

ACCOUNT, REGION = "111122223333", "eu-west-1"
R = Resolution(account=ACCOUNT, region=REGION, stack_name="serving")


def template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "Parameters": {
            "Stage": {"Type": "String", "Default": "dev"},
            "Champion": {"Type": "String", "Default": ""},
            "Subnets": {"Type": "CommaDelimitedList", "Default": "a,b"},
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            },
        },
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "HasChampion": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Champion"}, ""]}]},
            "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "HasChampion"}]},
            "DevNoChampion": {
                "Fn::And": [{"Fn::Not": [{"Condition": "IsProd"}]}, {"Fn::Not": [{"Condition": "HasChampion"}]}]
            },
        },
        "Mappings": {"Sizes": {"dev": {"Memory": "512"}}},
        "Resources": resources,
    }  # fmt: skip


def lambda_role(**properties: Any) -> dict[str, Any]:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": "lambda.amazonaws.com"},
            }
        ],
    }
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": trust, **properties},
    }


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


RESOURCES: dict[str, dict[str, Any]] = {
    "Queue": {"Type": "AWS::SQS::Queue"},
    "Topic": {"Type": "AWS::SNS::Topic"},
    "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/fn"}},
    "Key": {"Type": "AWS::KMS::Key"},
    "Bucket": {"Type": "AWS::S3::Bucket"},
    "Named": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Fn::Sub": "data-${AWS::AccountId}"}}},
    "Role": lambda_role(),
    "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
    "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {"EndpointName": "ep"}},
    "Thing": {"Type": "AWS::Foo::Widget"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "AWS::AccountId"}, ACCOUNT),
        ({"Ref": "AWS::URLSuffix"}, "amazonaws.com"),
        ({"Ref": "AWS::StackId"},
         f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/serving/00000000-0000-0000-0000-000000000000"),
        ({"Ref": "Stage"}, "dev"),
        ({"Ref": "Subnets"}, ["a", "b"]),
        ({"Ref": "Queue"}, f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/Queue"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, f"arn:aws:sqs:{REGION}:{ACCOUNT}:Queue"),
        ({"Fn::GetAtt": "Queue.QueueName"}, "Queue"),
        ({"Ref": "Topic"}, f"arn:aws:sns:{REGION}:{ACCOUNT}:Topic"),
        ({"Fn::GetAtt": ["Logs", "Arn"]}, f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/fn:*"),
        ({"Fn::GetAtt": ["Key", "Arn"]}, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/Key"),
        ({"Ref": "Bucket"}, "bucket"),
        ({"Fn::GetAtt": ["Named", "Arn"]}, f"arn:aws:s3:::data-{ACCOUNT}"),
        ({"Fn::GetAtt": ["Role", "Arn"]}, f"arn:aws:iam::{ACCOUNT}:role/Role"),
        ({"Fn::GetAtt": ["Fn", "Arn"]}, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Fn"),
        ({"Ref": "Endpoint"}, f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/ep"),
        ({"Fn::GetAtt": ["Thing", "Arn"]}, f"arn:aws:foo:{REGION}:{ACCOUNT}:widget/Thing"),
        ({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": "Bucket"}, "/*"]]},
         "arn:aws:s3:::bucket/*"),
        ({"Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/cdk-assets-${AWS::AccountId}"},
         f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets-{ACCOUNT}"),
        ({"Fn::Sub": "${Queue.Arn}/${Stage}/${!Literal}"}, f"arn:aws:sqs:{REGION}:{ACCOUNT}:Queue/dev/${{Literal}}"),
        ({"Fn::Sub": ["${Name}-${AWS::Region}", {"Name": {"Ref": "Stage"}}]}, f"dev-{REGION}"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}, "y"),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}, "512"),
        ({"Fn::If": ["IsProd", "big", "small"]}, "small"),
        ({"Fn::If": ["DevNoChampion", "yes", "no"]}, "yes"),
        (["a", {"Fn::If": ["HasChampion", "b", {"Ref": "AWS::NoValue"}]}, "c"], ["a", "c"]),
        ({"Key": {"Ref": "AWS::NoValue"}, "Other": 1}, {"Other": 1}),
        ({"Fn::ImportValue": "data-key-arn"}, "arn:aws:kms:eu-west-1:111122223333:key/imported"),
    ],
)  # fmt: skip
def test_intrinsics_resolve_as_cloudformation_would(value: Any, expected: Any) -> None:
    resolution = Resolution(
        account=ACCOUNT, region=REGION, stack_name="serving",
        exports={"data-key-arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/imported"},
    )  # fmt: skip
    assert resolve(template(**RESOURCES), value, resolution) == expected


def test_conditions_follow_the_parameter_values() -> None:
    given = Resolution(parameters={"Stage": "prod", "Champion": "arn:pkg"})
    tpl = template()
    assert resolve(tpl, {"Fn::If": ["IsProd", "big", "small"]}, given) == "big"
    assert resolve(tpl, {"Fn::If": ["Either", 1, 0]}, given) == 1
    assert resolve(tpl, {"Fn::If": ["DevNoChampion", 1, 0]}, given) == 0


def test_the_resolution_names_resources_and_overrides_attributes() -> None:
    resolution = Resolution(
        names={"Queue": "dead-letters"},
        refs={"Topic": "arn:aws:sns:us-east-1:123456789012:given"},
        attributes={"Thing.Endpoint": "https://thing"},
    )
    tpl = template(**RESOURCES)
    assert resolve(tpl, {"Fn::GetAtt": ["Queue", "Arn"]}, resolution).endswith(":dead-letters")
    assert resolve(tpl, {"Ref": "Topic"}, resolution).endswith(":given")
    assert resolve(tpl, {"Fn::GetAtt": ["Thing", "Endpoint"]}, resolution) == "https://thing"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::ImportValue": "nowhere"}, r"value\.Fn::ImportValue: no export 'nowhere'"),
        ({"Fn::GetAZs": ""}, r"value\.Fn::GetAZs: Fn::GetAZs is not supported"),
        ({"Ref": "Missing"}, "Ref 'Missing' is no parameter or resource"),
        ({"Ref": "BootstrapVersion"}, "holds an SSM parameter's value"),
        ({"Fn::GetAtt": ["Queue", "Endpoint"]}, r"Queue\.Endpoint \(AWS::SQS::Queue\)"),
        ({"Fn::GetAtt": ["Nope", "Arn"]}, "no resource 'Nope'"),
        ({"Fn::If": ["NoSuchCondition", 1, 2]}, "no condition 'NoSuchCondition'"),
        ({"Fn::Join": ["", [{"Ref": "Subnets"}]]}, "expected a string"),
        ({"Statement": [{"Resource": {"Fn::ImportValue": "x"}}]},
         r"value\.Statement\[0\]\.Resource\.Fn::ImportValue"),
    ],
)  # fmt: skip
def test_an_unresolvable_intrinsic_names_its_path(value: Any, message: str) -> None:
    with pytest.raises(UnresolvableIntrinsic, match=message):
        resolve(template(**RESOURCES), value, R)


def test_statement_conditions_are_policy_conditions_not_intrinsics() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
    }
    resolved = resolve(template(**RESOURCES), statement, R)
    assert resolved["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def policy_resources() -> dict[str, dict[str, Any]]:
    send = {
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
    }
    publish = {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "Topic"}}
    return {
        **RESOURCES,
        "Role": lambda_role(
            Policies=[{"PolicyName": "inline", "PolicyDocument": doc(send)}],
            ManagedPolicyArns=[
                {"Ref": "ByArn"},
                {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                   ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]]},
            ],
        ),
        "ByArn": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": doc(publish)}},
        "ByRoles": {"Type": "AWS::IAM::ManagedPolicy",
                    "Properties": {"PolicyDocument": doc(send), "Roles": [{"Ref": "Role"}]}},
        "Default": {"Type": "AWS::IAM::Policy",
                    "Properties": {"PolicyName": "RoleDefault", "PolicyDocument": doc(publish),
                                   "Roles": [{"Ref": "Role"}]}},
        "ProdOnly": {"Type": "AWS::IAM::Policy", "Condition": "IsProd",
                     "Properties": {"PolicyName": "prod", "PolicyDocument": doc(send),
                                    "Roles": [{"Ref": "Role"}]}},
        "OtherRole": {**lambda_role(), "Condition": "IsProd"},
        "PipelineRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": doc(
            {"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": ["sagemaker.amazonaws.com", "events.amazonaws.com"]}})}},
    }  # fmt: skip


def test_a_roles_policies_are_its_inline_managed_and_attached_policies() -> None:
    roles = role_policies(template(**policy_resources()), R)
    assert set(roles) == {"Role", "PipelineRole"}  # OtherRole's condition is false
    role = roles["Role"]
    assert role.arn == f"arn:aws:iam::{ACCOUNT}:role/Role"
    assert set(role.policies) == {"inline", "ByArn", "ByRoles", "Default"}  # not ProdOnly
    assert (
        role.policies["inline"]["Statement"][0]["Resource"]
        == f"arn:aws:sqs:{REGION}:{ACCOUNT}:Queue"
    )
    assert (
        role.policies["ByArn"]["Statement"][0]["Resource"]
        == f"arn:aws:sns:{REGION}:{ACCOUNT}:Topic"
    )
    assert role.external_policy_arns == (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    )
    assert role.trust_policy["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    prod = role_policies(template(**policy_resources()), Resolution(parameters={"Stage": "prod"}))
    assert "ProdOnly" in prod["Role"].policies
    assert set(prod) == {"Role", "OtherRole", "PipelineRole"}


def test_which_roles_a_service_assumes_and_which_role_a_function_uses() -> None:
    tpl = template(**policy_resources())
    assert roles_assumed_by(tpl, "lambda.amazonaws.com") == ["Role"]
    assert roles_assumed_by(tpl, "events.amazonaws.com") == ["PipelineRole"]
    assert roles_assumed_by(tpl, "states.amazonaws.com") == []
    assert function_roles(tpl) == {"Fn": "Role"}
    assert function_role(tpl, "Fn") == "Role"
    external = template(
        Fn={"Type": "AWS::Lambda::Function", "Properties": {"Role": "arn:aws:iam::1:role/x"}}
    )
    with pytest.raises(UnresolvableIntrinsic, match="not a role of this template"):
        function_roles(external)


def test_resource_policies_exports_and_ssm_parameters() -> None:
    deny = {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}  # fmt: skip
    tpl = template(
        **RESOURCES,
        KeyWithPolicy={"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": doc(deny)}},
        BucketPolicy={"Type": "AWS::S3::BucketPolicy",
                      "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": doc(deny)}},
        QueuePolicy={"Type": "AWS::SQS::QueuePolicy",
                     "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": doc(deny)}},
        TopicPolicy={"Type": "AWS::SNS::TopicPolicy",
                     "Properties": {"Topics": [{"Ref": "Topic"}], "PolicyDocument": doc(deny)}},
    )  # fmt: skip
    tpl["Outputs"] = {
        "KeyArn": {
            "Value": {"Fn::GetAtt": ["KeyWithPolicy", "Arn"]},
            "Export": {"Name": "key-arn"},
        },
        "Local": {"Value": "not exported"},
    }
    assert sorted(resource_policies(tpl, R)) == [
        f"arn:aws:kms:{REGION}:{ACCOUNT}:key/KeyWithPolicy",
        "arn:aws:s3:::bucket",
        f"arn:aws:sns:{REGION}:{ACCOUNT}:Topic",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:Queue",
    ]
    assert exports_of(tpl, R) == {"key-arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/KeyWithPolicy"}
    assert ssm_parameters(tpl) == {"BootstrapVersion": "/cdk-bootstrap/hnb659fds/version"}
