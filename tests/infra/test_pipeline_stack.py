"""The pipeline stack: the SageMaker Pipeline resource, its code assets and its role."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from mlops.adapters import code_bundle
from stacks.pipeline_definition import PLACEHOLDERS
from stacks.platform import Platform


def pipeline(template: Template) -> dict[str, Any]:
    (resource,) = template.find_resources("AWS::SageMaker::Pipeline").values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


def role_id(template: Template) -> str:
    (logical_id,) = template.find_resources("AWS::IAM::Role")
    return str(logical_id)


def statements(template: Template) -> list[dict[str, Any]]:
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    found: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_pipeline_resource(pipeline_template: Template) -> None:
    properties = pipeline(pipeline_template)
    assert properties["PipelineName"] == "mlops-dev-training"
    assert properties["RoleArn"] == {"Fn::GetAtt": [role_id(pipeline_template), "Arn"]}


def test_definition_placeholders_are_all_substituted(pipeline_template: Template) -> None:
    body, variables = pipeline(pipeline_template)["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    used = set(re.findall(r"\$\{([^}]+)\}", body)) - {
        "AWS::Partition",
        "AWS::AccountId",
        "AWS::Region",
    }
    assert used == set(variables) == set(PLACEHOLDERS)
    assert variables["ArtifactsBucket"] == {"Fn::ImportValue": "mlops-dev-artifacts-bucket-name"}
    assert variables["DatasetsBucket"] == {"Fn::ImportValue": "mlops-dev-datasets-bucket-name"}
    assert variables["KmsKeyArn"] == {"Fn::ImportValue": "mlops-dev-data-key-arn"}
    assert variables["RoleName"] == {"Ref": role_id(pipeline_template)}
    definition = json.loads(body)
    assert [s["Name"] for s in definition["Steps"]] == [
        "Preprocess",
        "Train",
        "Evaluate",
        "CheckMetric",
    ]


def test_code_assets_are_the_current_step_archives(pipeline_template: Template) -> None:
    _, variables = pipeline(pipeline_template)["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    # CDK names an asset object by its content hash: the keys change exactly when the code does.
    assert re.fullmatch(r"[0-9a-f]{64}\.pyz", variables["StepsArchiveKey"])
    assert re.fullmatch(r"[0-9a-f]{64}\.gz", variables["SourceArchiveKey"])
    body = pipeline(pipeline_template)["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    assert code_bundle.code_version() in body


def test_role_trusts_only_sagemaker(pipeline_template: Template) -> None:
    (role,) = pipeline_template.find_resources("AWS::IAM::Role").values()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]  # no AWS managed policies
    assert "Policies" not in role["Properties"]
    pipeline_template.resource_count_is("AWS::IAM::Policy", 0)  # no inline policies


def test_pass_role_is_limited_to_itself_and_sagemaker(pipeline_template: Template) -> None:
    passing = [s for s in statements(pipeline_template) if "iam:PassRole" in as_list(s["Action"])]
    assert passing == [
        {
            "Action": "iam:PassRole",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [role_id(pipeline_template), "Arn"]},
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        }
    ]


def test_no_wildcard_actions_or_resources(
    pipeline_template: Template, mlflow_pipeline_template: Template
) -> None:
    # The only exceptions, each acknowledged with its reason: the MLflow API on the one
    # tracking server, and PutMetricData (no resource ARNs exist for it) under a condition.
    for template in (pipeline_template, mlflow_pipeline_template):
        for statement in statements(template):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert "*" not in action or action == "sagemaker-mlflow:*", statement
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert statement["Action"] == "cloudwatch:PutMetricData", statement


def test_s3_access_is_scoped(pipeline_template: Template) -> None:
    by_resource = {
        json.dumps(resource, sort_keys=True): sorted(as_list(s["Action"]))
        for s in statements(pipeline_template)
        for resource in as_list(s["Resource"])
        if any(a.startswith("s3:") for a in as_list(s["Action"]))
    }
    artifacts = {
        "Fn::Join": [
            "",
            [
                {"Fn::ImportValue": "mlops-dev-artifacts-bucket-arn"},
                "/pipelines/mlops-dev-training/*",
            ],
        ]
    }
    datasets = {"Fn::Join": ["", [{"Fn::ImportValue": "mlops-dev-datasets-bucket-arn"}, "/*"]]}
    assert by_resource[json.dumps(artifacts, sort_keys=True)] == ["s3:GetObject", "s3:PutObject"]
    assert by_resource[json.dumps(datasets, sort_keys=True)] == ["s3:GetObject"]  # read-only


def test_step_code_is_readable_and_listable(pipeline_template: Template) -> None:
    listing = [
        s
        for s in statements(pipeline_template)
        if s["Action"] == "s3:ListBucket" and "Condition" in s
    ]
    (asset_listing,) = listing
    _, variables = pipeline(pipeline_template)["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    assert asset_listing["Condition"] == {
        "StringLike": {"s3:prefix": [variables["StepsArchiveKey"], variables["SourceArchiveKey"]]}
    }


def test_metrics_only_in_sagemaker_namespaces(pipeline_template: Template) -> None:
    (metrics,) = [
        s for s in statements(pipeline_template) if s["Action"] == "cloudwatch:PutMetricData"
    ]
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_kms_grants_only_for_aws_resources(pipeline_template: Template) -> None:
    (grant,) = [
        s for s in statements(pipeline_template) if "kms:CreateGrant" in as_list(s["Action"])
    ]
    assert grant["Resource"] == {"Fn::ImportValue": "mlops-dev-data-key-arn"}
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_registration_is_limited_to_the_model_family(pipeline_template: Template) -> None:
    (register,) = [
        s
        for s in statements(pipeline_template)
        if "sagemaker:CreateModelPackage" in as_list(s["Action"])
    ]
    rendered = json.dumps(register["Resource"])
    assert "model-package-group/mlops-dev-visits" in rendered
    assert "model-package/mlops-dev-visits/*" in rendered


def test_mlflow_attachment_when_enabled(
    pipeline_template: Template, mlflow_pipeline_template: Template
) -> None:
    body = pipeline(pipeline_template)["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    assert "MlflowConfig" not in json.loads(body)
    tracked = pipeline(mlflow_pipeline_template)["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ][0]
    config = json.loads(tracked)["MlflowConfig"]
    assert config["MlflowResourceArn"].endswith(":mlflow-tracking-server/mlops-dev-mlflow")
    (mlflow,) = [
        s for s in statements(mlflow_pipeline_template) if s["Action"] == "sagemaker-mlflow:*"
    ]
    assert "mlflow-tracking-server/mlops-dev-mlflow" in json.dumps(mlflow["Resource"])


def test_own_mlflow_server_writes_only_its_experiment_prefix(
    own_mlflow_platform: tuple[cdk.App, Platform], pipeline_template: Template
) -> None:
    template = Template.from_stack(own_mlflow_platform[1].pipeline)
    found = statements(template)
    assert not [s for s in found if s["Action"] == "sagemaker-mlflow:*"]
    mlflow = [s for s in found if "/mlflow/" in json.dumps(s["Resource"])]
    assert len(mlflow) == 1
    assert mlflow[0]["Action"] == "s3:PutObject"  # write-only: MLflow uploads, never reads back
    assert mlflow[0]["Resource"] == {
        "Fn::Join": [
            "",
            [{"Fn::ImportValue": "mlops-dev-artifacts-bucket-arn"}, "/mlflow/mlops-dev-training/*"],
        ]
    }
    body = pipeline(template)["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    assert "s3://${ArtifactsBucket}/mlflow" in body
    assert "https://mlflow.example.com" in body
    # Untracked, the role has no MLflow statement at all.
    assert not [s for s in statements(pipeline_template) if "/mlflow/" in json.dumps(s)]
