"""The registry stack: the model package group, and managed MLflow behind its flag."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template


def test_model_package_group_is_named_from_config_and_retained(registry_template: Template) -> None:
    registry_template.resource_count_is("AWS::SageMaker::ModelPackageGroup", 1)
    registry_template.has_resource(
        "AWS::SageMaker::ModelPackageGroup",
        {
            "Properties": {"ModelPackageGroupName": "mlops-dev-visits"},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_group_name_follows_project_stage_and_family(build: Any) -> None:
    _, platform = build(project="acme", stage="prod", model_family="churn")
    Template.from_stack(platform.registry).has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": "acme-prod-churn"}
    )


def test_mlflow_server_is_off_by_default(registry_template: Template) -> None:
    registry_template.resource_count_is("AWS::SageMaker::MlflowTrackingServer", 0)
    registry_template.resource_count_is("AWS::IAM::Role", 0)


def test_mlflow_server_stores_artifacts_in_the_artifacts_bucket(
    mlflow_registry_template: Template,
) -> None:
    mlflow_registry_template.has_resource(
        "AWS::SageMaker::MlflowTrackingServer",
        {
            "Properties": {
                "TrackingServerName": "mlops-dev-mlflow",
                "TrackingServerSize": "Small",
                "AutomaticModelRegistration": False,
                "ArtifactStoreUri": {
                    "Fn::Join": [
                        "",
                        [
                            "s3://",
                            {"Fn::ImportValue": "mlops-dev-artifacts-bucket-name"},
                            "/mlflow",
                        ],
                    ]
                },
                "RoleArn": {"Fn::GetAtt": [Match.string_like_regexp("^MlflowRole"), "Arn"]},
            },
            "DeletionPolicy": "Retain",
        },
    )


def test_mlflow_size_comes_from_config(build: Any) -> None:
    _, platform = build(enable_mlflow_server="true", mlflow_server_size="Medium")
    Template.from_stack(platform.registry).has_resource_properties(
        "AWS::SageMaker::MlflowTrackingServer", {"TrackingServerSize": "Medium"}
    )


def test_mlflow_role_is_assumable_only_by_sagemaker_in_this_account(
    mlflow_registry_template: Template,
) -> None:
    (role,) = mlflow_registry_template.find_resources("AWS::IAM::Role").values()
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
        }
    ]
    assert "Policies" not in role["Properties"]  # no inline policies
    mlflow_registry_template.resource_count_is("AWS::IAM::Policy", 0)
    (policy_id,) = mlflow_registry_template.find_resources("AWS::IAM::ManagedPolicy")
    # Only our own policy: no AWS managed policy (AmazonSageMakerFullAccess and the like).
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": policy_id}]


def test_retained_server_keeps_its_role(mlflow_registry_template: Template) -> None:
    for kind in (
        "AWS::SageMaker::MlflowTrackingServer",
        "AWS::IAM::Role",
        "AWS::IAM::ManagedPolicy",
    ):
        for logical_id, resource in mlflow_registry_template.find_resources(kind).items():
            assert resource.get("DeletionPolicy") == "Retain", logical_id


def test_mlflow_role_has_least_privilege(mlflow_registry_template: Template) -> None:
    (policy,) = mlflow_registry_template.find_resources("AWS::IAM::ManagedPolicy").values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    bucket_arn = {"Fn::ImportValue": "mlops-dev-artifacts-bucket-arn"}
    by_action = {
        tuple(s["Action"]) if isinstance(s["Action"], list) else (s["Action"],): s
        for s in statements
    }
    assert set(by_action) == {
        ("s3:DeleteObject", "s3:GetObject", "s3:PutObject"),
        ("s3:ListBucket",),
        ("s3:GetBucketLocation",),
        ("kms:Decrypt", "kms:GenerateDataKey"),
    }
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not any("*" in action for action in actions), statement
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        assert "*" not in resources, statement
    objects = by_action[("s3:DeleteObject", "s3:GetObject", "s3:PutObject")]
    assert objects["Resource"] == {"Fn::Join": ["", [bucket_arn, "/mlflow/*"]]}
    listing = by_action[("s3:ListBucket",)]
    assert listing["Resource"] == bucket_arn
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["mlflow", "mlflow/*"]}}
    kms = by_action[("kms:Decrypt", "kms:GenerateDataKey")]
    assert kms["Resource"] == {"Fn::ImportValue": "mlops-dev-data-key-arn"}
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_registry_depends_on_storage(mlflow_platform: Any) -> None:
    _, platform = mlflow_platform
    assert platform.storage in platform.registry.dependencies
