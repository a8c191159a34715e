"""AWS calls -> the IAM requests AWS authorizes for them, and the hook that sees the calls."""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from mlops.adapters.target import AwsTarget, observe_calls
from mlops.local.iam.calls import (
    PLACEHOLDER_STACK_ID,
    CallFacts,
    UnmappedCall,
    mapped_operations,
    requests_for_call,
)
from mlops.local.iam.simulator import IamRequest

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "us-east-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
FACTS = CallFacts(
    bucket_keys={"data": KEY},
    topic_keys={TOPIC: KEY},
    key_aliases={"alias/data": KEY},
    stack_ssm_parameters={"serving": {"BootstrapVersion": "/cdk-bootstrap/hnb659fds/version"}},
)


def requests(service: str, operation: str, **params: Any) -> list[IamRequest]:
    return requests_for_call(
        service, operation, params, account=ACCOUNT, region=REGION, facts=FACTS
    )


def brief(found: list[IamRequest]) -> list[tuple[str, str]]:
    return [(r.action, r.resource) for r in found]


# S3 ------------------------------------------------------------------------------------------


def test_a_read_of_an_encrypted_bucket_decrypts_through_s3() -> None:
    found = requests("s3", "GetObject", Bucket="data", Key="a/b.json")
    assert brief(found) == [("s3:GetObject", "arn:aws:s3:::data/a/b.json"), ("kms:Decrypt", KEY)]
    assert found[1].context["kms:ViaService"] == f"s3.{REGION}.amazonaws.com"
    assert found[1].context["kms:CallerAccount"] == ACCOUNT
    assert found[0].context == {"aws:RequestedRegion": REGION}


def test_head_reads_no_data_and_other_buckets_need_no_key() -> None:
    assert brief(requests("s3", "HeadObject", Bucket="data", Key="k")) == [
        ("s3:GetObject", "arn:aws:s3:::data/k")
    ]
    assert brief(requests("s3", "GetObject", Bucket="logs", Key="k")) == [
        ("s3:GetObject", "arn:aws:s3:::logs/k")
    ]
    versioned = requests("s3", "GetObject", Bucket="logs", Key="k", VersionId="v1")
    assert brief(versioned) == [("s3:GetObjectVersion", "arn:aws:s3:::logs/k")]
    assert versioned[0].context["s3:versionid"] == "v1"


def test_a_write_generates_a_data_key_and_carries_its_headers_as_context() -> None:
    found = requests("s3", "PutObject", Bucket="data", Key="audit/x", IfNoneMatch="*", Body=b"")
    assert brief(found) == [
        ("s3:PutObject", "arn:aws:s3:::data/audit/x"),
        ("kms:GenerateDataKey", KEY),
    ]
    assert found[0].context["s3:if-none-match"] == "*"
    assert found[1].context["kms:EncryptionContext:aws:s3:arn"] == "arn:aws:s3:::data/audit/x"


def test_the_request_key_overrides_the_bucket_default_and_sse_s3_needs_none() -> None:
    other = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/2222"
    found = requests(
        "s3", "PutObject", Bucket="data", Key="k", ServerSideEncryption="aws:kms", SSEKMSKeyId=other
    )
    assert brief(found)[1] == ("kms:GenerateDataKey", other)
    assert found[0].context["s3:x-amz-server-side-encryption-aws-kms-key-id"] == other
    by_alias = requests("s3", "PutObject", Bucket="logs", Key="k", SSEKMSKeyId="alias/data")
    assert brief(by_alias)[1] == ("kms:GenerateDataKey", KEY)
    sse_s3 = requests("s3", "PutObject", Bucket="data", Key="k", ServerSideEncryption="AES256")
    assert brief(sse_s3) == [("s3:PutObject", "arn:aws:s3:::data/k")]


def test_upload_file_parts_are_put_object() -> None:
    created = requests("s3", "CreateMultipartUpload", Bucket="data", Key="big")
    assert [r.action for r in created] == ["s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt"]
    for operation in ("UploadPart", "CompleteMultipartUpload"):
        assert brief(requests("s3", operation, Bucket="data", Key="big", UploadId="u")) == [
            ("s3:PutObject", "arn:aws:s3:::data/big")
        ]


