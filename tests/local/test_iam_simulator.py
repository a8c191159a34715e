"""The policy evaluator (iam-simulate on Node) judges requests as IAM does, and refuses calls."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlops.adapters.target import AwsTarget, observe_calls
from mlops.local.iam import simulator as simulator_module
from mlops.local.iam.calls import CallFacts, mapped_operations, requests_for_call
from mlops.local.iam.simulator import (
    IamRequest,
    Identity,
    PolicySimulator,
    SimulatorUnavailable,
    access_denied,
    find_node,
)

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/fn"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111"
CFN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cfn"
STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/serving/*"
ACCOUNT_TRUST = {  # the key policy CDK writes: IAM policies of the account decide
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
         "Action": "kms:*", "Resource": "*"},
    ],
}  # fmt: skip


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str | list[str], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


@pytest.fixture(scope="module")
def simulator() -> Iterator[PolicySimulator]:
    with PolicySimulator() as started:
        yield started


def decide(
    simulator: PolicySimulator,
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    context: Mapping[str, str | list[str]] | None = None,
    resource_policies: Mapping[str, Any] | None = None,
) -> str:
    identity = Identity(ROLE, {"fn-policy": policy(*statements)})
    request = IamRequest(action, resource, dict(context or {}))
    return simulator.evaluate(request, identity, resource_policies=resource_policies).result


def test_object_arns_are_matched_as_iam_does(simulator: PolicySimulator) -> None:
    grant = [allow("s3:PutObject", "arn:aws:s3:::bucket/a/*")]
    assert decide(simulator, grant, "s3:PutObject", "arn:aws:s3:::bucket/a/x") == "Allowed"
    assert decide(simulator, grant, "s3:PutObject", "arn:aws:s3:::bucket/b/x") == "ImplicitlyDenied"
    assert decide(simulator, grant, "s3:GetObject", "arn:aws:s3:::bucket/a/x") == "ImplicitlyDenied"


def test_pass_role_needs_the_right_service(simulator: PolicySimulator) -> None:
    grant = [
        allow(
            "iam:PassRole",
            CFN_ROLE,
            StringEquals={"iam:PassedToService": "cloudformation.amazonaws.com"},
        )
    ]
    to_cfn = {"iam:PassedToService": "cloudformation.amazonaws.com"}
    assert decide(simulator, grant, "iam:PassRole", CFN_ROLE, to_cfn) == "Allowed"
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert decide(simulator, grant, "iam:PassRole", CFN_ROLE, to_lambda) == "ImplicitlyDenied"
    other_role = f"arn:aws:iam::{ACCOUNT}:role/admin"
    assert decide(simulator, grant, "iam:PassRole", other_role, to_cfn) == "ImplicitlyDenied"


def test_a_condition_on_a_key_the_request_lacks_denies(simulator: PolicySimulator) -> None:
    grant = [
        allow(
            "cloudformation:UpdateStack", STACK, StringEquals={"cloudformation:RoleArn": CFN_ROLE}
        )
    ]
    stack = STACK.replace("*", "00000000-0000-0000-0000-000000000000")
    with_role = {"cloudformation:RoleArn": CFN_ROLE}
    assert decide(simulator, grant, "cloudformation:UpdateStack", stack, with_role) == "Allowed"
    assert decide(simulator, grant, "cloudformation:UpdateStack", stack) == "ImplicitlyDenied"


def test_an_explicit_deny_wins_and_is_worded_as_aws_words_it(simulator: PolicySimulator) -> None:
    statements = [
        allow("s3:*", "*"),
        {"Sid": "NoAudit", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/audit/*"},
    ]  # fmt: skip
    identity = Identity(ROLE, {"fn-policy": policy(*statements)}, session_name="fn")
    decision = simulator.evaluate(IamRequest("s3:DeleteObject", "arn:aws:s3:::b/audit/x"), identity)
    assert (decision.allowed, decision.result, decision.denied_by) == (
        False,
        "ExplicitlyDenied",
        "identity",
    )
    assert "Sid NoAudit" in decision.explanation
    error = access_denied(decision, caller=identity.session_arn, operation="DeleteObject")
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["Error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/fn/fn is not authorized to perform: "
        "s3:DeleteObject on resource: arn:aws:s3:::b/audit/x with an explicit deny in an "
        "identity-based policy"
    )


def test_an_implicit_denial_explains_the_near_miss(simulator: PolicySimulator) -> None:
    identity = Identity(ROLE, [policy(allow("s3:PutObject", "arn:aws:s3:::bucket/a/*"))])
    decision = simulator.evaluate(IamRequest("s3:PutObject", "arn:aws:s3:::bucket/b/x"), identity)
    assert "arn:aws:s3:::bucket/a/*" in decision.explanation
    message = access_denied(decision, caller=identity.session_arn, operation="PutObject")
    assert str(message).endswith("because no identity-based policy allows the s3:PutObject action")


def test_kms_needs_the_key_policy_to_trust_the_account(simulator: PolicySimulator) -> None:
    grant = [
        allow(
            "kms:GenerateDataKey",
            KEY,
            StringEquals={"kms:ViaService": "s3.us-east-1.amazonaws.com"},
        )
    ]
    via_s3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    trusted = {KEY: ACCOUNT_TRUST}
    assert decide(simulator, grant, "kms:GenerateDataKey", KEY, via_s3, trusted) == "Allowed"
    assert decide(simulator, grant, "kms:GenerateDataKey", KEY, via_s3) == "ImplicitlyDenied"
    via_sns = {"kms:ViaService": "sns.us-east-1.amazonaws.com"}
    assert (
        decide(simulator, grant, "kms:GenerateDataKey", KEY, via_sns, trusted) == "ImplicitlyDenied"
    )


def test_a_list_of_everything_needs_a_grant_of_everything(simulator: PolicySimulator) -> None:
    group = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/grp/*"
    narrow = [allow("sagemaker:ListModelPackages", group)]
    assert decide(simulator, narrow, "sagemaker:ListModelPackages", "*") == "ImplicitlyDenied"
    wide = [allow("sagemaker:ListModelPackages", "*")]
    assert decide(simulator, wide, "sagemaker:ListModelPackages", "*") == "Allowed"
    alarms = [allow("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:a*")]
    every = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"
    assert decide(simulator, alarms, "cloudwatch:DescribeAlarms", every) == "ImplicitlyDenied"


def test_mapped_calls_are_judged_with_their_context(simulator: PolicySimulator) -> None:
    statements = [
        allow("s3:ListBucket", "arn:aws:s3:::data", StringLike={"s3:prefix": "capture/*"}),
        allow("cloudwatch:PutMetricData", "*", StringEquals={"cloudwatch:namespace": "MLOps/Drift"}),
    ]  # fmt: skip
    identity = Identity(ROLE, [policy(*statements)])

    def results(service: str, operation: str, **params: Any) -> list[str]:
        found = requests_for_call(
            service, operation, params, account=ACCOUNT, region=REGION, facts=CallFacts()
        )
        return [d.result for d in simulator.evaluate_many(found, identity)]

    assert results("s3", "ListObjectsV2", Bucket="data", Prefix="capture/ep/") == ["Allowed"]
    assert results("s3", "ListObjectsV2", Bucket="data", Prefix="reports/") == ["ImplicitlyDenied"]
    assert results("s3", "ListObjectsV2", Bucket="data") == ["ImplicitlyDenied"]
    assert results("cloudwatch", "PutMetricData", Namespace="MLOps/Drift", MetricData=[]) == [
        "Allowed"
    ]
    assert results("cloudwatch", "PutMetricData", Namespace="Other", MetricData=[]) == [
        "ImplicitlyDenied"
    ]
    assert results("sts", "GetCallerIdentity") == ["Allowed"]  # AWS allows it to everyone


def test_bad_input_is_an_error_not_a_denial(simulator: PolicySimulator) -> None:
    grant = [allow("s3:*", "*")]
    assert decide(simulator, grant, "s3:NoSuchAction", "arn:aws:s3:::b/k") == "error"
    assert decide(simulator, grant, "s3:GetObject", f"arn:aws:sns:{REGION}:{ACCOUNT}:t") == "error"
    broken = Identity(ROLE, [{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}])
    decision = simulator.evaluate(IamRequest("s3:GetObject", "arn:aws:s3:::b/k"), broken)
    assert (decision.allowed, decision.result) == (False, "error")
    assert "policy.errors" in decision.explanation


# Every mapped operation yields requests the evaluator accepts (a valid action, a resource of a
# type the action takes): a new mapping needs an example here.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("cloudformation", "CreateChangeSet"): {"StackName": "s", "ChangeSetName": "c", "RoleARN": CFN_ROLE},
    ("cloudformation", "DescribeStackEvents"): {"StackName": "s"},
    ("cloudformation", "DescribeStacks"): {"StackName": "s"},
    ("cloudformation", "ExecuteChangeSet"): {"StackName": "s", "ChangeSetName": "c"},
    ("cloudformation", "ListStackResources"): {"StackName": "s"},
    ("cloudformation", "ListStacks"): {},
    ("cloudformation", "UpdateStack"): {"StackName": "s", "RoleARN": CFN_ROLE, "TemplateURL": "https://b.s3.amazonaws.com/t.json"},
    ("cloudwatch", "DeleteAlarms"): {"AlarmNames": ["a"]},
    ("cloudwatch", "DescribeAlarmHistory"): {"AlarmName": "a"},
    ("cloudwatch", "DescribeAlarms"): {"AlarmNames": ["a"]},
    ("cloudwatch", "GetMetricData"): {"MetricDataQueries": []},
    ("cloudwatch", "GetMetricStatistics"): {"Namespace": "n", "MetricName": "m"},
    ("cloudwatch", "ListMetrics"): {},
    ("cloudwatch", "PutMetricAlarm"): {"AlarmName": "a"},
    ("cloudwatch", "PutMetricData"): {"Namespace": "n", "MetricData": []},
    ("cloudwatch", "SetAlarmState"): {"AlarmName": "a"},
    ("events", "PutEvents"): {"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]},
    ("kms", "Decrypt"): {"KeyId": KEY},
    ("kms", "DescribeKey"): {"KeyId": "alias/data"},
    ("kms", "Encrypt"): {"KeyId": "1111"},
    ("kms", "GenerateDataKey"): {"KeyId": KEY},
    ("kms", "ListKeys"): {},
    ("lambda", "GetAccountSettings"): {},
    ("lambda", "GetFunctionConcurrency"): {"FunctionName": "fn"},
    ("lambda", "Invoke"): {"FunctionName": "fn", "Qualifier": "live"},
    ("logs", "CreateLogGroup"): {"logGroupName": "/aws/lambda/fn"},
    ("logs", "CreateLogStream"): {"logGroupName": "/aws/lambda/fn", "logStreamName": "s"},
    ("logs", "DescribeLogGroups"): {},
    ("logs", "DescribeLogStreams"): {"logGroupName": "/aws/lambda/fn"},
    ("logs", "PutLogEvents"): {"logGroupName": "/aws/lambda/fn", "logStreamName": "s"},
    ("s3", "AbortMultipartUpload"): {"Bucket": "data", "Key": "k"},
    ("s3", "CompleteMultipartUpload"): {"Bucket": "data", "Key": "k"},
    ("s3", "CopyObject"): {"Bucket": "data", "Key": "k", "CopySource": {"Bucket": "data", "Key": "j", "VersionId": "v"}},
    ("s3", "CreateMultipartUpload"): {"Bucket": "data", "Key": "k"},
    ("s3", "DeleteObject"): {"Bucket": "data", "Key": "k", "VersionId": "v"},
    ("s3", "DeleteObjects"): {"Bucket": "data", "Delete": {"Objects": [{"Key": "k"}]}},
    ("s3", "GetObject"): {"Bucket": "data", "Key": "k"},
    ("s3", "HeadObject"): {"Bucket": "data", "Key": "k"},
    ("s3", "ListObjectVersions"): {"Bucket": "data", "Prefix": "p"},
    ("s3", "ListObjects"): {"Bucket": "data"},
    ("s3", "ListObjectsV2"): {"Bucket": "data", "Prefix": "p", "Delimiter": "/"},
    ("s3", "PutObject"): {"Bucket": "data", "Key": "k", "IfNoneMatch": "*", "ServerSideEncryption": "aws:kms"},
    ("s3", "UploadPart"): {"Bucket": "data", "Key": "k"},
    ("sagemaker", "CreateProcessingJob"): {
        "ProcessingJobName": "j", "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30, "VolumeKmsKeyId": KEY}},
        "ProcessingOutputConfig": {"KmsKeyId": KEY, "Outputs": []}, "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "NetworkConfig": {"EnableNetworkIsolation": True, "VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}},
        "AppSpecification": {"ImageUri": "i"},
    },
    ("sagemaker", "DeleteEndpoint"): {"EndpointName": "ep"},
    ("sagemaker", "DescribeEndpoint"): {"EndpointName": "ep"},
    ("sagemaker", "DescribeEndpointConfig"): {"EndpointConfigName": "c"},
    ("sagemaker", "DescribeMlflowTrackingServer"): {"TrackingServerName": "t"},
    ("sagemaker", "DescribeModel"): {"ModelName": "m"},
    ("sagemaker", "DescribeModelPackage"): {"ModelPackageName": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/g/1"},
    ("sagemaker", "DescribeModelPackageGroup"): {"ModelPackageGroupName": "g"},
    ("sagemaker", "DescribePipeline"): {"PipelineName": "p"},
    ("sagemaker", "DescribeProcessingJob"): {"ProcessingJobName": "j"},
    ("sagemaker", "DescribePipelineExecution"): {"PipelineExecutionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/p/execution/x"},
    ("sagemaker", "ListModelPackageGroups"): {},
    ("sagemaker", "ListModelPackages"): {"ModelPackageGroupName": "g"},
    ("sagemaker", "ListPipelineExecutionSteps"): {"PipelineExecutionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/p/execution/x"},
    ("sagemaker", "ListPipelineExecutions"): {"PipelineName": "p"},
    ("sagemaker", "StartPipelineExecution"): {"PipelineName": "p"},
    ("sagemaker", "StopProcessingJob"): {"ProcessingJobName": "j"},
    ("sagemaker", "StopPipelineExecution"): {"PipelineExecutionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/p/execution/x"},
    ("sagemaker", "UpdateEndpoint"): {"EndpointName": "ep"},
    ("sagemaker", "UpdateEndpointWeightsAndCapacities"): {"EndpointName": "ep"},
    ("sagemaker", "UpdateModelPackage"): {"ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/g/1", "ModelApprovalStatus": "Approved"},
    ("sagemaker-runtime", "InvokeEndpoint"): {"EndpointName": "ep", "TargetModel": "m.tar.gz"},
    ("sns", "Publish"): {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:t"},
    ("sns", "PublishBatch"): {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:t"},
    ("sqs", "ChangeMessageVisibility"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("sqs", "DeleteMessage"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("sqs", "DeleteMessageBatch"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("sqs", "GetQueueAttributes"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("sqs", "GetQueueUrl"): {"QueueName": "q"},
    ("sqs", "ReceiveMessage"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("sqs", "SendMessage"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("sqs", "SendMessageBatch"): {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q"},
    ("ssm", "DeleteParameter"): {"Name": "/p"},
    ("ssm", "DeleteParameters"): {"Names": ["/p"]},
    ("ssm", "GetParameter"): {"Name": "/p"},
    ("ssm", "GetParameterHistory"): {"Name": "/p"},
    ("ssm", "GetParameters"): {"Names": ["/p", "q"]},
    ("ssm", "GetParametersByPath"): {"Path": "/p", "Recursive": True},
    ("ssm", "LabelParameterVersion"): {"Name": "/p"},
    ("ssm", "PutParameter"): {"Name": "/p", "Overwrite": True},
    ("sts", "GetCallerIdentity"): {},
}  # fmt: skip
EXAMPLE_FACTS = CallFacts(
    bucket_keys={"data": KEY},
    topic_keys={f"arn:aws:sns:{REGION}:{ACCOUNT}:t": KEY},
    queue_keys={f"arn:aws:sqs:{REGION}:{ACCOUNT}:q": KEY},
    key_aliases={"alias/data": KEY},
    stack_ssm_parameters={"s": {"BootstrapVersion": "/cdk-bootstrap/version"}},
)


def test_every_mapped_operation_yields_requests_the_evaluator_accepts(
    simulator: PolicySimulator,
) -> None:
    assert set(EXAMPLES) == set(mapped_operations())
    everything = Identity(ROLE, [policy(allow("*", "*"))])
    for (service, operation), params in EXAMPLES.items():
        found = requests_for_call(
            service, operation, params, account=ACCOUNT, region=REGION, facts=EXAMPLE_FACTS
        )
        decisions = simulator.evaluate_many(
            found, everything, resource_policies={KEY: ACCOUNT_TRUST}
        )
        refused = [str(d) for d in decisions if d.result != "Allowed"]
        assert refused == [], f"{service}.{operation}"
        ignored = {key for d in decisions for key in d.ignored_context_keys}
        # Only the encryption context S3 sends is dropped (iam-simulate 0.1.173 ignores it).
        assert ignored <= {"kms:EncryptionContext:aws:s3:arn"}, f"{service}.{operation}: {ignored}"


# The process ----------------------------------------------------------------------------------


def test_a_batch_answers_in_order_and_as_single_requests_do(simulator: PolicySimulator) -> None:
    identity = Identity(ROLE, [policy(allow("s3:GetObject", "arn:aws:s3:::b/even/*"))])
    requests = [
        IamRequest("s3:GetObject", f"arn:aws:s3:::b/{'even' if i % 2 == 0 else 'odd'}/{i}")
        for i in range(300)  # more than one pipe's worth of answers
    ]
    started = time.perf_counter()
    batch = simulator.evaluate_many(requests, identity)
    per_request = (time.perf_counter() - started) / len(requests)
    assert [d.allowed for d in batch] == [i % 2 == 0 for i in range(300)]
    assert [d.request for d in batch] == requests
    assert [simulator.evaluate(r, identity).result for r in requests[:10]] == [
        d.result for d in batch[:10]
    ]
    assert per_request < 0.05  # ~1 ms here; generous for slow machines


def test_threads_share_one_process(simulator: PolicySimulator) -> None:
    identity = Identity(ROLE, [policy(allow("s3:GetObject", "arn:aws:s3:::b/*"))])
    results: list[bool] = []

    def work(n: int) -> None:
        request = IamRequest("s3:GetObject", f"arn:aws:s3:::{'b' if n % 2 else 'c'}/thread-{n}")
        results.append(simulator.evaluate(request, identity).allowed)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 8 + [True] * 8


def test_the_process_starts_lazily_and_restarts_after_close() -> None:
    fresh = PolicySimulator()
    identity = Identity(ROLE, [policy(allow("s3:GetObject", "*"))])
    assert fresh.version is None
    with fresh:
        assert fresh.evaluate(IamRequest("s3:GetObject", "arn:aws:s3:::b/k"), identity).allowed
        assert fresh.version == "0.1.173"
    fresh.close()  # idempotent
    with fresh:  # a new process, the policies sent again
        assert fresh.evaluate(IamRequest("s3:GetObject", "arn:aws:s3:::b/j"), identity).allowed


def test_a_missing_node_or_package_names_make_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("JSII_NODE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(simulator_module, "ROOT", tmp_path)
    with pytest.raises(SimulatorUnavailable, match="make install"):
        find_node()
    # The Node package.json pins (make install puts it there): no skip, the test always runs.
    node = str(Path(__file__).resolve().parents[2] / "node_modules/node/bin/node")
    assert Path(node).exists(), "run `make install`: the pinned Node is missing"
    # The script away from node_modules: its import of the package fails.
    monkeypatch.setattr(
        simulator_module, "SCRIPT", Path(shutil.copy(simulator_module.SCRIPT, tmp_path))
    )
    with (
        PolicySimulator(node=node) as orphan,
        pytest.raises(SimulatorUnavailable, match="make install"),
    ):
        orphan.evaluate(IamRequest("s3:GetObject", "arn:aws:s3:::b/k"), Identity(ROLE, []))
    with (
        PolicySimulator(node=str(tmp_path / "no-node")) as nowhere,
        pytest.raises(SimulatorUnavailable, match="make install"),
    ):
        nowhere.evaluate(IamRequest("s3:GetObject", "arn:aws:s3:::b/k"), Identity(ROLE, []))


# Refusing calls on the emulator ------------------------------------------------------------------


def test_an_observer_refuses_what_the_role_may_not_do(
    emulator: AwsTarget, simulator: PolicySimulator
) -> None:
    """The observer the twin wires: each call -> its IAM requests -> the evaluator; a denial
    comes back to the caller as AWS's AccessDenied, and the emulator never sees the call."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="reports")
    identity = Identity(
        ROLE,
        [policy(allow("s3:PutObject", "arn:aws:s3:::reports/audit/*"))],
        session_name="traffic",
    )
    refused: list[str] = []

    def judge(service: str, operation: str, params: Mapping[str, Any]) -> None:
        found = requests_for_call(
            service, operation, params, account=ACCOUNT, region=REGION, facts=CallFacts()
        )
        for decision in simulator.evaluate_many(found, identity):
            if not decision.allowed:
                refused.append(str(decision))
                raise access_denied(decision, caller=identity.session_arn, operation=operation)

    with observe_calls(judge):
        s3.put_object(Bucket="reports", Key="audit/ok.json", Body=b"{}")
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket="reports", Key="other/no.json", Body=b"{}")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "arn:aws:s3:::reports/other/no.json" in denied.value.response["Error"]["Message"]
    listed = s3.list_objects_v2(Bucket="reports")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["audit/ok.json"]
    assert len(refused) == 1
