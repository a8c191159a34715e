"""Pin the logical IDs of stateful resources.

A changed logical ID makes CloudFormation create a new resource and drop the old one: with
RETAIN that orphans the data, without it the data is gone. If this test fails, the change
renames a stateful resource; don't update the list without a migration plan.
"""

from __future__ import annotations

from aws_cdk.assertions import Template

STATEFUL_TYPES = (
    "AWS::KMS::Key",
    "AWS::S3::Bucket",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::SageMaker::MlflowTrackingServer",
)


def stateful_ids(template: Template) -> dict[str, str]:
    resources = template.to_json()["Resources"]
    return {
        logical_id: resource["Type"]
        for logical_id, resource in resources.items()
        if resource["Type"] in STATEFUL_TYPES
    }


def test_storage_logical_ids(storage_template: Template) -> None:
    assert stateful_ids(storage_template) == {
        "DataKey17AFBB84": "AWS::KMS::Key",
        "AccessLogsBucket83982689": "AWS::S3::Bucket",
        "DatasetsBucket9EEDBE5A": "AWS::S3::Bucket",
        "ArtifactsBucket88671897": "AWS::S3::Bucket",
        "CaptureBucket89727A45": "AWS::S3::Bucket",
        "ReportsBucket95FE29A2": "AWS::S3::Bucket",
    }


def test_registry_logical_ids(mlflow_registry_template: Template) -> None:
    assert stateful_ids(mlflow_registry_template) == {
        "ModelPackageGroup": "AWS::SageMaker::ModelPackageGroup",
        "MlflowServer190EE727": "AWS::SageMaker::MlflowTrackingServer",
    }


def test_export_names_are_stable(storage_template: Template) -> None:
    # Other stacks import these by name; renaming one breaks every importing stack's deploy.
    outputs = storage_template.to_json()["Outputs"]
    assert sorted(o["Export"]["Name"] for o in outputs.values() if "Export" in o) == [
        "mlops-dev-artifacts-bucket-arn",
        "mlops-dev-artifacts-bucket-name",
        "mlops-dev-capture-bucket-arn",
        "mlops-dev-capture-bucket-name",
        "mlops-dev-data-key-arn",
        "mlops-dev-datasets-bucket-arn",
        "mlops-dev-datasets-bucket-name",
        "mlops-dev-reports-bucket-arn",
        "mlops-dev-reports-bucket-name",
    ]