def test_listing_is_list_bucket_on_the_bucket_with_the_prefix() -> None:
    (found,) = requests("s3", "ListObjectsV2", Bucket="data", Prefix="capture/", MaxKeys=1)
    assert (found.action, found.resource) == ("s3:ListBucket", "arn:aws:s3:::data")
    assert found.context["s3:prefix"] == "capture/"
    assert found.context["s3:max-keys"] == "1"
    (bare,) = requests("s3", "ListObjectsV2", Bucket="data")
    assert "s3:prefix" not in bare.context


def test_a_copy_reads_the_source_and_writes_the_target() -> None:
    found = requests("s3", "CopyObject", Bucket="logs", Key="to", CopySource="data/from%20x")
    assert brief(found) == [
        ("s3:GetObject", "arn:aws:s3:::data/from x"),
        ("kms:Decrypt", KEY),
        ("s3:PutObject", "arn:aws:s3:::logs/to"),
    ]


# SNS, SSM, SageMaker, CloudWatch ---------------------------------------------------------------


def test_publishing_to_an_encrypted_topic_uses_its_key_through_sns() -> None:
    found = requests("sns", "Publish", TopicArn=TOPIC, Message="m")
    assert brief(found) == [
        ("sns:Publish", TOPIC),
        ("kms:GenerateDataKey", KEY),
        ("kms:Decrypt", KEY),
    ]
    assert {r.context["kms:ViaService"] for r in found[1:]} == {f"sns.{REGION}.amazonaws.com"}
    plain = f"arn:aws:sns:{REGION}:{ACCOUNT}:plain"
    assert brief(requests("sns", "Publish", TopicArn=plain, Message="m")) == [
        ("sns:Publish", plain)
    ]


