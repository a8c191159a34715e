"""The offline twin creates what the serving stack creates, property by property.

The embedded default builds its alarms, EventBridge rules and endpoint data capture from the
same specifications (mlops.core.specs) as the CDK constructs. These tests read back what the
twin created in the emulator and compare it with the synthesized template, so a change made
on one side only (a statistic, a period, a threshold, a pattern, a target, a capture option)
fails here instead of making the demo prove something the real stack does not do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core import specs
from mlops.core.approval import ServingState, on_approval
from mlops.core.config import PlatformConfig, read_cdk_json_context
from mlops.local.aws_services import create_alarms, create_rules
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import bootstrap
from stacks.platform import Platform
from tests.conftest import ROOT
from tests.infra.conftest import VARIED_CONTEXT

TOPIC = "<alerts topic>"
BUCKET = "<capture bucket>"
KEY = "<data key>"
ALARM_PROPERTIES = (
    "AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic",
    "ExtendedStatistic", "Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions",
)  # fmt: skip
CONFIGS = {"default": {}, "varied": VARIED_CONTEXT}


def resolved(value: Any, names: dict[str, str]) -> Any:
    """A template value with CloudFormation's intrinsics replaced by what they stand for:
    ``names`` maps a Ref's logical ID or an imported export to a placeholder."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function in ("Ref", "Fn::ImportValue", "Fn::GetAtt"):
            name = argument[0] if function == "Fn::GetAtt" else argument
            return names.get(name, f"<{function} {argument}>")
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolved(p, names)) for p in parts)
    if isinstance(value, dict):
        return {k: resolved(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v, names) for v in value]
    return value


def template_names(template: Mapping[str, Any], config: PlatformConfig) -> dict[str, str]:
    """Placeholders for the template's references: the alerts topic, the capture bucket, the
    data key, and each function (by the handler its image runs)."""
    names = {
        f"{config.prefix}-capture-bucket-name": BUCKET,
        f"{config.prefix}-data-key-arn": KEY,
    }
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::SNS::Topic":
            names[logical_id] = TOPIC
        if resource["Type"] == "AWS::Lambda::Function":
            command = resource["Properties"].get("ImageConfig", {}).get("Command", [])
            for function, handler in specs.HANDLERS.items():
                if command == [handler]:
                    names[logical_id] = f"<function {function}>"
    return names


def of_type(template: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


Build = Callable[..., tuple[cdk.App, Platform]]


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def stack(
    request: pytest.FixtureRequest, built: Build
) -> tuple[PlatformConfig, Mapping[str, Any], dict[str, str]]:
    overrides = CONFIGS[request.param]
    _, platform = built(**overrides)
    template = Template.from_stack(platform.serving).to_json()
    config = PlatformConfig.from_context({**read_cdk_json_context(ROOT / "cdk.json"), **overrides})
    return config, template, template_names(template, config)


def twin_alarms(emulator: AwsTarget, config: PlatformConfig) -> list[dict[str, Any]]:
    topic = emulator.client("sns").create_topic(Name=f"{config.prefix}-alerts")["TopicArn"]
    cloudwatch = emulator.client("cloudwatch")
    create_alarms(cloudwatch, [*specs.variant_alarms(config), *specs.drift_alarms(config)], topic)
    alarms = []
    for described in cloudwatch.describe_alarms()["MetricAlarms"]:
        alarm: dict[str, Any] = {k: v for k, v in described.items() if k in ALARM_PROPERTIES}
        for actions in ("AlarmActions", "OKActions"):
            alarm[actions] = [TOPIC if a == topic else a for a in alarm.get(actions, [])]
        alarms.append(alarm)
    return alarms


def test_every_alarm_the_twin_creates_is_the_stacks(
    stack: tuple[PlatformConfig, Mapping[str, Any], dict[str, str]], emulator: AwsTarget
) -> None:
    config, template, names = stack
    in_stack = {
        a["AlarmName"]: {k: v for k, v in resolved(a, names).items() if k in ALARM_PROPERTIES}
        for a in of_type(template, "AWS::CloudWatch::Alarm")
        if "AlarmName" in a
    }
    twin = twin_alarms(emulator, config)
    assert len(twin) == 4 + 2  # 5XX and latency per variant, drift per variant
    for alarm in twin:
        expected = in_stack[alarm["AlarmName"]]
        expected.setdefault("AlarmActions", [])
        expected.setdefault("OKActions", [])
        for key in ALARM_PROPERTIES:
            assert alarm.get(key) == expected.get(key), (alarm["AlarmName"], key)


def test_every_rule_the_twin_creates_is_the_stacks(
    stack: tuple[PlatformConfig, Mapping[str, Any], dict[str, str]], emulator: AwsTarget
) -> None:
    config, template, names = stack
    in_stack = {
        r["Description"]: {
            "EventPattern": r.get("EventPattern"),
            "ScheduleExpression": r.get("ScheduleExpression"),
            "State": r["State"],
            "Targets": [{k: resolved(v, names) for k, v in t.items()} for t in r["Targets"]],
        }
        for r in of_type(template, "AWS::Events::Rule")
    }
    events = emulator.client("events")
    created = create_rules(events, config)
    assert len(created) == len(in_stack)
    for name in created:
        rule = events.describe_rule(Name=name)
        targets = events.list_targets_by_rule(Rule=name)["Targets"]
        twin = {
            "EventPattern": json.loads(rule["EventPattern"]) if "EventPattern" in rule else None,
            "ScheduleExpression": rule.get("ScheduleExpression"),
            "State": rule["State"],
            "Targets": [
                {
                    "Arn": f"<function {t['Arn'].rsplit('-', 1)[-1]}>",
                    "Id": t["Id"],
                    "RetryPolicy": t["RetryPolicy"],
                }
                for t in targets
            ],
        }
        assert twin == in_stack[rule["Description"]], name


def test_the_twins_endpoint_captures_as_the_stacks(
    stack: tuple[PlatformConfig, Mapping[str, Any], dict[str, str]], emulator: AwsTarget
) -> None:
    config, template, names = stack
    (endpoint_config,) = of_type(template, "AWS::SageMaker::EndpointConfig")
    expected = resolved(endpoint_config["DataCaptureConfig"], names)

    resources: PlatformResources = bootstrap(emulator, config)
    sagemaker = emulator.client("sagemaker")
    package = sagemaker.create_model_package(
        ModelPackageGroupName=resources.model_package_group,
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
    )["ModelPackageArn"]
    deployment = EmulatorDeployment(sagemaker=sagemaker, config=config, resources=resources)
    deployment.deploy(on_approval(ServingState(), package, initial_challenger_weight=0.1))
    described = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=config.endpoint_name)[
            "EndpointConfigName"
        ]
    )
    twin = json.loads(
        json.dumps(described["DataCaptureConfig"])
        .replace(resources.capture_bucket, BUCKET)
        .replace(str(resources.key_arn), KEY)
    )
    assert twin == expected
