"""The serving stack: A/B endpoint, capture, autoscaling, alarms, and the traffic Lambda."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from tests.infra.conftest import BuildFn


def one(template: Template, kind: str) -> tuple[str, Any]:
    ((logical_id, resource),) = template.find_resources(kind).items()
    return logical_id, resource


def test_packages_are_parameters_and_the_endpoint_waits_for_a_champion(
    serving_template: Template,
) -> None:
    parameters = serving_template.to_json()["Parameters"]
    for name in ("ChampionModelPackageArn", "ChallengerModelPackageArn"):
        assert parameters[name]["Default"] == ""
        assert parameters[name]["AllowedPattern"].startswith("^$|^arn:aws")
    conditions = serving_template.to_json()["Conditions"]
    assert set(conditions) >= {"HasChampion", "HasChallenger"}
    for kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig"):
        assert one(serving_template, kind)[1]["Condition"] == "HasChampion"


def test_runtime_weights_and_counts_survive_a_deploy(serving_template: Template) -> None:
    # The answer to "what does the next cdk deploy do to weights changed at run time?":
    # the packages are parameters (cdk deploy keeps previous values), and any endpoint update
    # CloudFormation makes keeps the variants' current weights and instance counts.
    _, endpoint = one(serving_template, "AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["RetainAllVariantProperties"] is True
    # Weights are not retained from the old config but read by the new one from SSM, where
    # the traffic controls keep the weights in force: the same numbers, and no drift between
    # what the endpoint does and what its configuration says.
    assert endpoint["Properties"]["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DesiredWeight"}
    ]
    assert endpoint["Properties"]["EndpointName"] == "mlops-dev-visits"


def test_two_fixed_variants_with_initial_weights(serving_template: Template) -> None:
    _, config = one(serving_template, "AWS::SageMaker::EndpointConfig")
    champion, challenger = config["Properties"]["ProductionVariants"]
    assert champion["VariantName"] == "champion"
    assert champion["InitialVariantWeight"] == "{{resolve:ssm:/mlops/dev/serving/champion-weight}}"
    assert champion["InstanceType"] == "ml.m5.large"
    condition, variant, absent = challenger["Fn::If"]
    assert (condition, absent) == ("HasChallenger", {"Ref": "AWS::NoValue"})
    assert variant["VariantName"] == "challenger"
    assert variant["InitialVariantWeight"] == "{{resolve:ssm:/mlops/dev/serving/challenger-weight}}"
    assert variant["InitialInstanceCount"] == 1


def test_volumes_and_capture_are_encrypted_and_capture_is_not_base64(
    serving_template: Template,
) -> None:
    _, config = one(serving_template, "AWS::SageMaker::EndpointConfig")
    properties = config["Properties"]
    key = {"Fn::ImportValue": "mlops-dev-data-key-arn"}
    assert properties["KmsKeyId"] == key
    capture = properties["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 100
    assert capture["KmsKeyId"] == key
    assert capture["DestinationS3Uri"] == {
        "Fn::Join": [
            "",
            ["s3://", {"Fn::ImportValue": "mlops-dev-capture-bucket-name"}, "/capture"],
        ]
    }
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["CaptureContentTypeHeader"] == {
        "CsvContentTypes": ["text/csv"],
        "JsonContentTypes": ["application/json"],
    }


def test_sampling_comes_from_config(build: Any) -> None:
    _, platform = build(capture_sampling_percentage="20")
    _, config = one(Template.from_stack(platform.serving), "AWS::SageMaker::EndpointConfig")
    assert config["Properties"]["DataCaptureConfig"]["InitialSamplingPercentage"] == 20


def test_weights_live_in_the_stateful_registry_stack(registry_template: Template) -> None:
    parameters = {
        p["Properties"]["Name"]: (p["Properties"]["Value"], p["DeletionPolicy"])
        for p in registry_template.find_resources("AWS::SSM::Parameter").values()
    }
    assert parameters == {
        # Deleted with the stack: fixed names that outlived a destroy would block a redeploy.
        "/mlops/dev/serving/champion-weight": ("1", "Delete"),
        "/mlops/dev/serving/challenger-weight": ("0", "Delete"),
    }


def test_traffic_lambda_keeps_the_weights_parameters(serving_template: Template) -> None:
    _, function = functions(serving_template)["traffic"]
    assert json.loads(function["Properties"]["Environment"]["Variables"]["WEIGHT_PARAMETERS"]) == {
        "champion": "/mlops/dev/serving/champion-weight",
        "challenger": "/mlops/dev/serving/challenger-weight",
    }
    policies = serving_template.find_resources("AWS::IAM::ManagedPolicy")
    rendered = json.dumps(policies)
    assert "ssm:PutParameter" in rendered
    assert ":parameter/mlops/dev/serving/champion-weight" in rendered


def test_models_come_from_the_registry_without_network(serving_template: Template) -> None:
    models = serving_template.find_resources("AWS::SageMaker::Model")
    by_condition = {m["Condition"]: m["Properties"] for m in models.values()}
    assert by_condition["HasChampion"]["Containers"] == [
        {"ModelPackageName": {"Ref": "ChampionModelPackageArn"}}
    ]
    assert by_condition["HasChallenger"]["Containers"] == [
        {"ModelPackageName": {"Ref": "ChallengerModelPackageArn"}}
    ]
    for properties in by_condition.values():
        assert properties["EnableNetworkIsolation"] is True


def test_autoscaling_per_variant(serving_template: Template) -> None:
    targets = serving_template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert {
        t["Properties"]["ResourceId"]: (
            t["Condition"],
            t["Properties"]["MinCapacity"],
            t["Properties"]["MaxCapacity"],
        )
        for t in targets.values()
    } == {
        "endpoint/mlops-dev-visits/variant/champion": ("HasChampion", 1, 4),
        "endpoint/mlops-dev-visits/variant/challenger": ("HasChallenger", 1, 4),
    }
    policies = serving_template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == 750
        assert tracking["PredefinedMetricSpecification"] == {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
        }


def test_alarms_per_variant_notify(serving_template: Template) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in serving_template.find_resources("AWS::CloudWatch::Alarm").values()
        # The functions' alarms are named by CloudFormation; drift alarms: test_drift_stack.py.
        if not a["Properties"].get("AlarmName", "-drift").endswith("-drift")
    }
    assert set(alarms) == {
        "mlops-dev-visits-champion-5xx",
        "mlops-dev-visits-champion-latency",
        "mlops-dev-visits-challenger-5xx",
        "mlops-dev-visits-challenger-latency",
    }
    errors = alarms["mlops-dev-visits-challenger-5xx"]
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"]) == (
        "Invocation5XXErrors",
        "Sum",
        5,
    )
    assert {d["Name"]: d["Value"] for d in errors["Dimensions"]} == {
        "EndpointName": "mlops-dev-visits",
        "VariantName": "challenger",
    }
    latency = alarms["mlops-dev-visits-champion-latency"]
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == (
        "ModelLatency",
        "p99",
        500_000,
    )
    topic_id, _ = one(serving_template, "AWS::SNS::Topic")
    for properties in alarms.values():
        assert properties["AlarmActions"] == [{"Ref": topic_id}]
        assert properties["TreatMissingData"] == "notBreaching"


def test_alerts_topic_is_encrypted_and_ssl_only(serving_template: Template) -> None:
    _, topic = one(serving_template, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic["Properties"]
    _, policy = one(serving_template, "AWS::SNS::TopicPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def functions(template: Template) -> dict[str, Any]:
    return {
        f["Properties"]["ImageConfig"]["Command"][0].split(".")[1]: (logical_id, f)
        for logical_id, f in template.find_resources("AWS::Lambda::Function").items()
    }


def test_no_reservation_by_default_so_a_new_account_can_deploy(
    serving_template: Template, built: BuildFn
) -> None:
    # A reservation must leave 100 unreserved executions; new accounts often have 10.
    for _, function in functions(serving_template).values():
        assert "ReservedConcurrentExecutions" not in function["Properties"]
    _, platform = built(function_reserved_concurrency=1)
    for _, function in functions(Template.from_stack(platform.serving)).values():
        assert function["Properties"]["ReservedConcurrentExecutions"] == 1


def test_traffic_lambda_has_a_dead_letter_queue(serving_template: Template) -> None:
    _, function = functions(serving_template)["traffic"]
    properties = function["Properties"]
    assert properties["PackageType"] == "Image"
    assert properties["Timeout"] == 300
    assert properties["MemorySize"] == 512
    assert "DeadLetterConfig" in properties
    assert properties["ImageConfig"] == {"Command": ["lambdas.traffic.handler.handler"]}
    environment = properties["Environment"]["Variables"]
    assert environment["AUDIT_BUCKET"] == {"Fn::ImportValue": "mlops-dev-reports-bucket-name"}
    assert json.loads(environment["ROLLOUT_STEPS"]) == [0.1, 0.25, 0.5]
    for log_group in serving_template.find_resources("AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == 90
        assert "KmsKeyId" in log_group["Properties"]


def test_traffic_permissions_are_scoped(serving_template: Template) -> None:
    policies = serving_template.find_resources("AWS::IAM::ManagedPolicy")
    (traffic,) = [
        p
        for p in policies.values()
        if "sagemaker:UpdateEndpointWeightsAndCapacities" in json.dumps(p)
    ]
    statements = traffic["Properties"]["PolicyDocument"]["Statement"]
    update = next(
        s for s in statements if "sagemaker:UpdateEndpointWeightsAndCapacities" in s["Action"]
    )
    assert "endpoint/mlops-dev-visits" in json.dumps(update["Resource"])
    audit = next(s for s in statements if s.get("Sid") == "TrafficAudit")
    assert "s3:PutObject" in audit["Action"]
    assert "/audit/traffic/mlops-dev-visits/*" in json.dumps(audit["Resource"])
    for statement in statements:
        assert statement["Resource"] != "*"
        assert all(
            "*" not in a
            for a in (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
        )


def rules(template: Template) -> dict[str, Any]:
    return {
        r["Properties"]["EventPattern"]["detail-type"][0]: r
        for r in template.find_resources("AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]  # the drift schedule: test_drift_stack.py
    }


def test_approval_deploys_through_the_deploy_lambda(serving_template: Template) -> None:
    rule = rules(serving_template)["SageMaker Model Package State Change"]
    assert rule["Properties"]["EventPattern"]["detail"] == {
        "ModelPackageGroupName": ["mlops-dev-visits"],
        "ModelApprovalStatus": ["Approved"],
    }
    deploy_id, deploy = functions(serving_template)["deploy"]
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [deploy_id, "Arn"]}
    assert deploy["Properties"]["Environment"]["Variables"]["INITIAL_CHALLENGER_WEIGHT"] == "0.1"


def test_stranded_invocations_alarm(serving_template: Template) -> None:
    alarms = [
        a["Properties"] for a in serving_template.find_resources("AWS::CloudWatch::Alarm").values()
    ]
    stranded = [a for a in alarms if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert len(stranded) == 3  # one per function's dead-letter queue (traffic, deploy, drift)
    for alarm in stranded:
        assert alarm["Threshold"] == 1
        assert alarm["AlarmActions"]


def test_challenger_alarms_trigger_the_rollback(serving_template: Template) -> None:
    rule = rules(serving_template)["CloudWatch Alarm State Change"]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {
        "alarmName": [
            "mlops-dev-visits-challenger-5xx",
            "mlops-dev-visits-challenger-latency",
            "mlops-dev-visits-challenger-drift",  # auto_rollback_on_challenger_drift
        ],
        "state": {"value": ["ALARM"]},
    }
    (target,) = rule["Properties"]["Targets"]
    function_id, _ = functions(serving_template)["traffic"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}