@pytest.mark.parametrize(
    ("name", "arn"),
    [
        ("/mlops/dev/weight", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mlops/dev/weight"),
        ("flat", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/flat"),
        ("/a/b:3", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/a/b"),
        (f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/x/y:label",
         f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/x/y"),
    ],
)  # fmt: skip
def test_ssm_parameter_arns_are_parameter_plus_the_name(name: str, arn: str) -> None:
    assert brief(requests("ssm", "GetParameter", Name=name)) == [("ssm:GetParameter", arn)]


def test_ssm_writes_and_batch_reads() -> None:
    (put,) = requests("ssm", "PutParameter", Name="/w", Value="1", Overwrite=True)
    assert put.action == "ssm:PutParameter"
    assert put.context["ssm:Overwrite"] == "true"
    assert [
        r.resource.rsplit(":", 1)[-1] for r in requests("ssm", "GetParameters", Names=["/a", "b"])
    ] == [
        "parameter/a",
        "parameter/b",
    ]


SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("DescribeEndpoint", {"EndpointName": "ep"}, f"{SM}:endpoint/ep"),
        ("UpdateEndpointWeightsAndCapacities", {"EndpointName": "ep", "DesiredWeightsAndCapacities": []},
         f"{SM}:endpoint/ep"),
        ("DescribeEndpointConfig", {"EndpointConfigName": "c"}, f"{SM}:endpoint-config/c"),
        ("DescribeModel", {"ModelName": "m"}, f"{SM}:model/m"),
        ("DescribeModelPackage", {"ModelPackageName": f"{SM}:model-package/grp/3"},
         f"{SM}:model-package/grp/3"),
        ("DescribeModelPackage", {"ModelPackageName": "unversioned"}, f"{SM}:model-package/unversioned"),
        ("UpdateModelPackage", {"ModelPackageArn": f"{SM}:model-package/grp/3"}, f"{SM}:model-package/grp/3"),
        ("StartPipelineExecution", {"PipelineName": "train"}, f"{SM}:pipeline/train"),
        ("DescribePipeline", {"PipelineName": "train"}, f"{SM}:pipeline/train"),
        ("DescribePipelineExecution", {"PipelineExecutionArn": f"{SM}:pipeline/train/execution/x"},
         f"{SM}:pipeline/train/execution/x"),
        ("ListPipelineExecutionSteps", {"PipelineExecutionArn": f"{SM}:pipeline/train/execution/x"},
         f"{SM}:pipeline/train/execution/x"),
        ("ListModelPackages", {"ModelPackageGroupName": "grp"}, "*"),
    ],
)  # fmt: skip
def test_sagemaker_calls_name_their_resource(
    operation: str, params: dict[str, Any], expected: str
) -> None:
    (found,) = requests("sagemaker", operation, **params)
    assert (found.action, found.resource) == (f"sagemaker:{operation}", expected)


def test_approving_a_package_carries_the_status() -> None:
    (found,) = requests(
        "sagemaker", "UpdateModelPackage", ModelPackageArn=f"{SM}:model-package/g/1",
        ModelApprovalStatus="Approved",
    )  # fmt: skip
    assert found.context["sagemaker:ModelApprovalStatus"] == "Approved"


def test_invoke_endpoint_is_a_sagemaker_action() -> None:
    (found,) = requests("sagemaker-runtime", "InvokeEndpoint", EndpointName="ep", Body=b"")
    assert (found.action, found.resource) == ("sagemaker:InvokeEndpoint", f"{SM}:endpoint/ep")


def test_cloudwatch_alarms_by_name_and_metrics_by_namespace() -> None:
    alarms = requests("cloudwatch", "DescribeAlarms", AlarmNames=["a", "b"])
    assert brief(alarms) == [
        ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:a"),
        ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:b"),
    ]
    (every,) = requests("cloudwatch", "DescribeAlarms")
    assert every.resource.endswith(":alarm:*")
    (metric,) = requests("cloudwatch", "PutMetricData", Namespace="MLOps/Drift", MetricData=[])
    assert (metric.resource, metric.context["cloudwatch:namespace"]) == ("*", "MLOps/Drift")
    (data,) = requests("cloudwatch", "GetMetricData", MetricDataQueries=[])
    assert (data.action, data.resource) == ("cloudwatch:GetMetricData", "*")


# CloudFormation, Lambda, EventBridge, STS --------------------------------------------------------

STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/serving/{PLACEHOLDER_STACK_ID}"
CFN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cdk-deploy"


def test_update_stack_passes_its_role_and_reads_its_ssm_parameters() -> None:
    found = requests(
        "cloudformation", "UpdateStack", StackName="serving", UsePreviousTemplate=True,
        RoleARN=CFN_ROLE, Parameters=[{"ParameterKey": "BootstrapVersion", "UsePreviousValue": True}],
    )  # fmt: skip
    assert brief(found) == [
        ("cloudformation:UpdateStack", STACK),
        ("iam:PassRole", CFN_ROLE),
        (
            "ssm:GetParameters",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cdk-bootstrap/hnb659fds/version",
        ),
    ]
    assert found[0].context["cloudformation:RoleArn"] == CFN_ROLE
    assert found[1].context["iam:PassedToService"] == "cloudformation.amazonaws.com"


def test_update_stack_without_a_role_has_no_role_key_and_a_passed_value_names_the_parameter() -> (
    None
):
    found = requests(
        "cloudformation", "UpdateStack", StackName="serving", UsePreviousTemplate=True,
        Parameters=[{"ParameterKey": "BootstrapVersion", "ParameterValue": "/other"}],
    )  # fmt: skip
    assert "cloudformation:RoleArn" not in found[0].context
    assert [r.action for r in found] == ["cloudformation:UpdateStack", "ssm:GetParameters"]
    assert found[1].resource.endswith(":parameter/other")


def test_a_template_url_is_read_with_the_callers_rights() -> None:
    url = "https://cdk-assets.s3.us-east-1.amazonaws.com/abc.json"
    found = requests("cloudformation", "CreateChangeSet", StackName="other", ChangeSetName="cs",
                     TemplateURL=url)  # fmt: skip
    assert brief(found)[-1] == ("s3:GetObject", "arn:aws:s3:::cdk-assets/abc.json")
    assert found[0].context["cloudformation:TemplateUrl"] == url
    path_style = "https://s3.us-east-1.amazonaws.com/cdk-assets/abc.json"
    found = requests("cloudformation", "UpdateStack", StackName="other", TemplateURL=path_style)
    assert brief(found)[-1] == ("s3:GetObject", "arn:aws:s3:::cdk-assets/abc.json")


def test_describe_stacks_names_the_stack() -> None:
    assert brief(requests("cloudformation", "DescribeStacks", StackName="serving")) == [
        ("cloudformation:DescribeStacks", STACK)
    ]
    assert brief(requests("cloudformation", "DescribeStacks", StackName=STACK)) == [
        ("cloudformation:DescribeStacks", STACK)
    ]


@pytest.mark.parametrize(
    ("params", "arn"),
    [
        ({"FunctionName": "fn"}, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"),
        ({"FunctionName": "fn", "Qualifier": "live"}, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn:live"),
        ({"FunctionName": "fn:3"}, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn:3"),
        ({"FunctionName": f"{ACCOUNT}:function:fn"}, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"),
        ({"FunctionName": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:fn"},
         f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:fn"),
    ],
)  # fmt: skip
def test_invoke_is_invoke_function_on_the_qualified_arn(params: dict[str, str], arn: str) -> None:
    assert brief(requests("lambda", "Invoke", **params)) == [("lambda:InvokeFunction", arn)]


def test_put_events_asks_once_per_bus_and_source() -> None:
    entries = [
        {"Source": "mlops", "DetailType": "d", "Detail": "{}"},
        {"Source": "mlops", "DetailType": "d", "Detail": "{}"},
        {"Source": "other", "DetailType": "d", "Detail": "{}", "EventBusName": "custom"},
    ]
    found = requests("events", "PutEvents", Entries=entries)
    assert brief(found) == [
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/custom"),
    ]
    assert found[1].context["events:source"] == "other"


def test_get_caller_identity_is_asked_on_everything() -> None:
    assert brief(requests("sts", "GetCallerIdentity")) == [("sts:GetCallerIdentity", "*")]


def test_an_unmapped_call_names_itself() -> None:
    with pytest.raises(UnmappedCall, match=r"sagemaker\.CreateEndpoint is not mapped"):
        requests("sagemaker", "CreateEndpoint", EndpointName="x", EndpointConfigName="y")
    with pytest.raises(UnmappedCall, match="alias/unknown is not in key_aliases"):
        requests("kms", "DescribeKey", KeyId="alias/unknown")


# Every call the functions' code makes is mapped -------------------------------------------------

# Code that runs in the Lambda functions (the CLI and the twin's own set-up are not judged).
FUNCTION_CODE = ("lambdas", "mlops/usecases", "mlops/adapters", "mlops/core")
SERVICES = ("cloudformation", "cloudwatch", "events", "kms", "lambda", "logs", "s3", "sagemaker",
            "sagemaker-runtime", "sns", "sqs", "ssm", "sts")  # fmt: skip
NOT_AWS_CALLS = {"list_keys", "search"}  # s3io.list_keys, not kms.list_keys; re.search
# s3 upload_file/download_file: HeadObject, GetObject, PutObject, CreateMultipartUpload, UploadPart,
# CompleteMultipartUpload (see test_upload_file_parts_are_put_object).
PLATFORM_CALLS = {
    ("s3", "GetObject"), ("s3", "PutObject"), ("s3", "HeadObject"), ("s3", "ListObjectsV2"),
    ("s3", "CreateMultipartUpload"), ("s3", "UploadPart"), ("s3", "CompleteMultipartUpload"),
    ("sns", "Publish"), ("ssm", "GetParameter"), ("ssm", "PutParameter"), ("ssm", "GetParameters"),
    ("sagemaker", "DescribeEndpoint"), ("sagemaker", "DescribeEndpointConfig"),
    ("sagemaker", "DescribeModel"), ("sagemaker", "DescribeModelPackage"),
    ("sagemaker", "UpdateModelPackage"), ("sagemaker", "UpdateEndpointWeightsAndCapacities"),
    ("sagemaker", "StartPipelineExecution"), ("sagemaker", "DescribePipeline"),
    ("sagemaker", "DescribePipelineExecution"), ("sagemaker", "ListPipelineExecutionSteps"),
    ("sagemaker", "ListModelPackages"), ("cloudwatch", "DescribeAlarms"),
    ("cloudwatch", "PutMetricData"), ("cloudwatch", "GetMetricData"),
    ("cloudformation", "DescribeStacks"), ("cloudformation", "UpdateStack"),
    ("sts", "GetCallerIdentity"), ("events", "PutEvents"), ("lambda", "Invoke"),
}  # fmt: skip


def test_the_calls_the_platform_makes_are_mapped() -> None:
    assert PLATFORM_CALLS - set(mapped_operations()) == set()


def test_every_client_method_the_functions_code_calls_is_mapped() -> None:
    """A new AWS call in code the functions run fails here until calls.py maps it."""
    session = botocore.session.get_session()
    operations: dict[str, set[tuple[str, str]]] = {}
    for service in SERVICES:
        for name in session.get_service_model(service).operation_names:
            operations.setdefault(xform_name(name), set()).add((service, name))
    called: dict[str, str] = {}
    for folder in FUNCTION_CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            names = re.findall(r"\.([a-z0-9_]+)\(", text)
            names += re.findall(r"get_paginator\(\s*\"([a-z0-9_]+)\"", text)
            for name in names:
                if name in operations and name not in NOT_AWS_CALLS:
                    called.setdefault(name, str(path.relative_to(ROOT)))
    mapped = set(mapped_operations())
    unmapped = {name: where for name, where in called.items() if not operations[name] & mapped}
    assert unmapped == {}
    assert len(called) >= 20  # the scan finds the calls (it is not vacuous)


def test_every_mapped_operation_exists_in_botocore() -> None:
    session = botocore.session.get_session()
    for service, operation in mapped_operations():
        assert operation in session.get_service_model(service).operation_names, (service, operation)


# The hook: observe_calls -------------------------------------------------------------------------


def refuse(service: str, operation: str, params: Mapping[str, Any]) -> None:
    raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"no {operation}"}}, operation)


def offline_target() -> AwsTarget:
    # Nothing listens there: a call that got through would fail with a connection error.
    return AwsTarget(region=REGION, endpoint_url="http://127.0.0.1:9")


def test_observers_see_service_operation_and_api_params_and_may_refuse_the_call() -> None:
    s3 = offline_target().client("s3")
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with (
        observe_calls(lambda *call: seen.append((call[0], call[1], dict(call[2])))),
        observe_calls(refuse),
    ):
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="b", Key="k", Body=b"x", IfNoneMatch="*")
        with pytest.raises(ClientError):
            for _ in s3.get_paginator("list_objects_v2").paginate(Bucket="b", Prefix="p/"):
                pass
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.operation_name == "PutObject"
    assert [(s, o) for s, o, _ in seen] == [("s3", "PutObject"), ("s3", "ListObjectsV2")]
    assert seen[0][2]["Key"] == "k"
    assert seen[0][2]["IfNoneMatch"] == "*"
    assert seen[1][2]["Prefix"] == "p/"


def test_service_names_are_botocores() -> None:
    seen: list[str] = []
    target = offline_target()
    with observe_calls(lambda service, *_: seen.append(service)), observe_calls(refuse):
        for call in (
            lambda: target.client("cloudwatch").describe_alarms(AlarmNames=["a"]),
            lambda: target.client("sagemaker-runtime").invoke_endpoint(EndpointName="e", Body=b""),
        ):
            with pytest.raises(ClientError):
                call()
    assert seen == ["cloudwatch", "sagemaker-runtime"]


def test_observers_end_with_their_block_and_calls_outside_are_untouched() -> None:
    s3 = offline_target().client("s3")
    with Stubber(s3) as stub:
        stub.add_response("head_bucket", {})
        stub.add_response("head_bucket", {})
        seen: list[str] = []
        with observe_calls(lambda _, operation, __: seen.append(operation)):
            s3.head_bucket(Bucket="b")
        s3.head_bucket(Bucket="b")
    assert seen == ["HeadBucket"]


def test_concurrent_threads_see_only_their_own_calls() -> None:
    target = offline_target()
    seen: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(name: str) -> None:
        s3 = target.client("s3")
        with observe_calls(lambda *call: seen[name].append(call[2]["Key"])), observe_calls(refuse):
            start.wait()
            for i in range(20):
                with pytest.raises(ClientError):
                    s3.get_object(Bucket="b", Key=f"{name}{i}")

    threads = [threading.Thread(target=work, args=(name,)) for name in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {name: [f"{name}{i}" for i in range(20)] for name in seen}


def test_a_thread_started_inside_sees_nothing_unless_given_the_context() -> None:
    s3 = offline_target().client("s3")
    seen: list[str] = []
    with Stubber(s3) as stub:
        stub.add_response("head_bucket", {})
        stub.add_response("head_bucket", {})
        with observe_calls(lambda _, operation, __: seen.append(operation)):
            plain = threading.Thread(target=lambda: s3.head_bucket(Bucket="b"))
            plain.start()
            plain.join()
            context = contextvars.copy_context()
            copied = threading.Thread(target=lambda: context.run(s3.head_bucket, Bucket="b"))
            copied.start()
            copied.join()
    assert seen == ["HeadBucket"]


def test_upload_file_is_observed_when_it_runs_on_the_callers_thread(tmp_path: Path) -> None:
    source = tmp_path / "model.tar.gz"
    source.write_bytes(b"x")
    s3 = offline_target().client("s3")
    seen: list[str] = []
    config = TransferConfig(use_threads=False)
    with (
        observe_calls(lambda _, operation, __: seen.append(operation)),
        observe_calls(refuse),
        pytest.raises(S3UploadFailedError, match="AccessDenied"),
    ):
        s3.upload_file(str(source), "b", "k", Config=config)
    assert seen == ["PutObject"]
