"""The serving stack's drift monitoring: the function, its schedule, alarms, routes, dashboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from stacks.platform import Platform

BuildFn = Callable[..., tuple[Any, Platform]]


def drift_function(template: Template) -> tuple[str, Any]:
    (found,) = [
        (logical_id, f)
        for logical_id, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"]["ImageConfig"]["Command"] == ["lambdas.drift.handler.handler"]
    ]
    return found


def policy_statements(template: Template, function_id: str) -> list[dict[str, Any]]:
    role = drift_function_role(template, function_id)
    (policy,) = [
        p
        for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if {"Ref": role} in p["Properties"].get("Roles", [])
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def drift_function_role(template: Template, function_id: str) -> str:
    function = template.find_resources("AWS::Lambda::Function")[function_id]
    role: str = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def actions(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        listed = statement["Action"]
        found.update([listed] if isinstance(listed, str) else listed)
    return found


def test_drift_function_is_an_image_with_explicit_limits(serving_template: Template) -> None:
    function_id, function = drift_function(serving_template)
    properties = function["Properties"]
    assert properties["PackageType"] == "Image"
    assert properties["MemorySize"] == 3008
    assert properties["Timeout"] == 900
    assert "TargetArn" in properties["DeadLetterConfig"]
    environment = properties["Environment"]["Variables"]
    assert environment["ENDPOINT_NAME"] == "mlops-dev-visits"
    assert environment["MIN_ROWS"] == "1000"
    assert environment["FIRST_WINDOW_MINUTES"] == "60"
    assert environment["RETRAIN_ON_CHAMPION_DRIFT"] == "false"
    assert environment["DO_NOT_TRACK"] == "1"
    log_groups = serving_template.find_resources("AWS::Logs::LogGroup")
    assert all(g["Properties"]["RetentionInDays"] == 90 for g in log_groups.values())
    assert all("KmsKeyId" in g["Properties"] for g in log_groups.values())
    # Its own errors and its dead letters alarm to the topic.
    alarms = serving_template.find_resources("AWS::CloudWatch::Alarm")
    errors = [
        a
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "Errors"
        and {"Name": "FunctionName", "Value": {"Ref": function_id}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert len(errors) == 1
    assert errors[0]["Properties"]["AlarmActions"]


def test_drift_function_reads_only_what_it_checks(serving_template: Template) -> None:
    function_id, _ = drift_function(serving_template)
    statements = policy_statements(serving_template, function_id)
    assert actions(statements) == {
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
        "sagemaker:DescribeModelPackage",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "sns:Publish",
        "sqs:SendMessage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        # A window too large for the function: its Processing job (see below).
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "iam:PassRole",
    }
    text = json.dumps(statements)
    assert "capture/mlops-dev-visits/*" in text
    assert "ground-truth/mlops-dev-visits/*" in text
    assert "drift/mlops-dev-visits/*" in text
    assert "pipelines/mlops-dev-training/*" in text
    assert '"s3:*"' not in text
    assert '"Resource": "*"' not in text
    # Listing is always narrowed to the prefixes it reads.
    lists = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert len(lists) == 3
    assert all("s3:prefix" in s["Condition"]["StringLike"] for s in lists)
    puts = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert all("capture" not in json.dumps(s["Resource"]) for s in puts)  # capture: read-only


def test_schedule_comes_from_config(serving_template: Template, build: BuildFn) -> None:
    function_id, _ = drift_function(serving_template)
    rules = [
        r
        for r in serving_template.find_resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert len(rules) == 1
    assert rules[0]["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    (target,) = rules[0]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2

    _, platform = build(drift_schedule="rate(5 minutes)")
    template = Template.from_stack(platform.serving)
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)"})
    # One alarm period per check: a 5-minute schedule gets 5-minute drift alarms.
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"AlarmName": "mlops-dev-visits-challenger-drift", "Period": 300}
    )
    _, function = drift_function(template)
    assert function["Properties"]["Environment"]["Variables"]["FIRST_WINDOW_MINUTES"] == "5"


def test_drift_alarms_watch_the_checks_metric(serving_template: Template) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in serving_template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("AlarmName", "").endswith("-drift")
    }
    assert set(alarms) == {"mlops-dev-visits-champion-drift", "mlops-dev-visits-challenger-drift"}
    for variant in ("champion", "challenger"):
        alarm = alarms[f"mlops-dev-visits-{variant}-drift"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
            "MLOps/Drift",
            "DriftDetected",
            "Maximum",
        )
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "EndpointName": "mlops-dev-visits",
            "VariantName": variant,
        }
        assert (alarm["Threshold"], alarm["Period"], alarm["TreatMissingData"]) == (
            1,
            3600,
            "notBreaching",
        )
        # Either of the last two checks: a lasting drift stays in ALARM (no flapping).
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (2, 1)
        assert alarm["OKActions"]


def alarm_rules(template: Template) -> dict[str, list[str]]:
    return {
        logical_id: r["Properties"]["EventPattern"]["detail"]["alarmName"]
        for logical_id, r in template.find_resources("AWS::Events::Rule").items()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]
    }


def test_challenger_drift_holds_the_rollout(serving_template: Template) -> None:
    (traffic_id, traffic), = [
        (i, f) for i, f in serving_template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"]["ImageConfig"]["Command"] == ["lambdas.traffic.handler.handler"]
    ]  # fmt: skip
    gate = json.loads(traffic["Properties"]["Environment"]["Variables"]["GATE_ALARMS"])
    assert "mlops-dev-visits-challenger-drift" in gate
    (describe,) = [
        s for s in policy_statements(serving_template, traffic_id)
        if s["Action"] == "cloudwatch:DescribeAlarms"
    ]  # fmt: skip
    # arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>, by name (names are fixed).
    names = {json.dumps(r).split(":alarm:")[1].split('"')[0] for r in describe["Resource"]}
    existing = {
        a["Properties"].get("AlarmName")
        for a in serving_template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert names <= existing
    assert "mlops-dev-visits-challenger-drift" in names
    assert "mlops-dev-visits-champion-drift" not in names


def test_challenger_drift_rolls_back_unless_turned_off(
    serving_template: Template, build: BuildFn
) -> None:
    rules = alarm_rules(serving_template)
    assert len(rules) == 1  # retraining on champion drift is off by default
    (alarms,) = rules.values()
    assert "mlops-dev-visits-challenger-drift" in alarms
    assert "mlops-dev-visits-challenger-5xx" in alarms

    _, platform = build(auto_rollback_on_challenger_drift=False)
    (alarms,) = alarm_rules(Template.from_stack(platform.serving)).values()
    assert "mlops-dev-visits-challenger-drift" not in alarms
    assert "mlops-dev-visits-challenger-5xx" in alarms


@pytest.mark.synth
def test_champion_drift_can_start_retraining(build: BuildFn) -> None:
    _, platform = build(retrain_on_champion_drift=True)
    template = Template.from_stack(platform.serving)
    rules = alarm_rules(template)
    assert sorted(rules.values()) == sorted(
        [
            ["mlops-dev-visits-champion-drift"],
            [
                "mlops-dev-visits-challenger-5xx",
                "mlops-dev-visits-challenger-latency",
                "mlops-dev-visits-challenger-drift",
            ],
        ]
    )
    function_id, function = drift_function(template)
    (champion_rule,) = [
        r
        for r in template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail", {}).get("alarmName")
        == ["mlops-dev-visits-champion-drift"]
    ]
    assert champion_rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    statements = policy_statements(template, function_id)
    (start,) = [s for s in statements if s["Action"] == "sagemaker:StartPipelineExecution"]
    assert "pipeline/mlops-dev-training" in json.dumps(start["Resource"])
    assert function["Properties"]["Environment"]["Variables"]["RETRAIN_ON_CHAMPION_DRIFT"] == "true"


def test_dashboard_shows_each_variant(serving_template: Template) -> None:
    (dashboard,) = serving_template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "mlops-dev-serving"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "Invocations",
        "ModelLatency",
        "Invocation5XXErrors",
        "VariantWeight",
        "DriftShare",
        "RowsChecked",
        "MalformedRecords",
    ):
        assert metric in body, metric
    assert body.count('\\"VariantName\\",\\"champion\\"') >= 5
    assert body.count('\\"VariantName\\",\\"challenger\\"') >= 5


# -- a window too large for the function: a SageMaker Processing job ---------------------------
def job_definition(function: dict[str, Any]) -> dict[str, Any]:
    """The PROCESSING_JOB variable: JSON joined with intrinsics (kept as they are)."""
    value = function["Properties"]["Environment"]["Variables"]["PROCESSING_JOB"]
    parts = value["Fn::Join"][1] if isinstance(value, dict) else [value]
    intrinsics = [p for p in parts if not isinstance(p, str)]
    text = "".join(p if isinstance(p, str) else f"@@{i}@@" for i, p in enumerate(parts))
    markers = {f"@@{i}@@": p for i, p in enumerate(parts) if not isinstance(p, str)}
    assert len(markers) == len(intrinsics)

    def restore(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: restore(v) for k, v in node.items()}
        if isinstance(node, list):
            return [restore(v) for v in node]
        return markers.get(node, node) if isinstance(node, str) else node

    restored: dict[str, Any] = restore(json.loads(text))
    return restored


def processing_role(template: Template) -> tuple[str, Any]:
    (found,) = [
        (lid, r) for lid, r in template.find_resources("AWS::IAM::Role").items()
        if r["Properties"].get("RoleName") == "mlops-dev-drift-processing"
    ]  # fmt: skip
    return found


def test_the_job_definition_is_synthesized_from_the_config(serving_template: Template) -> None:
    _, function = drift_function(serving_template)
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["JOB_THRESHOLD_BYTES"] == str(1600 * 10**6)
    assert variables["JOB_PREFIX"] == "mlops-dev-drift-"
    definition = job_definition(function)
    role_id, _ = processing_role(serving_template)
    data_key = {"Fn::ImportValue": "mlops-dev-data-key-arn"}
    assert definition["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    # The function's own image, run with the shard's entry point.
    assert definition["AppSpecification"] == {
        "ImageUri": function["Properties"]["Code"]["ImageUri"],
        "ContainerEntrypoint": ["python3", "-m", "lambdas.drift.shard"],
    }
    assert definition["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 2,
        "InstanceType": "ml.m5.xlarge",
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": data_key,
    }
    assert definition["ProcessingOutputConfig"] == {"KmsKeyId": data_key}
    assert definition["NetworkConfig"] == {"EnableNetworkIsolation": True}
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert definition["Environment"] == {"PYTHONPATH": "/var/task", "DO_NOT_TRACK": "1"}


def test_the_job_definition_follows_the_context(built: BuildFn) -> None:
    _, platform = built(
        drift_job_instance_count=4, drift_job_instance_type="ml.c5.2xlarge",
        drift_job_threshold_mb=500, vpc_subnet_ids="subnet-0123456789abcdef0",
        vpc_security_group_ids="sg-0123456789abcdef0",
    )  # fmt: skip
    template = Template.from_stack(platform.serving)
    function_id, function = drift_function(template)
    definition = job_definition(function)
    assert function["Properties"]["Environment"]["Variables"]["JOB_THRESHOLD_BYTES"] == str(
        500 * 10**6
    )
    cluster = definition["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceCount"], cluster["InstanceType"]) == (4, "ml.c5.2xlarge")
    assert definition["NetworkConfig"] == {
        "EnableNetworkIsolation": True,
        "VpcConfig": {
            "SecurityGroupIds": ["sg-0123456789abcdef0"],
            "Subnets": ["subnet-0123456789abcdef0"],
        },
    }
    (start,) = [
        s for s in policy_statements(template, function_id)
        if s["Action"] == "sagemaker:CreateProcessingJob"
    ]  # fmt: skip
    assert start["Condition"]["ForAllValues:StringEquals"] == {
        "sagemaker:InstanceTypes": ["ml.c5.2xlarge"]
    }


def test_the_function_starts_only_isolated_encrypted_jobs_of_its_own(
    serving_template: Template,
) -> None:
    function_id, _ = drift_function(serving_template)
    statements = {s["Sid"]: s for s in policy_statements(serving_template, function_id)}
    start, follow = statements["StartCheckJobs"], statements["FollowCheckJobs"]
    assert start["Action"] == "sagemaker:CreateProcessingJob"
    assert follow["Action"] == "sagemaker:DescribeProcessingJob"
    for statement in (start, follow):
        assert json.dumps(statement["Resource"]).endswith(':processing-job/mlops-dev-drift-*"]]}')
    data_key = {"Fn::ImportValue": "mlops-dev-data-key-arn"}
    assert start["Condition"] == {
        "Bool": {"sagemaker:NetworkIsolation": "true"},
        "ArnEquals": {"sagemaker:VolumeKmsKeyArn": data_key, "sagemaker:OutputKmsKeyArn": data_key},
        "ForAllValues:StringEquals": {"sagemaker:InstanceTypes": ["ml.m5.xlarge"]},
        "Null": {"sagemaker:InstanceTypes": "false"},
    }
    role_id, _ = processing_role(serving_template)
    passing = statements["PassProcessingRole"]
    assert (passing["Action"], passing["Resource"]) == (
        "iam:PassRole",
        {"Fn::GetAtt": [role_id, "Arn"]},
    )
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_the_processing_role_reads_the_window_and_writes_summaries_only(
    serving_template: Template,
) -> None:
    role_id, role = processing_role(serving_template)
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert json.dumps(trust["Condition"]["ArnLike"]).endswith(
        ':processing-job/mlops-dev-drift-*"]]}}'
    )
    (policy,) = [
        p for p in serving_template.find_resources("AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in p["Properties"].get("Roles", [])
    ]  # fmt: skip
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert actions(list(statements.values())) == {
        "s3:GetObject", "s3:ListBucket", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey",
        "kms:CreateGrant", "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "logs:CreateLogStream",
        "logs:PutLogEvents", "logs:DescribeLogStreams", "cloudwatch:PutMetricData",
    }  # fmt: skip
    assert "capture/mlops-dev-visits/*" in json.dumps(statements["ReadWindow"]["Resource"])
    assert "drift/mlops-dev-visits/jobs/*" in json.dumps(statements["ReadJobInputs"]["Resource"])
    # Writes: the jobs' summaries only; never the capture, never the results.
    (write,) = [s for s in statements.values() if "s3:PutObject" in s["Action"]]
    assert json.dumps(write["Resource"]).endswith('/drift/mlops-dev-visits/jobs/*/summaries/*"]]}')
    assert statements["ListJobInputs"]["Condition"] == {
        "StringLike": {"s3:prefix": ["drift/mlops-dev-visits/jobs/*"]}
    }
    assert statements["VolumeKey"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert statements["JobMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}
    }
    assert ":log-group:/aws/sagemaker/ProcessingJobs:*" in json.dumps(statements["JobLogs"])


def test_a_jobs_end_reaches_the_drift_function(serving_template: Template) -> None:
    function_id, _ = drift_function(serving_template)
    (rule,) = [
        r for r in serving_template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.sagemaker"]
        and r["Properties"]["EventPattern"]["detail-type"]
        == ["SageMaker Processing Job State Change"]
    ]  # fmt: skip
    assert rule["Properties"]["EventPattern"]["detail"] == {
        "ProcessingJobName": [{"prefix": "mlops-dev-drift-"}],
        "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
